"""The server side of the asyncio API: serve(), handlers, shutdown, opening handshake."""

from __future__ import annotations

import asyncio
import http
import logging

import pytest

import wsrs
from wsrs import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatusCode,
    State,
    WebSocketServerProtocol,
    connect,
    serve,
)
from wsrs.http11 import Headers
from wsrs.version import USER_AGENT

from .utils import (
    MS,
    Capture,
    close_writer,
    echo,
    eventually,
    open_raw,
    raw_handshake,
    read_http_response,
    run_server,
    server_uri,
    upgrade_request,
)


# ---------------------------------------------------------------------------- serve()


async def test_serve_awaited() -> None:
    server = await serve(echo, "127.0.0.1", 0)
    try:
        assert isinstance(server, wsrs.WebSocketServer)
        assert len(server.sockets) == 1
        async with connect(server_uri(server)) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 1000 * MS)
    assert server.sockets == []


async def test_serve_async_context_manager() -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        assert isinstance(server, wsrs.WebSocketServer)
        uri = server_uri(server)
        async with connect(uri) as ws:
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
    assert server.sockets == []
    with pytest.raises(OSError):
        await connect(uri)


async def test_handler_with_path() -> None:
    seen: list[str] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        seen.append(path)
        await ws.send(path)

    async with run_server(handler) as uri:
        async with connect(uri + "chat?room=1") as ws:
            assert await ws.recv() == "/chat?room=1"
    assert seen == ["/chat?room=1"]


async def test_handler_without_path() -> None:
    async def handler(ws: WebSocketServerProtocol) -> None:
        await ws.send(ws.path or "")

    async with run_server(handler) as uri:
        async with connect(uri + "x") as ws:
            assert await ws.recv() == "/x"


async def test_handlers_that_cannot_be_hashed_still_get_the_path_they_ask_for() -> None:
    class Handler:
        """Callable, with ``__eq__`` and so no hash: the signature is read each time."""

        def __init__(self, with_path: bool) -> None:
            self.with_path = with_path

        def __eq__(self, other: object) -> bool:
            return other is self

        __hash__ = None  # type: ignore[assignment]

        async def __call__(self, ws: WebSocketServerProtocol, *path: str) -> None:
            await ws.send(repr(path))

    class WithoutPath(Handler):
        async def __call__(self, ws: WebSocketServerProtocol) -> None:  # type: ignore[override]
            await ws.send("no path")

    for handler, expected in [(Handler(True), "('/a',)"), (WithoutPath(False), "no path")]:
        async with run_server(handler) as uri:
            for _ in range(2):
                async with connect(uri + "a") as ws:
                    assert await ws.recv() == expected


async def test_handler_return_closes_with_1000() -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.send("bye")

    async with run_server(handler) as uri:
        async with connect(uri) as ws:
            assert await ws.recv() == "bye"
            with pytest.raises(ConnectionClosedOK) as exc_info:
                await ws.recv()
            assert exc_info.value.code == 1000
            assert ws.close_code == 1000


async def test_handler_exception_is_logged_and_closes_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        raise RuntimeError("boom in handler")

    caplog.set_level(logging.DEBUG, logger="wsrs")
    async with run_server(handler) as uri:
        async with connect(uri) as ws:
            with pytest.raises(ConnectionClosedError) as exc_info:
                await ws.recv()
            assert exc_info.value.code == 1011
            assert ws.close_code == 1011
    errors = [r for r in caplog.records if r.name == "wsrs.server" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    assert "boom in handler" in caplog.text
    assert "Traceback" in caplog.text


async def test_server_close_closes_connections_with_1001() -> None:
    finished: list[int | None] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        try:
            await ws.recv()
        finally:
            finished.append(ws.close_code)

    server = await serve(handler, "127.0.0.1", 0)
    uri = server_uri(server)
    clients = [await connect(uri) for _ in range(3)]
    server.close()
    await asyncio.wait_for(server.wait_closed(), 2000 * MS)
    assert finished == [1001, 1001, 1001]
    assert server.sockets == []
    assert server.websockets == set()
    for ws in clients:
        with pytest.raises(ConnectionClosedOK) as exc_info:
            await ws.recv()
        assert exc_info.value.code == 1001
        await asyncio.wait_for(ws.wait_closed(), 2000 * MS)
        assert ws.closed


async def test_server_close_waits_for_handler_to_finish() -> None:
    steps: list[str] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        try:
            await ws.recv()
        except wsrs.ConnectionClosed:
            steps.append("closed")
            await asyncio.sleep(50 * MS)
            steps.append("cleanup done")

    server = await serve(handler, "127.0.0.1", 0)
    ws = await connect(server_uri(server))
    server.close()
    await asyncio.wait_for(server.wait_closed(), 2000 * MS)
    assert steps == ["closed", "cleanup done"]
    await ws.close()


# ---------------------------------------------------------------------------- process_request


class HealthCheckSync(WebSocketServerProtocol):
    states: list[State] = []

    def process_request(
        self, path: str, request_headers: Headers
    ) -> tuple[http.HTTPStatus, list[tuple[str, str]], bytes] | None:
        self.states.append(self.state)
        if path == "/health":
            return http.HTTPStatus.OK, [("X-Health", "ok")], b"OK\n"
        return None


class HealthCheckAsync(WebSocketServerProtocol):
    states: list[State] = []

    async def process_request(
        self, path: str, request_headers: Headers
    ) -> tuple[http.HTTPStatus, list[tuple[str, str]], bytes] | None:
        await asyncio.sleep(0)
        self.states.append(self.state)
        if path == "/health":
            return http.HTTPStatus.OK, [("X-Health", "ok")], b"OK\n"
        return None


@pytest.mark.parametrize("protocol", [HealthCheckSync, HealthCheckAsync])
async def test_process_request_response(protocol: type[WebSocketServerProtocol]) -> None:
    calls: list[str] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        calls.append(path)
        await ws.send("ws")

    states: list[State] = protocol.states  # type: ignore[attr-defined]
    states.clear()
    async with run_server(handler, create_protocol=protocol) as uri:
        reader, writer = await open_raw(uri)
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, headers, body = await read_http_response(reader)
        assert await reader.read() == b""
        await close_writer(writer)
        assert status == 200
        assert ("X-Health", "ok") in headers
        assert body == b"OK\n"
        assert calls == []
        # Other paths go through the WebSocket handshake.
        async with connect(uri + "other") as ws:
            assert await ws.recv() == "ws"
        assert calls == ["/other"]
    assert states == [State.CONNECTING, State.CONNECTING]


async def test_process_request_rejection_seen_by_client() -> None:
    class Unauthorized(WebSocketServerProtocol):
        async def process_request(
            self, path: str, request_headers: Headers
        ) -> tuple[http.HTTPStatus, list[tuple[str, str]]]:
            return http.HTTPStatus.UNAUTHORIZED, []

    async with run_server(echo, create_protocol=Unauthorized) as uri:
        with pytest.raises(InvalidStatusCode) as exc_info:
            await connect(uri)
        assert exc_info.value.status_code == 401


# ---------------------------------------------------------------------------- origins


async def test_origin_allowed() -> None:
    cap = Capture()
    async with run_server(cap.handler, origins=["https://good.example"]) as uri:
        async with connect(uri, origin="https://good.example") as ws:
            server_ws = await cap.get()
            assert server_ws.origin == "https://good.example"
            assert server_ws.request_headers is not None
            assert server_ws.request_headers["Origin"] == "https://good.example"
            assert ws.open


async def test_origin_refused() -> None:
    async with run_server(echo, origins=["https://good.example"]) as uri:
        with pytest.raises(InvalidStatusCode) as exc_info:
            await connect(uri, origin="https://evil.example")
        assert exc_info.value.status_code == 403
        assert exc_info.value.code == 403
        with pytest.raises(InvalidStatusCode) as exc_info:
            await connect(uri)  # no Origin header
        assert exc_info.value.status_code == 403


async def test_empty_origin_admits_request_without_origin() -> None:
    async with run_server(echo, origins=["", "https://good.example"]) as uri:
        async with connect(uri) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        with pytest.raises(InvalidStatusCode):
            await connect(uri, origin="https://evil.example")


# ---------------------------------------------------------------------------- subprotocols


@pytest.mark.parametrize(
    ("server_list", "client_list", "expected"),
    [
        (["superchat", "chat"], ["otherchat", "chat"], "chat"),
        (["chat", "superchat"], ["superchat", "chat"], "chat"),  # tie: server preference
        (["superchat", "chat"], ["chat", "superchat"], "superchat"),
        (["chat"], ["otherchat"], None),
    ],
)
async def test_subprotocol_negotiation(
    server_list: list[str], client_list: list[str], expected: str | None
) -> None:
    cap = Capture()
    async with run_server(cap.handler, subprotocols=server_list) as uri:
        async with connect(uri, subprotocols=client_list) as ws:
            server_ws = await cap.get()
            assert ws.subprotocol == expected
            assert server_ws.subprotocol == expected


async def test_select_subprotocol_override() -> None:
    class LastOne(WebSocketServerProtocol):
        @staticmethod
        def select_subprotocol(client: object, server: object) -> str | None:
            assert isinstance(client, list) and isinstance(server, list)
            return client[-1]  # type: ignore[no-any-return]

    cap = Capture()
    async with run_server(
        cap.handler, create_protocol=LastOne, subprotocols=["chat", "superchat"]
    ) as uri:
        async with connect(uri, subprotocols=["chat", "superchat"]) as ws:
            assert ws.subprotocol == "superchat"
            assert (await cap.get()).subprotocol == "superchat"


# ---------------------------------------------------------------------------- extra_headers


def callable_headers(path: str, raw_request_headers: list[tuple[str, str]]) -> dict[str, str]:
    assert isinstance(raw_request_headers, list)
    agent = dict(raw_request_headers)["User-Agent"]
    return {"X-Path": path, "X-Agent": agent}


@pytest.mark.parametrize(
    "extra_headers",
    [
        {"X-Path": "/p", "X-Agent": USER_AGENT},
        [("X-Path", "/p"), ("X-Agent", USER_AGENT)],
        callable_headers,
    ],
    ids=["dict", "pairs", "callable"],
)
async def test_extra_headers(extra_headers: object) -> None:
    async with run_server(echo, extra_headers=extra_headers) as uri:
        async with connect(uri + "p") as ws:
            assert ws.response_headers is not None
            assert ws.response_headers["X-Path"] == "/p"
            assert ws.response_headers["X-Agent"] == USER_AGENT
            assert ws.response_headers["Server"] == USER_AGENT


async def test_extra_headers_override_server() -> None:
    async with run_server(echo, extra_headers={"Server": "custom/1.0"}) as uri:
        async with connect(uri) as ws:
            assert ws.response_headers is not None
            assert ws.response_headers.get_all("Server") == ["custom/1.0"]
            assert ws.raw_response_headers is not None
            assert [v for n, v in ws.raw_response_headers if n.lower() == "server"] == [
                "custom/1.0"
            ]


# ---------------------------------------------------------------------------- bad requests


async def raw_exchange(uri: str, request: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    reader, writer = await open_raw(uri)
    try:
        writer.write(request)
        return await read_http_response(reader)
    finally:
        await close_writer(writer)


async def test_bad_requests_do_not_disturb_a_good_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with run_server(echo, timeout=300 * MS) as uri:
        host = uri.split("//")[1].rstrip("/")
        async with connect(uri) as good:
            # Not an upgrade.
            status, headers, body = await raw_exchange(
                uri, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
            )
            assert status == 400
            assert dict(headers)["Content-Type"].startswith("text/plain")
            assert body
            body.decode()
            await good.send("still here 1")
            assert await good.recv() == "still here 1"

            # Unsupported version.
            request, _ = upgrade_request(host)
            request = request.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
            status, headers, body = await raw_exchange(uri, request)
            assert status == 426
            assert ("Sec-WebSocket-Version", "13") in headers
            await good.send("still here 2")
            assert await good.recv() == "still here 2"

            # Garbage.
            status, headers, body = await raw_exchange(uri, b"\x16\x03\x01garbage\r\n\r\n")
            assert status == 400
            await good.send("still here 3")
            assert await good.recv() == "still here 3"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_huge_request_line_gets_4xx() -> None:
    async with run_server(echo) as uri:
        async with connect(uri) as good:
            reader, writer = await open_raw(uri)
            try:
                writer.write(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, _ = await read_http_response(reader)
            finally:
                await close_writer(writer)
            assert 400 <= status < 500
            await good.send("ok")
            assert await good.recv() == "ok"


async def test_silent_client_is_closed_after_timeout() -> None:
    timeout = 100 * MS
    async with run_server(echo, timeout=timeout) as uri:
        async with connect(uri) as good:
            loop = asyncio.get_running_loop()
            reader, writer = await open_raw(uri)
            start = loop.time()
            try:
                data = await asyncio.wait_for(reader.read(), 20 * timeout)
            finally:
                await close_writer(writer)
            elapsed = loop.time() - start
            assert b"HTTP/1.1 101" not in data
            assert timeout * 0.8 <= elapsed < 10 * timeout
            await good.send("ok")
            assert await good.recv() == "ok"


async def test_partial_request_then_silence_is_closed_after_timeout() -> None:
    timeout = 100 * MS
    async with run_server(echo, timeout=timeout) as uri:
        reader, writer = await open_raw(uri)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            data = await asyncio.wait_for(reader.read(), 20 * timeout)
        finally:
            await close_writer(writer)
        assert b"HTTP/1.1 101" not in data


async def test_request_larger_than_read_limit_gets_431() -> None:
    async with run_server(echo, read_limit=256) as uri:
        reader, writer = await open_raw(uri)
        try:
            # Valid so far and far below the parser's own limits, but over read_limit.
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: abc\r\n" * 30)
            status, _, body = await read_http_response(reader)
        finally:
            await close_writer(writer)
        assert status == 431
        assert b"read_limit (256 bytes)" in body


@pytest.mark.parametrize(
    "data",
    [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"],
    ids=["nothing", "partial request"],
)
async def test_client_closing_during_the_handshake_is_not_a_rejection(
    caplog: pytest.LogCaptureFixture, data: bytes
) -> None:
    # Regression: a request cut short by EOF was logged at INFO as "rejected an invalid
    # opening handshake with HTTP 400", once per port scan or TCP health check.
    caplog.set_level(logging.DEBUG, logger="wsrs")
    async with run_server(echo) as uri:
        reader, writer = await open_raw(uri)
        writer.write(data)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 2000 * MS) == b""
        await close_writer(writer)
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert "connection closed during the opening handshake" in caplog.text


async def test_client_gone_during_process_request_never_reaches_the_handler() -> None:
    # Regression: when the client closed TCP while an asynchronous process_request ran,
    # the handshake went on: the handler got a connection that was OPEN for good, whose
    # send() never raised.
    processing = asyncio.Event()
    client_gone = asyncio.Event()
    handled: list[str] = []

    class SlowCheck(WebSocketServerProtocol):
        async def process_request(self, path: str, request_headers: Headers) -> None:
            processing.set()
            await client_gone.wait()  # an authentication lookup, say
            await eventually(lambda: self._handshake.eof)

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        handled.append(path)

    async with wsrs.serve(handler, "127.0.0.1", 0, create_protocol=SlowCheck) as server:
        reader, writer = await open_raw(server_uri(server))
        request, _ = upgrade_request("localhost", "/slow")
        writer.write(request)
        await asyncio.wait_for(processing.wait(), 2000 * MS)
        await close_writer(writer)
        client_gone.set()
        await eventually(lambda: not server.websockets)
    assert handled == []


async def test_handshake_cancelled_outside_a_shutdown_closes_without_a_response() -> None:
    # As when asyncio.run() ends and cancels the tasks left.
    async with wsrs.serve(echo, "127.0.0.1", 0) as server:
        reader, writer = await open_raw(server_uri(server))
        try:
            writer.write(b"GET / HTTP/1.1\r\n")
            await eventually(lambda: len(server.websockets) == 1)
            [server_ws] = server.websockets
            # Once the server read the bytes, closing cannot turn into a reset.
            await eventually(lambda: bool(server_ws._handshake.data))
            assert server_ws.handler_task is not None
            server_ws.handler_task.cancel()
            assert await asyncio.wait_for(reader.read(), 2000 * MS) == b""
        finally:
            await close_writer(writer)
        assert server_ws.handler_task.cancelled()
        assert server.websockets == set()
        assert server_ws.state is State.CLOSED


async def test_handshake_in_progress_when_server_closes_gets_503() -> None:
    server = await serve(echo, "127.0.0.1", 0)
    reader, writer = await open_raw(server_uri(server))
    try:
        writer.write(b"GET / HTTP/1.1\r\n")
        await writer.drain()
        await asyncio.sleep(20 * MS)
        server.close()
        status, _, body = await read_http_response(reader)
        assert status == 503
        assert body
    finally:
        await close_writer(writer)
        await asyncio.wait_for(server.wait_closed(), 2000 * MS)


async def test_raw_client_handshake_attributes() -> None:
    cap = Capture()
    async with run_server(cap.handler, subprotocols=["chat"]) as uri:
        reader, writer = await raw_handshake(uri, "/raw?x=1", [("Sec-WebSocket-Protocol", "chat")])
        try:
            server_ws = await cap.get()
            assert server_ws.path == "/raw?x=1"
            assert server_ws.subprotocol == "chat"
            assert server_ws.extensions == []
            assert server_ws.state is State.OPEN
        finally:
            await close_writer(writer)


async def test_process_request_crash_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    class Crash(WebSocketServerProtocol):
        def process_request(self, path: str, request_headers: Headers) -> None:
            raise RuntimeError("crash in process_request")

    async with run_server(echo, create_protocol=Crash) as uri:
        with pytest.raises(InvalidStatusCode) as exc_info:
            await connect(uri)
        assert exc_info.value.status_code == 500
    assert "crash in process_request" in caplog.text


async def test_process_request_headers_are_kept() -> None:
    class Redirect(WebSocketServerProtocol):
        def process_request(
            self, path: str, request_headers: Headers
        ) -> tuple[http.HTTPStatus, list[tuple[str, str]], bytes]:
            # The response gives its own Content-Length and Connection: not added twice.
            headers = [("Location", "/new"), ("Content-Length", "5"), ("Connection", "close")]
            return http.HTTPStatus.FOUND, headers, b"moved"

    async with run_server(echo, create_protocol=Redirect) as uri:
        status, headers, body = await raw_exchange(uri, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 302
    assert body == b"moved"
    names = [name.lower() for name, _ in headers]
    assert names.count("content-length") == 1
    assert names.count("connection") == 1
    assert ("Location", "/new") in headers


async def test_process_request_without_body() -> None:
    class NoBody(WebSocketServerProtocol):
        async def process_request(
            self, path: str, request_headers: Headers
        ) -> tuple[http.HTTPStatus, list[tuple[str, str]]]:
            return http.HTTPStatus.NO_CONTENT, [("X-A", "b")]

    async with run_server(echo, create_protocol=NoBody) as uri:
        status, headers, body = await raw_exchange(uri, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 204
        assert ("X-A", "b") in headers
        assert body == b""


async def test_klass_and_create_protocol() -> None:
    class A(WebSocketServerProtocol):
        pass

    class B(WebSocketServerProtocol):
        pass

    cap = Capture()
    async with run_server(cap.handler, klass=A) as uri:
        async with connect(uri):
            assert type(await cap.get()) is A
    async with run_server(cap.handler, klass=A, create_protocol=B) as uri:
        async with connect(uri):
            assert type(await cap.get()) is B
