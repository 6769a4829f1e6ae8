"""The queue of received messages, without sockets: :mod:`wsrs.asyncio.messages`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from wsrs._core import Fragment, Ping, Reader, Socket, Writer
from wsrs.asyncio.messages import MessageQueue


class Reading:
    """Records the pause and resume calls of a queue."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def queue(self, max_queue: int) -> MessageQueue:
        return MessageQueue(
            asyncio.get_running_loop(),
            max_queue,
            lambda: self.calls.append("pause"),
            lambda: self.calls.append("resume"),
        )


async def test_messages_come_out_in_order() -> None:
    queue = Reading().queue(0)
    queue.put("one")
    queue.put(b"two")
    assert await queue.get() == "one"
    assert await queue.get() == b"two"


async def test_get_waits_for_a_message() -> None:
    queue = Reading().queue(0)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not task.done()
    queue.put("late")
    assert await task == "late"


async def test_each_message_goes_to_one_waiter() -> None:
    queue = Reading().queue(0)
    tasks = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    for message in ["a", "b", "c"]:
        queue.put(message)
    assert set(await asyncio.gather(*tasks)) == {"a", "b", "c"}


async def test_reading_pauses_at_max_queue_and_resumes_below_half() -> None:
    reading = Reading()
    queue = reading.queue(4)
    for i in range(3):
        queue.put(str(i))
    assert reading.calls == []
    queue.put("3")
    assert reading.calls == ["pause"]
    queue.put("4")  # what the read in progress carried is kept
    assert reading.calls == ["pause"] and len(queue.messages) == 5
    for expected in ["0", "1", "2"]:
        assert await queue.get() == expected
    assert reading.calls == ["pause"]  # 2 left: not below half of 4 yet
    assert await queue.get() == "3"
    assert reading.calls == ["pause", "resume"]


async def test_no_limit_never_pauses() -> None:
    reading = Reading()
    queue = reading.queue(0)
    for i in range(1000):
        queue.put(str(i))
    assert reading.calls == []


async def test_after_close_sent_reading_resumes_and_overflow_is_dropped() -> None:
    reading = Reading()
    queue = reading.queue(2)
    queue.put("a")
    queue.put("b")
    queue.close_sent()
    assert reading.calls == ["pause", "resume"]
    queue.put("dropped")
    assert list(queue.messages) == ["a", "b"]
    assert await queue.get() == "a"
    queue.put("kept")  # there is room again
    assert list(queue.messages) == ["b", "kept"]
    assert reading.calls == ["pause", "resume"]  # never paused again while closing


async def test_close_sent_when_not_paused_does_not_resume() -> None:
    reading = Reading()
    queue = reading.queue(2)
    queue.close_sent()
    assert reading.calls == []


async def test_end_wakes_waiters_and_drains_what_is_queued() -> None:
    queue = Reading().queue(0)
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.end()
    assert await waiting is None
    queue = Reading().queue(0)
    queue.put("last")
    queue.end()
    assert await queue.get() == "last"
    assert await queue.get() is None
    assert queue.ended


async def test_cancelled_get_loses_nothing() -> None:
    queue = Reading().queue(0)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    queue.put("still here")
    assert await queue.get() == "still here"


# Fragmented messages queued frame by frame


def frag(data: bytes, fin: bool, text: bool = False) -> Fragment:
    return Fragment(data, text, fin)


async def test_join_takes_fragments_as_they_arrive() -> None:
    reading = Reading()
    queue = reading.queue(2)
    queue.put(frag(b"caf\xc3", False, text=True))
    queue.put(frag(b"\xa9 ", False, text=True))
    assert reading.calls == ["pause"]  # fragments count against max_queue
    first = await queue.get()
    assert isinstance(first, Fragment)
    task = asyncio.create_task(queue.join(first))
    await asyncio.sleep(0)
    # The fragment it took brought the queue below half: reading resumed.
    assert reading.calls == ["pause", "resume"] and not queue.messages
    for _ in range(5):  # more fragments than max_queue: the joiner keeps taking them
        queue.put(frag(b"x", False, text=True))
        await asyncio.sleep(0)
    queue.put(frag(b"!", True, text=True))
    assert await task == "café xxxxx!"
    queue.put(frag(b"\x00", False))
    queue.put(frag(b"\x01", True))
    first = await queue.get()
    assert isinstance(first, Fragment)
    assert await queue.join(first) == b"\x00\x01"


async def test_cancelled_join_loses_nothing() -> None:
    queue = Reading().queue(0)
    queue.put(frag(b"ab", False))
    queue.put(frag(b"cd", False))
    first = await queue.get()
    assert isinstance(first, Fragment)
    task = asyncio.create_task(queue.join(first))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # What it joined went back to the front of the queue, as one fragment.
    [kept] = queue.messages
    assert isinstance(kept, Fragment)
    assert (kept.data, kept.text, kept.fin) == (b"abcd", False, False)
    queue.put(frag(b"ef", True))
    first = await queue.get()
    assert isinstance(first, Fragment)
    assert await queue.join(first) == b"abcdef"


async def test_join_ends_with_the_queue() -> None:
    queue = Reading().queue(0)
    queue.put(frag(b"cut", False))
    first = await queue.get()
    assert isinstance(first, Fragment)
    task = asyncio.create_task(queue.join(first))
    await asyncio.sleep(0)
    queue.end()
    assert await task is None


async def test_a_fragment_dropped_while_closing_cuts_the_stream() -> None:
    queue = Reading().queue(2)
    queue.put(frag(b"a", False))
    queue.put(frag(b"b", False))
    queue.close_sent()
    queue.put(frag(b"c", False))  # does not fit: dropped, and the stream is cut here
    assert await queue.get() is not None
    # There is room again, but what follows a missing piece is never queued.
    queue.put(frag(b"d", True))
    queue.put("next message")
    assert len(queue.messages) == 1


async def test_a_message_for_a_waiting_get_does_not_pause_reading() -> None:
    reading = Reading()
    queue = reading.queue(1)
    for i in range(5):  # an application that reads as fast as messages come
        task = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.put(str(i))
        assert await task == str(i)
    assert reading.calls == []
    queue.put("unread")  # nobody waits: max_queue=1 pauses at once
    assert reading.calls == ["pause"]
    assert await queue.get() == "unread"
    assert reading.calls == ["pause", "resume"]


async def test_a_handed_message_whose_get_is_cancelled_is_queued_again() -> None:
    reading = Reading()
    queue = reading.queue(1)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put("handed")
    assert reading.calls == []
    task.cancel()  # handed the message, then cancelled before it returned it
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reading.calls == ["pause"]  # an ordinary unread message now
    assert await queue.get() == "handed"
    assert reading.calls == ["pause", "resume"]


async def test_a_handed_message_passes_to_the_next_waiter_on_cancellation() -> None:
    reading = Reading()
    queue = reading.queue(1)
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put("one")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "one"
    assert reading.calls == []


async def test_a_get_cancelled_after_the_end_gives_nothing_back() -> None:
    reading = Reading()
    queue = reading.queue(1)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.end()  # the waiter is told None
    task.cancel()  # then cancelled before it returned
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not queue.messages
    assert await queue.get() is None
    assert reading.calls == []


async def test_a_handed_message_skips_cancelled_waiters() -> None:
    reading = Reading()
    queue = reading.queue(1)
    first, second, third = (asyncio.create_task(queue.get()) for _ in range(3))
    await asyncio.sleep(0)
    queue.put("one")  # handed to the first
    second.cancel()  # its waiter is cancelled at once
    first.cancel()  # gives "one" back: past the cancelled second, to the third
    for task in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await third == "one"
    assert not queue.messages


# ---------------------------------------------------------------- rule 7: wake-ups deferred


def deliver(queue: MessageQueue, *messages: str) -> None:
    """What a front end does with the messages of one read."""
    queue.defer = True
    for message in messages:
        queue.put(message)
    queue.defer = False
    queue.wakeups.run()


async def in_a_loop_callback(function: Callable[[], object]) -> None:
    """Run ``function`` in a callback of the loop, outside of any task."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def callback() -> None:
        try:
            function()
        except BaseException as exc:  # noqa: BLE001 (for the test to see it)
            done.set_exception(exc)
        else:
            done.set_result(None)

    loop.call_soon(callback)
    await done


async def test_a_receiver_wakes_before_the_callback_returns() -> None:
    queue = Reading().queue(0)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    seen: list[bool] = []

    def read() -> None:
        queue.defer = True
        queue.put("now")
        queue.defer = False
        seen.append(task.done())  # handed, not woken yet
        queue.wakeups.run()
        seen.append(task.done())  # woken: get() returned

    await in_a_loop_callback(read)
    assert seen == [False, True]
    assert task.result() == "now"
    assert queue.wakeups.inline  # asyncio's own loop


async def test_inside_a_task_the_wake_up_is_scheduled() -> None:
    queue = Reading().queue(0)
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    deliver(queue, "later")  # from this test's task: it can't step another task
    assert not task.done()
    assert await task == "later"


async def test_a_receiver_cancelled_by_one_woken_before_it_loses_nothing() -> None:
    queue = Reading().queue(0)

    async def first() -> str | bytes | Fragment | None:
        message = await queue.get()
        second.cancel()  # handed "two" already, not woken yet
        return message

    one = asyncio.create_task(first())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    await in_a_loop_callback(lambda: deliver(queue, "one", "two"))
    assert one.result() == "one"
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await queue.get() == "two"  # given back to the queue


async def test_a_failing_wake_up_goes_to_the_exception_handler() -> None:
    loop = asyncio.get_running_loop()
    queue = Reading().queue(0)
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        waiter = queue.wait()

        def failing(_: object) -> None:
            raise ValueError("boom")

        waiter.add_done_callback(failing)
        await in_a_loop_callback(lambda: deliver(queue, "one"))
    finally:
        loop.set_exception_handler(None)
    (context,) = reported
    assert isinstance(context["exception"], ValueError)
    assert context["future"] is waiter
    assert "failing" in str(context["message"])


async def test_keyboard_interrupt_in_a_wake_up_propagates() -> None:
    queue = Reading().queue(0)
    waiter = queue.wait()

    def interrupted(_: object) -> None:
        raise KeyboardInterrupt

    waiter.add_done_callback(interrupted)
    with pytest.raises(KeyboardInterrupt):
        await in_a_loop_callback(lambda: deliver(queue, "one"))
    assert waiter.result() == "one"


async def test_a_waiter_without_a_receiver_needs_no_wake_up() -> None:
    queue = Reading().queue(0)
    waiter = queue.wait()  # nobody awaits it: no callback to take off
    await in_a_loop_callback(lambda: deliver(queue, "one"))
    assert waiter.result() == "one"
    assert not queue.wakeups.pending


def test_other_loops_run_the_futures_callbacks() -> None:
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        queue = MessageQueue(loop, 0, lambda: None, lambda: None)
        assert not queue.wakeups.inline
    finally:
        loop.close()


# ---------------------------------------------------------------------------- Socket.deliver


async def test_deliver_wakes_the_receivers_it_served_before_an_error() -> None:
    """``Socket.deliver`` runs the wake-ups it deferred even when handing over fails (here,
    the ``pause`` callback of the queue raises): the receiver handed the first message is
    not left waiting."""

    def pause() -> None:
        raise RuntimeError("pause failed")

    queue = MessageQueue(asyncio.get_running_loop(), 1, pause, lambda: None)
    receiver = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert queue.waiting == 1
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        sock = Socket(ours.fileno())
        writer = Writer(client=True)
        theirs.sendall(writer.message("first") + writer.message("second"))
        with pytest.raises(RuntimeError, match="pause failed"):
            sock.deliver(Reader(client=False), queue)
        sock.close()
    assert not queue.wakeups.pending
    assert await asyncio.wait_for(receiver, 1) == "first"
    assert list(queue.messages) == ["second"]


async def test_deliver_leaves_control_frames_and_what_follows() -> None:
    queue = MessageQueue(asyncio.get_running_loop(), 0, lambda: None, lambda: None)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        sock = Socket(ours.fileno())
        writer = Writer(client=True)
        theirs.sendall(writer.message("a") + writer.ping(b"p") + writer.message("b"))
        got = sock.deliver(Reader(client=False), queue)
        assert got is not None
        taken, rest = got
        assert taken == 1 and list(queue.messages) == ["a"]
        assert rest == [Ping(b"p"), "b"]
        theirs.close()
        assert sock.deliver(Reader(client=False), queue) is None
        sock.close()
