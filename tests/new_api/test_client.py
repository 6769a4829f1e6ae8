"""wsrs.asyncio.client: connect's options, redirects, reconnection, failures."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import AsyncIterator, Generator

import pytest

from wsrs.asyncio.client import ClientConnection, backoff, connect, process_exception
from wsrs.asyncio.server import ProcessRequest, ServerConnection, serve
from wsrs.datastructures import Headers
from wsrs.exceptions import (
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    SecurityError,
)
from wsrs.http11 import Request, Response

from .test_connection import MS, echo, uri_of


async def test_additional_headers_and_user_agent() -> None:
    seen: list[Request] = []

    def record(connection: ServerConnection, request: Request) -> None:
        seen.append(request)

    async with serve(echo, "127.0.0.1", 0, process_request=record) as server:
        async with connect(
            uri_of(server), additional_headers={"X-Token": "t"}, user_agent_header="agent/1"
        ):
            pass
        async with connect(uri_of(server), user_agent_header=None):
            pass
    assert seen[0].headers["X-Token"] == "t" and seen[0].headers["User-Agent"] == "agent/1"
    assert "User-Agent" not in seen[1].headers


async def test_invalid_arguments() -> None:
    with pytest.raises(InvalidURI):
        connect("http://example.com/")
    with pytest.raises(ValueError, match="incompatible"):
        connect("ws://example.com/", ssl=True)
    with pytest.raises(ValueError, match="unsupported compression"):
        connect("ws://example.com/", compression="zstd")
    with pytest.raises(InvalidURI, match="without a password"):
        connect("ws://user@example.com/")


async def test_connect_is_not_reentrant() -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        connecting = connect(uri_of(server))
        async with connecting:
            with pytest.raises(RuntimeError, match="reentrant"):
                await connecting.__aenter__()


async def test_server_closing_during_the_handshake() -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(InvalidMessage) as raised:
            await connect(f"ws://127.0.0.1:{port}/")
        assert isinstance(raised.value.__cause__, EOFError)
        assert process_exception(raised.value) is None


async def test_open_timeout() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(TimeoutError, match="timed out during opening handshake"):
            await connect(f"ws://127.0.0.1:{port}/", open_timeout=50 * MS)


def redirecting(status: int, location: str | None) -> ProcessRequest:
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/old":
            response = connection.respond(status, "moved\n")
            if location is not None:
                response.headers["Location"] = location
            return response
        return None

    return process_request


async def test_redirect_is_followed() -> None:
    async with serve(echo, "127.0.0.1", 0, process_request=redirecting(302, "/new")) as server:
        async with connect(uri_of(server) + "old") as client:
            assert client.request is not None and client.request.path == "/new"


async def test_redirect_errors() -> None:
    async with serve(echo, "127.0.0.1", 0, process_request=redirecting(301, None)) as server:
        with pytest.raises(InvalidStatus, match="HTTP 301"):
            await connect(uri_of(server) + "old")
    async with serve(echo, "127.0.0.1", 0, process_request=redirecting(301, "/old")) as server:
        with pytest.raises(SecurityError, match="more than 10 redirects"):
            await connect(uri_of(server) + "old")
    bad = "http://example.com/"
    async with serve(echo, "127.0.0.1", 0, process_request=redirecting(307, bad)) as server:
        with pytest.raises(InvalidURI, match="scheme isn't ws or wss"):
            await connect(uri_of(server) + "old")
    async with serve(echo, "127.0.0.1", 0, process_request=redirecting(404, None)) as server:
        with pytest.raises(InvalidStatus):
            await connect(uri_of(server) + "old")


def test_process_exception() -> None:
    assert process_exception(OSError()) is None
    assert process_exception(TimeoutError()) is None
    unavailable = InvalidStatus(Response(503, "Service Unavailable", Headers()))
    assert process_exception(unavailable) is None
    forbidden = InvalidStatus(Response(403, "Forbidden", Headers()))
    assert process_exception(forbidden) is forbidden
    assert process_exception(InvalidMessage("x")) is not None


def test_backoff_grows_to_its_maximum() -> None:
    delays = list(itertools.islice(backoff(), 20))
    assert 0 <= delays[0] <= 5
    assert delays[1] == pytest.approx(3.1)
    assert all(a <= b for a, b in itertools.pairwise(delays[1:]))
    assert delays[-1] == 90.0


def quick_delays() -> Generator[float]:
    while True:
        yield 0.0


async def test_reconnect_after_transient_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    attempts: list[int] = []

    def flaky(connection: ServerConnection, request: Request) -> Response | None:
        attempts.append(1)
        if len(attempts) <= 2:
            return connection.respond(503, "later\n")
        return None

    async with serve(echo, "127.0.0.1", 0, process_request=flaky) as server:
        sessions = 0
        async for client in connect(uri_of(server), reconnect_delays=quick_delays):
            await client.send("hello")
            assert await client.recv() == "hello"
            sessions += 1
            if sessions == 2:
                break
    assert len(attempts) == 4
    assert any("reconnecting" in r.getMessage() for r in caplog.records)


async def test_reconnect_stops_on_fatal_errors() -> None:
    def forbidden(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(403, "no\n")

    async with serve(echo, "127.0.0.1", 0, process_request=forbidden) as server:
        with pytest.raises(InvalidStatus):
            async for _ in connect(uri_of(server)):
                pass  # pragma: no cover - never connects

        def replace(exc: Exception) -> Exception:
            return RuntimeError("replaced")

        with pytest.raises(RuntimeError, match="replaced"):
            async for _ in connect(uri_of(server), process_exception=replace):
                pass  # pragma: no cover

        def raising(exc: Exception) -> Exception | None:
            raise ValueError("raised")

        with pytest.raises(ValueError, match="raised"):
            async for _ in connect(uri_of(server), process_exception=raising):
                pass  # pragma: no cover


async def test_sock_and_custom_connection_class() -> None:
    class Custom(ClientConnection):
        pass

    async with serve(echo, "127.0.0.1", 0) as server:
        sock = socket.create_connection(server.sockets[0].getsockname()[:2])
        async with connect("ws://ignored.example/", sock=sock, create_connection=Custom) as client:
            assert isinstance(client, Custom)
            await client.send("via sock")
            assert await client.recv() == "via sock"


async def test_connecting_to_nothing_is_an_os_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{port}/")


async def test_stream_of_messages_with_async_iteration() -> None:
    async def count(connection: ServerConnection) -> None:
        for i in range(3):
            await connection.send(str(i))

    async with serve(count, "127.0.0.1", 0) as server:
        async with connect(uri_of(server)) as client:
            received: AsyncIterator[object] = aiter(client)
            assert [m async for m in received] == ["0", "1", "2"]


def test_compression_and_unix_defaults() -> None:
    from wsrs.asyncio.client import unix_connect
    from wsrs.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    factory = ClientPerMessageDeflateFactory()
    connecting = connect("ws://example.com/", extensions=[factory])
    assert connecting._connection_options["extensions"] == [factory]
    assert unix_connect("/tmp/nowhere.sock", uri="ws://host/path").uri == "ws://host/path"
