"""wsrs.uvicorn in process: the protocol on a fake transport, websockets' Sans-I/O client.

What a real server cannot show deterministically: flow control, timers, shutdown at each
point of the exchange, a request cut short.
"""

from __future__ import annotations

import asyncio

import pytest
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode
from websockets.http11 import Response

from wsrs.uvicorn import WebSocketProtocol

from .utils import Harness, Message, Receive, Scope, Send, make_config


async def accept_then_wait(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.Event().wait()


async def accept_then_close(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1000})


async def test_loads_the_config() -> None:
    config = make_config(accept_then_wait)
    assert not config.loaded
    WebSocketProtocol(config, ServerState(), {})
    assert config.loaded


async def test_reading_pauses_while_a_message_waits_unread() -> None:
    received: list[Message] = []
    go = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        received.append(await receive())
        received.append(await receive())
        await asyncio.Event().wait()

    harness = Harness(app)
    await harness.open()
    assert harness.transport.reading
    harness.events()  # the 101
    harness.client.send_text(b"one")
    harness.client.send_binary(b"two")
    harness.flush()  # both in one read: both are queued
    assert not harness.transport.reading
    go.set()
    await harness.settle()
    assert received == [
        {"type": "websocket.receive", "text": "one"},
        {"type": "websocket.receive", "bytes": b"two"},
    ]
    assert harness.transport.reading
    assert harness.transport.paused_count == 1
    harness.lose()


async def test_send_waits_while_the_write_buffer_is_full() -> None:
    sent = asyncio.Event()
    go = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        await send({"type": "websocket.send", "text": "x"})
        sent.set()
        await asyncio.Event().wait()

    harness = Harness(app)
    await harness.open()
    harness.events()  # the 101
    harness.protocol.pause_writing()
    go.set()
    await harness.settle()
    assert not sent.is_set()
    assert harness.events() == []
    harness.protocol.resume_writing()
    await harness.settle()
    assert sent.is_set()
    (frame,) = harness.events()
    assert isinstance(frame, Frame) and frame.data == b"x"
    harness.lose()


async def test_connection_lost_while_send_waits() -> None:
    errors: list[BaseException] = []
    go = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        try:
            await send({"type": "websocket.send", "bytes": b"x"})
        except OSError as exc:
            errors.append(exc)

    harness = Harness(app)
    await harness.open()
    harness.protocol.pause_writing()
    go.set()
    await harness.settle()
    assert errors == []
    harness.lose()
    await harness.app_done()
    assert len(errors) == 1
    assert harness.server_state.connections == set()


async def test_after_the_client_closed() -> None:
    events: list[Message] = []
    errors: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        events.append(await receive())
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:
            errors.append(type(exc).__name__)
        await send({"type": "websocket.close", "code": 1000})  # nothing left to close
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except RuntimeError as exc:
            errors.append(str(exc))

    harness = Harness(app)
    await harness.open()
    harness.events()
    harness.client.send_close(4001, "done")
    harness.flush()  # TCP stays up: the server closes it, connection_lost() comes later
    await harness.app_done()
    assert events == [{"type": "websocket.disconnect", "code": 4001, "reason": "done"}]
    assert errors == [
        "ClientDisconnected",
        "Unexpected ASGI message 'websocket.send', after sending 'websocket.close'.",
    ]
    (close,) = harness.events()
    assert close.opcode is Opcode.CLOSE  # the echo, once
    assert harness.transport.closed


async def test_close_timer_and_giving_up_on_the_close_frame() -> None:
    harness = Harness(accept_then_close)
    harness.protocol.close_timeout = 0.01
    assert harness.protocol.close_timer is None  # no connection yet
    await harness.open()
    await harness.app_done()
    assert harness.protocol.close_timer is not None
    assert not harness.transport.closed  # waiting for the client's close frame
    await asyncio.sleep(0.05)
    assert harness.transport.closed
    assert not harness.transport.aborted  # aborted only `timeout` seconds later
    assert harness.protocol.close_timer is None
    harness.lose()


async def test_close_timer_after_the_close_frame() -> None:
    harness = Harness(accept_then_close)
    await harness.open()
    await harness.app_done()
    harness.events()  # the client receives the close frame and answers
    harness.flush()
    assert harness.transport.closed
    assert harness.protocol.close_timer is None
    harness.lose()


async def test_shutdown_while_waiting_for_the_close_frame() -> None:
    harness = Harness(accept_then_close)
    await harness.open()
    await harness.app_done()
    assert not harness.transport.closed
    harness.protocol.shutdown()
    assert harness.transport.closed
    assert harness.protocol.close_timer is None
    (_, close) = harness.events()
    assert close.opcode is Opcode.CLOSE and close.data[:2] == b"\x03\xe8"  # no 1012
    harness.protocol.shutdown()  # closing already: nothing more
    harness.lose()


async def test_shutdown_during_a_gathered_response_answers_500() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 400, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})
        await asyncio.Event().wait()

    harness = Harness(app)
    await harness.open()
    harness.protocol.shutdown()
    (response,) = harness.events()
    assert isinstance(response, Response)
    assert response.status_code == 500
    assert harness.transport.eof_written  # half-closed: the client reads the response


async def test_shutdown_during_a_streamed_response_closes() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        start = {
            "type": "websocket.http.response.start",
            "status": 400,
            "headers": [(b"content-length", b"2")],
        }
        await send(start)
        await send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})
        await asyncio.Event().wait()

    harness = Harness(app)
    await harness.open()
    harness.protocol.shutdown()
    assert harness.transport.closed
    assert harness.transport.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert harness.transport.data.endswith(b"\r\n\r\nx")


async def test_request_cut_short() -> None:
    called = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal called
        called = True

    harness = Harness(app)
    await harness.open(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    harness.protocol.eof_received()
    await harness.app_done()
    assert harness.transport.closed
    assert harness.transport.data == b""
    assert not called


async def test_connection_lost_before_accept() -> None:
    events: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        events.append(await receive())
        events.append(await receive())
        await send({"type": "websocket.accept"})  # ClientDisconnected, not caught
        events.append({"type": "not reached"})

    harness = Harness(app)
    await harness.open()
    harness.lose()
    await harness.app_done()
    assert events == [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1006},
    ]
    assert harness.transport.data == b""


async def test_invalid_close_code_from_the_app(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1005})

    harness = Harness(app)
    await harness.open()
    await harness.app_done()
    assert "Exception in ASGI application\n" in [r.getMessage() for r in caplog.records]
    (response,) = harness.events()
    assert isinstance(response, Response) and response.status_code == 101
    assert harness.transport.closed  # dropped without a close frame
    harness.lose()


@pytest.mark.parametrize("secure", [False, True])
async def test_scheme_and_addresses(secure: bool) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.close"})

    harness = Harness(app, path="/p?q")
    harness.transport = type(harness.transport)(secure=secure)
    await harness.open()
    await harness.app_done()
    (scope,) = scopes
    assert scope["scheme"] == ("wss" if secure else "ws")
    assert scope["server"] == ("127.0.0.1", 8000)
    assert scope["client"] == ("127.0.0.1", 50000)
    assert scope["state"] == {"key": "value"}
    assert scope["state"] is not harness.protocol.app_state
