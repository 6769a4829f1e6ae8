"""Helpers of the wsrs.uvicorn tests: a real uvicorn server, and an in-process harness."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from wsrs.uvicorn import WebSocketProtocol


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[Any]]


def make_config(app: App, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration with wsrs' protocol and no logging setup of its own (so
    pytest's caplog sees ``uvicorn.error``)."""
    options.setdefault("lifespan", "off")
    options.setdefault("log_level", "info")
    return uvicorn.Config(app, ws="wsrs.uvicorn:WebSocketProtocol", log_config=None, **options)


@contextlib.asynccontextmanager
async def run_server(app: App, **options: Any) -> AsyncIterator[tuple[uvicorn.Server, str]]:
    """Run ``app`` in a uvicorn server on a free port; yield it and its ``ws://`` URI.

    On exit the server shuts down as on SIGTERM (``should_exit``), which closes open
    WebSocket connections with 1012.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(make_config(app, **options))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        yield server, f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class FakeTransport(asyncio.Transport):
    """A transport that keeps what is written, for the in-process harness."""

    def __init__(self, *, secure: bool = False) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.reading = True
        self.paused_count = 0
        self._extra: dict[str, Any] = {
            "sockname": ("127.0.0.1", 8000),
            "peername": ("127.0.0.1", 50000),
            "sslcontext": object() if secure else None,
        }

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.reading = False
        self.paused_count += 1

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        raise AssertionError("uvicorn owns the transport: its limits must stay as they are")

    def get_write_buffer_size(self) -> int:
        return 0


class Harness:
    """The protocol on a :class:`FakeTransport`, websockets' Sans-I/O client as the peer.

    Nothing runs by itself: the test feeds the client's bytes (:meth:`flush`), lets the
    application run (:meth:`settle`) and reads what the server wrote (:meth:`events`).
    """

    def __init__(self, app: App, path: str = "/", **options: Any) -> None:
        self.config = make_config(app, **options)
        self.config.load()
        self.server_state = ServerState()
        self.protocol = WebSocketProtocol(self.config, self.server_state, {"key": "value"})
        self.transport = FakeTransport()
        self.client = ClientProtocol(parse_uri("ws://127.0.0.1" + path))
        self._read = 0

    async def open(self, request: bytes | None = None) -> None:
        """Make the connection and send the opening handshake request."""
        self.protocol.connection_made(self.transport)
        if request is None:
            self.client.send_request(self.client.connect())
            self.flush()
        else:
            self.protocol.data_received(request)
        await self.settle()

    def flush(self) -> None:
        """Deliver what the client wrote to the server."""
        data = b"".join(self.client.data_to_send())
        if data:
            self.protocol.data_received(data)

    def events(self) -> list[Any]:
        """Feed what the server wrote to the client; return the client's events."""
        data = bytes(self.transport.data[self._read :])
        self._read = len(self.transport.data)
        self.client.receive_data(data)
        return self.client.events_received()

    def lose(self) -> None:
        """The TCP connection is lost."""
        self.protocol.connection_lost(None)

    async def settle(self) -> None:
        """Let the application task run until it waits for something."""
        for _ in range(10):
            await asyncio.sleep(0)

    async def app_done(self) -> None:
        """Wait for the application task to return."""
        await asyncio.gather(*self.server_state.tasks)
