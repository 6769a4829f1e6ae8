"""The asyncio plumbing every asyncio front end of wsrs shares: :class:`BaseProtocol`.

Theory of operation
-------------------

A connection is an :class:`asyncio.BufferedProtocol`: the transport reads into one buffer
of :data:`RECEIVE_BUFFER_SIZE` bytes per thread, shared by every connection (each read is
consumed before the next one starts), so reads take up to 1 MiB at once and allocate
nothing. Until the opening handshake is done, bytes received are buffered for the HTTP
parser (:mod:`wsrs.http11`). From then on, each chunk received goes to the Sans-I/O
:class:`~wsrs.connection.Connection` once, which feeds the Rust core and returns the events
it completed; this class queues messages (:class:`~wsrs.asyncio.messages.MessageQueue`),
resolves pong waiters, writes what the connection produced (pongs, close frames) through the
:class:`~wsrs.asyncio.writer.FrameWriter` and closes TCP when the connection says so.

Rules:

1. The state goes CONNECTING → OPEN → CLOSING → CLOSED and never back. CLOSING starts when
   a close frame is sent or received; CLOSED when the TCP connection is lost.
2. Every path towards the end of the connection arms a timer of ``timeout`` seconds that
   aborts the transport, so closing and :meth:`BaseProtocol.wait_closed` always finish.
3. After the closing handshake, or after failing the connection, the side that closes TCP
   first (:attr:`Connection.closes_tcp_first <wsrs.connection.Connection.closes_tcp_first>`)
   half-closes it and keeps reading until the peer closes too, so unread data never turns
   the close into a reset.
4. Reading from the peer pauses for the reasons of :class:`wsrs.flow.ReadGate` (queue full,
   write buffer full, handshake bytes over ``read_limit``) and resumes for good once no
   message can arrive any more.

A front end subclasses it with its public API (:class:`wsrs.WebSocketCommonProtocol` for
the 4.0 API) and calls :meth:`BaseProtocol.open_connection` when its opening handshake
succeeded.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from .. import _core
from .._memory import keep_heap_for_large_messages
from ..connection import Connection, Side, State
from ..exceptions import ConnectionClosed, connection_closed
from ..extensions.base import Extension
from ..flow import ReadGate
from .handshake import HandshakeBuffer
from .keepalive import IdleCompactor, Keepalive
from .messages import MessageQueue
from .transport import TransportKind, take_over, use_native
from .writer import FrameWriter


__all__ = ["RECEIVE_BUFFER_SIZE", "SPLIT_WRITE_SIZE", "BaseProtocol"]

logger = logging.getLogger("wsrs.protocol")

RECEIVE_BUFFER_SIZE = 1 << 20
"""Size of the buffer each thread's connections read into: one read takes up to this much."""

_thread_state = threading.local()

SPLIT_WRITE_SIZE = _core.LARGE_MESSAGE_SIZE
"""Large messages: at least this many bytes (or characters), 64 KiB, the threshold the Rust
core receives binary messages in place from (``src/config.rs`` has the measurements). A
server writes such a binary message that is not compressed as its header followed by the
caller's ``bytes``, without a copy; other large messages are encoded into a send buffer the
writer reuses; the first one sent or received keeps the C heap warm for the next (see
:mod:`wsrs._memory`)."""

_Pong = _core.Pong
_Fragment = _core.Fragment


class BaseProtocol(asyncio.BufferedProtocol):
    """The transport side of a WebSocket connection, common to every asyncio front end.

    Args:
        loop: The running event loop.
        timeout: Seconds allowed for the closing handshake and for closing TCP afterwards
            (and, in the 4.0 API, for the opening handshake); ``None`` waits forever.
        max_size: Largest message accepted, in bytes, after decompression; ``None``
            disables the limit.
        max_fragment_size: Largest payload of a data frame, in bytes, compressed and after
            decompression; ``None`` (the default) leaves only ``max_size``.
        max_queue: Received messages buffered before reading pauses; 0 disables the limit.
        max_queue_low: Messages left when reading resumes; half of ``max_queue`` by default.
        read_limit: Largest opening-handshake request or response accepted, in bytes.
        write_limit: High-water mark of the write buffer.
        write_limit_low: Low-water mark of the write buffer; asyncio's default (a quarter of
            the high-water mark) by default.
        ping_interval: Seconds between keepalive pings; ``None`` disables keepalive.
        ping_timeout: Seconds to wait for a keepalive pong; ``None`` waits forever.
    """

    is_client: bool = False
    side: str = "undefined"
    compact_after: float | None = 5.0
    """Seconds of inactivity after which buffers and compression state are freed
    (``None``: never). Set it on the class or on a subclass."""
    half_close: bool = True
    """How the side that closes TCP first closes it once the closing handshake is over or
    the connection failed. ``True``: half-close, read until the peer closes (rule 3).
    ``False`` (the uvicorn front end: uvicorn ends its connections with
    ``transport.close()``): close the transport. Both abort it if it is still open
    ``timeout`` seconds later."""
    transport_kind: TransportKind | None = None
    """Who does the socket I/O of a plain TCP or Unix connection: ``"native"``, wsrs' own
    transport (:mod:`wsrs.asyncio.transport`, reads and writes in Rust), or ``"asyncio"``,
    the event loop's transport. ``None`` (the default) leaves it to the ``WSRS_TRANSPORT``
    environment variable, and to asyncio's transport when that is not set;
    ``WSRS_TRANSPORT=asyncio`` forces asyncio's transport whatever this says. TLS always
    uses asyncio's. Set it on the class or on a subclass."""
    stream_fragments: bool = False
    """Whether a fragmented message is queued frame by frame (:class:`~wsrs._core.Fragment`
    objects, each counting against ``max_queue``) for an API that streams it; by default the
    Rust core assembles it and it is queued whole."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        max_size: int | None,
        max_queue: int,
        read_limit: int,
        write_limit: int,
        ping_interval: float | None,
        ping_timeout: float | None,
        max_queue_low: int | None = None,
        write_limit_low: int | None = None,
        max_fragment_size: int | None = None,
    ) -> None:
        self.loop = loop
        """The event loop the connection runs on."""
        self.timeout = timeout
        self.max_size = max_size
        self.max_fragment_size = max_fragment_size
        self.max_queue = max_queue
        self.read_limit = read_limit
        self.write_limit = write_limit
        self.write_limit_low = write_limit_low
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.connection: Connection | None = None
        """The Sans-I/O connection, from the end of the opening handshake."""
        self._handshake_state = State.CONNECTING
        self.extensions: list[Extension] = []
        """The negotiated extensions."""
        self.transport: asyncio.Transport | None = None
        # Why reading from the peer is paused, if it is: the one flow-control point.
        self._read_gate = ReadGate()
        self._queue = MessageQueue(
            loop,
            max_queue,
            functools.partial(self._pause_reading, ReadGate.QUEUE),
            functools.partial(self._resume_reading, ReadGate.QUEUE),
            max_queue_low,
        )
        self.messages = self._queue.messages
        """Messages received and not read yet."""
        self._writer: FrameWriter | None = None  # from connection_made()
        # Opening handshake: bytes received before the codec exists.
        self._handshake = HandshakeBuffer(loop, read_limit)
        # Receiving: whether the last get_buffer() returned a message's own buffer.
        self._reading_direct = False
        # Sending.
        self._paused_writing = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # Closing.
        self._close_timer: asyncio.TimerHandle | None = None
        self._keepalive: Keepalive | None = None
        # Idle compaction: set on every message in or out, cleared by each check.
        self._active = True
        self._compactor: IdleCompactor | None = None
        self.connection_lost_waiter: asyncio.Future[None] = loop.create_future()
        """Resolved when the TCP connection is closed."""
        self.latency: float = 0.0
        """Round-trip time of the last ping answered, keepalive pings included, in seconds;
        0 before the first."""

    @property
    def state(self) -> State:
        """The :class:`State` of the connection."""
        if self.connection is not None:
            return self.connection.state
        return self._handshake_state

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

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Store the transport and set the write buffer limits (asyncio callback).

        A plain TCP or Unix connection moves to wsrs' own transport here if
        :attr:`transport_kind` (or the ``WSRS_TRANSPORT`` environment variable) says so.
        """
        # Not an isinstance check: uvloop's transports are not asyncio.Transport subclasses.
        writable = cast(asyncio.Transport, transport)
        if use_native(self.transport_kind):
            writable = take_over(self.loop, writable, self) or writable
        writable.set_write_buffer_limits(high=self.write_limit, low=self.write_limit_low)
        self._attach(writable)

    def _attach(self, transport: asyncio.Transport) -> None:
        """Write to ``transport`` from now on, leaving its settings as they are."""
        self.transport = transport
        self._writer = FrameWriter(self.loop, transport, self.write_limit)
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

    def receive_from(self, sock: _core.Socket) -> bool | None:
        """Read once from ``sock`` and process what came (native transport callback).

        Returns ``False`` at the end of the stream, ``True`` otherwise, ``None`` before the
        connection is open: the transport then reads into :meth:`get_buffer`. Once the
        connection is open, the socket is told where to deliver
        (``wsrs._core.Socket.deliver_to``) and reads for this protocol by itself from then
        on: one call into Rust per readiness event reads, parses and hands the messages to
        the queue (``wsrs._core.Socket.receive_delivered``); control frames and what follows
        them come back to ``_receive_rest``. Socket errors (``OSError``) are raised for
        the transport.
        """
        connection = self.connection
        if connection is None:
            return None
        # Before each read, the socket marks this protocol active and its writer fresh:
        # when the read leaves nothing for Python, the receivers it hands messages to wake
        # inside it, and must see the connection as it will be after it (messages.py, rule
        # 7): active, and replying at once (writer.py, rule 1). A readiness event means the
        # peer sent something.
        sock.deliver_to(self, connection.reader, self._queue, cast(FrameWriter, self._writer))
        return sock.receive_delivered()

    def _receive_rest(self, events: list[_core.Event]) -> None:
        """Process the events of a native read left after the messages handed to the queue:
        from the first control frame, protocol error or large message on."""
        # Receivers handed a message before a control frame wake at the end of this, with
        # those of the messages after it (messages.py, rule 7).
        connection = cast("Connection", self.connection)
        self._process_events(connection, connection.receive_events(events))

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
            if self._handshake.feed(data):
                # The handshake may be waiting on the application (process_request):
                # a peer must not pile up bytes meanwhile.
                self._pause_reading(ReadGate.HANDSHAKE)
            self._handshake.wake()
            return
        self._active = True
        self._process_events(connection, connection.receive_data(data))

    def _process_events(self, connection: Connection, events: list[_core.Event]) -> None:
        """Deliver messages and act on control frames."""
        # Data came in: the next message sent (a reply) goes out at once (writer.py, rule 1).
        writer = self._writer
        assert writer is not None  # the connection exists: so does the transport
        writer.fresh = True
        queue = self._queue
        wakeups = queue.wakeups
        # Receivers handed a message wake at the end of this call, not in the next loop
        # iteration (messages.py, rule 7).
        defer = queue.defer = wakeups.inline
        try:
            control = False
            for event in events:
                kind = type(event)
                if kind is str or kind is bytes:
                    if len(event) >= SPLIT_WRITE_SIZE:  # type: ignore[arg-type]
                        keep_heap_for_large_messages()
                    queue.put(event)  # type: ignore[arg-type]
                elif kind is _Fragment:
                    queue.put(event)  # type: ignore[arg-type]
                else:
                    control = True
                    if kind is _Pong:
                        self._on_pong(event)  # type: ignore[arg-type]
            if control:
                self._after_events(connection)
        finally:
            if defer:
                queue.defer = False
                if wakeups.pending:
                    wakeups.run()

    def _after_events(self, connection: Connection) -> None:
        """Write what the connection produced; end the stream and close TCP if it says so."""
        output = connection.data_to_send()
        if output:
            assert self._writer is not None  # the connection exists: so does the transport
            self._writer.write_now(b"".join(output))
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
            self._close_tcp(connection)

    def eof_received(self) -> bool:
        """Note that the peer closed its side; let asyncio close the transport."""
        logger.debug("%s - EOF received", self.side)
        self._handshake.feed_eof()
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
        if self._keepalive is not None:
            self._keepalive.stop()
        if self._compactor is not None:
            self._compactor.stop()
        self._handshake.feed_eof()
        self._end_stream()
        waiters = list(self._drain_waiters)
        self._drain_waiters.clear()
        if self.connection is not None:
            waiters += self.connection.abandon_pings()
        for waiter in waiters:
            if waiter is not None and not waiter.done():
                waiter.set_exception(self._closed_exception())
                # Mark it retrieved: a sender that gave up on it must not cause a warning.
                waiter.exception()
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

    def _write_http(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write_now(data)

    def connection_open(self) -> None:
        """Switch to the WebSocket protocol once the opening handshake succeeded.

        Creates the Sans-I/O connection (and so the Rust codec) with the negotiated
        extensions, feeds it the bytes that followed the handshake, and starts keepalive.
        """
        self.connection = Connection(
            Side.CLIENT if self.is_client else Side.SERVER,
            max_size=self.max_size,
            extensions=self.extensions,
            max_fragment_size=self.max_fragment_size,
            stream_fragments=self.stream_fragments,
        )
        # The writer encodes messages with the connection's own Rust writer while it is OPEN
        # (FrameWriter.send): no bytes object per message.
        cast(FrameWriter, self._writer).encoder = self.connection.send_message
        logger.debug("%s - connection open", self.side)
        # TCP may be gone already: connection_lost() ran while the handshake was finishing.
        lost = self._handshake_state is State.CLOSED
        if self.ping_interval is not None and not lost:
            self._keepalive = Keepalive(
                self.loop,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                state=lambda: self.state,
                ping=self._keepalive_ping,
                forget_ping=self._forget_ping,
                fail=functools.partial(self.fail_connection, 1011, "keepalive ping timeout"),
            )
        if self.compact_after is not None and not lost:
            self._compactor = IdleCompactor(
                self.loop, self.connection, self.compact_after, self.side, self._take_activity
            )
        if self._handshake.data:
            self.data_received(self._handshake.take())
        self._resume_reading(ReadGate.HANDSHAKE)
        if lost:
            self.connection.receive_eof()
            self._end_stream()
        elif self._handshake.eof and self.state is not State.CLOSED:
            self._end_stream()

    async def _send_ping(self, payload: bytes | None) -> tuple[bytes, asyncio.Future[None]]:
        """Send a ping (four random bytes without ``payload``); return the payload and the
        future its pong resolves."""
        connection, writer = self.connection, self._writer
        assert connection is not None and writer is not None
        if payload is None:
            payload = secrets.token_bytes(4)
            while connection.has_ping(payload):
                payload = secrets.token_bytes(4)
        waiter: asyncio.Future[None] = self.loop.create_future()
        writer.write_now(connection.send_ping(payload, waiter))
        waiter.add_done_callback(functools.partial(self._measure_latency, time.monotonic()))
        if self._paused_writing:
            await self._drain()
        return payload, waiter

    def _measure_latency(self, sent_at: float, pong: asyncio.Future[None]) -> None:
        if not pong.cancelled() and pong.exception() is None:
            self.latency = time.monotonic() - sent_at

    def _keepalive_ping(self) -> Any:
        """Send a keepalive ping: :class:`~wsrs.asyncio.keepalive.Keepalive` calls it while
        the connection is OPEN."""
        return self._send_ping(None)

    def _forget_ping(self, payload: bytes) -> None:
        """Stop waiting for the pong of a ping; its waiter, if still pending, is cancelled."""
        assert self.connection is not None
        waiter = self.connection.pings.get(payload)
        self.connection.forget_ping(payload)
        if waiter is not None:
            waiter.cancel()

    # ------------------------------------------------------------------ messages and control frames

    def _end_stream(self) -> None:
        """No message will arrive any more: wake every ``recv()``; read until EOF."""
        self._queue.end()
        self._read_to_the_end()

    def _write_message(
        self, connection: Connection, data: str | bytes | bytearray | memoryview
    ) -> None:
        """Write a data message: large ``str`` and ``bytes`` without a copy where possible.

        Raises:
            InvalidState: Unless the connection is OPEN.
            TypeError: When ``data`` is neither ``str`` nor bytes-like.
        """
        writer = self._writer
        assert writer is not None  # the connection exists: so does the transport
        kind = type(data)
        if (kind is bytes or kind is str) and len(data) >= SPLIT_WRITE_SIZE:
            keep_heap_for_large_messages()
            writer.write_large(connection, cast(str | bytes, data))
        else:
            writer.send(connection.send_message, data)
        self._active = True

    def _write_shared(self, shared: _core.SharedMessage) -> None:
        """Write a message shared with other connections (a broadcast, a topic) at once,
        outside any batch: callers check first that the connection is OPEN and not
        :attr:`sending fragments <wsrs.connection.Connection.sending_fragments>`.

        Raises:
            InvalidState: Unless the connection is OPEN.
            ValueError: While a fragmented message is being sent.
        """
        connection, writer = self.connection, self._writer
        assert connection is not None and writer is not None  # OPEN: both exist
        writer.write_now(connection.send_shared(shared))
        self._active = True

    async def _drain(self) -> None:
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _on_pong(self, pong: _core.Pong) -> None:
        assert self.connection is not None
        for _, waiter in self.connection.acknowledge(pong.data):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ closing

    def _start_closing(self, connection: Connection, code: int, reason: str) -> None:
        """Send this side's close frame and wait for the peer's, aborting after ``timeout``.

        Raises:
            ValueError: When ``code`` may not be sent or ``reason`` is too long.
        """
        frame = connection.send_close(code, reason)
        assert self._writer is not None
        self._writer.write_now(frame)
        # Read on, or the peer's close frame would never be read while max_queue pauses
        # reading, and closing would wait out its timeout.
        self._queue.close_sent()
        self._arm_timer(self.timeout, self._abort)

    def _arm_timer(self, delay: float | None, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``delay`` seconds (never for ``None``) instead of the timer
        armed before, if any."""
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if delay is not None:
            self._close_timer = self.loop.call_later(delay, callback)

    def _abort(self) -> None:
        # Only called once connected: connection_made() set the transport for good.
        if self.transport is not None:  # pragma: no branch
            self.transport.abort()

    def _close_then_abort(self) -> None:
        """Close the transport; abort it if it is still open ``timeout`` seconds later."""
        # Only called once connected: connection_made() set the transport for good.
        if self.transport is not None:  # pragma: no branch
            self.transport.close()
        self._arm_timer(self.timeout, self._abort)

    def _close_early(self, *, linger: bool = False) -> None:
        """Close a connection that never reached OPEN.

        With ``linger``, after an HTTP response: half-close TCP and discard what the client
        still sends until it closes too, or ``timeout`` passes. Closing with unread bytes
        would reset the connection, and the reset can destroy the response before the
        client reads it (RFC 9112 §9.6, "Tear-down").
        """
        self._handshake_state = State.CLOSING
        self._handshake.take()
        self._read_to_the_end()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if linger and transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
            self._arm_timer(self.timeout, self._abort)

    def _close_tcp(self, connection: Connection) -> None:
        """Close TCP once the closing handshake is over or the connection failed, as
        :attr:`Connection.closes_tcp_first <wsrs.connection.Connection.closes_tcp_first>`
        says."""
        transport, writer = self.transport, self._writer
        if transport is None or writer is None or transport.is_closing():
            return
        writer.flush()
        if not connection.closes_tcp_first:
            # Wait for the server's FIN; close (then abort) if it does not come in time.
            self._arm_timer(self.timeout, self._close_then_abort)
        elif self.half_close and transport.can_write_eof():
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

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await asyncio.shield(self.connection_lost_waiter)

    def _closed_exception(self) -> ConnectionClosed:
        if self.connection is not None:
            return self.connection.close_exc
        return connection_closed(1006, "")

    def _take_activity(self) -> bool:
        """Return whether anything was received or sent since the last call."""
        active, self._active = self._active, False
        return active
