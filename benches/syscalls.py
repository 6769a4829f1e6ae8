"""System calls per message, counted by ``strace -c -f``: what one round trip costs each end.

An echo server and its client run in two processes, each under ``strace -f -c`` (every
thread counted, a summary per process). The client makes ``N`` round trips of a 32-byte
text message (``rt-32B`` of ``echo_compare.py``), then the same again from scratch with
``2 N``; the difference divided by ``N`` is the cost of one more round trip (one message in
and one out at each end), start-up, handshake and closing cancelled out::

    python benches/syscalls.py                                 # both transports, asyncio loop
    python benches/syscalls.py --loop uvloop --libs wsrs.asyncio --transports native
    PYTHONPATH=/tmp/before/python python benches/syscalls.py   # another build of wsrs
    python benches/syscalls.py --workload churn-64B            # per connection instead

With ``--workload churn-64B`` the unit is a connection instead (``churn-64B`` of
``echo_compare.py``, one client at a time): open it, one round trip of 64 bytes, close it;
``N`` connections then ``2 N``, the difference divided by ``N``.

One table per library, transport and loop: the system calls per round trip by name, for
the server and the client, and their total. ``epoll_wait`` is the event loop's wake-up
(asyncio's ``select``); ``recvfrom``/``recvmsg`` and ``sendto``/``sendmsg`` are the socket
I/O of asyncio's transport and of wsrs' native one. Counts of a few calls depend on timing
(a read that finds nothing, a wake-up that comes back empty), so figures move by a few
hundredths between runs: compare builds side by side, not to the third decimal.
Needs ``strace`` (``apt-get install strace``) and a kernel that lets it trace its children.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import echo_compare as ec  # noqa: E402


WORKLOAD = "rt-32B"
CHURN = "churn-64B"
DEFAULT_LIBS = "wsrs,wsrs.asyncio"
DEFAULT_TRANSPORTS = "asyncio,native"
TRANSPORTS = ("asyncio", "native")
ENDS = ("server", "client")
# A row of strace -c: % time, seconds, usecs/call, calls, [errors,] syscall.
SUMMARY_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


async def client(lib: str, port: int, count: int, workload: str) -> None:
    """Connect to the echo server on ``port`` and make ``count`` round trips, or, for
    :data:`CHURN`, ``count`` connections of one round trip each, one after the other."""
    adapter = ec.ADAPTERS[lib]
    payload = ec.WORKLOADS[workload].payload()
    connections, per_connection = (count, 1) if workload == CHURN else (1, count)
    for _ in range(connections):
        async with adapter.connect(ec.HOST, port, "off") as channel:
            await ec.round_trips(channel, payload, per_connection)


def parse_summary(text: str) -> Counter[str]:
    """The calls per system call of an ``strace -c`` summary (its ``total`` row left out)."""
    calls: Counter[str] = Counter()
    for line in text.splitlines():
        found = SUMMARY_ROW.match(line)
        if found is not None and found.group(2) != "total":
            calls[found.group(2)] += int(found.group(1))
    return calls


def traced(role: str, lib: str, loop_name: str, out: str, *extra: str) -> list[str]:
    """The command that runs this script's ``role`` under ``strace -f -c`` into ``out``."""
    script = os.path.abspath(__file__)
    command = [sys.executable, script, f"--role={role}", f"--libs={lib}", f"--loop={loop_name}"]
    return ["strace", "-f", "-c", "-o", out, "--", *command, *extra]


def count_calls(
    lib: str, transport: str, loop_name: str, count: int, workload: str
) -> dict[str, Counter[str]]:
    """System calls of the server and of the client for ``count`` round trips (or
    connections, for :data:`CHURN`)."""
    env = dict(os.environ, WSRS_TRANSPORT=transport)
    with tempfile.TemporaryDirectory() as scratch:
        outs = {end: os.path.join(scratch, end) for end in ENDS}
        server = subprocess.Popen(
            traced("server", lib, loop_name, outs["server"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert server.stdin is not None and server.stdout is not None
        try:
            line = server.stdout.readline()
            if not line.startswith("READY "):
                raise RuntimeError(f"{lib} server failed to start (got {line!r})")
            port = line.split()[1]
            done = subprocess.run(
                traced(
                    "client",
                    lib,
                    loop_name,
                    outs["client"],
                    f"--port={port}",
                    f"--count={count}",
                    f"--workload={workload}",
                ),
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"{lib} client failed (status {done.returncode}):\n{done.stderr}"
                )
        finally:
            server.stdin.close()  # the server stops when its stdin closes
            server.wait(timeout=60)
            server.stdout.close()
        calls = {}
        for end in ENDS:
            with open(outs[end]) as summary:
                calls[end] = parse_summary(summary.read())
    return calls


def per_message(
    lib: str, transport: str, loop_name: str, count: int, workload: str = WORKLOAD
) -> dict[str, dict[str, float]]:
    """System calls per round trip (or connection), by end and name:
    ``(calls(2 N) - calls(N)) / N``."""
    short = count_calls(lib, transport, loop_name, count, workload)
    long = count_calls(lib, transport, loop_name, 2 * count, workload)
    return {
        end: {
            name: (long[end][name] - short[end][name]) / count
            for name in long[end].keys() | short[end].keys()
        }
        for end in ENDS
    }


def format_table(title: str, costs: dict[str, dict[str, float]]) -> str:
    """A markdown table: one row per system call that costs at least 0.01 per round trip
    at either end (most first), then the total."""
    names = sorted(
        (name for name in costs["server"].keys() | costs["client"].keys()),
        key=lambda name: (-(costs["server"].get(name, 0) + costs["client"].get(name, 0)), name),
    )
    lines = [title, "| system call | server | client |", "| --- | ---: | ---: |"]
    for name in names:
        server, client = costs["server"].get(name, 0.0), costs["client"].get(name, 0.0)
        if abs(server) >= 0.005 or abs(client) >= 0.005:
            lines.append(f"| {name} | {server:.2f} | {client:.2f} |")
    totals = [sum(costs[end].values()) for end in ENDS]
    lines.append(f"| **total** | **{totals[0]:.2f}** | **{totals[1]:.2f}** |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libs", default=DEFAULT_LIBS, help=f"({DEFAULT_LIBS})")
    parser.add_argument(
        "--transports", default=DEFAULT_TRANSPORTS, help=f"WSRS_TRANSPORT ({DEFAULT_TRANSPORTS})"
    )
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--workload", choices=(WORKLOAD, CHURN), default=WORKLOAD)
    parser.add_argument(
        "--count", type=int, default=2000, help="round trips (connections) of the short run"
    )
    parser.add_argument("--role", choices=("main", "server", "client"), default="main")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    libs = args.libs.split(",")
    transports = args.transports.split(",")
    for lib in libs:
        if lib not in ec.ADAPTERS:
            raise SystemExit(f"unknown library {lib!r}; choose from {', '.join(ec.ADAPTERS)}")
    for transport in transports:
        if transport not in TRANSPORTS:
            raise SystemExit(f"unknown transport {transport!r}; choose from asyncio, native")
    if args.role == "server":
        ec.run_in_loop(ec.server_main(ec.ADAPTERS[libs[0]], "off"), args.loop)
        return 0
    if args.role == "client":
        ec.run_in_loop(client(libs[0], args.port, args.count, args.workload), args.loop)
        return 0
    for lib in libs:
        for transport in transports:
            costs = per_message(lib, transport, args.loop, args.count, args.workload)
            unit = "connection" if args.workload == CHURN else "round trip"
            title = (
                f"system calls per {unit} of {args.workload}, {lib}, transport {transport}, "
                f"loop {args.loop}; strace -c -f, {args.count} and {2 * args.count} {unit}s"
            )
            print(format_table(title, costs) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
