"""Write batching: messages sent in one loop iteration leave in one write, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import cast

import wsrs
import wsrs.asyncio.client
import wsrs.asyncio.server
from wsrs import WebSocketClientProtocol, WebSocketServerProtocol
from wsrs.asyncio.base import BaseProtocol
from wsrs.asyncio.transport import NativeTransport

from .utils import MS, Capture, server_uri, through_transport


def record_writes(ws: BaseProtocol) -> list[bytes]:
    """Make ``ws`` record the size and bytes of every ``transport.write``."""
    transport = through_transport(ws)
    writes: list[bytes] = []
    write = transport.write

    def recording(data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        write(data)

    transport.write = recording  # type: ignore[method-assign]
    return writes


def after_each_read(ws: BaseProtocol, callback: Callable[[], None]) -> None:
    """Call ``callback`` at the end of each readiness callback that reads for ``ws``: the
    native transport's (``wsrs._core.Socket.ready``), or asyncio's (``buffer_updated``)."""
    transport = ws.transport
    if isinstance(transport, NativeTransport):
        ready = transport._on_readable

        def native(transport: NativeTransport) -> None:
            ready(transport)
            callback()

        transport._on_readable = native
        transport._loop.add_reader(transport._fd, native, transport)
    else:
        buffer_updated = ws.buffer_updated

        def buffered(nbytes: int) -> None:
            buffer_updated(nbytes)
            callback()

        ws.buffer_updated = buffered  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[tuple[WebSocketServerProtocol, WebSocketClientProtocol]]:
    """A server-side connection and its client, without keepalive."""
    capture = Capture()
    async with wsrs.serve(capture.handler, "127.0.0.1", 0, ping_interval=None) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            yield await capture.get(), client


def count_flushes(ws: BaseProtocol) -> list[int]:
    """Make ``ws``'s writer count the batches it opens (the flushes it schedules)."""
    writer = ws._writer
    assert writer is not None
    opened = [0]
    call_soon = writer.loop.call_soon

    class Loop:
        def call_soon(self, callback: Callable[[], object]) -> asyncio.Handle:
            opened[0] += 1
            return call_soon(callback)

    writer.loop = cast(asyncio.AbstractEventLoop, Loop())
    return opened


async def test_round_trips_write_at_once_without_an_extra_loop_iteration() -> None:
    """One message in, one out: each end writes once per message and schedules nothing."""
    async with connected() as (ws, client):
        ends = [ws, client]
        writes = [record_writes(end) for end in ends]
        flushes = [count_flushes(end) for end in ends]
        for i in range(20):
            await client.send(f"request {i}")
            assert await ws.recv() == f"request {i}"
            await ws.send(f"reply {i}")
            assert await client.recv() == f"reply {i}"
        assert [len(w) for w in writes] == [20, 20]
        assert flushes == [[0], [0]]


@contextlib.asynccontextmanager
async def new_api_echo() -> AsyncIterator[
    tuple[wsrs.asyncio.server.ServerConnection, wsrs.asyncio.client.ClientConnection]
]:
    """A wsrs.asyncio echo server's connection and its client, after one round trip."""
    connections: list[wsrs.asyncio.server.ServerConnection] = []

    async def echo(connection: wsrs.asyncio.server.ServerConnection) -> None:
        connections.append(connection)
        async for message in connection:
            await connection.send(message)

    async with wsrs.asyncio.server.serve(echo, "127.0.0.1", 0, ping_interval=None) as server:
        host, port = server.sockets[0].getsockname()[:2]
        async with wsrs.asyncio.client.connect(
            f"ws://{host}:{port}/", ping_interval=None
        ) as client:
            await client.send("hello")
            assert await client.recv() == "hello"
            (ws,) = connections
            yield ws, client


async def test_round_trips_of_the_new_api_schedule_nothing() -> None:
    """The same for wsrs.asyncio: an echo server and its client."""
    async with new_api_echo() as (ws, client):
        ends: list[BaseProtocol] = [ws, client]
        writes = [record_writes(end) for end in ends]
        flushes = [count_flushes(end) for end in ends]
        for i in range(20):
            await client.send(f"message {i}")
            assert await client.recv() == f"message {i}"
        assert [len(w) for w in writes] == [20, 20]
        assert flushes == [[0], [0]]


async def test_a_burst_in_reply_to_a_message_is_two_writes() -> None:
    async with connected() as (ws, client):
        writes = record_writes(ws)
        flushes = count_flushes(ws)
        for burst in range(3):
            await client.send("more")
            assert await ws.recv() == "more"
            for i in range(10):
                await ws.send(f"{burst}.{i}")
            assert [await client.recv() for _ in range(10)] == [f"{burst}.{i}" for i in range(10)]
        # Each burst: the first message at once, the other nine in one batch.
        assert len(writes) == 6
        assert flushes == [3]


async def test_burst_is_one_write_after_the_first() -> None:
    async with connected() as (ws, client):
        writes = record_writes(ws)
        for i in range(100):
            await ws.send(f"message {i}")
        # The first message went out at once; the other 99 wait for the iteration's end.
        assert len(writes) == 1
        await asyncio.sleep(0)
        assert len(writes) == 2
        assert [await client.recv() for _ in range(100)] == [f"message {i}" for i in range(100)]
        # Next iteration, next burst: a new batch.
        await ws.send("again")
        assert len(writes) == 3
        assert await client.recv() == "again"


async def test_other_frames_flush_the_batch_first() -> None:
    capture = Capture()
    async with wsrs.serve(capture.handler, "127.0.0.1", 0, ping_interval=None) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            ws = await capture.get()
            writes = record_writes(ws)
            await ws.send("one")
            await ws.send("two")
            await ws.send("three")
            pong_waiter = await ws.ping(b"p")
            await ws.pong(b"q")
            await ws.send("four")
            # one | two+three (flushed by the ping) | ping | pong | four (a new batch)
            assert writes[1] == b"\x81\x03two\x81\x05three"
            assert writes[2] == b"\x89\x01p"
            assert writes[3] == b"\x8a\x01q"
            assert writes[4] == b"\x81\x04four"
            assert [await client.recv() for _ in range(4)] == ["one", "two", "three", "four"]
            await asyncio.wait_for(pong_waiter, 1000 * MS)


async def test_close_flushes_the_batch() -> None:
    received: list[str] = []
    done = asyncio.Event()

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        for i in range(10):
            await ws.send(str(i))
        await ws.close(1000, "after the burst")

    async with wsrs.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            async for message in client:
                assert isinstance(message, str)
                received.append(message)
            done.set()
            assert (client.close_code, client.close_reason) == (1000, "after the burst")
    assert received == [str(i) for i in range(10)]


async def test_batch_is_bounded_by_write_limit() -> None:
    """A sender that never yields still hands its frames to the transport once they reach
    write_limit, so flow control applies."""
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, ping_interval=None, write_limit=4096, compression=None
    ) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            ws = await capture.get()
            writes = record_writes(ws)
            for _ in range(6):
                await ws.send(b"x" * 1000)
            # 1 at once, then 5 x 1004 bytes: the fifth batched frame passes 4096 bytes.
            assert [len(w) for w in writes] == [1004, 5 * 1004]
            for _ in range(6):
                assert await client.recv() == b"x" * 1000


async def test_batched_frames_are_dropped_when_the_connection_is_lost() -> None:
    capture = Capture()
    async with wsrs.serve(capture.handler, "127.0.0.1", 0, ping_interval=None) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None):
            ws = await capture.get()
            await ws.send("first")
            await ws.send("batched")
            assert ws.transport is not None
            ws.transport.abort()
            await asyncio.sleep(0)  # the flush finds the transport closing: nothing written
            await ws.wait_closed()
            assert ws._writer is not None and not ws._writer.batching


async def test_large_binary_message_is_written_without_a_copy() -> None:
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, ping_interval=None, compression=None
    ) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            ws = await capture.get()
            through_transport(ws)
            assert ws.transport is not None
            written: list[bytes | bytearray | memoryview] = []
            write, writelines = ws.transport.write, ws.transport.writelines

            def recording(data: bytes | bytearray | memoryview) -> None:
                written.append(data)
                write(data)

            def recording_lines(data: Iterable[bytes | bytearray | memoryview]) -> None:
                # One writev/sendmsg where the transport sends buffers as they are.
                buffers = list(data)
                written.extend(buffers)
                writelines(buffers)

            ws.transport.write = recording  # type: ignore[method-assign]
            ws.transport.writelines = recording_lines  # type: ignore[method-assign, assignment]
            await ws.send("small")  # opens a batch ...
            await ws.send("batched")
            payload = bytes(range(256)) * 400  # 100 KiB
            await ws.send(payload)  # ... which the large message flushes first
            assert written[0] == b"\x81\x05small"
            assert written[1] == b"\x81\x07batched"
            assert written[2] == b"\x82\x7f" + len(payload).to_bytes(8, "big")
            assert written[3] is payload
            # A bytearray may change after send(): it is copied into a frame.
            mutable = bytearray(payload)
            await ws.send(mutable)
            assert len(written) == 5 and written[4][-len(payload) :] == payload
            assert await client.recv() == "small"
            assert await client.recv() == "batched"
            assert await client.recv() == payload
            assert await client.recv() == payload


async def test_only_an_uncompressed_server_writes_payloads_apart() -> None:
    capture = Capture()
    async with wsrs.serve(capture.handler, "127.0.0.1", 0, ping_interval=None) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            ws = await capture.get()
            assert client.connection is not None and ws.connection is not None
            # The client masks; with permessage-deflate, large messages are compressed.
            assert client.connection.binary_header(1 << 20) is None
            assert ws.extensions
            assert ws.connection.binary_header(1 << 20) is None
            assert ws.connection.binary_header(10) == b"\x82\x0a"


async def test_close_with_a_full_queue_drops_what_it_cannot_hold() -> None:
    """close() resumes reading paused by max_queue so the peer's close frame gets through;
    messages beyond max_queue that arrive meanwhile are dropped, not queued."""
    messages = [bytes([i]) * 65536 for i in range(20)]  # 4 per read at most

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        for message in messages:
            await ws.send(message)
        await ws.wait_closed()

    async with wsrs.serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None) as server:
        client = await wsrs.connect(
            server_uri(server), ping_interval=None, max_queue=2, compression=None
        )
        assert client.transport is not None
        transport = client.transport
        start = asyncio.get_running_loop().time()
        while transport.is_reading():
            await asyncio.sleep(5 * MS)
            assert asyncio.get_running_loop().time() - start < 2
        await asyncio.wait_for(client.close(), 2000 * MS)
        assert client.close_code == 1000
        kept = list(client.messages)
        assert 2 <= len(kept) < 20
        assert kept == messages[: len(kept)]


async def test_large_messages_reuse_a_send_buffer_the_transport_let_go() -> None:
    """A client masks large messages into one reused bytearray, but never into one that a
    transport still holds (Python >= 3.12 keeps a memoryview of unsent data, uvloop may
    queue the object): each message arrives intact."""
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, ping_interval=None, compression=None, max_size=None
    ) as server:
        async with wsrs.connect(
            server_uri(server), ping_interval=None, compression=None, max_size=None
        ) as client:
            ws = await capture.get()
            through_transport(client)
            assert client.transport is not None
            write = client.transport.write
            held: list[bytes | bytearray | memoryview] = []
            deferred = True

            def holding(data: bytes | bytearray | memoryview) -> None:
                # A transport that sends later what it is given, without copying it.
                if deferred:
                    held.append(data)
                else:
                    write(data)

            client.transport.write = holding  # type: ignore[method-assign]
            messages: list[str | bytes] = [
                bytes([i]) * (1 << 20) if i % 2 else chr(0x3B1 + i) * (1 << 17) for i in range(6)
            ]
            for message in messages:
                await client.send(message)
            frames = [item for item in held if len(item) > 1000]
            assert len(frames) == 6
            assert len({id(frame) for frame in frames}) == 6, "a held buffer was reused"
            deferred = False
            for item in held:
                write(item)
            held.clear()
            for message in messages:
                assert await ws.recv() == message
            # Once the transport lets go, the buffer is reused: each message arrives intact.
            for message in messages:
                await client.send(message)
                assert await ws.recv() == message
            assert client.connection is not None
            assert client.connection.compact() >= 1 << 20, "the kept buffer is freed"
            # Text over the size limit of the server side goes through the reused buffer too.
            await ws.send("ω" * (1 << 16))
            assert await client.recv() == "ω" * (1 << 16)


async def test_header_and_payload_in_one_vectored_write() -> None:
    """Where writelines() sends buffers as they are (uvloop, TLS, asyncio on Python >= 3.12),
    a server's large binary message is one writelines((header, payload)): no copy, and the
    header does not travel in a packet of its own. Elsewhere (asyncio's sockets on 3.11, whose
    writelines joins into a copy) header and payload are two writes."""
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, ping_interval=None, compression=None
    ) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None, compression=None) as client:
            ws = await capture.get()
            assert ws.transport is not None
            transport_class = type(ws.transport)
            writer = ws._writer
            assert writer is not None
            assert writer._vectored is (
                getattr(transport_class, "writelines", None)
                is not asyncio.WriteTransport.writelines
            )
            calls: list[tuple[object, ...]] = []
            writelines = ws.transport.writelines

            def recording(buffers: tuple[bytes, ...]) -> None:
                calls.append(tuple(buffers))
                writelines(buffers)

            ws.transport.writelines = recording  # type: ignore[method-assign,assignment]
            writer._vectored = True
            payload = bytes(range(256)) * 1024
            await ws.send(payload)
            assert len(calls) == 1
            header, body = calls[0]
            assert header == b"\x82\x7f" + len(payload).to_bytes(8, "big") and body is payload
            assert await client.recv() == payload
            writer._vectored = False
            await ws.send(payload)
            assert len(calls) == 1
            assert await client.recv() == payload


async def test_an_echo_leaves_inside_the_callback_that_read_the_message() -> None:
    """messages.py, rule 7: the handler waiting in ``async for`` wakes before the readiness
    callback returns, so its reply is written in the same loop iteration."""
    async with new_api_echo() as (ws, client):
        writes = record_writes(ws)
        written_on_return: list[int] = []
        after_each_read(ws, lambda: written_on_return.append(len(writes)))
        for i in range(5):
            await client.send(f"message {i}")
            assert await client.recv() == f"message {i}"
        assert written_on_return == [1, 2, 3, 4, 5]


async def test_a_client_recv_returns_inside_the_callback_that_read_the_reply() -> None:
    """The same for the 4.0 API's ``recv()`` at the client."""
    async with connected() as (ws, client):
        done_on_return: list[bool] = []
        receiving: list[asyncio.Task[object]] = []
        after_each_read(client, lambda: done_on_return.append(receiving[-1].done()))
        for i in range(5):
            receiving.append(asyncio.create_task(client.recv()))
            await asyncio.sleep(0)
            await ws.send(f"reply {i}")
            assert await receiving[-1] == f"reply {i}"
        assert done_on_return == [True] * 5
