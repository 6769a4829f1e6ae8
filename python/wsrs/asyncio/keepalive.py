"""What a connection does on its own over time: keepalive pings and idle compaction.

- :func:`keepalive` sends a ping every ``ping_interval`` seconds and fails the connection
  with 1011 when its pong does not come within ``ping_timeout``. Without ``ping_timeout`` it
  keeps one unanswered ping at most, so a peer that never answers cannot make pings pile up.
- :class:`IdleCompactor` checks every ``compact_after`` seconds whether the connection
  received or sent anything since the last check; a connection idle for a whole period frees
  its spare buffers and compression state once
  (:meth:`Connection.compact <wsrs.connection.Connection.compact>`), then asks the C heap to
  give the memory back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .._memory import request_trim, retains_freed_memory
from ..connection import Connection, State
from ..exceptions import ConnectionClosed


__all__ = ["IdleCompactor", "keepalive"]

logger = logging.getLogger("wsrs.protocol")


async def keepalive(
    *,
    ping_interval: float,
    ping_timeout: float | None,
    state: Callable[[], State],
    ping: Callable[[], Awaitable[tuple[bytes, asyncio.Future[None]]]],
    forget_ping: Callable[[bytes], None],
    fail: Callable[[], None],
) -> None:
    """Send keepalive pings until the connection is no longer OPEN.

    Args:
        ping_interval: Seconds between pings.
        ping_timeout: Seconds to wait for a pong before calling ``fail``; ``None`` waits
            forever.
        state: Return the state of the connection.
        ping: Send a ping; return its payload and the future its pong resolves.
        forget_ping: Stop waiting for the pong of a ping.
        fail: Fail the connection: the pong did not come in time.
    """
    previous: bytes | None = None
    try:
        while True:
            await asyncio.sleep(ping_interval)
            if state() is not State.OPEN:
                return
            if previous is not None:
                # Without ping_timeout, a peer that never answers must not make the
                # unanswered pings pile up: keepalive keeps one waiting at most.
                forget_ping(previous)
            previous, pong_waiter = await ping()
            if ping_timeout is None:
                continue
            try:
                async with asyncio.timeout(ping_timeout):
                    await pong_waiter
            except TimeoutError:
                logger.debug("keepalive ping timed out")
                fail()
                return
    # The connection cancels this task before it fails the futures the task awaits.
    except ConnectionClosed:  # pragma: no cover
        return


class IdleCompactor:
    """Free the memory of a connection that stays idle for ``compact_after`` seconds.

    Args:
        loop: The event loop of the connection.
        connection: The Sans-I/O connection to compact.
        compact_after: Seconds between checks.
        side: ``"server"`` or ``"client"``, for the log.
        take_activity: Return whether the connection received or sent anything since the
            last call (the front end sets a flag on its hot paths; this clears it).
    """

    __slots__ = (
        "_compacted",
        "_timer",
        "compact_after",
        "connection",
        "loop",
        "side",
        "take_activity",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connection: Connection,
        compact_after: float,
        side: str,
        take_activity: Callable[[], bool],
    ) -> None:
        self.loop = loop
        self.connection = connection
        self.compact_after = compact_after
        self.side = side
        self.take_activity = take_activity
        self._compacted = False
        self._timer = loop.call_later(compact_after, self._tick)

    def _tick(self) -> None:
        if self.take_activity():
            self._compacted = False
        elif not self._compacted:
            freed = self.connection.compact()
            self._compacted = True
            if freed:
                logger.debug(
                    "%s - idle: %d bytes of buffers and compression state freed", self.side, freed
                )
            if freed or retains_freed_memory():
                # Give the freed pages back to the OS (glibc keeps them otherwise).
                request_trim(self.loop)
        self._timer = self.loop.call_later(self.compact_after, self._tick)

    def stop(self) -> None:
        """Stop checking: the connection is closed."""
        self._timer.cancel()
