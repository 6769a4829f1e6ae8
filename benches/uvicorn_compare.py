"""ASGI echo benchmark: wsrs.uvicorn against uvicorn's other WebSocket protocols and granian.

Run everything (5 workloads, 4 servers, 3 repeats, both loops one after the other)::

    python benches/uvicorn_compare.py
    python benches/uvicorn_compare.py --loop uvloop --json out.json
    python benches/uvicorn_compare.py --quick          # smoke run, tiny counts, < 30 s
    python benches/uvicorn_compare.py --servers wsrs,granian --workloads pipe-1KiB

Every server runs the same ASGI application, the plain echo of ``compliance/uvicorn_echo.py``
(``uvicorn_echo:echo``), in a process of its own:

- ``wsrs``, ``websockets-sansio``, ``wsproto``: ``uvicorn.Server(uvicorn.Config(app,
  ws=..., http="httptools", loop=..., log_level="warning", ws_per_message_deflate=...))``
  with ``ws`` set to ``wsrs.uvicorn:WebSocketProtocol``, ``websockets-sansio`` and
  ``wsproto`` (uvicorn's own protocols; ``lifespan="off"``, since the echo application does
  not speak the lifespan protocol); other options are uvicorn's defaults;
- ``granian``: ``granian --interface asginl --ws --workers 1 --loop ...`` (``asginl`` is
  granian's ASGI interface without the lifespan protocol), with its defaults otherwise
  (one Rust runtime thread next to the Python thread that runs the application). granian
  negotiates no permessage-deflate, so it has no deflate row (a probe at start-up checks).

The client is the same for every server: echo_compare's client processes
(``benches/echo_compare.py --role client``), by default with wsrs' client (``--client``
picks another of echo_compare's libraries), and so are the workloads: this module imports
``echo_compare`` (it is run as a script, so its own directory, ``benches/``, is on
``sys.path``) and uses its ``WORKLOADS``, ``Job``, ``measure`` and ``Result`` unchanged.

Workloads (``msg/s`` counts round trips per second):

- ``rt-32B``, ``rt-1KiB``: sequential round trips of binary messages on one connection;
- ``pipe-1KiB``: pipelined binary messages, at most 100 in flight, on one connection;
- ``conc-1KiB``: 200 connections at once, each doing sequential round trips of 1 KiB;
- ``deflate-dflt``: 64 KiB of JSON-like text; the server runs with
  ``ws_per_message_deflate=True`` (each uvicorn protocol with its own settings: 12-bit
  windows for wsrs and websockets-sansio, wsproto's 15-bit defaults) and the client offers
  permessage-deflate with its defaults. Every other workload runs against a server with
  ``ws_per_message_deflate=False`` and a client that offers no compression.

Method: for each loop (``--loop``: uvicorn's ``loop`` setting, granian's ``--loop`` and the
client's loop), one server process per (server, compression) is started; each measurement is
a fresh client process (with ``--quick``, one client process per server runs all
workloads). Repeats are interleaved: each runs every workload for every server in turn, in
an order that alternates between repeats. The table gives the median msg/s over repeats,
then wsrs over the best of uvicorn's two pure-Python protocols (websockets-sansio, which
uses websockets' C masking helper, and wsproto) and wsrs over granian. The goal of issue
#14 is at least 2x the best pure-Python protocol on ``pipe-1KiB`` and ``conc-1KiB`` and more
than 1x granian wherever it runs; a line under each table says whether it is met. A failing
measurement shows as ``error`` and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import IO, Any

import echo_compare as ec


HOST = ec.HOST
COMPLIANCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compliance")
APP = "uvicorn_echo:echo"  # in COMPLIANCE: on sys.path for uvicorn, granian's --working-dir
START_TIMEOUT = 30.0  # seconds a server may take to answer its first HTTP request
LOOPS = ("asyncio", "uvloop")
BASELINE = "wsrs"
PURE_PYTHON = ("websockets-sansio", "wsproto")
GRANIAN = "granian"
GOAL_ROWS = ("pipe-1KiB", "conc-1KiB")  # where issue #14 asks for 2x the pure-Python best
GOAL_RATIO = 2.0


@dataclass(frozen=True)
class Server:
    """One of the compared servers: how to check it is here and how to start it."""

    name: str
    ws: str | None  # uvicorn's ``ws`` setting; None for granian
    module: str  # what must be importable
    package: str  # what to pip install

    def missing(self) -> str | None:
        """Why this server cannot run here, or None."""
        try:
            found = importlib.util.find_spec(self.module) is not None
        except ImportError:
            found = False
        return None if found else f"{self.module} is not installed (pip install {self.package})"

    def version(self) -> str:
        version = importlib.metadata.version(self.package)
        if self.ws is None:
            return version
        return f"{version} on uvicorn {importlib.metadata.version('uvicorn')}"

    def command(self, port: int, deflate: bool, loop_name: str) -> list[str]:
        if self.ws is None:
            return [
                sys.executable,
                "-m",
                "granian",
                "--interface",
                "asginl",
                "--ws",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "1",
                "--loop",
                loop_name,
                "--log-level",
                "warning",
                "--working-dir",
                COMPLIANCE,
                APP,
            ]
        return [
            sys.executable,
            os.path.abspath(__file__),
            "--role",
            "server",
            "--server",
            self.name,
            "--port",
            str(port),
            "--loop",
            loop_name,
        ] + (["--deflate"] if deflate else [])


SERVERS: dict[str, Server] = {
    server.name: server
    for server in (
        Server(BASELINE, "wsrs.uvicorn:WebSocketProtocol", "wsrs.uvicorn", "wsrs"),
        Server("websockets-sansio", "websockets-sansio", "websockets", "websockets"),
        Server("wsproto", "wsproto", "wsproto", "wsproto"),
        Server(GRANIAN, None, "granian", "granian"),
    )
}

# Round trips per measurement, over all connections, and with --quick. On 2 shared cores a
# measurement takes 1-3 s (granian's pipe-1KiB about 7 s: it echoes about 3,000 msg/s however
# many messages are in flight) and a full run of one loop with 5 repeats about 3.5 minutes.
COUNTS: dict[str, tuple[int, int]] = {
    "rt-32B": (6_000, 200),
    "rt-1KiB": (6_000, 200),
    "pipe-1KiB": (20_000, 400),
    "conc-1KiB": (10_000, 500),
    "deflate-dflt": (600, 20),
}
WORKLOADS: dict[str, ec.Workload] = {
    name: dataclasses.replace(ec.WORKLOADS[name], count=count, quick_count=quick)
    for name, (count, quick) in COUNTS.items()
}


def serve_uvicorn(server: Server, port: int, deflate: bool, loop_name: str) -> None:
    """Run uvicorn with ``server``'s WebSocket protocol until SIGTERM or until stdin closes."""
    import uvicorn

    assert server.ws is not None
    sys.path.insert(0, COMPLIANCE)  # what uvicorn's --app-dir does
    config = uvicorn.Config(
        APP,
        host=HOST,
        port=port,
        ws=server.ws,
        http="httptools",
        loop=loop_name,
        lifespan="off",
        log_level="warning",
        ws_per_message_deflate=deflate,
    )
    instance = uvicorn.Server(config)

    def watch_stdin() -> None:  # the coordinator exited without stopping us
        sys.stdin.read()
        instance.should_exit = True

    threading.Thread(target=watch_stdin, daemon=True).start()
    instance.run()


# ---------------------------------------------------------------------------------------------
# Coordinator.


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now, all different (held open together while chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def read_head(sock: socket.socket) -> list[str]:
    """Read an HTTP response head; return its lines (the status line first)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")


class ServerProcess:
    """One server with one compression setting, in its own process."""

    def __init__(self, server: Server, deflate: bool, loop_name: str, port: int) -> None:
        self.server = server
        self.deflate = deflate
        self.port = port
        self.proc = subprocess.Popen(
            server.command(port, deflate, loop_name),
            stdin=subprocess.PIPE if server.ws is not None else subprocess.DEVNULL,
        )

    def ready(self) -> None:
        """Wait until the server answers a plain HTTP request (the echo application's 426)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.check()
            with contextlib.suppress(OSError):
                with socket.create_connection((HOST, self.port), timeout=2) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    if read_head(sock)[0].startswith("HTTP/1.1 "):
                        return
            if time.monotonic() > deadline:
                raise ec.BenchmarkError(f"{self.server.name} did not answer on port {self.port}")
            time.sleep(0.1)

    def negotiates_deflate(self) -> bool:
        """Open a connection offering permessage-deflate; tell whether the server accepted it."""
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        )
        with socket.create_connection((HOST, self.port), timeout=5) as sock:
            sock.sendall(request.encode())
            status, *headers = read_head(sock)
            if not status.startswith("HTTP/1.1 101"):
                raise ec.BenchmarkError(f"{self.server.name} refused the probe: {status!r}")
            negotiated = any(
                name.strip().lower() == "sec-websocket-extensions" and "permessage-deflate" in value
                for name, _, value in (header.partition(":") for header in headers)
            )
            # A close frame, code 1000, masked with a zero key; then wait for the server's.
            sock.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
            with contextlib.suppress(OSError):
                sock.recv(64)
        return negotiated

    def check(self) -> None:
        if self.proc.poll() is not None:
            name = self.server.name
            raise ec.BenchmarkError(f"{name} server exited with status {self.proc.returncode}")

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


Results = dict[tuple[str, str], ec.Result]


def best_pure_python(results: Results, name: str) -> ec.Result | None:
    candidates = [
        results[server, name]
        for server in PURE_PYTHON
        if (server, name) in results and results[server, name].ok
    ]
    return max(candidates, key=lambda r: r.msgs_per_s, default=None)


def ratio(results: Results, name: str, ref: ec.Result | None) -> float:
    mine = results.get((BASELINE, name))
    if mine is None or not mine.ok or ref is None or not ref.ok:
        return math.nan
    return mine.msgs_per_s / ref.msgs_per_s


def ratios(results: Results, name: str) -> tuple[float, float]:
    """wsrs over the best pure-Python protocol and over granian, for one workload."""
    return (
        ratio(results, name, best_pure_python(results, name)),
        ratio(results, name, results.get((GRANIAN, name))),
    )


def format_table(results: Results, servers: list[str], names: list[str], loop_name: str) -> str:
    """A markdown table: msg/s per workload and server, then the two ratios."""

    def cell(r: ec.Result) -> str:
        if r.unsupported:
            return "-"
        if r.error is not None:
            return "error"
        return format(r.msgs_per_s, ",.0f")

    def ratio_cell(number: float) -> str:
        return "-" if math.isnan(number) else f"{number:.2f}x"

    header = [f"{loop_name}: msg/s", *servers, "wsrs / best pure Python", "wsrs / granian"]
    rows = [header]
    for name in names:
        pure, granian = ratios(results, name)
        cells = [cell(results[server, name]) for server in servers]
        rows.append([name, *cells, ratio_cell(pure), ratio_cell(granian)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if i == 0:
            rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
            lines.append("| " + " | ".join(rule) + " |")
    return "\n".join(lines)


def goal_line(results: Results, names: list[str]) -> str:
    """Whether issue #14's goal is met in these results."""
    parts = []
    for name in GOAL_ROWS:
        if name in names:
            pure, _ = ratios(results, name)
            if not math.isnan(pure):
                verdict = "met" if pure >= GOAL_RATIO else "NOT met"
                parts.append(f"{name} {pure:.2f}x >= {GOAL_RATIO:g}x {verdict}")
    behind = [name for name in names if ratios(results, name)[1] <= 1.0]
    compared = [name for name in names if not math.isnan(ratios(results, name)[1])]
    if compared:
        parts.append(
            "ahead of granian on every row" if not behind else f"behind granian on {behind}"
        )
    return "goal (issue #14): " + ("; ".join(parts) if parts else "nothing to compare")


def run_loop(args: argparse.Namespace, loop_name: str, servers: list[str], out: IO[str]) -> Results:
    """Measure every (server, workload) on one loop; print the table; return the results."""
    names: list[str] = args.workloads
    repeats: int = 1 if args.quick else args.repeats
    results: Results = {}
    for server in servers:
        for name in names:
            w = WORKLOADS[name]
            count = w.quick_count if args.quick else w.count
            results[server, name] = ec.Result(server, name, w.size, count)
    needed = sorted(
        {(server, WORKLOADS[name].compression != "off") for server in servers for name in names}
    )
    processes: dict[tuple[str, bool], ServerProcess] = {}

    def fail(server: str, names: list[str], message: str) -> None:
        for name in names:
            results[server, name].error = message.splitlines()[0]
        print(f"error: {message}", file=out, flush=True)

    try:
        ports = free_ports(len(needed))
        for (server, deflate), port in zip(needed, ports, strict=True):  # started together
            processes[server, deflate] = ServerProcess(SERVERS[server], deflate, loop_name, port)
        for (server, deflate), process in processes.items():
            mine = [n for n in names if (WORKLOADS[n].compression != "off") == deflate]
            try:
                process.ready()
                if deflate and not process.negotiates_deflate():
                    if process.server.ws is not None:
                        raise ec.BenchmarkError(f"{server} did not negotiate permessage-deflate")
                    for name in mine:
                        results[server, name].unsupported = True
                    print(
                        f"note: {server} negotiates no permessage-deflate: no {', '.join(mine)}",
                        file=out,
                        flush=True,
                    )
            except (ec.BenchmarkError, OSError) as exc:
                fail(server, mine, str(exc))
        for repeat in range(repeats):
            order = servers if repeat % 2 == 0 else servers[::-1]
            for todo in ec.pending_batches(order, names, args.quick, results):
                server = todo[0][0]
                jobs = []
                for _, name in todo:
                    w = WORKLOADS[name]
                    port = processes[server, w.compression != "off"].port
                    count = results[server, name].count
                    jobs.append(ec.Job(name, port, count, w.conns(args.quick)))
                outcomes = ec.measure(args.client, jobs, [], loop_name)
                for (_, name), outcome in zip(todo, outcomes, strict=True):
                    result = results[server, name]
                    if isinstance(outcome, ec.BenchmarkError):
                        process = processes[server, WORKLOADS[name].compression != "off"]
                        try:
                            process.check()
                        except ec.BenchmarkError as died:
                            fail(server, [name], f"{died}; {outcome}")
                        else:
                            fail(server, [name], f"against {server}: {outcome}")
                        continue
                    result.seconds.append(outcome)
                    if args.verbose:
                        print(
                            f"  {loop_name} repeat {repeat + 1}/{repeats} {name:<12} "
                            f"{server:<17} {outcome:7.3f} s  {result.count / outcome:10,.0f} msg/s",
                            file=out,
                            flush=True,
                        )
    finally:
        for process in processes.values():
            process.stop()
    print(file=out)
    print(format_table(results, servers, names, loop_name), file=out)
    print(goal_line(results, names), file=out, flush=True)
    return results


def coordinate(args: argparse.Namespace, out: IO[str]) -> dict[str, Any]:
    skipped: dict[str, str] = {}
    servers: list[str] = []
    for name in args.servers:
        reason = SERVERS[name].missing()
        if reason is None:
            servers.append(name)
        else:
            skipped[name] = reason
    client = ec.ADAPTERS[args.client]
    reason = client.missing()
    if reason is not None:
        raise SystemExit(f"the {args.client} client cannot run: {reason}")
    unsupported = [name for name in args.workloads if not ec.supports(args.client, WORKLOADS[name])]
    for name in unsupported:
        skipped[name] = f"the {args.client} client has no permessage-deflate"
    args.workloads = [name for name in args.workloads if name not in unsupported]
    versions = {name: SERVERS[name].version() for name in servers}
    versions["httptools"] = importlib.metadata.version("httptools")
    versions[f"client {args.client}"] = client.version()
    if "uvloop" in args.loop:
        versions["uvloop"] = importlib.metadata.version("uvloop")
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "loops": args.loop,
        "repeats": 1 if args.quick else args.repeats,
        "cpus": os.cpu_count(),
        "client": args.client,
        "versions": versions,
        "skipped": skipped,
    }
    print(
        f"uvicorn_compare: python {info['python']}, loops {', '.join(args.loop)}, "
        f"{info['repeats']} repeat(s), {info['cpus']} cpus; "
        + ", ".join(f"{name} {version}" for name, version in versions.items()),
        file=out,
        flush=True,
    )
    for name, reason in skipped.items():
        print(f"note: skipped {name}: {reason}", file=out, flush=True)

    def number(x: float) -> float | None:
        return None if math.isnan(x) else x

    loops: dict[str, Any] = {}
    for loop_name in args.loop:
        results = run_loop(args, loop_name, servers, out)
        loops[loop_name] = {
            "results": [asdict(r) | {"msgs_per_s": number(r.msgs_per_s)} for r in results.values()],
            "ratios": {
                name: {
                    "wsrs_to_best_pure_python": number(ratios(results, name)[0]),
                    "wsrs_to_granian": number(ratios(results, name)[1]),
                }
                for name in args.workloads
            },
        }
    for name, reason in skipped.items():
        print(f"note: skipped {name}: {reason}", file=out, flush=True)
    return {"info": info, "servers": servers, "workloads": args.workloads, "loops": loops}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--loop",
        type=ec.comma_list(list(LOOPS)),
        default=list(LOOPS),
        help="comma-separated loops, each run in turn (asyncio,uvloop)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement (3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny counts, 1 repeat")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--workloads",
        type=ec.comma_list(list(WORKLOADS)),
        default=list(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (all)",
    )
    parser.add_argument(
        "--servers",
        type=ec.comma_list(list(SERVERS)),
        default=list(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)} (all installed)",
    )
    clients = [
        name
        for name in ec.ADAPTERS
        if name not in (ec.WsrsBaselineAdapter.name, ec.CEILING)  # raw speaks no WebSocket
    ]
    parser.add_argument(
        "--client",
        choices=clients,
        default=BASELINE,
        help="the client of every server (wsrs); one without permessage-deflate (picows) "
        "skips the deflate row",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every measurement")
    # Internal: how the coordinator starts a uvicorn server process.
    parser.add_argument("--role", choices=["main", "server"], default="main")
    uvicorn_servers = [name for name, server in SERVERS.items() if server.ws is not None]
    parser.add_argument("--server", choices=uvicorn_servers, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--deflate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if "uvloop" in args.loop and importlib.util.find_spec("uvloop") is None:
        parser.error("uvloop is not installed (pip install uvloop)")
    if args.role == "server" and (args.server is None or args.port is None):
        parser.error("--role server needs --server and --port")
    if args.role == "server" and len(args.loop) != 1:
        parser.error("--role server needs one --loop")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "server":
        serve_uvicorn(SERVERS[args.server], args.port, args.deflate, args.loop[0])
        return 0
    report = coordinate(args, sys.stdout)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    errors = (r["error"] for loop in report["loops"].values() for r in loop["results"])
    return 1 if any(error is not None for error in errors) else 0


if __name__ == "__main__":
    sys.exit(main())
