"""Connecting straight onto the native transport.

:func:`create_connection` is :meth:`loop.create_connection
<asyncio.loop.create_connection>` (or :meth:`~asyncio.loop.create_unix_connection`) for the
clients of both front ends. When the protocol class chooses the native transport
(:func:`~.transport.use_native`), there is no TLS, and the other arguments are among those
it handles (``host``, ``port``, ``sock``, ``local_addr``, ``family``, ``proto``, ``flags``;
``path`` or ``sock`` for Unix sockets), it resolves the host, connects the socket with
:meth:`loop.sock_connect <asyncio.loop.sock_connect>` (trying each address in turn, as
asyncio does without happy eyeballs) and gives the protocol a
:class:`~.transport.NativeTransport` directly: no asyncio transport is made and taken over.
Anything else goes to the loop's own method, and the connection may then be taken over.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from ..uri import ip_version
from .transport import NativeTransport, TransportKind, use_native


__all__ = ["create_connection"]

# The arguments handled here; any other one goes to the loop's own method.
_TCP_OPTIONS = {"host", "port", "sock", "local_addr", "family", "proto", "flags", "ssl"}
_UNIX_OPTIONS = {"path", "sock", "ssl"}


async def create_connection(
    factory: Callable[[], asyncio.BufferedProtocol],
    kind: TransportKind | None,
    *,
    unix: bool = False,
    **kwargs: Any,
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """Like :meth:`loop.create_connection <asyncio.loop.create_connection>` (or
    :meth:`~asyncio.loop.create_unix_connection` if ``unix``), with keyword arguments, on
    the running loop; onto the native transport when ``kind`` (the ``transport_kind`` of
    the protocol class) chooses it and the arguments allow it."""
    loop = asyncio.get_running_loop()
    handled = _UNIX_OPTIONS if unix else _TCP_OPTIONS
    if not use_native(kind) or kwargs.get("ssl") is not None or not kwargs.keys() <= handled:
        if unix:
            return await loop.create_unix_connection(factory, **kwargs)
        return await loop.create_connection(factory, **kwargs)
    kwargs.pop("ssl", None)
    sock = kwargs.pop("sock", None)
    peer = None  # the address connected to, when known without asking
    if sock is None and unix:
        sock = await _unix_socket(loop, **kwargs)
    elif sock is None:
        sock, peer = await _tcp_socket(loop, **kwargs)
    elif kwargs.get("host") is not None or kwargs.get("port") is not None or kwargs.get("path"):
        raise ValueError("host/port and sock can not be specified at the same time")
    else:
        sock.setblocking(False)
    try:
        # (A socket connected here to a host is TCP: no enum made from its family.)
        if peer is not None or sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        protocol = factory()
        extra = {
            "peername": sock.getpeername() if peer is None else peer,
            "sockname": sock.getsockname(),
        }
        transport = NativeTransport(loop, sock, protocol, extra)
    except BaseException:
        sock.close()
        raise
    protocol.connection_made(transport)
    return transport, protocol


async def _unix_socket(loop: asyncio.AbstractEventLoop, path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    return await _connected(loop, sock, path, None)


async def _tcp_socket(
    loop: asyncio.AbstractEventLoop,
    host: str | None = None,
    port: int | str | None = None,
    local_addr: tuple[str, int] | None = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> tuple[socket.socket, Any]:
    """A socket connected to ``host`` and ``port`` (each address in turn, as asyncio), and
    the address it is connected to."""
    infos = _numeric(host, port, family, proto) or await loop.getaddrinfo(
        host, port, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
    )
    local: list[tuple[Any, ...]] = []
    if local_addr is not None:
        local = await loop.getaddrinfo(
            *local_addr, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
        )
    errors: list[OSError] = []
    for af, kind, protocol, _, address in infos:
        try:
            bind = None
            if local_addr is not None:
                matching = [info[4] for info in local if info[0] == af]
                if not matching:
                    raise OSError(f"no matching local address with family={af!r} found")
                bind = matching[0]
            sock = socket.socket(af, kind, protocol)
            return await _connected(loop, sock, address, bind), address
        except OSError as exc:
            errors.append(exc)
    if len({str(exc) for exc in errors}) == 1:
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in errors)}")


def _numeric(host: str | None, port: int | str | None, family: int, proto: int) -> list[Any]:
    """What ``getaddrinfo`` answers for an IP address and a port number, without asking it
    (from a thread, as the loop does), as asyncio; ``[]`` for anything else."""
    version = ip_version(host or "")
    if version is None:
        return []
    af = socket.AF_INET if version == 4 else socket.AF_INET6
    if not isinstance(port, int) or family not in (0, af):
        return []
    sockaddr = (host, port) if af == socket.AF_INET else (host, port, 0, 0)
    return [(af, socket.SOCK_STREAM, proto or socket.IPPROTO_TCP, "", sockaddr)]


async def _connected(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, address: Any, bind: Any
) -> socket.socket:
    """Connect the new socket ``sock`` to ``address`` (from ``bind`` if not ``None``);
    close it if that fails."""
    try:
        sock.setblocking(False)
        if bind is not None:
            sock.bind(bind)
        await _connect(loop, sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, address: Any) -> None:
    """Connect the non-blocking socket ``sock`` to the resolved ``address``, as
    :meth:`loop.sock_connect <asyncio.loop.sock_connect>` does with a resolved address,
    without resolving it again (uvloop asks ``getaddrinfo`` each time) and without the
    enums its checks make of the socket's family and type."""
    try:
        sock.connect(address)
        return
    except (BlockingIOError, InterruptedError):
        pass  # in progress: the socket becomes writable once it is done
    fd = sock.fileno()
    done = loop.create_future()
    loop.add_writer(fd, _writable, done)
    try:
        await done
    finally:
        loop.remove_writer(fd)
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, f"Connect call failed {address}")


def _writable(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
