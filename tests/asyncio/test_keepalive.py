"""wsrs.asyncio.keepalive, idle compaction: an idle connection frees its spare buffers and
compression state, and the compressed stream carries on unchanged for a peer that never
compacts."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import weakref
from collections.abc import Callable
from typing import Any, cast

import pytest
import websockets.asyncio.client
import websockets.asyncio.server

import wsrs
import wsrs.asyncio.keepalive
from wsrs import WebSocketClientProtocol, WebSocketServerProtocol, _memory
from wsrs.connection import Connection

from .utils import (
    MS,
    Capture,
    compact_tick,
    eventually,
    run_server,
    server_uri,
    through_transport,
)


class FastCompactingServer(WebSocketServerProtocol):
    compact_after = 20 * MS


class FastCompactingClient(WebSocketClientProtocol):
    compact_after = 20 * MS


class ManualServer(WebSocketServerProtocol):
    """Ticks only when the test calls :func:`compact_tick`."""

    compact_after = 3600.0


def allocated(ws: wsrs.WebSocketCommonProtocol) -> tuple[bool, bool]:
    """Whether the (compressor, decompressor) states of ``ws`` are allocated."""
    assert ws.connection is not None
    return ws.connection._writer.deflater_allocated, ws.connection.reader.inflater_allocated


# Text that compresses well against the previous messages: each message repeats most of
# the one before, so a compressor that lost its context would produce much larger frames.
MESSAGES = [f"message {i}: " + "the same sentence again and again. " * 30 for i in range(4)]


async def test_wsrs_server_compacts_between_websockets_messages() -> None:
    """websockets never compacts: its windows keep the full context, so anything our
    compacted compressor or decompressor gets wrong fails to decode on one side."""
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, klass=FastCompactingServer, ping_interval=None
    ) as server:
        async with websockets.asyncio.client.connect(
            server_uri(server), compression="deflate", ping_interval=None
        ) as client:
            ws = await capture.get()
            assert ws.extensions
            for message in MESSAGES:
                await client.send(message)
                assert await ws.recv() == message
                await ws.send(message)
                assert await client.recv() == message
                # Idle for a few ticks: both states are freed, the history stays.
                await eventually(lambda: allocated(ws) == (False, False))
                assert ws.connection is not None
                assert ws.connection._writer.deflater_allocated is False


async def test_wsrs_client_compacts_against_websockets_server() -> None:
    async def echo(ws: websockets.asyncio.server.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with websockets.asyncio.server.serve(
        echo, "127.0.0.1", 0, compression="deflate", ping_interval=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        async with wsrs.connect(
            f"ws://127.0.0.1:{port}/", klass=FastCompactingClient, ping_interval=None
        ) as client:
            for message in MESSAGES:
                await client.send(message)
                assert await client.recv() == message
                await eventually(lambda: allocated(client) == (False, False))


async def test_context_survives_compaction() -> None:
    """The same message sent again after a compaction is still a short back-reference."""
    frames: list[int] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        through_transport(ws)
        assert ws.transport is not None
        write = ws.transport.write

        def record(data: bytes | bytearray | memoryview) -> None:
            frames.append(len(data))
            write(data)

        ws.transport.write = record  # type: ignore[method-assign]
        message = await ws.recv()
        await ws.send(message)
        await eventually(lambda: allocated(ws) == (False, False))
        await ws.send(await ws.recv())

    message = "x" * 200 + "".join(chr(0x41 + i % 26) for i in range(800))
    async with run_server(handler, klass=FastCompactingServer, ping_interval=None) as uri:
        async with wsrs.connect(uri, ping_interval=None) as client:
            await client.send(message)
            assert await client.recv() == message
            await client.send(message)
            assert await client.recv() == message
    first, second = frames[:2]
    # 1000 bytes: about 40 bytes on their own, half that or less as a back-reference.
    assert second <= first // 2, frames


async def test_tick_compacts_only_after_a_quiet_period(caplog: pytest.LogCaptureFixture) -> None:
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, klass=ManualServer, ping_interval=None
    ) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            ws = await capture.get()
            await client.send(MESSAGES[0])
            assert await ws.recv() == MESSAGES[0]
            await ws.send(MESSAGES[0])
            await client.recv()
            assert allocated(ws) == (True, True)
            # First tick: there was traffic since the last one.
            compact_tick(ws)
            assert allocated(ws) == (True, True)
            # Second tick: a quiet period.
            with caplog.at_level(logging.DEBUG, logger="wsrs"):
                compact_tick(ws)
            assert allocated(ws) == (False, False)
            assert "bytes of buffers and compression state freed" in caplog.text
            # A message in either direction makes the connection active again.
            await client.send(MESSAGES[1])
            assert await ws.recv() == MESSAGES[1]
            assert allocated(ws) == (False, True)
            compact_tick(ws)
            await ws.send(MESSAGES[1])
            assert await client.recv() == MESSAGES[1]
            assert allocated(ws) == (True, True)
            compact_tick(ws)
            compact_tick(ws)
            assert allocated(ws) == (False, False)


async def test_compaction_can_be_disabled() -> None:
    class NeverCompact(WebSocketServerProtocol):
        compact_after = None

    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, klass=NeverCompact, ping_interval=None
    ) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            ws = await capture.get()
            assert ws._compactor is None
            await client.send(MESSAGES[0])
            await ws.recv()
            await asyncio.sleep(50 * MS)
            assert allocated(ws) == (False, True)


async def test_timer_stops_with_the_connection() -> None:
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, klass=FastCompactingServer, ping_interval=None
    ) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None):
            ws = await capture.get()
            compactor = ws._compactor
            assert compactor is not None and compactor.sweeper.active
            assert len(compactor.sweeper) == 1
        await ws.wait_closed()
        assert compactor.stopped and not compactor.sweeper.active


async def test_compaction_in_the_middle_of_a_fragmented_message() -> None:
    """A half-received message is left alone: its buffer and inflater stay."""
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, klass=ManualServer, ping_interval=None
    ) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            ws = await capture.get()
            assert client.connection is not None and client.transport is not None
            writer = client.connection._writer
            # A compressed message in two frames, the first with RSV1.
            text = "fragment " * 100
            payload = writer.message(text)
            assert payload  # compressed single frame; re-send it fragmented by hand
            first = writer.frame(0x1, b"", fin=False, rsv1=True)
            client.transport.write(first)
            await asyncio.sleep(20 * MS)
            compact_tick(ws)
            compact_tick(ws)
            assert ws.connection is not None
            assert ws.connection.reader.in_message
            client.transport.write(writer.frame(0x0, b"\x00", fin=True))
            assert await ws.recv() == ""


async def test_trim_is_debounced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(_memory, "_find_malloc_trim", lambda: calls.append)
    monkeypatch.setattr(_memory, "_pending", False)
    monkeypatch.setattr(_memory, "TRIM_DELAY", 10 * MS)
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.DEBUG, logger="wsrs"):
        assert _memory.request_trim(loop)
        assert _memory.request_trim(loop)
        await eventually(lambda: calls == [0])
        await asyncio.sleep(30 * MS)
        assert calls == [0]  # one trim for both requests
        assert _memory.request_trim(loop)
        await eventually(lambda: calls == [0, 0])
    assert "malloc_trim" in caplog.text


async def test_trim_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "_find_malloc_trim", lambda: None)
    monkeypatch.setattr(_memory, "_pending", False)
    assert not _memory.request_trim(asyncio.get_running_loop())
    assert not _memory._pending


def test_malloc_trim_is_found_on_glibc() -> None:
    import platform

    trim = _memory._find_malloc_trim()
    if platform.libc_ver()[0] == "glibc":
        assert trim is not None
        assert trim(0) in (0, 1)
    else:  # pragma: no cover - the test machines run glibc
        assert trim is None


def test_missing_libc_is_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str | None) -> None:
        raise OSError("no C library")

    monkeypatch.setattr("ctypes.CDLL", no_library)
    assert _memory._find_malloc_trim.__wrapped__() is None


async def test_idle_compaction_requests_a_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    requests: list[object] = []
    monkeypatch.setattr(_memory, "request_trim", requests.append)
    monkeypatch.setattr(_memory, "_retaining", False)  # no large message seen
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, klass=ManualServer, ping_interval=None
    ) as server:
        async with wsrs.connect(server_uri(server), ping_interval=None) as client:
            ws = await capture.get()
            compact_tick(ws)
            compact_tick(ws)
            assert requests == []  # nothing received or sent: nothing to free
            await client.send(MESSAGES[0])
            await ws.recv()
            compact_tick(ws)
            compact_tick(ws)
            assert requests == [ws.loop]


# ---------------------------------------------------------------------------- large messages


@pytest.fixture
def mallopt_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record mallopt() instead of calling it; start as if no large message was seen."""
    calls: list[tuple[int, int]] = []

    def mallopt(param: int, value: int) -> int:
        calls.append((param, value))
        return 1

    monkeypatch.setattr(_memory, "_find_mallopt", lambda: mallopt)
    monkeypatch.setattr(_memory, "_retaining", False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    return calls


RAISED = [(-3, 32 << 20), (-1, 64 << 20)]


@pytest.mark.parametrize("direction", ["receive", "send"])
async def test_large_message_keeps_the_heap_once(
    mallopt_calls: list[tuple[int, int]], direction: str
) -> None:
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, compression=None, ping_interval=None
    ) as server:
        async with wsrs.connect(server_uri(server), compression=None, ping_interval=None) as client:
            ws = await capture.get()
            await client.send(b"small")
            assert await ws.recv() == b"small"
            assert mallopt_calls == [] and not _memory.retains_freed_memory()
            large = b"L" * 100_000
            if direction == "send":
                await ws.send(large)  # raised before anything is read
                assert mallopt_calls == RAISED
                assert await client.recv() == large
            else:
                # A frame written as is: only the server's receiving raises it.
                assert client.transport is not None
                client.transport.write(wsrs._core.Writer(client=True).message(large))
                assert await ws.recv() == large
                assert mallopt_calls == RAISED
            await client.send(large)
            assert await ws.recv() == large
            assert mallopt_calls == RAISED, "once per process"
            assert _memory.retains_freed_memory()


def test_user_tuning_of_the_heap_wins(
    mallopt_calls: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert not _memory.keep_heap_for_large_messages()
    assert mallopt_calls == [] and not _memory.retains_freed_memory()


def test_heap_tuning_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    find_mallopt = _memory._find_mallopt
    monkeypatch.setattr(_memory, "_retaining", False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setattr(_memory, "_find_mallopt", lambda: None)
    assert not _memory.keep_heap_for_large_messages()
    assert not _memory.retains_freed_memory()
    # No mallopt where there is no malloc_trim to give the kept memory back.
    monkeypatch.setattr(_memory, "_find_malloc_trim", lambda: None)
    assert find_mallopt.__wrapped__() is None


def test_mallopt_is_found_on_glibc() -> None:
    import platform

    mallopt = _memory._find_mallopt()
    if platform.libc_ver()[0] == "glibc":
        assert mallopt is not None
    else:  # pragma: no cover - the test machines run glibc
        assert mallopt is None


async def test_idle_connection_trims_what_large_messages_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the heap kept for large messages, an idle connection asks for a trim even when
    it had nothing of its own to free."""
    requests: list[object] = []
    monkeypatch.setattr(_memory, "request_trim", requests.append)
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, klass=ManualServer, compression=None, ping_interval=None
    ) as server:
        async with wsrs.connect(server_uri(server), compression=None, ping_interval=None):
            ws = await capture.get()
            assert ws.connection is not None
            for retaining in (False, True):
                monkeypatch.setattr(
                    _memory,
                    "retains_freed_memory",
                    functools.partial(bool, retaining),
                )
                ws._active = True
                compact_tick(ws)  # there was traffic
                compact_tick(ws)  # quiet: compacts, nothing to free
                assert requests == ([ws.loop] if retaining else [])


@pytest.mark.parametrize("peer", ["wsrs", "websockets"])
async def test_lean_server_holds_no_zlib_state_while_busy(peer: str) -> None:
    """compression="lean": between two messages of a busy connection, neither the
    compressor nor the decompressor is allocated, and the context still carries over."""
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, compression="lean", ping_interval=None
    ) as server:
        client: wsrs.WebSocketClientProtocol | websockets.asyncio.client.ClientConnection
        if peer == "wsrs":
            client = await wsrs.connect(server_uri(server), ping_interval=None)
        else:
            client = await websockets.asyncio.client.connect(server_uri(server), ping_interval=None)
        ws = await capture.get()
        (extension,) = ws.extensions
        assert repr(extension).endswith("local_max_window_bits=12, lean=True)")
        for message in MESSAGES:
            await client.send(message)
            assert await ws.recv() == message
            await ws.send(message)
            assert await client.recv() == message
            assert allocated(ws) == (False, False)
        await client.close()


# ---------------------------------------------------------------------------- the sweeper


class FakeConnection:
    """Counts compactions; frees ``freed`` bytes each time."""

    def __init__(self, freed: int = 0) -> None:
        self.freed = freed
        self.compactions = 0

    def compact(self) -> int:
        self.compactions += 1
        return self.freed


def fake_compactors(
    loop: asyncio.AbstractEventLoop, count: int, compact_after: float, *, freed: int = 0
) -> tuple[list[wsrs.asyncio.keepalive.IdleCompactor], list[FakeConnection], list[int]]:
    """``count`` compactors on fake, always idle connections; also return the connections
    and a list that gets the index of each connection whose activity is checked."""
    connections = [FakeConnection(freed) for _ in range(count)]
    checked: list[int] = []

    def take_activity(index: int) -> bool:
        checked.append(index)
        return False

    compactors = [
        wsrs.asyncio.keepalive.IdleCompactor(
            loop,
            cast(Connection, connection),
            compact_after,
            "server",
            functools.partial(take_activity, index),
        )
        for index, connection in enumerate(connections)
    ]
    return compactors, connections, checked


async def test_connections_share_one_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    timers: list[float] = []  # the delays of the sweepers' timers
    call_later = loop.call_later

    def counting_call_later(
        delay: float, callback: Callable[..., object], *args: Any, **kwargs: Any
    ) -> asyncio.TimerHandle:
        if isinstance(getattr(callback, "__self__", None), wsrs.asyncio.keepalive.IdleSweeper):
            timers.append(delay)
        return call_later(delay, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_later", counting_call_later)
    compactors, connections, checked = fake_compactors(loop, 500, 10 * MS)
    sweeper = compactors[0].sweeper
    assert all(compactor.sweeper is sweeper for compactor in compactors)
    assert len(sweeper) == 500 and timers == [10 * MS]
    # Another period, another sweeper; the same period on another loop too.
    other = fake_compactors(loop, 1, 3600.0)[0][0]
    assert other.sweeper is not sweeper and timers == [10 * MS, 3600.0]
    other.stop()
    # Two sweeps: the first one only notes the connections are new, the second compacts.
    await eventually(lambda: len(checked) >= 1000)
    await eventually(lambda: all(connection.compactions == 1 for connection in connections))
    assert sorted(checked[:500]) == list(range(500))
    # One timer per sweep (and the one pending), whatever the number of connections.
    assert timers.count(10 * MS) == len(checked) // 500 + 1
    assert timers.count(3600.0) == 1
    for compactor in compactors:
        compactor.stop()
    assert not sweeper.active


async def test_real_connections_share_the_sweeper() -> None:
    capture = Capture()
    async with wsrs.serve(
        capture.handler, "127.0.0.1", 0, klass=FastCompactingServer, ping_interval=None
    ) as server:
        async with (
            wsrs.connect(server_uri(server), ping_interval=None),
            wsrs.connect(server_uri(server), ping_interval=None),
        ):
            first, second = await capture.get(), await capture.get()
            assert first._compactor is not None and second._compactor is not None
            sweeper = first._compactor.sweeper
            assert second._compactor.sweeper is sweeper and len(sweeper) == 2
        await first.wait_closed()
        await second.wait_closed()
        assert len(sweeper) == 0 and not sweeper.active


async def test_last_close_stops_the_timer() -> None:
    loop = asyncio.get_running_loop()
    compactors, connections, checked = fake_compactors(loop, 2, 3600.0)
    sweeper = compactors[0].sweeper
    handle = sweeper._handle
    assert handle is not None
    compactors[0].stop()
    assert sweeper.active and not handle.cancelled()
    compactors[1].stop()
    compactors[1].stop()  # again: nothing to do
    assert not sweeper.active and handle.cancelled()
    # A new connection starts it again.
    again = fake_compactors(loop, 1, 3600.0)[0][0]
    assert again.sweeper is sweeper and sweeper.active
    again.stop()
    assert not sweeper.active


def start_sweep(
    monkeypatch: pytest.MonkeyPatch, slice_size: int, count: int
) -> tuple[list[wsrs.asyncio.keepalive.IdleCompactor], list[int]]:
    """Start a sweep of ``count`` fake compactors, ``slice_size`` per callback, as the timer
    would; return the compactors and the indexes checked."""
    monkeypatch.setattr(wsrs.asyncio.keepalive, "SWEEP_SLICE", slice_size)
    compactors, _, checked = fake_compactors(asyncio.get_running_loop(), count, 3600.0)
    compactors[0].sweeper._sweep()
    return compactors, checked


async def test_sweep_walks_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    compactors, checked = start_sweep(monkeypatch, 3, 10)
    sweeper = compactors[0].sweeper
    assert len(checked) == 3  # one slice now, the others in later callbacks
    compactors[9].stop()  # gone before its slice: skipped
    loop = asyncio.get_running_loop()
    late = fake_compactors(loop, 1, 3600.0)[0][0]  # came during the sweep: the next one
    await asyncio.sleep(0)
    assert len(checked) == 6
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(checked) == 9 and len(set(checked)) == 9
    handle = sweeper._handle
    assert isinstance(handle, asyncio.TimerHandle) and handle.when() > loop.time() + 3000
    for compactor in [*compactors, late]:
        compactor.stop()
    assert not sweeper.active


async def test_last_close_during_a_sweep_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    compactors, checked = start_sweep(monkeypatch, 2, 5)
    sweeper = compactors[0].sweeper
    for compactor in compactors:
        compactor.stop()
    assert not sweeper.active and sweeper._walk == []
    await asyncio.sleep(0)
    assert len(checked) == 2


async def test_trim_is_requested_once_per_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    requests: list[object] = []
    monkeypatch.setattr(_memory, "request_trim", requests.append)
    monkeypatch.setattr(wsrs.asyncio.keepalive, "SWEEP_SLICE", 4)
    monkeypatch.setattr(_memory, "_retaining", False)
    loop = asyncio.get_running_loop()
    compactors, connections, checked = fake_compactors(loop, 10, 3600.0, freed=100)

    async def sweep() -> None:
        compactors[0].sweeper._sweep()
        await eventually(lambda: len(checked) % 10 == 0)

    await sweep()  # the connections are idle from the start (the fakes say so)
    assert [connection.compactions for connection in connections] == [1] * 10
    assert requests == [loop]  # ten connections freed memory: one request
    await sweep()
    assert requests == [loop]  # compacted already: nothing freed, no request
    for compactor in compactors:
        compactor.stop()


async def test_a_failing_check_does_not_stop_the_sweep(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    compactors, connections, checked = fake_compactors(loop, 3, 3600.0)

    def broken() -> int:
        raise RuntimeError("broken")

    monkeypatch.setattr(connections[1], "compact", broken)
    sweeper = compactors[0].sweeper
    with caplog.at_level(logging.ERROR, logger="wsrs.protocol"):
        sweeper._sweep()
    assert [connection.compactions for connection in connections] == [1, 0, 1]
    assert "idle compaction failed" in caplog.text
    # The next sweep is scheduled as usual.
    handle = sweeper._handle
    assert isinstance(handle, asyncio.TimerHandle) and handle.when() > loop.time() + 3000
    for compactor in compactors:
        compactor.stop()


def test_closed_loop_is_not_kept() -> None:
    loop = asyncio.new_event_loop()
    compactors = fake_compactors(loop, 3, 3600.0)[0]
    assert loop in wsrs.asyncio.keepalive._sweepers
    loop.close()  # with the connections still registered and the timer pending
    reference = weakref.ref(loop)
    del loop, compactors
    gc.collect()
    assert reference() is None
