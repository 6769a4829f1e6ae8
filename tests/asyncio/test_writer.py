"""Writing frames, without sockets: :mod:`wsrs.asyncio.writer` over a recording transport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import cast

import pytest

from wsrs.asyncio.writer import FrameWriter
from wsrs.connection import Connection, Side
from wsrs.extensions.permessage_deflate import PerMessageDeflate


class Recording(asyncio.WriteTransport):
    """A transport that records what is written; writelines joins, as asyncio 3.11's."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing


class Vectored(Recording):
    """A transport whose writelines sends buffers as they are (uvloop, TLS, Python 3.12)."""

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.writes.append(b"|".join(bytes(data) for data in list_of_data))


class Scheduling:
    """An event loop stand-in that records the callbacks scheduled with ``call_soon``."""

    def __init__(self) -> None:
        self.scheduled: list[Callable[[], object]] = []
        self.ran = 0

    def call_soon(self, callback: Callable[[], object]) -> None:
        self.scheduled.append(callback)

    def run_once(self) -> None:
        """Run the callbacks scheduled so far, as one loop iteration does."""
        callbacks, self.scheduled = self.scheduled, []
        for callback in callbacks:
            callback()
        self.ran += len(callbacks)


def writer(transport: Recording, write_limit: int = 1024) -> FrameWriter:
    return FrameWriter(asyncio.get_running_loop(), cast(asyncio.Transport, transport), write_limit)


def scheduling_writer(
    transport: Recording, write_limit: int = 1024
) -> tuple[FrameWriter, Scheduling]:
    loop = Scheduling()
    frames = FrameWriter(
        cast(asyncio.AbstractEventLoop, loop), cast(asyncio.Transport, transport), write_limit
    )
    return frames, loop


def test_a_lone_message_is_written_at_once_and_schedules_nothing() -> None:
    transport = Recording()
    frames, loop = scheduling_writer(transport)
    frames.write_message(b"reply 1")
    assert transport.writes == [b"reply 1"]
    assert loop.scheduled == []  # no extra loop iteration for a round trip
    for i in range(2, 5):
        frames.fresh = True  # the connection received the next request
        frames.write_message(b"reply %d" % i)
    assert transport.writes == [b"reply 1", b"reply 2", b"reply 3", b"reply 4"]
    assert loop.scheduled == []


def test_a_second_message_opens_one_batch_for_the_rest() -> None:
    transport = Recording()
    frames, loop = scheduling_writer(transport)
    for i in range(5):
        frames.write_message(b"%d" % i)
    assert transport.writes == [b"0"]
    assert loop.scheduled == [frames.flush]  # one callback for the whole burst
    loop.run_once()
    assert transport.writes == [b"0", b"1234"]
    assert frames.fresh
    frames.write_message(b"5")  # after the flush: out at once
    assert transport.writes == [b"0", b"1234", b"5"]
    assert loop.scheduled == []


def test_a_producer_that_only_sends_has_every_other_message_batched() -> None:
    transport = Recording()
    frames, loop = scheduling_writer(transport)
    for i in range(6):  # one message per loop iteration, no read in between
        frames.write_message(b"%d" % i)
        loop.run_once()
    assert transport.writes == [b"%d" % i for i in range(6)]
    assert loop.ran == 3  # messages 1, 3 and 5 each waited for a flush


def test_data_received_during_a_batch_does_not_overtake_it() -> None:
    transport = Recording()
    frames, loop = scheduling_writer(transport)
    frames.write_message(b"first")
    frames.write_message(b"batched")
    frames.fresh = True  # a read while the batch is open
    frames.write_message(b"after the read")
    assert transport.writes == [b"first"]
    loop.run_once()
    assert transport.writes == [b"first", b"batchedafter the read"]


def test_a_message_opening_a_batch_at_write_limit_is_written_at_once() -> None:
    transport = Recording()
    frames, loop = scheduling_writer(transport, write_limit=4)
    frames.write_message(b"first")
    frames.write_message(b"large")  # over write_limit alone: flow control must see it
    assert transport.writes == [b"first", b"large"]
    frames.write_message(b"x")  # the batch stays open until the end of the iteration
    assert transport.writes == [b"first", b"large"]
    loop.run_once()
    assert transport.writes == [b"first", b"large", b"x"]
    assert frames.fresh


async def test_first_message_goes_out_at_once_the_rest_at_the_end_of_the_iteration() -> None:
    transport = Recording()
    frames = writer(transport)
    frames.write_message(b"1")
    frames.write_message(b"2")
    frames.write_message(b"3")
    assert transport.writes == [b"1"]
    await asyncio.sleep(0)
    assert transport.writes == [b"1", b"23"]
    frames.write_message(b"4")  # a new iteration: out at once again
    assert transport.writes == [b"1", b"23", b"4"]


async def test_a_batch_reaching_write_limit_is_written_at_once() -> None:
    transport = Recording()
    frames = writer(transport, write_limit=4)
    frames.write_message(b"first")
    frames.write_message(b"ab")
    assert transport.writes == [b"first"]
    frames.write_message(b"cd")  # 4 bytes batched: written so that flow control sees them
    assert transport.writes == [b"first", b"abcd"]
    frames.write_message(b"e")
    await asyncio.sleep(0)
    assert transport.writes == [b"first", b"abcd", b"e"]


async def test_write_now_keeps_frames_in_order() -> None:
    transport = Recording()
    frames = writer(transport)
    frames.write_message(b"message 1")
    frames.write_message(b"message 2")
    frames.write_now(b"pong")
    assert transport.writes == [b"message 1", b"message 2", b"pong"]
    await asyncio.sleep(0)  # the batch was closed: nothing more to write
    assert transport.writes == [b"message 1", b"message 2", b"pong"]


async def test_nothing_is_written_to_a_closing_transport() -> None:
    transport = Recording()
    frames = writer(transport)
    frames.write_message(b"sent")
    frames.write_message(b"batched")
    transport.closing = True
    frames.write_now(b"pong")
    await asyncio.sleep(0)
    assert transport.writes == [b"sent"]


LARGE = 70_000
LARGE_LENGTH = b"\x7f" + LARGE.to_bytes(8, "big")  # over 65535: a 64-bit length


@pytest.mark.parametrize("vectored", [False, True])
async def test_large_binary_message_of_a_server_is_written_without_a_copy(
    vectored: bool,
) -> None:
    transport = Vectored() if vectored else Recording()
    frames = writer(transport)
    frames.write_message(b"small")
    frames.write_message(b"batched")
    payload = b"x" * LARGE
    frames.write_large(Connection(Side.SERVER), payload)
    # The batch first, then the header and the caller's payload, as they are.
    header = b"\x82" + LARGE_LENGTH
    if vectored:
        assert transport.writes == [b"small", b"batched", header + b"|" + payload]
    else:
        assert transport.writes == [b"small", b"batched", header, payload]


async def test_large_masked_or_text_message_uses_the_reusable_buffer() -> None:
    transport = Recording()
    frames = writer(transport)
    frames.write_large(Connection(Side.CLIENT), b"y" * LARGE)
    frames.write_large(Connection(Side.SERVER), "z" * LARGE)
    client_frame, server_frame = transport.writes
    assert client_frame[:10] == b"\x82\xff" + LARGE.to_bytes(8, "big")
    assert len(client_frame) == 10 + 4 + LARGE  # masked: a 4-byte key
    assert server_frame == b"\x81" + LARGE_LENGTH + b"z" * LARGE


async def test_large_compressed_message_is_batched_as_any_message() -> None:
    transport = Recording()
    frames = writer(transport)
    connection = Connection(Side.SERVER, extensions=[PerMessageDeflate(False, False, 15, 15)])
    frames.write_message(b"first")
    frames.write_large(connection, b"a" * LARGE)
    assert transport.writes == [b"first"]
    await asyncio.sleep(0)
    (compressed,) = transport.writes[1:]
    assert compressed[0] == 0xC2 and len(compressed) < 1000  # FIN, RSV1, binary
