"""What the checks of idle compaction cost an event loop: one timer per connection (the former
design) against one sweeper per loop (:class:`wsrs.asyncio.keepalive.IdleSweeper`).

Run::

    python benches/idle_sweep.py                        # 20,000 connections, compact_after=5
    python benches/idle_sweep.py --compact-after 1 --periods 5
    python benches/idle_sweep.py --connections 2000 --compact-after 0.2   # smoke run

Each design runs in turn on a new event loop of the same process (asyncio's, then uvloop's
when it is installed), on fake connections: nothing but the checks runs, so the
measurement is the checks alone. The connections register over one period (as a server
accepts them over time, so the timers of the former design are spread), then the script
measures ``--periods`` periods:

- ``ms/s``: the CPU time of the process per second of wall time (the loop runs nothing
  else: an empty loop is the baseline);
- ``longest ms``: the longest callback of the checks, in thread CPU time, over two more
  periods: how long the checks hold the loop at once (one check for a timer per connection,
  one slice of ``SWEEP_SLICE`` for the sweeper).

The connections are idle and compacted already, the steady state of an idle server: a
check reads the activity flag and returns. Ratios matter, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

from wsrs.asyncio.keepalive import SWEEP_SLICE, IdleCompactor, IdleSweeper
from wsrs.connection import Connection


class FakeConnection:
    """A connection with nothing left to free."""

    def compact(self) -> int:
        return 0


def idle() -> bool:
    return False


class PerConnectionTimer:
    """The former design: each connection re-arms its own ``call_later``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, compact_after: float) -> None:
        self.loop = loop
        self.connection = FakeConnection()
        self.compact_after = compact_after
        self.take_activity = idle
        self.compacted = False
        self.timer = loop.call_later(compact_after, self.tick)

    def tick(self) -> None:
        if self.take_activity():
            self.compacted = False
        elif not self.compacted:
            self.connection.compact()
            self.compacted = True
        self.timer = self.loop.call_later(self.compact_after, self.tick)

    def stop(self) -> None:
        self.timer.cancel()


def sweeper_design(loop: asyncio.AbstractEventLoop, compact_after: float) -> IdleCompactor:
    """The current design: the connection joins the loop's sweeper."""
    return IdleCompactor(loop, cast(Connection, FakeConnection()), compact_after, "server", idle)


Design = Callable[[asyncio.AbstractEventLoop, float], PerConnectionTimer | IdleCompactor]


def longest(owner: type, name: str, longest_call: list[float]) -> Callable[[], None]:
    """Wrap the method ``name`` of ``owner`` to record its longest call in thread CPU time
    (which preemption by other processes does not inflate); return what undoes it."""
    method = getattr(owner, name)

    def timed(self: Any) -> None:
        start = time.thread_time()
        method(self)
        longest_call[0] = max(longest_call[0], time.thread_time() - start)

    setattr(owner, name, timed)
    return lambda: setattr(owner, name, method)


async def measure(
    design: Design | None, connections: int, compact_after: float, periods: int
) -> tuple[float, float]:
    """Return (CPU seconds per wall second, longest callback of the checks) of ``design``."""
    loop = asyncio.get_running_loop()
    made: list[Any] = []
    if design is not None:
        batches = 100
        for _batch in range(batches):
            for _ in range(connections // batches):
                made.append(design(loop, compact_after))
            await asyncio.sleep(compact_after / batches)
        await asyncio.sleep(compact_after)  # every connection compacted once: steady state
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(compact_after * periods)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    # The longest callback, over two more periods (timing each call costs time itself).
    longest_call = [0.0]
    if design is PerConnectionTimer:
        undo = longest(PerConnectionTimer, "tick", longest_call)
    elif design is not None:
        undo = longest(IdleSweeper, "_slice", longest_call)
    else:
        undo = lambda: None  # noqa: E731
    await asyncio.sleep(2 * compact_after)  # the timers armed before use the method as it was
    undo()
    for item in made:
        item.stop()
    return cpu / wall, longest_call[0]


def run(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], args: argparse.Namespace
) -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    designs: list[tuple[str, Design | None]] = [
        ("empty loop", None),
        ("timer per connection", PerConnectionTimer),
        ("sweeper per loop", sweeper_design),
    ]
    for name, design in designs:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            rate, stall = runner.run(
                measure(design, args.connections, args.compact_after, args.periods)
            )
        rows.append((name, rate, stall))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--compact-after", type=float, default=5.0)
    parser.add_argument("--periods", type=int, default=3)
    args = parser.parse_args()
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
        ("asyncio", asyncio.new_event_loop)
    ]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional
        pass
    else:
        loops.append(("uvloop", uvloop.new_event_loop))
    print(
        f"{args.connections} idle connections, compact_after={args.compact_after} s, "
        f"{args.periods} periods measured, SWEEP_SLICE={SWEEP_SLICE}"
    )
    print(f"{'loop':8} {'design':22} {'ms/s':>8} {'longest ms':>11}")
    for loop_name, factory in loops:
        rows = run(factory, args)
        empty = rows[0][1]
        for name, rate, stall in rows:
            cost = rate - empty if name != "empty loop" else rate
            print(f"{loop_name:8} {name:22} {cost * 1000:8.3f} {stall * 1000:11.3f}")
        per_timer, sweeper = rows[1][1] - empty, rows[2][1] - empty
        if sweeper > 0:
            print(
                f"{loop_name:8} ratio: the sweeper costs {per_timer / sweeper:.1f}x less loop time"
            )


if __name__ == "__main__":
    main()
