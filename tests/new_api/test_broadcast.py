"""wsrs.asyncio.server.broadcast: encoded once per encoding, compressed frames shared by
connections with context takeover, text=, fragmented senders skipped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets.asyncio.client
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from wsrs import _core
from wsrs.asyncio.client import connect
from wsrs.asyncio.server import Server, ServerConnection, broadcast, serve
from wsrs.exceptions import ConcurrencyError

from .test_connection import MS, uri_of


async def hold(connection: ServerConnection) -> None:
    """A handler that echoes what it receives with a prefix, so each connection also sends
    its own compressed messages between broadcasts."""
    async for message in connection:
        assert isinstance(message, str)
        await connection.send(f"own: {message}")


def record_frames(server: Server) -> dict[ServerConnection, list[bytes]]:
    """Record the frames that broadcast() writes on each connection."""
    written: dict[ServerConnection, list[bytes]] = {}
    for connection in server.connections:
        core = connection.connection
        assert core is not None
        frames = written.setdefault(connection, [])

        def send_shared(
            message: _core.SharedMessage,
            frames: list[bytes] = frames,
            original: Callable[[_core.SharedMessage], bytes] = core.send_shared,
        ) -> bytes:
            frame = original(message)
            frames.append(frame)
            return frame

        core.send_shared = send_shared  # type: ignore[method-assign]
    return written


async def wait_for_connections(server: Server, count: int) -> None:
    for _ in range(200):
        if len(server.connections) == count:
            return
        await asyncio.sleep(MS)
    raise AssertionError(f"expected {count} connections, got {len(server.connections)}")


async def broadcast_rounds(server: Server, clients: list[Any], news: str, rounds: int) -> None:
    """Broadcast ``news`` ``rounds`` times; after each, every client sends a message of its
    own and gets it back from ``hold``."""
    for round_ in range(rounds):
        assert broadcast(server.connections, f"{news} #{round_}") == 0
        for client in clients:
            assert await client.recv() == f"{news} #{round_}"
            # Each connection's own compressed message, between two broadcasts: its
            # compressor and the peer's decompressor must still agree.
            await client.send(f"{news} from {id(client)} #{round_}")
            assert await client.recv() == f"own: {news} from {id(client)} #{round_}"


async def test_compressed_broadcast_is_encoded_once_per_setting() -> None:
    news = "breaking news: the quick brown fox jumps over the lazy dog. " * 30
    async with serve(hold, "127.0.0.1", 0) as server:
        # Three peers with the default settings (context takeover, 15-bit windows): two
        # websockets 17 clients and one wsrs client; one peer asks for a 10-bit window.
        same: list[Any] = [
            await websockets.asyncio.client.connect(uri_of(server)),
            await websockets.asyncio.client.connect(uri_of(server)),
            await connect(uri_of(server)),
        ]
        small = await websockets.asyncio.client.connect(
            uri_of(server),
            extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=10)],
            compression=None,
        )
        plain = await connect(uri_of(server), compression=None)
        clients = [*same, small, plain]
        await wait_for_connections(server, len(clients))
        written = record_frames(server)
        await broadcast_rounds(server, clients, news, 5)
        frames = {connection: frames for connection, frames in written.items()}
        by_round = list(zip(*frames.values(), strict=True))
        for round_frames in by_round:
            distinct = {id(frame) for frame in round_frames}
            # One frame for the three alike, one for the 10-bit window, one uncompressed.
            assert len(distinct) == 3
            sizes = sorted(len(frame) for frame in round_frames)
            assert sizes[0] < len(news) / 10 and sizes[-1] > len(news)
        for client in clients:
            await client.close()


async def test_broadcast_text_argument() -> None:
    async with serve(hold, "127.0.0.1", 0, compression=None) as server:
        async with connect(uri_of(server), compression=None) as client:
            await wait_for_connections(server, 1)
            broadcast(server.connections, b'{"json": "bytes"}', text=True)
            assert await client.recv() == '{"json": "bytes"}'
            broadcast(server.connections, "as binary", text=False)
            assert await client.recv() == b"as binary"
            broadcast(server.connections, memoryview(b"view"))
            assert await client.recv() == b"view"


async def test_broadcast_from_clients_masks_each_frame() -> None:
    received: asyncio.Queue[str] = asyncio.Queue()

    async def collect(connection: ServerConnection) -> None:
        async for message in connection:
            assert isinstance(message, str)
            await received.put(message)

    async with serve(collect, "127.0.0.1", 0) as server:
        clients = [await connect(uri_of(server)) for _ in range(3)]
        assert broadcast(clients, "from the clients " * 20) == 0
        for _ in clients:
            assert await asyncio.wait_for(received.get(), 1) == "from the clients " * 20
        for client in clients:
            await client.close()


async def test_broadcast_skips_a_connection_sending_fragments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def fragments() -> AsyncIterator[str]:
        yield "first "
        await release.wait()
        yield "last"

    async with serve(hold, "127.0.0.1", 0) as server:
        async with connect(uri_of(server)) as client:
            await wait_for_connections(server, 1)
            server_side = next(iter(server.connections))
            sending = asyncio.create_task(server_side.send(fragments()))
            await asyncio.sleep(10 * MS)
            with caplog.at_level(logging.WARNING):
                assert broadcast(server.connections, "skipped") == 0
            assert "skipped broadcast: sending a fragmented message" in caplog.text
            with pytest.raises(ExceptionGroup) as raised:
                broadcast(server.connections, "skipped", raise_exceptions=True)
            assert isinstance(raised.value.exceptions[0], ConcurrencyError)
            release.set()
            await sending
            assert await client.recv() == "first last"
            broadcast(server.connections, "after")
            assert await client.recv() == "after"


async def test_broadcast_wraps_write_failures() -> None:
    async with serve(hold, "127.0.0.1", 0, compression=None) as server:
        async with connect(uri_of(server), compression=None):
            await wait_for_connections(server, 1)
            server_side = next(iter(server.connections))
            assert server_side.connection is not None

            def fail(message: _core.SharedMessage) -> bytes:
                raise OSError("broken pipe")

            server_side.connection.send_shared = fail  # type: ignore[method-assign]
            with pytest.raises(ExceptionGroup) as raised:
                broadcast(server.connections, "x", raise_exceptions=True)
            failure = raised.value.exceptions[0]
            assert isinstance(failure, RuntimeError)
            assert isinstance(failure.__cause__, OSError)


async def test_broadcast_to_lean_connections_shares_one_frame() -> None:
    """compression="lean": every connection compresses with the same settings (12-bit
    windows), so one compressed frame serves them all; each records it in its window
    history, and holds no compressor between messages."""
    news = "breaking news: the quick brown fox jumps over the lazy dog. " * 30
    async with serve(hold, "127.0.0.1", 0, compression="lean") as server:
        clients: list[Any] = [
            await websockets.asyncio.client.connect(uri_of(server)),
            # No client_max_window_bits offered: the server answers client_no_context_takeover.
            await websockets.asyncio.client.connect(
                uri_of(server),
                extensions=[ClientPerMessageDeflateFactory(client_max_window_bits=None)],
                compression=None,
            ),
            await connect(uri_of(server)),
        ]
        await wait_for_connections(server, len(clients))
        written = record_frames(server)
        await broadcast_rounds(server, clients, news, 4)
        for connection in server.connections:
            core = connection.connection
            assert core is not None
            assert not core._writer.deflater_allocated
            assert not core.reader.inflater_allocated
        for round_frames in zip(*written.values(), strict=True):
            assert len({id(frame) for frame in round_frames}) == 1
            assert len(round_frames[0]) < len(news) / 10
        for client in clients:
            await client.close()
