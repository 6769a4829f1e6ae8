"""wsrs.asyncio.server: serve, the handshake hooks, Server, basic_auth, broadcast."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import tempfile
from collections.abc import Sequence

import pytest
import websockets.asyncio.client
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory as WebsocketsClientDeflate,
    PerMessageDeflate as WebsocketsPerMessageDeflate,
)

from wsrs.asyncio.client import connect, unix_connect
from wsrs.asyncio.server import ServerConnection, basic_auth, broadcast, serve, unix_serve
from wsrs.exceptions import ConnectionClosedOK, InvalidStatus
from wsrs.http11 import Request, Response

from .test_connection import MS, echo, uri_of


async def test_process_request_can_answer() -> None:
    def health(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(200, "OK\n")
        return None

    async with serve(echo, "127.0.0.1", 0, process_request=health) as server:
        with pytest.raises(InvalidStatus) as raised:
            await connect(uri_of(server) + "healthz")
        assert raised.value.response.status_code == 200
        assert raised.value.response.body == b"OK\n"
        async with connect(uri_of(server)) as client:
            await client.send("still works")
            assert await client.recv() == "still works"


async def test_async_process_request_and_process_response() -> None:
    async def process_request(connection: ServerConnection, request: Request) -> None:
        await asyncio.sleep(0)
        assert connection.request is request

    def process_response(
        connection: ServerConnection, request: Request, response: Response
    ) -> Response:
        response.headers["X-Seen"] = request.path
        return response

    async with serve(
        echo,
        "127.0.0.1",
        0,
        process_request=process_request,
        process_response=process_response,
        server_header="test-server",
    ) as server:
        async with connect(uri_of(server) + "path?q=1") as client:
            assert client.response is not None
            assert client.response.headers["X-Seen"] == "/path?q=1"
            assert client.response.headers["Server"] == "test-server"


async def test_origins_strings_none_and_patterns() -> None:
    origins: list[str | re.Pattern[str] | None] = [
        "https://a.example",
        re.compile(r"https://[a-z]+\.b\.example"),
        None,
    ]
    async with serve(echo, "127.0.0.1", 0, origins=origins) as server:
        for origin in ["https://a.example", "https://x.b.example", None]:
            async with connect(uri_of(server), origin=origin) as client:
                await client.send("ok")
                assert await client.recv() == "ok"
        with pytest.raises(InvalidStatus) as raised:
            await connect(uri_of(server), origin="https://evil.example")
        assert raised.value.response.status_code == 403


async def test_subprotocols_in_server_order_and_missing_one_rejected() -> None:
    async with serve(echo, "127.0.0.1", 0, subprotocols=["chat", "superchat"]) as server:
        async with connect(uri_of(server), subprotocols=["superchat", "chat"]) as client:
            assert client.subprotocol == "chat"
        with pytest.raises(InvalidStatus) as raised:
            await connect(uri_of(server))
        assert raised.value.response.status_code == 400


async def test_select_subprotocol_gets_the_connection() -> None:
    seen: list[object] = []

    def select(connection: ServerConnection, subprotocols: Sequence[str]) -> str | None:
        seen.append(connection)
        return subprotocols[-1] if subprotocols else None

    async with serve(echo, "127.0.0.1", 0, select_subprotocol=select) as server:
        async with connect(uri_of(server), subprotocols=["a", "b"]) as client:
            assert client.subprotocol == "b"
    assert isinstance(seen[0], ServerConnection)


async def test_handler_error_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def crash(connection: ServerConnection) -> None:
        raise RuntimeError("boom")

    async with serve(crash, "127.0.0.1", 0) as server:
        async with connect(uri_of(server)) as client:
            await client.wait_closed()
            assert client.close_code == 1011
    assert any("connection handler failed" in r.getMessage() for r in caplog.records)


async def test_server_close_closes_connections_with_1001() -> None:
    server = await serve(echo, "127.0.0.1", 0)
    client = await connect(uri_of(server))
    await asyncio.sleep(10 * MS)
    assert len(server.connections) == 1
    assert server.is_serving() and server.get_loop() is asyncio.get_running_loop()
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectionClosedOK):
        await client.recv()
    assert client.close_code == 1001
    assert not server.connections and not server.is_serving()


async def test_serve_forever_and_start_serving() -> None:
    server = await serve(echo, "127.0.0.1", 0, start_serving=False)
    assert not server.is_serving()
    await server.start_serving()
    task = asyncio.create_task(server.serve_forever())
    async with connect(uri_of(server)) as client:
        await client.send("x")
        assert await client.recv() == "x"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_basic_auth() -> None:
    seen: list[str | None] = []

    async def whoami(connection: ServerConnection) -> None:
        seen.append(connection.username)
        await connection.send(connection.username or "")

    auth = basic_auth(realm="test", credentials=("alice", "s3cret"))
    async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
        with pytest.raises(InvalidStatus) as raised:
            await connect(uri_of(server))
        assert raised.value.response.status_code == 401
        assert raised.value.response.headers["WWW-Authenticate"].startswith('Basic realm="test"')
        host_port = uri_of(server).removeprefix("ws://")
        with pytest.raises(InvalidStatus):
            await connect(f"ws://alice:wrong@{host_port}")
        async with connect(f"ws://alice:s3cret@{host_port}") as client:
            assert await client.recv() == "alice"
    assert seen == ["alice"]


async def test_basic_auth_arguments() -> None:
    with pytest.raises(ValueError):
        basic_auth()
    with pytest.raises(TypeError):
        basic_auth(credentials=[("user",)])  # type: ignore[list-item]

    async def check(username: str, password: str) -> bool:
        return password == username[::-1]

    auth = basic_auth(check_credentials=check)
    async with serve(echo, "127.0.0.1", 0, process_request=auth) as server:
        host_port = uri_of(server).removeprefix("ws://")
        async with connect(f"ws://bob:bob@{host_port}") as client:
            await client.send("in")
            assert await client.recv() == "in"


async def test_broadcast_encodes_once_and_skips_slow_readers() -> None:
    connected: list[ServerConnection] = []

    async def hold(connection: ServerConnection) -> None:
        connected.append(connection)
        await connection.wait_closed()

    async with serve(hold, "127.0.0.1", 0, compression=None) as server:
        clients = [await connect(uri_of(server), compression=None) for _ in range(3)]
        await asyncio.sleep(20 * MS)
        assert broadcast(server.connections, "news") == 0
        for client in clients:
            assert await client.recv() == "news"
        # A connection whose write buffer is over its limit is skipped, not buffered.
        slow = connected[0]
        assert slow.transport is not None
        slow.transport.pause_reading()
        original = slow.transport.get_write_buffer_size
        slow.transport.get_write_buffer_size = lambda: slow.write_limit + 1  # type: ignore[method-assign]
        assert broadcast(server.connections, b"more") == 1
        slow.transport.get_write_buffer_size = original  # type: ignore[method-assign]
        slow.transport.resume_reading()
        for client in clients[1:]:
            assert await client.recv() == b"more"
        for client in clients:
            await client.close()
    with pytest.raises(TypeError):
        broadcast([], 42)  # type: ignore[arg-type]


async def test_unix_socket() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ws.sock")
        async with unix_serve(echo, path):
            async with unix_connect(path) as client:
                await client.send("over unix")
                assert await client.recv() == "over unix"


async def test_websockets_client_against_wsrs_server_with_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with serve(echo, "127.0.0.1", 0, logger=logging.getLogger("custom")) as server:
        async with websockets.asyncio.client.connect(uri_of(server)) as client:
            await client.send("peer")
            assert await client.recv() == "peer"


async def test_tls(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    async with serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"wss://127.0.0.1:{port}/", ssl=client_context) as client:
            await client.send("secret")
            assert await client.recv() == "secret"


@pytest.mark.parametrize(
    ("offer", "client_no_context_takeover"),
    [
        # What websockets (and browsers) offer by default: the server bounds the window.
        ({"client_max_window_bits": True}, False),
        ({"client_max_window_bits": True, "client_no_context_takeover": True}, True),
        # No client_max_window_bits: the server answers client_no_context_takeover.
        ({"client_max_window_bits": None}, True),
    ],
)
async def test_lean_compression_with_websockets_client(
    offer: dict[str, bool | None], client_no_context_takeover: bool
) -> None:
    messages = [
        f'{{"type":"update","seq":{i},"text":"' + "the same keys and values " * (10 + i) + '"}'
        for i in range(6)
    ]
    async with serve(echo, "127.0.0.1", 0, compression="lean") as server:
        async with websockets.asyncio.client.connect(
            uri_of(server),
            extensions=[WebsocketsClientDeflate(**offer)],  # type: ignore[arg-type]
            compression=None,
        ) as client:
            (extension,) = client.protocol.extensions
            assert isinstance(extension, WebsocketsPerMessageDeflate)
            assert extension.remote_max_window_bits == 12
            assert extension.local_no_context_takeover is client_no_context_takeover
            (connection,) = server.connections
            core = connection.connection
            assert core is not None
            for message in messages:
                await client.send(message)
                assert await client.recv() == message
                # Busy, yet no zlib state kept between messages.
                assert not core._writer.deflater_allocated
                assert not core.reader.inflater_allocated
