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
import collections
import logging
from collections.abc import Callable
from typing import TypeAlias

from .._core import Fragment
from .wakeup import Wakeups, resolve_deferred


__all__ = ["Data", "Item", "MessageQueue"]

logger = logging.getLogger("wsrs.protocol")

Data: TypeAlias = str | bytes
"""A message: ``str`` for text, ``bytes`` for binary."""

Item: TypeAlias = str | bytes | Fragment
"""What the queue holds: a whole message, or one frame of a fragmented message."""


class MessageQueue:
    """Messages received and not read yet, with the ``max_queue`` policy.

    Args:
        loop: The event loop of the connection.
        max_queue: Messages queued before reading pauses; 0 disables the limit.
        pause: Called when reading from the peer must pause.
        resume: Called when reading may resume.
        low: Messages left when reading resumes; half of ``max_queue`` by default.
    """

    __slots__ = (
        "_closing",
        "_cut",
        "_low",
        "_paused",
        "_pause",
        "_resume",
        "_waiters",
        "defer",
        "wakeups",
        "ended",
        "loop",
        "max_queue",
        "messages",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        max_queue: int,
        pause: Callable[[], None],
        resume: Callable[[], None],
        low: int | None = None,
    ) -> None:
        self.loop = loop
        self.max_queue = max_queue
        self._low = max(max_queue // 2, 1) if low is None else max(low, 1)
        self._pause = pause
        self._resume = resume
        self.messages: collections.deque[Item] = collections.deque()
        """Messages (or fragments of messages) received and not read yet, oldest first."""
        self.ended = False
        """Whether no message will arrive any more."""
        self._waiters: collections.deque[asyncio.Future[Item | None]] = collections.deque()
        self.wakeups = Wakeups(loop)
        """The wake-ups of receivers handed a message while :attr:`defer` was set (rule 7);
        the front end runs them (``wakeups.run()``) at the end of the read. Deferred only
        on asyncio's own loops (``wakeups.inline``)."""
        self.defer = False
        """Whether :meth:`put` hands messages through :attr:`wakeups`."""
        self._paused = False
        self._closing = False
        # While closing: a fragment was dropped, so nothing after it is queued.
        self._cut = False

    def put(self, message: Item) -> None:
        """Queue a message (or a fragment of one) received from the peer; pause reading if
        the queue is full."""
        max_queue = self.max_queue
        messages = self.messages
        if self._closing and (self._cut or (max_queue and len(messages) >= max_queue)):
            if type(message) is Fragment:
                self._cut = True
            logger.debug("closing: message dropped, the queue is full")
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # else cancelled
                if self.defer:  # set only where wakeups.inline is
                    resolve_deferred(waiter, message, self.wakeups.pending)
                else:
                    waiter.set_result(message)
                return
        messages.append(message)
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        max_queue = self.max_queue
        if (
            max_queue
            and len(self.messages) >= max_queue
            and not self._paused
            and not self._closing
            and not self.ended
        ):
            self._paused = True
            self._pause()

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

    def wait(self) -> asyncio.Future[Item | None]:
        """Return a future of the next message (or fragment), for a receiver that found the
        queue empty: :meth:`put` hands it the next one, :meth:`end` ``None`` (at once if the
        queue has ended).

        What :meth:`get` awaits; a receiver may await it itself, without a coroutine for
        :meth:`get`, if it gives a cancelled wait's message back with :meth:`give_back`.
        """
        waiter: asyncio.Future[Item | None] = self.loop.create_future()
        if self.ended:
            waiter.set_result(None)
        else:
            self._waiters.append(waiter)
        return waiter

    def give_back(self, waiter: asyncio.Future[Item | None]) -> None:
        """The receiver awaiting ``waiter`` (from :meth:`wait`) was cancelled: if a message
        was handed to it already, hand it to the next waiting receiver, or else put it back
        at the front of the queue."""
        if not waiter.done() or waiter.cancelled():
            return
        message = waiter.result()
        if message is None:
            return
        waiters = self._waiters
        while waiters:
            other = waiters.popleft()
            if not other.done():
                other.set_result(message)
                return
        self.messages.appendleft(message)
        self._maybe_pause()

    def take(self) -> Item:
        """Return the next message (or fragment) now; the queue must not be empty.

        What :meth:`get` does once a message is there: a receiver that sees one queued
        takes it without creating a coroutine.
        """
        messages = self.messages
        message = messages.popleft()
        if self._paused and len(messages) < self._low:
            self._paused = False
            self._resume()
        return message

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

    def close_sent(self) -> None:
        """This side sent its close frame: keep reading, drop what does not fit."""
        self._closing = True
        if self._paused:
            self._paused = False
            self._resume()

    def end(self) -> None:
        """No message will arrive any more: wake every waiting :meth:`get`."""
        self.ended = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
