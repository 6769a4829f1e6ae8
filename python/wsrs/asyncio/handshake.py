"""The bytes of the opening handshake: :class:`HandshakeBuffer`.

Until the opening handshake is done, what the transport reads is kept here for the HTTP
parsers of :mod:`wsrs.http11`; the bytes that follow the request or response (frames a peer
sent early) go to the WebSocket connection once it opens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..exceptions import SecurityError
from .wakeup import Wakeups


__all__ = ["HandshakeBuffer"]


class HandshakeBuffer:
    """Bytes received before the WebSocket connection opens.

    Args:
        loop: The event loop of the connection.
        read_limit: Largest request or response accepted, in bytes.
    """

    __slots__ = ("_waiter", "_wakeups", "data", "eof", "loop", "read_limit")

    def __init__(self, loop: asyncio.AbstractEventLoop, read_limit: int) -> None:
        self.loop = loop
        self.read_limit = read_limit
        self.data = bytearray()
        """What was received and not parsed yet."""
        self.eof = False
        """Whether the peer closed its side (or TCP is lost)."""
        self._waiter: asyncio.Future[None] | None = None
        self._wakeups = Wakeups(loop)

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Keep ``data``; return whether the buffer holds more than ``read_limit`` bytes, so
        that reading pauses while the handshake waits (e.g. on ``process_request``).

        A reader waiting in :meth:`read` wakes at :meth:`wake`, which the caller runs once it
        acted on the answer (:mod:`wsrs.asyncio.wakeup`).
        """
        self.data += data
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._wakeups.resolve(waiter, None)
        return len(self.data) > self.read_limit

    def wake(self) -> None:
        """Wake the reader :meth:`feed` handed bytes to: now in a readiness callback, with
        ``call_soon`` inside a task."""
        self._wakeups.run()

    def feed_eof(self) -> None:
        """Note that no more bytes will come."""
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self, parse: Callable[..., Any]) -> Any:
        """Wait until ``parse`` finds a complete HTTP message; consume and return it.

        Raises:
            SecurityError: When more than ``read_limit`` bytes came without one.
            InvalidMessage: From ``parse``, for a malformed message or one cut short.
        """
        while True:
            parsed = parse(self.data, eof=self.eof)
            if parsed is not None:
                message, consumed = parsed
                del self.data[:consumed]
                return message
            if self.eof:  # pragma: no cover - the HTTP parsers raise at EOF instead
                raise EOFError("connection closed during the opening handshake")
            if len(self.data) > self.read_limit:
                raise SecurityError(
                    f"opening handshake larger than read_limit ({self.read_limit} bytes)"
                )
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def take(self) -> bytes:
        """Return and forget what is left: the first frames, once the connection opens."""
        data = bytes(self.data)
        self.data.clear()
        return data
