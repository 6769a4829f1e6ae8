"""The lifecycle of connections and servers over real sockets: many connections leave no
tasks, file descriptors or memory behind; closing a server and cancelling calls always
finish cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
from collections.abc import Awaitable, Callable

import pytest

import wsrs
from wsrs import connect
from wsrs.server import WebSocketServerProtocol

from .utils import (
    MS,
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    check_echo,
    close_payload,
    close_writer,
    echo,
    encode_frame,
    eventually,
    open_fds,
    open_raw,
    parse_close,
    raw_handshake,
    read_frame,
    read_http_response,
    rss,
    server_uri,
    tracked_server,
    wait_for_tasks,
)


MiB = 2**20

SEQUENTIAL = 10_000
"""Connections opened and closed one after the other: about 7 s on a 2-CPU machine."""

CONCURRENT = 1000
"""Connections opened at once (two file descriptors each in this process)."""


def _raise_fd_limit(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE to ``needed`` if the hard limit allows; skip otherwise."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:  # pragma: no cover - CI allows it
        pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


RSS_TOLERANCE = 8 * MiB
"""How much the RSS may grow over a run of connections, after a warm-up and gc.collect()."""


def this_task() -> set[asyncio.Task[object]]:
    task = asyncio.current_task()
    assert task is not None
    return {task}


def asyncio_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# ---------------------------------------------------------------------------- many connections


async def _one_connection(uri: str) -> None:
    async with connect(uri) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"


async def _sequential(uri: str, count: int) -> None:
    for _ in range(count):
        await _one_connection(uri)


async def _concurrent(uri: str, count: int) -> None:
    connections = await asyncio.gather(*[connect(uri) for _ in range(count)])
    assert open_fds() >= 2 * count  # both ends of every connection are open now
    await asyncio.gather(*[check_echo(ws) for ws in connections])
    await asyncio.gather(*[ws.close() for ws in connections])
    assert all(ws.close_code == 1000 for ws in connections)


@pytest.mark.parametrize(
    ("run", "count"),
    [(_sequential, SEQUENTIAL), (_concurrent, CONCURRENT)],
    ids=["sequential", "concurrent"],
)
async def test_many_connections_leave_nothing_behind(
    run: Callable[[str, int], Awaitable[None]], count: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Keepalive and compression on, as by default; a backlog that holds every concurrent
    # connection (with the default of 100, the rest wait for a SYN retransmit: 1 s). The
    # handler only counts connections: keeping them would hold their memory.
    handlers = {"started": 0, "finished": 0}

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        handlers["started"] += 1
        try:
            await echo(ws, path)
        finally:
            handlers["finished"] += 1

    _raise_fd_limit(2 * CONCURRENT + 256)
    warm_up = min(count, CONCURRENT)
    async with wsrs.serve(handler, "127.0.0.1", 0, backlog=2048) as server:
        uri = server_uri(server)
        await run(uri, warm_up)  # warm up: caches, allocator arenas, buffers
        tasks = await wait_for_tasks(this_task())
        gc.collect()
        fds, memory = open_fds(), rss()

        await run(uri, count)

        assert await wait_for_tasks(tasks) <= tasks
        await eventually(lambda: not server.websockets)
        gc.collect()
        fds_after, memory_after = open_fds(), rss()
        assert handlers["started"] == handlers["finished"] == count + warm_up
        assert fds_after <= fds, (fds, fds_after)
        assert memory_after - memory < RSS_TOLERANCE, (memory / MiB, memory_after / MiB)
    assert asyncio_errors(caplog) == []


# ---------------------------------------------------------------------------- server.close()


async def _half_requests(
    uri: str, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    raws = []
    for _ in range(count):
        reader, writer = await open_raw(uri)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a request
        raws.append((reader, writer))
    return raws


@pytest.mark.parametrize("stage", ["handshakes", "sends", "closing handshakes", "all"])
async def test_server_close_finishes_within_timeout(
    stage: str, caplog: pytest.LogCaptureFixture
) -> None:
    timeout = 300 * MS
    write_limit = 16 * 1024
    message = b"z" * 256 * 1024
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        if path == "/send":  # to a client that never reads
            while True:
                started.set()
                await ws.send(message)
        elif path == "/close":  # to a client that never answers
            started.set()
            await ws.close()
        else:
            await ws.wait_closed()

    raws: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    handshakes: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    server = await wsrs.serve(
        handler, "127.0.0.1", 0, timeout=timeout, write_limit=write_limit, ping_interval=None
    )
    try:
        uri = server_uri(server)
        if stage in ("handshakes", "all"):
            handshakes = await _half_requests(uri, 3)
            await eventually(lambda: len(server.websockets) == 3)
        for path in ["/send"] * 3 if stage in ("sends", "all") else []:
            raws.append(await raw_handshake(uri, path))
            await asyncio.wait_for(started.wait(), 1000 * MS)
            started.clear()
        for path in ["/close"] * 3 if stage in ("closing handshakes", "all") else []:
            raws.append(await raw_handshake(uri, path))
            await asyncio.wait_for(started.wait(), 1000 * MS)
            started.clear()
            assert (await read_frame(raws[-1][0])).opcode == OP_CLOSE  # never answered
        await asyncio.sleep(50 * MS)  # let senders fill the buffers and block
        connections = list(server.websockets)
        assert len(connections) == 3 if stage != "all" else 9
        handlers = [ws.handler_task for ws in connections]

        start = loop.time()
        server.close()
        await asyncio.wait_for(server.wait_closed(), 20 * timeout)
        elapsed = loop.time() - start

        assert elapsed < timeout + 1000 * MS
        assert all(task is not None and task.done() for task in handlers)
        assert not server.websockets
        for reader, _ in handshakes:
            status, _, _ = await read_http_response(reader)
            assert status == 503
            assert await asyncio.wait_for(reader.read(), 1000 * MS) == b""
        # After a 503, the server waits for the client to close TCP, at most for timeout.
        await eventually(lambda: all(ws.closed for ws in connections), timeout + 1000 * MS)
    finally:
        for _, writer in raws + handshakes:
            await close_writer(writer)
        server.close()
        await server.wait_closed()
    assert await wait_for_tasks(this_task()) == this_task()
    assert asyncio_errors(caplog) == []


# ---------------------------------------------------------------------------- cancellation


async def _no_leaks(tasks: set[asyncio.Task[object]], caplog: pytest.LogCaptureFixture) -> None:
    assert await wait_for_tasks(tasks) <= tasks
    gc.collect()  # "exception was never retrieved", "Task was destroyed but it is pending"
    await asyncio.sleep(0)
    assert asyncio_errors(caplog) == []


async def test_cancel_recv_leaves_the_connection_usable(caplog: pytest.LogCaptureFixture) -> None:
    async with tracked_server() as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as ws:
            tasks = asyncio.all_tasks()
            for _ in range(3):
                receiving = asyncio.create_task(ws.recv())
                await asyncio.sleep(20 * MS)
                assert not receiving.done()
                receiving.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await receiving
            await check_echo(ws)
            # Cancelled while a message arrives: the message is not lost.
            receiving = asyncio.create_task(ws.recv())
            await asyncio.sleep(0)
            await ws.send("raced")
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                assert await receiving == "raced"
            if receiving.cancelled():
                assert await asyncio.wait_for(ws.recv(), 1000 * MS) == "raced"
            await check_echo(ws)
            await _no_leaks(tasks, caplog)
        assert ws.close_code == 1000


async def test_cancel_blocked_send_leaves_the_connection_usable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with tracked_server(write_limit=16 * 1024) as (server, tracker):
        uri = server_uri(server)
        reader, writer = await raw_handshake(uri, "/hold")
        try:
            server_ws = await tracker.get()
            tasks = asyncio.all_tasks()
            message = os.urandom(256 * 1024)
            sent = 0
            while True:  # until send() blocks on the full write buffer
                sending = asyncio.create_task(server_ws.send(message))
                await asyncio.sleep(20 * MS)
                sent += 1
                if not sending.done():
                    break
                await sending
                assert sent < 400
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            assert server_ws.open
            # The message of the cancelled send was written whole; nothing is damaged.
            for _ in range(sent):
                frame = await read_frame(reader)
                assert (frame.opcode, frame.payload) == (OP_BINARY, message)
            await asyncio.wait_for(server_ws.send("after"), 1000 * MS)
            frame = await read_frame(reader)
            assert (frame.opcode, frame.payload) == (OP_TEXT, b"after")
            writer.write(encode_frame(OP_CLOSE, close_payload(1000)))
            assert (await read_frame(reader)).opcode == OP_CLOSE
            assert await asyncio.wait_for(reader.read(), 1000 * MS) == b""
            await close_writer(writer)
            await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
            assert server_ws.close_code == 1000
        finally:
            await close_writer(writer)
        await _no_leaks(tasks, caplog)


@pytest.mark.parametrize("peer_answers", [True, False], ids=["answered", "unanswered"])
async def test_cancel_close_leaves_the_connection_cleanly_closed(
    peer_answers: bool, caplog: pytest.LogCaptureFixture
) -> None:
    timeout = 300 * MS
    async with tracked_server(timeout=timeout) as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri, "/hold")
            try:
                server_ws = await tracker.get()
                tasks = asyncio.all_tasks()
                closing = asyncio.create_task(server_ws.close(4000, "cancelled"))
                frame = await read_frame(reader)
                assert (frame.opcode, parse_close(frame.payload)) == (OP_CLOSE, (4000, "cancelled"))
                closing.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await closing
                assert not server_ws.open and not server_ws.closed  # CLOSING
                if peer_answers:
                    writer.write(encode_frame(OP_CLOSE, frame.payload))
                    assert await asyncio.wait_for(reader.read(), 1000 * MS) == b""
                # The closing handshake, or its timeout, still ends the connection.
                await asyncio.wait_for(server_ws.wait_closed(), timeout + 1000 * MS)
                assert server_ws.close_code == (4000 if peer_answers else 1006)
                # close() again returns at once.
                await asyncio.wait_for(server_ws.close(), 100 * MS)
            finally:
                await close_writer(writer)
            await check_echo(good)
            await _no_leaks(tasks, caplog)
