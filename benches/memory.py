"""Memory per connection on the server side, idle and busy: wsrs against ``websockets``.

Run everything (7 configurations, 2 libraries, 1,000 connections; a few minutes)::

    python benches/memory.py
    python benches/memory.py --busy 0.5             # each connection: a message every 0.5 s
    python benches/memory.py --connections 10000
    python benches/memory.py --tracemalloc          # also: Python-heap share, top allocation sites
    python benches/memory.py --quick                # smoke run: 20 connections, default config
    python benches/memory.py --ratio                # bytes on the wire per message, no sockets

For every (configuration, library) a fresh server process (``--role server``) listens on an
ephemeral port of 127.0.0.1; its handler echoes every message and otherwise waits in ``recv``.
A separate client process (``--role client``, the same library as the server unless
``--client`` says otherwise) opens the connections: first one warm-up connection (one
message, closed again) so that lazy imports and first-use caches are paid before the
baseline; then N/2 connections, then the other N/2. Each connection sends one ~1 KiB
JSON-like text message, checks the echo and stays open and idle (``ping_interval=None`` on
both sides, so nothing at all happens on it afterwards). The compressor and decompressor
of each connection have therefore been used once, as in real use.

The server measures itself on request (a line on its stdin): it waits until the expected
number of handlers is running, lets the loop settle, runs ``gc.collect()`` and reads
``VmRSS`` from ``/proc/self/status``. Reported:

- ``KiB/conn``: ``(RSS with N connections - RSS at baseline) / N``;
- ``2nd half``: ``(RSS with N - RSS with N/2) / (N/2)``, the marginal cost, free of any
  one-off growth (allocator arenas, caches) that the first figure spreads over N;
- ``idle KiB/conn``: the same as ``KiB/conn``, measured again after the connections have
  been idle for ``--idle`` seconds (default 12). wsrs frees the spare buffers and the zlib
  states of a connection idle for 5 to 10 s (``compact_after``), keeping only the last
  window of data in each direction; websockets keeps its state, so its two figures match;
- ``wsrs/websockets``: ratio of the ``idle KiB/conn`` figures (``KiB/conn`` without
  ``--idle``) for the configuration.

``--busy SECONDS``: the connections do not go quiet after their first message. Each one
sends the next message of a stream of JSON updates (:func:`json_stream`: chat messages,
metrics and order snapshots of 400 B to 1.8 KiB, 950 B on average, with the repeating keys
of real traffic) every SECONDS (each connection starting at a random offset) and waits for
the echo, so the server's decompressor and compressor of every connection work every
SECONDS and the connection never becomes idle. ``busy KiB/conn`` is measured after
``BUSY_SETTLE`` seconds of that traffic; then the traffic stops and ``idle KiB/conn`` is
measured ``--idle`` seconds later.

``--ratio``: no sockets; the server's side of each configuration is negotiated against the
default client offer (``client_max_window_bits``, as browsers and both libraries send it)
and compresses the first 2,000 messages of :func:`json_stream` in order, one connection's
worth; reported are the bytes per message on the wire (frame headers included), the ratio
to the uncompressed frames and the time to encode a message (wsrs through its Rust writer,
websockets through its own extension and Python's zlib).

Configurations (the server's settings; the client offers permessage-deflate with its
defaults, which include ``client_max_window_bits`` like browsers do):

- ``off``: ``compression=None``;
- ``default``: ``compression='deflate'`` with each library's defaults. websockets 14+ then
  uses ``server_max_window_bits=12, client_max_window_bits=12`` and zlib ``memLevel=5``
  (``enable_server_permessage_deflate``); wsrs uses 15/15 windows, level 6 and the zlib-rs
  memLevel 8 (its hash table is a fixed 64 Ki entries whatever the memLevel);
- ``no-ctx``: ``ServerPerMessageDeflateFactory(server_no_context_takeover=True,
  client_no_context_takeover=True)``;
- ``wbits10``: ``ServerPerMessageDeflateFactory(server_max_window_bits=10,
  client_max_window_bits=10)``;
- ``small``: websockets' default settings given explicitly to both libraries:
  ``server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}``;
- ``lean`` (wsrs only): ``compression='lean'``, 12-bit windows in both directions (or
  ``client_no_context_takeover`` for a client that does not let the server choose its window)
  with no zlib state kept between messages: each message takes a compressor or decompressor
  from a per-thread pool and primes it with the connection's last 4 KiB window;
- ``lean-nct`` (wsrs only): ``ServerPerMessageDeflateFactory(server_no_context_takeover=True,
  client_no_context_takeover=True, lean=True)``: nothing kept between messages at all.

The explicit factories get no ``compress_settings``, so websockets uses zlib's memLevel 8
there. The ``negotiated`` column shows what the server ended up with: ``s:`` the window bits
the server compresses with, ``c:`` the client's; ``nct`` marks no context takeover, ``mN``
a memLevel other than 8, ``lean`` the lean setting.

Connections need one file descriptor each in both processes: both raise their
``RLIMIT_NOFILE`` soft limit to the hard limit. When the hard limit is too low for N, the
run is skipped with a message (exit status 0). A failing measurement shows as ``error``
(its stderr is printed) and makes the exit status 1; the others go on. Linux only
(``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any


HOST = "127.0.0.1"
LIBS = ("wsrs", "websockets")
CONFIGS = ("off", "default", "lean", "lean-nct", "no-ctx", "wbits10", "small")
WSRS_ONLY = ("lean", "lean-nct")  # wsrs settings without an equivalent in websockets
FD_MARGIN = 64  # descriptors besides the connections: stdio, listening socket, epoll, ...
OPEN_CONCURRENCY = 64  # handshakes in flight at once in the client
SETTLE = 0.5  # seconds the server idles before it measures
IDLE = 12.0  # seconds of idleness before the last measurement (wsrs compacts after 5-10 s)
BUSY_SETTLE = 3.0  # seconds of traffic before the busy measurement (--busy)
RATIO_MESSAGES = 2000  # messages of json_stream() compressed by --ratio
STEP_TIMEOUT = 300.0  # seconds any one step (opening N connections, waiting for them) may take

# A ~1 KiB JSON-like text message: compressible, as real traffic is.
MESSAGE = json.dumps(
    [
        {"id": i, "user": f"user-{i:04d}", "event": "update", "value": i * 7.25, "ok": i % 3 == 0}
        for i in range(14)
    ],
    separators=(",", ":"),
)[:1024]


WORDS = (
    "the a to and of in is it you that for on with are this be at have not as we deploy build "
    "failed passed latency error warning queue worker release merge review customer order "
    "invoice payment shipped delayed cancelled refund meeting tomorrow thanks please check "
    "dashboard alert resolved incident database cache timeout"
).split()


def json_stream(count: int, seed: int = 1) -> list[str]:
    """``count`` JSON updates as a dashboard or chat server sends them, in order.

    A third chat messages (a user object, 40 to 260 words of text, reactions), a third host
    metrics (CPU list, memory, disks, network, alerts), a third order snapshots (4 to 15
    orders): 400 B to 1.8 KiB, 950 B on average, deterministic for a ``seed``. The keys,
    users and hosts repeat from message to message, which is what context takeover and the
    window size are about.
    """
    rng = random.Random(seed)
    users = [
        {"id": 1000 + i, "name": f"user{i}", "avatar": f"https://cdn.example.com/a/{i:04d}.png"}
        for i in range(50)
    ]
    hosts = [f"web-{i:02d}.eu-west-1.internal" for i in range(20)]
    stream = []
    for n in range(count):
        kind = rng.random()
        ts = 1_764_000_000_000 + n * 137
        message: dict[str, Any]
        if kind < 0.35:
            reactions = rng.sample(["+1", "heart", "eyes", "rocket", "tada"], rng.randrange(4))
            message = {
                "type": "chat.message",
                "room": f"room-{rng.randrange(8)}",
                "id": f"msg-{n:08d}",
                "user": rng.choice(users),
                "ts": ts,
                "text": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(40, 260))),
                "reactions": {name: rng.randrange(1, 9) for name in reactions},
                "thread": None if rng.random() < 0.7 else f"msg-{rng.randrange(n + 1):08d}",
            }
        elif kind < 0.7:
            message = {
                "type": "metrics.update",
                "host": rng.choice(hosts),
                "ts": ts,
                "cpu": [round(rng.uniform(0, 100), 1) for _ in range(rng.choice((8, 16, 32)))],
                "memory": {
                    "used": rng.randrange(1 << 30, 1 << 34),
                    "total": 1 << 34,
                    "swap": rng.randrange(1 << 28),
                },
                "disk": {
                    disk: {
                        "read_bytes": rng.randrange(1 << 20),
                        "write_bytes": rng.randrange(1 << 20),
                        "util": round(rng.random(), 3),
                    }
                    for disk in ("nvme0n1", "nvme1n1")
                },
                "net": {
                    "rx_bytes": rng.randrange(1 << 24),
                    "tx_bytes": rng.randrange(1 << 24),
                    "errors": rng.randrange(3),
                },
                "alerts": [
                    {
                        "level": rng.choice(["info", "warning", "critical"]),
                        "message": " ".join(rng.choice(WORDS) for _ in range(8)),
                    }
                    for _ in range(rng.randrange(4))
                ],
            }
        else:
            message = {
                "type": "orders.snapshot",
                "ts": ts,
                "orders": [
                    {
                        "order_id": f"ord-{rng.randrange(10**6):06d}",
                        "customer": rng.choice(users)["name"],
                        "status": rng.choice(
                            ["pending", "paid", "shipped", "delivered", "refunded"]
                        ),
                        "total": {"amount": round(rng.uniform(5, 500), 2), "currency": "EUR"},
                        "items": rng.randrange(1, 6),
                    }
                    for _ in range(rng.randrange(4, 16))
                ],
            }
        stream.append(json.dumps(message, separators=(",", ":")))
    return stream


# ---------------------------------------------------------------------------------------------
# Configurations.


def server_options(lib: str, config: str) -> dict[str, Any]:
    """``serve()`` keyword arguments for ``lib`` under ``config`` (besides the handler)."""
    if lib == "wsrs":
        from wsrs import ServerPerMessageDeflateFactory as WsrsFactory

        factory: type[Any] = WsrsFactory
    else:
        from websockets.extensions.permessage_deflate import (
            ServerPerMessageDeflateFactory as WebsocketsFactory,
        )

        factory = WebsocketsFactory
    options: dict[str, Any] = {"ping_interval": None}
    if config == "off":
        options["compression"] = None
    elif config == "default":
        options["compression"] = "deflate"
    elif config == "no-ctx":
        options["compression"] = "deflate"
        options["extensions"] = [
            factory(server_no_context_takeover=True, client_no_context_takeover=True)
        ]
    elif config == "wbits10":
        options["compression"] = "deflate"
        options["extensions"] = [factory(server_max_window_bits=10, client_max_window_bits=10)]
    elif config == "small":
        options["compression"] = "deflate"
        options["extensions"] = [
            factory(
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
        ]
    elif lib != "wsrs" and config in WSRS_ONLY:
        raise ValueError(f"{config} is a wsrs setting")
    elif config == "lean":
        options["compression"] = "lean"
    elif config == "lean-nct":
        options["compression"] = "deflate"
        options["extensions"] = [
            factory(server_no_context_takeover=True, client_no_context_takeover=True, lean=True)
        ]
    else:
        raise ValueError(f"unknown config: {config}")
    return options


def server_factories(lib: str, config: str) -> list[Any]:
    """The server's extension factories under ``config``, as ``serve()`` completes them."""
    options = server_options(lib, config)
    if lib == "wsrs":
        from wsrs.server import _apply_compression

        return list(_apply_compression(options["compression"], options.get("extensions")) or [])
    from websockets.extensions.permessage_deflate import enable_server_permessage_deflate

    factories = options.get("extensions")
    if options["compression"] == "deflate":
        factories = enable_server_permessage_deflate(factories)
    return list(factories or [])


def encoder(lib: str, extension: Any) -> Callable[[str], int]:
    """A function that encodes a text message as a server of ``lib`` with the negotiated
    ``extension`` (``None``: no compression) and returns its size on the wire."""
    if lib == "wsrs":
        from wsrs._core import Writer

        options = extension.writer_options() if extension is not None else {}
        writer = Writer(client=False, **options)

        def encode_wsrs(message: str) -> int:
            return len(writer.message(message))

        return encode_wsrs

    from websockets.frames import Frame, Opcode

    def encode_websockets(message: str) -> int:
        frame = Frame(Opcode.TEXT, message.encode())
        if extension is not None:
            frame = extension.encode(frame)
        # Header: 2 bytes, 4 with a 16-bit length (as every message here has).
        return len(frame.data) + (2 if len(frame.data) < 126 else 4)

    return encode_websockets


def compression_ratio(lib: str, config: str, messages: Sequence[str]) -> tuple[float, float]:
    """Compress ``messages`` as the server of ``config`` sends them on one connection.

    Returns the bytes per message on the wire (frame headers included, unmasked as a server
    sends them) and the microseconds per message to encode them (the best of 3 runs, each
    with a new connection's state).
    """
    offer = [("client_max_window_bits", None)]
    factories = server_factories(lib, config)
    best = float("inf")
    for _ in range(3):
        extension = factories[0].process_request_params(offer, [])[1] if factories else None
        encode = encoder(lib, extension)
        start = time.perf_counter()
        total = sum(encode(message) for message in messages)
        best = min(best, time.perf_counter() - start)
    return total / len(messages), best / len(messages) * 1e6


def print_ratios(configs: Sequence[str], libs: Sequence[str]) -> None:
    messages = json_stream(RATIO_MESSAGES)
    size = sum(len(message) for message in messages) / len(messages)
    print(
        f"{library_versions()}, Python {platform.python_version()}, {platform.machine()}; "
        f"{len(messages)} JSON messages of {size:.0f} B on average, server to client"
    )
    print(f"{'config':<9} {'library':<11} {'B/msg':>8} {'ratio':>6} {'us/msg':>7}")
    for config in configs:
        for lib in libs:
            if lib != "wsrs" and config in WSRS_ONLY:
                continue
            per_message, micros = compression_ratio(lib, config, messages)
            # The ratio is to the same messages sent uncompressed, headers included.
            plain = size + 4
            print(
                f"{config:<9} {lib:<11} {per_message:8.1f} {plain / per_message:5.2f}x "
                f"{micros:7.1f}"
            )


def client_options(config: str) -> dict[str, Any]:
    """``connect()`` keyword arguments: the library's default offer unless compression is off."""
    return {"ping_interval": None, "compression": None if config == "off" else "deflate"}


def describe_extensions(extensions: Sequence[Any]) -> str:
    """Summarise negotiated permessage-deflate parameters, as seen by the server."""
    parts = []
    for ext in extensions:
        if getattr(ext, "name", "") != "permessage-deflate":
            parts.append(str(getattr(ext, "name", ext)))
            continue
        server = f"s:{ext.local_max_window_bits}"
        if ext.local_no_context_takeover:
            server += ",nct"
        if getattr(ext, "lean", False):
            server += ",lean"
        mem_level = (getattr(ext, "compress_settings", None) or {}).get("memLevel", 8)
        if mem_level != 8:
            server += f",m{mem_level}"
        client = f"c:{ext.remote_max_window_bits}"
        if ext.remote_no_context_takeover:
            client += ",nct"
        parts.append(f"{server} {client}")
    return "; ".join(parts) or "-"


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib() -> int:
    """Resident set size of this process, in KiB (``VmRSS``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def read_line(stream: IO[str]) -> str:
    """Read one line of ``stream`` without blocking the event loop ('' at end of file)."""
    return await asyncio.get_running_loop().run_in_executor(None, stream.readline)


def reply(obj: object) -> None:
    print(json.dumps(obj), flush=True)


# ---------------------------------------------------------------------------------------------
# Server process.


class ServerState:
    def __init__(self) -> None:
        self.live = 0
        self.negotiated: str | None = None


async def run_server(lib: str, config: str, trace: bool) -> None:
    raise_fd_limit()
    if trace:
        tracemalloc.start(1)
    state = ServerState()

    async def handler(websocket: Any) -> None:
        state.live += 1
        try:
            if state.negotiated is None:
                extensions = (
                    websocket.extensions if lib == "wsrs" else websocket.protocol.extensions
                )
                state.negotiated = describe_extensions(extensions)
            async for message in websocket:
                await websocket.send(message)
        finally:
            state.live -= 1

    options = server_options(lib, config)
    if lib == "wsrs":
        import wsrs

        server_cm: Any = wsrs.serve(handler, HOST, 0, backlog=1024, **options)
    else:
        from websockets.asyncio.server import serve

        server_cm = serve(handler, HOST, 0, backlog=1024, **options)

    async with server_cm as server:
        reply({"port": int(next(iter(server.sockets)).getsockname()[1])})
        before: tracemalloc.Snapshot | None = None
        while line := (await read_line(sys.stdin)).strip():
            # "rss <expected live handlers> [<settle seconds>]": wait for them, settle,
            # collect, measure.
            words = line.split()
            expected = int(words[1])
            settle = float(words[2]) if len(words) > 2 else SETTLE
            deadline = time.monotonic() + STEP_TIMEOUT
            while state.live != expected:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{state.live} live handlers, expected {expected}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(settle)
            gc.collect()
            result: dict[str, Any] = {
                "rss_kib": rss_kib(),
                "live": state.live,
                "negotiated": state.negotiated,
            }
            if trace:
                snapshot = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)]
                )
                result["traced_bytes"] = sum(s.size for s in snapshot.statistics("filename"))
                if before is None:
                    before = snapshot
                else:
                    result["top"] = [
                        f"{s.size_diff / max(expected, 1):9.0f} B/conn  {s.traceback}"
                        for s in snapshot.compare_to(before, "lineno")[:12]
                    ]
            reply(result)
    os._exit(0)  # skip closing thousands of connections one by one


# ---------------------------------------------------------------------------------------------
# Client process.


async def open_connections(lib: str, config: str, port: int, count: int) -> list[Any]:
    """Open ``count`` connections, exchange one message on each, return them (still open)."""
    uri = f"ws://{HOST}:{port}/"
    options = client_options(config)
    connect: Callable[..., Awaitable[Any]]
    if lib == "wsrs":
        import wsrs

        async def connect(uri: str, **kwargs: Any) -> Any:
            return await wsrs.connect(uri, **kwargs)
    else:
        from websockets.asyncio.client import connect as websockets_connect

        async def connect(uri: str, **kwargs: Any) -> Any:
            return await websockets_connect(uri, **kwargs)

    semaphore = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one() -> Any:
        async with semaphore:
            websocket = await connect(uri, **options)
            await websocket.send(MESSAGE)
            echo = await websocket.recv()
            if echo != MESSAGE:
                raise AssertionError("echo differs from the message sent")
            return websocket

    return list(
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), STEP_TIMEOUT)
    )


class Traffic:
    """The messages of ``--busy``: every connection sends the next message of the JSON stream
    every ``interval`` seconds and waits for its echo, until :meth:`stop`."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.messages = json_stream(RATIO_MESSAGES)
        self.rng = random.Random(7692)
        self.stopping = False
        self.tasks: list[asyncio.Task[None]] = []
        self.sent = 0

    def start(self, websockets: Sequence[Any]) -> None:
        for websocket in websockets:
            self.tasks.append(asyncio.create_task(self.run(websocket)))

    async def run(self, websocket: Any) -> None:
        loop = asyncio.get_running_loop()
        position = self.rng.randrange(len(self.messages))
        next_at = loop.time() + self.rng.uniform(0, self.interval)
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self.stopping:
                return
            message = self.messages[position % len(self.messages)]
            position += 1
            await websocket.send(message)
            if await websocket.recv() != message:
                raise AssertionError("echo differs from the message sent")
            self.sent += 1
            next_at += self.interval

    async def stop(self) -> int:
        """Stop sending; return how many round trips were made."""
        self.stopping = True
        await asyncio.wait_for(asyncio.gather(*self.tasks), STEP_TIMEOUT)
        return self.sent


async def run_client(lib: str, config: str, port: int, connections: int, busy: float) -> None:
    raise_fd_limit()
    warm = await open_connections(lib, config, port, 1)
    for websocket in warm:
        await websocket.close()
    del warm
    reply({"phase": "warm"})
    traffic = Traffic(busy) if busy > 0 else None
    kept: list[Any] = []
    for phase, count in (("half", connections // 2), ("full", connections - connections // 2)):
        if not (await read_line(sys.stdin)).strip():
            break
        opened = await open_connections(lib, config, port, count)
        if traffic is not None:
            traffic.start(opened)
        kept += opened
        reply({"phase": phase, "open": len(kept)})
    # "quiet" stops the traffic; end of file ends the run.
    while (await read_line(sys.stdin)).strip():
        sent = await traffic.stop() if traffic is not None else 0
        reply({"phase": "quiet", "round_trips": sent})
    os._exit(0)


# ---------------------------------------------------------------------------------------------
# Orchestration.


@dataclass
class Result:
    lib: str
    config: str
    connections: int
    negotiated: str = ""
    busy: float = 0.0  # seconds between the messages of each connection (0: one message)
    rss_kib: list[int] = field(default_factory=list)  # baseline, N/2, N
    idle_rss_kib: int | None = None  # N, after --idle seconds
    traced_bytes: list[int] = field(default_factory=list)
    top: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def kib_per_conn(self) -> float:
        return (self.rss_kib[2] - self.rss_kib[0]) / self.connections

    @property
    def idle_kib_per_conn(self) -> float:
        if self.idle_rss_kib is None:
            return self.kib_per_conn
        return (self.idle_rss_kib - self.rss_kib[0]) / self.connections

    @property
    def marginal(self) -> float:
        return (self.rss_kib[2] - self.rss_kib[1]) / (self.connections - self.connections // 2)

    @property
    def py_kib_per_conn(self) -> float:
        return (self.traced_bytes[2] - self.traced_bytes[0]) / self.connections / 1024


class Child:
    """A child process of this script, talking JSON lines on its stdout."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            raise RuntimeError(f"child {self.args} exited early")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> str:
        """End the child (closing its stdin ends both roles); return its stderr."""
        try:
            _, stderr = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, stderr = self.proc.communicate()
        return stderr


def measure(
    lib: str,
    client_lib: str,
    config: str,
    connections: int,
    trace: bool,
    idle: float = 0.0,
    busy: float = 0.0,
) -> Result:
    result = Result(lib, config, connections, busy=busy)
    server = Child(
        ["--role", "server", "--lib", lib, "--config", config] + ["--tracemalloc"] * trace
    )
    client: Child | None = None
    try:
        port = server.receive()["port"]
        client = Child(
            ["--role", "client", "--lib", client_lib, "--config", config]
            + ["--port", str(port), "--connections", str(connections), "--busy", str(busy)]
        )
        for expected in (0, connections // 2, connections):
            if expected:
                client.send("go")
            phase = client.receive()
            if expected and phase.get("open") != expected:
                raise RuntimeError(f"client reports {phase}, expected {expected} open")
            # Busy: the connections exchange messages meanwhile, measured after a while.
            server.send(f"rss {expected} {BUSY_SETTLE if busy and expected else SETTLE}")
            answer = server.receive()
            result.rss_kib.append(answer["rss_kib"])
            result.traced_bytes.append(answer.get("traced_bytes", 0))
            result.top = answer.get("top", [])
            result.negotiated = answer["negotiated"] or ""
        if idle > 0:
            if busy:
                client.send("quiet")
                client.receive()
            server.send(f"rss {connections} {idle}")
            result.idle_rss_kib = server.receive()["rss_kib"]
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        client_err = client.stop() if client is not None else ""
        server_err = server.stop()
        if result.error is not None:
            result.error += f"\n--- server stderr:\n{server_err}\n--- client stderr:\n{client_err}"
    return result


def library_versions() -> str:
    from importlib.metadata import version

    return f"wsrs {version('wsrs')}, websockets {version('websockets')}"


def print_table(results: list[Result], trace: bool) -> None:
    first = "busy KiB/conn" if results and results[0].busy else "KiB/conn"
    header = f"{'config':<9} {'library':<11} {'negotiated':<22} {first:>9} {'2nd half':>9}"
    header += f" {'idle KiB/conn':>13}"
    if trace:
        header += f" {'py KiB/conn':>11}"
    print(header + f" {'wsrs/websockets':>15}")
    by_key = {(r.config, r.lib): r for r in results}
    for r in results:
        if r.error is not None:
            print(f"{r.config:<9} {r.lib:<11} {'error':<22}")
            continue
        row = (
            f"{r.config:<9} {r.lib:<11} {r.negotiated:<22} {r.kib_per_conn:9.1f} {r.marginal:9.1f}"
        )
        row += f" {r.idle_kib_per_conn:13.1f}" if r.idle_rss_kib is not None else f" {'-':>13}"

        if trace:
            row += f" {r.py_kib_per_conn:11.1f}"
        wsrs_r, ws_r = by_key.get((r.config, "wsrs")), by_key.get((r.config, "websockets"))
        ratio = ""
        if (
            wsrs_r is not None
            and ws_r is not None
            and wsrs_r.error is None
            and ws_r.error is None
            and ws_r.idle_kib_per_conn > 0
        ):
            ratio = f"{wsrs_r.idle_kib_per_conn / ws_r.idle_kib_per_conn:.2f}x"
        print(row + f" {ratio:>15}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=None, help="N (default 1000)")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=None)
    parser.add_argument("--libs", nargs="+", choices=LIBS, default=list(LIBS))
    parser.add_argument(
        "--client", choices=LIBS, default=None, help="client library (default: same as server)"
    )
    parser.add_argument("--quick", action="store_true", help="20 connections, default config")
    parser.add_argument(
        "--idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"idle time before the last measurement (default {IDLE:g}; 0 in --quick: skip)",
    )
    parser.add_argument(
        "--busy",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="each connection sends a JSON message every SECONDS (default: one message only)",
    )
    parser.add_argument(
        "--ratio", action="store_true", help="bytes per message of each configuration, and exit"
    )
    parser.add_argument("--tracemalloc", action="store_true", help="trace the servers' Python heap")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--role", choices=["server", "client"], help=argparse.SUPPRESS)
    parser.add_argument("--lib", choices=LIBS, help=argparse.SUPPRESS)
    parser.add_argument("--config", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.role == "server":
        asyncio.run(run_server(args.lib, args.config, args.tracemalloc))
        return 0
    if args.role == "client":
        asyncio.run(run_client(args.lib, args.config, args.port, args.connections, args.busy))
        return 0
    if args.ratio:
        print_ratios(args.configs or list(CONFIGS), args.libs)
        return 0

    connections: int = args.connections or (20 if args.quick else 1000)
    idle: float = args.idle if args.idle is not None else (0.0 if args.quick else IDLE)
    configs: list[str] = args.configs or (["default"] if args.quick else list(CONFIGS))
    if connections < 2:
        parser.error("--connections must be at least 2")
    limit = raise_fd_limit()
    print(
        f"{library_versions()}, Python {platform.python_version()}, {platform.machine()}; "
        f"N={connections} "
        + (f"connections busy every {args.busy:g} s" if args.busy else "idle connections")
        + f", server RSS; fd limit {limit}"
    )
    if limit < connections + FD_MARGIN:
        print(
            f"skipped: the RLIMIT_NOFILE hard limit ({limit}) is below the "
            f"{connections + FD_MARGIN} descriptors needed for {connections} connections"
        )
        return 0
    results: list[Result] = []
    for i, config in enumerate(configs):
        libs = list(args.libs) if i % 2 == 0 else list(reversed(args.libs))
        for lib in libs:
            if lib != "wsrs" and config in WSRS_ONLY:
                continue
            result = measure(
                lib, args.client or lib, config, connections, args.tracemalloc, idle, args.busy
            )
            results.append(result)
            if result.error is not None:
                print(f"{config} {lib}: {result.error}", file=sys.stderr)
    results.sort(key=lambda r: (configs.index(r.config), LIBS.index(r.lib)))
    print_table(results, args.tracemalloc)
    for r in results:
        if r.top:
            print(f"\ntop Python allocation sites, {r.lib} {r.config} (baseline -> N):")
            print("\n".join(r.top))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {"versions": library_versions(), "results": [asdict(r) for r in results]}, out
            )
    return 1 if any(r.error is not None for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
