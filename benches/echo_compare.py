"""Side-by-side echo benchmark: wsrs against its peers and a raw TCP ceiling.

Run everything (10 workloads, 6 libraries, 3 repeats, asyncio loop; several minutes)::

    python benches/echo_compare.py
    python benches/echo_compare.py --loop uvloop --json out.json
    python benches/echo_compare.py --quick          # smoke run, tiny counts, < 20 s
    python benches/echo_compare.py --libs wsrs,picows --workloads rt-1KiB,pipe-1KiB

The peers are not dependencies of wsrs: install them with
``pip install -r benches/requirements.txt`` (``make bench-echo`` does). A library that is not
installed is skipped with a note naming the pip package; the benchmark installs nothing.

Libraries, each measured against itself (its client to its own server):

- ``wsrs``; ``wsrs-native``: the same on wsrs' native transport (``WSRS_TRANSPORT=native``,
  socket I/O in Rust), the ``wsrs`` row being on the default transport;
- ``websockets``: its ``websockets.asyncio`` API (``serve``/``connect``);
- ``aiohttp``: ``web.WebSocketResponse`` behind an ``AppRunner``; ``ClientSession.ws_connect``
  (one session per connection);
- ``picows``: its native callback API (``ws_create_server``/``ws_connect`` with a
  ``WSListener``; the server echoes frames from ``on_ws_frame``), with its defaults
  (it uses ``aiofastnet`` transports when that package is installed, as picows does);
- ``picows.websockets``: picows' ``websockets``-compatible layer (picows >= 2.3), skipped with a
  note when the installed picows lacks it;
- ``raw``: an ``asyncio.Protocol`` byte echo, the ceiling: the client writes the N bytes of a
  message and waits for N bytes back, with no framing, masking or handshake.

Workloads (``msg/s`` counts round trips, one message out and the same message back, per second;
``MB/s`` is payload bytes per second in one direction, ``msg/s * size / 1e6``):

- ``rt-32B``, ``rt-1KiB``, ``rt-64KiB``, ``rt-1MiB``: sequential round trips of binary messages;
- ``pipe-1KiB``, ``pipe-1MiB``: pipelined binary messages, at most 100 (resp. 8) in flight;
  one task sends while another receives and checks the echoes;
- ``conc-1KiB``: one client process with 200 connections open at once, each doing 100
  sequential round trips of 1 KiB, all concurrently; ``msg/s`` is the total over connections;
- ``churn-64B``: 200 clients at once (at most 50 of them connecting at a time), each
  connecting, doing 100 round trips of 64 B and closing, with the opening and closing
  handshakes inside the timed part; ``msg/s`` is the total over connections;
- ``deflate-dflt``: 64 KiB of JSON-like text with permessage-deflate as each library enables
  it by default: wsrs level 6, window 15; websockets level 6, window 12, memLevel 5; aiohttp
  level 1 (its client offers deflate only with ``compress=15``, which it is given here;
  messages over 16 KiB are compressed in a thread pool, as aiohttp does);
  picows.websockets level 6, window 15;
- ``deflate-L6``: the same with zlib level 6, window 15, memLevel 8 and no size threshold on
  both sides of every library. aiohttp has no option for its websocket compression level: this
  run installs, with ``aiohttp.set_zlib_backend``, a zlib whose ``Z_BEST_SPEED`` is 6.

``picows`` and ``raw`` have no permessage-deflate and show ``-`` there. Every other workload
explicitly turns compression off on both sides (wsrs, websockets, aiohttp's server and
picows.websockets enable it by default) and every library accepts messages of at least 2 MiB.

Method: one server process per (library, compression setting), started at the beginning;
every measurement is a fresh client process that connects, warms up, times its workload and
prints one JSON line (with ``--quick``, one client process per library runs all its workloads).
Measurements are interleaved: each repeat runs every workload for every library in turn (the
library order alternates between repeats), so machine drift hits every library alike. The
tables give the median over repeats and the ratio of each library to wsrs and to raw. Every
echo is checked against what was sent. A failing (library, workload) shows as ``error`` (its
traceback is printed) and makes the exit status 1; the other measurements go on.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast


if TYPE_CHECKING:
    from picows import WSFrame, WSListener, WSTransport


HOST = "127.0.0.1"
MAX_SIZE = 2**21
T = TypeVar("T")
CLIENT_TIMEOUT = 300.0  # seconds a client process may take before the run is aborted
REQUIREMENTS = "benches/requirements.txt"

Message = str | bytes
Compression = Literal["off", "default", "level6"]
COMPRESSIONS: tuple[Compression, ...] = ("off", "default", "level6")


# ---------------------------------------------------------------------------------------------
# Adapters: one per library.


class Channel(Protocol):
    """A client connection, as the workloads see it."""

    async def send(self, message: Message, /) -> None: ...

    async def recv(self) -> Message: ...


class Adapter(ABC):
    """What the benchmark needs from a library: an echo server and a client connection."""

    name: str
    module: str  # what must be importable
    packages: tuple[str, ...]  # what to pip install
    compressions: tuple[Compression, ...] = COMPRESSIONS

    def missing(self) -> str | None:
        """Why this library cannot run here, or None."""
        try:
            found = importlib.util.find_spec(self.module) is not None
        except ImportError:
            found = False
        if found:
            return None
        return f"{self.module} is not installed (pip install {' '.join(self.packages)})"

    def version(self) -> str:
        return importlib.metadata.version(self.packages[0])

    @abstractmethod
    def serve(
        self, host: str, port: int, compression: Compression
    ) -> contextlib.AbstractAsyncContextManager[int]:
        """Run an echo server on ``host:port`` (0: any free port); yield the bound port."""

    @abstractmethod
    def connect(
        self, host: str, port: int, compression: Compression
    ) -> contextlib.AbstractAsyncContextManager[Channel]:
        """Open a client connection to the echo server at ``host:port``."""


class _Methods:
    """A :class:`Channel` from a connection's own ``send`` and ``recv``."""

    def __init__(self, send: Callable[[Message], Any], recv: Callable[[], Any]) -> None:
        self.send: Callable[[Message], Coroutine[Any, Any, None]] = send
        self.recv: Callable[[], Coroutine[Any, Any, Message]] = recv


class _FlowControl:
    """``pause_writing``/``resume_writing`` for a protocol that sends from a coroutine."""

    def __init__(self) -> None:
        self._resumed: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        if self._resumed is None:
            self._resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._resumed is not None:
            if not self._resumed.done():
                self._resumed.set_result(None)
            self._resumed = None

    async def drain(self) -> None:
        if self._resumed is not None:
            await asyncio.shield(self._resumed)


class WsrsAdapter(Adapter):
    name = "wsrs"
    module = "wsrs"
    packages = ("wsrs",)

    @staticmethod
    def options(compression: Compression, *, server: bool) -> dict[str, Any]:
        import wsrs

        options: dict[str, Any] = {"max_size": MAX_SIZE}
        if compression == "off":
            options["compression"] = None
        elif compression == "level6":
            settings = {"level": 6, "threshold": 0}
            options["compression"] = None
            options["extensions"] = [
                wsrs.ServerPerMessageDeflateFactory(compress_settings=settings)
                if server
                else wsrs.ClientPerMessageDeflateFactory(
                    client_max_window_bits=True, compress_settings=settings
                )
            ]
        return options

    @contextlib.asynccontextmanager
    async def serve(self, host: str, port: int, compression: Compression) -> AsyncIterator[int]:
        import wsrs

        async def echo(websocket: wsrs.WebSocketServerProtocol) -> None:
            async for message in websocket:
                await websocket.send(message)

        options = self.options(compression, server=True)
        async with wsrs.serve(echo, host, port, **options) as server:
            yield int(server.sockets[0].getsockname()[1])

    @contextlib.asynccontextmanager
    async def connect(
        self, host: str, port: int, compression: Compression
    ) -> AsyncIterator[Channel]:
        import wsrs

        options = self.options(compression, server=False)
        async with wsrs.connect(f"ws://{host}:{port}/", **options) as websocket:
            yield _Methods(websocket.send, websocket.recv)


class WsrsBaselineAdapter(WsrsAdapter):
    """wsrs from another build, to measure a change side by side with the one before it.

    Set ``WSRS_BASELINE`` to a directory holding a built ``wsrs`` package (for example a
    wheel of the baseline commit unpacked there); its processes import wsrs from there.
    """

    name = "wsrs-baseline"

    def missing(self) -> str | None:
        path = os.environ.get("WSRS_BASELINE")
        if not path or not os.path.isdir(os.path.join(path, "wsrs")):
            return "set WSRS_BASELINE to a directory holding a built wsrs package"
        return None

    def version(self) -> str:
        return f"{importlib.metadata.version('wsrs')} from {os.environ['WSRS_BASELINE']}"


class WsrsNativeAdapter(WsrsAdapter):
    """wsrs on its native transport (``WSRS_TRANSPORT=native``: socket I/O in Rust, see
    ``wsrs.asyncio.transport``), beside the ``wsrs`` row on asyncio's transport."""

    name = "wsrs-native"


class WsrsAsyncioAdapter(WsrsAdapter):
    """wsrs' websockets >= 14 front end (``wsrs.asyncio``), with the 4.0 front end's queue and
    write limits (32 messages, 64 KiB) so that the two rows compare the front ends alone."""

    name = "wsrs.asyncio"
    module = "wsrs.asyncio.server"

    @contextlib.asynccontextmanager
    async def serve(self, host: str, port: int, compression: Compression) -> AsyncIterator[int]:
        from wsrs.asyncio.server import ServerConnection, serve

        async def echo(websocket: ServerConnection) -> None:
            async for message in websocket:
                await websocket.send(message)

        options = self.options(compression, server=True)
        async with serve(echo, host, port, max_queue=32, write_limit=2**16, **options) as server:
            yield int(server.sockets[0].getsockname()[1])

    @contextlib.asynccontextmanager
    async def connect(
        self, host: str, port: int, compression: Compression
    ) -> AsyncIterator[Channel]:
        from wsrs.asyncio.client import connect

        options = self.options(compression, server=False)
        uri = f"ws://{host}:{port}/"
        async with connect(uri, max_queue=32, write_limit=2**16, **options) as websocket:
            yield _Methods(websocket.send, websocket.recv)


class WebsocketsAdapter(Adapter):
    name = "websockets"
    module = "websockets"
    packages = ("websockets",)

    @staticmethod
    def options(compression: Compression, *, server: bool) -> dict[str, Any]:
        from websockets.extensions.permessage_deflate import (
            ClientPerMessageDeflateFactory,
            ServerPerMessageDeflateFactory,
        )

        options: dict[str, Any] = {"max_size": MAX_SIZE}
        if compression == "off":
            options["compression"] = None
        elif compression == "level6":
            settings = {"level": 6}  # window 15 and memLevel 8: zlib's defaults
            options["compression"] = None
            options["extensions"] = [
                ServerPerMessageDeflateFactory(compress_settings=settings)
                if server
                else ClientPerMessageDeflateFactory(
                    client_max_window_bits=True, compress_settings=settings
                )
            ]
        return options

    @contextlib.asynccontextmanager
    async def serve(self, host: str, port: int, compression: Compression) -> AsyncIterator[int]:
        from websockets.asyncio.server import ServerConnection, serve

        async def echo(websocket: ServerConnection) -> None:
            async for message in websocket:
                await websocket.send(message)

        options = self.options(compression, server=True)
        async with serve(echo, host, port, **options) as server:
            yield int(next(iter(server.sockets)).getsockname()[1])

    @contextlib.asynccontextmanager
    async def connect(
        self, host: str, port: int, compression: Compression
    ) -> AsyncIterator[Channel]:
        from websockets.asyncio.client import connect

        options = self.options(compression, server=False)
        async with connect(f"ws://{host}:{port}/", **options) as websocket:
            yield _Methods(websocket.send, websocket.recv)


class _Zlib6:
    """zlib for aiohttp, whose websocket writer always compresses at ``Z_BEST_SPEED``."""

    Z_BEST_SPEED = 6

    def __getattr__(self, name: str) -> Any:
        return getattr(zlib, name)


class AiohttpAdapter(Adapter):
    name = "aiohttp"
    module = "aiohttp"
    packages = ("aiohttp",)

    @staticmethod
    def setup(compression: Compression) -> None:
        if compression == "level6":
            import aiohttp

            aiohttp.set_zlib_backend(_Zlib6())

    @contextlib.asynccontextmanager
    async def serve(self, host: str, port: int, compression: Compression) -> AsyncIterator[int]:
        from aiohttp import WSMsgType, web

        self.setup(compression)

        async def echo(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(compress=compression != "off", max_msg_size=MAX_SIZE)
            await ws.prepare(request)
            async for message in ws:
                if message.type is WSMsgType.BINARY:
                    await ws.send_bytes(message.data)
                elif message.type is WSMsgType.TEXT:
                    await ws.send_str(message.data)
            return ws

        app = web.Application()
        app.router.add_get("/", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            yield int(runner.addresses[0][1])
        finally:
            await runner.cleanup()

    @contextlib.asynccontextmanager
    async def connect(
        self, host: str, port: int, compression: Compression
    ) -> AsyncIterator[Channel]:
        import aiohttp

        self.setup(compression)
        # compress=15 offers permessage-deflate (aiohttp's client default, 0, does not).
        compress = 0 if compression == "off" else 15
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"ws://{host}:{port}/", compress=compress, max_msg_size=MAX_SIZE
            ) as ws,
        ):

            async def send(message: Message) -> None:
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)

            async def recv() -> Message:
                message = await ws.receive()
                if message.type is aiohttp.WSMsgType.BINARY:
                    return bytes(message.data)
                if message.type is aiohttp.WSMsgType.TEXT:
                    return str(message.data)
                raise ConnectionError(f"aiohttp received {message.type!r}: {message.data!r}")

            yield _Methods(send, recv)


class PicowsAdapter(Adapter):
    name = "picows"
    module = "picows"
    packages = ("picows",)
    compressions = ("off",)

    @contextlib.asynccontextmanager
    async def serve(self, host: str, port: int, compression: Compression) -> AsyncIterator[int]:
        from picows import WSListener, WSMsgType, WSUpgradeRequest, ws_create_server

        data = (WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CONTINUATION)

        class Echo(WSListener):
            """Echo every frame; stop reading while the write buffer is full."""

            transport: WSTransport

            def on_ws_connected(self, transport: WSTransport) -> None:
                self.transport = transport

            def pause_writing(self) -> None:
                self.transport.underlying_transport.pause_reading()

            def resume_writing(self) -> None:
                self.transport.underlying_transport.resume_reading()

            def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
                if frame.msg_type in data:
                    transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)
                elif frame.msg_type is WSMsgType.CLOSE:
                    transport.send_close(frame.get_close_code(), frame.get_close_message())
                    transport.disconnect()

        def factory(request: WSUpgradeRequest) -> WSListener:
            return Echo()

        server = await ws_create_server(factory, host, port, max_frame_size=MAX_SIZE)
        try:
            yield int(server.sockets[0].getsockname()[1])
        finally:
            server.close()
            await server.wait_closed()

    @contextlib.asynccontextmanager
    async def connect(
        self, host: str, port: int, compression: Compression
    ) -> AsyncIterator[Channel]:
        from picows import WSCloseCode, ws_connect

        client_class = _picows_client_class()
        transport, listener = await ws_connect(
            client_class, f"ws://{host}:{port}/", max_frame_size=MAX_SIZE
        )
        assert isinstance(listener, client_class)
        try:
            yield listener
        finally:
            transport.send_close(WSCloseCode.OK)
            await transport.wait_disconnected()


@functools.cache
def _picows_client_class() -> type[Any]:
    """The picows client listener class (defined once picows is imported)."""
    from picows import WSListener, WSMsgType

    class PicowsClient(WSListener):
        """A :class:`Channel` on picows' callbacks: queue whole messages, wake ``recv``."""

        def __init__(self) -> None:
            super().__init__()
            self.transport: WSTransport | None = None
            self.messages: collections.deque[Message] = collections.deque()
            self.waiter: asyncio.Future[None] | None = None
            self.parts: list[bytes] = []
            self.text = False
            self.error: Exception | None = None
            self.flow = _FlowControl()

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            msg_type = frame.msg_type
            if msg_type is WSMsgType.BINARY or msg_type is WSMsgType.TEXT:
                self.text = msg_type is WSMsgType.TEXT
                if frame.fin:
                    self.deliver(
                        frame.get_payload_as_utf8_text()
                        if self.text
                        else frame.get_payload_as_bytes()
                    )
                else:
                    self.parts = [frame.get_payload_as_bytes()]
            elif msg_type is WSMsgType.CONTINUATION:
                self.parts.append(frame.get_payload_as_bytes())
                if frame.fin:
                    payload = b"".join(self.parts)
                    self.parts = []
                    self.deliver(payload.decode() if self.text else payload)
            elif msg_type is WSMsgType.CLOSE:
                self.fail(ConnectionError(f"picows: closed by the server: {frame}"))
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.fail(ConnectionError("picows: disconnected"))

        def pause_writing(self) -> None:
            self.flow.pause_writing()

        def resume_writing(self) -> None:
            self.flow.resume_writing()

        def deliver(self, message: Message) -> None:
            self.messages.append(message)
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)

        def fail(self, exc: Exception) -> None:
            if self.error is None:
                self.error = exc
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)

        async def send(self, message: Message, /) -> None:
            assert self.transport is not None
            msg_type = WSMsgType.TEXT if isinstance(message, str) else WSMsgType.BINARY
            self.transport.send(msg_type, message)
            await self.flow.drain()

        async def recv(self) -> Message:
            while not self.messages:
                if self.error is not None:
                    raise self.error
                self.waiter = asyncio.get_running_loop().create_future()
                await self.waiter
                self.waiter = None
            return self.messages.popleft()

    return PicowsClient


class PicowsWebsocketsAdapter(Adapter):
    name = "picows.websockets"
    module = "picows.websockets"
    packages = ("picows",)

    def missing(self) -> str | None:
        if importlib.util.find_spec("picows") is None:
            return "picows is not installed (pip install picows)"
        if importlib.util.find_spec("picows.websockets") is None:
            return (
                f"picows {importlib.metadata.version('picows')} has no picows.websockets "
                "compatibility layer (pip install -U picows)"
            )
        return None

    @staticmethod
    def options(compression: Compression) -> dict[str, Any]:
        # picows.websockets compresses at zlib's default level (6), window 15: its default
        # is already the level-6 setting.
        return {"max_size": MAX_SIZE, "compression": None if compression == "off" else "deflate"}

    @contextlib.asynccontextmanager
    async def serve(self, host: str, port: int, compression: Compression) -> AsyncIterator[int]:
        from picows.websockets import ServerConnection, serve

        async def echo(websocket: ServerConnection) -> None:
            async for message in websocket:
                await websocket.send(message)

        async with serve(echo, host, port, **self.options(compression)) as server:
            yield int(next(iter(server.sockets)).getsockname()[1])

    @contextlib.asynccontextmanager
    async def connect(
        self, host: str, port: int, compression: Compression
    ) -> AsyncIterator[Channel]:
        from picows.websockets import connect

        uri = f"ws://{host}:{port}/"
        async with connect(uri, **self.options(compression)) as websocket:
            yield _Methods(websocket.send, websocket.recv)


class _RawEcho(asyncio.Protocol):
    """Echo every byte; stop reading while the write buffer is full."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


class _RawClient(asyncio.Protocol):
    """A :class:`Channel` without framing: a message is as many bytes as were sent."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.sizes: collections.deque[int] = collections.deque()  # of messages in flight
        self.waiter: asyncio.Future[None] | None = None
        self.error: Exception | None = None
        self.flow = _FlowControl()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            if self.sizes and len(self.buffer) >= self.sizes[0]:
                self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc or ConnectionError("raw: connection closed")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    async def send(self, message: Message, /) -> None:
        data = message.encode() if isinstance(message, str) else message
        self.sizes.append(len(data))
        self.transport.write(data)
        await self.flow.drain()

    async def recv(self) -> Message:
        # The receiver of a pipelined workload may wait before anything was sent.
        while not self.sizes or len(self.buffer) < self.sizes[0]:
            if self.error is not None:
                raise self.error
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
            self.waiter = None
        size = self.sizes.popleft()
        message = bytes(self.buffer[:size])
        del self.buffer[:size]
        return message


class RawAdapter(Adapter):
    name = "raw"
    module = "asyncio"
    packages = ()
    compressions = ("off",)

    def version(self) -> str:
        return "asyncio.Protocol"

    @contextlib.asynccontextmanager
    async def serve(self, host: str, port: int, compression: Compression) -> AsyncIterator[int]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_RawEcho, host, port)
        try:
            yield int(server.sockets[0].getsockname()[1])
        finally:
            server.close()
            await server.wait_closed()

    @contextlib.asynccontextmanager
    async def connect(
        self, host: str, port: int, compression: Compression
    ) -> AsyncIterator[Channel]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(_RawClient, host, port)
        try:
            yield protocol
        finally:
            transport.close()


ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (
        WsrsAdapter(),
        WsrsBaselineAdapter(),
        WsrsNativeAdapter(),
        WsrsAsyncioAdapter(),
        WebsocketsAdapter(),
        AiohttpAdapter(),
        PicowsAdapter(),
        PicowsWebsocketsAdapter(),
        RawAdapter(),
    )
}
BASELINE = "wsrs"
CEILING = "raw"


# ---------------------------------------------------------------------------------------------
# Workloads.


def json_text(size: int) -> str:
    """Deterministic JSON of exactly ``size`` ASCII characters: an array of user records."""
    rng = random.Random(7692)
    words = "alpha beta gamma delta admin staff guest beta-tester premium eu us asia".split()
    records: list[str] = []
    length = 2
    i = 0
    while True:
        record = json.dumps(
            {
                "id": 100_000 + i,
                "name": f"user{rng.randrange(10**6):06d}",
                "email": f"user{rng.randrange(10**6):06d}@example.com",
                "active": rng.random() < 0.7,
                "score": round(rng.uniform(0, 1000), 2),
                "tags": rng.sample(words, rng.randrange(1, 4)),
                "created": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
                f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
            },
            separators=(",", ":"),
        )
        if length + len(record) + 1 > size:
            break
        records.append(record)
        length += len(record) + 1
        i += 1
    text = "[" + ",".join(records)
    return text + " " * (size - len(text) - 1) + "]"


@dataclass(frozen=True)
class Workload:
    name: str
    size: int  # bytes per message
    count: int  # round trips per measurement, over all connections
    quick_count: int  # round trips per measurement with --quick
    window: int = 1  # messages in flight per connection (1: sequential round trips)
    connections: int = 1
    quick_connections: int = 1
    compression: Compression = "off"  # and text messages when not "off"
    churn: bool = False  # each connection opened and closed inside the timed part

    def payload(self) -> Message:
        if self.compression != "off":
            return json_text(self.size)
        return bytes(i % 251 for i in range(self.size))

    def conns(self, quick: bool) -> int:
        return self.quick_connections if quick else self.connections


# Counts aim at 1-2 s per measurement for wsrs on a typical machine.
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("rt-32B", 32, 20_000, 200),
        Workload("rt-1KiB", 1024, 20_000, 200),
        Workload("rt-64KiB", 64 * 1024, 8_000, 50),
        Workload("rt-1MiB", 1024 * 1024, 500, 5),
        Workload("pipe-1KiB", 1024, 100_000, 400, window=100),
        Workload("pipe-1MiB", 1024 * 1024, 1_000, 16, window=8),
        Workload("conc-1KiB", 1024, 20_000, 500, connections=200, quick_connections=50),
        Workload("churn-64B", 64, 20_000, 500, connections=200, quick_connections=50, churn=True),
        Workload("deflate-dflt", 64 * 1024, 1_500, 20, compression="default"),
        Workload("deflate-L6", 64 * 1024, 1_500, 20, compression="level6"),
    )
}


def supports(lib: str, workload: Workload) -> bool:
    return workload.compression in ADAPTERS[lib].compressions


async def round_trips(channel: Channel, payload: Message, count: int) -> None:
    send, recv = channel.send, channel.recv
    for _ in range(count):
        await send(payload)
        reply = await recv()
        if reply != payload:
            raise AssertionError(f"bad echo: {len(reply)} units instead of {len(payload)}")


async def pipelined(channel: Channel, payload: Message, count: int, window: int) -> None:
    """Send ``count`` messages, at most ``window`` without their echo, while receiving."""
    credits = asyncio.Semaphore(window)

    async def sender() -> None:
        for _ in range(count):
            await credits.acquire()
            await channel.send(payload)

    async def receiver() -> None:
        for _ in range(count):
            reply = await channel.recv()
            if reply != payload:
                raise AssertionError(f"bad echo: {len(reply)} units instead of {len(payload)}")
            credits.release()

    tasks = [asyncio.ensure_future(sender()), asyncio.ensure_future(receiver())]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def client_main(
    adapter: Adapter, port: int, workload: Workload, count: int, connections: int
) -> float:
    """Connect, warm up, time the workload; return seconds."""
    payload = workload.payload()
    per_connection = max(1, count // connections)
    if workload.churn:
        return await churn(adapter, port, workload, payload, per_connection, connections)
    async with contextlib.AsyncExitStack() as stack:
        channels: list[Channel] = []
        while len(channels) < connections:  # in groups, within the listen backlog
            group = min(50, connections - len(channels))
            channels += await asyncio.gather(
                *(
                    stack.enter_async_context(adapter.connect(HOST, port, workload.compression))
                    for _ in range(group)
                )
            )
        if workload.window > 1:
            (channel,) = channels
            warmup = max(workload.window, min(count // 10, 500))
            await pipelined(channel, payload, warmup, workload.window)
            start = time.perf_counter()
            await pipelined(channel, payload, count, workload.window)
            return time.perf_counter() - start
        warmup = max(1, min(per_connection // 10, 500))
        await asyncio.gather(*(round_trips(c, payload, warmup) for c in channels))
        start = time.perf_counter()
        await asyncio.gather(*(round_trips(c, payload, per_connection) for c in channels))
        return time.perf_counter() - start


CHURN_CONNECTING = 50
"""Connections of ``churn-64B`` opening at once: within the listen backlog (100 for most
servers), so no SYN is dropped and retried a second later."""


async def churn(
    adapter: Adapter,
    port: int,
    workload: Workload,
    payload: Message,
    per_connection: int,
    connections: int,
) -> float:
    """``connections`` sessions at once, each connecting, doing ``per_connection`` round trips
    and closing, all timed; returns seconds."""
    opening = asyncio.Semaphore(CHURN_CONNECTING)

    async def session(count: int) -> None:
        async with contextlib.AsyncExitStack() as stack:
            async with opening:
                channel = await stack.enter_async_context(
                    adapter.connect(HOST, port, workload.compression)
                )
            await round_trips(channel, payload, count)

    await session(max(1, min(per_connection // 10, 500)))  # warm up
    start = time.perf_counter()
    await asyncio.gather(*(session(per_connection) for _ in range(connections)))
    return time.perf_counter() - start


async def server_main(adapter: Adapter, compression: Compression) -> None:
    """Serve until SIGTERM or until stdin closes (the parent exited)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def watch_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with adapter.serve(HOST, 0, compression) as bound:
        print(f"READY {bound}", flush=True)
        await stop.wait()


def run_in_loop(coro: Coroutine[Any, Any, T], loop_name: str) -> T:
    if loop_name == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


# ---------------------------------------------------------------------------------------------
# Coordinator: server and client processes, repeats, table.


@dataclass
class Result:
    lib: str
    workload: str
    size: int
    count: int
    seconds: list[float] = field(default_factory=list)
    error: str | None = None  # the first failure; no more measurements after it
    unsupported: bool = False  # the library lacks what the workload needs (deflate)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.seconds)

    @property
    def msgs_per_s(self) -> float:
        return self.count / statistics.median(self.seconds) if self.ok else math.nan

    @property
    def mb_per_s(self) -> float:
        return self.msgs_per_s * self.size / 1e6


class BenchmarkError(Exception):
    """A server or client process failed."""


def child_env(lib: str) -> dict[str, str] | None:
    """The environment of a child process: the baseline's imports wsrs from its build; the
    native row's sets ``WSRS_TRANSPORT=native``; the ``wsrs`` row's leaves it unset, so the
    row shows the default transport."""
    if lib == WsrsNativeAdapter.name:
        return {**os.environ, "WSRS_TRANSPORT": "native"}
    if lib == BASELINE:
        return {k: v for k, v in os.environ.items() if k != "WSRS_TRANSPORT"}
    if lib != WsrsBaselineAdapter.name:
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.environ["WSRS_BASELINE"], env.get("PYTHONPATH")) if p
    )
    return env


def child_command(role: str, lib: str, loop_name: str) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--role", role, "--lib", lib] + [
        "--loop",
        loop_name,
    ]


class ServerProcess:
    """An echo server of one library with one compression setting, in its own process."""

    def __init__(self, lib: str, compression: Compression, loop_name: str) -> None:
        self.lib = lib
        self.proc = subprocess.Popen(
            child_command("server", lib, loop_name) + ["--compression", compression],
            env=child_env(lib),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = 0

    def ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise BenchmarkError(f"{self.lib} server failed to start (got {line!r})")
        self.port = int(line.split()[1])

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise BenchmarkError(f"{self.lib} server exited with status {self.proc.returncode}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@dataclass(frozen=True)
class Job:
    workload: str
    port: int
    count: int
    connections: int

    def encode(self) -> str:
        return f"{self.workload}:{self.port}:{self.count}:{self.connections}"

    @classmethod
    def decode(cls, value: str) -> Job:
        workload, port, count, connections = value.split(":")
        return cls(workload, int(port), int(count), int(connections))


def measure(
    lib: str, jobs: list[Job], servers: list[ServerProcess], loop_name: str
) -> list[float | BenchmarkError]:
    """Run ``jobs`` in one client process of ``lib``: seconds, or the error, for each."""
    command = child_command("client", lib, loop_name) + [job.encode() for job in jobs]
    names = ", ".join(job.workload for job in jobs)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, env=child_env(lib)
        )
    except subprocess.TimeoutExpired:
        return [BenchmarkError(f"{lib} client timed out on {names}")] * len(jobs)
    outcomes: dict[str, float | BenchmarkError] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            reply = json.loads(line)
            if "seconds" in reply:
                outcomes[reply["workload"]] = float(reply["seconds"])
            else:
                message = f"{lib} client failed on {reply['workload']}: {reply['error']}"
                outcomes[reply["workload"]] = BenchmarkError(message + "\n" + done.stderr)
    if done.returncode != 0 or len(outcomes) < len(jobs):
        with contextlib.suppress(BenchmarkError):
            for server in servers:
                server.check()
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        crash = BenchmarkError(
            f"{lib} client failed on {names} (status {done.returncode}): {last}\n" + done.stderr
        )
        for job in jobs:
            outcomes.setdefault(job.workload, crash)
    return [outcomes[job.workload] for job in jobs]


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio(results: dict[tuple[str, str], Result], lib: str, ref: str, name: str) -> float:
    if (ref, name) not in results or not results[lib, name].ok or not results[ref, name].ok:
        return math.nan
    return results[lib, name].msgs_per_s / results[ref, name].msgs_per_s


def format_tables(results: dict[tuple[str, str], Result], libs: list[str], names: list[str]) -> str:
    """The tables: msg/s, MB/s, ratio to wsrs, ratio to raw; a row per workload."""

    def cell(r: Result, number: float, fmt: str) -> str:
        if r.unsupported:
            return "-"
        if r.error is not None:
            return "error"
        return "-" if math.isnan(number) else format(number, fmt)

    tables: list[tuple[str, Callable[[Result], str]]] = [
        ("messages/s", lambda r: cell(r, r.msgs_per_s, ",.0f")),
        ("MB/s (one way)", lambda r: cell(r, r.mb_per_s, ",.1f")),
    ]

    def ratio_cell(ref: str) -> Callable[[Result], str]:
        def fill(r: Result) -> str:
            number = ratio(results, r.lib, ref, r.workload)
            return cell(r, number, ".2f") + ("x" if r.ok and not math.isnan(number) else "")

        return fill

    tables += [(f"ratio to {ref}", ratio_cell(ref)) for ref in (BASELINE, CEILING) if ref in libs]
    out = []
    for title, fill in tables:
        rows = [[title, *libs]]
        rows += [[name, *(fill(results[lib, name]) for lib in libs)] for name in names]
        out.append(format_table(rows))
    return "\n\n".join(out)


def coordinate(args: argparse.Namespace, out: IO[str]) -> dict[str, Any]:
    names: list[str] = args.workloads
    repeats: int = 1 if args.quick else args.repeats
    skipped: dict[str, str] = {}
    libs: list[str] = []
    for lib in args.libs:
        reason = ADAPTERS[lib].missing()
        if reason is None:
            libs.append(lib)
        else:
            skipped[lib] = reason
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "loop": args.loop,
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "versions": {lib: ADAPTERS[lib].version() for lib in libs},
        "skipped": skipped,
    }
    if args.loop == "uvloop":
        info["versions"]["uvloop"] = importlib.metadata.version("uvloop")
    print(
        f"echo_compare: python {info['python']}, loop {args.loop}, {repeats} repeat(s), "
        f"{info['cpus']} cpus; "
        + ", ".join(f"{lib} {version}" for lib, version in info["versions"].items()),
        file=out,
        flush=True,
    )
    for lib, reason in skipped.items():
        print(f"note: skipped {lib}: {reason}", file=out, flush=True)
    if skipped:
        print(f"note: pip install -r {REQUIREMENTS} installs every peer", file=out, flush=True)
    results: dict[tuple[str, str], Result] = {}
    for lib in libs:
        for name in names:
            w = WORKLOADS[name]
            count = w.quick_count if args.quick else w.count
            results[lib, name] = Result(lib, name, w.size, count)
            results[lib, name].unsupported = not supports(lib, w)
    servers: dict[tuple[str, Compression], ServerProcess] = {}
    try:
        needed = {
            (lib, WORKLOADS[name].compression)
            for (lib, name), r in results.items()
            if not r.unsupported
        }
        for key in sorted(needed):  # started together, then waited for
            servers[key] = ServerProcess(key[0], key[1], args.loop)
        for (lib, compression), server in servers.items():
            try:
                server.ready()
            except BenchmarkError as exc:
                for name in names:
                    if WORKLOADS[name].compression == compression:
                        results[lib, name].error = str(exc)
                print(f"error: {exc}", file=out, flush=True)
        for repeat in range(repeats):
            order = libs if repeat % 2 == 0 else libs[::-1]
            for todo in pending_batches(order, names, args.quick, results):
                lib = todo[0][0]
                jobs = []
                for _, name in todo:
                    w = WORKLOADS[name]
                    port = servers[lib, w.compression].port
                    jobs.append(Job(name, port, results[lib, name].count, w.conns(args.quick)))
                used = [servers[lib, WORKLOADS[name].compression] for _, name in todo]
                outcomes = measure(lib, jobs, used, args.loop)
                for (_, name), outcome in zip(todo, outcomes, strict=True):
                    result = results[lib, name]
                    if isinstance(outcome, BenchmarkError):
                        result.error = str(outcome).splitlines()[0]
                        # The whole error for a library's first failure, one line afterwards.
                        first = not any(results[lib, n].error for n in names if n != name)
                        message = str(outcome) if first else result.error
                        print(f"error: {message}", file=out, flush=True)
                        continue
                    result.seconds.append(outcome)
                    if args.verbose:
                        print(
                            f"  repeat {repeat + 1}/{repeats} {name:<12} {lib:<17} "
                            f"{outcome:7.3f} s  {result.count / outcome:10,.0f} msg/s",
                            file=out,
                            flush=True,
                        )
    finally:
        for server in servers.values():
            server.stop()
    print(file=out)
    print(format_tables(results, libs, names), file=out, flush=True)
    for lib, reason in skipped.items():
        print(f"note: skipped {lib}: {reason}", file=out, flush=True)

    def number(x: float) -> float | None:
        return None if math.isnan(x) else x

    return {
        "info": info,
        "libs": libs,
        "workloads": names,
        "results": [
            asdict(r)
            | {
                "msgs_per_s": number(r.msgs_per_s),
                "mb_per_s": number(r.mb_per_s),
                f"ratio_to_{BASELINE}": number(ratio(results, r.lib, BASELINE, r.workload)),
                f"ratio_to_{CEILING}": number(ratio(results, r.lib, CEILING, r.workload)),
            }
            for r in results.values()
        ],
    }


def comma_list(choices: list[str]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        items = [item.strip() for item in value.split(",") if item.strip()]
        unknown = [item for item in items if item not in choices]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose among {', '.join(choices)}")
        return items

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement (3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny counts, 1 repeat")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--workloads",
        type=comma_list(list(WORKLOADS)),
        default=list(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (all)",
    )
    parser.add_argument(
        "--libs",
        type=comma_list(list(ADAPTERS)),
        # The baseline build only when there is one to compare with.
        default=[
            name
            for name in ADAPTERS
            if name != WsrsBaselineAdapter.name or os.environ.get("WSRS_BASELINE")
        ],
        help=f"comma-separated subset of {','.join(ADAPTERS)} (all installed)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every measurement")
    # Internal: how the coordinator starts its server and client processes.
    parser.add_argument("--role", choices=["main", "server", "client"], default="main")
    parser.add_argument("--lib", choices=list(ADAPTERS), help=argparse.SUPPRESS)
    parser.add_argument("--compression", choices=COMPRESSIONS, help=argparse.SUPPRESS)
    parser.add_argument("jobs", nargs="*", type=Job.decode, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        parser.error(f"uvloop is not installed (pip install uvloop, or -r {REQUIREMENTS})")
    if args.role != "main" and args.lib is None:
        parser.error(f"--role {args.role} needs --lib")
    if args.role == "server" and args.compression is None:
        parser.error("--role server needs --compression")
    if args.role == "client" and not args.jobs:
        parser.error("--role client needs jobs")
    return args


def pending_batches(
    order: Sequence[str], names: Sequence[str], quick: bool, results: Mapping[tuple[str, str], Any]
) -> Iterator[list[tuple[str, str]]]:
    """The measurements of one repeat as ``(library, workload)`` batches, one client process
    each: one per measurement, or with ``quick`` one per library. What is unsupported or
    already failed is left out, checked as each batch comes (an earlier batch may fail)."""
    batches = (
        [[(lib, name) for name in names] for lib in order]
        if quick
        else [[(lib, name)] for name in names for lib in order]
    )
    for batch in batches:
        todo = [
            (lib, name)
            for lib, name in batch
            if not results[lib, name].unsupported and results[lib, name].error is None
        ]
        if todo:
            yield todo


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "server":
        run_in_loop(server_main(ADAPTERS[args.lib], args.compression), args.loop)
        return 0
    if args.role == "client":
        status = 0
        for job in args.jobs:
            workload = WORKLOADS[job.workload]
            coro = client_main(ADAPTERS[args.lib], job.port, workload, job.count, job.connections)
            try:
                seconds = run_in_loop(coro, args.loop)
            except Exception as exc:
                traceback.print_exc()
                reply: dict[str, Any] = {"workload": job.workload, "error": repr(exc)}
                status = 1
            else:
                reply = {"workload": job.workload, "seconds": seconds}
            print(json.dumps(reply), flush=True)
        return status
    report = coordinate(args, sys.stdout)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return 1 if any(r["error"] is not None for r in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
