"""The client side of the asyncio API: connect(), the opening handshake, transports."""

from __future__ import annotations

import asyncio
import os
import pathlib
import socket
import ssl

import pytest

import wsrs
from wsrs import (
    ConnectionClosedError,
    InvalidHandshake,
    InvalidStatusCode,
    InvalidURI,
    WebSocketServerProtocol,
    connect,
    serve,
    unix_connect,
    unix_serve,
)
from wsrs.version import USER_AGENT

from .utils import (
    MS,
    Capture,
    close_writer,
    echo,
    http_server,
    raw_ws_server,
    run_server,
    server_uri,
)


# ---------------------------------------------------------------------------- connect()


async def test_connect_awaited() -> None:
    async with run_server() as uri:
        ws = await connect(uri)
        try:
            assert isinstance(ws, wsrs.WebSocketClientProtocol)
            assert ws.open
            await ws.send("hi")
            assert await ws.recv() == "hi"
        finally:
            await ws.close()
        assert ws.closed
        assert ws.close_code == 1000


async def test_connect_async_context_manager() -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            assert ws.open
            await ws.send(b"hi")
            assert await ws.recv() == b"hi"
        assert ws.closed
        assert ws.close_code == 1000


async def test_connect_refused() -> None:
    async with run_server() as uri:
        pass
    with pytest.raises(OSError):
        await connect(uri)


async def test_invalid_status_code() -> None:
    response = (
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n"
        b"Connection: close\r\n\r\nNot found"
    )
    async with http_server(response) as uri:
        with pytest.raises(InvalidStatusCode) as exc_info:
            await connect(uri)
        assert exc_info.value.status_code == 404
        assert exc_info.value.code == 404
        assert isinstance(exc_info.value, InvalidHandshake)


async def test_not_http_response() -> None:
    async with http_server(b"SSH-2.0-OpenSSH_9.0\r\n\r\n") as uri:
        with pytest.raises(InvalidHandshake):
            await connect(uri)


async def test_wrong_accept_key() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with raw_ws_server(peer, accept=lambda key: "d3JvbmcgYWNjZXB0IGtleQ==") as uri:
        with pytest.raises(InvalidHandshake):
            await connect(uri)


async def test_unsolicited_subprotocol_and_extension() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with raw_ws_server(peer, extra_response="Sec-WebSocket-Protocol: chat\r\n") as uri:
        with pytest.raises(InvalidHandshake):
            await connect(uri)
        with pytest.raises(InvalidHandshake):
            await connect(uri, subprotocols=["other"])
    async with raw_ws_server(peer, extra_response="Sec-WebSocket-Extensions: x-foo\r\n") as uri:
        with pytest.raises(InvalidHandshake):
            await connect(uri)


async def test_several_subprotocols_chosen_by_the_server() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    chosen = "Sec-WebSocket-Protocol: chat, superchat\r\n"
    async with raw_ws_server(peer, extra_response=chosen) as uri:
        with pytest.raises(InvalidHandshake, match="multiple subprotocols: chat, superchat"):
            await connect(uri, subprotocols=["chat", "superchat"])


async def test_handshake_timeout() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # never answers
        except ConnectionError:
            pass
        finally:
            await close_writer(writer)

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    try:
        host, port = server.sockets[0].getsockname()[:2]
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await connect(f"ws://{host}:{port}/", timeout=100 * MS)
        assert loop.time() - start < 2000 * MS
    finally:
        server.close()
        await server.wait_closed()


# ---------------------------------------------------------------------------- request headers


async def test_origin_subprotocols_extra_headers() -> None:
    cap = Capture()
    async with run_server(cap.handler, subprotocols=["b", "a"]) as uri:
        async with connect(
            uri,
            origin="https://example.com",
            subprotocols=["a", "b"],
            extra_headers={"User-Agent": "my-agent/1.0", "X-Token": "t0k"},
        ) as ws:
            server_ws = await cap.get()
            assert ws.subprotocol == server_ws.subprotocol
            assert ws.subprotocol in ("a", "b")
            headers = server_ws.request_headers
            assert headers is not None
            assert headers["Origin"] == "https://example.com"
            assert server_ws.origin == "https://example.com"
            assert headers.get_all("User-Agent") == ["my-agent/1.0"]
            assert headers["X-Token"] == "t0k"
            assert headers["Sec-WebSocket-Protocol"] == "a, b"


async def test_extra_headers_pairs() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri, extra_headers=[("X-A", "1"), ("X-A", "2")]):
            server_ws = await cap.get()
            assert server_ws.request_headers is not None
            assert server_ws.request_headers.get_all("X-A") == ["1", "2"]
            assert server_ws.request_headers["User-Agent"] == USER_AGENT


# ---------------------------------------------------------------------------- compression


async def test_compression_default_negotiates_permessage_deflate() -> None:
    cap = Capture()
    async with run_server(cap.handler) as uri:
        async with connect(uri) as ws:
            server_ws = await cap.get()
            assert [type(e) for e in ws.extensions] == [wsrs.PerMessageDeflate]
            assert [type(e) for e in server_ws.extensions] == [wsrs.PerMessageDeflate]
            assert ws.response_headers is not None
            assert ws.response_headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
            await ws.send("z" * 10_000)
            assert await server_ws.recv() == "z" * 10_000


@pytest.mark.parametrize(
    ("server_compression", "client_compression"),
    [
        (None, None),
        ("deflate", None),
        (None, "deflate"),
    ],
)
async def test_compression_none(
    server_compression: str | None, client_compression: str | None
) -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=server_compression) as uri:
        async with connect(uri, compression=client_compression) as ws:
            server_ws = await cap.get()
            assert ws.extensions == []
            assert server_ws.extensions == []
            assert ws.response_headers is not None
            assert "Sec-WebSocket-Extensions" not in ws.response_headers
            if client_compression is None:
                assert ws.request_headers is not None
                assert "Sec-WebSocket-Extensions" not in ws.request_headers
            await ws.send("z" * 10_000)
            assert await server_ws.recv() == "z" * 10_000


def test_unknown_compression() -> None:
    with pytest.raises(ValueError):
        connect("ws://localhost/", compression="gzip")
    with pytest.raises(ValueError):
        serve(echo, "localhost", 0, compression="gzip")


# ---------------------------------------------------------------------------- URIs and ssl


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost/",
        "localhost:8000",
        "ws://",
        "ws://user:pass@localhost/",
        "ws://localhost/#fragment",
        "ws://localhost:99999/",
        "wss://exa mple.com/",
    ],
)
def test_invalid_uri_raised_at_call_time(uri: str) -> None:
    with pytest.raises(InvalidURI):
        connect(uri)


def test_ssl_with_ws_uri() -> None:
    with pytest.raises(ValueError):
        connect("ws://localhost/", ssl=ssl.create_default_context())
    with pytest.raises(ValueError):
        connect("ws://localhost/", ssl=True)


async def test_tls(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    cap = Capture()
    async with serve(cap.handler, "127.0.0.1", 0, ssl=server_context) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"wss://127.0.0.1:{port}/tls", ssl=client_context) as ws:
            server_ws = await cap.get()
            assert ws.secure is True
            assert server_ws.secure is True
            assert server_ws.path == "/tls"
            assert ws.transport is not None
            assert ws.transport.get_extra_info("ssl_object") is not None
            await ws.send("secret")
            assert await server_ws.recv() == "secret"
            await server_ws.send(b"x" * 200_000)
            assert await ws.recv() == b"x" * 200_000
        await asyncio.wait_for(server_ws.wait_closed(), 2000 * MS)
        assert server_ws.close_code == 1000


async def test_tls_large_binary_received_in_place(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    # Without compression, large binary messages are read straight into their bytes: through
    # the TLS layer too (it reads into the buffer the protocol gives it).
    payloads = [os.urandom(1 << 20), os.urandom(70_000), b"", os.urandom(300_001)]
    async with serve(
        echo, "127.0.0.1", 0, ssl=server_context, compression=None, max_size=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(
            f"wss://127.0.0.1:{port}/", ssl=client_context, compression=None, max_size=None
        ) as ws:
            for payload in payloads:
                await ws.send(payload)
            for payload in payloads:
                assert await ws.recv() == payload


async def test_tls_default_context_rejects_self_signed(server_context: ssl.SSLContext) -> None:
    async with serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(f"wss://127.0.0.1:{port}/")


async def server_closing_right_after_its_101(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass  # raw_ws_server closes the connection

    async with raw_ws_server(peer, ssl=server_context) as uri:
        ws = await connect(uri, ssl=client_context, timeout=5)
        with pytest.raises(ConnectionClosedError) as exc_info:
            await asyncio.wait_for(ws.recv(), 1000 * MS)
        assert exc_info.value.code == 1006
        await asyncio.wait_for(ws.wait_closed(), 1000 * MS)
        assert ws.closed


async def test_tls_server_closing_right_after_its_101(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    # The 101 response and TLS close_notify arrive in the same read. On asyncio's loops
    # the client's handshake wakes as the 101 is fed (wsrs.asyncio.wakeup), before EOF.
    await server_closing_right_after_its_101(server_context, client_context)


def test_tls_server_closing_right_after_its_101_on_uvloop(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    # On uvloop the handshake wakes in a later iteration: it completes with EOF already
    # received, and the connection ends at once.
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(server_closing_right_after_its_101(server_context, client_context))


async def test_tls_plain_client_to_tls_server(server_context: ssl.SSLContext) -> None:
    async with serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        with pytest.raises((InvalidHandshake, ConnectionError)):
            await connect(server_uri(server), timeout=500 * MS)


# ---------------------------------------------------------------------------- transports


async def test_connect_with_sock() -> None:
    async with run_server() as uri:
        host, port = uri.split("//")[1].rstrip("/").split(":")
        sock = socket.create_connection((host, int(port)))
        async with connect(f"ws://{host}:{port}/", sock=sock) as ws:
            await ws.send("via sock")
            assert await ws.recv() == "via sock"
            assert ws.remote_address == (host, int(port))


async def test_unix_socket(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "ws.sock")
    cap = Capture()
    server = await unix_serve(cap.handler, path)
    try:
        async with unix_connect(path, "ws://localhost/unix") as ws:
            server_ws = await cap.get()
            assert server_ws.path == "/unix"
            assert ws.remote_address == path
            assert server_ws.local_address == path
            await ws.send("over unix")
            assert await server_ws.recv() == "over unix"
        async with unix_connect(path) as ws:
            assert ws.path == "/"
            assert (await cap.get()).path == "/"
        # connect(sock=...) with a connected Unix socket works too.
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(path)
        async with connect("ws://localhost/s", sock=sock) as ws:
            assert (await cap.get()).path == "/s"
    finally:
        server.close()
        await server.wait_closed()


async def test_unix_serve_context_manager(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "ws.sock")
    async with unix_serve(echo, path):
        async with unix_connect(path) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"


async def test_tls_over_unix_socket_checks_the_uri_host(
    tmp_path: pathlib.Path, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    # asyncio needs server_hostname for TLS without a host: it comes from the URI.
    path = str(tmp_path / "wss.sock")
    cap = Capture()
    async with unix_serve(cap.handler, path, ssl=server_context):
        async with unix_connect(path, "wss://localhost/tls", ssl=client_context) as ws:
            server_ws = await cap.get()
            assert ws.secure is True and server_ws.path == "/tls"
            assert ws.transport is not None
            assert ws.transport.get_extra_info("ssl_object").server_hostname == "localhost"
            await ws.send("secret")
            assert await server_ws.recv() == "secret"
        # The certificate is for localhost: another host in the URI fails verification.
        with pytest.raises(ssl.SSLCertVerificationError):
            await unix_connect(path, "wss://example.com/", ssl=client_context)


async def test_tls_over_a_given_socket_checks_the_uri_host(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    cap = Capture()
    async with serve(cap.handler, "127.0.0.1", 0, ssl=server_context) as server:
        port = server.sockets[0].getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port))
        async with connect(f"wss://localhost:{port}/sock", sock=sock, ssl=client_context) as ws:
            server_ws = await cap.get()
            assert server_ws.path == "/sock"
            assert ws.transport is not None
            assert ws.transport.get_extra_info("ssl_object").server_hostname == "localhost"
            await server_ws.send("over TLS")
            assert await ws.recv() == "over TLS"


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6(), reason="IPv6 loopback unavailable")
async def test_ipv6() -> None:
    cap = Capture()
    async with serve(cap.handler, "::1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://[::1]:{port}/v6") as ws:
            server_ws = await cap.get()
            assert ws.host == "::1"
            assert server_ws.request_headers is not None
            assert server_ws.request_headers["Host"] == f"[::1]:{port}"
            assert ws.remote_address[:2] == ("::1", port)
            await ws.send("six")
            assert await server_ws.recv() == "six"


# ---------------------------------------------------------------------------- uvloop


def test_echo_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[str | bytes]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uvloop.Loop)
        results: list[str | bytes] = []
        async with run_server() as uri:
            async with connect(uri) as ws:
                messages: list[str | bytes] = ["text", b"bin", "big" * 100_000]
                for message in messages:
                    await ws.send(message)
                    results.append(await ws.recv())
                await asyncio.wait_for(await ws.ping(), 1000 * MS)
        # Uncompressed: large binary messages go through the reused send buffer and are
        # read straight into their bytes (uvloop holds the buffer protocol across its read).
        async with run_server(compression=None, max_size=None) as uri:
            async with connect(uri, compression=None, max_size=None) as ws:
                for message in large:
                    await ws.send(message)
                for _ in large:
                    results.append(await ws.recv())
        return results

    large = [os.urandom(1 << 20), os.urandom(100_000), os.urandom(3 << 20)]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == ["text", b"bin", "big" * 100_000, *large]


async def test_handler_sees_client_protocol_subclass() -> None:
    class MyClient(wsrs.WebSocketClientProtocol):
        pass

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.send("x")

    async with run_server(handler) as uri:
        async with connect(uri, create_protocol=MyClient) as ws:
            assert isinstance(ws, MyClient)
            assert await ws.recv() == "x"
