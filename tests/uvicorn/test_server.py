"""wsrs.uvicorn through real uvicorn servers, with websockets 17 as the client."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import socket
import ssl
from typing import Any

import pytest
import websockets.exceptions
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect

from wsrs.uvicorn import WebSocketProtocol

from .utils import App, Message, Receive, Scope, Send, run_server


HTTP = pytest.mark.parametrize("http", ["h11", "httptools"])


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept, echo every message, return on disconnect."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def recorder(events: list[Message], count: int = 1) -> App:
    """An application that accepts, then records ``count`` events it receives."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(count):
            events.append(await receive())

    return app


def raw_request(port: int, headers: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n".encode())
    return sock


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


# ---------------------------------------------------------------------------- messages


@HTTP
async def test_echo_text_and_bytes(http: str) -> None:
    async with run_server(echo, http=http) as (_, uri):
        async with connect(uri) as client:
            await client.send("héllo")
            assert await client.recv() == "héllo"
            await client.send(b"\x00\xff")
            assert await client.recv() == b"\x00\xff"
            big = bytes(range(256)) * 1024  # 256 KiB: the large-message path
            await client.send(big)
            assert await client.recv() == big
            await client.send("x" * 100_000)
            assert await client.recv() == "x" * 100_000


@HTTP
async def test_scope(http: str) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept"})

    async with run_server(app, http=http, root_path="/api") as (server, uri):
        port = int(uri.rsplit(":", 1)[1])
        async with connect(
            uri + "/one%2Ftwo/caf%C3%A9?x=1&y=%20",
            additional_headers=[("X-Custom", "Value"), ("X-Latin", "abra\xe3o")],
            subprotocols=["chat", "superchat"],  # type: ignore[list-item]
        ) as client:
            await client.wait_closed()
    (scope,) = scopes
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["server"] == ("127.0.0.1", port)
    assert scope["client"][0] == "127.0.0.1"
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/one/two/café"
    assert scope["raw_path"] == b"/api/one%2Ftwo/caf%C3%A9"
    assert scope["query_string"] == b"x=1&y=%20"
    headers = scope["headers"]
    assert all(name == name.lower() for name, _ in headers)
    assert (b"x-custom", b"Value") in headers
    assert (b"x-latin", "abraão".encode("latin-1")) in headers
    assert (b"host", f"127.0.0.1:{port}".encode()) in headers
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert scope["state"] == {}
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert server.server_state.connections == set()


async def test_state_is_a_copy_of_the_lifespan_state() -> None:
    states: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["counter"] = 1
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        states.append(dict(scope["state"]))
        scope["state"]["counter"] += 1
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})

    async with run_server(app, lifespan="on") as (_, uri):
        for _ in range(2):
            async with connect(uri) as client:
                await client.wait_closed()
    assert states == [{"counter": 1}, {"counter": 1}]


async def test_accept_with_subprotocol_and_headers() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": scope["subprotocols"][1],
                "headers": [(b"x-app", b"yes"), (b"server", b"mine")],
            }
        )
        await send({"type": "websocket.close"})

    async with run_server(app) as (_, uri):
        async with connect(uri, subprotocols=["a", "b"]) as client:  # type: ignore[list-item]
            assert client.subprotocol == "b"
            assert client.response is not None
            assert client.response.headers["X-App"] == "yes"
            assert client.response.headers.get_all("Server") == ["uvicorn", "mine"]
            assert len(client.response.headers.get_all("Date")) == 1
            await client.wait_closed()


async def test_no_default_headers() -> None:
    async with run_server(echo, server_header=False, date_header=False) as (_, uri):
        async with connect(uri) as client:
            assert client.response is not None
            assert "Server" not in client.response.headers
            assert "Date" not in client.response.headers


@pytest.mark.parametrize("deflate", [True, False])
async def test_compression(deflate: bool) -> None:
    async with run_server(echo, ws_per_message_deflate=deflate) as (_, uri):
        async with connect(uri) as client:
            assert client.response is not None
            header = client.response.headers.get("Sec-WebSocket-Extensions")
            names = [extension.name for extension in client.protocol.extensions]
            if deflate:
                assert names == ["permessage-deflate"]
                assert header is not None and "client_max_window_bits=12" in header
                assert "server_max_window_bits=12" in header
            else:
                assert names == []
                assert header is None
            message = "compressible " * 10_000
            await client.send(message)
            assert await client.recv() == message


async def test_tls(server_context: ssl.SSLContext, certificate: Any, client_context: Any) -> None:
    schemes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        schemes.append(scope["scheme"])
        await echo(scope, receive, send)

    cert, key = certificate
    options = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    async with run_server(app, **options) as (_, uri):
        async with connect(uri.replace("ws://", "wss://"), ssl=client_context) as client:
            await client.send("secret")
            assert await client.recv() == "secret"
    assert schemes == ["wss"]


async def test_uvloop() -> None:
    async with run_server(echo, loop="uvloop") as (_, uri):
        async with connect(uri) as client:
            await client.send(b"x" * 200_000)
            assert await client.recv() == b"x" * 200_000


# ---------------------------------------------------------------------------- closing


@HTTP
async def test_app_closes_with_code_and_reason(http: str) -> None:
    events: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        events.append(await receive())
        await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
        events.append(await receive())
        with pytest.raises(RuntimeError) as raised:
            await send({"type": "websocket.send", "text": "late"})
        assert str(raised.value) == (
            "Unexpected ASGI message 'websocket.send', after sending 'websocket.close'."
        )

    async with run_server(app, http=http) as (_, uri):
        async with connect(uri) as client:
            await client.send("hi")
            with pytest.raises(websockets.exceptions.ConnectionClosedError):
                await client.recv()
            assert client.close_code == 4000
            assert client.close_reason == "bye"
    assert events == [
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.disconnect", "code": 4000, "reason": "bye"},
    ]


async def test_client_closes() -> None:
    events: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        events.append(await receive())
        events.append(await receive())
        events.append(await receive())  # again: still the disconnect

    async with run_server(app) as (_, uri):
        async with connect(uri) as client:
            await client.send(b"data")
            await client.close(1001, "going away")
        await asyncio.sleep(0.05)
    assert events == [
        {"type": "websocket.receive", "bytes": b"data"},
        {"type": "websocket.disconnect", "code": 1001, "reason": "going away"},
        {"type": "websocket.disconnect", "code": 1001, "reason": "going away"},
    ]


async def test_app_returning_without_closing_drops_the_connection() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "last"})

    async with run_server(app) as (_, uri):
        async with connect(uri) as client:
            assert await client.recv() == "last"
            with pytest.raises(websockets.exceptions.ConnectionClosedError):
                await client.recv()
        assert client.close_code == 1006


async def test_app_error_after_accept(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.accept"})  # RuntimeError

    async with run_server(app) as (_, uri):
        async with connect(uri) as client:
            with pytest.raises(websockets.exceptions.ConnectionClosedError):
                await client.recv()
        assert client.close_code == 1006
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0].getMessage() == "Exception in ASGI application\n"
    assert str(errors[0].exc_info[1]) == (  # type: ignore[index]
        "Expected ASGI message 'websocket.send' or 'websocket.close', but got 'websocket.accept'."
    )


async def test_return_value_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> int:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})
        return 42

    async with run_server(app) as (_, uri):
        async with connect(uri) as client:
            await client.wait_closed()
        assert client.close_code == 1000
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert messages == ["ASGI callable should return None, but returned '42'."]


@HTTP
async def test_max_size_closes_with_1009(http: str) -> None:
    events: list[Message] = []
    app = recorder(events, 2)

    async with run_server(app, http=http, ws_max_size=10) as (_, uri):
        async with connect(uri, compression=None) as client:
            await client.send(b"0123456789")
            await client.send(b"0123456789a")
            with pytest.raises(websockets.exceptions.ConnectionClosedError):
                await client.recv()
        assert client.close_code == 1009
    assert events[0] == {"type": "websocket.receive", "bytes": b"0123456789"}
    assert events[1]["type"] == "websocket.disconnect"
    assert events[1]["code"] == 1009
    assert events[1]["reason"] == "message too big (limit 10 bytes)"


async def test_max_size_applies_after_decompression() -> None:
    codes: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        codes.append((await receive())["code"])

    async with run_server(app, ws_max_size=1000) as (_, uri):
        async with connect(uri) as client:
            await client.send(b"\x00" * 100_000)  # compresses to a few hundred bytes
            with pytest.raises(websockets.exceptions.ConnectionClosedError):
                await client.recv()
    assert codes == [1009]


def _frame(opcode: int, payload: bytes, *, masked: bool = True, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    if not masked:
        return head + bytes([len(payload)]) + payload
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + bytes([0x80 | len(payload)]) + mask + body


HANDSHAKE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (_frame(0x1, b"not masked", masked=False), 1002),
        (_frame(0x1, b"\xff\xfe"), 1007),
        (_frame(0x3, b"reserved opcode"), 1002),
    ],
)
async def test_bad_frames(frame: bytes, code: int) -> None:
    events: list[Message] = []
    app = recorder(events)

    async with run_server(app) as (_, uri):
        port = int(uri.rsplit(":", 1)[1])
        sock = raw_request(port, HANDSHAKE)
        # uvicorn's HTTP protocols pass on the request alone: frames wait for the 101.
        head = await asyncio.to_thread(sock.recv, 4096)
        sock.sendall(frame)
        answer = await asyncio.to_thread(read_all, sock)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    close = answer
    assert close[0] == 0x88 and int.from_bytes(close[2:4], "big") == code
    assert events[0]["type"] == "websocket.disconnect"
    assert events[0]["code"] == code


async def test_connection_lost_without_close_frame() -> None:
    events: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        events.append(await receive())
        with pytest.raises(OSError):
            await send({"type": "websocket.send", "text": "gone"})

    async with run_server(app) as (_, uri):
        port = int(uri.rsplit(":", 1)[1])
        sock = raw_request(port, HANDSHAKE)
        assert (await asyncio.to_thread(sock.recv, 4096)).startswith(b"HTTP/1.1 101")
        sock.close()
        for _ in range(500):
            if events:
                break
            await asyncio.sleep(0.01)
    assert events == [{"type": "websocket.disconnect", "code": 1006}]


@HTTP
async def test_shutdown_closes_with_1012(http: str) -> None:
    events: list[Message] = []
    app = recorder(events)

    async with run_server(app, http=http) as (server, uri):
        client = await connect(uri)
        await asyncio.sleep(0.05)
        assert events == []
    await client.wait_closed()
    assert client.close_code == 1012
    assert events == [{"type": "websocket.disconnect", "code": 1012}]


async def test_shutdown_during_the_handshake_answers_500() -> None:
    started = asyncio.Event()
    events: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        started.set()
        events.append(await receive())

    async with run_server(app) as (_, uri):

        async def open_connection() -> Any:
            return await connect(uri)

        connecting = asyncio.create_task(open_connection())
        await started.wait()
    with pytest.raises(websockets.exceptions.InvalidStatus) as raised:
        await connecting
    assert raised.value.response.status_code == 500
    assert events == [{"type": "websocket.disconnect", "code": 1006}]


async def test_keepalive_pings_and_timeout() -> None:
    async with run_server(echo, ws_ping_interval=0.05, ws_ping_timeout=0.5) as (server, uri):
        async with connect(uri, ping_interval=None) as client:
            (protocol,) = server.server_state.connections
            assert isinstance(protocol, WebSocketProtocol)
            assert protocol.ping_timer is not None
            await asyncio.sleep(0.2)  # the client answers pings: still open
            assert protocol.ping_sent_at > 0.0
            await client.send("alive")
            assert await client.recv() == "alive"
            # Stop answering: the next ping times out.
            client.transport.write = lambda data: None
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as raised:
                await asyncio.wait_for(client.recv(), 5)
            assert raised.value.rcvd is not None
            assert raised.value.rcvd.code == 1011
            assert raised.value.rcvd.reason == "keepalive ping timeout"


@pytest.mark.parametrize("interval", [None, 0.0])
async def test_keepalive_disabled(interval: float | None) -> None:
    async with run_server(echo, ws_ping_interval=interval) as (server, uri):
        async with connect(uri):
            (protocol,) = server.server_state.connections
            assert isinstance(protocol, WebSocketProtocol)
            assert protocol.ping_timer is None


# ---------------------------------------------------------------------------- denial


@HTTP
async def test_close_before_accept_is_403(http: str, caplog: pytest.LogCaptureFixture) -> None:
    events: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close"})
        events.append(await receive())
        with pytest.raises(RuntimeError, match="after sending 'websocket.close'"):
            await send({"type": "websocket.accept"})

    caplog.set_level(logging.INFO, "uvicorn.error")
    async with run_server(app, http=http) as (_, uri):
        with pytest.raises(websockets.exceptions.InvalidStatus) as raised:
            await connect(uri + "/room?id=7")
    response = raised.value.response
    assert response.status_code == 403
    assert response.headers["Server"] == "uvicorn"
    assert response.headers["Content-Length"] == "0"
    assert events == [{"type": "websocket.disconnect", "code": 1006}]
    assert any('"WebSocket /room?id=7" 403' in r.getMessage() for r in caplog.records)


@HTTP
async def test_http_response_with_content_length_is_streamed(http: str) -> None:
    events: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-length", b"8"), (b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"nope", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b", no"})
        events.append(await receive())
        with pytest.raises(RuntimeError) as raised:
            await send({"type": "websocket.http.response.body", "body": b"more"})
        assert str(raised.value) == (
            "Unexpected ASGI message 'websocket.http.response.body', after sending the HTTP "
            "response."
        )

    async with run_server(app, http=http) as (_, uri):
        with pytest.raises(websockets.exceptions.InvalidStatus) as raised:
            await connect(uri)
    response = raised.value.response
    assert response.status_code == 401
    assert response.body == b"nope, no"
    assert response.headers.get_all("Content-Length") == ["8"]
    assert response.headers["Connection"] == "close"
    assert events == [{"type": "websocket.disconnect", "code": 1006}]


async def test_http_response_without_content_length_is_gathered() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 599,  # no reason phrase
                "headers": [(b"connection", b"close")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"a" * 5, "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"b" * 5})

    async with run_server(app) as (_, uri):
        with pytest.raises(websockets.exceptions.InvalidStatus) as raised:
            await connect(uri)
    response = raised.value.response
    assert response.status_code == 599
    assert response.reason_phrase == ""
    assert response.body == b"aaaaabbbbb"
    assert response.headers["Content-Length"] == "10"
    assert response.headers.get_all("Connection") == ["close"]


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([], "ASGI callable returned without completing handshake."),
        ([{"type": "websocket.send", "text": "x"}], "Exception in ASGI application\n"),
        (
            [{"type": "websocket.http.response.start", "status": 700, "headers": []}],
            "Exception in ASGI application\n",
        ),
        (
            [{"type": "websocket.http.response.start", "status": 400, "headers": []}],
            "ASGI callable returned without completing the response.",
        ),
        (
            [
                {"type": "websocket.http.response.start", "status": 400, "headers": []},
                {"type": "websocket.http.response.start", "status": 400, "headers": []},
            ],
            "Exception in ASGI application\n",
        ),
        (
            [{"type": "websocket.accept", "headers": [(b"bad\r\nname", b"x")]}],
            "Exception in ASGI application\n",
        ),
    ],
)
async def test_app_failing_before_an_answer_gets_500(
    messages: list[Message], error: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        for message in messages:
            await send(message)

    async with run_server(app) as (_, uri):
        with pytest.raises(websockets.exceptions.InvalidStatus) as raised:
            await connect(uri)
    response = raised.value.response
    assert response.status_code == 500
    assert response.body == b"Internal Server Error"
    assert response.headers["Content-Length"] == "21"
    assert response.headers["Server"] == "uvicorn"
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert logged == [error]


async def test_errors_of_the_exchange() -> None:
    errors: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        messages: list[Message] = [
            {"type": "websocket.send", "text": "before accept"},
            {"type": "websocket.http.response.start", "status": 99, "headers": []},
        ]
        for message in messages:
            try:
                await send(message)
            except RuntimeError as exc:
                errors.append(str(exc))
        await send({"type": "websocket.accept"})
        for message in [
            {"type": "websocket.accept"},
            {"type": "websocket.send"},
        ]:
            try:
                await send(message)
            except RuntimeError as exc:
                errors.append(str(exc))
        await send({"type": "websocket.close"})

    async with run_server(app) as (_, uri):
        async with connect(uri) as client:
            await client.wait_closed()
    assert errors == [
        "Expected ASGI message 'websocket.accept', 'websocket.close' or "
        "'websocket.http.response.start' but got 'websocket.send'.",
        "Invalid HTTP status code '99' in response.",
        "Expected ASGI message 'websocket.send' or 'websocket.close', but got 'websocket.accept'.",
        "Expected 'bytes' or 'text' in ASGI message 'websocket.send'.",
    ]


async def test_response_head_then_wrong_message_keeps_the_status() -> None:
    errors: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        start = {
            "type": "websocket.http.response.start",
            "status": 404,
            "headers": [(b"content-length", b"0")],
        }
        await send(start)
        try:
            await send(start)
        except RuntimeError as exc:
            errors.append(str(exc))

    async with run_server(app) as (_, uri):
        with pytest.raises(websockets.exceptions.InvalidStatus) as raised:
            await connect(uri)
    assert raised.value.response.status_code == 404
    assert errors == [
        "Expected ASGI message 'websocket.http.response.body' but got "
        "'websocket.http.response.start'."
    ]


# ---------------------------------------------------------------------------- bad requests


@HTTP
@pytest.mark.parametrize(
    ("headers", "status", "text"),
    [
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
            400,
            b"Failed to open a WebSocket connection: missing Sec-WebSocket-Key header.\n",
        ),
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            426,
            b"",
        ),
        (
            HANDSHAKE + "Sec-WebSocket-Extensions: permessage-deflate; =\r\n",
            400,
            b"Failed to open a WebSocket connection: invalid Sec-WebSocket-Extensions header",
        ),
    ],
)
async def test_invalid_handshake_requests(
    http: str, headers: str, status: int, text: bytes
) -> None:
    called = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal called
        called = True

    async with run_server(app, http=http) as (_, uri):
        port = int(uri.rsplit(":", 1)[1])
        sock = raw_request(port, headers)
        answer = await asyncio.to_thread(read_all, sock)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nServer: uvicorn\r\n" in answer.replace(b"server:", b"Server:")
    body = answer[answer.index(b"\r\n\r\n") + 4 :]
    assert body.startswith(text)
    if status == 426:
        assert b"Sec-WebSocket-Version: 13\r\n" in answer
    assert not called


async def test_trace_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(5, "uvicorn.error")
    async with run_server(echo, log_level="trace") as (_, uri):
        async with connect(uri):
            pass
        await asyncio.sleep(0.05)
    messages = [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"]
    assert any(m.endswith("- WebSocket connection made") for m in messages)
    assert any(m.endswith("- WebSocket connection lost") for m in messages)
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)


def test_readme_command(tmp_path: pathlib.Path) -> None:
    """The import string of the README loads this class."""
    from uvicorn.importer import import_from_string

    assert import_from_string("wsrs.uvicorn:WebSocketProtocol") is WebSocketProtocol


async def echo_endpoint(websocket: WebSocket) -> None:
    """The README's FastAPI endpoint (module level: FastAPI resolves its annotations)."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


async def test_starlette_and_fastapi() -> None:
    """The README's FastAPI example, and the same with Starlette's WebSocketRoute."""
    fastapi = pytest.importorskip("fastapi")
    api = fastapi.FastAPI()
    api.websocket("/ws")(echo_endpoint)
    starlette = Starlette(routes=[WebSocketRoute("/ws", echo_endpoint)])
    for app in (api, starlette):
        async with run_server(app) as (_, uri):
            async with connect(uri + "/ws") as client:
                await client.send("framework")
                assert await client.recv() == "framework"
            with pytest.raises(websockets.exceptions.InvalidStatus) as raised:
                await connect(uri + "/missing")
            assert raised.value.response.status_code == 403
