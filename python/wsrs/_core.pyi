"""Type stubs and user-facing documentation of the Rust core, ``wsrs._core``.

Copies: ``bytes`` arguments are borrowed; other bytes-like objects (``bytearray``,
``memoryview``) are copied once. Every result is a new object.

``python/wsrs`` uses :class:`Reader`, :class:`Writer`, :class:`SharedMessage`, :class:`Socket`
(the native transport's system calls), :class:`Inbox` and :func:`resolve_deferred` (the
asyncio front ends' queue of received messages), :class:`FrameWriter` (their writes), the events
:class:`Ping`, :class:`Pong` and :class:`Close`, :class:`ProtocolError` and
:data:`LARGE_MESSAGE_SIZE`. The
other names (marked "tests and benchmarks only") exist for ``tests/`` and ``benches/``: they
check each codec piece against the pure-Python reference and craft frames a well-behaved
:class:`Writer` never sends.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar, final

from typing_extensions import Buffer, disjoint_base

if TYPE_CHECKING:
    from .asyncio.wakeup import Wakeups

_T = TypeVar("_T")

__all__ = [
    "GIL_RELEASE_THRESHOLD",
    "LARGE_MESSAGE_SIZE",
    "MAX_HEADER_LEN",
    "MAX_KEPT_SEND_BUFFER",
    "Close",
    "Fragment",
    "FrameWriter",
    "Inbox",
    "Ping",
    "Pong",
    "ProtocolError",
    "Reader",
    "ReceiveBuffer",
    "SharedMessage",
    "Socket",
    "Utf8Validator",
    "Writer",
    "apply_mask",
    "build_close",
    "encode_frame",
    "is_valid_close_code",
    "parse_close",
    "parse_header_fields",
    "resolve_deferred",
    "run_wakeups",
    "validate_utf8",
]

MAX_HEADER_LEN: Final[int]
"""Length of the longest frame header (14 bytes). Tests and benchmarks only."""

GIL_RELEASE_THRESHOLD: Final[int]
"""Buffers at least this large are processed with the GIL released (64 KiB). Tests and
benchmarks only."""

LARGE_MESSAGE_SIZE: Final[int]
"""The size from which a message takes the large-message paths (64 KiB).

A binary message with at least this much payload still to come is received straight into
its final ``bytes`` (:meth:`Reader.receive_buffer`); the Python layer sends messages of this
size or more through :meth:`Writer.message_buffer` (or, on a server, as the header from
:meth:`Writer.binary_header` followed by the payload) and keeps the C heap warm for them.
"""

MAX_KEPT_SEND_BUFFER: Final[int]
"""The largest ``bytearray`` :meth:`Writer.message_buffer` keeps for the next message
(16 MiB): a larger one is freed after its message. Tests and benchmarks only."""

class ProtocolError(Exception):
    """A WebSocket protocol violation by the peer.

    ``code`` is the close code to send: 1002 (protocol error), 1007 (invalid data, such as
    text that is not UTF-8 or corrupt compressed data) or 1009 (message too big).
    """

    code: int
    reason: str

@final
class Ping:
    """A ping received from the peer."""

    data: bytes
    def __new__(cls, data: bytes) -> Ping: ...

@final
class Pong:
    """A pong received from the peer."""

    data: bytes
    def __new__(cls, data: bytes) -> Pong: ...

@final
class Close:
    """A close frame received from the peer; ``code`` is 1005 when it carried none."""

    code: int
    reason: str
    def __new__(cls, code: int, reason: str) -> Close: ...

@final
class Fragment:
    """One frame of a fragmented message, from a :class:`Reader` made with
    ``stream_fragments=True``.

    ``data`` is the frame's payload after decompression; ``text`` says whether the message
    is text (validated as UTF-8 across its fragments: a piece may end inside a character
    that the next piece completes); ``fin`` whether this frame ends the message.
    """

    data: bytes
    text: bool
    fin: bool
    def __new__(cls, data: bytes, text: bool, fin: bool) -> Fragment: ...

Event = str | bytes | Fragment | Ping | Pong | Close | ProtocolError

@final
class Reader:
    """The receiving side of a connection: bytes from the network in, events out.

    Args:
        client: ``True`` on the client side (frames must be unmasked), ``False`` on the
            server side (frames must be masked).
        max_size: Limit on the size of a message in bytes, after decompression; ``None``
            means no limit. Checked from each frame header before its payload is stored.
        deflate: Whether permessage-deflate was negotiated (RSV1 allowed, messages inflated).
        max_window_bits: The window size the peer compresses with (8 to 15).
        no_context_takeover: Whether the peer resets its compressor after each message.
        max_fragment_size: Limit on the payload of each data frame in bytes, compressed and
            after decompression (websockets' ``max_size=(max_message_size,
            max_fragment_size)``); ``None`` means no limit of its own. Checked from each
            frame header before its payload is stored; a larger frame gives 1009 as well.
        stream_fragments: Deliver a fragmented message (whose first frame has FIN clear)
            as one :class:`Fragment` per frame, as each frame ends, instead of assembled.
            A message of one frame comes whole either way.
        pooled: Keep no decompression state between messages, with context takeover
            too: each compressed message takes a state from the thread's pool, primed with
            the window's history, and gives it back at its end (without context takeover
            states always come from the pool). Between messages the reader then holds only
            the history, at most ``2 ** max_window_bits`` bytes.
    """

    def __new__(
        cls,
        *,
        client: bool,
        max_size: int | None = 1048576,
        deflate: bool = False,
        max_window_bits: int = 15,
        no_context_takeover: bool = False,
        max_fragment_size: int | None = None,
        stream_fragments: bool = False,
        pooled: bool = False,
    ) -> Reader: ...
    def feed(self, data: Buffer) -> list[Event]:
        """Feed a chunk from the network; return the events it completed, in order.

        Text messages come as ``str``, binary messages as ``bytes`` (a fragmented message as
        :class:`Fragment` objects with ``stream_fragments=True``), control frames as
        :class:`Ping`, :class:`Pong` or :class:`Close` (delivered at once, even between the
        fragments of a message). When the peer broke the protocol, the last element is a
        :class:`ProtocolError` (not raised) and the reader ignores further input; after a
        close frame it ignores further input too.
        """
    def receive_buffer(self) -> memoryview | None:
        """A writable ``memoryview`` (over a :class:`ReceiveBuffer`) for the transport to
        read the rest of a large binary message into, or ``None`` to read into a buffer of
        its own and :meth:`feed` it.

        In the payload of an unfragmented, uncompressed binary message with at least 64 KiB
        to come, the message's ``bytes`` is allocated now and the network data goes straight
        into it. Report each read with :meth:`received`; :meth:`feed` still works meanwhile.
        """
    def received(self, nbytes: int) -> list[Event]:
        """``nbytes`` were read into the last :meth:`receive_buffer`: unmask them; return
        the events completed (the message once its payload is all there). ``ValueError``
        without a buffer or for more bytes than it had."""
    @property
    def receiving_direct(self) -> bool:
        """Whether a message is being received in place (see :meth:`receive_buffer`)."""
    @property
    def closed(self) -> bool:
        """Whether a close frame was received."""
    @property
    def failed(self) -> bool:
        """Whether the peer broke the protocol."""
    @property
    def in_message(self) -> bool:
        """Whether a fragmented message has started and not ended."""
    def compact(self) -> int:
        """Free spare buffers and the decompression state between messages, keeping the
        window history; return the number of bytes freed (0 in the middle of a message)."""
    @property
    def inflater_allocated(self) -> bool:
        """Whether the decompression state is allocated."""

@final
class ReceiveBuffer:
    """A writable buffer over the rest of a message being received in place (from
    :meth:`Reader.receive_buffer`): the transport reads into it once."""

    def __len__(self) -> int: ...
    if sys.version_info >= (3, 12):
        # PEP 688: the interpreter adds it to types that export a buffer from Python 3.12.
        def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class Writer:
    """The sending side of a connection: messages in, the bytes of their frames out.

    Args:
        client: ``True`` on the client side: every frame is masked with a new key from the
            OS CSPRNG.
        deflate: Whether permessage-deflate was negotiated.
        max_window_bits: The window size to compress with (8 is treated as 9).
        no_context_takeover: Whether to reset the compressor after each message.
        level: zlib compression level, 0 to 9.
        mem_level: zlib memory level, 1 to 9: sizes the compressor's buffers.
        compress_threshold: Data messages shorter than this are sent uncompressed.
        pooled: Keep no compression state between messages, with context takeover too:
            each compressed message takes a compressor from the thread's pool, primed with
            the window's history (which costs about as much as compressing it), and gives
            it back at its end (without context takeover compressors always come from the
            pool). Between messages the writer then holds only the history, at most
            ``2 ** max_window_bits`` bytes.

    Any message may be sent uncompressed with ``compress=False`` even when permessage-deflate
    is on (`RFC 7692 section 6`_ lets each message choose): RSV1 is clear and the compressor
    is untouched, so the compressed messages around it decode as if it were not there.

    .. _RFC 7692 section 6: https://datatracker.ietf.org/doc/html/rfc7692#section-6
    """

    def __new__(
        cls,
        *,
        client: bool,
        deflate: bool = False,
        max_window_bits: int = 15,
        no_context_takeover: bool = False,
        level: int = 6,
        mem_level: int = 8,
        compress_threshold: int = 0,
        pooled: bool = False,
    ) -> Writer: ...
    def message(
        self, data: str | Buffer, *, fragment_size: int = 0, compress: bool = True
    ) -> bytes:
        """Encode a data message: ``str`` as text, bytes-like as binary.

        ``fragment_size`` splits the (compressed) payload into frames of at most that many
        bytes; 0 sends a single frame. All frames are returned in one ``bytes``.
        ``compress=False`` sends the message uncompressed whatever its size.

        Raises ``ValueError`` while a message sent with :meth:`fragment` is in progress.
        """
    def fragment(
        self,
        data: str | Buffer,
        *,
        first: bool,
        fin: bool,
        text: bool | None = None,
        compress: bool = True,
    ) -> bytes:
        """Encode one fragment of a message sent in fragments, as one frame.

        For a message whose data comes in pieces, such as ``send()`` of an iterable in
        websockets, which sends each piece with ``fin=False`` and then an empty final
        fragment. Call it with ``first=True`` for the first fragment, then ``first=False``
        for each next one, and ``fin=True`` on the last; any fragment may be empty. Control
        frames (:meth:`ping`, :meth:`pong`, :meth:`close`) may be sent between fragments;
        other messages may not.

        The first frame is a Text_ frame for ``str`` data and a Binary_ frame for bytes-like
        data, unless ``text`` says otherwise (bytes-like data with ``text=True`` must be
        UTF-8; it is not checked). Later frames are Continuation_ frames, whatever their data
        type: ``text`` is ignored there. On the client side each frame is masked with a new
        key.

        Compression (permessage-deflate) is decided on the first fragment, for the whole
        message: it is compressed unless ``compress=False``, or the first fragment is also
        the last (a whole message) and shorter than ``compress_threshold``. A message in
        several fragments is compressed whatever their size, which is not known in advance;
        ``compress`` is ignored on later fragments. The fragments of a compressed message
        carry consecutive parts of one DEFLATE stream, each flushed so that the peer can
        decompress it at once (`RFC 7692 section 7.2.1`_); RSV1 is set on the first frame
        only, and the message ends for context takeover on the ``fin`` fragment.

        Args:
            data: The fragment's data: ``str`` (sent as its UTF-8) or bytes-like.
            first: Whether this fragment starts the message.
            fin: Whether this fragment ends the message.
            text: On the first fragment, send a Text_ (``True``) or Binary_ (``False``)
                frame whatever the type of ``data``; ``None`` follows the type.
            compress: On the first fragment, ``False`` sends the message uncompressed.

        Returns:
            The bytes of the fragment's frame.

        Raises:
            ValueError: For ``first=True`` while a message is in progress, or
                ``first=False`` without one; nothing is encoded then.

        .. _Text: https://datatracker.ietf.org/doc/html/rfc6455#section-5.6
        .. _Binary: https://datatracker.ietf.org/doc/html/rfc6455#section-5.6
        .. _Continuation: https://datatracker.ietf.org/doc/html/rfc6455#section-5.4
        .. _RFC 7692 section 7.2.1: https://datatracker.ietf.org/doc/html/rfc7692#section-7.2.1
        """
    def shared(self, message: SharedMessage, *, compress: bool = True) -> bytes:
        """The frame of a message shared with other connections (a broadcast).

        On the server side, the ``bytes`` object of the message's encoding for this writer
        (uncompressed, or compressed with this writer's settings as by a fresh compressor),
        encoded by the first writer that needs it and the same object for the next ones. A
        compressed frame refers to nothing before it, so it suits every connection whatever
        its context; this writer records the message in its compressor's window (freeing the
        compression state, rebuilt from the window by its next compressed message), so its
        later messages and its peer's decompressor stay in step. On the client side, the
        message encoded by this writer, masked with its own key. ``compress=False`` asks for
        the uncompressed frame.

        Raises ``ValueError`` while a message sent with :meth:`fragment` is in progress.
        """
    @property
    def in_message(self) -> bool:
        """Whether a message sent with :meth:`fragment` has started and not ended."""
    def ping(self, data: str | Buffer | None = None) -> bytes:
        """Encode a ping; raises ``ValueError`` over 125 bytes."""
    def pong(self, data: str | Buffer | None = None) -> bytes:
        """Encode a pong; raises ``ValueError`` over 125 bytes."""
    def close(self, code: int | None = None, reason: str = "") -> bytes:
        """Encode a close frame; ``ValueError`` for a code that may not be sent."""
    def frame(self, opcode: int, data: Buffer, *, fin: bool = True, rsv1: bool = False) -> bytes:
        """Encode one frame exactly as given (never compressed)."""
    def binary_header(self, len: int, *, compress: bool = True) -> bytes | None:
        """The header of a binary message of ``len`` bytes whose payload is written as it
        is (server side, not compressed); ``None`` when it must be masked or compressed
        (``compress=False``: it is sent uncompressed whatever its size), or while a message
        sent with :meth:`fragment` is in progress."""
    def message_buffer(self, data: str | Buffer, *, compress: bool = True) -> bytearray | None:
        """Encode a data message sent as one uncompressed frame into a ``bytearray`` that
        is reused for a later message once nothing else refers to it; ``None`` when the
        message would be compressed (use :meth:`message`), which ``compress=False`` rules
        out. Raises ``ValueError`` while a message sent with :meth:`fragment` is in
        progress."""
    def compact(self) -> int:
        """Free the kept send buffer and the compression state, keeping the window history
        from which the next compressed message rebuilds it; return the number of bytes
        freed (a compression state counts as 256 KiB)."""
    @property
    def deflater_allocated(self) -> bool:
        """Whether the compression state is allocated."""

@final
class SharedMessage:
    """A message for several connections, for :meth:`Writer.shared`: each distinct frame is
    encoded once (one per encoding: uncompressed, and one per compression setting).

    ``str`` is sent as text and bytes-like data as binary, unless ``text`` says otherwise
    (bytes sent as text must be UTF-8; they are not checked).
    """

    def __new__(cls, data: str | Buffer, *, text: bool | None = None) -> SharedMessage: ...
    @property
    def encodings(self) -> int:
        """How many distinct frames were encoded so far."""
    def __len__(self) -> int:
        """The size of the message's payload, uncompressed."""

@final
class Socket:
    """The reads and writes of a connected, non-blocking stream socket (TCP or Unix), done
    in Rust: the system calls of the native transport (:mod:`wsrs.asyncio.transport`).
    Unix only.

    The descriptor ``fd`` is borrowed from a Python socket object, which must outlive it and
    be closed after :meth:`close`. OS errors are raised as ``OSError`` subclasses
    (``ConnectionResetError``, ``BrokenPipeError``...), as asyncio's transports raise them.
    """

    def __new__(cls, fd: int) -> Socket: ...
    @property
    def fileno(self) -> int:
        """The descriptor; -1 after :meth:`close`."""
    @property
    def pending(self) -> int:
        """Bytes queued and not sent yet."""
    @property
    def direct(self) -> bool:
        """Whether a :class:`FrameWriter` may write to the socket without calling the
        transport's ``write``: true until the transport stops taking writes as they come
        (after ``write_eof()``, once the connection is lost), which it says by setting it
        false."""
    @direct.setter
    def direct(self, value: bool) -> None: ...
    def recv_into(self, buffer: Buffer) -> int:
        """Read once into ``buffer`` (writable, contiguous); return the number of bytes
        read, 0 at the end of the stream, -1 when there was nothing to read."""
    def receive(self, reader: Reader) -> list[Event] | None:
        """Read once (up to 1 MiB, into a buffer of the thread; the payload of a large binary
        message straight into its ``bytes``) and feed ``reader``: return the events
        completed, as :meth:`Reader.feed` does (empty when the read found nothing), or
        ``None`` at the end of the stream."""
    def deliver(self, reader: Reader, inbox: Inbox) -> tuple[int, list[Event]] | None:
        """:meth:`receive`, then hand the whole messages and fragments at the start of the
        events to ``inbox`` (:meth:`Inbox.put`, wake-ups deferred where the loop allows:
        call it from a readiness callback). Return ``None`` at the end of the stream, else
        how many events ``inbox`` took and the events left, in order: from the first control
        frame, protocol error or message of :data:`LARGE_MESSAGE_SIZE` or more on."""
    def deliver_to(
        self, protocol: object, reader: Reader, inbox: Inbox, writer: FrameWriter
    ) -> None:
        """From now on, :meth:`ready` reads for ``protocol``, an open connection's
        (``wsrs.asyncio.base.BaseProtocol``) with the Rust parts it reads into, as
        :meth:`receive_delivered` does, without calling the transport's Python code."""
    def stop_delivery(self) -> None:
        """Forget the protocol of :meth:`deliver_to`: :meth:`ready` calls the transport's
        ``_read_ready``."""
    @property
    def delivering(self) -> bool:
        """Whether :meth:`ready` reads for a protocol (:meth:`deliver_to`)."""
    def receive_delivered(self) -> bool:
        """Read once for the protocol of :meth:`deliver_to`, as its ``receive_from`` does:
        mark it active (``_active``) and its writer :attr:`~FrameWriter.fresh`,
        :meth:`deliver` to its reader and inbox, and pass the events left to its
        ``_receive_rest``. Return ``False`` at the end of the stream."""
    def ready(self, transport: asyncio.Transport) -> None:
        """The readiness callback of the native transport (``loop.add_reader(fd,
        sock.ready, transport)``): :meth:`receive_delivered`, then the transport's
        ``_read_eof()`` at the end of the stream; an error other than ``SystemExit`` and
        ``KeyboardInterrupt`` goes to its ``_fatal_error(exc, message)``. Before
        :meth:`deliver_to` (during the opening handshake), the transport's ``_read_ready()``
        reads instead."""
    def write(self, data: Buffer) -> bool:
        """Send ``data`` at once (``sendmsg``), or queue it behind what is queued; return
        whether nothing is left queued. If something is, wait until the socket is writable
        and call :meth:`flush`."""
    def writelines(self, data: Iterable[Buffer]) -> bool:
        """:meth:`write` for several buffers, sent with one ``sendmsg``."""
    def flush(self) -> bool:
        """Send what is queued; return whether the queue is empty now."""
    def shutdown_write(self) -> None:
        """Half-close the connection (``shutdown(SHUT_WR)``)."""
    def close(self) -> None:
        """Forget the descriptor, the queue and the protocol of :meth:`deliver_to`; later
        calls raise ``OSError`` (``EBADF``)."""

@disjoint_base
class FrameWriter:
    """The frames of one connection on their way to its transport: the state of
    ``wsrs.asyncio.writer.FrameWriter``, which subclasses it and documents the rules.

    Args:
        event_loop: The event loop of the connection.
        transport: Where the frames go.
        write_limit: Bytes batched at most before they are written.
        socket: The native transport's :class:`Socket`, written to directly while it takes
            direct writes (:attr:`Socket.direct`); the transport's ``_queued()`` is called
            when bytes stay queued and its ``_fatal_error(exc, message)`` on an OS error.
            ``None``: every write calls ``transport.write``.
    """

    def __new__(
        cls,
        event_loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        write_limit: int,
        *,
        socket: Socket | None = None,
    ) -> Self: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of the connection."""
    @loop.setter
    def loop(self, value: asyncio.AbstractEventLoop) -> None: ...
    @property
    def transport(self) -> asyncio.Transport:
        """Where the frames go."""
    @property
    def socket(self) -> Socket | None:
        """The native transport's socket, which frames are written to directly
        (``transport.write`` is not called); ``None``: every write calls
        ``transport.write``."""
    @socket.setter
    def socket(self, value: Socket | None) -> None: ...
    @property
    def write_limit(self) -> int:
        """Bytes batched at most before they are written."""
    @write_limit.setter
    def write_limit(self, value: int) -> None: ...
    @property
    def fresh(self) -> bool:
        """Whether the next message is written at once: nothing was written since the last
        flush, or since the connection last received data (the protocol sets it then)."""
    @fresh.setter
    def fresh(self, value: bool) -> None: ...
    @property
    def batching(self) -> bool:
        """Whether a batch is open: messages are joined until the end of this loop
        iteration."""
    def write_message(self, frame: Buffer) -> None:
        """Write ``frame`` at once if the writer is :attr:`fresh`, else batch it."""
    @property
    def encoder(self) -> Callable[..., bytes] | None:
        """The connection's ``send_message`` that :meth:`send` recognises: a
        :class:`Writer`'s ``message`` method, which :meth:`send` then calls in Rust, encoding
        the frame straight into the batch or a buffer this writer reuses. ``None`` forgets
        it; anything else raises ``TypeError``."""
    @encoder.setter
    def encoder(self, value: Callable[..., bytes] | None) -> None: ...
    def send(self, send_message: Callable[[str | Buffer], bytes], data: str | Buffer) -> None:
        """``write_message(send_message(data))``: the frame of the message ``data``, made by
        the connection's ``send_message`` (which raises when the connection no longer sends
        messages). When it is the :attr:`encoder`, the frame is encoded in Rust into the
        batch or a buffer this writer reuses, without a ``bytes`` object."""
    def write_now(self, frame: Buffer) -> None:
        """Write the batch, then ``frame``, unless the transport is closing."""
    def flush(self) -> None:
        """Write the frames batched in this loop iteration and close the batch: the next
        message goes out at once."""

@disjoint_base
class Inbox:
    """Received messages not read yet, and the receivers waiting for one: the state of
    ``wsrs.asyncio.messages.MessageQueue``, which subclasses it and documents the rules.

    Args:
        event_loop: The event loop of the connection.
        max_queue: Messages queued before reading pauses; 0 disables the limit.
        pause: Called when reading from the peer must pause.
        resume: Called when reading may resume.
        low: Messages left when reading resumes; half of ``max_queue`` by default.
        wakeups: The connection's ``wsrs.asyncio.wakeup.Wakeups``: its ``inline`` flag says
            whether wake-ups are deferred, its ``pending`` list (kept, never replaced)
            receives them.
    """

    def __new__(
        cls,
        event_loop: asyncio.AbstractEventLoop,
        max_queue: int,
        pause: Callable[[], object],
        resume: Callable[[], object],
        low: int | None = None,
        *,
        wakeups: Wakeups,
    ) -> Self: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of the connection."""
    @property
    def messages(self) -> collections.deque[str | bytes | Fragment]:
        """Messages (or fragments of messages) received and not read yet, oldest first."""
    @property
    def max_queue(self) -> int:
        """Messages queued before reading pauses; 0 means no limit."""
    @property
    def ended(self) -> bool:
        """Whether no message will arrive any more."""
    @property
    def wakeups(self) -> Wakeups:
        """The wake-ups of receivers handed a message while :attr:`defer` was set; the front
        end runs them (``wakeups.run()``) at the end of the read."""
    @property
    def defer(self) -> bool:
        """Whether :meth:`put` defers the wake-ups of the receivers it hands messages to."""
    @defer.setter
    def defer(self, value: bool) -> None: ...
    @property
    def waiting(self) -> int:
        """How many receivers wait for a message (cancelled ones included until skipped)."""
    def put(self, message: str | bytes | Fragment) -> None:
        """Queue a message (or a fragment of one) received from the peer; pause reading if
        the queue is full."""
    def take(self) -> str | bytes | Fragment:
        """Return the next message (or fragment) now; the queue must not be empty."""
    def wait(self) -> asyncio.Future[str | bytes | Fragment | None]:
        """Return a future of the next message (or fragment), for a receiver that found the
        queue empty: :meth:`put` hands it the next one, :meth:`end` ``None``."""
    def give_back(self, waiter: asyncio.Future[str | bytes | Fragment | None]) -> None:
        """The receiver awaiting ``waiter`` was cancelled: hand the message it was given, if
        any, to the next waiting receiver, or else to the front of the queue."""
    def close_sent(self) -> None:
        """This side sent its close frame: keep reading, drop what does not fit."""
    def end(self) -> None:
        """No message will arrive any more: wake every waiting receiver with ``None``."""

def parse_header_fields(
    lines: list[bytes],
) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Check and split the header lines ``lines`` (without CRLF) of a received HTTP head
    (RFC 7230 §3.2): return the values of each name, lowercased, in a dict of lists, and the
    ``(name, value)`` pairs in order, names as written; names are decoded as ASCII and
    values as ISO-8859-1, without the whitespace around them.

    Raises:
        ValueError: ``ValueError(kind, part)`` for a line that is not a valid header field:
            ``kind`` is ``"folded"`` (obsolete line folding), ``"line"`` (no colon),
            ``"name"`` (not a token) or ``"value"`` (a control character), ``part`` the
            bytes concerned (the line, the name or the value).
        TypeError: If a line is not ``bytes``.
    """

def resolve_deferred(
    future: asyncio.Future[_T], result: _T, woken: list[tuple[asyncio.Future[Any], list[Any]]]
) -> None:
    """Resolve the pending ``future`` with ``result`` without scheduling its callbacks:
    append the future and the callbacks taken off it to ``woken``, for
    ``wsrs.asyncio.wakeup.run_wakeups``."""

def run_wakeups(
    event_loop: asyncio.AbstractEventLoop,
    woken: list[tuple[asyncio.Future[Any], list[tuple[Callable[..., object], Any]]]],
) -> None:
    """Run the callbacks of ``woken`` (the futures :func:`resolve_deferred` resolved, with
    the callbacks it took off them) now if no task of ``event_loop`` is running (a readiness
    callback), else schedule them with ``call_soon``. An exception from a callback goes to
    the loop's exception handler, as from a callback the loop runs; ``KeyboardInterrupt``
    and ``SystemExit`` propagate."""

@final
class Utf8Validator:
    """Incremental UTF-8 validation across the pieces of a message. Tests and benchmarks only."""

    def __new__(cls) -> Utf8Validator: ...
    def feed(self, data: Buffer, final: bool = False) -> None:
        """Validate the next piece; raise :class:`ProtocolError` (1007) on invalid UTF-8.

        Fails as soon as the bytes cannot be the start of valid UTF-8; an incomplete code
        point at the end is accepted unless ``final`` is set.
        """
    def reset(self) -> None:
        """Start over for a new message."""

def apply_mask(data: Buffer, mask: Buffer) -> bytes:
    """Return ``data`` XOR the 4-byte ``mask`` (RFC 6455 section 5.3). Tests and benchmarks
    only."""

def validate_utf8(data: Buffer) -> bool:
    """Return whether ``data`` is valid UTF-8. Tests and benchmarks only."""

def encode_frame(
    opcode: int,
    data: Buffer,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: Buffer | None = None,
) -> bytes:
    """Encode one frame: header and (masked, if ``mask`` is given) payload in one ``bytes``.

    Tests and benchmarks only: unlike :meth:`Writer.frame`, it takes the mask from the caller.
    """

def parse_close(data: Buffer) -> tuple[int, str]:
    """Parse a close payload into ``(code, reason)``; raise :class:`ProtocolError`
    (:meth:`wsrs.frames.Close.parse` uses it)."""

def build_close(code: int | None = None, reason: str = "") -> bytes:
    """Build a close payload; raise ``ValueError`` for a code that may not be sent
    (:meth:`wsrs.frames.Close.serialize` uses it)."""

def is_valid_close_code(code: int) -> bool:
    """Return whether a peer may send ``code`` in a close frame. Tests and benchmarks only."""
