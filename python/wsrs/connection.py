"""Sans-I/O WebSocket connection: the RFC 6455 state machine after the opening handshake.

:class:`Connection` takes bytes in and gives events and bytes out. It never touches a
socket, a clock or an event loop, so its rules are tested without any of them
(``tests/test_connection.py``); :class:`~wsrs.protocol.WebSocketCommonProtocol` is the
asyncio adapter that owns the transport, the futures and the timers.

Theory of operation
-------------------

- The Rust core does the framing: ``wsrs._core.Reader`` turns bytes into events (messages as
  ``str`` / ``bytes``, or frame by frame as :class:`~wsrs._core.Fragment` when asked to stream
  fragmented messages, :class:`~wsrs._core.Ping`, :class:`~wsrs._core.Pong`,
  :class:`~wsrs._core.Close`, or a :class:`~wsrs._core.ProtocolError` carrying its close
  code) and ``wsrs._core.Writer`` turns messages into frames.
- This class owns what the frames mean: the state (OPEN → CLOSING → CLOSED) and what may
  be sent in each (everything while OPEN, nothing after: :exc:`~wsrs.exceptions.InvalidState`,
  which a front end reports as :attr:`Connection.close_exc` once TCP is closed), the closing
  handshake (who sent and who received a close frame, which code to report), answering
  pings, the pings waiting for their pong (one bookkeeping for every front end), and failing
  the connection with the right code.
- Methods that send return the bytes to write at once (the hot path: one ``bytes`` per
  message); answers the connection produces by itself (pongs, the echo of a close frame, the
  close frame of a failure) are collected for :meth:`Connection.data_to_send`.
- :meth:`Connection.close_expected` tells the front end when to close TCP, and
  :attr:`Connection.closes_tcp_first` how (RFC 6455 §7.1.1): the server closes it at once
  (half-close, then read until the peer closes); a client waits for the server to close it,
  and closes it itself only after a timeout.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import _core
from .exceptions import (
    ConnectionClosed,
    InvalidState,
    PayloadTooBig,
    WebSocketProtocolError,
    connection_closed,
)
from .extensions.base import Extension


__all__ = ["Connection", "Side", "State"]

_Ping = _core.Ping
_Pong = _core.Pong
_Close = _core.Close


class State(enum.IntEnum):
    """The state of a WebSocket connection (RFC 6455 §4 and §7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Side(enum.Enum):
    """Which end of the connection this is."""

    SERVER = "server"
    CLIENT = "client"


class Connection:
    """The state of one WebSocket connection from the end of the opening handshake.

    Args:
        side: :attr:`Side.CLIENT` masks what it sends and refuses masked frames;
            :attr:`Side.SERVER` the reverse.
        max_size: Largest message accepted, in bytes, after decompression; a larger one fails
            the connection with 1009. ``None`` disables the limit.
        extensions: Negotiated extensions, which configure the Rust reader and writer.
        max_fragment_size: Largest payload of a data frame, in bytes, compressed and after
            decompression; a larger one fails the connection with 1009 too. ``None`` (the
            default) leaves only ``max_size``.
        stream_fragments: Deliver a fragmented message as one :class:`~wsrs._core.Fragment`
            per frame, as each frame arrives, instead of whole (for ``recv_streaming``). A
            message of one frame is delivered whole either way.
    """

    def __init__(
        self,
        side: Side,
        *,
        max_size: int | None = 2**20,
        extensions: Sequence[Extension] = (),
        max_fragment_size: int | None = None,
        stream_fragments: bool = False,
    ) -> None:
        self.side = side
        client = side is Side.CLIENT
        reader_options: dict[str, object] = {}
        writer_options: dict[str, object] = {}
        for extension in extensions:
            reader_options.update(extension.reader_options())
            writer_options.update(extension.writer_options())
        self.reader = _core.Reader(
            client=client,
            max_size=max_size,
            max_fragment_size=max_fragment_size,
            stream_fragments=stream_fragments,
            **reader_options,  # type: ignore[arg-type]
        )
        """The Rust reader, for a transport that reads into it itself
        (``wsrs._core.Socket.deliver``); pass the events it leaves to
        :meth:`receive_events`."""
        self._writer = _core.Writer(client=client, **writer_options)  # type: ignore[arg-type]
        self.send_message: Callable[..., bytes] = self._writer.message
        """Return the frame(s) of a message: ``str`` as text, bytes-like as binary;
        ``send_message(data, compress=False)`` sends it uncompressed even with
        permessage-deflate.

        Raises ``InvalidState`` unless the connection is OPEN (report :attr:`close_exc` once
        TCP is closed) and ``TypeError`` when ``data`` is neither ``str`` nor bytes-like.
        While OPEN it is the Rust writer's own method, so the hot path has no Python frame
        of its own; leaving OPEN replaces it with one that refuses."""
        self.binary_header: Callable[[int], bytes | None] = self._writer.binary_header
        """Return the header of a binary message of the given length whose payload can be
        written as it is after it (server side, not compressed), else ``None``. Call it only
        while OPEN, right before sending that message."""
        self.state = State.OPEN
        """The :class:`State` of the connection."""
        self.close_rcvd: _core.Close | None = None
        """The close frame received, if any."""
        self.close_sent: _core.Close | None = None
        """The close frame sent, if any (code 1005 when it carried no code)."""
        self.failure: Exception | None = None
        """Why this side failed the connection, if it did."""
        self.rcvd_then_sent: bool | None = None
        """Once a close frame was received: whether it came before this side sent one."""
        self._failure_close: _core.Close | None = None
        self._output: list[bytes] = []
        # The pings sent and not acknowledged yet, oldest first: payload -> the front end's
        # waiter (an asyncio.Future for the asyncio front ends), returned when acknowledged.
        self._pings: dict[bytes, Any] = {}

    # ------------------------------------------------------------------ results

    @property
    def close_code(self) -> int | None:
        """The close code to report: the one received, else the one this side failed with,
        else 1006 once the connection is closed; ``None`` while it is open."""
        if self.close_rcvd is not None:
            return self.close_rcvd.code
        if self._failure_close is not None:
            return self._failure_close.code
        if self.state is State.CLOSED:
            return 1006
        return None

    @property
    def close_reason(self) -> str:
        """The close reason matching :attr:`close_code` (empty when there is none)."""
        if self.close_rcvd is not None:
            return self.close_rcvd.reason
        if self._failure_close is not None:
            return self._failure_close.reason
        return ""

    @property
    def stream_ended(self) -> bool:
        """Whether no message will arrive any more (close frame, failure or EOF)."""
        return (
            self.close_rcvd is not None or self.failure is not None or (self.state is State.CLOSED)
        )

    @property
    def close_exc(self) -> ConnectionClosed:
        """The exception that reports the end of the connection to the application.

        :exc:`~wsrs.exceptions.ConnectionClosedOK` for a normal closure (1000, 1001),
        :exc:`~wsrs.exceptions.ConnectionClosedError` otherwise (1006 when TCP closed
        without a closing handshake), chained to :attr:`failure` when this side failed the
        connection. Front ends raise it once TCP is closed, so the code is final.
        """
        exc = connection_closed(self.close_code or 1006, self.close_reason)
        exc.__cause__ = self.failure
        return exc

    @property
    def closes_tcp_first(self) -> bool:
        """Whether this side closes TCP first once :meth:`close_expected` says so.

        RFC 6455 §7.1.1: "the server MUST close the underlying TCP connection immediately;
        the client SHOULD wait for the server to close the connection but MAY close the
        connection at any time after sending and receiving a Close message". The server
        half-closes and reads until the client closes too, so unread bytes never turn the
        close into a reset; the client closes only after a timeout.
        """
        return self.side is Side.SERVER

    def close_expected(self) -> bool:
        """Whether TCP should close now: the closing handshake is done, or this side failed
        the connection. The adapter decides who closes first (RFC 6455 §7.1.1)."""
        return (self.close_rcvd is not None and self.close_sent is not None) or (
            self.failure is not None
        )

    def data_to_send(self) -> list[bytes]:
        """Return and forget the bytes the connection produced by itself: pongs answering
        pings, the echo of a close frame, the close frame of a failure."""
        output, self._output = self._output, []
        return output

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[_core.Event]:
        """Feed bytes from the network; return the events they completed, in order.

        Control frames are acted on here: a ping gets its pong, a close frame is echoed, a
        protocol error fails the connection. They are returned too, so the caller can
        resolve pong waiters (:meth:`acknowledge`) and wake receivers. Call
        :meth:`data_to_send` and :meth:`close_expected` afterwards.
        """
        return self.receive_events(self.reader.feed(data))

    def receive_buffer(self) -> memoryview | None:
        """Return a writable ``memoryview`` to read the rest of a large binary message into, or
        ``None`` to read into any buffer and call :meth:`receive_data`.

        When a binary message of one uncompressed frame has at least 64 KiB still to come,
        the Rust reader allocates the message's ``bytes`` and the transport reads straight
        into it: no copy of the payload in user space. Report what was read with
        :meth:`receive_into`; :meth:`receive_data` still works meanwhile.
        """
        return self.reader.receive_buffer()

    def receive_into(self, nbytes: int) -> list[_core.Event]:
        """Note that ``nbytes`` were read into the last :meth:`receive_buffer`; return the
        events they completed (the message, once complete), as :meth:`receive_data` does."""
        return self.reader.received(nbytes)

    def receive_events(self, events: list[_core.Event]) -> list[_core.Event]:
        """Act on the control frames among ``events``, which :attr:`reader` produced for a
        transport that feeds it itself (``wsrs._core.Socket.deliver``), as
        :meth:`receive_data` does; return ``events``."""
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                continue
            if kind is _Ping:
                # RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
                # Pong frame in response, unless it already received a Close frame."
                if self.state is State.OPEN:
                    self._output.append(self._writer.pong(event.data))  # type: ignore[union-attr]
            elif kind is _Close:
                self._receive_close(event)  # type: ignore[arg-type]
            elif kind is _core.ProtocolError:
                assert isinstance(event, _core.ProtocolError)
                exc: Exception = (
                    PayloadTooBig(event.reason)
                    if event.code == 1009
                    # 1002 for protocol errors, 1007 for invalid data: the cause carries it.
                    else WebSocketProtocolError(event.reason, close_code=event.code)
                )
                self.fail(event.code, event.reason, exc)
        return events

    def _receive_close(self, close: _core.Close) -> None:
        self.close_rcvd = close
        self.rcvd_then_sent = self.close_sent is None
        if self.close_sent is None:
            # RFC 6455 §5.5.1: "the endpoint MUST send a Close frame in response [...]
            # typically echoing the status code it received."
            code = None if close.code == 1005 else close.code
            self._output.append(self._close_frame(code, close.reason))
        self._set_state(State.CLOSING)

    def compact(self) -> int:
        """Free the memory an idle connection does not need.

        Drops the Rust reader's spare message buffer, the writer's kept send buffer and,
        with permessage-deflate, the compressor and decompressor states (about 300 KiB and
        40 KiB at 15-bit windows), keeping only the last window of data in each direction
        (at most 2**window_bits bytes). The next message rebuilds a state from that history,
        so the compressed stream is unchanged as far as the peer can tell. Does nothing to a
        message that is half received.

        Returns:
            How many bytes it freed, at least (a compressor counts as 256 KiB, a
            decompressor as its window).
        """
        return self.reader.compact() + self._writer.compact()

    def receive_eof(self) -> None:
        """Note that TCP is closed: the connection is CLOSED."""
        self._set_state(State.CLOSED)

    def acknowledge(self, payload: bytes) -> list[tuple[bytes, Any]]:
        """Match a pong to the pings sent.

        Returns:
            The ``(payload, waiter)`` pairs of the pings it acknowledges: the matching ping
            and every ping sent before it (RFC 6455 §5.5.3 lets a pong answer the most
            recent ping only); empty for an unsolicited pong. Resolve the waiters.
        """
        if payload not in self._pings:
            return []
        acknowledged = []
        for key in list(self._pings):  # pragma: no branch - payload is there: it breaks
            acknowledged.append((key, self._pings.pop(key)))
            if key == payload:
                break
        return acknowledged

    @property
    def pings(self) -> Mapping[bytes, Any]:
        """The pings waiting for their pong, oldest first: payload -> waiter."""
        return self._pings

    def abandon_pings(self) -> list[Any]:
        """Forget every ping waiting for its pong; return their waiters, oldest first.

        Call it when the connection is closed: no pong can come any more.
        """
        waiters = list(self._pings.values())
        self._pings.clear()
        return waiters

    # ------------------------------------------------------------------ sending

    def _check_open(self) -> None:
        if self.state is not State.OPEN:
            raise InvalidState(f"WebSocket connection is {self.state.name}")

    def _set_state(self, state: State) -> None:
        """Leave OPEN for ``state`` (CLOSING or CLOSED): from now on, messages are refused."""
        self.state = state
        self.send_message = self._refuse_message

    def _refuse_message(self, data: object, **options: object) -> bytes:
        raise InvalidState(f"WebSocket connection is {self.state.name}")

    def send_fragment(
        self,
        data: str | bytes | bytearray | memoryview,
        *,
        first: bool,
        fin: bool,
        text: bool | None = None,
        compress: bool = True,
    ) -> bytes:
        """Return one frame of a message sent in fragments (RFC 6455 §5.4).

        The first fragment is a text frame for ``str`` and a binary frame for bytes-like
        data, unless ``text`` says otherwise; the next ones are continuation frames; the
        one with ``fin`` ends the message. With permessage-deflate, the fragments are parts
        of one compressed stream (unless ``compress`` is false on the first one).

        Raises:
            InvalidState: Unless the connection is OPEN.
            ValueError: When ``first`` does not match whether a message is in progress.
        """
        self._check_open()
        return self._writer.fragment(data, first=first, fin=fin, text=text, compress=compress)

    @property
    def sending_fragments(self) -> bool:
        """Whether a message sent with :meth:`send_fragment` has started and not ended:
        no other data message (a shared one included) may be sent until it ends."""
        return self._writer.in_message

    def send_shared(self, message: _core.SharedMessage) -> bytes:
        """Return the frame of a message shared with other connections (a broadcast): on the
        server side the ``bytes`` object every connection with the same encoding sends (see
        :meth:`wsrs._core.Writer.shared`), on the client side this connection's own frame.

        Raises:
            InvalidState: Unless the connection is OPEN.
            ValueError: While a message sent in fragments is in progress.
        """
        self._check_open()
        return self._writer.shared(message)

    def send_message_buffer(self, data: str | bytes | bytearray | memoryview) -> bytearray | None:
        """Return a message encoded as one uncompressed frame in a ``bytearray`` that the
        writer reuses for a later message once nothing else refers to it, or ``None`` when
        the message is compressed. For large messages: no new allocation per message.

        Raises:
            InvalidState: Unless the connection is OPEN.
            TypeError: When ``data`` is neither ``str`` nor bytes-like.
        """
        self._check_open()
        return self._writer.message_buffer(data)

    def send_ping(self, payload: bytes, waiter: Any = None) -> bytes:
        """Return a ping frame and remember it, with ``waiter``, for :meth:`acknowledge`.

        Raises:
            InvalidState: Unless the connection is OPEN.
            ValueError: When a ping with this payload is waiting for its pong, or the payload
                is over 125 bytes.
        """
        self._check_open()
        if payload in self._pings:
            raise ValueError("already waiting for a pong with the same data")
        frame = self._writer.ping(payload)
        self._pings[payload] = waiter
        return frame

    def forget_ping(self, payload: bytes) -> bool:
        """Stop waiting for the pong of the ping with this payload; return whether it was
        waiting. A later pong with this payload is then unsolicited."""
        if payload not in self._pings:
            return False
        del self._pings[payload]
        return True

    def has_ping(self, payload: bytes) -> bool:
        """Whether a ping with this payload is waiting for its pong."""
        return payload in self._pings

    def send_pong(self, payload: bytes) -> bytes:
        """Return a pong frame.

        Raises:
            InvalidState: Unless the connection is OPEN.
            ValueError: When the payload is over 125 bytes.
        """
        self._check_open()
        return self._writer.pong(payload)

    def send_close(self, code: int | None = 1000, reason: str = "") -> bytes:
        """Start the closing handshake: return the close frame, move to CLOSING.

        Raises:
            InvalidState: Unless the connection is OPEN.
            ValueError: When ``code`` may not be sent or ``reason`` is too long; nothing
                changes then.
        """
        self._check_open()
        frame = self._close_frame(code, reason)
        self._set_state(State.CLOSING)
        return frame

    def _close_frame(self, code: int | None, reason: str) -> bytes:
        # Encode first: an invalid code or reason raises before anything changes.
        frame = self._writer.close(code, reason)
        self.close_sent = _core.Close(1005 if code is None else code, reason)
        return frame

    def fail(self, code: int = 1011, reason: str = "", exc: Exception | None = None) -> None:
        """Fail the connection (RFC 6455 §7.1.7): queue a close frame with ``code`` unless
        one was sent already, and stop delivering messages.

        Args:
            code: Close code: 1002, 1007, 1009, 1011...; 1006 sends no close frame.
            reason: Close reason.
            exc: The cause, reported by the adapter as the cause of ``ConnectionClosed``.
        """
        if self.failure is None:
            self.failure = exc if exc is not None else WebSocketProtocolError(reason or str(code))
            self._failure_close = _core.Close(code, reason)
        if self.state is State.OPEN and code != 1006:
            self._output.append(self._close_frame(code, reason))
        if self.state is not State.CLOSED:
            self._set_state(State.CLOSING)
