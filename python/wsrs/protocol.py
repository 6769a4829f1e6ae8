"""The 4.0 API of a WebSocket connection: :class:`WebSocketCommonProtocol`.

The public methods and attributes of websockets 4.0 (``recv``, ``send``, ``ping``,
``pong``, ``close``, async iteration, ``state``, ``close_code``...) over
:class:`~wsrs.asyncio.base.BaseProtocol`, which owns the transport, the Sans-I/O connection,
flow control and closing TCP. Each message sent is encoded into one ``bytes``, so concurrent
senders never interleave frames.

Messages that arrived before the close frame are still returned by ``recv()``; once they
are consumed, ``recv()`` raises :class:`~wsrs.exceptions.ConnectionClosed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from ._memory import keep_heap_for_large_messages
from .asyncio.base import RECEIVE_BUFFER_SIZE, SPLIT_WRITE_SIZE, BaseProtocol
from .asyncio.messages import Data
from .connection import State
from .datastructures import Headers
from .exceptions import ConnectionClosedOK, InvalidState, WebSocketProtocolError


__all__ = ["RECEIVE_BUFFER_SIZE", "SPLIT_WRITE_SIZE", "Data", "State", "WebSocketCommonProtocol"]


class WebSocketCommonProtocol(BaseProtocol):
    """A WebSocket connection, the part common to servers and clients.

    Use :func:`~wsrs.serve` or :func:`~wsrs.connect` to get one; they create
    :class:`~wsrs.WebSocketServerProtocol` and :class:`~wsrs.WebSocketClientProtocol`
    instances.

    Args:
        host: Stored as :attr:`host` for handlers that need it.
        port: Stored as :attr:`port`.
        secure: Stored as :attr:`secure`: whether the connection uses TLS.
        timeout: Seconds allowed for the opening handshake, for the closing handshake, and
            for closing TCP afterwards.
        max_size: Largest message accepted, in bytes, after decompression; a larger one
            fails the connection with close code 1009. ``None`` disables the limit.
        max_queue: Number of received messages buffered before reading from the network
            pauses. ``None`` or 0 disables the limit.
        read_limit: Largest opening-handshake request or response accepted, in bytes.
        write_limit: High-water mark of the write buffer: :meth:`send` waits while more
            than this many bytes are waiting to be sent.
        loop: Accepted for compatibility; it must be the running event loop.
        legacy_recv: Make :meth:`recv` return ``None`` instead of raising
            :class:`~wsrs.exceptions.ConnectionClosed` once the connection is closed.
        ping_interval: Seconds between keepalive pings; ``None`` disables keepalive.
        ping_timeout: Seconds to wait for the pong of a keepalive ping before failing the
            connection with 1011; ``None`` waits forever.

    A connection that neither receives nor sends anything for :attr:`compact_after` to
    twice that many seconds frees its spare buffers and compression state (see
    :meth:`Connection.compact <wsrs.connection.Connection.compact>`): an idle connection
    with permessage-deflate then holds its last window of data, not zlib's tables.
    """

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        secure: bool | None = None,
        timeout: float = 10,
        max_size: int | None = 2**20,
        max_queue: int | None = 2**5,
        read_limit: int = 2**16,
        write_limit: int = 2**16,
        loop: asyncio.AbstractEventLoop | None = None,
        legacy_recv: bool = False,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
    ) -> None:
        super().__init__(
            loop=_running_loop(loop),
            timeout=timeout,
            max_size=max_size,
            max_queue=max_queue or 0,
            read_limit=read_limit,
            write_limit=write_limit,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        self.host = host
        """Host given to ``serve()`` or found in the URI given to ``connect()``."""
        self.port = port
        """Port given to ``serve()`` or found in the URI given to ``connect()``."""
        self.secure = secure
        """Whether the connection uses TLS."""
        self.legacy_recv = legacy_recv
        self.path: str | None = None
        """Request target of the opening handshake, e.g. ``"/chat?room=1"``."""
        self.request_headers: Headers | None = None
        """Headers of the opening handshake's request."""
        self.response_headers: Headers | None = None
        """Headers of the opening handshake's response."""
        self.raw_request_headers: list[tuple[str, str]] | None = None
        """Request headers as ``(name, value)`` pairs, in the order received or sent."""
        self.raw_response_headers: list[tuple[str, str]] | None = None
        """Response headers as ``(name, value)`` pairs, in the order received or sent."""
        self.subprotocol: str | None = None
        """The negotiated subprotocol, if any."""

    # ------------------------------------------------------------------ attributes

    @property
    def local_address(self) -> Any:
        """Local address of the connection: ``(host, port)`` for IPv4, a 4-tuple for IPv6,
        a path for Unix sockets, or ``None`` before the connection is made."""
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """Remote address of the connection, in the same forms as :attr:`local_address`."""
        return None if self.transport is None else self.transport.get_extra_info("peername")

    @property
    def open(self) -> bool:
        """Whether the connection is usable: :attr:`state` is OPEN.

        When it is ``False``, :meth:`send`, :meth:`ping` and :meth:`pong` raise
        :class:`~wsrs.exceptions.ConnectionClosed`.
        """
        return self.state is State.OPEN

    @property
    def closed(self) -> bool:
        """Whether the connection is closed: :attr:`state` is CLOSED."""
        return self.state is State.CLOSED

    @property
    def pings(self) -> dict[bytes, asyncio.Future[None]]:
        """Pings sent and not acknowledged yet: payload -> future of the pong, oldest first."""
        if self.connection is None:
            return {}
        return dict(self.connection.pings)

    # ------------------------------------------------------------------ asyncio.Protocol

    # ------------------------------------------------------------------ opening handshake

    # ------------------------------------------------------------------ receiving

    async def recv(self) -> Data:
        """Receive the next message.

        Returns:
            A ``str`` for a text message, ``bytes`` for a binary message.

        Raises:
            ConnectionClosed: Once the connection is closed and every message received
                before has been returned (with ``legacy_recv=True``, ``None`` is returned
                instead). ``ConnectionClosedOK`` after a normal closure (1000 or 1001),
                ``ConnectionClosedError`` otherwise.
            InvalidState: Before the opening handshake is done.

        Cancelling ``recv()`` is safe: the message it would have returned stays in the
        queue for the next call. Several coroutines may call it at once; each message goes to
        exactly one of them.
        """
        queue = self._queue
        if queue.messages:
            # A message is already queued: taken without a coroutine for get(). Never a
            # fragment: this front end's reader assembles fragmented messages.
            return queue.take()  # type: ignore[return-value]
        if self.state is State.CONNECTING:
            raise InvalidState("the opening handshake isn't finished")
        # Awaited here rather than through queue.get(): one coroutine less.
        waiter = queue.wait()
        try:
            message = await waiter
        except asyncio.CancelledError:
            queue.give_back(waiter)
            raise
        if message is None:
            await asyncio.shield(self.connection_lost_waiter)
            if self.legacy_recv:
                return None  # type: ignore[return-value]
            raise self._closed_exception()
        # Never a fragment: this front end's reader assembles fragmented messages.
        return message  # type: ignore[return-value]

    def __aiter__(self) -> AsyncIterator[Data]:
        """Iterate over incoming messages until the connection closes.

        The iteration ends without error on a normal closure (1000 or 1001) and raises
        :class:`~wsrs.exceptions.ConnectionClosedError` otherwise.
        """
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Data]:
        # recv() inline, without a coroutine per message; recv() itself only at the end.
        queue = self._queue
        messages = queue.messages
        while True:
            if messages:
                yield queue.take()  # type: ignore[misc]
                continue
            if self.state is not State.CONNECTING and not queue.ended:
                waiter = queue.wait()
                try:
                    message = await waiter
                except asyncio.CancelledError:
                    queue.give_back(waiter)
                    raise
                if message is not None:
                    yield message  # type: ignore[misc]
                    continue
            # Not open yet, or the end: recv() raises, or returns None (legacy_recv).
            try:
                await self.recv()
            except ConnectionClosedOK:
                pass
            return

    # ------------------------------------------------------------------ sending

    async def ensure_open(self) -> None:
        """Raise unless the connection is OPEN.

        Raises:
            ConnectionClosed: When the connection is closing or closed; if it is closing,
                after it is closed, so the close code is final.
            InvalidState: Before the opening handshake is done.
        """
        if self.state is State.OPEN:
            return
        if self.state is State.CONNECTING:
            raise InvalidState("the opening handshake isn't finished")
        await asyncio.shield(self.connection_lost_waiter)
        raise self._closed_exception()

    async def send(self, data: Data | bytearray | memoryview) -> None:
        """Send a message: ``str`` as text, ``bytes``-like as binary.

        Waits while the write buffer is above ``write_limit``, so a peer that reads slowly
        cannot make memory grow.

        Raises:
            ConnectionClosed: When the connection is closing or closed.
            TypeError: When ``data`` is neither ``str`` nor bytes-like; the connection
                stays usable.
        """
        connection = self.connection
        writer = self._writer
        if connection is None or writer is None:
            await self.ensure_open()
            return  # pragma: no cover - ensure_open() raised: not OPEN
        kind = type(data)
        try:
            if (kind is bytes or kind is str) and len(data) >= SPLIT_WRITE_SIZE:
                keep_heap_for_large_messages()
                writer.write_large(connection, cast(str | bytes, data))
            else:
                writer.send(connection.send_message, data)
        except InvalidState:
            await self.ensure_open()
        except TypeError:
            raise TypeError(f"data must be str or bytes-like, not {type(data).__name__}") from None
        self._active = True
        if self._paused_writing:
            await self._drain()

    async def ping(self, data: str | bytes | None = None) -> asyncio.Future[None]:
        """Send a ping.

        Args:
            data: Payload of the ping: ``str`` (sent as UTF-8) or ``bytes``, at most 125
                bytes. By default, four random bytes.

        Returns:
            A future that completes when the matching pong arrives. A pong acknowledges
            every earlier ping still waiting too. If the connection closes first, awaiting
            the future raises :class:`~wsrs.exceptions.ConnectionClosed`.

        Raises:
            ConnectionClosed: When the connection is closing or closed.
            ValueError: When a ping with the same payload is waiting for its pong, or the
                payload is over 125 bytes.
            TypeError: When ``data`` is neither ``str`` nor bytes-like.
        """
        if self.state is not State.OPEN:
            await self.ensure_open()
        _, waiter = await self._send_ping(None if data is None else _encode(data))
        return waiter

    async def pong(self, data: str | bytes = b"") -> None:
        """Send a pong; an unsolicited pong may serve as a unidirectional heartbeat.

        Raises:
            ConnectionClosed: When the connection is closing or closed.
            ValueError: When the payload is over 125 bytes.
            TypeError: When ``data`` is neither ``str`` nor bytes-like.
        """
        if self.state is not State.OPEN:
            await self.ensure_open()
        assert self.connection is not None and self._writer is not None
        self._writer.write_now(self.connection.send_pong(_encode(data)))
        if self._paused_writing:
            await self._drain()

    # ------------------------------------------------------------------ closing

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake and close TCP.

        Sends a close frame, waits for the peer's, then waits for TCP to close. Every step
        is bounded by ``timeout``. Calling it again, or on a closed connection, does
        nothing but wait until the connection is closed.

        Args:
            code: Close code: 1000-1003, 1007-1014 or 3000-4999.
            reason: Close reason, at most 123 bytes of UTF-8.

        Raises:
            WebSocketProtocolError: When ``code`` may not be sent or ``reason`` is too long.
        """
        connection = self.connection
        if connection is not None and connection.state is State.OPEN:
            try:
                self._start_closing(connection, code, reason)
            except ValueError as exc:
                raise WebSocketProtocolError(str(exc)) from None
        elif self.state is State.CONNECTING:
            self.fail_connection(1006)
        await asyncio.shield(self.connection_lost_waiter)


def _encode(data: str | bytes | bytearray | memoryview) -> bytes:
    """Return the payload of a ping or pong: ``str`` as UTF-8, bytes-like as is."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"data must be str or bytes-like, not {type(data).__name__}")


def _running_loop(loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    """Return the running loop, checking that ``loop``, if given, is that loop."""
    running = asyncio.get_running_loop()
    if loop is not None and loop is not running:
        raise ValueError("loop must be the running event loop (or None)")
    return running
