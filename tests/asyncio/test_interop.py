"""Interoperability with the websockets library (a different implementation)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.exceptions

import wsrs
from wsrs import ConnectionClosedError, ConnectionClosedOK, WebSocketServerProtocol

from .utils import MS, Capture, run_server


COMPRESSION = pytest.mark.parametrize("compression", ["deflate", None])

MESSAGES: list[str | bytes] = [
    "",
    "hello",
    "ünïcödé ☃ " * 10,
    b"",
    b"\x00\x01\xfe\xff",
    "t" * 2**20,  # 1 MiB of text
    os.urandom(2**20),  # 1 MiB, incompressible
    bytes(2**20),  # 1 MiB, very compressible
]


async def echo(ws: WebSocketServerProtocol, path: str) -> None:
    async for message in ws:
        await ws.send(message)


# Incompressible 1 MiB messages grow slightly when deflated, and both libraries check the
# size of each frame as received (compressed) against max_size: leave some room.
MAX_SIZE = 2**21


def ws_connect(uri: str, compression: str | None) -> websockets.asyncio.client.connect:
    return websockets.asyncio.client.connect(
        uri,
        compression=compression,
        proxy=None,
        open_timeout=2,
        close_timeout=2,
        max_size=MAX_SIZE,
    )


@contextlib.asynccontextmanager
async def ws_server(
    handler: Callable[[websockets.asyncio.server.ServerConnection], Awaitable[None]],
    compression: str | None,
) -> AsyncIterator[str]:
    async with websockets.asyncio.server.serve(
        handler, "127.0.0.1", 0, compression=compression, close_timeout=2, max_size=MAX_SIZE
    ) as server:
        port = list(server.sockets)[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


async def ws_echo(ws: websockets.asyncio.server.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


# ---------------------------------------------------------------------------- wsrs server


@COMPRESSION
async def test_wsrs_server_websockets_client_messages(compression: str | None) -> None:
    cap_extensions: list[list[object]] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        cap_extensions.append(list(ws.extensions))
        await echo(ws, path)

    async with run_server(handler, compression=compression, max_size=MAX_SIZE) as uri:
        async with ws_connect(uri, compression) as client:
            for message in MESSAGES:
                await client.send(message)
                assert await asyncio.wait_for(client.recv(), 5000 * MS) == message
            # Fragmented message from websockets.
            await client.send(["frag", "mented"])
            assert await client.recv() == "fragmented"
    expected = [wsrs.PerMessageDeflate] if compression else []
    assert [[type(e) for e in exts] for exts in cap_extensions] == [expected]


@COMPRESSION
async def test_wsrs_server_websockets_client_ping_pong(compression: str | None) -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=compression) as uri:
        async with ws_connect(uri, compression) as client:
            server_ws = await cap.get()
            latency = await asyncio.wait_for(await client.ping(b"from websockets"), 1000 * MS)
            assert latency >= 0
            await asyncio.wait_for(await server_ws.ping("from wsrs"), 1000 * MS)
            await asyncio.wait_for(await server_ws.ping(), 1000 * MS)


@COMPRESSION
async def test_wsrs_server_closes_with_code(compression: str | None) -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.send("bye soon")
        await ws.close(4000, "custom close")

    async with run_server(handler, compression=compression) as uri:
        async with ws_connect(uri, compression) as client:
            assert await client.recv() == "bye soon"
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as exc_info:
                await client.recv()
            assert exc_info.value.rcvd is not None
            assert (exc_info.value.rcvd.code, exc_info.value.rcvd.reason) == (4000, "custom close")


@COMPRESSION
async def test_wsrs_server_handler_returns_1000(compression: str | None) -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.send("only")

    async with run_server(handler, compression=compression) as uri:
        async with ws_connect(uri, compression) as client:
            assert await client.recv() == "only"
            with pytest.raises(websockets.exceptions.ConnectionClosedOK) as exc_info:
                await client.recv()
            assert exc_info.value.rcvd is not None
            assert exc_info.value.rcvd.code == 1000


@COMPRESSION
async def test_websockets_client_closes_with_code(compression: str | None) -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=compression) as uri:
        async with ws_connect(uri, compression) as client:
            server_ws = await cap.get()
            await client.close(1001, "client leaving")
        await asyncio.wait_for(server_ws.wait_closed(), 2000 * MS)
        assert (server_ws.close_code, server_ws.close_reason) == (1001, "client leaving")
        with pytest.raises(ConnectionClosedOK):
            await server_ws.recv()


async def test_wsrs_server_max_size_with_websockets_client() -> None:
    cap = Capture()
    async with run_server(cap.handler, max_size=2**10) as uri:
        async with ws_connect(uri, "deflate") as client:
            server_ws = await cap.get()
            await client.send(os.urandom(2**10 + 1))
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as exc_info:
                await asyncio.wait_for(client.recv(), 2000 * MS)
            assert exc_info.value.rcvd is not None
            assert exc_info.value.rcvd.code == 1009
            with pytest.raises(ConnectionClosedError) as exc_info2:
                await server_ws.recv()
            assert exc_info2.value.code == 1009


# ---------------------------------------------------------------------------- wsrs client


@COMPRESSION
async def test_wsrs_client_websockets_server_messages(compression: str | None) -> None:
    async with ws_server(ws_echo, compression) as uri:
        async with wsrs.connect(uri, compression=compression, max_size=MAX_SIZE) as ws:
            expected = [wsrs.PerMessageDeflate] if compression else []
            assert [type(e) for e in ws.extensions] == expected
            for message in MESSAGES:
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), 5000 * MS) == message


@COMPRESSION
async def test_wsrs_client_websockets_server_ping_pong(compression: str | None) -> None:
    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        await asyncio.wait_for(await ws.ping(b"from websockets"), 1)
        await ws.send("pinged")
        await ws.wait_closed()

    async with ws_server(handler, compression) as uri:
        async with wsrs.connect(uri, compression=compression) as ws:
            await asyncio.wait_for(await ws.ping(), 1000 * MS)
            await asyncio.wait_for(await ws.ping("text"), 1000 * MS)
            assert await asyncio.wait_for(ws.recv(), 1000 * MS) == "pinged"


@COMPRESSION
async def test_websockets_server_closes_with_code(compression: str | None) -> None:
    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        await ws.send("bye soon")
        await ws.close(4001, "server close")

    async with ws_server(handler, compression) as uri:
        async with wsrs.connect(uri, compression=compression) as ws:
            assert await ws.recv() == "bye soon"
            with pytest.raises(ConnectionClosedError) as exc_info:
                await ws.recv()
            assert (exc_info.value.code, exc_info.value.reason) == (4001, "server close")
            await asyncio.wait_for(ws.wait_closed(), 2000 * MS)


@COMPRESSION
async def test_wsrs_client_closes_with_code(compression: str | None) -> None:
    seen: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            await ws.recv()
        assert ws.close_code is not None
        seen.set_result((ws.close_code, ws.close_reason or ""))

    async with ws_server(handler, compression) as uri:
        ws = await wsrs.connect(uri, compression=compression)
        await asyncio.wait_for(ws.close(4002, "client close"), 2000 * MS)
        assert ws.close_code == 4002
        assert await asyncio.wait_for(seen, 2000 * MS) == (4002, "client close")


async def test_wsrs_client_subprotocol_with_websockets_server() -> None:
    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        await ws.send(ws.subprotocol or "none")

    async with websockets.asyncio.server.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=["chat"],  # type: ignore[list-item]
    ) as server:
        port = list(server.sockets)[0].getsockname()[1]
        async with wsrs.connect(f"ws://127.0.0.1:{port}/", subprotocols=["other", "chat"]) as ws:
            assert ws.subprotocol == "chat"
            assert await ws.recv() == "chat"
