"""Helpers for the tests of the asyncio API over real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import ssl as ssl_module
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import wsrs
import wsrs._memory
from tests import reference as ref
from tests.reference import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    close_payload,
    parse_close,
)
from wsrs.asyncio.base import BaseProtocol
from wsrs.server import WebSocketServer, WebSocketServerProtocol


__all__ = [
    "MS",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Capture",
    "DeflateParams",
    "Frame",
    "Relay",
    "Tracker",
    "check_echo",
    "close_payload",
    "close_writer",
    "compact_tick",
    "deflate_params",
    "echo",
    "encode_frame",
    "eventually",
    "finish_raw",
    "frame_header",
    "http_server",
    "open_fds",
    "open_raw",
    "parse_close",
    "peak_rss",
    "raw_handshake",
    "raw_handshake_response",
    "raw_ws_server",
    "read_frame",
    "read_http_response",
    "reset_peak_rss",
    "reset_writer",
    "rss",
    "run_server",
    "server_uri",
    "tcp_relay",
    "tracked_server",
    "upgrade_request",
    "wait_for_tasks",
]

MS = 0.001 * float(os.environ.get("WSRS_TESTS_TIMEOUT_FACTOR", "1"))
"""One millisecond, scaled by ``WSRS_TESTS_TIMEOUT_FACTOR`` on slow machines."""

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---------------------------------------------------------------------------- wsrs servers


async def echo(ws: wsrs.WebSocketServerProtocol, path: str) -> None:
    """Echo every message back until the connection closes."""
    async for message in ws:
        await ws.send(message)


def through_transport(ws: BaseProtocol) -> asyncio.Transport:
    """Make every frame ``ws`` writes call ``transport.write`` (its writer writes to a native
    transport's socket directly otherwise), so that a test can wrap that method; return the
    transport."""
    assert ws._writer is not None and ws.transport is not None
    ws._writer.socket = None
    return ws.transport


def compact_tick(ws: wsrs.WebSocketCommonProtocol) -> None:
    """Run the idle-compaction check of ``ws`` now, as a sweep would (with its trim)."""
    assert ws._compactor is not None
    if ws._compactor.check():
        wsrs._memory.request_trim(ws.loop)


def server_uri(server: WebSocketServer, path: str = "/") -> str:
    """Return the ws:// URI of a server listening on 127.0.0.1."""
    host, port = server.sockets[0].getsockname()[:2]
    return f"ws://{host}:{port}{path}"


@contextlib.asynccontextmanager
async def run_server(
    handler: Callable[..., Awaitable[Any]] = echo, **kwargs: Any
) -> AsyncIterator[str]:
    """Run a wsrs server on 127.0.0.1, port 0; yield its ws:// URI; close it on exit."""
    async with wsrs.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        yield server_uri(server)


@dataclass
class Capture:
    """A handler that hands each server-side connection to the test and waits for its end."""

    connections: asyncio.Queue[WebSocketServerProtocol] = field(default_factory=asyncio.Queue)

    async def handler(self, ws: WebSocketServerProtocol, path: str) -> None:
        await self.connections.put(ws)
        await ws.wait_closed()

    async def get(self) -> WebSocketServerProtocol:
        return await asyncio.wait_for(self.connections.get(), 1000 * MS)


@dataclass
class Tracker:
    """A handler that echoes, except on ``/hold`` where it hands the connection to the test
    (like :class:`Capture`); it records every connection it starts and finishes."""

    held: asyncio.Queue[WebSocketServerProtocol] = field(default_factory=asyncio.Queue)
    started: list[WebSocketServerProtocol] = field(default_factory=list)
    finished: list[WebSocketServerProtocol] = field(default_factory=list)

    async def handler(self, ws: WebSocketServerProtocol, path: str) -> None:
        self.started.append(ws)
        try:
            if path == "/hold":
                await self.held.put(ws)
                await ws.wait_closed()
            else:
                await echo(ws, path)
        finally:
            self.finished.append(ws)

    async def get(self) -> WebSocketServerProtocol:
        return await asyncio.wait_for(self.held.get(), 1000 * MS)


@contextlib.asynccontextmanager
async def tracked_server(**kwargs: Any) -> AsyncIterator[tuple[WebSocketServer, Tracker]]:
    """Run a :class:`Tracker` server on 127.0.0.1, without keepalive or compression unless
    ``kwargs`` say otherwise; yield the server and the tracker."""
    tracker = Tracker()
    options: dict[str, Any] = {"ping_interval": None, "compression": None, **kwargs}
    async with wsrs.serve(tracker.handler, "127.0.0.1", 0, **options) as server:
        yield server, tracker


async def check_echo(ws: wsrs.WebSocketCommonProtocol, message: str = "still here") -> None:
    """Check that ``ws``, connected to an echo handler, still works."""
    await ws.send(message)
    assert await asyncio.wait_for(ws.recv(), 2000 * MS) == message


async def eventually(predicate: Callable[[], bool], timeout: float = 2000 * MS) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(5 * MS)


async def wait_for_tasks(
    expected: set[asyncio.Task[Any]], timeout: float = 2000 * MS
) -> set[asyncio.Task[Any]]:
    """Wait until the running tasks are no more than ``expected``; return them.

    On timeout, return the tasks still running, so the caller's assertion shows them.
    """
    with contextlib.suppress(TimeoutError):
        await eventually(lambda: asyncio.all_tasks() <= expected, timeout)
    return asyncio.all_tasks()


# ---------------------------------------------------------------------------- resources


def _proc_status(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field_name)


def rss() -> int:
    """Resident set size of this process, in bytes (Linux)."""
    return _proc_status("VmRSS")


def reset_peak_rss() -> bool:
    """Reset the peak RSS of this process to its current RSS (Linux >= 4.0).

    Returns whether it worked; when it did not, :func:`peak_rss` gives the lifetime peak.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """Peak resident set size of this process since :func:`reset_peak_rss`, in bytes."""
    return _proc_status("VmHWM")


def open_fds() -> int:
    """Number of file descriptors this process holds (Linux)."""
    return len(os.listdir("/proc/self/fd"))


DeflateParams = tuple[bool, bool, int, int]
"""``(remote_no_context_takeover, local_no_context_takeover, remote_max_window_bits,
local_max_window_bits)`` of a negotiated permessage-deflate extension."""


def deflate_params(ws: wsrs.WebSocketCommonProtocol) -> DeflateParams | None:
    """Return the parameters of the permessage-deflate extension ``ws`` negotiated, if any."""
    if not ws.extensions:
        return None
    [extension] = ws.extensions
    assert isinstance(extension, wsrs.PerMessageDeflate)
    return (
        extension.remote_no_context_takeover,
        extension.local_no_context_takeover,
        extension.remote_max_window_bits,
        extension.local_max_window_bits,
    )


# ---------------------------------------------------------------------------- raw sockets


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(
    host: str, path: str = "/", headers: Iterable[tuple[str, str]] = (), *, key: str | None = None
) -> tuple[bytes, str]:
    """Return an opening handshake request (no extension offered) and its key."""
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def _host_port(uri: str) -> tuple[str, int]:
    hostport = uri.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    return host.strip("[]"), int(port)


async def open_raw(uri: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a plain TCP connection to the host and port of ``uri``."""
    host, port = _host_port(uri)
    return await asyncio.open_connection(host, port)


async def read_http_response(
    reader: asyncio.StreamReader,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Read a response head, then its body (by Content-Length, else until EOF)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2000 * MS)
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = [(n, v.strip()) for n, v in (line.split(":", 1) for line in header_lines)]
    if status == 101:
        return status, headers, b""
    lengths = [int(v) for n, v in headers if n.lower() == "content-length"]
    if lengths:
        body = await asyncio.wait_for(reader.readexactly(lengths[0]), 2000 * MS)
    else:
        body = await asyncio.wait_for(reader.read(), 2000 * MS)
    return status, headers, body


async def raw_handshake_response(
    uri: str, path: str = "/", headers: Iterable[tuple[str, str]] = ()
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, list[tuple[str, str]]]:
    """Connect a raw client and complete the opening handshake; ``headers`` may offer
    extensions. Returns the response headers too."""
    reader, writer = await open_raw(uri)
    host, port = _host_port(uri)
    request, key = upgrade_request(f"{host}:{port}", path, headers)
    writer.write(request)
    status, response_headers, _ = await read_http_response(reader)
    assert status == 101, status
    assert ("Sec-WebSocket-Accept", accept_key(key)) in response_headers
    return reader, writer, response_headers


async def raw_handshake(
    uri: str, path: str = "/", headers: Iterable[tuple[str, str]] = ()
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect a raw client and complete the opening handshake (no extensions)."""
    reader, writer, _ = await raw_handshake_response(uri, path, headers)
    return reader, writer


def frame_header(
    opcode: int, length: int, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """Encode a frame header announcing ``length`` bytes (any 64-bit value, even invalid
    ones), without the masking key."""
    head = bytearray(
        ref.encode_header(
            opcode, length, fin=fin, rsv1=bool(rsv & 4), rsv2=bool(rsv & 2), rsv3=bool(rsv & 1)
        )
    )
    if mask:
        head[1] |= 0x80
    return bytes(head)


def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """Encode a frame; clients must mask, servers must not. ``rsv`` sets the RSV1-3 bits
    (``0b100`` is RSV1, the "compressed" bit of permessage-deflate)."""
    return ref.encode_frame(
        opcode,
        payload,
        fin=fin,
        rsv1=bool(rsv & 4),
        rsv2=bool(rsv & 2),
        rsv3=bool(rsv & 1),
        key=os.urandom(4) if mask else None,
    )


@dataclass
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0


async def read_frame(reader: asyncio.StreamReader, timeout: float = 2000 * MS) -> Frame:
    """Read one frame, unmasking it if needed."""

    async def read() -> Frame:
        b0, b1 = await reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        key = await reader.readexactly(4) if b1 & 0x80 else None
        payload = await reader.readexactly(length)
        if key is not None:
            payload = ref.mask(payload, key)
        return Frame(b0 & 0x0F, payload, bool(b0 & 0x80), (b0 >> 4) & 0x7)

    return await asyncio.wait_for(read(), timeout)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a raw connection, ignoring errors from an already broken one."""
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def finish_raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Wait for the server to close TCP (EOF), then close the raw connection too."""
    assert await asyncio.wait_for(reader.read(), 1000 * MS) == b""
    await close_writer(writer)


async def reset_writer(writer: asyncio.StreamWriter) -> None:
    """Close a raw connection with a TCP RST (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


RawCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_ws_server(
    callback: RawCallback,
    *,
    accept: Callable[[str], str] = accept_key,
    extra_response: str = "",
    ssl: ssl_module.SSLContext | None = None,
) -> AsyncIterator[str]:
    """Run a hand-written WebSocket server; ``callback`` runs after the 101 response.

    It never negotiates extensions. Yields the ws:// URI, or wss:// with ``ssl``.
    """
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            key = ""
            for line in head.split("\r\n")[1:]:
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            writer.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept(key)}\r\n"
                    f"{extra_response}\r\n"
                ).encode()
            )
            await callback(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await close_writer(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl)
    try:
        host, port = server.sockets[0].getsockname()[:2]
        yield f"{'ws' if ssl is None else 'wss'}://{host}:{port}/"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await server.wait_closed()


@contextlib.asynccontextmanager
async def http_server(response: bytes) -> AsyncIterator[str]:
    """Run a plain HTTP server answering every request with ``response``; yield a ws:// URI."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()
        await close_writer(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        host, port = server.sockets[0].getsockname()[:2]
        yield f"ws://{host}:{port}/"
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class Relay:
    """Where :func:`tcp_relay` listens, and how many bytes it forwarded each way."""

    uri: str
    upstream: int = 0
    """Bytes forwarded from clients to the server."""
    downstream: int = 0
    """Bytes forwarded from the server to clients."""


@contextlib.asynccontextmanager
async def tcp_relay(uri: str) -> AsyncIterator[Relay]:
    """Forward TCP connections to the host and port of ``uri``, counting bytes.

    It measures what goes on the wire, for example whether a peer really compresses.
    Yields a :class:`Relay` whose ``uri`` has the same path as ``uri``.
    """
    host, port = _host_port(uri)
    hostport_path = uri.split("//", 1)[1]
    path = "/" + hostport_path.split("/", 1)[1] if "/" in hostport_path else "/"
    relay = Relay("")
    tasks: set[asyncio.Task[None]] = set()

    async def pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(2**16):
                if upstream:
                    relay.upstream += len(data)
                else:
                    relay.downstream += len(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            server_reader, server_writer = await asyncio.open_connection(host, port)
            try:
                await asyncio.gather(
                    pump(reader, server_writer, True), pump(server_reader, writer, False)
                )
            finally:
                await close_writer(server_writer)
        finally:
            await close_writer(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        relay.uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}{path}"
        yield relay
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await server.wait_closed()
