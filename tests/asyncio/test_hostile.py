"""Hostile peers over real sockets: each attack gets a clear close code or HTTP status, its
resources stay bounded, and another connection to the same server keeps working.

The attackers are raw sockets writing bytes by hand; the good connection is a wsrs client
opened before the attack and checked with an echo after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any, cast

import pytest

import wsrs
from wsrs import connect
from wsrs.protocol import RECEIVE_BUFFER_SIZE

from .utils import (
    MS,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    check_echo,
    close_payload,
    close_writer,
    encode_frame,
    eventually,
    finish_raw,
    frame_header,
    open_raw,
    parse_close,
    peak_rss,
    raw_handshake,
    raw_handshake_response,
    raw_ws_server,
    read_frame,
    read_http_response,
    reset_peak_rss,
    reset_writer,
    rss,
    run_server,
    server_uri,
    tracked_server,
    upgrade_request,
    wait_for_tasks,
)


MiB = 2**20

READ_CHUNK = 256 * 1024
"""Most bytes an asyncio transport reads from a socket at once."""


async def expect_close(reader: asyncio.StreamReader, code: int) -> None:
    """Read frames until a close frame; check its code, then that the server closes TCP."""
    while True:
        frame = await read_frame(reader)
        if frame.opcode == OP_CLOSE:
            break
    assert parse_close(frame.payload)[0] == code
    assert await asyncio.wait_for(reader.read(), 1000 * MS) == b""


def no_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# ---------------------------------------------------------------------------- opening handshake


async def test_slowloris_handshake_is_closed_after_timeout() -> None:
    timeout = 300 * MS
    async with tracked_server(timeout=timeout) as (server, _):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            loop = asyncio.get_running_loop()
            reader, writer = await open_raw(uri)
            start = loop.time()
            writer.write(b"GET / HTTP/1.1\r\n")

            async def drip() -> None:
                # One byte of a never-ending header every 50 ms.
                with contextlib.suppress(ConnectionError):
                    writer.write(b"X-Slow: ")
                    while True:
                        await asyncio.sleep(50 * MS)
                        writer.write(b"a")
                        await writer.drain()

            dripping = asyncio.create_task(drip())
            try:
                try:
                    data = await asyncio.wait_for(reader.read(), 20 * timeout)
                except ConnectionResetError:
                    data = b""
                elapsed = loop.time() - start
            finally:
                dripping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dripping
                await close_writer(writer)
            assert b"HTTP/1.1 101" not in data
            # Bytes kept coming, yet the handshake timeout still applies.
            assert timeout * 0.8 <= elapsed < timeout + 1000 * MS
            await check_echo(good)


def _request(host: str, kind: str) -> bytes:
    if kind == "request line":
        request, _ = upgrade_request(host, "/" + "a" * 100_000)
    elif kind == "header value":
        request, _ = upgrade_request(host, headers=[("X-Big", "v" * 20_000)])
    else:
        request, _ = upgrade_request(host, headers=[(f"X-H{i}", "v") for i in range(10_000)])
    return request


@pytest.mark.parametrize("kind", ["request line", "header value", "header count"])
async def test_oversized_request_gets_4xx_and_is_closed(kind: str) -> None:
    async with tracked_server() as (server, _):
        uri = server_uri(server)
        host = uri.split("//")[1].rstrip("/")
        async with connect(uri, ping_interval=None) as good:
            request = _request(host, kind)
            reader, writer = await open_raw(uri)
            try:
                writer.write(request)
                status, _, body = await read_http_response(reader)
                assert status in (400, 431), status
                assert body
                # The server closed the connection after its answer, without a reset.
                assert await asyncio.wait_for(reader.read(), 1000 * MS) == b""
            finally:
                await close_writer(writer)
            await check_echo(good)


async def test_endless_headers_get_4xx_and_memory_is_bounded() -> None:
    # A client streams up to 16 MiB of headers: the server answers 4xx once the head exceeds
    # its limits and discards the rest (a lingering close, so the client gets the answer
    # rather than a reset). What it buffers stays near read_limit.
    read_limit = 64 * 1024
    async with tracked_server(read_limit=read_limit) as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            chunk = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 50) for i in range(1000))
            reader, writer = await open_raw(uri)

            async def stream() -> None:
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
                for _ in range(16 * MiB // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()

            tracemalloc.start()
            streaming = asyncio.create_task(stream())
            try:
                status, _, body = await read_http_response(reader)
                streaming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await streaming
                _, peak = tracemalloc.get_traced_memory()
                assert status in (400, 431), status
                assert body
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 1000 * MS) == b""
            finally:
                tracemalloc.stop()
                await close_writer(writer)
            assert peak < read_limit + 4 * READ_CHUNK + 2 * len(chunk), peak
            await eventually(lambda: server.websockets == set(tracker.started))
            await check_echo(good)


# ---------------------------------------------------------------------------- frames


@pytest.mark.parametrize(
    ("length", "code"),
    [(2**63 - 1, 1009), (2**63, 1002), (2**64 - 1, 1002)],
    ids=["2^63-1", "top-bit", "2^64-1"],
)
async def test_huge_frame_length_fails_from_header_alone(length: int, code: int) -> None:
    async with tracked_server() as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri)
            try:
                # The header and the masking key, no payload.
                writer.write(frame_header(OP_BINARY, length) + os.urandom(4))
                await expect_close(reader, code)
            finally:
                await close_writer(writer)
            await eventually(lambda: len(tracker.finished) == 1)
            assert tracker.finished[0].close_code == code
            await check_echo(good)


async def test_message_one_byte_per_write_is_received_intact() -> None:
    async with tracked_server() as (server, _):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri)
            try:
                text = "slow é " * 30  # 16-bit length: header, length, key split too
                frame = encode_frame(OP_TEXT, text.encode())
                assert len(frame) > 200
                for i in range(len(frame)):
                    writer.write(frame[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(MS / 2)
                echoed = await read_frame(reader)
                assert (echoed.opcode, echoed.payload.decode(), echoed.fin) == (
                    OP_TEXT,
                    text,
                    True,
                )
                writer.write(encode_frame(OP_CLOSE, close_payload(1000)))
                await expect_close(reader, 1000)
            finally:
                await close_writer(writer)
            await check_echo(good)


async def test_endless_fragmented_message_fails_with_1009_at_max_size() -> None:
    max_size = 64 * 1024
    fragment = 4096
    async with tracked_server(max_size=max_size) as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri)
            try:
                # Exactly max_size bytes in non-final fragments: still acceptable...
                writer.write(encode_frame(OP_BINARY, b"x" * fragment, fin=False))
                for _ in range(max_size // fragment - 1):
                    writer.write(encode_frame(OP_CONT, b"x" * fragment, fin=False))
                writer.write(encode_frame(OP_PING, b"alive?"))
                pong = await read_frame(reader)
                assert (pong.opcode, pong.payload) == (OP_PONG, b"alive?")
                # ...one more byte is not. The server keeps no more than max_size.
                writer.write(encode_frame(OP_CONT, b"x", fin=False))
                await expect_close(reader, 1009)
            finally:
                await close_writer(writer)
            await eventually(lambda: len(tracker.finished) == 1)
            assert tracker.finished[0].close_code == 1009
            await check_echo(good)


async def test_endless_fragmented_message_fails_from_a_fragment_header() -> None:
    # A continuation frame announcing a gigabyte fails before any of it arrives.
    async with tracked_server(max_size=64 * 1024) as (server, _):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri)
            try:
                writer.write(encode_frame(OP_TEXT, b"start", fin=False))
                writer.write(frame_header(OP_CONT, 2**30, fin=False) + os.urandom(4))
                await expect_close(reader, 1009)
            finally:
                await close_writer(writer)
            await check_echo(good)


async def test_control_frames_between_fragments_are_answered() -> None:
    async with tracked_server() as (server, _):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri)
            try:
                parts = [b"one ", b"two ", b"three ", b"four"]
                writer.write(encode_frame(OP_TEXT, parts[0], fin=False))
                for i, part in enumerate(parts[1:], 1):
                    # Each ping is answered while the message is still being assembled.
                    writer.write(encode_frame(OP_PING, b"ping %d" % i))
                    pong = await read_frame(reader)
                    assert (pong.opcode, pong.payload) == (OP_PONG, b"ping %d" % i)
                    writer.write(encode_frame(OP_PONG, b"unsolicited"))
                    writer.write(encode_frame(OP_CONT, part, fin=i == len(parts) - 1))
                echoed = await read_frame(reader)
                assert (echoed.opcode, echoed.payload) == (OP_TEXT, b"".join(parts))
                writer.write(encode_frame(OP_CLOSE, close_payload(1000)))
                await expect_close(reader, 1000)
            finally:
                await close_writer(writer)
            await check_echo(good)


@functools.cache
def deflate_bomb() -> tuple[bytes, int]:
    """A raw DEFLATE stream of about 100 KiB inflating to 100 MiB of zeros, without its
    final ``00 00 ff ff`` (RFC 7692 §7.2.1); built 1 MiB at a time to keep memory low."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    chunks = [compressor.compress(zeros) for _ in range(100)]
    chunks.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    data = b"".join(chunks)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4], 100 * MiB


async def test_decompression_bomb_fails_with_1009_and_memory_is_bounded() -> None:
    max_size = MiB
    bomb, inflated = deflate_bomb()
    assert len(bomb) < 128 * 1024 and inflated == 100 * MiB
    frame = encode_frame(OP_BINARY, bomb, rsv=0b100)
    async with tracked_server(max_size=max_size, compression="deflate") as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer, headers = await raw_handshake_response(
                uri, headers=[("Sec-WebSocket-Extensions", "permessage-deflate")]
            )
            try:
                extensions = [v for n, v in headers if n.lower() == "sec-websocket-extensions"]
                assert extensions and extensions[0].startswith("permessage-deflate")
                peak_resets = reset_peak_rss()
                before = rss()
                writer.write(frame)
                await expect_close(reader, 1009)
                growth = (peak_rss() if peak_resets else rss()) - before
            finally:
                await close_writer(writer)
            await eventually(lambda: len(tracker.finished) == 1)
            assert tracker.finished[0].close_code == 1009
            # Measured: a few MiB at most; inflating the whole bomb would take 100 MiB.
            assert growth < max_size + 16 * MiB, growth / MiB
            await check_echo(good)


# ---------------------------------------------------------------------------- flow control


async def test_client_that_never_reads_blocks_send_and_bounds_the_write_buffer() -> None:
    write_limit = 64 * 1024
    async with tracked_server(write_limit=write_limit) as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri, "/hold")  # never reads
            try:
                server_ws = await tracker.get()
                transport = server_ws.transport
                assert transport is not None
                message = b"x" * 256 * 1024
                sent = 0
                with pytest.raises(TimeoutError):
                    for _ in range(400):  # 100 MiB: far beyond the socket buffers
                        await asyncio.wait_for(server_ws.send(message), 500 * MS)
                        sent += 1
                assert sent < 400
                # send() waits while the buffer is over write_limit, so at most one message
                # (with its header) sits above it.
                buffered = transport.get_write_buffer_size()
                assert write_limit < buffered <= write_limit + len(message) + 16, buffered
                await check_echo(good)
            finally:
                await reset_writer(writer)
            await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
            assert server_ws.close_code == 1006
            await check_echo(good)


async def test_client_that_sends_faster_than_the_handler_reads_is_paused() -> None:
    max_queue = 4
    size = 16 * 1024
    async with tracked_server(max_queue=max_queue) as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri, "/hold")
            try:
                server_ws = await tracker.get()  # its handler never reads
                transport = server_ws.transport
                assert transport is not None
                message = os.urandom(size)
                frame = encode_frame(OP_BINARY, message)
                sent = 0
                with pytest.raises(TimeoutError):
                    for _ in range(10_000):  # 160 MiB
                        writer.write(frame)
                        sent += 1
                        await asyncio.wait_for(writer.drain(), 500 * MS)
                assert sent < 10_000
                # The server stopped reading: the queue holds max_queue messages plus what
                # the read chunk that filled it carried.
                assert not transport.is_reading()
                assert len(server_ws.messages) <= max_queue + READ_CHUNK // size + 1
                await check_echo(good)
                # Reading resumes as messages are consumed; none is lost or damaged.
                for _ in range(sent):
                    assert await asyncio.wait_for(server_ws.recv(), 2000 * MS) == message
                assert transport.is_reading()
                assert not server_ws.messages
            finally:
                await close_writer(writer)
            await check_echo(good)


# ---------------------------------------------------------------- floods from peers that never read
#
# A peer that never reads must not make an endpoint hold memory without bound: while the write
# buffer is over write_limit, the endpoint stops reading (wsrs.flow.ReadGate), so only what
# one read carried is answered above the mark. Before that rule, a ping flood grew a server by
# about 50 MiB per 400,000 pings (issue #18).

PING_PAYLOAD = b"p" * 125
BURST = 1000
"""Pings written per drain() of the flooding peer."""
FLOOD_LIMIT = 4_000_000
"""Pings a flood sends at most: 500 MiB of pongs if every one were answered at once."""
WRITE_LIMIT = 64 * 1024


def write_bound(write_limit: int) -> int:
    """Most bytes a write buffer may hold while a peer floods pings and never reads.

    Over the mark, the endpoint answers only the pings of the read in progress: at most one
    receive buffer of pings (131 bytes each), answered by pongs no larger than them.
    """
    return write_limit + RECEIVE_BUFFER_SIZE


def read_side(writer: asyncio.StreamWriter) -> asyncio.Transport:
    """The transport of a raw connection, to pause or resume its reading."""
    return cast(asyncio.Transport, writer.transport)


async def flood(writer: asyncio.StreamWriter, burst: bytes, check: Callable[[], None]) -> int:
    """Write ``burst`` until the peer stops reading (drain() blocks for 500 ms) or
    :data:`FLOOD_LIMIT` frames were written; call ``check`` after each burst; return how
    many frames were written."""
    sent = 0
    with contextlib.suppress(TimeoutError):
        while sent < FLOOD_LIMIT:
            writer.write(burst)
            sent += BURST
            await asyncio.wait_for(writer.drain(), 500 * MS)
            check()
    return sent


async def test_ping_flood_from_a_client_that_never_reads_is_bounded() -> None:
    async with tracked_server(write_limit=WRITE_LIMIT) as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri, "/hold")
            try:
                read_side(writer).pause_reading()  # never reads: no pong leaves the server
                server_ws = await tracker.get()
                transport = server_ws.transport
                assert transport is not None
                peak_resets = reset_peak_rss()
                before = rss()
                peak_buffered = 0

                def check() -> None:
                    nonlocal peak_buffered
                    buffered = transport.get_write_buffer_size()
                    peak_buffered = max(peak_buffered, buffered)
                    assert buffered <= write_bound(WRITE_LIMIT), buffered

                ping = encode_frame(OP_PING, PING_PAYLOAD)
                sent = await flood(writer, ping * BURST, check)
                growth = (peak_rss() if peak_resets else rss()) - before
                # The server stopped reading: the flood was throttled by TCP, not answered.
                assert sent < FLOOD_LIMIT
                assert not transport.is_reading()
                assert WRITE_LIMIT < peak_buffered <= write_bound(WRITE_LIMIT)
                assert growth < 16 * MiB, growth / MiB
                await check_echo(good)

                # Once the client reads, the server reads again and answers every ping, in
                # order, then the closing handshake completes.
                writer.write(encode_frame(OP_CLOSE, close_payload(1000)))
                read_side(writer).resume_reading()
                pong = encode_frame(OP_PONG, PING_PAYLOAD, mask=False)
                received = await asyncio.wait_for(reader.readexactly(sent * len(pong)), 10_000 * MS)
                assert received == pong * sent
                await expect_close(reader, 1000)
            finally:
                await close_writer(writer)
            await asyncio.wait_for(server_ws.wait_closed(), 1000 * MS)
            assert server_ws.close_code == 1000
            await check_echo(good)


async def test_ping_flood_from_a_server_is_bounded_for_a_client() -> None:
    flooded: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    start, go = asyncio.Event(), asyncio.Event()
    client: list[wsrs.WebSocketClientProtocol] = []
    peak_buffered = 0

    def check() -> None:
        nonlocal peak_buffered
        transport = client[0].transport
        assert transport is not None
        buffered = transport.get_write_buffer_size()
        peak_buffered = max(peak_buffered, buffered)
        assert buffered <= write_bound(WRITE_LIMIT), buffered

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        read_side(writer).pause_reading()
        await start.wait()
        ping = encode_frame(OP_PING, PING_PAYLOAD, mask=False)
        try:
            flooded.set_result(await flood(writer, ping * BURST, check))
        except AssertionError as exc:  # fail the test now, not at its timeout
            flooded.set_exception(exc)
            raise
        await go.wait()
        writer.write(encode_frame(OP_CLOSE, close_payload(1000), mask=False))
        read_side(writer).resume_reading()
        # Masked pongs: 2 header bytes, 4 of key, the payload; then the masked close echo.
        sent = flooded.result()
        pong_size = 2 + 4 + len(PING_PAYLOAD)
        received = await reader.readexactly(sent * pong_size)
        assert received[::pong_size] == bytes([0x80 | OP_PONG]) * sent
        assert received[1::pong_size] == bytes([0x80 | len(PING_PAYLOAD)]) * sent
        assert (await read_frame(reader)).payload == close_payload(1000)

    async with run_server() as echo_uri, connect(echo_uri, ping_interval=None) as good:
        async with raw_ws_server(peer) as uri:
            async with connect(uri, ping_interval=None, write_limit=WRITE_LIMIT) as ws:
                client.append(ws)
                transport = ws.transport
                assert transport is not None
                peak_resets = reset_peak_rss()
                before = rss()
                start.set()
                sent = await asyncio.wait_for(flooded, 30_000 * MS)
                growth = (peak_rss() if peak_resets else rss()) - before
                assert sent < FLOOD_LIMIT
                assert not transport.is_reading()
                assert WRITE_LIMIT < peak_buffered <= write_bound(WRITE_LIMIT)
                assert growth < 16 * MiB, growth / MiB
                await check_echo(good)
                go.set()
                # Every ping is answered once the server reads; then its close frame arrives.
                await asyncio.wait_for(ws.wait_closed(), 10_000 * MS)
                assert ws.close_code == 1000
        await check_echo(good)


async def test_message_flood_from_a_server_is_bounded_by_max_queue() -> None:
    max_queue, size = 4, 16 * 1024
    message = os.urandom(size)
    flooded: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    go = asyncio.Event()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        read_side(writer).pause_reading()
        frames = encode_frame(OP_BINARY, message, mask=False) * 16
        flooded.set_result(await flood(writer, frames, lambda: None) // BURST * 16)
        await go.wait()
        read_side(writer).resume_reading()
        writer.write(encode_frame(OP_CLOSE, close_payload(1000), mask=False))
        assert (await read_frame(reader, 10_000 * MS)).opcode == OP_CLOSE

    async with run_server() as echo_uri, connect(echo_uri, ping_interval=None) as good:
        async with raw_ws_server(peer) as uri:
            peak_resets = reset_peak_rss()
            before = rss()
            async with connect(uri, ping_interval=None, max_queue=max_queue) as ws:
                transport = ws.transport
                assert transport is not None
                sent = await asyncio.wait_for(flooded, 30_000 * MS)
                growth = (peak_rss() if peak_resets else rss()) - before
                # The application reads nothing: the queue holds max_queue messages plus
                # what the read that filled it carried.
                assert not transport.is_reading()
                assert len(ws.messages) <= max_queue + RECEIVE_BUFFER_SIZE // size + 1
                assert growth < 16 * MiB, growth / MiB
                await check_echo(good)
                go.set()
                # Reading resumes as the application reads; nothing is lost or damaged.
                for _ in range(sent):
                    assert await asyncio.wait_for(ws.recv(), 2000 * MS) == message
                await asyncio.wait_for(ws.wait_closed(), 2000 * MS)
                assert ws.close_code == 1000
        await check_echo(good)


async def test_bytes_sent_while_the_handshake_waits_are_bounded_by_read_limit() -> None:
    """A client that streams frames while an asynchronous process_request runs is paused
    once read_limit bytes are buffered; the frames are all delivered once the connection
    opens."""
    read_limit = 16 * 1024
    release = asyncio.Event()
    waiting: asyncio.Queue[wsrs.WebSocketServerProtocol] = asyncio.Queue()

    class Slow(wsrs.WebSocketServerProtocol):
        async def process_request(self, path: str, request_headers: Any) -> None:
            await waiting.put(self)
            await release.wait()

    message = os.urandom(1024)
    count = 20_000  # 20 MiB: far beyond the socket buffers
    async with tracked_server(read_limit=read_limit, create_protocol=Slow) as (server, _):
        uri = server_uri(server)
        reader, writer = await open_raw(uri)
        try:
            request, _ = upgrade_request(uri.split("//")[1].rstrip("/"))
            writer.write(request)
            protocol = await asyncio.wait_for(waiting.get(), 1000 * MS)
            frames = b"".join(encode_frame(OP_BINARY, message) for _ in range(100))
            sent = 0
            with contextlib.suppress(TimeoutError):
                while sent < count:
                    writer.write(frames)
                    sent += 100
                    await asyncio.wait_for(writer.drain(), 500 * MS)
            assert sent < count
            transport = protocol.transport
            assert transport is not None and not transport.is_reading()
            assert len(protocol._handshake.data) <= read_limit + RECEIVE_BUFFER_SIZE
            release.set()
            status, _, _ = await read_http_response(reader)
            assert status == 101
            # Every frame sent during the handshake is echoed, in order.
            for _ in range(sent):
                frame = await read_frame(reader)
                assert (frame.opcode, frame.payload) == (OP_BINARY, message)
            writer.write(encode_frame(OP_CLOSE, close_payload(1000)))
            await expect_close(reader, 1000)
        finally:
            await close_writer(writer)


# ---------------------------------------------------------------------------- resets


async def _reset_during_handshake(uri: str) -> None:
    reader, writer = await open_raw(uri)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    await asyncio.sleep(20 * MS)
    await reset_writer(writer)


async def _reset_after_handshake(uri: str) -> None:
    reader, writer = await raw_handshake(uri)
    await reset_writer(writer)


async def _reset_mid_frame(uri: str) -> None:
    reader, writer = await raw_handshake(uri)
    writer.write(encode_frame(OP_BINARY, b"x" * 1000)[:300])
    await writer.drain()
    await asyncio.sleep(20 * MS)
    await reset_writer(writer)


async def _reset_mid_message(uri: str) -> None:
    reader, writer = await raw_handshake(uri)
    writer.write(encode_frame(OP_TEXT, b"first fragment", fin=False))
    await writer.drain()
    await asyncio.sleep(20 * MS)
    await reset_writer(writer)


async def _reset_after_close_frame(uri: str) -> None:
    reader, writer = await raw_handshake(uri)
    writer.write(encode_frame(OP_CLOSE, close_payload(1000)))
    await writer.drain()
    await reset_writer(writer)


async def _reset_after_closing_handshake(uri: str) -> None:
    reader, writer = await raw_handshake(uri)
    writer.write(encode_frame(OP_CLOSE, close_payload(1000)))
    assert (await read_frame(reader)).opcode == OP_CLOSE
    await reset_writer(writer)


async def _reset_while_server_sends(uri: str) -> None:
    reader, writer = await raw_handshake(uri)
    # Echoed messages pile up unread in the server's write buffer.
    for _ in range(64):
        writer.write(encode_frame(OP_BINARY, b"y" * 64 * 1024))
    await writer.drain()
    await asyncio.sleep(50 * MS)
    await reset_writer(writer)


RESETS = {
    "during handshake": _reset_during_handshake,
    "after handshake": _reset_after_handshake,
    "mid-frame": _reset_mid_frame,
    "mid-message": _reset_mid_message,
    "after close frame": _reset_after_close_frame,
    "after closing handshake": _reset_after_closing_handshake,
    "while server sends": _reset_while_server_sends,
}


@pytest.mark.parametrize("stage", list(RESETS))
async def test_tcp_reset(stage: str, caplog: pytest.LogCaptureFixture) -> None:
    async with tracked_server() as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            await check_echo(good)
            [good_server_ws] = tracker.started
            tasks = asyncio.all_tasks()
            await RESETS[stage](uri)
            # The server forgets the connection; its handler, if it started, finished.
            await eventually(lambda: server.websockets == {good_server_ws})
            assert await wait_for_tasks(tasks) <= tasks
            assert len(tracker.finished) == len(tracker.started) - 1
            for ws in tracker.finished:
                assert ws.closed
                assert ws.close_code in (1000, 1006)
            await check_echo(good)
    assert no_errors(caplog) == []


# ---------------------------------------------------------------------------- closing


async def test_peer_that_never_answers_close_is_aborted_after_timeout() -> None:
    timeout = 300 * MS
    async with tracked_server(timeout=timeout) as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri, "/hold")
            try:
                server_ws = await tracker.get()
                loop = asyncio.get_running_loop()
                start = loop.time()
                closing = asyncio.create_task(server_ws.close())
                frame = await read_frame(reader)  # read it, never answer it
                assert (frame.opcode, parse_close(frame.payload)[0]) == (OP_CLOSE, 1000)
                await asyncio.wait_for(closing, 20 * timeout)
                elapsed = loop.time() - start
                assert timeout * 0.8 <= elapsed < timeout + 1000 * MS
                assert server_ws.closed
                assert server_ws.close_code == 1006
                # The server aborted TCP.
                with contextlib.suppress(ConnectionResetError):
                    await asyncio.wait_for(reader.read(), 1000 * MS)
            finally:
                await close_writer(writer)
            await check_echo(good)


async def test_client_that_never_closes_tcp_is_aborted_after_timeout() -> None:
    # A client completes the closing handshake but never closes TCP: the server half-closes
    # it at once, then aborts it after the timeout.
    timeout = 300 * MS
    async with tracked_server(timeout=timeout) as (server, tracker):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri)
            try:
                loop = asyncio.get_running_loop()
                start = loop.time()
                writer.write(encode_frame(OP_CLOSE, close_payload(1001, "bye")))
                await expect_close(reader, 1001)  # the server's FIN
                await eventually(lambda: len(tracker.finished) == 1, 20 * timeout)
                elapsed = loop.time() - start
                assert timeout * 0.8 <= elapsed < timeout + 1000 * MS
                assert tracker.finished[0].close_code == 1001
            finally:
                await close_writer(writer)
            await check_echo(good)


async def test_unmasked_frame_from_client_fails_with_1002() -> None:
    async with tracked_server() as (server, _):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri)
            try:
                writer.write(encode_frame(OP_TEXT, b"not masked", mask=False))
                await expect_close(reader, 1002)
                await finish_raw(reader, writer)
            finally:
                await close_writer(writer)
            await check_echo(good)


async def test_oversized_control_frame_fails_with_1002() -> None:
    async with tracked_server() as (server, _):
        uri = server_uri(server)
        async with connect(uri, ping_interval=None) as good:
            reader, writer = await raw_handshake(uri)
            try:
                writer.write(frame_header(OP_PING, 126) + struct.pack("!I", 0) + b"p" * 126)
                await expect_close(reader, 1002)
            finally:
                await close_writer(writer)
            await check_echo(good)
