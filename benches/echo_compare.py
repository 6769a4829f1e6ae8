"""Side-by-side echo benchmark: wsrs against the ``websockets`` library.

Run everything (5 workloads, 3 repeats, asyncio loop; a few minutes)::

    python benches/echo_compare.py
    python benches/echo_compare.py --loop uvloop --json out.json
    python benches/echo_compare.py --quick          # smoke run, tiny counts, < 15 s

Each library is measured against itself (wsrs client to wsrs server, websockets client to
websockets server). For every library one server process is started at the beginning
(``--role server``, listening on an ephemeral port of 127.0.0.1, which it prints on stdout);
every measurement is a fresh client process (``--role client``) that opens one connection,
warms up, times its workload and prints one JSON line. Measurements are interleaved: each
repeat runs every workload for every library in turn (the library order alternates between
repeats), so machine drift hits every library alike. The table gives the median over repeats.

Both sides of both libraries use ``compression=None`` and ``max_size=2**21``; every other
option keeps its default. Messages are binary; every echo is checked against what was sent.
A failing (library, workload) shows as ``error`` in the table (its traceback is printed) and
makes the exit status 1; the other measurements go on. ``msg/s`` counts round trips (one
message out, the same message back) per second; ``MB/s`` is payload bytes per second in one
direction (``msg/s * size / 1e6``).

Adding a library (aiohttp, picows, a raw ``asyncio.Protocol`` ceiling) means writing one
:class:`Adapter` subclass -- ``serve`` (an echo server on a port) and ``connect`` (a client
connection with ``send``/``recv``) -- and registering it in :data:`ADAPTERS`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Protocol, TypeVar


HOST = "127.0.0.1"
MAX_SIZE = 2**21
T = TypeVar("T")
CLIENT_TIMEOUT = 300.0  # seconds a client process may take before the run is aborted


# ---------------------------------------------------------------------------------------------
# Adapters: one per library.


class Channel(Protocol):
    """A client connection, as the workloads see it."""

    async def send(self, message: bytes, /) -> None: ...

    async def recv(self) -> bytes: ...


class Adapter(ABC):
    """What the benchmark needs from a library: an echo server and a client connection."""

    name: str

    @abstractmethod
    def serve(self, host: str, port: int) -> contextlib.AbstractAsyncContextManager[int]:
        """Run an echo server on ``host:port`` (0: any free port); yield the bound port."""

    @abstractmethod
    def connect(self, host: str, port: int) -> contextlib.AbstractAsyncContextManager[Channel]:
        """Open a client connection to the echo server at ``host:port``."""


def _as_bytes(message: str | bytes) -> bytes:
    if isinstance(message, str):
        raise TypeError("expected a binary message, got a text message")
    return message


class _RecvBytes:
    """Wrap a connection whose ``recv`` returns ``str | bytes`` into a :class:`Channel`."""

    def __init__(
        self,
        send: Callable[[bytes], Any],
        recv: Callable[[], Any],
    ) -> None:
        self._send = send
        self._recv = recv

    async def send(self, message: bytes, /) -> None:
        await self._send(message)

    async def recv(self) -> bytes:
        message: str | bytes = await self._recv()
        return _as_bytes(message)


class WsrsAdapter(Adapter):
    name = "wsrs"

    @contextlib.asynccontextmanager
    async def serve(self, host: str, port: int) -> AsyncIterator[int]:
        import wsrs

        async def echo(websocket: wsrs.WebSocketServerProtocol) -> None:
            async for message in websocket:
                await websocket.send(message)

        async with wsrs.serve(echo, host, port, compression=None, max_size=MAX_SIZE) as server:
            yield int(server.sockets[0].getsockname()[1])

    @contextlib.asynccontextmanager
    async def connect(self, host: str, port: int) -> AsyncIterator[Channel]:
        import wsrs

        uri = f"ws://{host}:{port}/"
        async with wsrs.connect(uri, compression=None, max_size=MAX_SIZE) as websocket:
            yield _RecvBytes(websocket.send, websocket.recv)


class WebsocketsAdapter(Adapter):
    name = "websockets"

    @contextlib.asynccontextmanager
    async def serve(self, host: str, port: int) -> AsyncIterator[int]:
        from websockets.asyncio.server import ServerConnection, serve

        async def echo(websocket: ServerConnection) -> None:
            async for message in websocket:
                await websocket.send(message)

        async with serve(echo, host, port, compression=None, max_size=MAX_SIZE) as server:
            yield int(next(iter(server.sockets)).getsockname()[1])

    @contextlib.asynccontextmanager
    async def connect(self, host: str, port: int) -> AsyncIterator[Channel]:
        from websockets.asyncio.client import connect

        uri = f"ws://{host}:{port}/"
        async with connect(uri, compression=None, max_size=MAX_SIZE) as websocket:
            yield _RecvBytes(websocket.send, websocket.recv)


ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter for adapter in (WsrsAdapter(), WebsocketsAdapter())
}


# ---------------------------------------------------------------------------------------------
# Workloads.


@dataclass(frozen=True)
class Workload:
    name: str
    size: int  # bytes per message
    count: int  # messages per measurement
    quick_count: int  # messages per measurement with --quick
    batch: int = 1  # messages sent before reading their echoes (1: sequential round trips)

    def payload(self) -> bytes:
        return bytes(i % 251 for i in range(self.size))


# Counts aim at 1-2 s per measurement for either library on a typical machine. Pipelined
# batches stay small enough (100 KiB) to fit in socket buffers plus each library's receive
# queue, so that neither side can block on a full buffer of the other.
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("rt-64B", 64, 20_000, 200),
        Workload("rt-1KiB", 1024, 20_000, 200),
        Workload("rt-64KiB", 64 * 1024, 3_000, 50),
        Workload("rt-1MiB", 1024 * 1024, 200, 5),
        Workload("pipe-1KiB", 1024, 40_000, 400, batch=100),
    )
}


async def run_workload(channel: Channel, payload: bytes, count: int, batch: int) -> float:
    """Echo ``count`` messages through ``channel``, ``batch`` at a time; return seconds."""
    send, recv = channel.send, channel.recv
    start = time.perf_counter()
    remaining = count
    while remaining > 0:
        n = min(batch, remaining)
        for _ in range(n):
            await send(payload)
        for _ in range(n):
            reply = await recv()
            if reply != payload:
                raise AssertionError(f"bad echo: {len(reply)} bytes instead of {len(payload)}")
        remaining -= n
    return time.perf_counter() - start


async def client_main(adapter: Adapter, port: int, workload: Workload, count: int) -> float:
    payload = workload.payload()
    async with adapter.connect(HOST, port) as channel:
        warmup = max(1, min(count // 10, 500))
        await run_workload(channel, payload, warmup, min(workload.batch, warmup))
        return await run_workload(channel, payload, count, workload.batch)


async def server_main(adapter: Adapter, port: int) -> None:
    """Serve until SIGTERM or until stdin closes (the parent exited)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def watch_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with adapter.serve(HOST, port) as bound:
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

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.seconds)

    @property
    def msgs_per_s(self) -> float:
        return self.count / statistics.median(self.seconds) if self.ok else math.nan

    @property
    def mb_per_s(self) -> float:
        return self.msgs_per_s * self.size / 1e6


def child_command(role: str, lib: str, port: int, loop_name: str) -> list[str]:
    return [
        sys.executable,
        os.path.abspath(__file__),
        "--role",
        role,
        "--lib",
        lib,
        "--port",
        str(port),
        "--loop",
        loop_name,
    ]


class BenchmarkError(Exception):
    """A server or client process failed."""


class ServerProcess:
    def __init__(self, lib: str, loop_name: str) -> None:
        self.lib = lib
        self.proc = subprocess.Popen(
            child_command("server", lib, 0, loop_name),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.proc.kill()
            self.proc.wait()
            raise BenchmarkError(f"{lib} server failed to start (got {line!r})")
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


def measure(server: ServerProcess, workload: Workload, count: int, loop_name: str) -> float:
    command = child_command("client", server.lib, server.port, loop_name)
    command += ["--workload", workload.name, "--count", str(count)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{server.lib} client timed out on {workload.name}") from None
    if done.returncode != 0:
        server.check()
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(
            f"{server.lib} client failed on {workload.name} (status {done.returncode}): {last}\n"
            + done.stderr
        )
    seconds = float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
    return seconds


def format_table(results: dict[tuple[str, str], Result], libs: list[str], names: list[str]) -> str:
    baseline = "websockets"
    header = ["workload"]
    for lib in libs:
        header += [f"{lib} msg/s", f"{lib} MB/s"]
    others = [lib for lib in libs if lib != baseline] if baseline in libs else []
    header += [f"{lib}/{baseline}" for lib in others]
    rows = [header]
    for name in names:
        row = [name]
        for lib in libs:
            r = results[lib, name]
            row += [f"{r.msgs_per_s:,.0f}", f"{r.mb_per_s:,.1f}"] if r.ok else ["error", "error"]
        for lib in others:
            if results[lib, name].ok and results[baseline, name].ok:
                ratio = results[lib, name].msgs_per_s / results[baseline, name].msgs_per_s
                row.append(f"{ratio:.2f}x")
            else:
                row.append("-")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def versions() -> dict[str, str]:
    from websockets.version import version as websockets_version

    import wsrs

    return {
        "python": platform.python_version(),
        "wsrs": wsrs.__version__,
        "websockets": websockets_version,
    }


def coordinate(args: argparse.Namespace, out: IO[str]) -> dict[str, Any]:
    libs: list[str] = args.libs
    names: list[str] = args.workloads
    repeats: int = 1 if args.quick else args.repeats
    results = {
        (lib, name): Result(
            lib,
            name,
            WORKLOADS[name].size,
            WORKLOADS[name].quick_count if args.quick else WORKLOADS[name].count,
            [],
        )
        for lib in libs
        for name in names
    }
    info = versions() | {"loop": args.loop, "repeats": str(repeats), "cpus": str(os.cpu_count())}
    print("echo_compare: " + ", ".join(f"{k} {v}" for k, v in info.items()), file=out, flush=True)
    servers: dict[str, ServerProcess] = {}
    try:
        for lib in libs:
            try:
                servers[lib] = ServerProcess(lib, args.loop)
            except BenchmarkError as exc:
                for name in names:
                    results[lib, name].error = str(exc)
                print(f"error: {exc}", file=out, flush=True)
        for repeat in range(repeats):
            order = libs if repeat % 2 == 0 else libs[::-1]
            for name in names:
                for lib in order:
                    result = results[lib, name]
                    if result.error is not None:
                        continue
                    try:
                        seconds = measure(servers[lib], WORKLOADS[name], result.count, args.loop)
                    except BenchmarkError as exc:
                        result.error = str(exc)
                        # The whole error for a library's first failure, one line afterwards.
                        first = not any(results[lib, n].error for n in names if n != name)
                        message = str(exc) if first else str(exc).splitlines()[0]
                        print(f"error: {message}", file=out, flush=True)
                        continue
                    result.seconds.append(seconds)
                    if args.verbose:
                        rate = result.count / seconds
                        print(
                            f"  repeat {repeat + 1}/{repeats} {name:<10} {lib:<10} "
                            f"{seconds:7.3f} s  {rate:10,.0f} msg/s",
                            file=out,
                            flush=True,
                        )
    finally:
        for server in servers.values():
            server.stop()
    print(file=out)
    print(format_table(results, libs, names), file=out, flush=True)
    return {
        "info": info,
        "results": [
            asdict(r)
            | {
                "msgs_per_s": r.msgs_per_s if r.ok else None,
                "mb_per_s": r.mb_per_s if r.ok else None,
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
        default=list(ADAPTERS),
        help=f"comma-separated subset of {','.join(ADAPTERS)} (all)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every measurement")
    # Internal: how the coordinator starts its server and client processes.
    parser.add_argument("--role", choices=["main", "server", "client"], default="main")
    parser.add_argument("--lib", choices=list(ADAPTERS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.role != "main" and args.lib is None:
        parser.error(f"--role {args.role} needs --lib")
    if args.role == "client" and (args.workload is None or args.count is None or not args.port):
        parser.error("--role client needs --workload, --count and --port")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "server":
        run_in_loop(server_main(ADAPTERS[args.lib], args.port), args.loop)
        return 0
    if args.role == "client":
        workload = WORKLOADS[args.workload]
        coro = client_main(ADAPTERS[args.lib], args.port, workload, args.count)
        seconds = run_in_loop(coro, args.loop)
        print(json.dumps({"seconds": seconds}), flush=True)
        return 0
    report = coordinate(args, sys.stdout)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return 1 if any(r["error"] is not None for r in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
