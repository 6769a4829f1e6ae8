"""The native transport: the socket I/O of plain TCP and Unix connections done in Rust.

Theory of operation
-------------------

asyncio's socket transport runs Python code around every ``recv`` and ``send``. A
:class:`NativeTransport` registers the socket with :meth:`loop.add_reader
<asyncio.loop.add_reader>`, the callback being Rust's (``wsrs._core.Socket.ready``). Until
the connection is open it calls the transport's ``_read_ready``, which reads into the
protocol's buffer (the opening handshake). Then the protocol tells the socket where to
deliver (``Socket.deliver_to``, from its ``receive_from``), and each readiness event is one
call into Rust that reads once into a buffer of the thread, feeds the connection's Rust
reader and hands the messages to their receivers: Python sees only control frames,
protocol errors with their close code, large messages, the end of the stream and socket
errors. Writes go out at once with ``sendmsg``, from Rust: the connection's
``wsrs.asyncio.writer.FrameWriter`` writes to the socket directly while it takes
direct writes (``Socket.direct``: until ``write_eof()`` or the connection is lost), and
calls back only when bytes stay queued (``_queued``) or the socket fails (``_fatal_error``).
Only what the kernel does not take is queued, in Rust, and flushed by an
:meth:`~asyncio.loop.add_writer` callback.

It implements the part of :class:`asyncio.Transport` that :class:`~wsrs.asyncio.base.BaseProtocol`
uses, with asyncio's semantics: write buffer limits and ``pause_writing``/``resume_writing``,
``pause_reading``/``resume_reading``, ``close`` (after the queue is flushed), ``abort``,
``write_eof`` (after the queue is flushed), and ``connection_lost`` called once, with the
``OSError`` that ended the connection if one did. So the protocol code and the Sans-I/O rules
are the same on both transports: the transport only moves bytes.

How a connection gets one: the servers of both front ends accept their connections
themselves (:mod:`wsrs.asyncio.accept`) and their clients connect the socket themselves
(:mod:`wsrs.asyncio.connect`), giving each connection a :class:`NativeTransport` from the
start. Elsewhere (:mod:`wsrs.uvicorn`, proxies, ``create_connection`` options those modules
leave to asyncio) asyncio or uvloop makes the connection as usual and it is taken over
(:func:`take_over`) in ``connection_made``, before its transport has read or written
anything: the protocol duplicates the socket, detaches asyncio's transport and aborts it
(closing its descriptor only: the duplicate keeps the connection), and runs on a
:class:`NativeTransport` from then on. TLS connections, and transports other than asyncio's
and uvloop's socket transports, keep asyncio's transport.

Which transport a connection uses (:func:`use_native`): the ``transport`` setting of the
protocol class (``"native"`` or ``"asyncio"``), else the ``WSRS_TRANSPORT`` environment
variable, else ``"asyncio"``; ``WSRS_TRANSPORT=asyncio`` forces asyncio's transport
everywhere, for debugging.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from asyncio import trsock
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from .. import _core


if TYPE_CHECKING:
    from .accept import NativeServer


__all__ = ["ENVIRONMENT_VARIABLE", "NativeTransport", "TransportKind", "take_over", "use_native"]

logger = logging.getLogger("wsrs.transport")

TransportKind: TypeAlias = Literal["native", "asyncio"]
"""The transports a connection can use."""

ENVIRONMENT_VARIABLE = "WSRS_TRANSPORT"
"""The environment variable that chooses the transport: ``native`` or ``asyncio`` (which
wins over every setting)."""

_STREAM_FAMILIES = {socket.AF_INET, socket.AF_INET6, socket.AF_UNIX}

# The transports whose socket can be taken over: asyncio's selector socket transport and
# uvloop's (not importing uvloop for it), by module and class name.
_TAKEN_OVER = {
    ("asyncio.selector_events", "_SelectorSocketTransport"),
    ("uvloop.loop", "TCPTransport"),
    ("uvloop.loop", "UnixTransport"),
}


def use_native(setting: TransportKind | None) -> bool:
    """Return whether a connection whose class says ``setting`` uses the native transport.

    ``WSRS_TRANSPORT=asyncio`` forces asyncio's transport; otherwise ``setting`` decides,
    and when it is ``None``, ``WSRS_TRANSPORT=native`` chooses the native one. Other values
    of the variable are ignored.
    """
    forced = os.environ.get(ENVIRONMENT_VARIABLE)
    if forced == "asyncio":
        return False
    if setting is not None:
        return setting == "native"
    return forced == "native"


def take_over(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    protocol: asyncio.BufferedProtocol,
) -> NativeTransport | None:
    """Move a plain TCP or Unix connection from asyncio's ``transport`` to a
    :class:`NativeTransport` for ``protocol``; ``None`` (and ``transport`` untouched) when it
    cannot: TLS, another kind of transport or socket, or bytes already queued.

    Call it from ``connection_made``, before anything was written: asyncio's transport is
    aborted (its ``connection_lost`` goes to a protocol that ignores it, and it closes its
    own descriptor of the socket), and the socket lives on in a duplicate descriptor.
    """
    kind = type(transport)
    if (kind.__module__, kind.__name__) not in _TAKEN_OVER:
        return None
    sock = transport.get_extra_info("socket")
    if (
        transport.get_extra_info("sslcontext") is not None
        or sock is None
        or sock.family not in _STREAM_FAMILIES
        or sock.type != socket.SOCK_STREAM
        or transport.get_write_buffer_size()
        or transport.is_closing()
    ):
        return None
    own = socket.fromfd(sock.fileno(), sock.family, sock.type, sock.proto)
    own.setblocking(False)
    extra = {
        "peername": transport.get_extra_info("peername"),
        "sockname": transport.get_extra_info("sockname"),
    }
    transport.set_protocol(asyncio.Protocol())
    transport.abort()
    return NativeTransport(loop, own, protocol, extra)


class NativeTransport(asyncio.Transport):
    """A transport for a connected, non-blocking stream socket, with its I/O in Rust.

    Args:
        loop: The event loop; it must support :meth:`~asyncio.loop.add_reader`.
        sock: The socket, which the transport owns and closes.
        protocol: The protocol; if it has a ``receive_from`` method (as
            :class:`~wsrs.asyncio.base.BaseProtocol` has), readiness events go there with the
            :class:`wsrs._core.Socket`; otherwise through ``get_buffer``/``buffer_updated``.
        extra: ``get_extra_info`` values (``peername``, ``sockname``); ``socket`` is added.
        server: The server that accepted the connection, if it was accepted natively; told
            when the connection starts and when it is lost.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.BufferedProtocol,
        extra: dict[str, Any],
        server: NativeServer | None = None,
    ) -> None:
        super().__init__({**extra, "socket": trsock.TransportSocket(sock)})
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._io = _core.Socket(self._fd)
        self._protocol = protocol
        self._receive_from = getattr(protocol, "receive_from", None)
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._closing = False  # close() or abort() called, or the peer closed
        self._paused = False  # reading paused
        self._writing = False  # add_writer() registered: bytes are queued
        self._eof = False  # write_eof() called
        self._protocol_paused = False  # pause_writing() called, resume_writing() not yet
        self._lost = False  # connection_lost() scheduled or called
        self._server = server
        # The readiness callback: Rust's, which reads for the protocol by itself once the
        # protocol told the socket where to deliver (Socket.deliver_to), and calls
        # _read_ready until then.
        self._on_readable: Callable[[NativeTransport], None] = self._io.ready
        loop.add_reader(self._fd, self._on_readable, self)
        if server is not None:
            server._attach(self)

    # ------------------------------------------------------------------ reading

    def _read_ready(self) -> None:
        protocol = self._protocol
        try:
            more = None if self._receive_from is None else self._receive_from(self._io)
            if more is None:
                buffer = protocol.get_buffer(-1)
                n = self._io.recv_into(buffer)
                if n > 0:
                    protocol.buffer_updated(n)
                more = n != 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "fatal read error on native transport")
            return
        if not more:
            self._read_eof()

    def _read_eof(self) -> None:
        """The peer closed its side: tell the protocol, then stop reading or close."""
        logger.debug("%r received EOF", self)
        if self._protocol.eof_received():
            # Half-closed by the peer: keep writing, stop reading.
            self._loop.remove_reader(self._fd)
        else:
            self.close()

    def is_reading(self) -> bool:
        """Return whether the transport is reading."""
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading`."""
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`."""
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop.add_reader(self._fd, self._on_readable, self)

    # ------------------------------------------------------------------ writing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` now; queue what the kernel does not take."""
        if self._eof or self._lost:
            self._send(self._io.write, data, "write")  # raises, or does nothing
            return
        # What _send() does, inline: this is the path of every message.
        try:
            done = self._io.write(data)
        except OSError as exc:
            self._fatal_error(exc, "fatal write error on native transport")
            return
        if not done:
            self._queued()

    def writelines(self, list_of_data: Any) -> None:
        """Send the buffers of ``list_of_data`` now, in one system call; queue what the kernel
        does not take."""
        self._send(self._io.writelines, list_of_data, "writelines")

    def _send(self, send: Callable[[Any], bool], data: Any, name: str) -> None:
        if self._eof:
            raise RuntimeError(f"cannot call {name}() after write_eof()")
        if self._lost:
            return
        try:
            done = send(data)
        except OSError as exc:
            self._fatal_error(exc, "fatal write error on native transport")
            return
        if not done:
            self._queued()

    def _queued(self) -> None:
        """Bytes are queued: flush them when the socket is writable; pause the protocol if
        they pass the high-water mark."""
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._write_ready)
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        try:
            done = self._io.flush()
        except OSError as exc:
            self._fatal_error(exc, "fatal write error on native transport")
            return
        self._maybe_resume_protocol()
        if done:
            self._writing = False
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._call_connection_lost(None)
            elif self._eof:
                self._shutdown()

    def _maybe_pause_protocol(self) -> None:
        if self._io.pending > self._high and not self._protocol_paused:
            self._protocol_paused = True
            self._protocol.pause_writing()

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self._io.pending <= self._low:
            self._protocol_paused = False
            self._protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        """Return the number of bytes queued."""
        return self._io.pending

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """Return the low- and high-water marks of the write buffer."""
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the high- and low-water marks of the write buffer, as asyncio does: 64 KiB and
        a quarter of the high-water mark by default."""
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def can_write_eof(self) -> bool:
        """Return ``True``: the transport can half-close."""
        return True

    def write_eof(self) -> None:
        """Half-close once the queue is flushed: the peer reads EOF, reading goes on."""
        if self._closing or self._eof:
            return
        self._eof = True
        self._io.direct = False
        if not self._writing:
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._io.shutdown_write()
        except OSError as exc:
            self._fatal_error(exc, "fatal error closing the native transport")

    # ------------------------------------------------------------------ closing

    def is_closing(self) -> bool:
        """Return whether the transport is closing or closed."""
        return self._closing

    def close(self) -> None:
        """Stop reading; close the connection once the queue is flushed."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._writing:
            self._lost = True
            self._io.direct = False
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Close the connection at once, dropping what is queued."""
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if isinstance(exc, OSError):
            logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        self._force_close(exc if isinstance(exc, Exception) else None)

    def _force_close(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._io.direct = False
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._io.direct = False
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._io.close()
            self._sock.close()
            server, self._server = self._server, None
            if server is not None:
                server._detach(self)

    # ------------------------------------------------------------------ protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Use ``protocol`` from now on (a buffered protocol)."""
        self._protocol = cast(asyncio.BufferedProtocol, protocol)
        self._receive_from = getattr(protocol, "receive_from", None)
        self._io.stop_delivery()

    def get_protocol(self) -> asyncio.BaseProtocol:
        """Return the protocol."""
        return self._protocol

    def __repr__(self) -> str:
        return f"<NativeTransport fd={self._io.fileno}>"
