"""Wake-ups run in the readiness callback that resolved a future: :mod:`wsrs.asyncio.wakeup`,
as the opening handshake's buffer uses it (the message queue's tests are in
test_messages.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from wsrs.asyncio.handshake import HandshakeBuffer


def parse_line(data: bytearray, eof: bool) -> tuple[bytes, int] | None:
    """A toy parser: one line."""
    end = data.find(b"\n")
    return None if end < 0 else (bytes(data[:end]), end + 1)


async def in_a_loop_callback(function: Callable[[], object]) -> None:
    """Run ``function`` in a callback of the loop, outside of any task."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: done.set_result(function()))
    await done


async def test_a_handshake_reader_wakes_before_the_callback_returns() -> None:
    buffer = HandshakeBuffer(asyncio.get_running_loop(), 1024)
    task = asyncio.create_task(buffer.read(parse_line))
    await asyncio.sleep(0)
    seen: list[bool] = []

    def read() -> None:
        buffer.feed(b"GET / HTTP/1.1\n")
        seen.append(task.done())  # handed, not woken yet
        buffer.wake()
        seen.append(task.done())  # the reader parsed the line and returned

    await in_a_loop_callback(read)
    assert seen == [False, True]
    assert task.result() == b"GET / HTTP/1.1"


async def test_a_handshake_reader_fed_from_a_task_wakes_later() -> None:
    buffer = HandshakeBuffer(asyncio.get_running_loop(), 1024)
    task = asyncio.create_task(buffer.read(parse_line))
    await asyncio.sleep(0)
    buffer.feed(b"partial")
    buffer.wake()
    await asyncio.sleep(0)
    assert not task.done()  # woke, found no line, waits again
    buffer.feed(b" line\nrest")
    buffer.wake()  # from this test's task: scheduled
    assert not task.done()
    assert await task == b"partial line"
    assert buffer.take() == b"rest"


def test_on_uvloop_the_future_wakes_the_reader() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> bytes:
        buffer = HandshakeBuffer(asyncio.get_running_loop(), 1024)
        task = asyncio.create_task(buffer.read(parse_line))
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_soon(buffer.feed, b"line\n")
        result: bytes = await task
        buffer.wake()  # nothing was deferred
        return result

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == b"line"
    finally:
        loop.close()
