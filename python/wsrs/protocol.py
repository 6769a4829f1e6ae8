"""The asyncio adapter of a WebSocket connection: :class:`WebSocketCommonProtocol`.

Theory of operation
-------------------

A connection is an :class:`asyncio.BufferedProtocol`: the transport reads into one buffer
of :data:`RECEIVE_BUFFER_SIZE` bytes per thread, shared by every connection (each read is
consumed before the next one starts), so reads take up to 1 MiB at once and allocate
nothing. Until the opening handshake is done, bytes
received are buffered for the HTTP parser (:mod:`wsrs.http11`). From then on, each chunk
received goes to the Sans-I/O :class:`~wsrs.connection.Connection` once, which feeds the Rust
core and returns the events it completed; this adapter hands messages to ``recv()``,
resolves pong waiters, writes what the connection produced (pongs, close frames) and closes
TCP when the connection says so. Each message sent is encoded into one ``bytes``, so
concurrent senders never interleave frames.

Writes are batched per event-loop iteration: the first message sent in an iteration is
written at once; the ones that follow in the same iteration are joined and written by one
callback at its end (or as soon as they reach ``write_limit``), so a burst of ``send()``
calls costs one system call, not one each. Every other write (pings, pongs, close frames,
closing TCP) flushes the batch first, so frames always leave in the order they were made.

Rules:

1. The state goes CONNECTING → OPEN → CLOSING → CLOSED and never back. CLOSING starts when
   a close frame is sent or received; CLOSED when the TCP connection is lost.
2. Every path towards the end of the connection arms a timer of ``timeout`` seconds that
   aborts the transport, so :meth:`~WebSocketCommonProtocol.close` and
   :meth:`~WebSocketCommonProtocol.wait_closed` always finish.
3. After the closing handshake, or after failing the connection, the side that should close
   TCP first (the server, RFC 6455 §7.1.1) half-closes it and keeps reading until the peer
   closes too, so unread data never turns the close into a reset.
4. Messages that arrived before the close frame are still returned by ``recv()``; once
   they are consumed, ``recv()`` raises :class:`~wsrs.exceptions.ConnectionClosed`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias, cast

from . import _core
from ._memory import keep_heap_for_large_messages, request_trim, retains_freed_memory
from .connection import Connection, Side, State
from .datastructures import Headers
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidState,
    SecurityError,
    WebSocketProtocolError,
    connection_closed,
)
from .extensions.base import Extension
from .flow import ReadGate


__all__ = ["Data", "State", "WebSocketCommonProtocol"]

logger = logging.getLogger("wsrs.protocol")

RECEIVE_BUFFER_SIZE = 1 << 20
"""Size of the buffer each thread's connections read into: one read takes up to this much."""

_thread_state = threading.local()

SPLIT_WRITE_SIZE = 64 * 1024
"""Large messages: at least this many bytes (or characters). A server writes such a binary
message that is not compressed as its header followed by the caller's ``bytes``, without a
copy; other large messages are encoded into a send buffer the writer reuses; the first one
sent or received keeps the C heap warm for the next (see :mod:`wsrs._memory`)."""

Data: TypeAlias = str | bytes
"""A message: ``str`` for text, ``bytes`` for binary."""

_Pong = _core.Pong


class WebSocketCommonProtocol(asyncio.BufferedProtocol):
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

    is_client: bool = False
    side: str = "undefined"
    compact_after: float | None = 5.0
    """Seconds of inactivity after which buffers and compression state are freed
    (``None``: never). Set it on the class or on a subclass passed as ``klass``."""

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
        self.loop = _running_loop(loop)
        """The event loop the connection runs on."""
        self.host = host
        """Host given to ``serve()`` or found in the URI given to ``connect()``."""
        self.port = port
        """Port given to ``serve()`` or found in the URI given to ``connect()``."""
        self.secure = secure
        """Whether the connection uses TLS."""
        self.timeout = timeout
        self.max_size = max_size
        self.max_queue = max_queue or 0
        self.read_limit = read_limit
        self.write_limit = write_limit
        self.legacy_recv = legacy_recv
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout

        self.connection: Connection | None = None
        """The Sans-I/O connection, from the end of the opening handshake."""
        self._handshake_state = State.CONNECTING
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
        self.extensions: list[Extension] = []
        """The negotiated extensions."""
        self.transport: asyncio.Transport | None = None
        self.messages: collections.deque[Data] = collections.deque()
        """Messages received and not read yet."""
        self.pings: dict[bytes, asyncio.Future[None]] = {}
        """Pings sent and not acknowledged yet, by payload, oldest first."""

        # Opening handshake: bytes received before the codec exists, and who waits for them.
        self._buffer = bytearray()
        self._buffer_waiter: asyncio.Future[None] | None = None
        self._eof = False
        # Receiving.
        self._recv_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # Why reading from the peer is paused, if it is: the one flow-control point.
        self._read_gate = ReadGate()
        self._close_sent = False  # close() sent a close frame: read until the peer's
        self._stream_ended = False  # no more messages: close frame, failure or lost
        self._vectored_writes = False
        # Receiving: whether the last get_buffer() returned a message's own buffer.
        self._reading_direct = False
        # Sending.
        self._paused_writing = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # Frames batched in this loop iteration (None: no batch open) and their size.
        self._batch: list[bytes] | None = None
        self._batch_size = 0
        # Closing.
        self._close_timer: asyncio.TimerHandle | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        # Idle compaction: set on every message in or out, cleared by each tick.
        self._active = True
        self._compacted = False
        self._compact_timer: asyncio.TimerHandle | None = None
        self.connection_lost_waiter: asyncio.Future[None] = self.loop.create_future()
        """Resolved when the TCP connection is closed."""

    # ------------------------------------------------------------------ attributes

    @property
    def state(self) -> State:
        """The :class:`State` of the connection."""
        if self.connection is not None:
            return self.connection.state
        return self._handshake_state

    @state.setter
    def state(self, state: State) -> None:
        # Only the opening handshake sets the state; then the connection owns it.
        assert self.connection is None, "the state belongs to the connection once open"
        self._handshake_state = state

    @property
    def close_code(self) -> int | None:
        """Close code of the connection, once it is closing or closed.

        The code of the close frame received; the code sent when this side failed the
        connection; 1005 for a close frame without a code; 1006 when the TCP connection was
        lost without a closing handshake. ``None`` while the connection is open.
        """
        if self.connection is not None:
            return self.connection.close_code
        return 1006 if self._handshake_state is State.CLOSED else None

    @property
    def close_reason(self) -> str:
        """Close reason of the connection, once it is closing or closed."""
        return "" if self.connection is None else self.connection.close_reason

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

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Store the transport and set the write buffer limits (asyncio callback)."""
        # Not an isinstance check: uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=self.write_limit)
        # Whether writelines() sends buffers as they are (uvloop, TLS, asyncio sockets on
        # Python >= 3.12 with sendmsg) rather than joining them into a copy (the default
        # WriteTransport.writelines, which asyncio's sockets use on Python 3.11).
        writelines = getattr(type(transport), "writelines", None)
        self._vectored_writes = writelines is not asyncio.WriteTransport.writelines
        logger.debug("%s - connection made", self.side)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Return the buffer the transport reads into (asyncio callback).

        Usually a buffer shared by the connections of this thread, which the Rust reader
        parses in place; in the middle of a large binary message, the rest of that message's
        own ``bytes``, so its payload is not copied in user space.
        """
        connection = self.connection
        if connection is not None:
            direct = connection.receive_buffer()
            if direct is not None:
                self._reading_direct = True
                return direct
            self._reading_direct = False
        try:
            view: memoryview = _thread_state.receive_buffer
        except AttributeError:
            view = _thread_state.receive_buffer = memoryview(bytearray(RECEIVE_BUFFER_SIZE))
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """Process the ``nbytes`` bytes just read into the buffer (asyncio callback)."""
        connection = self.connection
        if self._reading_direct and connection is not None:
            self._reading_direct = False
            self._active = True
            self._process_events(connection, connection.receive_into(nbytes))
        else:
            self.data_received(_thread_state.receive_buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """Process bytes from the network.

        The connection copies what it keeps: ``data`` may be the shared receive buffer.
        """
        connection = self.connection
        if connection is None:
            if self._handshake_state is State.CLOSING:
                return  # the opening handshake failed: discard (lingering close)
            self._buffer += data
            if len(self._buffer) > self.read_limit:
                # The handshake may be waiting on the application (process_request):
                # a peer must not pile up bytes meanwhile.
                self._pause_reading(ReadGate.HANDSHAKE)
            self._wake_buffer_waiter()
            return
        self._active = True
        self._process_events(connection, connection.receive_data(data))

    def _process_events(self, connection: Connection, events: list[_core.Event]) -> None:
        """Deliver messages and act on control frames."""
        control = False
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                self._deliver(event)  # type: ignore[arg-type]
            else:
                control = True
                if kind is _Pong:
                    self._on_pong(event)  # type: ignore[arg-type]
        if control:
            self._after_events(connection)

    def _after_events(self, connection: Connection) -> None:
        """Write what the connection produced; end the stream and close TCP if it says so."""
        output = connection.data_to_send()
        transport = self.transport
        if output and transport is not None and not transport.is_closing():
            self._flush_batch()
            transport.write(b"".join(output))
        if connection.stream_ended:
            if connection.close_rcvd is not None:
                logger.debug(
                    "%s - close frame received: %d %s",
                    self.side,
                    connection.close_rcvd.code,
                    connection.close_rcvd.reason,
                )
            # A close frame or a failure ends the stream here: this runs after control
            # frames (not EOF) and after fail_connection().
            elif connection.failure is not None:  # pragma: no branch
                logger.debug("%s - failing the connection: %s", self.side, connection.failure)
            self._end_stream()
        if connection.close_expected():
            self._close_tcp()

    def eof_received(self) -> bool:
        """Note that the peer closed its side; let asyncio close the transport."""
        logger.debug("%s - EOF received", self.side)
        self._eof = True
        self._wake_buffer_waiter()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Finish the connection: wake everything that waits on it (asyncio callback)."""
        logger.debug("%s - connection lost (%r)", self.side, exc)
        if self.connection is not None:
            self.connection.receive_eof()
        else:
            self._handshake_state = State.CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        if self._compact_timer is not None:
            self._compact_timer.cancel()
            self._compact_timer = None
        self._eof = True
        self._wake_buffer_waiter()
        self._end_stream()
        closed = self._closed_exception()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(closed)
                # Mark it retrieved: a sender that gave up on it must not cause a warning.
                waiter.exception()
        self._drain_waiters.clear()
        for ping in self.pings.values():
            if not ping.done():
                ping.set_exception(self._closed_exception())
                ping.exception()
        self.pings.clear()
        # Done already only for a protocol that never connected, which gets no callback.
        if not self.connection_lost_waiter.done():  # pragma: no branch
            self.connection_lost_waiter.set_result(None)

    def pause_writing(self) -> None:
        """Note that the write buffer is above ``write_limit`` (asyncio callback).

        Senders wait, and reading from the peer pauses: what the peer makes this side write
        on its own (pongs, the echo of a close frame) stays bounded when it never reads.
        """
        self._paused_writing = True
        self._pause_reading(ReadGate.WRITE)

    def resume_writing(self) -> None:
        """Wake the senders waiting for the write buffer to drain (asyncio callback)."""
        self._paused_writing = False
        self._resume_reading(ReadGate.WRITE)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    def _pause_reading(self, reason: int) -> None:
        """Pause reading from the peer for ``reason`` (a :class:`~wsrs.flow.ReadGate` flag)."""
        transport = self.transport
        if self._read_gate.pause(reason) and transport is not None:
            transport.pause_reading()

    def _resume_reading(self, reason: int) -> None:
        """Drop ``reason``; resume reading from the peer if it was the last one."""
        transport = self.transport
        if self._read_gate.resume(reason) and transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _read_to_the_end(self) -> None:
        """Read until the peer closes TCP, whatever paused reading.

        For when input is ignored from now on (see :mod:`wsrs.flow`): the stream ended, or
        the opening handshake failed. The peer's close frame and EOF must get through.
        """
        transport = self.transport
        if self._read_gate.open_for_good() and transport is not None and not transport.is_closing():
            transport.resume_reading()

    # ------------------------------------------------------------------ opening handshake

    def _wake_buffer_waiter(self) -> None:
        waiter = self._buffer_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _read_http(self, parse: Callable[..., Any]) -> Any:
        """Wait until ``parse`` finds a complete HTTP message in the buffer; consume it."""
        while True:
            parsed = parse(self._buffer, eof=self._eof)
            if parsed is not None:
                message, consumed = parsed
                del self._buffer[:consumed]
                return message
            if self._eof:  # pragma: no cover - the HTTP parsers raise at EOF instead
                raise EOFError("connection closed during the opening handshake")
            if len(self._buffer) > self.read_limit:
                raise SecurityError(
                    f"opening handshake larger than read_limit ({self.read_limit} bytes)"
                )
            self._buffer_waiter = self.loop.create_future()
            try:
                await self._buffer_waiter
            finally:
                self._buffer_waiter = None

    def _write_http(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def connection_open(self) -> None:
        """Switch to the WebSocket protocol once the opening handshake succeeded.

        Creates the Sans-I/O connection (and so the Rust codec) with the negotiated
        extensions, feeds it the bytes that followed the handshake, and starts keepalive.
        """
        self.connection = Connection(
            Side.CLIENT if self.is_client else Side.SERVER,
            max_size=self.max_size,
            extensions=self.extensions,
        )
        logger.debug("%s - connection open", self.side)
        # TCP may be gone already: connection_lost() ran while the handshake was finishing.
        lost = self._handshake_state is State.CLOSED
        if self.ping_interval is not None and not lost:
            self._keepalive_task = self.loop.create_task(self._keepalive())
        if self.compact_after is not None and not lost:
            self._compact_timer = self.loop.call_later(self.compact_after, self._compact_tick)
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            self.data_received(data)
        self._resume_reading(ReadGate.HANDSHAKE)
        if lost:
            self.connection.receive_eof()
            self._end_stream()
        elif self._eof and self.state is not State.CLOSED:
            self._end_stream()

    # ------------------------------------------------------------------ receiving

    def _deliver(self, message: Data) -> None:
        """Hand a message to a waiting ``recv()`` or queue it."""
        if len(message) >= SPLIT_WRITE_SIZE:
            keep_heap_for_large_messages()
        if self._close_sent and self.max_queue and len(self.messages) >= self.max_queue:
            # Reading goes on after our close frame so that the peer's gets through; what
            # the full queue cannot hold is dropped, so memory stays bounded meanwhile.
            logger.debug("%s - closing: message dropped, the queue is full", self.side)
            return
        self.messages.append(message)
        waiters = self._recv_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
        if self.max_queue and len(self.messages) >= self.max_queue and not self._close_sent:
            self._pause_reading(ReadGate.QUEUE)

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
        while not self.messages:
            if self._stream_ended:
                await asyncio.shield(self.connection_lost_waiter)
                if self.legacy_recv:
                    return None  # type: ignore[return-value]
                raise self._closed_exception()
            if self.state is State.CONNECTING:
                raise InvalidState("the opening handshake isn't finished")
            waiter = self.loop.create_future()
            self._recv_waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and self._recv_waiters:
                    # The wakeup came with the cancellation: pass it on.
                    self._wake_one_receiver()
                raise
        message = self.messages.popleft()
        if self._read_gate.paused and len(self.messages) < max(self.max_queue // 2, 1):
            self._resume_reading(ReadGate.QUEUE)
        return message

    def _wake_one_receiver(self) -> None:
        while self._recv_waiters:
            waiter = self._recv_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _end_stream(self) -> None:
        """No message will arrive any more: wake every ``recv()``."""
        self._stream_ended = True
        for waiter in self._recv_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._recv_waiters.clear()
        self._read_to_the_end()

    def __aiter__(self) -> AsyncIterator[Data]:
        """Iterate over incoming messages until the connection closes.

        The iteration ends without error on a normal closure (1000 or 1001) and raises
        :class:`~wsrs.exceptions.ConnectionClosedError` otherwise.
        """
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Data]:
        while True:
            try:
                message = await self.recv()
            except ConnectionClosedOK:
                return
            if message is None:  # legacy_recv
                return
            yield message

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
        if connection is None or connection.state is not State.OPEN:
            await self.ensure_open()
            connection = self.connection  # pragma: no cover - ensure_open() raised: not OPEN
        assert connection is not None and self.transport is not None
        kind = type(data)
        if (kind is bytes or kind is str) and len(data) >= SPLIT_WRITE_SIZE:
            self._send_large(connection, cast(str | bytes, data))
        else:
            try:
                frame = connection.send_message(data)
            except TypeError:
                raise TypeError(
                    f"data must be str or bytes-like, not {type(data).__name__}"
                ) from None
            self._write_frame(frame)
        self._active = True
        if self._paused_writing:
            await self._drain()

    def _send_large(self, connection: Connection, data: str | bytes) -> None:
        """Write a large message without allocating memory for it where possible."""
        assert self.transport is not None
        keep_heap_for_large_messages()
        header = connection.binary_header(len(data)) if type(data) is bytes else None
        if header is not None:
            # Server, binary, not compressed: header and payload written apart, so the
            # payload is not copied into a frame.
            self._flush_batch()
            if self._vectored_writes:
                # One system call (writev / sendmsg): the header does not travel alone.
                self.transport.writelines((header, cast(bytes, data)))
            else:
                self.transport.write(header)
                self.transport.write(cast(bytes, data))  # a header comes only for bytes
            return
        # Masked or text: encoded into the writer's reusable buffer, which the transport
        # sends at once or copies (else the writer takes a new one for the next message).
        frame = connection.send_message_buffer(data)
        if frame is None:  # compressed: a new frame
            self._write_frame(connection.send_message(data))
        else:
            self._flush_batch()
            self.transport.write(frame)

    def _write_frame(self, frame: bytes) -> None:
        """Write ``frame`` now if it is the first of this loop iteration, else batch it."""
        assert self.transport is not None
        batch = self._batch
        if batch is None:
            # First message of this loop iteration: out at once; open a batch for the rest.
            self.transport.write(frame)
            self._batch = []
            self._batch_size = 0
            self.loop.call_soon(self._flush_batch)
        else:
            batch.append(frame)
            self._batch_size += len(frame)
            if self._batch_size >= self.write_limit:
                # Let flow control see it: the transport may pause writing now.
                self._write_batch()

    def _write_batch(self) -> None:
        """Write the frames batched so far; keep the batch open."""
        batch = self._batch
        if batch:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.write(batch[0] if len(batch) == 1 else b"".join(batch))
            batch.clear()
            self._batch_size = 0

    def _flush_batch(self) -> None:
        """Write the frames batched in this loop iteration and close the batch."""
        self._write_batch()
        self._batch = None

    async def _drain(self) -> None:
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

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
        assert self.connection is not None and self.transport is not None
        payload = self._new_ping_payload() if data is None else _encode(data)
        frame = self.connection.send_ping(payload)
        self._flush_batch()
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.pings[payload] = waiter
        self.transport.write(frame)
        if self._paused_writing:
            await self._drain()
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
        assert self.connection is not None and self.transport is not None
        frame = self.connection.send_pong(_encode(data))
        self._flush_batch()
        self.transport.write(frame)
        if self._paused_writing:
            await self._drain()

    def _new_ping_payload(self) -> bytes:
        """Return four random bytes that no ping waiting for its pong uses."""
        assert self.connection is not None
        payload = secrets.token_bytes(4)
        while self.connection.has_ping(payload):
            payload = secrets.token_bytes(4)
        return payload

    def _forget_ping(self, payload: bytes) -> None:
        """Stop waiting for the pong of a ping; its waiter, if still pending, is cancelled."""
        assert self.connection is not None
        self.connection.forget_ping(payload)
        waiter = self.pings.pop(payload, None)
        if waiter is not None:
            waiter.cancel()

    # ------------------------------------------------------------------ control frames

    def _on_pong(self, pong: _core.Pong) -> None:
        assert self.connection is not None
        for payload in self.connection.acknowledge(pong.data):
            waiter = self.pings.pop(payload, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ closing

    def _arm_timer(self, delay: float, callback: Callable[[], None]) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._close_timer = self.loop.call_later(delay, callback)

    def _abort(self) -> None:
        # Only called once connected: connection_made() set the transport for good.
        if self.transport is not None:  # pragma: no branch
            self.transport.abort()

    def _close_tcp(self) -> None:
        """Close TCP once the closing handshake is over or the connection failed.

        RFC 6455 §7.1.1: "the server MUST close the underlying TCP connection immediately;
        the client SHOULD wait for the server to close the connection but MAY close the
        connection at any time after sending and receiving a Close message".
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._flush_batch()
        if self.is_client:
            # Wait for the server's FIN; close (then abort) if it does not come in time.
            def close_then_abort() -> None:
                transport.close()
                self._arm_timer(self.timeout, self._abort)

            self._arm_timer(self.timeout, close_then_abort)
        elif transport.can_write_eof():
            # Half-close so the client sees EOF; keep reading (and discarding) until it
            # closes too, so unread bytes never turn our close into a reset.
            transport.write_eof()
            self._arm_timer(self.timeout, self._abort)
        else:
            transport.close()
            self._arm_timer(self.timeout, self._abort)

    def fail_connection(
        self, code: int = 1011, reason: str = "", exc: Exception | None = None
    ) -> None:
        """Fail the WebSocket connection (RFC 6455 §7.1.7).

        Sends a close frame with ``code`` if the connection is open, then closes TCP.
        :attr:`close_code` becomes ``code`` unless a close frame was received.

        Args:
            code: Close code: 1002 protocol error, 1007 invalid data, 1009 message too big,
                1011 unexpected condition, 1006 to close without a close frame.
            reason: Close reason.
            exc: The exception that caused the failure, chained to the
                :class:`~wsrs.exceptions.ConnectionClosed` that :meth:`recv` raises.
        """
        connection = self.connection
        if connection is None:
            if self.transport is None:
                # Never connected: there is no connection_lost() to wait for.
                self._handshake_state = State.CLOSED
                if not self.connection_lost_waiter.done():
                    self.connection_lost_waiter.set_result(None)
                return
            self._handshake_state = State.CLOSING
            self._abort()
            return
        connection.fail(code, reason, exc)
        self._after_events(connection)
        if code == 1006:
            self._abort()

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
                frame = connection.send_close(code, reason)
            except ValueError as exc:
                raise WebSocketProtocolError(str(exc)) from None
            assert self.transport is not None
            if not self.transport.is_closing():
                self._flush_batch()
                self.transport.write(frame)
                self._close_sent = True
                # If max_queue paused reading, resume it, or the peer's close frame would
                # never be read and closing would wait out its timeout.
                self._resume_reading(ReadGate.QUEUE)
            # Wait for the peer's close frame; give up after the timeout.
            self._arm_timer(self.timeout, self._abort)
        elif self.state is State.CONNECTING:
            self.fail_connection(1006)
        await asyncio.shield(self.connection_lost_waiter)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await asyncio.shield(self.connection_lost_waiter)

    def _closed_exception(self) -> ConnectionClosed:
        exc = connection_closed(self.close_code or 1006, self.close_reason)
        if self.connection is not None:
            exc.__cause__ = self.connection.failure
        return exc

    # ------------------------------------------------------------------ keepalive

    def _compact_tick(self) -> None:
        """Every :attr:`compact_after` seconds: compact a connection idle since the last tick."""
        connection = self.connection
        assert connection is not None and self.compact_after is not None
        if self._active:
            self._active = False
            self._compacted = False
        elif not self._compacted:
            freed = connection.compact()
            self._compacted = True
            if freed:
                logger.debug(
                    "%s - idle: %d bytes of buffers and compression state freed", self.side, freed
                )
            if freed or retains_freed_memory():
                # Give the freed pages back to the OS (glibc keeps them otherwise).
                request_trim(self.loop)
        self._compact_timer = self.loop.call_later(self.compact_after, self._compact_tick)

    async def _keepalive(self) -> None:
        assert self.ping_interval is not None
        previous: bytes | None = None
        try:
            while True:
                await asyncio.sleep(self.ping_interval)
                if self.state is not State.OPEN:
                    return
                if previous is not None:
                    # Without ping_timeout, a peer that never answers must not make the
                    # unanswered pings pile up: keepalive keeps one waiting at most.
                    self._forget_ping(previous)
                previous = self._new_ping_payload()
                pong_waiter = await self.ping(previous)
                if self.ping_timeout is None:
                    continue
                try:
                    async with asyncio.timeout(self.ping_timeout):
                        await pong_waiter
                except TimeoutError:
                    logger.debug("%s - keepalive ping timed out", self.side)
                    self.fail_connection(1011, "keepalive ping timeout")
                    return
        # connection_lost() cancels this task before it fails the futures the task awaits.
        except ConnectionClosed:  # pragma: no cover
            return


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
