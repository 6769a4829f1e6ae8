"""Edge cases of the public API: server as context manager, wrong loops, states."""

from __future__ import annotations

import asyncio

import pytest

import wsrs

from .utils import MS, close_writer, echo, open_raw, read_http_response, run_server, server_uri


async def test_server_object_is_an_async_context_manager() -> None:
    server = await wsrs.serve(echo, "127.0.0.1", 0)
    async with server as entered:
        assert entered is server
        async with wsrs.connect(server_uri(server)) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
    assert server.sockets == []
    await asyncio.wait_for(server.wait_closed(), 2000 * MS)


async def test_serve_with_another_loop_is_refused() -> None:
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="running event loop"):
            await wsrs.serve(echo, "127.0.0.1", 0, loop=other)
        with pytest.raises(ValueError, match="running event loop"):
            await wsrs.connect("ws://127.0.0.1:9/", loop=other)
    finally:
        other.close()


async def test_protocol_with_another_loop_is_refused() -> None:
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="running event loop"):
            wsrs.WebSocketClientProtocol(loop=other)
    finally:
        other.close()
    ws = wsrs.WebSocketClientProtocol(loop=asyncio.get_running_loop())
    assert ws.loop is asyncio.get_running_loop()


async def test_serve_with_the_running_loop_is_accepted() -> None:
    loop = asyncio.get_running_loop()
    async with wsrs.serve(echo, "127.0.0.1", 0, loop=loop) as server:
        async with wsrs.connect(server_uri(server), loop=loop) as ws:
            await ws.send(b"x")
            assert await ws.recv() == b"x"


async def test_several_origin_headers_are_refused() -> None:
    async with run_server(origins=["https://a.example"]) as uri:
        reader, writer = await open_raw(uri)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\nOrigin: https://a.example\r\n"
            b"Origin: https://b.example\r\n\r\n"
        )
        status, _, _ = await read_http_response(reader)
        await close_writer(writer)
    assert status == 400


async def test_api_before_the_handshake() -> None:
    ws = wsrs.WebSocketClientProtocol()
    assert ws.state is wsrs.State.CONNECTING and not ws.open and not ws.closed
    assert ws.close_code is None and ws.local_address is None and ws.remote_address is None
    with pytest.raises(wsrs.InvalidState):
        await ws.recv()
    with pytest.raises(wsrs.InvalidState):
        await ws.send("too early")
    with pytest.raises(wsrs.InvalidState):
        await ws.ping()
    # Closing a connection that never connected finishes at once.
    await asyncio.wait_for(ws.close(), 1000 * MS)
    assert ws.closed and ws.close_code == 1006


async def test_wait_closed_before_close_waits_for_the_close() -> None:
    server = await wsrs.serve(echo, "127.0.0.1", 0)
    waiter = asyncio.create_task(server.wait_closed())
    await asyncio.sleep(20 * MS)
    assert not waiter.done()
    server.close()
    await asyncio.wait_for(waiter, 2000 * MS)
    assert server.sockets == []


async def test_server_object_without_a_listener_closes() -> None:
    # A WebSocketServer that never got its asyncio server (wrap() not called).
    server = wsrs.WebSocketServer()
    assert server.sockets == []
    await asyncio.wait_for(server.wait_closed(), 1000 * MS)
    server.close()
    assert server.closing
    await asyncio.wait_for(server.wait_closed(), 1000 * MS)
