"""Accepting connections onto the native transport (wsrs.asyncio.accept): the server
semantics asyncio.Server has, on both transports, and the accept loop's edge cases."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import wsrs
from wsrs.asyncio import accept
from wsrs.asyncio.accept import NativeServer, create_server
from wsrs.asyncio.client import connect as ws_connect
from wsrs.asyncio.server import ServerConnection, serve
from wsrs.asyncio.transport import NativeTransport
from wsrs.exceptions import ConnectionClosedError

from .test_transport import Recorder
from .utils import MS, eventually


class Accepted(Recorder):
    """A :class:`Recorder` that keeps its transport."""

    transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


class Server:
    """A server made by :func:`create_server`, and the :class:`Accepted` protocols of its
    connections."""

    def __init__(self, server: asyncio.Server | NativeServer, protocols: list[Accepted]) -> None:
        self.server = server
        self.protocols = protocols

    @property
    def port(self) -> int:
        port: int = self.server.sockets[0].getsockname()[1]
        return port


async def start(*args: Any, kind: Any = None, **kwargs: Any) -> Server:
    """Start a server on 127.0.0.1 (unless ``args`` say where) with a recording factory."""
    protocols: list[Accepted] = []

    def factory() -> Accepted:
        protocols.append(Accepted())
        return protocols[-1]

    server = await create_server(factory, kind, *(args or ("127.0.0.1", 0)), **kwargs)
    return Server(server, protocols)


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def connect(clients: list[socket.socket], port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    clients.append(sock)
    return sock


@pytest.fixture
async def handled() -> AsyncIterator[list[dict[str, Any]]]:
    """What the loop's exception handler receives."""
    contexts: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: contexts.append(context))
    yield contexts
    loop.set_exception_handler(None)


async def test_the_transport_chooses_the_server(transport_kind: str) -> None:
    server = await start()
    assert isinstance(server.server, NativeServer) is (transport_kind == "native")
    server.server.close()
    await server.server.wait_closed()


async def test_tls_keeps_asyncio_server(server_context: ssl.SSLContext) -> None:
    server = await start(kind="native", ssl=server_context)
    assert isinstance(server.server, asyncio.Server)
    server.server.close()
    await server.server.wait_closed()


async def test_close_semantics_as_asyncio(
    transport_kind: str, clients: list[socket.socket]
) -> None:
    """On both transports: close() stops listening at once, connections go on, and
    wait_closed() returns once the last one is lost."""
    server = await start()
    assert server.server.is_serving()
    assert server.server.get_loop() is asyncio.get_running_loop()
    port = server.port
    sock = connect(clients, port)
    await eventually(lambda: len(server.protocols) == 1)
    protocol = server.protocols[0]
    early = asyncio.ensure_future(server.server.wait_closed())
    await asyncio.sleep(0)
    server.server.close()
    server.server.close()  # a second close does nothing
    assert not server.server.is_serving()
    assert server.server.sockets == ()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port)).close()
    late = asyncio.ensure_future(server.server.wait_closed())
    await asyncio.sleep(20 * MS)
    assert not early.done()  # the connection is still open
    # Python 3.11's asyncio.Server.wait_closed() returns at once once closed (fixed in 3.12);
    # the native server has the fixed behaviour.
    assert late.done() is (transport_kind == "asyncio" and sys.version_info < (3, 12))
    sock.sendall(b"still")
    await eventually(lambda: protocol.data == b"still")
    sock.close()
    assert await protocol.lost is None
    await asyncio.wait_for(asyncio.gather(early, late), 1)
    await server.server.wait_closed()  # once closed, at once


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
async def test_addresses(transport_kind: str, host: str, clients: list[socket.socket]) -> None:
    """The local address is the listening one, or the connection's behind a wildcard."""
    server = await start(host, 0)
    sock = connect(clients, server.port)
    await eventually(lambda: len(server.protocols) == 1)
    transport = server.protocols[0].transport
    assert transport is not None
    assert transport.get_extra_info("sockname") == sock.getpeername()
    assert transport.get_extra_info("peername") == sock.getsockname()
    server.server.close()
    sock.close()
    await server.server.wait_closed()


async def test_wait_closed_cancelled(transport_kind: str) -> None:
    server = await start()
    waiting = asyncio.ensure_future(server.server.wait_closed())
    await asyncio.sleep(0)
    waiting.cancel()
    server.server.close()
    await server.server.wait_closed()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_start_serving_later(transport_kind: str, clients: list[socket.socket]) -> None:
    server = await start(start_serving=False)
    assert not server.server.is_serving()
    await server.server.start_serving()
    await server.server.start_serving()  # nothing more
    assert server.server.is_serving()
    connect(clients, server.port)
    await eventually(lambda: len(server.protocols) == 1)
    server.server.close()
    clients[0].close()
    await server.server.wait_closed()


async def test_serve_forever(transport_kind: str) -> None:
    server = await start(start_serving=False)
    forever = asyncio.ensure_future(server.server.serve_forever())
    await asyncio.sleep(0)
    assert server.server.is_serving()
    with pytest.raises(RuntimeError, match="already being awaited"):
        await server.server.serve_forever()
    forever.cancel()
    with pytest.raises(asyncio.CancelledError):
        await forever
    assert not server.server.is_serving()
    with pytest.raises(RuntimeError, match="is closed"):
        await server.server.serve_forever()


async def test_close_ends_serve_forever(transport_kind: str) -> None:
    server = await start()
    forever = asyncio.ensure_future(server.server.serve_forever())
    await asyncio.sleep(0)
    server.server.close()
    with pytest.raises(asyncio.CancelledError):
        await forever
    await server.server.wait_closed()


async def test_unix(transport_kind: str, tmp_path: Any) -> None:
    path = str(tmp_path / "s.sock")
    server = await start(path, unix=True)
    assert server.server.sockets[0].family == socket.AF_UNIX
    reader, writer = await asyncio.open_unix_connection(path)
    await eventually(lambda: len(server.protocols) == 1)
    transport = server.protocols[0].transport
    assert transport is not None and transport.get_extra_info("sockname") == path
    writer.write(b"unix")
    await eventually(lambda: server.protocols[0].data == b"unix")
    writer.close()
    await server.protocols[0].lost
    server.server.close()
    await server.server.wait_closed()


async def test_many_connections_in_one_event(
    native_only: None, clients: list[socket.socket]
) -> None:
    """Up to ``backlog`` connections are accepted per readiness event; the rest at the next."""
    server = await start(backlog=3, start_serving=False)
    assert isinstance(server.server, NativeServer)
    server.server._start()
    for _ in range(4):  # the kernel queues backlog + 1 connections
        connect(clients, server.port)
    listening = server.server._listening
    assert listening is not None
    server.server._accept_ready(listening[0], None)
    assert len(server.protocols) == 3
    await eventually(lambda: len(server.protocols) == 4)
    assert all(isinstance(p.transport, NativeTransport) for p in server.protocols)
    server.server.close()
    for sock in clients:
        sock.close()
    await server.server.wait_closed()


def failing_accept(monkeypatch: pytest.MonkeyPatch, *errors: BaseException) -> Callable[[], int]:
    """Make the next accepts (``socket._accept``, which ``socket.accept`` calls too) raise
    ``errors``; return how many did."""
    original = socket.socket._accept  # type: ignore[attr-defined]
    raised: list[BaseException] = list(errors)

    def accept_(self: socket.socket) -> tuple[int, Any]:
        if raised:
            raise raised.pop(0)
        result: tuple[int, Any] = original(self)
        return result

    monkeypatch.setattr(socket.socket, "_accept", accept_)
    return lambda: len(errors) - len(raised)


async def test_out_of_descriptors_pauses_accepting(
    native_only: None,
    monkeypatch: pytest.MonkeyPatch,
    handled: list[dict[str, Any]],
    clients: list[socket.socket],
) -> None:
    monkeypatch.setattr(accept, "ACCEPT_RETRY_DELAY", 50 * MS)
    count = failing_accept(monkeypatch, OSError(errno.EMFILE, "Too many open files"))
    server = await start()
    connect(clients, server.port)
    await eventually(lambda: count() == 1)
    assert handled[0]["message"] == "socket.accept() out of system resource"
    assert handled[0]["exception"].errno == errno.EMFILE
    assert server.protocols == []
    await eventually(lambda: len(server.protocols) == 1)  # accepted after the delay
    server.server.close()
    clients[0].close()
    await server.server.wait_closed()


async def test_close_cancels_the_retry(
    native_only: None,
    monkeypatch: pytest.MonkeyPatch,
    handled: list[dict[str, Any]],
    clients: list[socket.socket],
) -> None:
    count = failing_accept(monkeypatch, OSError(errno.ENFILE, "Too many open files in system"))
    server = await start()
    connect(clients, server.port)
    await eventually(lambda: count() == 1)
    assert isinstance(server.server, NativeServer)
    assert server.server._retries
    server.server.close()
    assert not server.server._retries
    await server.server.wait_closed()


async def test_connection_gone_before_accept(
    native_only: None, monkeypatch: pytest.MonkeyPatch, clients: list[socket.socket]
) -> None:
    count = failing_accept(monkeypatch, ConnectionAbortedError())
    server = await start()
    connect(clients, server.port)
    await eventually(lambda: count() == 1)
    await eventually(lambda: len(server.protocols) == 1)  # at the next readiness event
    server.server.close()
    clients[0].close()
    await server.server.wait_closed()


async def test_other_accept_errors_are_raised(
    native_only: None, monkeypatch: pytest.MonkeyPatch, handled: list[dict[str, Any]]
) -> None:
    server = await start(start_serving=False)
    assert isinstance(server.server, NativeServer)
    failing_accept(monkeypatch, OSError(errno.EINVAL, "Invalid argument"))
    listening = server.server._listening
    assert listening is not None
    with pytest.raises(OSError, match="Invalid argument"):
        server.server._accept_ready(listening[0], None)
    server.server.close()
    await server.server.wait_closed()


async def test_factory_error(
    native_only: None, handled: list[dict[str, Any]], clients: list[socket.socket]
) -> None:
    def factory() -> Recorder:
        raise RuntimeError("no protocol")

    server = await create_server(factory, None, "127.0.0.1", 0)
    sock = connect(clients, server.sockets[0].getsockname()[1])
    await eventually(lambda: bool(handled))
    assert handled[0]["message"] == "Error on transport creation for incoming connection"
    assert str(handled[0]["exception"]) == "no protocol"
    assert sock.recv(1) == b""  # closed
    server.close()
    await server.wait_closed()


async def test_wsrs_server_on_both_front_ends(transport_kind: str) -> None:
    """The servers of both front ends accept onto the transport the setting chooses."""
    kinds: list[type] = []

    async def handler(ws: Any) -> None:
        kinds.append(type(ws.transport))
        await ws.send("hello")

    async with serve(handler, "127.0.0.1", 0) as server:
        assert isinstance(server.server, NativeServer) is (transport_kind == "native")
        port = server.sockets[0].getsockname()[1]
        async with wsrs.connect(f"ws://127.0.0.1:{port}/") as ws:
            assert await ws.recv() == "hello"
    assert (kinds[0] is NativeTransport) is (transport_kind == "native")

    async def legacy(ws: wsrs.WebSocketServerProtocol, path: str) -> None:
        await ws.send(path)

    async with wsrs.serve(legacy, "127.0.0.1", 0) as legacy_server:
        assert isinstance(legacy_server.server, NativeServer) is (transport_kind == "native")
        port = legacy_server.sockets[0].getsockname()[1]
        async with wsrs.connect(f"ws://127.0.0.1:{port}/path") as ws:
            assert await ws.recv() == "/path"


@pytest.mark.parametrize("method", ["close_clients", "abort_clients"])
async def test_close_and_abort_clients(
    method: str, clients: list[socket.socket], native_only: None
) -> None:
    """As asyncio.Server's (Python 3.13): every open connection's transport is closed, or
    aborted; the server keeps listening."""
    server = await start(kind="native")
    assert isinstance(server.server, NativeServer)
    socks = [connect(clients, server.port) for _ in range(2)]
    await eventually(lambda: len(server.protocols) == 2)
    for sock in socks:
        sock.setblocking(False)
    getattr(server.server, method)()
    for protocol in server.protocols:
        assert await asyncio.wait_for(protocol.lost, 1) is None
    for sock in socks:
        if method == "close_clients":
            assert await asyncio.get_running_loop().sock_recv(sock, 10) == b""
        else:  # an abort may reset the connection
            try:
                assert await asyncio.get_running_loop().sock_recv(sock, 10) == b""
            except ConnectionResetError:
                pass
    assert server.server.is_serving()
    connect(clients, server.port)
    await eventually(lambda: len(server.protocols) == 3)
    server.server.close()
    getattr(server.server, method)()
    await asyncio.wait_for(server.server.wait_closed(), 1)


async def test_close_clients_on_a_wsrs_server_ends_connections_with_1006(
    native_only: None,
) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        native = server.server
        assert isinstance(native, NativeServer)
        port = server.sockets[0].getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
            native.close_clients()
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(client.recv(), 1)
            assert client.close_code == 1006
