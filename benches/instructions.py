"""Instructions per message, counted by Valgrind: the echo workloads of ``echo_compare.py``
without the clock, for comparing two front ends (or two builds) on a noisy machine.

Timed runs on a shared 2-core machine drift 1.3-2x between runs, more than the few per cent
that separate two front ends of wsrs on the same core. The number of instructions a process
executes does not drift: this script runs an echo server and its clients in one process
under ``valgrind --tool=callgrind`` twice, once with ``N`` messages and once with ``2 N``,
and reports ``(instructions(2 N) - instructions(N)) / N``, the cost of one more round trip
(one message each way, both ends), start-up and connection set-up cancelled out::

    python benches/instructions.py                                # wsrs vs wsrs.asyncio
    python benches/instructions.py --libs wsrs,wsrs.asyncio,websockets --workloads rt-32B
    python benches/instructions.py --loop uvloop --count 2000
    python benches/instructions.py --workloads churn-64B             # per connection

``churn-64B`` is counted per connection instead: ``N`` then ``2 N`` connections one after the
other, each opened, echoing one 64-byte message and closed (both ends, in one process).

``--asgi`` counts the server alone, for the ASGI servers of ``uvicorn_compare.py``: each
server runs under Valgrind in its own process (uvicorn with wsrs.uvicorn, websockets-sansio
or wsproto, and granian, all threads counted) while a client of ``echo_compare.py`` (wsrs'
by default, ``--client``) runs natively, and the server's instructions per message are
reported, the CPU cost of a server without the client's share::

    python benches/instructions.py --asgi wsrs,websockets-sansio,granian --workloads conc-1KiB

The workloads are those of ``echo_compare.py`` (same payloads, windows and connection
counts, fewer messages). Instructions are not time: a cache miss or a system call costs
more than its count says, and the kernel's side of a ``send`` is not counted (Valgrind sees
user space only). Use it to compare code paths, and ``echo_compare.py`` for throughput.
Needs ``valgrind``; each measurement runs 20-100x slower than natively.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import echo_compare as ec  # noqa: E402


DEFAULT_LIBS = "wsrs,wsrs.asyncio"
DEFAULT_WORKLOADS = "rt-32B,rt-1KiB,rt-64KiB,pipe-1KiB,conc-1KiB,deflate-dflt"
# Messages in the short run of each pair; the long run has twice as many. Large payloads
# cost millions of instructions each, so they need far fewer to stand out of the noise.
COUNTS = {
    "rt-32B": 2_000,
    "rt-1KiB": 2_000,
    "rt-64KiB": 400,
    "rt-1MiB": 20,
    "pipe-1KiB": 4_000,
    "pipe-1MiB": 40,
    "conc-1KiB": 2_000,
    "churn-64B": 200,  # connections
    "deflate-dflt": 100,
    "deflate-L6": 100,
}
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


async def echo(lib: str, name: str, count: int) -> None:
    """Serve, connect, and echo ``count`` messages of workload ``name`` (no timing)."""
    adapter = ec.ADAPTERS[lib]
    workload = ec.WORKLOADS[name]
    payload = workload.payload()
    connections = workload.connections
    async with contextlib.AsyncExitStack() as stack:
        port = await stack.enter_async_context(adapter.serve(ec.HOST, 0, workload.compression))
        if workload.churn:
            for _ in range(count):  # one connection at a time, ``count`` of them
                async with adapter.connect(ec.HOST, port, workload.compression) as channel:
                    await ec.round_trips(channel, payload, 1)
            return
        channels: list[ec.Channel] = []
        while len(channels) < connections:
            # A few at a time: under Valgrind, 50 handshakes at once outlast open_timeout.
            group = min(4, connections - len(channels))
            channels += await asyncio.gather(
                *(
                    stack.enter_async_context(adapter.connect(ec.HOST, port, workload.compression))
                    for _ in range(group)
                )
            )
        if workload.window > 1:
            (channel,) = channels
            await ec.pipelined(channel, payload, count, workload.window)
        else:
            per_connection = count // connections
            await asyncio.gather(*(ec.round_trips(c, payload, per_connection) for c in channels))


def instructions(lib: str, name: str, count: int, loop_name: str) -> int:
    """Instructions executed by a child process that echoes ``count`` messages."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={os.path.join(scratch, 'out')}",
            sys.executable,
            os.path.abspath(__file__),
            "--role=child",
            f"--libs={lib}",
            f"--workloads={name}",
            f"--count={count}",
            f"--loop={loop_name}",
        ]
        # Same hash seed in both runs of a pair: set and dict layouts, hence the
        # instructions spent outside the measured path, stay the same.
        env = dict(os.environ, PYTHONHASHSEED="0")
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{lib} {name} failed (status {done.returncode}):\n{done.stderr}")
    return int(found.group(1))


def per_message(lib: str, name: str, count: int, loop_name: str) -> float:
    """Instructions for one more round trip of workload ``name`` (one more connection for
    a churn workload)."""
    if ec.WORKLOADS[name].connections > 1 and not ec.WORKLOADS[name].churn:
        count -= count % ec.WORKLOADS[name].connections
    short = instructions(lib, name, count, loop_name)
    long = instructions(lib, name, 2 * count, loop_name)
    return (long - short) / count


def client_messages(name: str, count: int) -> int:
    """Round trips an ``echo_compare.py`` client makes for a job of ``count``, warm-up
    included (see its ``client_main``)."""
    workload = ec.WORKLOADS[name]
    if workload.window > 1:
        return count + max(workload.window, min(count // 10, 500))
    per_connection = max(1, count // workload.connections)
    warmup = max(1, min(per_connection // 10, 500))
    return workload.connections * (per_connection + warmup)


def wait_listening(port: int, process: subprocess.Popen[str], timeout: float = 600.0) -> None:
    """Wait until something accepts connections on ``port`` (a server under Valgrind takes
    a while to start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            socket.create_connection((ec.HOST, port), timeout=1).close()
        except OSError:
            time.sleep(0.5)
        else:
            return
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


def server_instructions(server: str, name: str, count: int, loop_name: str, client: str) -> int:
    """Instructions executed by an ASGI server process while a native client runs a job."""
    import uvicorn_compare as uc

    (port,) = uc.free_ports(1)
    deflate = ec.WORKLOADS[name].compression != "off"
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={os.path.join(scratch, 'out')}",
            *uc.SERVERS[server].command(port, deflate, loop_name),
        ]
        env = dict(os.environ, PYTHONHASHSEED="0")
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            wait_listening(port, process)
            job = ec.Job(name, port, count, ec.WORKLOADS[name].connections)
            (outcome,) = ec.measure(client, [job], [], loop_name)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=300)
    if isinstance(outcome, ec.BenchmarkError):
        raise RuntimeError(f"{server} {name}: {outcome}\n{stderr}")
    found = COLLECTED.search(stderr)
    if found is None:
        raise RuntimeError(f"{server} {name}: no instruction count (status {process.returncode})")
    return int(found.group(1))


def server_per_message(server: str, name: str, count: int, loop_name: str, client: str) -> float:
    """A server's instructions for one more round trip of workload ``name``."""
    short = server_instructions(server, name, count, loop_name, client)
    long = server_instructions(server, name, 2 * count, loop_name, client)
    return (long - short) / (client_messages(name, 2 * count) - client_messages(name, count))


def print_table(
    title: str, names: list[str], libs: list[str], cost: Callable[[str, str], float]
) -> None:
    """Print a markdown table: the cost of each library per workload, and its ratio to the
    first library's."""
    print(title)
    heads = [*libs, *(f"{lib} / {libs[0]}" for lib in libs[1:])]
    print("| workload | " + " | ".join(heads) + " |")
    print("| --- |" + " ---: |" * (2 * len(libs) - 1))
    for name in names:
        costs = [cost(lib, name) for lib in libs]
        ratios = [f"{c / costs[0]:.3f}" for c in costs[1:]]
        cells = [f"{c:,.0f}" for c in costs] + ratios
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libs", default=DEFAULT_LIBS, help=f"({DEFAULT_LIBS})")
    parser.add_argument("--workloads", default=DEFAULT_WORKLOADS, help=f"({DEFAULT_WORKLOADS})")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--count", type=int, default=0, help="messages in the short run (per workload default)"
    )
    parser.add_argument(
        "--asgi",
        default="",
        help="count these servers of uvicorn_compare.py alone (e.g. wsrs,websockets-sansio)",
    )
    parser.add_argument("--client", default="wsrs", help="the client with --asgi (wsrs)")
    parser.add_argument("--role", choices=("main", "child"), default="main")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    libs = args.libs.split(",")
    names = args.workloads.split(",")
    for name in names:
        if name not in ec.WORKLOADS:
            raise SystemExit(f"unknown workload {name!r}; choose from {', '.join(ec.WORKLOADS)}")
    if args.role == "child":
        ec.run_in_loop(echo(libs[0], names[0], args.count), args.loop)
        return 0
    if args.asgi:
        if any(ec.WORKLOADS[name].churn for name in names):
            raise SystemExit("churn workloads are counted in one process only, not with --asgi")
        servers = args.asgi.split(",")
        print_table(
            f"server instructions per round trip, loop {args.loop}, client {args.client}; "
            "callgrind, user space",
            names,
            servers,
            lambda server, name: server_per_message(
                server, name, args.count or COUNTS[name], args.loop, args.client
            ),
        )
        return 0
    libs = [lib for lib in libs if ec.ADAPTERS[lib].missing() is None]
    print_table(
        f"instructions per round trip (both ends), loop {args.loop}; callgrind, user space",
        names,
        libs,
        lambda lib, name: per_message(lib, name, args.count or COUNTS[name], args.loop),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
