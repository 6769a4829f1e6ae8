"""Accepting connections straight onto the native transport.

Theory of operation
-------------------

With asyncio's transport, a server made by :meth:`loop.create_server
<asyncio.loop.create_server>` accepts each connection, builds asyncio's socket transport for
it, and the native transport then takes the socket over (:func:`~.transport.take_over`: a
``dup``, an extra transport object, a reader registered and removed, an extra ``close``).
:func:`create_server` avoids that when the protocol class says the native transport
(:func:`~.transport.use_native`) and there is no TLS: asyncio (or uvloop) still creates and
binds the listening sockets, with every option of ``create_server`` or
``create_unix_server``, but is never started; a :class:`NativeServer` listens on its own
descriptors of those sockets, accepts, and gives each connection a
:class:`~.transport.NativeTransport` directly.

A :class:`NativeServer` has the semantics of :class:`asyncio.Server`: ``close`` stops
listening and closes the sockets at once (connections go on); ``wait_closed`` returns once
the server is closed and its last connection is lost; ``start_serving``, ``serve_forever``,
``is_serving``, ``sockets``, ``get_loop`` and the asynchronous context manager behave the
same. Like asyncio, it accepts up to ``backlog`` connections per readiness event, and when
the process or system is out of descriptors (``EMFILE``, ``ENFILE``) or memory, it reports
the error to the loop's exception handler and stops accepting for :data:`ACCEPT_RETRY_DELAY`
seconds.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from asyncio import trsock
from collections.abc import Callable
from typing import Any

from .transport import NativeTransport, TransportKind, use_native


__all__ = ["ACCEPT_RETRY_DELAY", "NativeServer", "create_server"]

ACCEPT_RETRY_DELAY = 1.0
"""Seconds without accepting after running out of descriptors or memory, as asyncio."""

# accept() errors that mean "out of resources, try again later", as asyncio's.
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


async def create_server(
    factory: Callable[[], asyncio.BufferedProtocol],
    kind: TransportKind | None,
    *args: Any,
    unix: bool = False,
    **kwargs: Any,
) -> asyncio.Server | NativeServer:
    """Like :meth:`loop.create_server <asyncio.loop.create_server>` (or
    :meth:`~asyncio.loop.create_unix_server` if ``unix``) on the running loop, with the same
    arguments; the server accepts its connections onto the native transport when ``kind``
    (the ``transport_kind`` of the protocol class) chooses it and there is no TLS."""
    loop = asyncio.get_running_loop()
    create = loop.create_unix_server if unix else loop.create_server
    if not use_native(kind) or kwargs.get("ssl") is not None:
        return await create(factory, *args, **kwargs)
    start_serving = kwargs.pop("start_serving", True)
    bound = await create(asyncio.Protocol, *args, start_serving=False, **kwargs)
    server = NativeServer(loop, bound, factory, kwargs.get("backlog", 100))
    if start_serving:
        await server.start_serving()
    return server


class NativeServer(asyncio.AbstractServer):
    """A server that accepts connections onto :class:`~.transport.NativeTransport`.

    Args:
        loop: The event loop; it must support :meth:`~asyncio.loop.add_reader`.
        bound: An :class:`asyncio.Server` that was never started: its bound sockets are the
            ones to listen on; closing this server closes it.
        factory: Makes the protocol of each connection (a buffered protocol).
        backlog: The ``listen`` backlog, and the most connections accepted per event.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        bound: asyncio.Server,
        factory: Callable[[], asyncio.BufferedProtocol],
        backlog: int,
    ) -> None:
        self._loop = loop
        self._bound = bound
        self._factory = factory
        self._backlog = backlog
        # Our own descriptors of the bound sockets; None once closed.
        self._listening: list[socket.socket] | None = [
            socket.socket(s.family, s.type, s.proto, os.dup(s.fileno())) for s in bound.sockets
        ]
        for sock in self._listening:
            sock.setblocking(False)
        self._serving = False
        # The transports of the connections whose connection_lost() has not run yet.
        self._clients: set[NativeTransport] = set()
        self._waiters: list[asyncio.Future[None]] | None = []
        self._retries: dict[int, asyncio.TimerHandle] = {}  # by descriptor
        self._serving_forever: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<NativeServer sockets={self.sockets!r}>"

    # ------------------------------------------------------------------ accepting

    def _start(self) -> None:
        if self._serving or self._listening is None:
            return
        self._serving = True
        for sock in self._listening:
            sock.listen(self._backlog)
            self._loop.add_reader(sock.fileno(), self._accept_ready, sock, _local_name(sock))

    def _accept_ready(self, sock: socket.socket, local: Any) -> None:
        """Accept up to ``backlog`` connections waiting on ``sock``, whose local address
        is ``local`` (``None``: ask each)."""
        # The family of every connection of this listener, read once: the socket's family
        # property makes an enum each time (socket.accept() reads it for each connection).
        family = sock.family
        for _ in range(self._backlog):
            try:
                fd, address = sock._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # no more connections waiting (or one went away before accept)
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                self._loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": exc,
                        "socket": trsock.TransportSocket(sock),
                    }
                )
                self._loop.remove_reader(sock.fileno())
                self._retries[sock.fileno()] = self._loop.call_later(
                    ACCEPT_RETRY_DELAY, self._retry, sock, local
                )
                return
            conn = socket.socket(family, socket.SOCK_STREAM, sock.proto, fileno=fd)
            self._connection(conn, address, local, family != socket.AF_UNIX)

    def _retry(self, sock: socket.socket, local: Any) -> None:
        """Accept again after :data:`ACCEPT_RETRY_DELAY` (:meth:`close` cancels it)."""
        del self._retries[sock.fileno()]
        self._loop.add_reader(sock.fileno(), self._accept_ready, sock, local)

    def _connection(self, conn: socket.socket, address: Any, local: Any, tcp: bool) -> None:
        """Give the accepted socket ``conn`` (a TCP one if ``tcp``) a protocol and a native
        transport."""
        try:
            conn.setblocking(False)
            if tcp:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            protocol = self._factory()
            transport = NativeTransport(
                self._loop,
                conn,
                protocol,
                {"peername": address, "sockname": conn.getsockname() if local is None else local},
                self,
            )
        except Exception as exc:
            conn.close()
            self._loop.call_exception_handler(
                {
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc,
                }
            )
            return
        protocol.connection_made(transport)

    def _attach(self, transport: NativeTransport) -> None:
        """A connection starts (called by its transport)."""
        self._clients.add(transport)

    def _detach(self, transport: NativeTransport) -> None:
        """A connection is lost (called by its transport)."""
        self._clients.discard(transport)
        if not self._clients and self._listening is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():  # else a wait_closed() was cancelled
                waiter.set_result(None)

    # ------------------------------------------------------------------ asyncio.AbstractServer

    def close(self) -> None:
        """Stop listening and close the listening sockets; open connections go on."""
        listening = self._listening
        if listening is None:
            return
        self._listening = None
        for sock in listening:
            if self._serving:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        self._serving = False
        self._bound.close()
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
            self._serving_forever = None
        if not self._clients:
            self._wakeup()

    def close_clients(self) -> None:
        """Close the transport of every open connection, as
        ``asyncio.Server.close_clients()`` (Python 3.13) does: what is queued is sent
        first. The protocols see ``connection_lost()``; WebSocket connections end with
        1006, without a closing handshake."""
        for transport in list(self._clients):
            transport.close()

    def abort_clients(self) -> None:
        """Abort the transport of every open connection at once, discarding what is
        queued, as ``asyncio.Server.abort_clients()`` (Python 3.13) does."""
        for transport in list(self._clients):
            transport.abort()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """Return the event loop the server runs on."""
        return self._loop

    def is_serving(self) -> bool:
        """Return whether the server accepts connections."""
        return self._serving

    async def start_serving(self) -> None:
        """Start accepting connections (nothing if it already does)."""
        self._start()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        """Accept connections until the server is closed or the task cancelled (which closes
        the server), as :meth:`asyncio.Server.serve_forever`."""
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._listening is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its last connection is lost."""
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets; empty once the server is closed."""
        return () if self._listening is None else tuple(self._bound.sockets)


def _local_name(sock: socket.socket) -> Any:
    """The local address of every connection ``sock`` accepts, if it is known in advance:
    the listening address, unless it is a wildcard (``0.0.0.0``, ``::``), where it depends
    on the connection; ``None`` then."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX or not ipaddress.ip_address(name[0]).is_unspecified:
        return name
    return None
