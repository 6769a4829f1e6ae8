"""What a connection does on its own over time: keepalive pings and idle compaction.

- :class:`Keepalive` sends a ping every ``ping_interval`` seconds and fails the connection
  with 1011 when its pong does not come within ``ping_timeout``. Without ``ping_timeout`` it
  keeps one unanswered ping at most, so a peer that never answers cannot make pings pile up.
  Between pings it is a timer, not a task (a task per connection cost a short-lived
  connection 8 % of its instructions).
- :class:`IdleCompactor` checks every ``compact_after`` seconds whether the connection
  received or sent anything since the last check; a connection idle for a whole period frees
  its spare buffers and compression state once
  (:meth:`Connection.compact <wsrs.connection.Connection.compact>`), then asks the C heap to
  give the memory back.

The checks of every connection of an event loop with the same ``compact_after`` share one
:class:`IdleSweeper`: one timer per period walks them all, rather than one timer per
connection (at 100,000 connections on 6 workers and ``compact_after=5``, that was about
3,300 timer callbacks per second per worker, each a push and a pop on the loop's heap). A
connection registers when it opens and leaves when it closes, both O(1); a sweeper with no
connection has no timer; the registry holds loops and sweepers weakly, so a closed loop
leaves nothing behind. The sweep walks ``SWEEP_SLICE`` connections per loop callback, so a
large set never blocks the loop for long (measured: ``benches/idle_sweep.py``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable

from .. import _memory
from ..connection import Connection, State
from ..exceptions import ConnectionClosed


__all__ = ["SWEEP_SLICE", "IdleCompactor", "IdleSweeper", "Keepalive"]

logger = logging.getLogger("wsrs.protocol")

SWEEP_SLICE = 2000
"""Connections checked per loop callback during a sweep: about 0.6 ms of checks
(``benches/idle_sweep.py``), so other callbacks never wait much longer than that."""


class Keepalive:
    """Send keepalive pings until the connection is no longer OPEN.

    Every ``ping_interval`` seconds (counted from the start, then from the end of the
    previous round), it sends a ping; with ``ping_timeout``, it fails the connection when
    the pong does not come within that many seconds. Without ``ping_timeout``, a peer that
    never answers must not make the unanswered pings pile up: it keeps one waiting at most,
    forgetting the previous ping before it sends the next.

    Between pings it is a timer of the loop, not a task: a task exists only while a ping
    waits for its pong (:attr:`task`). A connection that lives less than ``ping_interval``
    (most short-lived ones) never makes one, and stopping it cancels a timer.

    Args:
        loop: The event loop of the connection.
        ping_interval: Seconds between pings.
        ping_timeout: Seconds to wait for a pong before calling ``fail``; ``None`` waits
            forever.
        state: Return the state of the connection.
        ping: Send a ping; return its payload and the future its pong resolves.
        forget_ping: Stop waiting for the pong of a ping.
        fail: Fail the connection: the pong did not come in time.
    """

    __slots__ = (
        "_fail",
        "_forget_ping",
        "_loop",
        "_ping",
        "_previous",
        "_state",
        "_timer",
        "ping_interval",
        "ping_timeout",
        "stopped",
        "task",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        ping_interval: float,
        ping_timeout: float | None,
        state: Callable[[], State],
        ping: Callable[[], Awaitable[tuple[bytes, asyncio.Future[None]]]],
        forget_ping: Callable[[bytes], None],
        fail: Callable[[], None],
    ) -> None:
        self._loop = loop
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._state = state
        self._ping = ping
        self._forget_ping = forget_ping
        self._fail = fail
        self._previous: bytes | None = None  # the payload of the last ping sent
        self.stopped = False
        """Whether it stopped: the connection left OPEN, or :meth:`stop` was called."""
        self.task: asyncio.Task[None] | None = None
        """The task of the ping round in progress (sending a ping, waiting for its pong),
        or the last one."""
        self._timer: asyncio.TimerHandle | None = loop.call_later(ping_interval, self._due)

    def _due(self) -> None:
        """A ping is due: start a round, unless the connection is no longer OPEN."""
        self._timer = None
        if self._state() is not State.OPEN:
            self.stopped = True
            return
        self.task = self._loop.create_task(self._round())

    async def _round(self) -> None:
        """Send a ping and wait for its pong; then wait ``ping_interval`` for the next."""
        try:
            if self._previous is not None:
                self._forget_ping(self._previous)
            self._previous, pong_waiter = await self._ping()
            if self.ping_timeout is not None:
                try:
                    async with asyncio.timeout(self.ping_timeout):
                        await pong_waiter
                except TimeoutError:
                    logger.debug("keepalive ping timed out")
                    self.stopped = True
                    self._fail()
                    return
        # The connection stops this before it fails the futures the round awaits.
        except ConnectionClosed:  # pragma: no cover
            return
        # (stop() cancels this task, so it never gets here once stopped.)
        self._timer = self._loop.call_later(self.ping_interval, self._due)

    def stop(self) -> None:
        """Stop: cancel the next ping, or the round in progress."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.task is not None:
            self.task.cancel()


class IdleCompactor:
    """Free the memory of a connection that stays idle for ``compact_after`` seconds.

    It joins the :class:`IdleSweeper` of ``loop`` and ``compact_after`` at once and leaves
    it on :meth:`stop`. A connection idle for between one and two periods is compacted
    once; activity makes it a candidate again.

    Args:
        loop: The event loop of the connection.
        connection: The Sans-I/O connection to compact.
        compact_after: Seconds between checks.
        side: ``"server"`` or ``"client"``, for the log.
        take_activity: Return whether the connection received or sent anything since the
            last call (the front end sets a flag on its hot paths; this clears it). Return
            ``True`` at the first call, so a connection is not checked idle before it had a
            whole period to be active: the first sweep may come at any time in that period.
    """

    __slots__ = ("_compacted", "connection", "side", "stopped", "sweeper", "take_activity")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connection: Connection,
        compact_after: float,
        side: str,
        take_activity: Callable[[], bool],
    ) -> None:
        self.connection = connection
        self.side = side
        self.take_activity = take_activity
        self._compacted = False
        self.stopped = False
        """Whether :meth:`stop` was called."""
        self.sweeper = IdleSweeper.of(loop, compact_after)
        """The sweeper that checks this connection."""
        self.sweeper.add(self)

    def check(self) -> bool:
        """Compact the connection if it was idle since the last check and is not compacted
        already; return whether the C heap should be trimmed."""
        if self.take_activity():
            self._compacted = False
            return False
        if self._compacted:
            return False
        freed = self.connection.compact()
        self._compacted = True
        if freed:
            logger.debug(
                "%s - idle: %d bytes of buffers and compression state freed", self.side, freed
            )
        # Give the freed pages back to the OS (glibc keeps them otherwise).
        return bool(freed) or _memory.retains_freed_memory()

    def stop(self) -> None:
        """Stop checking: the connection is closed."""
        self.stopped = True
        self.sweeper.discard(self)


_sweepers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakValueDictionary[float, IdleSweeper]
] = weakref.WeakKeyDictionary()


class IdleSweeper:
    """Check the :class:`IdleCompactor` objects of one event loop and ``compact_after``
    every ``compact_after`` seconds, with one timer.

    Use :meth:`of` rather than the constructor: it returns the loop's sweeper for that
    period, made on first use. The registry holds loops and sweepers weakly: a sweeper lives
    while a compactor holds it, and nothing global keeps a closed loop alive.

    Args:
        loop: The event loop to run on.
        compact_after: Seconds between sweeps.
    """

    __slots__ = (
        "__weakref__",
        "_handle",
        "_members",
        "_next",
        "_trim",
        "_walk",
        "compact_after",
        "loop",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, compact_after: float) -> None:
        self.loop = loop
        self.compact_after = compact_after
        # In order of arrival (a dict): a sweep checks the oldest connections first.
        self._members: dict[IdleCompactor, None] = {}
        # The timer of the next sweep or the callback of the next slice; None when idle.
        self._handle: asyncio.Handle | None = None
        # The sweep in progress: the members when it started, where it is, whether to trim.
        self._walk: list[IdleCompactor] = []
        self._next = 0
        self._trim = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, compact_after: float) -> IdleSweeper:
        """Return the sweeper of ``loop`` for ``compact_after``, made on first use."""
        sweepers = _sweepers.get(loop)
        if sweepers is None:
            sweepers = _sweepers[loop] = weakref.WeakValueDictionary()
        sweeper = sweepers.get(compact_after)
        if sweeper is None:
            sweeper = sweepers[compact_after] = cls(loop, compact_after)
        return sweeper

    def __len__(self) -> int:
        """Return the number of connections checked."""
        return len(self._members)

    @property
    def active(self) -> bool:
        """Whether a sweep is scheduled or in progress (there are connections to check)."""
        return self._handle is not None

    def add(self, compactor: IdleCompactor) -> None:
        """Check ``compactor`` from the next sweep on; start the timer for the first one."""
        self._members[compactor] = None
        if self._handle is None:
            self._handle = self.loop.call_later(self.compact_after, self._sweep)

    def discard(self, compactor: IdleCompactor) -> None:
        """Stop checking ``compactor``; stop the timer (or the sweep) after the last one."""
        self._members.pop(compactor, None)
        if not self._members and self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._walk = []

    def _sweep(self) -> None:
        # A copy, so connections may come and go during a sweep that spans several slices;
        # those that go are skipped, those that come are checked from the next sweep on.
        self._walk = list(self._members)
        self._next = 0
        self._trim = False
        self._slice()

    def _slice(self) -> None:
        walk = self._walk
        start = self._next
        end = self._next = start + SWEEP_SLICE
        trim = False
        for compactor in walk[start:end]:
            if compactor.stopped:
                continue
            try:
                if compactor.check():
                    trim = True
            except Exception:
                # One connection's failure must not stop the checks of all the others.
                logger.exception("%s - idle compaction failed", compactor.side)
        self._trim = self._trim or trim
        if end < len(walk):
            self._handle = self.loop.call_soon(self._slice)
            return
        self._walk = []
        if self._trim:
            _memory.request_trim(self.loop)
        self._handle = self.loop.call_later(self.compact_after, self._sweep)
