"""Waking a task in the readiness callback that resolved its future, not in the next loop
iteration.

An :class:`asyncio.Future` runs its callbacks with ``call_soon``: bytes read in one loop
iteration wake the task that waits for them in the next one, and on asyncio's own loops
each iteration is Python code and one more ``epoll_wait``. A front end that resolves a
future in a readiness callback instead takes the callbacks off the future first
(``resolve_deferred``), finishes processing what it read, then runs them
(``run_wakeups``): the task steps before the callback returns, and sees the connection
as it would have in the next iteration. Inside a task (bytes fed from a coroutine), where a
task can't step inside another one, the callbacks are scheduled with ``call_soon`` as the
future would have.

Both functions are Rust's (``wsrs._core``): the native transport's read
(``wsrs._core.Socket.deliver``) hands a message to its receiver and wakes it without Python
code. Used by the queue of received messages (``MessageQueue`` in ``wsrs/asyncio/messages.py``)
and the opening handshake's buffer (``HandshakeBuffer`` in ``wsrs/asyncio/handshake.py``),
for the 4.0 API and :mod:`wsrs.asyncio` alike.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

from .._core import resolve_deferred, run_wakeups


__all__ = ["Wakeup", "Wakeups", "resolve_deferred", "run_wakeups"]

T = TypeVar("T")

Callback: TypeAlias = tuple[Callable[..., object], contextvars.Context]

Wakeup: TypeAlias = tuple["asyncio.Future[Any]", list[Callback]]
"""A resolved future and the callbacks taken off it, to run with ``run_wakeups``."""


class Wakeups:
    """The wake-ups of one connection's waiting tasks, taken off their futures during a
    readiness callback and run at its end (:meth:`run`).

    Only on asyncio's own loops (:attr:`inline`), whose iterations are Python code; other
    loops (uvloop) run a future's callbacks for less than taking them off costs, so there
    :meth:`resolve` resolves the future as usual.
    """

    __slots__ = ("inline", "loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inline = isinstance(loop, asyncio.BaseEventLoop)
        """Whether wake-ups are deferred to :meth:`run` on this loop."""
        self.pending: list[Wakeup] = []
        """The futures resolved since the last :meth:`run`, with their callbacks."""

    def resolve(self, future: asyncio.Future[T], result: T) -> None:
        """Resolve the pending ``future``; on asyncio's loops, its callbacks wait for
        :meth:`run`."""
        if self.inline:
            resolve_deferred(future, result, self.pending)
        else:
            future.set_result(result)

    def run(self) -> None:
        """Run the wake-ups :meth:`resolve` deferred (``run_wakeups``)."""
        pending = self.pending
        if pending:
            # Emptied, not replaced: the message queue (Rust) holds this list.
            woken = pending.copy()
            pending.clear()
            run_wakeups(self.loop, woken)
