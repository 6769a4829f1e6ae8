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
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast


if TYPE_CHECKING:
    from ..connection import Connection


__all__ = ["FrameWriter"]


class FrameWriter:
    """Write the frames of one connection to its transport.

    Args:
        loop: The event loop of the connection.
        transport: Where to write.
        write_limit: Bytes batched at most before they are written.
    """

    __slots__ = ("_batch", "_batch_size", "_vectored", "fresh", "loop", "transport", "write_limit")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, write_limit: int
    ) -> None:
        self.loop = loop
        self.transport = transport
        self.write_limit = write_limit
        self.fresh = True
        """Whether the next message is written at once: nothing was written since the last
        flush, or since the connection last received data (the protocol sets it then)."""
        # Frames batched until the end of this loop iteration (None: no batch open) and
        # their size.
        self._batch: list[bytes] | None = None
        self._batch_size = 0
        # Whether writelines() sends buffers as they are (uvloop, TLS, asyncio sockets on
        # Python >= 3.12 with sendmsg) rather than joining them into a copy (the default
        # WriteTransport.writelines, which asyncio's sockets use on Python 3.11).
        writelines = getattr(type(transport), "writelines", None)
        self._vectored = writelines is not asyncio.WriteTransport.writelines

    def write_message(self, frame: bytes) -> None:
        """Write ``frame`` at once if the writer is :attr:`fresh`, else batch it."""
        batch = self._batch
        if batch is None:
            if self.fresh:
                # A lone message (a reply, the first of a burst): out at once, nothing
                # scheduled.
                self.fresh = False
                self.transport.write(frame)
                return
            # A second message before the next read or flush: batch it and the rest of this
            # loop iteration's. (The batch size is 0 whenever no frame is batched.)
            batch = self._batch = []
            self.loop.call_soon(self.flush)
        batch.append(frame)
        self._batch_size += len(frame)
        if self._batch_size >= self.write_limit:
            # Let flow control see it: the transport may pause writing now.
            self._write_batch()

    def write_now(self, frame: bytes | bytearray) -> None:
        """Write the batch, then ``frame``, unless the transport is closing."""
        self.flush()
        transport = self.transport
        if not transport.is_closing():
            transport.write(frame)

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

    def _write_batch(self) -> None:
        """Write the frames batched so far; keep the batch open."""
        batch = self._batch
        if batch:
            transport = self.transport
            if not transport.is_closing():
                transport.write(batch[0] if len(batch) == 1 else b"".join(batch))
            batch.clear()
            self._batch_size = 0

    def flush(self) -> None:
        """Write the frames batched in this loop iteration and close the batch: the next
        message goes out at once."""
        self._write_batch()
        self._batch = None
        self.fresh = True
