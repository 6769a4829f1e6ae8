"""Connecting onto the native transport (wsrs.asyncio.connect): which connections get a
NativeTransport without a take-over, the options handled, and the errors, as asyncio's."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest

import wsrs
from wsrs.asyncio import base, transport
from wsrs.asyncio.client import connect
from wsrs.asyncio.connect import _numeric, _writable, create_connection
from wsrs.asyncio.transport import NativeTransport

from .test_accept import Accepted, start
from .utils import run_server


@pytest.fixture
def no_take_over(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record the take-overs (there should be none where the native transport connects)."""
    calls: list[object] = []
    original = transport.take_over

    def take_over(*args: Any) -> Any:
        native = original(*args)
        if native is not None:
            calls.append(args[1])
        return native

    monkeypatch.setattr(base, "take_over", take_over)
    return calls


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A raw server on 127.0.0.1 that records what it receives."""
    server = await start()
    yield server.port
    server.server.close()
    for protocol in server.protocols:
        assert protocol.transport is not None
        protocol.transport.close()
    await server.server.wait_closed()


async def check(
    transport_kind: str, pair: tuple[asyncio.BaseTransport, asyncio.BaseProtocol]
) -> Accepted:
    transport, protocol = pair
    assert isinstance(protocol, Accepted)
    assert protocol.transport is transport
    assert isinstance(transport, NativeTransport) is (transport_kind == "native")
    return protocol


async def test_tcp(transport_kind: str, port: int, no_take_over: list[object]) -> None:
    pair = await create_connection(Accepted, None, host="127.0.0.1", port=port)
    protocol = await check(transport_kind, pair)
    assert pair[0].get_extra_info("peername") == ("127.0.0.1", port)
    assert pair[0].get_extra_info("sockname")[0] == "127.0.0.1"
    sock = pair[0].get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert no_take_over == []
    pair[0].close()
    await protocol.lost


async def test_local_addr(transport_kind: str, port: int) -> None:
    pair = await create_connection(
        Accepted, None, host="127.0.0.1", port=port, local_addr=("127.0.0.2", 0)
    )
    protocol = await check(transport_kind, pair)
    assert pair[0].get_extra_info("sockname")[0] == "127.0.0.2"
    pair[0].close()
    await protocol.lost


async def test_no_matching_local_address(native_only: None, port: int) -> None:
    with pytest.raises(OSError, match="no matching local address"):
        await create_connection(Accepted, None, host="127.0.0.1", port=port, local_addr=("::1", 0))


async def test_refused(transport_kind: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await create_connection(Accepted, None, host="127.0.0.1", port=free)


async def test_every_address_refused(native_only: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    loop = asyncio.get_running_loop()
    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, free))
        for address in ("127.0.0.1", "127.0.0.2")
    ]

    async def getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
        return infos

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    with pytest.raises(OSError, match="Multiple exceptions: .*127.0.0.1.*127.0.0.2"):
        await create_connection(Accepted, None, host="somewhere", port=free)


async def test_sock(transport_kind: str, port: int, no_take_over: list[object]) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    pair = await create_connection(Accepted, None, sock=sock)
    protocol = await check(transport_kind, pair)
    assert no_take_over == []
    pair[0].close()
    await protocol.lost


async def test_sock_and_host(native_only: None) -> None:
    with socket.socket() as sock:
        with pytest.raises(ValueError, match="can not be specified at the same time"):
            await create_connection(Accepted, None, sock=sock, host="127.0.0.1")


async def test_factory_error_closes_the_socket(native_only: None, port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))

    def factory() -> Accepted:
        raise RuntimeError("no protocol")

    with pytest.raises(RuntimeError, match="no protocol"):
        await create_connection(factory, None, sock=sock)
    assert sock.fileno() == -1


async def test_other_options_go_to_asyncio(
    transport_kind: str, port: int, no_take_over: list[object]
) -> None:
    """An option not handled here: asyncio connects, the take-over happens (for wsrs'
    protocols) as before."""
    pair = await create_connection(
        Accepted, "native", host="127.0.0.1", port=port, happy_eyeballs_delay=0.25
    )
    assert not isinstance(pair[0], NativeTransport)
    assert isinstance(pair[1], Accepted)
    pair[0].close()
    await pair[1].lost
    async with run_server() as uri:
        async with connect(uri, happy_eyeballs_delay=0.25) as ws:
            assert isinstance(ws.transport, NativeTransport) is (transport_kind == "native")
    assert len(no_take_over) == (transport_kind == "native")


async def test_unix(transport_kind: str, tmp_path: Any, no_take_over: list[object]) -> None:
    path = str(tmp_path / "s.sock")
    server = await start(path, unix=True)
    pair = await create_connection(Accepted, None, unix=True, path=path)
    protocol = await check(transport_kind, pair)
    assert pair[0].get_extra_info("peername") == path
    pair[0].close()
    await protocol.lost
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    pair = await create_connection(Accepted, None, unix=True, sock=sock)
    protocol = await check(transport_kind, pair)
    pair[0].close()
    await protocol.lost
    assert no_take_over == []
    server.server.close()
    await server.server.wait_closed()


async def test_tls_keeps_asyncio(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    async with run_server(ssl=server_context) as uri:
        uri = uri.replace("ws://", "wss://").replace("127.0.0.1", "localhost")
        async with connect(uri, ssl=client_context) as ws:
            assert not isinstance(ws.transport, NativeTransport)


async def test_both_front_ends(transport_kind: str, no_take_over: list[object]) -> None:
    async with run_server() as uri:
        async with connect(uri) as ws:
            assert isinstance(ws.transport, NativeTransport) is (transport_kind == "native")
        async with wsrs.connect(uri) as legacy:
            assert isinstance(legacy.transport, NativeTransport) is (transport_kind == "native")
    assert no_take_over == []


def test_numeric_addresses_are_not_resolved() -> None:
    """An IP address and a port number need no getaddrinfo (a thread round trip)."""
    tcp = socket.IPPROTO_TCP
    assert _numeric("127.0.0.1", 80, 0, 0) == [
        (socket.AF_INET, socket.SOCK_STREAM, tcp, "", ("127.0.0.1", 80))
    ]
    assert _numeric("::1", 80, socket.AF_INET6, 0) == [
        (socket.AF_INET6, socket.SOCK_STREAM, tcp, "", ("::1", 80, 0, 0))
    ]
    assert _numeric("localhost", 80, 0, 0) == []
    assert _numeric(None, 80, 0, 0) == []
    assert _numeric("127.0.0.1", "http", 0, 0) == []
    assert _numeric("127.0.0.1", 80, socket.AF_INET6, 0) == []


async def test_a_second_writable_event_changes_nothing() -> None:
    done = asyncio.get_running_loop().create_future()
    _writable(done)
    _writable(done)  # before the connecting task ran: already done
    assert done.result() is None
