"""The queue of received messages: what ``recv()`` returns, in order.

Rules, the same for every asyncio front end:

1. :meth:`MessageQueue.put` hands a message to the oldest receiver waiting for one (the
   future of :meth:`~MessageQueue.wait`, which :meth:`~MessageQueue.get` awaits), or else
   appends it. When ``max_queue`` messages are waiting, it calls ``pause()``: reading from
   the peer stops (:class:`wsrs.flow.ReadGate.QUEUE`) until :meth:`~MessageQueue.take`
   brings the queue below half of ``max_queue``, then ``resume()``.
2. After this side sent its close frame (:meth:`~MessageQueue.close_sent`), reading goes on
   so that the peer's close frame gets through; a message that does not fit in the full
   queue is dropped, so memory stays bounded while closing. A fragment that does not fit
   cuts the stream there: nothing after it is queued, so no message is queued with a piece
   missing.
3. After :meth:`~MessageQueue.end` (close frame received, failure or TCP lost) no message
   arrives any more: :meth:`~MessageQueue.get` returns the messages still queued, then
   ``None``.
4. Cancelling :meth:`~MessageQueue.get` loses nothing: a message handed to it goes back to
   the next waiting receiver, or to the front of the queue (:meth:`~MessageQueue.give_back`).
   Several coroutines may wait at once; each message goes to exactly one of them.
5. A fragmented message may come frame by frame, as :class:`~wsrs._core.Fragment` objects
   (a front end that streams fragments, :attr:`BaseProtocol.stream_fragments
   <wsrs.asyncio.base.BaseProtocol.stream_fragments>`): each is one item of the queue, so
   ``max_queue`` bounds them as it bounds messages. :meth:`~MessageQueue.join` takes the
   fragments off the queue as they arrive, so a message of more fragments than ``max_queue``
   never stalls reading; cancelling it loses nothing either (what it joined so far goes back
   to the front of the queue as one fragment).
6. A message that arrives while :meth:`~MessageQueue.get` waits is handed to it, never
   queued, so it does not count against ``max_queue``: an application that reads as fast as
   messages come never makes reading pause (with ``max_queue=1``, uvicorn's rule, pausing
   and resuming the transport for every message cost 40 % of a busy server's time). The
   receiver wakes with the message: it does not take it off the queue in a second step.
7. A receiver handed a message in a readiness callback wakes before that callback returns,
   not in the next loop iteration. While :attr:`~MessageQueue.defer` is set (the front end
   sets it around the events of one read), :meth:`~MessageQueue.put` takes the receiving
   task's wake-up off its future before resolving it, and the front end runs it once the
   whole read is processed (:attr:`~MessageQueue.wakeups`, :mod:`wsrs.asyncio.wakeup`): the
   task sees the connection as it would in the next iteration, a reply goes out inside the
   callback, and a round trip costs each end one loop iteration and one ``epoll_wait``
   instead of two.
   Inside a task (bytes fed by a coroutine) the wake-up is scheduled with ``call_soon`` as
   usual. Only on asyncio's own loops, whose iterations are Python code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeAlias

from .. import _core
from .._core import Fragment
from .wakeup import Wakeups


__all__ = ["Data", "Item", "MessageQueue"]

Data: TypeAlias = str | bytes
"""A message: ``str`` for text, ``bytes`` for binary."""

Item: TypeAlias = str | bytes | Fragment
"""What the queue holds: a whole message, or one frame of a fragmented message."""


class MessageQueue(_core.Inbox):
    """Messages received and not read yet, with the ``max_queue`` policy.

    The state and the synchronous methods (:meth:`put`, :meth:`take`, :meth:`wait`,
    :meth:`give_back`, :meth:`close_sent`, :meth:`end`; :attr:`messages`, :attr:`ended`,
    :attr:`defer`, :attr:`wakeups`) are Rust's (``wsrs._core.Inbox``), so that the
    native transport hands the messages of a read to their receivers without a Python call
    per message (``wsrs._core.Socket.deliver``); this class adds the coroutines.

    Args:
        loop: The event loop of the connection.
        max_queue: Messages queued before reading pauses; 0 disables the limit.
        pause: Called when reading from the peer must pause.
        resume: Called when reading may resume.
        low: Messages left when reading resumes; half of ``max_queue`` by default.
    """

    __slots__ = ()

    def __new__(
        cls,
        loop: asyncio.AbstractEventLoop,
        max_queue: int,
        pause: Callable[[], None],
        resume: Callable[[], None],
        low: int | None = None,
    ) -> MessageQueue:
        """Make the queue and its :class:`~wsrs.asyncio.wakeup.Wakeups`."""
        return super().__new__(cls, loop, max_queue, pause, resume, low, wakeups=Wakeups(loop))

    async def get(self) -> Item | None:
        """Return the next message (or fragment), waiting for one; ``None`` once the queue
        has ended and is empty."""
        if self.messages:
            return self.take()
        waiter = self.wait()
        try:
            return await waiter
        except asyncio.CancelledError:
            self.give_back(waiter)
            raise

    async def join(self, first: Fragment) -> Data | None:
        """Return the message that ``first`` starts, waiting for the rest of its fragments.

        Each fragment leaves the queue as it arrives, so that reading goes on; the payloads
        are joined in one buffer (no object kept per fragment, so memory follows the size of
        the message, which ``max_size`` bounds, not the number of its frames). ``None`` once
        the queue has ended before the last fragment.

        Cancelling it loses nothing: what it joined so far goes back to the front of the
        queue as one fragment, which the next :meth:`join` continues.
        """
        data = bytearray(first.data)
        fragment = first
        try:
            while not fragment.fin:
                item = await self.get()
                if item is None:
                    return None
                # The Rust reader delivers the frames of a message in a row, and control
                # frames do not enter the queue.
                assert type(item) is Fragment
                fragment = item
                data += fragment.data
        except asyncio.CancelledError:
            self.messages.appendleft(Fragment(bytes(data), first.text, False))
            raise
        return data.decode() if first.text else bytes(data)
