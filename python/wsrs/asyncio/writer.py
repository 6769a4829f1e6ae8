"""Writing frames to the transport, in order, with as few system calls as possible.

Rules, the same for every asyncio front end:

1. Messages are batched lazily (:meth:`FrameWriter.write_message`). A message sent while the
   writer is :attr:`~FrameWriter.fresh` (no message went out at once since the connection
   last received data, or since the last flush, which every :meth:`~FrameWriter.write_now`
   does) is written at once, and nothing is scheduled: a round trip (one message in, one
   out) costs one system call and no extra event-loop iteration. A second message before
   the next read or flush opens a batch: it and the ones that follow are joined and written
   by one callback at the end of the loop iteration, or as soon as they reach
   ``write_limit`` so that flow control sees them. A burst of ``send()`` calls costs two
   system calls, not one each. While a batch is open every message joins it, data received
   or not: none overtakes another. A producer that only sends, one message per iteration
   (a timer), has every other message batched, since no read marks the writer fresh
   between them.
2. Every other write (pings, pongs, close frames, large messages, closing TCP) goes through
   :meth:`FrameWriter.write_now`, which writes the batch first: frames always leave in the
   order they were made.
3. Large messages (:meth:`FrameWriter.write_large`) avoid allocating memory for their frame
   where they can: a server writes the header of an uncompressed binary message followed by
   the caller's ``bytes`` (one ``writelines``, a ``writev``/``sendmsg``, where the transport
   sends buffers as they are); other large messages are encoded into a send buffer the Rust
   writer reuses.

The state and the methods other than :meth:`FrameWriter.write_large` are Rust's
(``wsrs._core.FrameWriter``), so that a message goes from ``send()`` to the socket in one
call: on the native transport (:mod:`wsrs.asyncio.transport`) frames are written straight to
its socket, as its ``write`` would, and only bytes left queued or an OS error go back to the
transport's Python code; batches are joined in a buffer the writer reuses.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from .. import _core
from .transport import NativeTransport


if TYPE_CHECKING:
    from ..connection import Connection


__all__ = ["FrameWriter"]


class FrameWriter(_core.FrameWriter):
    """Write the frames of one connection to its transport.

    :attr:`fresh` (the next message is written at once), :attr:`batching`,
    :meth:`write_message`, :meth:`write_now` and :meth:`flush` are Rust's
    (``wsrs._core.FrameWriter``).

    Args:
        loop: The event loop of the connection.
        transport: Where to write. A :class:`~wsrs.asyncio.transport.NativeTransport` is
            written to through its socket (``socket``), without calling its ``write``; set
            ``socket`` to ``None`` to have every write call ``transport.write``.
        write_limit: Bytes batched at most before they are written.
    """

    __slots__ = ("_vectored",)

    _vectored: bool

    def __new__(
        cls, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, write_limit: int
    ) -> FrameWriter:
        """Make the writer; a native transport's socket is written to directly."""
        socket = transport._io if type(transport) is NativeTransport else None
        self = super().__new__(cls, loop, transport, write_limit, socket=socket)
        # Whether writelines() sends buffers as they are (uvloop, TLS, asyncio sockets on
        # Python >= 3.12 with sendmsg, the native transport) rather than joining them into a
        # copy (the default WriteTransport.writelines, which asyncio's sockets use on Python
        # 3.11).
        writelines = getattr(type(transport), "writelines", None)
        self._vectored = writelines is not asyncio.WriteTransport.writelines
        return self

    def write_large(self, connection: Connection, data: str | bytes) -> None:
        """Write a large message without allocating memory for it where possible."""
        header = connection.binary_header(len(data)) if type(data) is bytes else None
        if header is not None:
            # Server, binary, not compressed: header and payload written apart, so the
            # payload is not copied into a frame.
            self.flush()
            if self._vectored:
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
            self.write_message(connection.send_message(data))
        else:
            self.write_now(frame)
