"""Edge cases of WebSocketCommonProtocol: receivers woken and cancelled at once, flow control
of control frames, pong waiters given up, failing without a close frame, keepalive while
closing, bytes-like ping payloads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

import pytest

import wsrs
from wsrs import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    State,
    WebSocketClientProtocol,
    connect,
)

from .utils import (
    MS,
    OP_CLOSE,
    OP_TEXT,
    Capture,
    check_echo,
    compact_tick,
    encode_frame,
    eventually,
    raw_ws_server,
    read_frame,
    reset_writer,
    run_server,
)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def text_frame(text: str) -> bytes:
    """A text frame as a server sends it (unmasked)."""
    return encode_frame(OP_TEXT, text.encode(), mask=False)


# ---------------------------------------------------------------------------- recv()


async def test_async_iteration_with_legacy_recv_ends_on_any_closure() -> None:
    async def handler(ws: wsrs.WebSocketServerProtocol, path: str) -> None:
        await ws.send("0")
        await ws.close(1011, "broken")

    async with run_server(handler) as uri:
        async with connect(uri, legacy_recv=True) as ws:
            # Without legacy_recv, 1011 would raise ConnectionClosedError here.
            assert [message async for message in ws] == ["0"]
            assert ws.close_code == 1011


async def test_woken_recv_cancelled_passes_the_message_on() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri) as ws:
            await cap.get()
            first = asyncio.create_task(ws.recv())
            second = asyncio.create_task(ws.recv())
            await eventually(lambda: ws._queue.waiting == 2)
            # The message wakes the first receiver, which is cancelled before it runs.
            ws.data_received(text_frame("only one"))
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            assert await asyncio.wait_for(second, 1000 * MS) == "only one"
            assert not ws.messages


async def test_woken_recv_cancelled_with_no_receiver_left_keeps_the_message() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri) as ws:
            await cap.get()
            first = asyncio.create_task(ws.recv())
            gone = asyncio.create_task(ws.recv())
            await eventually(lambda: ws._queue.waiting == 2)
            gone.cancel()  # its waiter stays queued, cancelled
            with pytest.raises(asyncio.CancelledError):
                await gone
            ws.data_received(text_frame("kept"))
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            # Nobody could take it: the next recv() does.
            assert await asyncio.wait_for(ws.recv(), 1000 * MS) == "kept"


async def test_recv_cancelled_then_connection_closes(caplog: pytest.LogCaptureFixture) -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri) as ws:
            server_ws = await cap.get()
            task = asyncio.create_task(ws.recv())
            await eventually(lambda: ws._queue.waiting == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The cancelled waiter is still queued when the closing handshake ends the
            # stream: it is skipped, not resolved.
            await server_ws.close()
            with pytest.raises(ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), 1000 * MS)
    assert errors(caplog) == []


async def test_close_frame_with_messages_while_reading_is_paused() -> None:
    # The close frame arrives in the same read as messages that fill the queue: reading
    # resumes, so the client sees the server close TCP instead of waiting out its timeout.
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(text_frame("a") + text_frame("b") + encode_frame(OP_CLOSE, mask=False))
        frame = await read_frame(reader)
        assert frame.opcode == OP_CLOSE
        writer.close()

    async with raw_ws_server(peer) as uri:
        ws = await connect(uri, max_queue=1, timeout=5, compression=None)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(ws.wait_closed(), 2000 * MS)
        assert loop.time() - start < 1
        assert ws.close_code == 1005
        assert [await ws.recv(), await ws.recv()] == ["a", "b"]


async def test_messages_received_before_a_reset_while_reading_is_paused() -> None:
    # Reading is paused (max_queue) when the peer resets TCP: the client learns it from a
    # failed write. The message it had already received is still returned.
    reset, reset_done = asyncio.Event(), asyncio.Event()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(text_frame("queued"))
        await reset.wait()
        await reset_writer(writer)
        reset_done.set()

    async with raw_ws_server(peer) as uri:
        ws = await connect(uri, max_queue=1, compression=None, ping_interval=None)
        assert ws.transport is not None
        await eventually(lambda: not ws.transport.is_reading())  # type: ignore[union-attr]
        reset.set()
        await asyncio.wait_for(reset_done.wait(), 1000 * MS)
        with contextlib.suppress(ConnectionClosed):
            for _ in range(100):  # until a write meets the reset
                await ws.send("probe")
                await asyncio.sleep(1 * MS)
        await asyncio.wait_for(ws.wait_closed(), 2000 * MS)
        assert ws.close_code == 1006
        assert await ws.recv() == "queued"
        with pytest.raises(ConnectionClosedError):
            await ws.recv()


async def test_close_while_reading_is_paused_completes_the_handshake() -> None:
    async def handler(ws: wsrs.WebSocketServerProtocol, path: str) -> None:
        for i in range(4):
            await ws.send(f"m{i}")
            await asyncio.sleep(5 * MS)  # separate reads: the queue fills, reading pauses
        await ws.wait_closed()

    async with run_server(handler) as uri:
        ws = await connect(uri, max_queue=1, timeout=1)
        assert ws.transport is not None
        await eventually(lambda: not ws.transport.is_reading())  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ws.close()
        assert ws.close_code == 1000
        assert loop.time() - start < 0.5


# ---------------------------------------------------------------------------- sending


async def test_ensure_open_returns_on_an_open_connection() -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            await ws.ensure_open()
        with pytest.raises(ConnectionClosedOK):
            await ws.ensure_open()


@pytest.mark.parametrize(
    "send",
    [
        lambda ws: ws.ping(b"flow"),
        lambda ws: ws.pong(b"flow"),
    ],
    ids=["ping", "pong"],
)
async def test_control_frames_wait_while_writing_is_paused(
    send: Callable[[WebSocketClientProtocol], asyncio.Future[object]],
) -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            ws.pause_writing()  # asyncio's callback: the write buffer is above write_limit
            task = asyncio.ensure_future(send(ws))
            await asyncio.sleep(20 * MS)
            assert not task.done()
            ws.resume_writing()
            await asyncio.wait_for(task, 1000 * MS)
            await check_echo(ws)


async def test_ping_payloads_never_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    async with run_server() as uri:
        async with connect(uri, ping_interval=None) as ws:
            draws = iter([b"same", b"same", b"diff"])
            real = secrets.token_bytes

            def token_bytes(n: int | None = None) -> bytes:
                return next(draws) if n == 4 else real(n)

            monkeypatch.setattr(secrets, "token_bytes", token_bytes)
            first = await ws.ping()
            second = await ws.ping()  # draws again instead of reusing a waiting payload
            assert list(ws.pings) == [b"same", b"diff"]
            await asyncio.wait_for(asyncio.gather(first, second), 1000 * MS)


@pytest.mark.parametrize(
    "payload",
    [bytearray(b"ba"), memoryview(b"mv"), "text"],
    ids=["bytearray", "memoryview", "str"],
)
async def test_ping_and_pong_accept_bytes_like_and_str(
    payload: bytearray | memoryview | str,
) -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri, ping_interval=None) as ws:
            server_ws = await cap.get()
            expected = payload.encode() if isinstance(payload, str) else bytes(payload)
            waiter = await ws.ping(payload)  # type: ignore[arg-type]
            assert list(ws.pings) == [expected]
            await asyncio.wait_for(waiter, 1000 * MS)
            await server_ws.pong(payload)  # type: ignore[arg-type]
            await server_ws.send("after the pong")
            assert await asyncio.wait_for(ws.recv(), 1000 * MS) == "after the pong"


async def test_ping_and_pong_refuse_other_types() -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            with pytest.raises(TypeError, match="not int"):
                await ws.ping(42)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="not list"):
                await ws.pong([1])  # type: ignore[arg-type]
            await check_echo(ws)


async def test_pong_for_a_cancelled_ping_waiter(caplog: pytest.LogCaptureFixture) -> None:
    async with run_server() as uri:
        async with connect(uri, ping_interval=None) as ws:
            waiter = await ws.ping(b"given up")
            waiter.cancel()
            # The pong arrives for a waiter nobody wants any more: nothing breaks.
            await check_echo(ws)
            assert ws.pings == {}
            again = await ws.ping(b"given up")  # the payload was acknowledged
            await asyncio.wait_for(again, 1000 * MS)
    assert errors(caplog) == []


# ---------------------------------------------------------------------------- failing, closing


async def test_fail_connection_twice_before_connecting() -> None:
    ws = WebSocketClientProtocol()
    ws.fail_connection()
    ws.fail_connection()
    assert ws.closed and ws.close_code == 1006
    await asyncio.wait_for(ws.wait_closed(), 1000 * MS)


async def test_fail_connection_with_1006_sends_no_close_frame() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri) as ws:
            server_ws = await cap.get()
            ws.fail_connection(1006)
            # TCP is aborted at once: no closing handshake, no timeout to wait for.
            await asyncio.wait_for(ws.wait_closed(), 500 * MS)
            await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
            assert ws.close_code == 1006
            assert server_ws.close_code == 1006  # no close frame reached the server


async def test_close_when_the_transport_is_already_closing() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        ws = await connect(uri, timeout=5)
        server_ws = await cap.get()
        assert ws.transport is not None
        ws.transport.close()
        assert ws.state is State.OPEN  # until asyncio calls connection_lost()
        # close() writes nothing to the closing transport and returns once it is closed.
        # (Awaited inline: a task would start after connection_lost().)
        async with asyncio.timeout(1000 * MS):
            await ws.close()
        assert ws.closed and ws.close_code == 1006
        await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
        assert server_ws.close_code == 1006


async def test_keepalive_stops_by_itself_once_closing() -> None:
    frames: list[int] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Record what the client sends; never answer its close frame.
        while True:
            frames.append((await read_frame(reader, timeout=5)).opcode)

    async with raw_ws_server(peer) as uri:
        ws = await connect(uri, ping_interval=20 * MS, timeout=200 * MS, compression=None)
        keepalive = ws._keepalive
        assert keepalive is not None
        closing = asyncio.create_task(ws.close())
        await eventually(lambda: keepalive.stopped)  # its timer finds CLOSING: no ping
        assert keepalive.task is None
        assert not ws.closed
        await asyncio.wait_for(closing, 2000 * MS)
        assert ws.close_code == 1006
    assert frames == [OP_CLOSE]


# ---------------------------------------------------------------------------- compaction


async def test_idle_connection_is_compacted_once() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri, ping_interval=None) as ws:
            server_ws = await cap.get()
            connection = server_ws.connection
            assert connection is not None
            compact = connection.compact
            calls: list[int] = []

            def counting_compact() -> int:
                calls.append(1)
                return compact()

            connection.compact = counting_compact  # type: ignore[method-assign]
            for _ in range(5):
                compact_tick(server_ws)  # the first one only notes the handshake traffic
            assert calls == [1]
            await ws.send("wake up")
            assert await server_ws.recv() == "wake up"
            for _ in range(3):
                compact_tick(server_ws)
            assert calls == [1, 1]


class _FakeTransport(asyncio.Transport):
    """Just enough of a transport for a protocol that never touches the network."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False
        self.written: list[bytes] = []

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True


async def test_connection_lost_before_the_handshake_finishes_leaves_it_closed() -> None:
    """TCP lost after the response arrived but before the handshake coroutine resumed: the
    new connection starts CLOSED, with no keepalive or timer, and send() fails at once."""
    protocol = WebSocketClientProtocol(ping_interval=1)
    transport = _FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(text_frame("early"))  # bytes that followed the 101
    protocol.connection_lost(None)
    protocol.connection_open()
    assert protocol.state is State.CLOSED
    assert protocol._keepalive is None and protocol._compactor is None
    assert await protocol.recv() == "early"
    with pytest.raises(ConnectionClosed):
        await protocol.send("too late")
    assert transport.written == []


async def test_connection_lost_during_the_handshake_reports_1006() -> None:
    """No connection was ever open: no pings, and recv() reports an abnormal closure."""
    protocol = WebSocketClientProtocol()
    assert protocol.pings == {}
    protocol.connection_made(_FakeTransport())
    protocol.connection_lost(None)
    assert protocol.pings == {}
    with pytest.raises(ConnectionClosed) as raised:
        await protocol.recv()
    assert raised.value.code == 1006 and raised.value.__cause__ is None
