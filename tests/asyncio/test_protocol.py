"""WebSocketCommonProtocol over real sockets: messages, control frames, closing, limits."""

from __future__ import annotations

import asyncio
import logging
import os
import random

import pytest

import wsrs
from wsrs import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    State,
    WebSocketClientProtocol,
    WebSocketServerProtocol,
    connect,
)
from wsrs.version import USER_AGENT

from .utils import (
    MS,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Capture,
    close_payload,
    close_writer,
    encode_frame,
    finish_raw,
    parse_close,
    raw_handshake,
    raw_ws_server,
    read_frame,
    reset_writer,
    run_server,
)


# ---------------------------------------------------------------------------- send / recv


async def test_str_is_text_and_bytes_is_binary() -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        async for message in ws:
            await ws.send(type(message).__name__)

    async with run_server(handler) as uri:
        async with connect(uri) as ws:
            await ws.send("café")
            assert await ws.recv() == "str"
            await ws.send(b"caf\xc3\xa9")
            assert await ws.recv() == "bytes"


async def test_text_and_binary_frames_on_the_wire() -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.send("té")
        await ws.send(b"\xff\x00")
        await ws.send(bytearray(b"ba"))
        await ws.send(memoryview(b"xmvx")[1:3])
        await ws.recv()

    async with run_server(handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            frames = [await read_frame(reader) for _ in range(4)]
            assert [(f.opcode, f.payload, f.fin) for f in frames] == [
                (OP_TEXT, "té".encode(), True),
                (OP_BINARY, b"\xff\x00", True),
                (OP_BINARY, b"ba", True),
                (OP_BINARY, b"mv", True),
            ]
        finally:
            await close_writer(writer)


async def test_send_bytearray_and_memoryview() -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            await ws.send(bytearray(b"abc"))
            assert await ws.recv() == b"abc"
            await ws.send(memoryview(b"0123456789")[2:5])
            assert await ws.recv() == b"234"


async def test_send_wrong_type_raises_type_error_and_connection_stays_usable() -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            with pytest.raises(TypeError):
                await ws.send(42)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await ws.send({"a": 1})  # type: ignore[arg-type]
            assert ws.open
            await ws.send("after")
            assert await ws.recv() == "after"
            await ws.send(b"after" * 1000)
            assert await ws.recv() == b"after" * 1000


async def test_send_on_closed_connection_raises() -> None:
    async with run_server() as uri:
        ws = await connect(uri)
        await ws.close()
        with pytest.raises(ConnectionClosedOK):
            await ws.send("late")
        with pytest.raises(ConnectionClosed):
            await ws.send(42)  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed):
            await ws.ping()
        with pytest.raises(ConnectionClosed):
            await ws.pong()


@pytest.mark.parametrize(
    ("code", "reason", "exc_type"),
    [
        (1000, "", ConnectionClosedOK),
        (1001, "going away", ConnectionClosedOK),
        (1011, "oops", ConnectionClosedError),
        (4000, "custom", ConnectionClosedError),
    ],
)
async def test_recv_after_close(code: int, reason: str, exc_type: type[ConnectionClosed]) -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.send("last")
        await ws.close(code, reason)

    async with run_server(handler) as uri:
        async with connect(uri) as ws:
            assert await ws.recv() == "last"  # received before the close frame
            with pytest.raises(exc_type) as exc_info:
                await ws.recv()
            assert exc_info.value.code == code
            assert exc_info.value.reason == reason
            assert ws.close_code == code
            assert ws.close_reason == reason
            with pytest.raises(exc_type):  # again
                await ws.recv()


async def test_recv_legacy_recv_returns_none() -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.close(1011)

    async with run_server(handler) as uri:
        async with connect(uri, legacy_recv=True) as ws:
            assert await ws.recv() is None
            assert ws.close_code == 1011


@pytest.mark.parametrize("code", [1000, 1001])
async def test_async_iteration_ends_on_normal_closure(code: int) -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        for i in range(3):
            await ws.send(str(i))
        await ws.close(code)

    async with run_server(handler) as uri:
        async with connect(uri) as ws:
            received = [message async for message in ws]
            assert received == ["0", "1", "2"]


async def test_async_iteration_raises_on_error_closure() -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.send("0")
        await ws.close(1011, "broken")

    async with run_server(handler) as uri:
        async with connect(uri) as ws:
            received = []
            with pytest.raises(ConnectionClosedError) as exc_info:
                async for message in ws:
                    received.append(message)
            assert received == ["0"]
            assert exc_info.value.code == 1011
            assert exc_info.value.reason == "broken"


async def test_cancelled_recv_does_not_lose_messages() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri) as ws:
            server_ws = await cap.get()
            # A recv cancelled while waiting.
            task = asyncio.create_task(ws.recv())
            await asyncio.sleep(10 * MS)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server_ws.send("first")
            assert await asyncio.wait_for(ws.recv(), 1000 * MS) == "first"

            # Cancellations racing with deliveries: every message arrives once, in order.
            count = 200
            sender = asyncio.create_task(_send_numbers(server_ws, count))
            received: list[str] = []
            rng = random.Random(42)
            while len(received) < count:
                task = asyncio.create_task(ws.recv())
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    received.append(await task)  # type: ignore[arg-type]
                except asyncio.CancelledError:
                    pass
                if rng.random() < 0.3:
                    received.append(await asyncio.wait_for(ws.recv(), 1000 * MS))  # type: ignore[arg-type]
            await sender
            assert received == [str(i) for i in range(count)]


async def test_cancelled_iteration_does_not_lose_messages() -> None:
    async def first(ws: WebSocketClientProtocol) -> str | bytes:
        async for message in ws:
            return message
        raise AssertionError("the connection closed")  # pragma: no cover

    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri) as ws:
            server_ws = await cap.get()
            # An iteration cancelled while waiting.
            task = asyncio.create_task(first(ws))
            await asyncio.sleep(10 * MS)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server_ws.send("first")
            assert await asyncio.wait_for(first(ws), 1000 * MS) == "first"

            # Cancellations racing with deliveries: every message arrives once, in order.
            count = 200
            sender = asyncio.create_task(_send_numbers(server_ws, count))
            received: list[str | bytes] = []
            rng = random.Random(7)
            while len(received) < count:
                task = asyncio.create_task(first(ws))
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    received.append(await task)
                except asyncio.CancelledError:
                    pass
            await sender
            assert received == [str(i) for i in range(count)]


async def _send_numbers(ws: WebSocketServerProtocol, count: int) -> None:
    for i in range(count):
        await ws.send(str(i))
        if i % 7 == 0:
            await asyncio.sleep(0)


async def test_concurrent_recv_each_message_once() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri) as ws:
            server_ws = await cap.get()
            tasks = [asyncio.create_task(ws.recv()) for _ in range(5)]
            await asyncio.sleep(10 * MS)
            for i in range(5):
                await server_ws.send(str(i))
            results = await asyncio.wait_for(asyncio.gather(*tasks), 1000 * MS)
            assert sorted(map(str, results)) == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_concurrent_sends_never_interleave(compression: str | None) -> None:
    size = 100 * 1024
    payloads = [bytes([i]) * 16 + os.urandom(size - 16) for i in range(50)]
    received: list[bytes] = []
    done = asyncio.Event()

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        for _ in range(50):
            message = await ws.recv()
            assert isinstance(message, bytes)
            received.append(message)
        done.set()

    async with run_server(handler, compression=compression) as uri:
        async with connect(uri, compression=compression) as ws:
            await asyncio.gather(*(ws.send(p) for p in payloads))
            await asyncio.wait_for(done.wait(), 5000 * MS)
    assert sorted(received) == sorted(payloads)


async def test_concurrent_text_sends_never_interleave() -> None:
    texts = [chr(0x4E00 + i) * 30_000 for i in range(50)]
    got: list[str] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        for _ in range(50):
            message = await ws.recv()
            assert isinstance(message, str)
            got.append(message)

    async with run_server(handler) as uri:
        async with connect(uri) as ws:
            await asyncio.gather(*(ws.send(t) for t in texts))
            with pytest.raises(ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), 5000 * MS)
    assert sorted(got) == sorted(texts)


# ---------------------------------------------------------------------------- ping / pong


async def test_ping_resolved_by_pong() -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            waiter = await ws.ping()
            await asyncio.wait_for(waiter, 1000 * MS)
            assert waiter.done() and waiter.result() is None
            waiter = await ws.ping("text ping")
            await asyncio.wait_for(waiter, 1000 * MS)
            assert ws.pings == {}


async def test_server_ping_resolved_by_client() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri):
            server_ws = await cap.get()
            await asyncio.wait_for(await server_ws.ping(b"srv"), 1000 * MS)


async def test_ping_payloads_and_acknowledgement() -> None:
    frames: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    pongs: asyncio.Queue[bytes] = asyncio.Queue()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def write_pongs() -> None:
            while True:
                writer.write(encode_frame(OP_PONG, await pongs.get(), mask=False))

        pong_task = asyncio.create_task(write_pongs())
        try:
            while True:
                frame = await read_frame(reader, timeout=5000 * MS)
                await frames.put((frame.opcode, frame.payload))
                if frame.opcode == OP_CLOSE:
                    writer.write(encode_frame(OP_CLOSE, frame.payload, mask=False))
                    return
        finally:
            pong_task.cancel()

    async with raw_ws_server(peer) as uri:
        async with connect(uri, ping_interval=None) as ws:
            # Default payload: 4 random bytes.
            w1 = await ws.ping()
            opcode, p1 = await frames.get()
            assert opcode == OP_PING and len(p1) == 4
            # str payload sent as UTF-8.
            w2 = await ws.ping("héllo")
            assert await frames.get() == (OP_PING, "héllo".encode())
            w3 = await ws.ping(b"third")
            assert await frames.get() == (OP_PING, b"third")
            # Duplicate payload while waiting.
            with pytest.raises(ValueError):
                await ws.ping(b"third")
            with pytest.raises(ValueError):
                await ws.ping("héllo")
            assert frames.empty()
            # Unsolicited pong: ignored.
            await pongs.put(b"unknown")
            await asyncio.sleep(20 * MS)
            assert not (w1.done() or w2.done() or w3.done())
            # Pong for the second ping acknowledges the first one too, not the third.
            await pongs.put("héllo".encode())
            await asyncio.wait_for(w2, 1000 * MS)
            assert w1.done() and w1.result() is None
            assert not w3.done()
            # Payload reusable once acknowledged.
            w4 = await ws.ping("héllo")
            assert await frames.get() == (OP_PING, "héllo".encode())
            await pongs.put(b"third")
            await asyncio.wait_for(w3, 1000 * MS)
            assert not w4.done()
            await pongs.put("héllo".encode())
            await asyncio.wait_for(w4, 1000 * MS)
            # A ping waiting when the connection closes fails with ConnectionClosed.
            w5 = await ws.ping(b"never answered")
        with pytest.raises(ConnectionClosed):
            await w5


async def test_pong_unsolicited_and_ping_answered() -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            server_ws = await cap.get()
            await server_ws.pong()
            frame = await read_frame(reader)
            assert (frame.opcode, frame.payload) == (OP_PONG, b"")
            await server_ws.pong("heartbeat")
            frame = await read_frame(reader)
            assert (frame.opcode, frame.payload) == (OP_PONG, b"heartbeat")
            with pytest.raises(TypeError):
                await server_ws.pong(42)  # type: ignore[arg-type]
            # The server answers pings with the same payload.
            writer.write(encode_frame(OP_PING, b"raw ping"))
            frame = await read_frame(reader)
            assert (frame.opcode, frame.payload) == (OP_PONG, b"raw ping")
        finally:
            await close_writer(writer)


# ---------------------------------------------------------------------------- close


async def test_close_code_and_reason_seen_by_peer() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        ws = await connect(uri)
        server_ws = await cap.get()
        await ws.close(4321, "see you")
        assert ws.close_code == 4321
        assert ws.close_reason == "see you"
        assert ws.state is State.CLOSED
        await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
        assert server_ws.close_code == 4321
        assert server_ws.close_reason == "see you"
        with pytest.raises(ConnectionClosedError) as exc_info:
            await server_ws.recv()
        assert (exc_info.value.code, exc_info.value.reason) == (4321, "see you")


async def test_close_frame_on_the_wire() -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.close(1001, "bye")

    async with run_server(handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            frame = await read_frame(reader)
            assert frame.opcode == OP_CLOSE
            assert parse_close(frame.payload) == (1001, "bye")
            writer.write(encode_frame(OP_CLOSE, frame.payload))
            await finish_raw(reader, writer)
        finally:
            await close_writer(writer)


async def test_close_twice_is_a_no_op() -> None:
    async with run_server() as uri:
        ws = await connect(uri)
        await ws.close(4000, "first")
        await ws.close(4001, "second")
        assert (ws.close_code, ws.close_reason) == (4000, "first")
        # Concurrent closes too.
        ws2 = await connect(uri)
        await asyncio.gather(ws2.close(), ws2.close(), ws2.close(4002))
        assert ws2.close_code == 1000


@pytest.mark.parametrize("code", [1005, 1006, 999, 1015, 2999, 5000])
async def test_close_with_invalid_code_raises(code: int) -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            with pytest.raises(wsrs.WebSocketProtocolError):
                await ws.close(code)
            # Nothing changed: the connection is still usable.
            assert ws.state is State.OPEN
            await ws.send("still open")
            assert await asyncio.wait_for(ws.recv(), 1000 * MS) == "still open"
        assert ws.close_code == 1000


async def test_close_with_too_long_reason_raises() -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            with pytest.raises(wsrs.WebSocketProtocolError):
                await ws.close(1000, "x" * 124)
            assert ws.state is State.OPEN
            await ws.send("still open")
            assert await asyncio.wait_for(ws.recv(), 1000 * MS) == "still open"


async def test_async_with_connect_closes_with_1000() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri) as ws:
            server_ws = await cap.get()
            assert ws.open
        assert ws.closed
        assert ws.close_code == 1000
        await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
        assert server_ws.close_code == 1000


# ---------------------------------------------------------------------------- attributes


async def test_attributes() -> None:
    cap = Capture()
    async with run_server(cap.handler, subprotocols=["chat"]) as uri:
        port = int(uri.rsplit(":", 1)[1].split("/")[0])
        ws = await connect(uri + "p?q=1", subprotocols=["chat"])
        server_ws = await cap.get()
        for side in (ws, server_ws):
            assert side.state is State.OPEN
            assert side.open and not side.closed
            assert side.close_code is None
            assert side.close_reason == ""
            assert side.secure is False
            assert side.path == "/p?q=1"
            assert side.subprotocol == "chat"
            assert [type(e) for e in side.extensions] == [wsrs.PerMessageDeflate]
        assert isinstance(ws, WebSocketClientProtocol)
        assert (ws.host, ws.port) == ("127.0.0.1", port)
        assert (server_ws.host, server_ws.port) == ("127.0.0.1", 0)  # as given to serve()
        assert ws.remote_address == ("127.0.0.1", port)
        assert server_ws.local_address == ("127.0.0.1", port)
        assert ws.local_address == server_ws.remote_address
        assert ws.local_address[0] == "127.0.0.1"

        assert ws.request_headers is not None and server_ws.request_headers is not None
        assert ws.response_headers is not None and server_ws.response_headers is not None
        assert ws.raw_request_headers == server_ws.raw_request_headers
        assert ws.raw_response_headers == server_ws.raw_response_headers
        assert ws.raw_request_headers is not None and ws.raw_response_headers is not None
        assert all(isinstance(n, str) and isinstance(v, str) for n, v in ws.raw_request_headers)
        assert ws.raw_request_headers[0] == ("Host", f"127.0.0.1:{port}")
        assert server_ws.request_headers["host"] == f"127.0.0.1:{port}"
        assert server_ws.request_headers["User-Agent"] == USER_AGENT
        assert ws.response_headers["Server"] == USER_AGENT
        assert ws.response_headers["Sec-WebSocket-Protocol"] == "chat"
        assert str(ws.request_headers) == str(server_ws.request_headers)
        assert "permessage-deflate" in ws.request_headers["Sec-WebSocket-Extensions"]
        assert ws.response_headers["Upgrade"].lower() == "websocket"

        await ws.close(1000, "done")
        for side in (ws, server_ws):
            await asyncio.wait_for(side.wait_closed(), 1000 * MS)
            assert side.state is State.CLOSED
            assert not side.open and side.closed
            assert (side.close_code, side.close_reason) == (1000, "done")


async def test_attributes_on_connection_lost() -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        server_ws = await cap.get()
        await reset_writer(writer)
        await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
        assert server_ws.state is State.CLOSED
        assert server_ws.close_code == 1006
        assert server_ws.close_reason == ""
        with pytest.raises(ConnectionClosedError) as exc_info:
            await server_ws.recv()
        assert exc_info.value.code == 1006


async def test_state_while_closing() -> None:
    frames: asyncio.Queue[int] = asyncio.Queue()
    release = asyncio.Event()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frame = await read_frame(reader)
        await frames.put(frame.opcode)
        await release.wait()
        writer.write(encode_frame(OP_CLOSE, frame.payload, mask=False))
        # Returning closes TCP, as a server does after the closing handshake.

    async with raw_ws_server(peer) as uri:
        ws = await connect(uri, ping_interval=None)
        closing = asyncio.create_task(ws.close())
        assert await frames.get() == OP_CLOSE
        assert ws.state is State.CLOSING
        assert not ws.open and not ws.closed
        release.set()
        await asyncio.wait_for(closing, 1000 * MS)
        assert ws.closed
        assert ws.close_code == 1000


# ---------------------------------------------------------------------------- timeouts


async def test_close_times_out_when_peer_never_answers_client_side() -> None:
    timeout = 100 * MS

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers the close frame

    async with raw_ws_server(peer) as uri:
        ws = await connect(uri, timeout=timeout, ping_interval=None)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(ws.close(), 20 * timeout)
        elapsed = loop.time() - start
        assert timeout * 0.8 <= elapsed < 5 * timeout
        assert ws.closed
        assert ws.close_code == 1006


async def test_close_times_out_when_peer_never_answers_server_side() -> None:
    timeout = 100 * MS
    closed: asyncio.Future[tuple[float, int | None]] = asyncio.get_running_loop().create_future()

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ws.close()
        closed.set_result((loop.time() - start, ws.close_code))

    async with run_server(handler, timeout=timeout, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            frame = await read_frame(reader)
            assert frame.opcode == OP_CLOSE
            elapsed, code = await asyncio.wait_for(closed, 20 * timeout)
            assert timeout * 0.8 <= elapsed < 5 * timeout
            assert code == 1006
        finally:
            await close_writer(writer)


async def test_keepalive_fails_connection_when_pongs_never_come() -> None:
    frames: list[tuple[int, bytes]] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            frame = await read_frame(reader)
            frames.append((frame.opcode, frame.payload))
            if frame.opcode == OP_CLOSE:
                await reader.read()
                return

    async with raw_ws_server(peer) as uri:
        ws = await connect(uri, ping_interval=30 * MS, ping_timeout=30 * MS, timeout=100 * MS)
        with pytest.raises(ConnectionClosedError) as exc_info:
            await asyncio.wait_for(ws.recv(), 2000 * MS)
        assert exc_info.value.code == 1011
        assert ws.close_code == 1011
    assert frames[0][0] == OP_PING
    assert len(frames[0][1]) == 4
    assert frames[-1][0] == OP_CLOSE
    assert parse_close(frames[-1][1])[0] == 1011


async def test_keepalive_without_timeout_keeps_one_unanswered_ping() -> None:
    """With ping_timeout=None a peer that never answers gets a ping every interval, and
    only the last one is remembered: unanswered pings do not pile up."""
    pings: asyncio.Queue[bytes] = asyncio.Queue()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            frame = await read_frame(reader)
            if frame.opcode == OP_CLOSE:
                writer.write(encode_frame(OP_CLOSE, frame.payload, mask=False))
                await reader.read()
                return
            await pings.put(frame.payload)

    async with raw_ws_server(peer) as uri:
        async with connect(uri, ping_interval=20 * MS, ping_timeout=None) as ws:
            payloads = [await asyncio.wait_for(pings.get(), 1000 * MS) for _ in range(5)]
            assert len(set(payloads)) == 5
            assert list(ws.pings) == [payloads[-1]]
            assert ws.connection is not None and ws.connection.has_ping(payloads[-1])
            assert not any(ws.connection.has_ping(p) for p in payloads[:-1])
            # A user's ping is not the keepalive's: it stays until its pong.
            mine = await ws.ping(b"mine")
            await asyncio.wait_for(pings.get(), 1000 * MS)
            await asyncio.wait_for(pings.get(), 1000 * MS)
            assert b"mine" in ws.pings and not mine.done()
        assert ws.close_code == 1000


async def test_keepalive_server_side() -> None:
    cap = Capture()
    async with run_server(
        cap.handler, compression=None, ping_interval=30 * MS, ping_timeout=30 * MS
    ) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            server_ws = await cap.get()
            frame = await read_frame(reader)
            assert frame.opcode == OP_PING
            frame = await read_frame(reader)  # no pong: the server gives up
            assert frame.opcode == OP_CLOSE
            assert parse_close(frame.payload)[0] == 1011
            writer.write(encode_frame(OP_CLOSE, frame.payload))
            await finish_raw(reader, writer)
            await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
            assert server_ws.close_code == 1011
        finally:
            await close_writer(writer)


async def test_keepalive_answered_keeps_connection_open() -> None:
    async with run_server(ping_interval=20 * MS, ping_timeout=20 * MS) as uri:
        async with connect(uri, ping_interval=20 * MS, ping_timeout=20 * MS) as ws:
            await asyncio.sleep(150 * MS)
            assert ws.open
            await ws.send("alive")
            assert await ws.recv() == "alive"


async def test_ping_interval_none_sends_no_pings() -> None:
    opcodes: list[int] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            frame = await read_frame(reader, timeout=5000 * MS)
            opcodes.append(frame.opcode)
            if frame.opcode == OP_CLOSE:
                writer.write(encode_frame(OP_CLOSE, frame.payload, mask=False))
                return

    async with raw_ws_server(peer) as uri:
        async with connect(uri, ping_interval=None, ping_timeout=1 * MS):
            await asyncio.sleep(100 * MS)
        async with connect(uri, ping_interval=10 * MS, ping_timeout=None):
            await asyncio.sleep(100 * MS)
    first_close = opcodes.index(OP_CLOSE)
    assert opcodes[:first_close] == []
    assert OP_PING in opcodes[first_close:]


# ---------------------------------------------------------------------------- flow control


async def test_max_queue_pauses_reading() -> None:
    cap = Capture()
    size = 64 * 1024
    async with run_server(cap.handler, max_queue=4, compression=None) as uri:
        async with connect(uri, compression=None, write_limit=size) as ws:
            server_ws = await cap.get()
            assert server_ws.transport is not None
            assert server_ws.transport.is_reading()
            sent = 0
            message = os.urandom(size)
            with pytest.raises(TimeoutError):
                for _ in range(1000):
                    await asyncio.wait_for(ws.send(message), 200 * MS)
                    sent += 1
            # The client's send blocked: the server stopped reading, memory is bounded.
            assert not server_ws.transport.is_reading()
            assert len(server_ws.messages) <= 4 + 8
            assert sent < 1000
            # Reading resumes as the handler consumes messages; nothing is lost.
            received = 0
            while received < sent:
                assert await asyncio.wait_for(server_ws.recv(), 1000 * MS) == message
                received += 1
            assert server_ws.transport.is_reading()


async def test_write_limit_blocks_send() -> None:
    cap = Capture()
    write_limit = 32 * 1024
    async with run_server(cap.handler, write_limit=write_limit, compression=None) as uri:
        reader, writer = await raw_handshake(uri)  # never reads from now on
        try:
            server_ws = await cap.get()
            assert server_ws.transport is not None
            message = b"x" * 256 * 1024
            with pytest.raises(TimeoutError):
                for _ in range(400):  # 100 MiB: far beyond kernel buffers
                    await asyncio.wait_for(server_ws.send(message), 200 * MS)
            buffered = server_ws.transport.get_write_buffer_size()
            assert buffered <= write_limit + len(message) + 64
        finally:
            await reset_writer(writer)
        await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)


async def test_max_size_fails_connection_with_1009() -> None:
    cap = Capture()
    async with run_server(cap.handler, max_size=1000) as uri:
        async with connect(uri) as ws:
            server_ws = await cap.get()
            await ws.send("x" * 1000)  # at the limit: fine
            assert await server_ws.recv() == "x" * 1000
            await ws.send(os.urandom(1001))
            with pytest.raises(ConnectionClosedError) as exc_info:
                await asyncio.wait_for(server_ws.recv(), 1000 * MS)
            assert exc_info.value.code == 1009
            with pytest.raises(ConnectionClosedError) as exc_info:
                await asyncio.wait_for(ws.recv(), 1000 * MS)
            assert exc_info.value.code == 1009
            assert ws.close_code == 1009


async def test_max_size_applies_after_decompression() -> None:
    cap = Capture()
    async with run_server(cap.handler, max_size=10_000) as uri:
        async with connect(uri) as ws:
            server_ws = await cap.get()
            await ws.send(b"\x00" * 100_000)  # compresses to a few hundred bytes
            with pytest.raises(ConnectionClosedError) as exc_info:
                await asyncio.wait_for(server_ws.recv(), 1000 * MS)
            assert exc_info.value.code == 1009


async def test_max_size_none_disables_limit() -> None:
    async with run_server(max_size=None) as uri:
        async with connect(uri, max_size=None) as ws:
            message = os.urandom(3 * 2**20)
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), 5000 * MS) == message


# ---------------------------------------------------------------------------- protocol errors


async def test_protocol_error_from_raw_client() -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            server_ws = await cap.get()
            writer.write(encode_frame(OP_TEXT, b"unmasked", mask=False))
            frame = await read_frame(reader)
            assert frame.opcode == OP_CLOSE
            assert parse_close(frame.payload)[0] == 1002
            await finish_raw(reader, writer)
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(server_ws.recv(), 1000 * MS)
        finally:
            await close_writer(writer)


async def test_invalid_utf8_fails_with_1007() -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            server_ws = await cap.get()
            writer.write(encode_frame(OP_TEXT, b"\xff\xfe"))
            frame = await read_frame(reader)
            assert parse_close(frame.payload)[0] == 1007
            await finish_raw(reader, writer)
            with pytest.raises(ConnectionClosedError) as exc_info:
                await asyncio.wait_for(server_ws.recv(), 1000 * MS)
            assert exc_info.value.code == 1007
        finally:
            await close_writer(writer)


# ---------------------------------------------------------------------------- logging


async def test_normal_session_prints_and_logs_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with run_server() as uri:
        async with connect(uri) as ws:
            messages: list[str | bytes] = ["a", b"b", "c" * 100_000]
            for message in messages:
                await ws.send(message)
                assert await ws.recv() == message
            await asyncio.wait_for(await ws.ping(), 1000 * MS)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    assert [r.getMessage() for r in caplog.records] == []


async def test_connection_reset_mid_frame_is_not_an_error(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        try:
            await ws.recv()
        finally:
            closed.set_result(ws.close_code)

    async with run_server(handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        frame = encode_frame(OP_BINARY, b"x" * 1000)
        writer.write(frame[:300])  # half a frame
        await writer.drain()
        await asyncio.sleep(10 * MS)
        await reset_writer(writer)
        assert await asyncio.wait_for(closed, 1000 * MS) == 1006
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    out, err = capsys.readouterr()
    assert out == "" and err == ""


async def test_data_after_close_frame_is_ignored() -> None:
    # A client that sends data after its close frame must not break the server.
    cap = Capture()
    async with run_server(cap.handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            server_ws = await cap.get()
            writer.write(encode_frame(OP_CLOSE, close_payload(1000)))
            writer.write(encode_frame(OP_TEXT, b"after close"))
            frame = await read_frame(reader)
            assert frame.opcode == OP_CLOSE
            await finish_raw(reader, writer)
            await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
            assert server_ws.close_code == 1000
            with pytest.raises(ConnectionClosedOK):
                await server_ws.recv()
        finally:
            await close_writer(writer)


# ---------------------------------------------------------------------------- more edge cases


async def test_send_blocked_on_write_limit_fails_when_peer_resets() -> None:
    cap = Capture()
    async with run_server(cap.handler, write_limit=16 * 1024, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        server_ws = await cap.get()
        message = b"x" * 256 * 1024

        async def flood() -> None:
            while True:
                await server_ws.send(message)

        task = asyncio.create_task(flood())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 300 * MS)
        assert not task.done()  # blocked in send(), not failed
        await reset_writer(writer)
        with pytest.raises(ConnectionClosedError) as exc_info:
            await asyncio.wait_for(task, 1000 * MS)
        assert exc_info.value.code == 1006


async def test_close_frame_without_code_gives_1005() -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            server_ws = await cap.get()
            writer.write(encode_frame(OP_CLOSE, b""))
            frame = await read_frame(reader)
            assert (frame.opcode, frame.payload) == (OP_CLOSE, b"")
            await finish_raw(reader, writer)
            with pytest.raises(ConnectionClosedError) as exc_info:
                await asyncio.wait_for(server_ws.recv(), 1000 * MS)
            assert exc_info.value.code == 1005
            assert server_ws.close_code == 1005
        finally:
            await close_writer(writer)


async def test_messages_and_pings_while_closing() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frame = await read_frame(reader)
        assert frame.opcode == OP_CLOSE
        # Data and a ping after the client's close frame, before ours.
        writer.write(encode_frame(OP_TEXT, b"late message", mask=False))
        writer.write(encode_frame(OP_PING, b"late ping", mask=False))
        writer.write(encode_frame(OP_CLOSE, frame.payload, mask=False))

    async with raw_ws_server(peer) as uri:
        ws = await connect(uri, ping_interval=None)
        await asyncio.wait_for(ws.close(), 1000 * MS)
        assert ws.close_code == 1000
        assert await ws.recv() == "late message"
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()


async def test_fragmented_message_with_interleaved_ping() -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=None) as uri:
        reader, writer = await raw_handshake(uri)
        try:
            server_ws = await cap.get()
            writer.write(encode_frame(OP_TEXT, b"frag", fin=False))
            writer.write(encode_frame(OP_PING, b"mid"))
            writer.write(encode_frame(0x0, "mént".encode()[:3], fin=False))
            writer.write(encode_frame(0x0, "mént".encode()[3:], fin=True))
            frame = await read_frame(reader)
            assert (frame.opcode, frame.payload) == (OP_PONG, b"mid")
            assert await asyncio.wait_for(server_ws.recv(), 1000 * MS) == "fragmént"
        finally:
            await close_writer(writer)


async def test_server_close_with_busy_handler() -> None:
    cancelled = asyncio.Event()

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        try:
            await asyncio.sleep(3600)  # never reads
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = await wsrs.serve(handler, "127.0.0.1", 0, timeout=100 * MS)
    host, port = server.sockets[0].getsockname()[:2]
    ws = await connect(f"ws://{host}:{port}/")
    server.close()
    await asyncio.wait_for(server.wait_closed(), 2000 * MS)
    assert cancelled.is_set()
    with pytest.raises(ConnectionClosedOK) as exc_info:
        await ws.recv()
    assert exc_info.value.code == 1001
    assert server.sockets == []


async def test_server_close_with_unresponsive_raw_client() -> None:
    cap = Capture()
    server = await wsrs.serve(cap.handler, "127.0.0.1", 0, timeout=100 * MS, compression=None)
    host, port = server.sockets[0].getsockname()[:2]
    reader, writer = await raw_handshake(f"ws://{host}:{port}/")
    try:
        server_ws = await cap.get()
        server.close()
        frame = await read_frame(reader)
        assert frame.opcode == OP_CLOSE
        assert parse_close(frame.payload)[0] == 1001
        # Never answer: the server gives up after its timeout.
        await asyncio.wait_for(server.wait_closed(), 2000 * MS)
        assert server_ws.closed
    finally:
        await close_writer(writer)


async def test_legacy_recv_on_server() -> None:
    results: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.recv()
        results.set_result(await ws.recv())

    async with run_server(handler, legacy_recv=True) as uri:
        async with connect(uri) as ws:
            await ws.send("one")
        assert await asyncio.wait_for(results, 1000 * MS) is None
