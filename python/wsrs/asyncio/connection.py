"""The connection of the websockets >= 14 API: :class:`Connection`, both sides.

A drop-in for ``websockets.asyncio.connection.Connection`` on the core that wsrs' 4.0 API
uses too (:class:`~wsrs.asyncio.base.BaseProtocol`): only the public shape differs.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeAlias, overload

from .._core import Fragment
from ..connection import State
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidState,
    connection_closed,
)
from ..frames import Close
from ..http11 import Request, Response
from .base import SPLIT_WRITE_SIZE, BaseProtocol
from .messages import Data, Item


__all__ = ["Connection", "Data", "DataLike", "LoggerLike", "MaxQueue", "WriteLimit"]

DataLike: TypeAlias = str | bytes | bytearray | memoryview
"""What :meth:`Connection.send` accepts as a message or a fragment."""

LoggerLike: TypeAlias = logging.Logger | logging.LoggerAdapter[Any]
"""A logger, or an adapter of one."""

MaxQueue: TypeAlias = int | None | tuple[int | None, int | None]
"""``max_queue``: high-water mark of the queue of received messages, or ``(high, low)``."""

WriteLimit: TypeAlias = int | tuple[int, int | None]
"""``write_limit``: high-water mark of the write buffer in bytes, or ``(high, low)``."""

_UTF8Decoder = codecs.getincrementaldecoder("utf-8")


def _max_queue(max_queue: MaxQueue) -> tuple[int, int | None]:
    if max_queue is None or isinstance(max_queue, int):
        return max_queue or 0, None
    high, low = max_queue
    return high or 0, low


def _write_limit(write_limit: WriteLimit) -> tuple[int, int | None]:
    if isinstance(write_limit, int):
        return write_limit, None
    return write_limit


class Connection(BaseProtocol):
    """A WebSocket connection, as ``websockets.asyncio.connection.Connection``.

    Fragmented messages are queued frame by frame (:meth:`recv_streaming` yields each frame
    as it arrives; :meth:`recv` joins them); messages of one frame are queued whole.

    Don't create it yourself: :func:`~wsrs.asyncio.server.serve` and
    :func:`~wsrs.asyncio.client.connect` do.

    Args:
        ping_interval: Seconds between keepalive pings; ``None`` disables keepalive.
        ping_timeout: Seconds to wait for a keepalive pong before failing the connection
            with 1011; ``None`` waits forever.
        close_timeout: Seconds to wait for the closing handshake and for TCP to close;
            ``None`` waits forever.
        max_size: Largest message received, in bytes (1 MiB); ``None`` for no limit. A
            ``(max_message_size, max_fragment_size)`` pair limits each frame of a message
            too (its payload, compressed and after decompression), for long messages sent
            in short fragments; either may be ``None``. Over a limit, the connection fails
            with 1009.
        max_queue: Received messages queued before reading pauses (16), or ``(high, low)``;
            ``None`` for no limit.
        write_limit: High-water mark of the write buffer (32 KiB), or ``(high, low)``.
        logger: Logger of the connection; ``wsrs.server`` or ``wsrs.client`` by default.
    """

    stream_fragments = True

    def __init__(
        self,
        *,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_size: int | None | tuple[int | None, int | None] = 2**20,
        max_queue: MaxQueue = 16,
        write_limit: WriteLimit = 2**15,
        logger: LoggerLike | None = None,
    ) -> None:
        max_fragment_size = None
        if isinstance(max_size, tuple):
            max_size, max_fragment_size = max_size
        queue_high, queue_low = _max_queue(max_queue)
        write_high, write_low = _write_limit(write_limit)
        super().__init__(
            loop=asyncio.get_running_loop(),
            timeout=close_timeout,
            max_size=max_size,
            max_fragment_size=max_fragment_size,
            max_queue=queue_high,
            max_queue_low=queue_low,
            read_limit=2**16,
            write_limit=write_high,
            write_limit_low=write_low,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        self.close_timeout = close_timeout
        self._id: uuid.UUID | None = None  # made on first use: uuid4() costs
        if logger is None:
            logger = logging.getLogger(f"websockets.{self.side}")
        self.logger: LoggerLike = logger
        """Logger of this connection."""
        self.request: Request | None = None
        """Opening handshake request."""
        self.response: Response | None = None
        """Opening handshake response."""
        """Round-trip time of the last ping answered, in seconds; 0.0 before the first."""
        self._subprotocol: str | None = None
        # A recv() or recv_streaming() is running; a recv_streaming() left in the middle of
        # a message keeps it set, as websockets does: the rest of that message is unread.
        self._receiving = False
        # While a fragmented message is sent: resolved at its end.
        self._fragmenting: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ attributes

    @property
    def id(self) -> uuid.UUID:
        """Unique identifier of the connection (a random UUID, made when first read). Useful
        in logs."""
        if self._id is None:
            self._id = uuid.uuid4()
        return self._id

    @id.setter
    def id(self, value: uuid.UUID) -> None:
        self._id = value

    @property
    def local_address(self) -> Any:
        """Local address of the connection, as ``socket.getsockname()`` gives it."""
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """Remote address of the connection, as ``socket.getpeername()`` gives it."""
        return None if self.transport is None else self.transport.get_extra_info("peername")

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol negotiated during the opening handshake, if any."""
        return self._subprotocol

    @property
    def close_code(self) -> int | None:
        """Close code of the connection once it is closed, ``None`` until then."""
        if self.state is not State.CLOSED:
            return None
        return super().close_code

    @property
    def close_reason(self) -> str | None:  # type: ignore[override]
        """Close reason of the connection once it is closed, ``None`` until then."""
        if self.state is not State.CLOSED:
            return None
        return super().close_reason

    def _closed_exception(self) -> ConnectionClosed:
        """The close frames describe the end, as websockets >= 10 reports it."""
        connection = self.connection
        if connection is None:
            return connection_closed(1006, "", frames=True)
        rcvd = connection.close_rcvd
        sent = connection.close_sent
        exc = connection_closed(
            connection.close_code or 1006,
            connection.close_reason,
            rcvd=None if rcvd is None else Close(rcvd.code, rcvd.reason),
            sent=None if sent is None else Close(sent.code, sent.reason),
            rcvd_then_sent=(
                connection.rcvd_then_sent if rcvd is not None and sent is not None else None
            ),
            frames=True,
        )
        exc.__cause__ = connection.failure
        return exc

    # ------------------------------------------------------------------ context manager

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.close(1011)

    # ------------------------------------------------------------------ receiving

    async def __aiter__(self) -> AsyncIterator[Data]:
        """Iterate on incoming messages until the connection closes.

        The iterator ends without error after a normal closure (1000 or 1001) and raises
        :exc:`~wsrs.exceptions.ConnectionClosedError` otherwise.
        """
        queue = self._queue
        messages, take = queue.messages, queue.take
        try:
            while True:
                if self._receiving:
                    yield await self.recv()  # raises ConcurrencyError
                elif messages:
                    if type(messages[0]) is Fragment:
                        yield await self.recv()  # joins the fragments
                    else:
                        # Hot path, as in recv(): a whole message is already queued, so it
                        # is taken without a coroutine for recv().
                        yield take()  # type: ignore[misc]
                else:
                    # Waiting, as recv() does, without a coroutine for it.
                    self._receiving = True
                    waiter = queue.wait()
                    try:
                        message = await waiter
                    except asyncio.CancelledError:
                        queue.give_back(waiter)
                        raise
                    finally:
                        self._receiving = False
                    if type(message) is str or type(message) is bytes:
                        yield message
                    else:
                        # A fragment, for recv() to join, or None: the end, which recv()
                        # turns into the exception.
                        queue.give_back(waiter)
                        yield await self.recv()
        except ConnectionClosedOK:
            return

    @overload
    async def recv(self, decode: Literal[True]) -> str: ...

    @overload
    async def recv(self, decode: Literal[False]) -> bytes: ...

    @overload
    async def recv(self, decode: bool | None = None) -> Data: ...

    async def recv(self, decode: bool | None = None) -> Data:
        """Receive the next message.

        A fragmented message is returned whole, once its last frame arrived. Cancelling
        ``recv()`` loses nothing, even in the middle of a fragmented message.

        Args:
            decode: ``True`` returns binary messages decoded as UTF-8 too, ``False`` returns
                text messages as UTF-8 ``bytes`` too; ``None`` returns ``str`` for text
                and ``bytes`` for binary.

        Raises:
            ConnectionClosed: Once the connection is closed and every message received
                before it was returned.
            ConcurrencyError: When another coroutine is already receiving.
        """
        queue = self._queue
        messages = queue.messages
        if (
            messages
            and decode is None
            and type(messages[0]) is not Fragment
            and not self._receiving
        ):
            # Hot path: a whole message is already queued (pipelined traffic, or a burst).
            return queue.take()  # type: ignore[return-value]
        if self._receiving:
            raise ConcurrencyError(
                "cannot call recv while another coroutine is already running recv or recv_streaming"
            )
        self._receiving = True
        message: Item | None
        try:
            if messages:  # a fragment first, or decode is set
                message = queue.take()
            else:
                # Awaited here rather than through queue.get(): one coroutine less.
                waiter = queue.wait()
                try:
                    message = await waiter
                except asyncio.CancelledError:
                    queue.give_back(waiter)
                    raise
            if type(message) is Fragment:
                message = await self._queue.join(message)
        finally:
            self._receiving = False
        if message is None:
            await asyncio.shield(self.connection_lost_waiter)
            raise self._closed_exception()
        if decode is None:
            return message
        try:
            return self._decoded(message, decode)
        except UnicodeDecodeError as exc:
            self._fail_decoding(exc)
        await asyncio.shield(self.connection_lost_waiter)
        raise self._closed_exception()

    @overload
    def recv_streaming(self, decode: Literal[True]) -> AsyncIterator[str]: ...

    @overload
    def recv_streaming(self, decode: Literal[False]) -> AsyncIterator[bytes]: ...

    @overload
    def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[Data]: ...

    async def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[Data]:
        """Receive the next message frame by frame.

        Yields each frame of a fragmented message as it arrives, before the last one does:
        ``str`` pieces for text (decoded incrementally: a character split across frames
        comes with the piece that completes it), ``bytes`` for binary; a message of one frame
        as one piece. ``max_size`` still bounds the whole message.

        Iterate to the end. As in websockets, stopping early or cancelling it after the
        first piece leaves the rest of the message unread, and further calls to :meth:`recv`
        or :meth:`recv_streaming` raise :exc:`~wsrs.exceptions.ConcurrencyError`: close the
        connection then. Cancelling it before the first piece is safe.

        Args:
            decode: As in :meth:`recv`: ``False`` yields the frames of a text message as
                ``bytes``, ``True`` decodes those of a binary message (as UTF-8, failing
                the connection with 1007 if they are not).

        Raises:
            ConnectionClosed: Once the connection is closed and every message received
                before it was returned.
            ConcurrencyError: When another coroutine is already receiving.
        """
        if self._receiving:
            raise ConcurrencyError(
                "cannot call recv_streaming while another coroutine "
                "is already running recv or recv_streaming"
            )
        self._receiving = True
        try:
            item = await self._queue.get()
        except BaseException:
            self._receiving = False
            raise
        if type(item) is not Fragment:
            if item is not None:
                try:
                    message = self._decoded(item, decode)
                except UnicodeDecodeError as exc:
                    self._receiving = False
                    self._fail_decoding(exc)
                else:
                    yield message
                    self._receiving = False
                    return
            self._receiving = False
        else:
            fragment: Fragment | str | bytes | None = item
            decoder = _UTF8Decoder() if (item.text if decode is None else decode) else None
            while type(fragment) is Fragment:
                if decoder is None:
                    yield fragment.data
                else:
                    try:
                        piece = decoder.decode(fragment.data, fragment.fin)
                    except UnicodeDecodeError as exc:
                        self._fail_decoding(exc)
                        break
                    yield piece
                if fragment.fin:
                    self._receiving = False
                    return
                fragment = await self._queue.get()
            # The connection closed in the middle of the message.
            self._receiving = False
        await asyncio.shield(self.connection_lost_waiter)
        raise self._closed_exception()

    def _fail_decoding(self, exc: UnicodeDecodeError) -> None:
        """Fail the connection with 1007: a binary message to decode is not UTF-8."""
        self.fail_connection(1007, f"{exc.reason} at position {exc.start}", exc)

    def _decoded(self, message: Data, decode: bool | None) -> Data:
        """Return a whole message as :meth:`recv` returns it with ``decode``."""
        if decode is None:
            return message
        if decode and type(message) is bytes:
            return message.decode()
        if not decode and type(message) is str:
            return message.encode()
        return message

    # ------------------------------------------------------------------ sending

    async def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        *,
        text: bool | None = None,
        compress: bool = True,
    ) -> None:
        """Send a message.

        Args:
            message: ``str`` is sent as a text frame, bytes-like as a binary frame; an
                iterable or asynchronous iterable of those as a fragmented message, one
                frame per item, all of the same type (an empty one sends nothing).
            text: Override the frame type: ``True`` sends bytes (which must be UTF-8) as
                text, ``False`` sends ``str`` as binary.
            compress: ``False`` sends this message uncompressed even when
                permessage-deflate was negotiated (for data that does not compress, such
                as images), which websockets cannot do (its issue 538).

        While a fragmented message is being sent, other messages wait for its end.

        Raises:
            ConnectionClosed: When the connection is closed.
            TypeError: When ``message`` has an unsupported type, or the fragments mix
                ``str`` and bytes; the connection then fails with 1011.
        """
        # Hot path: a small str or bytes message with the defaults, inline (measured with
        # 100,000 sends of 1 KiB: 3.1-4.0 us per send through the general path below,
        # 2.7-3.0 us for the 4.0 front end, which has no helper call on its path).
        kind = type(message)
        if (kind is bytes or kind is str) and self._fragmenting is None and text is None:
            connection, writer = self.connection, self._writer
            if (
                connection is not None
                and writer is not None
                and compress
                and len(message) < SPLIT_WRITE_SIZE  # type: ignore[arg-type]
            ):
                try:
                    # (message is str or bytes: checked above by type, which mypy
                    # does not narrow on.)
                    writer.send(connection.send_message, message)  # type: ignore[arg-type]
                except InvalidState:
                    await self._raise_closed()
                self._active = True
                if self._paused_writing:
                    await self._drain()
                return
        while self._fragmenting is not None:
            await asyncio.shield(self._fragmenting)
        if isinstance(message, _DATA_TYPES):
            data: DataLike = message
            if text is False and isinstance(message, str):
                data = message.encode()
            if text is True and not isinstance(message, str):
                written = self._write_fragment(
                    data, first=True, fin=True, text=True, compress=compress
                )
            else:
                written = self._write_data(data, compress)
            if not written:
                await self._raise_closed()
            if self._paused_writing:
                await self._drain()
        elif isinstance(message, Mapping):
            raise TypeError("data is a dict-like object")
        elif isinstance(message, Iterable):
            await self._send_fragments(_aiter(message), text, compress)
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(aiter(message), text, compress)
        else:
            raise TypeError("data must be str, bytes, iterable, or async iterable")

    def _write_data(self, data: DataLike, compress: bool) -> bool:
        """Write a message; return ``False`` when the connection is no longer OPEN."""
        connection, writer = self.connection, self._writer
        if connection is None or writer is None:
            raise InvalidState("the opening handshake isn't finished")
        try:
            if compress:
                self._write_message(connection, data)
                return True
            writer.write_message(connection.send_message(data, compress=False))
        except InvalidState:
            return False
        self._active = True
        return True

    def _write_fragment(
        self,
        data: DataLike,
        *,
        first: bool,
        fin: bool,
        text: bool | None = None,
        compress: bool = True,
    ) -> bool:
        """Write one frame of a fragmented message; ``False`` when no longer OPEN."""
        connection, writer = self.connection, self._writer
        if connection is None or writer is None:
            raise InvalidState("the opening handshake isn't finished")
        try:
            frame = connection.send_fragment(
                data, first=first, fin=fin, text=text, compress=compress
            )
        except InvalidState:
            return False
        writer.write_message(frame)
        self._active = True
        return True

    async def _send_frame(self, data: DataLike, *, first: bool, fin: bool, **options: Any) -> None:
        if not self._write_fragment(data, first=first, fin=fin, **options):
            await self._raise_closed()
        if self._paused_writing:
            await self._drain()

    async def _send_fragments(
        self, fragments: AsyncIterator[DataLike], text: bool | None, compress: bool
    ) -> None:
        try:
            fragment = await anext(fragments)
        except StopAsyncIteration:
            return
        self._fragmenting = self.loop.create_future()
        is_str = isinstance(fragment, str)
        try:
            if not isinstance(fragment, str | bytes | bytearray | memoryview):
                raise TypeError("iterable must contain bytes or str")
            await self._send_frame(fragment, first=True, fin=False, text=text, compress=compress)
            async for fragment in fragments:
                if isinstance(fragment, str) != is_str or not isinstance(
                    fragment, str | bytes | bytearray | memoryview
                ):
                    raise TypeError("iterable must contain uniform types")
                await self._send_frame(fragment, first=False, fin=False)
            await self._send_frame(b"", first=False, fin=True)
        except ConnectionClosed:
            raise
        except BaseException:
            # Half-way through a fragmented message that cannot be completed (a bad
            # fragment, a failing iterator, or a cancelled send): the connection is unusable.
            self.fail_connection(1011, "error in fragmented message")
            raise
        finally:
            self._fragmenting.set_result(None)
            self._fragmenting = None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake and wait until TCP is closed.

        Idempotent: closing a connection that is closing or closed just waits for the end.
        """
        connection = self.connection
        if connection is not None and connection.state is State.OPEN:
            self._start_closing(connection, code, reason)
        elif connection is None and self.transport is not None:
            self.fail_connection(1006)
        await asyncio.shield(self.connection_lost_waiter)

    async def ping(self, data: DataLike | None = None) -> asyncio.Future[float]:
        """Send a ping; return a future resolved with the latency when its pong arrives.

        Args:
            data: Payload of the ping (``str`` is encoded as UTF-8), at most 125 bytes; four
                random bytes by default.

        Raises:
            ConnectionClosed: When the connection is closed.
            ConcurrencyError: When a ping with the same payload awaits its pong.
        """
        if self.state is not State.OPEN:
            await self._raise_closed()
        payload = None if data is None else _payload(data)
        if payload is not None and self.connection is not None:
            if self.connection.has_ping(payload):
                raise ConcurrencyError("already waiting for a pong with the same data")
        _, waiter = await self._send_ping(payload)
        latency: asyncio.Future[float] = self.loop.create_future()

        def resolve(pong: asyncio.Future[None]) -> None:
            # After BaseProtocol._measure_latency, which the ping registered first.
            if latency.done():
                return
            if pong.cancelled():
                latency.cancel()
            elif pong.exception() is not None:
                latency.set_exception(pong.exception())  # type: ignore[arg-type]
            else:
                latency.set_result(self.latency)

        waiter.add_done_callback(resolve)
        return latency

    async def pong(self, data: DataLike = b"") -> None:
        """Send a pong (an unsolicited one serves as a unidirectional heartbeat)."""
        if self.state is not State.OPEN or self.connection is None:
            await self._raise_closed()
        assert self.connection is not None and self._writer is not None
        self._writer.write_now(self.connection.send_pong(_payload(data)))

    async def _raise_closed(self) -> None:
        if self.state is State.CONNECTING:
            raise InvalidState("the opening handshake isn't finished")
        await asyncio.shield(self.connection_lost_waiter)
        raise self._closed_exception()


_DATA_TYPES = (str, bytes, bytearray, memoryview)


def _payload(data: DataLike) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


async def _aiter(fragments: Iterable[DataLike]) -> AsyncIterator[DataLike]:
    """The fragments of an iterable, as an asynchronous iterator."""
    for fragment in fragments:
        yield fragment
