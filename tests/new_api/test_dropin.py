"""Behaviours that websockets 17 documents, run against websockets.asyncio and wsrs.asyncio
alike (the ``api`` fixture): redirects, TLS server names, argument checks, keepalive
latency, closing servers, loggers, close-code wording."""

from __future__ import annotations

import asyncio
import http
import logging
import socket
import ssl
from typing import Any

import pytest

import wsrs.asyncio.client
import wsrs.asyncio.server
import wsrs.exceptions
from wsrs.asyncio.server import ServerConnection
from wsrs.http11 import Request, Response

from .test_connection import APIS, MS, echo, uri_of


@pytest.fixture(params=list(APIS))
def api(request: pytest.FixtureRequest) -> Any:
    """websockets.asyncio or wsrs.asyncio: the same test runs against both."""
    return APIS[request.param]


def redirect_to(location: str, path: str | None = None) -> Any:
    """A process_request that redirects (every request, or those for ``path``)."""

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if path is not None and request.path != path:
            return None
        response = connection.respond(http.HTTPStatus.FOUND, "")
        response.headers["Location"] = location
        return response

    return process_request


def host_port(server: Any) -> tuple[str, int]:
    host, port = server.sockets[0].getsockname()[:2]
    return host, port


async def test_cross_origin_redirect_strips_credentials(api: Any) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as other:
        target = redirect_to(uri_of(other))
        async with api.serve(echo, "127.0.0.1", 0, process_request=target) as server:
            headers = {
                "Authorization": "Bearer secret",
                "Cookie": "session=secret",
                "Proxy-Authorization": "Basic secret",
                "X-Custom": "keep",
            }
            async with api.connect(uri_of(server), additional_headers=headers) as client:
                sent = client.request.headers
                assert "Authorization" not in sent and "Cookie" not in sent
                assert "Proxy-Authorization" not in sent and sent["X-Custom"] == "keep"


async def test_same_origin_redirect_keeps_credentials(api: Any) -> None:
    async with api.serve(
        echo, "127.0.0.1", 0, process_request=redirect_to("/", path="/redirect")
    ) as server:
        headers = {"Authorization": "Bearer secret"}
        async with api.connect(uri_of(server) + "redirect", additional_headers=headers) as client:
            assert client.request.path == "/"
            assert client.request.headers["Authorization"] == "Bearer secret"


async def test_redirects_that_cannot_be_followed(api: Any) -> None:
    async with api.serve(
        echo, "127.0.0.1", 0, process_request=redirect_to("ws://other/")
    ) as server:
        host, port = host_port(server)
        with pytest.raises(ValueError) as raised:
            await api.connect("ws://overridden/", host=host, port=port)
        assert str(raised.value) == (
            "cannot follow cross-origin redirect to ws://other/ with an explicit host or port"
        )
    async with api.serve(echo, "127.0.0.1", 0, process_request=redirect_to("/")) as server:
        with socket.create_connection(host_port(server)) as sock:
            with pytest.raises(ValueError) as raised:
                await api.connect("ws://invalid/redirect", sock=sock)
        assert str(raised.value) == (
            "cannot follow redirect to ws://invalid/ with a preexisting socket"
        )
    async with api.serve(echo, "127.0.0.1", 0, process_request=redirect_to("/")) as server:
        host, port = host_port(server)
        # Same origin: the explicit host and port still apply.
        with pytest.raises(api.exceptions.SecurityError, match="redirects"):
            await api.connect(f"ws://{host}:{port}/", host=host, port=port)


async def test_redirect_without_location_is_the_status_error(api: Any) -> None:
    def moved(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(http.HTTPStatus.MOVED_PERMANENTLY, "")

    async with api.serve(echo, "127.0.0.1", 0, process_request=moved) as server:
        with pytest.raises(api.exceptions.InvalidStatus) as raised:
            await api.connect(uri_of(server))
    assert raised.value.response.status_code == 301


async def test_redirect_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsrs.asyncio.client, "MAX_REDIRECTS", 2)
    async with wsrs.asyncio.server.serve(
        echo, "127.0.0.1", 0, process_request=redirect_to("/")
    ) as server:
        with pytest.raises(wsrs.exceptions.SecurityError) as raised:
            await wsrs.asyncio.client.connect(uri_of(server))
    assert str(raised.value) == "more than 2 redirects"


async def test_redirect_to_an_insecure_uri(
    api: Any, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with api.serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        insecure = uri_of(server)
    redirect = redirect_to(insecure)
    async with api.serve(
        echo, "127.0.0.1", 0, ssl=server_context, process_request=redirect
    ) as server:
        host, port = host_port(server)
        with pytest.raises(api.exceptions.SecurityError) as raised:
            await api.connect(f"wss://localhost:{port}/", ssl=client_context)
    assert str(raised.value) == f"cannot follow redirect to non-secure URI {insecure}"


async def test_server_hostname_comes_from_the_uri(
    api: Any, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    client_context.check_hostname = False
    async with api.serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        host, port = host_port(server)
        async with api.connect(
            "wss://overridden/", host=host, port=port, ssl=client_context
        ) as client:
            assert client.transport.get_extra_info("ssl_object").server_hostname == "overridden"


async def test_junk_response(api: Any) -> None:
    async def junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(MS)
        writer.write(b"220 smtp.invalid ESMTP Postfix\r\n")
        await reader.read(4096)
        writer.close()

    server = await asyncio.start_server(junk, "127.0.0.1", 0)
    async with server:
        host, port = host_port(server)
        with pytest.raises(api.exceptions.InvalidMessage) as raised:
            await api.connect(f"ws://{host}:{port}/", open_timeout=2)
    assert str(raised.value) == "did not receive a valid HTTP response"
    assert isinstance(raised.value.__cause__, ValueError)
    assert "220" in str(raised.value.__cause__)


async def test_junk_request_is_refused_at_once(api: Any) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection(*host_port(server))
        writer.write(b"HELO relay.invalid\r\n")
        try:
            async with asyncio.timeout(2):
                response = await reader.read(4096)
        finally:
            writer.close()
    # websockets answers 400; either way the connection ends at once, without a 101.
    assert not response.startswith(b"HTTP/1.1 101")


async def test_subprotocols_must_be_a_list(api: Any) -> None:
    with pytest.raises(TypeError) as raised:
        await api.connect("ws://localhost/", subprotocols="chat")
    assert str(raised.value) == "subprotocols must be a list, not a str"
    with pytest.raises(TypeError) as raised:
        await api.serve(echo, "localhost", 0, subprotocols="chat")
    assert str(raised.value) == "subprotocols must be a list, not a str"


async def test_basic_auth_rejects_bad_credentials_arguments() -> None:
    for credentials in [42, [("user",)], [("user", 42)]]:
        with pytest.raises(TypeError) as raised:
            wsrs.asyncio.server.basic_auth(credentials=credentials)  # type: ignore[arg-type]
        assert str(raised.value) == f"invalid credentials argument: {credentials}"


async def test_keepalive_measures_latency(api: Any) -> None:
    async with api.serve(echo, "127.0.0.1", 0, ping_interval=10 * MS) as server:
        async with api.connect(uri_of(server), ping_interval=10 * MS) as client:
            assert client.latency == 0
            for _ in range(100):
                await asyncio.sleep(10 * MS)
                if client.latency > 0:
                    break
            assert 0 < client.latency < 1
            server_side = next(iter(server.connections))
            assert 0 < server_side.latency < 1


async def test_close_ends_serve_forever(api: Any) -> None:
    server = await api.serve(echo, "127.0.0.1", 0)
    serving = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0)
    server.close()
    async with asyncio.timeout(1):
        await serving  # returns: no CancelledError
    assert not server.is_serving()


async def test_wait_closed_waits_for_close(api: Any) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:
        waiting = asyncio.create_task(server.wait_closed())
        await asyncio.sleep(10 * MS)
        assert not waiting.done()
    async with asyncio.timeout(1):
        await waiting


async def test_closing_server_rejects_handshakes_with_503(api: Any) -> None:
    async def wait_for_close(connection: ServerConnection, request: Request) -> None:
        while connection.server.is_serving():
            await asyncio.sleep(0)

    async with api.serve(echo, "127.0.0.1", 0, process_request=wait_for_close) as server:
        asyncio.get_running_loop().call_later(2 * MS, server.close)
        with pytest.raises(api.exceptions.InvalidStatus) as raised:
            await api.connect(uri_of(server))
    assert str(raised.value) == "server rejected WebSocket connection: HTTP 503"


async def test_handler_errors_are_logged_on_the_documented_logger(
    api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(connection: ServerConnection) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="websockets"):
        async with api.serve(crash, "127.0.0.1", 0) as server:
            async with api.connect(uri_of(server)) as client:
                with pytest.raises(api.exceptions.ConnectionClosedError) as raised:
                    await client.recv()
    assert str(raised.value) == "received 1011 (internal error); then sent 1011 (internal error)"
    records = [r for r in caplog.records if r.name == "websockets.server"]
    assert [r.getMessage() for r in records] == ["connection handler failed"]


async def test_cross_origin_redirect_over_a_unix_socket(api: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "ws.sock")
    async with api.serve(echo, unix=True, path=path, process_request=redirect_to("ws://other/")):
        with pytest.raises(ValueError) as raised:
            await api.connect("ws://localhost/", unix=True, path=path)
    assert str(raised.value) == (
        "cannot follow cross-origin redirect to ws://other/ with a Unix socket"
    )


async def test_cross_origin_redirect_without_additional_headers(api: Any) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as other:
        target = redirect_to(uri_of(other))
        async with api.serve(echo, "127.0.0.1", 0, process_request=target) as server:
            async with api.connect(uri_of(server)) as client:
                assert client.request.headers["Host"] == uri_of(other)[5:-1]


async def test_serve_forever_starts_serving(api: Any) -> None:
    server = await api.serve(echo, "127.0.0.1", 0, start_serving=False)
    assert not server.is_serving()
    serving = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(10 * MS)
    assert server.is_serving()
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert not server.is_serving()


@pytest.mark.parametrize("hook", ["process_request", "process_response"])
async def test_failing_hooks_answer_500_and_log(
    api: Any, hook: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(*args: Any) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="websockets"):
        async with api.serve(echo, "127.0.0.1", 0, **{hook: fail}) as server:
            with pytest.raises(api.exceptions.InvalidStatus) as raised:
                await api.connect(uri_of(server))
    assert raised.value.response.status_code == 500
    records = [r for r in caplog.records if r.name == "websockets.server"]
    assert [r.getMessage() for r in records] == [f"{hook} failed"]


async def test_failing_select_subprotocol_answers_500(
    api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def select(connection: ServerConnection, subprotocols: list[str]) -> str:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="websockets"):
        async with api.serve(echo, "127.0.0.1", 0, select_subprotocol=select) as server:
            with pytest.raises(api.exceptions.InvalidStatus) as raised:
                await api.connect(uri_of(server), subprotocols=["chat"])
    assert raised.value.response.status_code == 500
    assert [r.getMessage() for r in caplog.records if r.name == "websockets.server"] == [
        "opening handshake failed"
    ]
