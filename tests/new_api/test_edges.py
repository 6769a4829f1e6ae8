"""wsrs.asyncio: edge cases of the handshake, the connection and broadcast, wsrs only."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
from collections.abc import AsyncIterator

import pytest

from wsrs.asyncio.client import ClientConnection, connect, process_exception, unix_connect
from wsrs.asyncio.server import ServerConnection, basic_auth, broadcast, serve
from wsrs.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidMessage,
    InvalidState,
    InvalidStatus,
    SecurityError,
    connection_closed,
)
from wsrs.frames import Close, CloseCode, Opcode
from wsrs.http11 import Request, Response

from .test_connection import MS, echo, uri_of


class FakeTransport(asyncio.Transport):
    """A transport that accepts everything and goes nowhere."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


async def test_connection_before_and_without_a_handshake() -> None:
    client = ClientConnection()
    assert client.logger.name == "websockets.client"
    assert client.close_code is None and client.close_reason is None
    assert client.local_address is None and client.remote_address is None
    with pytest.raises(InvalidState):
        await client.send("too early")
    with pytest.raises(InvalidState):
        await client.send(["too", "early"])
    with pytest.raises(InvalidState):
        await client.ping()
    client.connection_made(FakeTransport())
    await client.close()  # closes TCP: nothing was open
    client.connection_lost(None)
    with pytest.raises(ConnectionClosedError) as raised:
        await client.recv()
    assert str(raised.value) == "no close frame received or sent"
    assert client.close_code == 1006


async def test_async_with_connection_and_decode_of_the_same_type() -> None:
    async def handler(connection: ServerConnection) -> None:
        async with connection:
            assert await connection.recv(decode=True) == "text"
            assert await connection.recv(decode=False) == b"bytes"
            assert connection.close_reason is None

    async with serve(handler, "127.0.0.1", 0) as server:
        async with connect(uri_of(server)) as client:
            await client.send("text")
            await client.send(b"bytes")
            await client.wait_closed()
            assert client.close_code == 1000 and client.close_reason == ""


async def test_send_waits_while_the_peer_does_not_read() -> None:
    async with serve(echo, "127.0.0.1", 0, write_limit=1024) as server:
        async with connect(uri_of(server), write_limit=1024, compression=None) as client:
            assert client.transport is not None
            server_side = next(iter(server.connections))
            assert server_side.transport is not None
            server_side.transport.pause_reading()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(200 * MS):
                    while True:
                        await client.send(b"x" * 4096)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(200 * MS):
                    while True:
                        await client.send(bytearray(4096))
            # A send cancelled in the middle of a fragmented message fails the connection.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(200 * MS):
                    while True:
                        await client.send([b"y" * 4096, b"z"])
            assert client.state.name in ("CLOSING", "CLOSED")
            server_side.transport.resume_reading()


async def test_fragments_after_the_close_raise_connection_closed() -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        client = await connect(uri_of(server))

        async def closing() -> AsyncIterator[str]:
            yield "a"
            await client.close()
            yield "b"

        with pytest.raises(ConnectionClosedOK):
            await client.send(closing())
        with pytest.raises(ConnectionClosedOK):
            await client.send(["late"])


async def test_ping_waiters_when_the_pong_never_comes() -> None:
    async def hold(connection: ServerConnection) -> None:
        await connection.wait_closed()

    async with serve(hold, "127.0.0.1", 0) as server:
        async with connect(uri_of(server), ping_interval=None) as client:
            server_side = next(iter(server.connections))
            assert server_side.transport is not None
            server_side.transport.pause_reading()
            forgotten = await client.ping(b"forget me")
            client._forget_ping(b"forget me")
            with pytest.raises(asyncio.CancelledError):
                await forgotten
            lost = await client.ping(b"lost")
            assert client.transport is not None
            client.transport.abort()
            with pytest.raises(ConnectionClosed):
                await lost
            server_side.transport.resume_reading()


async def test_handshake_failures_get_http_errors(caplog: pytest.LogCaptureFixture) -> None:
    def broken_request(connection: ServerConnection, request: Request) -> None:
        raise RuntimeError("bug in process_request")

    def broken_response(connection: ServerConnection, request: Request, response: Response) -> None:
        raise RuntimeError("bug in process_response")

    def no_change(connection: ServerConnection, request: Request, response: Response) -> None:
        return None

    for options, status in [
        ({"process_request": broken_request}, 500),
        ({"process_response": broken_response}, 500),
        ({"process_response": no_change, "server_header": None}, 101),
    ]:
        async with serve(echo, "127.0.0.1", 0, **options) as server:  # type: ignore[arg-type]
            if status == 101:
                async with connect(uri_of(server)) as client:
                    assert client.response is not None
                    assert "Server" not in client.response.headers
                continue
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server))
            assert raised.value.response.status_code == status
    messages = [r.getMessage() for r in caplog.records if r.name == "websockets.server"]
    assert messages == ["process_request failed", "process_response failed"]


async def test_bad_requests_and_silent_clients() -> None:
    async with serve(echo, "127.0.0.1", 0, open_timeout=100 * MS) as server:
        host, port = server.sockets[0].getsockname()[:2]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        writer.close()
        # A client that sends half a request and then closes gets no answer.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\n")
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        # A client that sends nothing is dropped after open_timeout.
        reader, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()


async def test_origin_and_subprotocol_errors() -> None:
    async with serve(echo, "127.0.0.1", 0, origins=["https://a.example"]) as server:
        host, port = server.sockets[0].getsockname()[:2]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Origin: https://a.example\r\nOrigin: https://b.example\r\n\r\n"
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        writer.close()
    async with serve(echo, "127.0.0.1", 0, subprotocols=["chat"]) as server:
        with pytest.raises(InvalidStatus) as raised:
            await connect(uri_of(server), subprotocols=["other"])
        assert raised.value.response.status_code == 400


async def test_custom_connection_whose_handshake_crashes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Crashing(ServerConnection):
        async def handshake(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("crash")

    async with serve(echo, "127.0.0.1", 0, create_connection=Crashing) as server:
        with pytest.raises(Exception):  # noqa: B017 - the connection is simply dropped
            await connect(uri_of(server), open_timeout=1)
    assert any("opening handshake failed" in r.getMessage() for r in caplog.records)


async def test_server_close_without_closing_connections() -> None:
    server = await serve(echo, "127.0.0.1", 0)
    client = await connect(uri_of(server))
    server.close(close_connections=False)
    await asyncio.sleep(10 * MS)
    await client.send("still served")
    assert await client.recv() == "still served"
    await client.close()
    await server.wait_closed()


async def test_wait_closed_before_close() -> None:
    server = await serve(echo, "127.0.0.1", 0)
    waiting = asyncio.create_task(server.wait_closed())
    await asyncio.sleep(0)
    server.close()
    await asyncio.wait_for(waiting, 1)
    with pytest.raises(ValueError, match="unsupported compression"):
        serve(echo, "127.0.0.1", 0, compression="zstd")


async def test_broadcast_edge_cases(caplog: pytest.LogCaptureFixture) -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        async with connect(uri_of(server)) as client:
            await asyncio.sleep(10 * MS)
            server_side = next(iter(server.connections))
            not_open = ClientConnection()
            # Compressed connections and clients encode their own frame.
            assert broadcast([server_side, client, not_open], "hi") == 0
            assert await client.recv() == "hi"
            await client.recv()  # the echo of the client's own broadcast frame
            await client.close()
            await server_side.wait_closed()
            assert broadcast([server_side], "closed") == 0

            class Failing(ServerConnection):
                pass

    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        async with connect(uri_of(server), compression=None):
            await asyncio.sleep(10 * MS)
            server_side = next(iter(server.connections))
            assert server_side.connection is not None
            server_side.connection.send_shared = _raise  # type: ignore[method-assign, assignment]
            assert broadcast([server_side], "x") == 0
            with pytest.raises(ExceptionGroup):
                broadcast([server_side], "x", raise_exceptions=True)
    assert any("failed to write message" in r.getMessage() for r in caplog.records)


def _raise(data: object) -> bytes:
    raise RuntimeError("cannot encode")


async def test_basic_auth_malformed_headers() -> None:
    auth = basic_auth(credentials=[("a", "b"), ("c", "d")])
    async with serve(echo, "127.0.0.1", 0, process_request=auth) as server:
        for value in [
            "Bearer token",
            "Basic !!!",
            "Basic " + base64.b64encode(b"no colon").decode(),
            "Basic " + base64.b64encode(b"\xff:\xff").decode(),
        ]:
            with pytest.raises(InvalidStatus) as raised:
                await connect(uri_of(server), additional_headers={"Authorization": value})
            assert raised.value.response.status_code == 401
        async with connect(f"ws://c:d@{uri_of(server).removeprefix('ws://')}"):
            pass


def test_frames_and_exceptions() -> None:
    assert str(Close(1000, "")) == "1000 (OK)"
    assert str(Close(3000, "app")) == "3000 (registered) app"
    assert str(Close(4000, "")) == "4000 (private use)"
    assert str(Close(1234, "")) == "1234 (unknown)"
    assert Close.parse(b"\x03\xe8bye") == Close(1000, "bye")
    assert Close(1000, "bye").serialize() == b"\x03\xe8bye"
    assert Close(CloseCode.NO_STATUS_RCVD, "").serialize() == b""
    assert int(Opcode.TEXT) == 1 and int(CloseCode.GOING_AWAY) == 1001
    sent, rcvd = Close(1000, "a"), Close(1001, "b")
    assert str(connection_closed(1001, "b", rcvd=rcvd, frames=True)) == (
        "received 1001 (going away) b; no close frame sent"
    )
    assert str(connection_closed(1006, "", sent=sent, frames=True)) == (
        "sent 1000 (OK) a; no close frame received"
    )
    both = connection_closed(1001, "b", rcvd=rcvd, sent=sent, rcvd_then_sent=False, frames=True)
    assert str(both) == "sent 1000 (OK) a; then received 1001 (going away) b"
    assert str(connection_closed(1000, "")) == (
        "WebSocket connection is closed: code = 1000 (OK), no reason"
    )


async def test_logger_of_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    custom = logging.getLogger("custom.ws")
    async with serve(echo, "127.0.0.1", 0, logger=custom) as server:
        async with connect(uri_of(server), logger=custom) as client:
            assert client.logger is custom
            assert next(iter(server.connections)).logger is custom


async def test_ping_latency_future_cancelled_by_the_caller() -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        async with connect(uri_of(server)) as client:
            latency = await client.ping()
            latency.cancel()
            again = await client.ping()
            assert await asyncio.wait_for(again, 1) > 0
    fresh = ClientConnection()
    with pytest.raises(InvalidState):
        await fresh.pong()


async def test_malformed_response_is_not_retried() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HELLO\r\n\r\n")
        try:
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(InvalidMessage) as raised:
            await connect(f"ws://127.0.0.1:{port}/")
        assert process_exception(raised.value) is raised.value


async def test_tls_rejection_sock_and_redirect_to_plain(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def forbid(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/forbidden":
            return connection.respond(403, "no\n")
        if request.path == "/plain":
            response = connection.respond(302, "moved\n")
            response.headers["Location"] = "ws://127.0.0.1:1/"
            return response
        return None

    async with serve(echo, "127.0.0.1", 0, ssl=server_context, process_request=forbid) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(InvalidStatus) as raised:
            await connect(f"wss://127.0.0.1:{port}/forbidden", ssl=client_context)
        assert raised.value.response.status_code == 403
        with pytest.raises(SecurityError, match="non-secure"):
            await connect(f"wss://127.0.0.1:{port}/plain", ssl=client_context)
        sock = socket.create_connection(("127.0.0.1", port))
        async with connect(f"wss://127.0.0.1:{port}/", sock=sock, ssl=client_context) as client:
            await client.send("over tls")
            assert await client.recv() == "over tls"
        server.close()
        server.close()  # closing twice is harmless


def test_unix_connect_default_uri() -> None:
    assert unix_connect("/tmp/nowhere.sock").uri == "ws://localhost/"
    context = ssl.create_default_context()
    assert unix_connect("/tmp/nowhere.sock", ssl=context).uri == "wss://localhost/"


async def test_handshake_finishing_while_the_server_closes() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(connection: ServerConnection, request: Request) -> None:
        started.set()
        await release.wait()

    server = await serve(echo, "127.0.0.1", 0, process_request=slow)
    connecting = asyncio.ensure_future(connect(uri_of(server)))
    await started.wait()
    server.close()
    assert server.closing
    await asyncio.sleep(10 * MS)
    release.set()
    with pytest.raises(InvalidStatus, match="HTTP 503"):
        await connecting
    await server.wait_closed()


async def test_bytes_like_after_the_close_and_rejection_of_a_gone_client() -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        client = await connect(uri_of(server))
        await client.close()
        with pytest.raises(ConnectionClosedOK):
            await client.send(bytearray(b"late"))

    def abort_then_answer(connection: ServerConnection, request: Request) -> Response:
        assert connection.transport is not None
        connection.transport.abort()  # the client is gone before the answer
        return connection.respond(403, "no\n")

    async with serve(echo, "127.0.0.1", 0, process_request=abort_then_answer) as server:
        with pytest.raises(InvalidMessage):
            await connect(uri_of(server))


def test_keyboard_interrupt_ends_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    import wsrs.__main__

    def interrupted(coroutine: object) -> None:
        coroutine.close()  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr("wsrs.__main__.asyncio.run", interrupted)
    assert wsrs.__main__.main(["ws://127.0.0.1:1/"]) == 130
