"""Connecting through proxies: wsrs.proxy (Sans-I/O) and connect(proxy=...) over real
HTTP CONNECT and SOCKS5 proxies run by the tests."""

from __future__ import annotations

import asyncio
import base64
import os
import pathlib
import socket
import ssl
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from wsrs.asyncio.client import connect, unix_connect
from wsrs.asyncio.server import serve, unix_serve
from wsrs.exceptions import (
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    ProxyError,
)
from wsrs.proxy import (
    Proxy,
    get_proxy,
    parse_proxy,
    parse_proxy_response,
    prepare_connect_request,
)
from wsrs.uri import parse_uri

from .test_connection import echo, uri_of


PROXY_ENV = ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "socks_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def no_system_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_ENV + ("no_proxy",):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


# Sans-I/O


def test_parse_proxy() -> None:
    assert parse_proxy("http://proxy:3128") == Proxy("http", "proxy", 3128)
    assert parse_proxy("https://Proxy/") == Proxy("https", "proxy", 443)
    assert parse_proxy("http://[::1]") == Proxy("http", "::1", 80)
    assert parse_proxy("socks5h://u%40x:p%3Aw@proxy:1080") == Proxy(
        "socks5h", "proxy", 1080, "u@x", "p:w"
    )
    assert parse_proxy("socks5h://u%40x:p%3Aw@proxy:1080").user_info == ("u@x", "p:w")
    assert parse_proxy("http://proxy").user_info is None
    assert parse_proxy("http://bücher.example").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("ftp://proxy", "scheme ftp isn't supported"),
        ("proxy:3128", "scheme proxy isn't supported"),
        ("http://", "hostname isn't provided"),
        ("http://proxy/path", "path is meaningless"),
        ("http://proxy/?q", "query is meaningless"),
        ("http://proxy/#f", "fragment is meaningless"),
        ("http://user@proxy", "username provided without password"),
        ("http://proxy:99999", "out of range"),
        ("http://a..b\u00e9", "hostname isn't valid"),
    ],
)
def test_parse_proxy_invalid(address: str, message: str) -> None:
    with pytest.raises(InvalidProxy, match=message) as raised:
        parse_proxy(address)
    assert raised.value.proxy == address
    assert str(raised.value).startswith(f"{address} isn't a valid proxy: ")


def test_get_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    ws, wss = parse_uri("ws://example.com/"), parse_uri("wss://example.com/")
    assert get_proxy(ws) is None and get_proxy(wss) is None
    monkeypatch.setenv("http_proxy", "http://h:1")
    assert get_proxy(ws) == "http://h:1" and get_proxy(wss) is None
    monkeypatch.setenv("https_proxy", "http://s:2")
    assert get_proxy(ws) == get_proxy(wss) == "http://s:2"
    monkeypatch.setenv("socks_proxy", "http://socks:3")
    assert get_proxy(ws) == "socks5h://socks:3"
    monkeypatch.setenv("socks_proxy", "socks4://socks:3")
    assert get_proxy(wss) == "socks4://socks:3"
    monkeypatch.setenv("wss_proxy", "http://w:4")
    assert get_proxy(wss) == "http://w:4" and get_proxy(ws) == "socks4://socks:3"
    monkeypatch.setenv("no_proxy", "example.com")
    assert get_proxy(ws) is None and get_proxy(wss) is None


def test_get_proxy_reads_no_settings_without_proxy_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    read: list[bool] = []
    getproxies = urllib.request.getproxies

    def recording() -> dict[str, str]:
        read.append(True)
        return getproxies()

    monkeypatch.setattr(urllib.request, "getproxies", recording)
    ws = parse_uri("ws://example.com/")
    monkeypatch.setenv("NOT_A_PROXY_SETTING", "x")
    monkeypatch.setenv("PROXY", "http://h:1")  # not a proxy variable either
    assert get_proxy(ws) is None
    assert read == []  # the environment has no proxy variable: urllib isn't asked
    monkeypatch.setenv("HTTP_PROXY", "http://h:1")  # upper case counts
    assert get_proxy(ws) == "http://h:1"
    assert read == [True]
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.setenv("Ws_Proxy", "http://w:2")
    assert get_proxy(ws) == "http://w:2"
    assert read == [True, True]


def test_prepare_connect_request() -> None:
    request = prepare_connect_request(
        Proxy("http", "proxy", 8080, "user", "pass"), parse_uri("wss://[::1]/chat"), "agent/1"
    )
    token = base64.b64encode(b"user:pass").decode()
    assert request == (
        b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]\r\nUser-Agent: agent/1\r\n"
        b"Proxy-Authorization: Basic " + token.encode() + b"\r\n\r\n"
    )
    request = prepare_connect_request(Proxy("http", "p", 80), parse_uri("ws://h:81/"), None)
    assert request == b"CONNECT h:81 HTTP/1.1\r\nHost: h:81\r\n\r\n"


def test_parse_proxy_response() -> None:
    assert parse_proxy_response(b"HTTP/1.1 200 OK\r\n") is None
    response = parse_proxy_response(b"HTTP/1.0 200 Connection established\r\n\r\n")
    assert response is not None and response.status_code == 200
    response = parse_proxy_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert response is not None and response.headers["Content-Length"] == "0"
    with pytest.raises(InvalidProxyStatus, match="proxy rejected connection: HTTP 407") as err:
        parse_proxy_response(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    assert err.value.response.status_code == 407
    with pytest.raises(InvalidProxyMessage, match="valid HTTP response") as bad:
        parse_proxy_response(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert bad.value.__cause__ is not None
    with pytest.raises(InvalidProxyMessage, match="valid HTTP response"):
        parse_proxy_response(b"HTTP/1.1 200 OK\r\n", eof=True)
    with pytest.raises(InvalidProxyMessage, match="valid HTTP response"):
        parse_proxy_response(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200)
    with pytest.raises(InvalidProxyMessage, match="data after"):
        parse_proxy_response(b"HTTP/1.1 200 OK\r\n\r\n\x81\x00")
    assert issubclass(InvalidProxyMessage, ProxyError)


# Proxies run by the tests.


class Proxies:
    """What the proxies saw."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.tunnels = 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:  # pragma: no cover - depends on which side closes first
        pass
    finally:
        writer.close()


async def _tunnel(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
) -> None:
    upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


@asynccontextmanager
async def http_proxy(
    seen: Proxies,
    answer: Callable[[bytes], bytes | None] = lambda request: None,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[str]:
    """An HTTP proxy that opens a tunnel for CONNECT, or sends ``answer(request)`` instead
    and closes, when that isn't ``None``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        seen.requests.append(request)
        refusal = answer(request)
        if refusal is not None:
            writer.write(refusal)
            await writer.drain()
            writer.close()
            return
        target = request.split(b" ")[1].decode()
        host, _, port = target.rpartition(":")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        seen.tunnels += 1
        await _tunnel(reader, writer, host.strip("[]"), int(port))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"


@asynccontextmanager
async def socks5_proxy(seen: Proxies, credentials: tuple[bytes, bytes]) -> AsyncIterator[str]:
    """A SOCKS5 proxy (RFC 1928) with user/password authentication (RFC 1929)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        assert version == 5 and 2 in methods
        writer.write(b"\x05\x02")
        _, ulen = await reader.readexactly(2)
        user = await reader.readexactly(ulen)
        plen = (await reader.readexactly(1))[0]
        password = await reader.readexactly(plen)
        if (user, password) != credentials:
            writer.write(b"\x01\x01")
            writer.close()
            return
        writer.write(b"\x01\x00")
        _, command, _, atyp = await reader.readexactly(4)
        assert command == 1 and atyp == 3  # CONNECT to a domain name: the proxy resolves it
        host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        port = int.from_bytes(await reader.readexactly(2), "big")
        seen.requests.append(f"{host}:{port}".encode())
        writer.write(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + b"\x00\x00")
        seen.tunnels += 1
        await _tunnel(reader, writer, host, port)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"socks5h://{credentials[0].decode()}:{credentials[1].decode()}@127.0.0.1:{port}"


async def test_http_proxy() -> None:
    seen = Proxies()
    async with serve(echo, "127.0.0.1", 0) as server, http_proxy(seen) as proxy:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://localhost:{port}/", proxy=proxy) as websocket:
            await websocket.send("through the tunnel")
            assert await websocket.recv() == "through the tunnel"
    assert seen.tunnels == 1
    assert seen.requests[0].startswith(f"CONNECT localhost:{port} HTTP/1.1\r\n".encode())
    assert b"User-Agent: Python/" in seen.requests[0]


async def test_http_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = Proxies()
    async with serve(echo, "127.0.0.1", 0) as server, http_proxy(seen) as proxy:
        monkeypatch.setenv("http_proxy", proxy)
        async with connect(uri_of(server)) as websocket:
            await websocket.send(b"\x00")
            assert await websocket.recv() == b"\x00"
        assert seen.tunnels == 1
        async with connect(uri_of(server), proxy=None):  # proxy=None: direct
            pass
        assert seen.tunnels == 1


async def test_https_proxy_with_credentials_to_a_wss_server(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    seen = Proxies()
    async with (
        serve(echo, "127.0.0.1", 0, ssl=server_context) as server,
        http_proxy(seen, tls=server_context) as proxy,
    ):
        port = server.sockets[0].getsockname()[1]
        proxy = proxy.replace("https://", "https://user:secret@")
        async with connect(
            f"wss://localhost:{port}/",
            proxy=proxy,
            ssl=client_context,
            proxy_ssl=client_context,
            proxy_server_hostname="localhost",
        ) as websocket:
            await websocket.send("tls in tls")
            assert await websocket.recv() == "tls in tls"
            transport = websocket.transport
            assert transport is not None and transport.get_extra_info("ssl_object") is not None
    token = base64.b64encode(b"user:secret")
    assert b"Proxy-Authorization: Basic " + token in seen.requests[0]


async def test_wss_through_http_proxy_checks_the_server_certificate(
    server_context: ssl.SSLContext,
) -> None:
    seen = Proxies()
    async with (
        serve(echo, "127.0.0.1", 0, ssl=server_context) as server,
        http_proxy(seen) as proxy,
    ):
        port = server.sockets[0].getsockname()[1]
        # ssl=True (the default for wss://): the system's CAs, which don't know the test's.
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(f"wss://localhost:{port}/", proxy=proxy, local_addr=("127.0.0.1", 0))
    assert seen.tunnels == 1


async def test_http_proxy_refuses() -> None:
    seen = Proxies()

    def refuse(request: bytes) -> bytes:
        return b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"

    async with http_proxy(seen, refuse) as proxy:
        with pytest.raises(InvalidProxyStatus) as raised:
            await connect("ws://example.invalid/", proxy=proxy)
    assert raised.value.response.status_code == 403


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 200", b"nonsense\r\n\r\n"])
async def test_http_proxy_sends_garbage_or_closes(answer: bytes) -> None:
    async with http_proxy(Proxies(), lambda request: answer) as proxy:
        with pytest.raises(InvalidProxyMessage):
            await connect("ws://example.invalid/", proxy=proxy)


async def test_http_proxy_unreachable() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(OSError):
        await connect("ws://example.invalid/", proxy=f"http://127.0.0.1:{port}")


async def test_proxy_arguments() -> None:
    with pytest.raises(InvalidProxy):
        await connect("ws://example.invalid/", proxy="ftp://proxy")
    with pytest.raises(ValueError, match="proxy_ssl=None is incompatible"):
        await connect("ws://example.invalid/", proxy="https://proxy", proxy_ssl=None)
    with pytest.raises(ValueError, match="proxy_ssl argument is incompatible"):
        await connect("ws://example.invalid/", proxy="http://proxy", proxy_ssl=True)
    with pytest.raises(ValueError, match="ssl=None is incompatible with a wss"):
        await connect("wss://example.invalid/", ssl=None)


async def test_proxy_ignored_for_unix_sockets_and_given_sockets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")  # would fail if it were used
    async with serve(echo, "127.0.0.1", 0) as server:
        sock = socket.create_connection(server.sockets[0].getsockname()[:2])
        async with connect(uri_of(server), sock=sock) as websocket:
            await websocket.send("direct")
            assert await websocket.recv() == "direct"
    path = str(tmp_path / "ws.sock")
    async with unix_serve(echo, path), unix_connect(path, proxy=True) as websocket:
        await websocket.send("unix")
        assert await websocket.recv() == "unix"


async def test_socks5_proxy() -> None:
    pytest.importorskip("python_socks")
    seen = Proxies()
    async with (
        serve(echo, "127.0.0.1", 0) as server,
        socks5_proxy(seen, (b"user", b"pass")) as proxy,
    ):
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://localhost:{port}/", proxy=proxy) as websocket:
            await websocket.send("socks")
            assert await websocket.recv() == "socks"
        assert seen.requests == [f"localhost:{port}".encode()]
        with pytest.raises(ProxyError, match="SOCKS") as raised:
            await connect(f"ws://localhost:{port}/", proxy=proxy.replace("pass", "nope"))
        assert raised.value.__cause__ is not None


async def test_socks5_proxy_over_tls(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    pytest.importorskip("python_socks")
    seen = Proxies()
    async with (
        serve(echo, "127.0.0.1", 0, ssl=server_context) as server,
        socks5_proxy(seen, (b"u", b"p")) as proxy,
    ):
        port = server.sockets[0].getsockname()[1]
        async with connect(
            f"wss://localhost:{port}/", proxy=proxy, ssl=client_context, local_addr=None
        ) as websocket:
            await websocket.send("socks+tls")
            assert await websocket.recv() == "socks+tls"


async def test_socks_proxy_unreachable() -> None:
    pytest.importorskip("python_socks")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(OSError):
        await connect("ws://example.invalid/", proxy=f"socks5://127.0.0.1:{port}")


async def test_socks_proxy_needs_python_socks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)
    with pytest.raises(ImportError, match="requires python-socks"):
        await connect("ws://example.invalid/", proxy="socks5h://127.0.0.1:1080")
