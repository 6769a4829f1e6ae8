"""Many idle connections on one host under ``wsrs serve --workers N``: memory, publish to all.

Run (Linux only: ``/proc``, source addresses 127.0.0.x)::

    python benches/scale_idle.py                                  # 100,000 connections, 6 workers
    python benches/scale_idle.py --connections 30000 --workers 4
    python benches/scale_idle.py --compression none               # one setting only
    python benches/scale_idle.py --quick                          # smoke run: 2,000, 2 workers

For each compression setting (``--compression``, a comma-separated list of what ``wsrs serve
--compression`` accepts; ``none,deflate`` by default) the coordinator (this script)
starts ``wsrs serve scale_app:handler --workers N`` on a free port of 127.0.0.1 (the handler
is ``benches/scale_app.py``: each connection subscribes to one topic on a hub whose broker
is the relay of the workers, and ``publish <n>`` sent by a connection makes its worker
publish a 1 KiB message to every connection of every worker). Then it measures the
supervisor and its workers (the sum over the processes of ``VmRSS`` from
``/proc/<pid>/status`` and of ``Pss`` from ``/proc/<pid>/smaps_rollup``, which divides each
shared page among the processes that share it) at the baseline, starts client processes
(``--role client``), each of at most ``--per-client`` connections (a process may have at
most ``RLIMIT_NOFILE`` files open) whose sockets are bound to a source address of its own,
127.0.0.2, 127.0.0.3 ..., so that no range of source ports runs out, and waits until every
client has opened its connections (``ping_interval=None``: nothing happens on them
afterwards; clients offer permessage-deflate only when the server may take it). After
``--idle`` seconds of idleness (wsrs frees the spare buffers and zlib state of a
connection idle for 5 to 10 s) it measures again. A client has at most 64 handshakes in
flight; its sockets are bound with ``IP_BIND_ADDRESS_NO_PORT``, so that each source
address has the whole range of ephemeral ports (``bind()`` alone would pick ports from half
of it, and slowly once those are taken); they do not compact idle connections, so as to
leave the CPU to the server. A connection that fails (the server closes a handshake it
could not serve within its ``open_timeout`` of 10 s when the host is busy) is tried again
up to 4 times. Reported:

- ``open s``: the seconds it took to open every connection, and ``retries``, how many
  attempts failed on the way;
- ``KiB/conn``: (RSS with the connections - RSS at baseline) / connections, and the same
  for PSS;
- ``GiB``: the RSS of the supervisor and its workers with the connections, all of it;
- ``publish``: the time from the ``publish 1`` sent by one client on one connection to the
  last of the 1 KiB messages received at every connection of every client (the clients
  wait on all of their connections before it is sent, and report the monotonic clock,
  which all processes share), and ``msg/s``, the connections divided by that time;
- ``KiB after``: ``KiB/conn`` measured again ``--idle`` seconds after the publish, once
  every connection has written a message (with permessage-deflate, its compressor has
  been used: a connection allocates its zlib state on first use and frees it when idle).

On 2 cores shared with other jobs (load 4 to 10), 100,000 connections opened in 2.4 minutes
without compression and 3.5 with permessage-deflate (see README, "Memory per connection").

Every process started is killed on the way out, whatever happens (``try``/``finally``;
``SIGTERM`` to this script too). Exit status 1 if a setting failed (its error is printed),
0 otherwise; a run that the file limit or the host cannot allow is skipped with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from broadcast import raise_fd_limit  # benches/, this script's directory


BENCHES = pathlib.Path(__file__).resolve().parent
HOST = "127.0.0.1"
FD_MARGIN = 100  # descriptors of a client besides its connections
OPEN_CONCURRENCY = 64  # handshakes in flight at once per client
IP_BIND_ADDRESS_NO_PORT = 24  # from linux/in.h (Python has no name for it)
OPEN_ATTEMPTS = 5  # tries per connection: the server times out handshakes it is slow to serve
START_TIMEOUT = 60.0  # seconds for the workers to listen
STOP_TIMEOUT = 30.0  # seconds the server gets to stop before it is killed


# ---------------------------------------------------------------------------------------------
# Client processes.


async def client_main(port: int, source: str, count: int, compression: str | None) -> None:
    """Open ``count`` connections from ``source``; then obey the coordinator's lines."""
    raise_fd_limit()
    from scale_app import payload

    from wsrs.asyncio.client import ClientConnection, connect
    from wsrs.exceptions import InvalidHandshake

    retries = 0

    loop = asyncio.get_running_loop()
    window = asyncio.Semaphore(OPEN_CONCURRENCY)

    class Client(ClientConnection):
        # No idle compaction in the clients: its timers (one per connection, every 5 s)
        # and heap trims would take CPU that the server under test needs.
        compact_after = None

    async def dial() -> ClientConnection:
        # Bound to the source address, with the port chosen at connect() time
        # (IP_BIND_ADDRESS_NO_PORT): then each source address has the whole range of
        # ephemeral ports for itself, as bind() with port 0 would not give.
        sock = socket.socket()
        try:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
            sock.setblocking(False)
            await loop.sock_connect(sock, (HOST, port))
        except BaseException:
            sock.close()
            raise
        return await connect(
            f"ws://{HOST}:{port}/",
            compression=compression,
            ping_interval=None,
            open_timeout=120,
            sock=sock,
            create_connection=Client,
        )

    async def open_one() -> ClientConnection:
        nonlocal retries
        async with window:
            for attempt in range(1, OPEN_ATTEMPTS):
                try:
                    return await dial()
                except (OSError, TimeoutError, InvalidHandshake):
                    retries += 1
                    await asyncio.sleep(attempt)
            return await dial()

    connections = await asyncio.gather(*(open_one() for _ in range(count)))
    extensions = [extension.name for extension in connections[0].extensions]
    report(connected=len(connections), retries=retries, extensions=extensions)

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    last = 0.0

    async def receive(connection: ClientConnection, expected: str) -> None:
        nonlocal last
        message = await connection.recv()
        if message != expected:
            raise AssertionError(f"expected publish {expected[:8]}, got {message[:20]!r}")
        last = time.monotonic()

    while line := (await reader.readline()).decode().split():
        command, n = line[0], int(line[1])
        if command == "arm":  # wait for publish n on every connection
            waiting = asyncio.gather(*(receive(c, payload(n)) for c in connections))
            await asyncio.sleep(0)  # let every recv() start
            report(armed=n)
        elif command == "publish":  # send "publish n" on the first connection
            sent = time.monotonic()
            await connections[0].send(f"publish {n}")
            report(sent=sent)
        elif command == "wait":  # report when publish n has reached every connection
            await waiting
            report(received=len(connections), last=last)
    # The coordinator kills the server; nothing to close.


def report(**fields: Any) -> None:
    """A line of JSON to the coordinator."""
    print(json.dumps(fields), flush=True)


# ---------------------------------------------------------------------------------------------
# Measuring the server's processes.


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # The command name, in parentheses, may contain spaces: split after it.
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def kib(path: str, field: str) -> int:
    """The value of ``field`` (in kB) in the /proc file ``path``."""
    for line in pathlib.Path(path).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ValueError(f"no {field} in {path}")


@dataclass
class Memory:
    """The memory of some processes, in KiB."""

    rss: int
    pss: int

    @classmethod
    def of(cls, pids: list[int]) -> Memory:
        """Measure the processes ``pids`` now."""
        rss = sum(kib(f"/proc/{pid}/status", "VmRSS") for pid in pids)
        pss = sum(kib(f"/proc/{pid}/smaps_rollup", "Pss") for pid in pids)
        return cls(rss, pss)


# ---------------------------------------------------------------------------------------------
# The coordinator.


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class Run:
    """One server and its clients; :meth:`close` kills them all."""

    def __init__(self, compression: str, workers: int) -> None:
        self.compression = compression
        self.workers = workers
        self.port = free_port()
        self.log: IO[str] = tempfile.TemporaryFile("w+")
        self.clients: list[subprocess.Popen[str]] = []
        self.worker_pids: list[int] = []
        self.retries = 0
        path = os.pathsep.join(
            filter(None, [str(BENCHES.parent / "python"), os.environ.get("PYTHONPATH")])
        )
        self.server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wsrs",
                "serve",
                "scale_app:handler",
                "--app-dir",
                str(BENCHES),
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--compression",
                compression,
                "--backlog",
                "4096",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            env=dict(os.environ, PYTHONPATH=path),
        )

    def server_log(self) -> str:
        """What the supervisor and its workers logged."""
        self.log.seek(0)
        return self.log.read()

    def wait_listening(self) -> None:
        """Wait until every worker listens; remember their pids."""
        deadline = time.monotonic() + START_TIMEOUT
        while "listening on" not in self.server_log():
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + self.server_log())
            time.sleep(0.1)
        self.worker_pids = children(self.server.pid)
        if len(self.worker_pids) != self.workers:
            raise RuntimeError(f"expected {self.workers} workers, found {self.worker_pids}")

    def memory(self) -> Memory:
        """The memory of the supervisor and its workers."""
        return Memory.of([self.server.pid, *self.worker_pids])

    def connect(self, connections: int, per_client: int) -> None:
        """Start the clients and wait until all the connections are open."""
        clients = math.ceil(connections / per_client)
        client_compression = "none" if self.compression == "none" else "deflate"
        for index in range(clients):
            count = connections // clients + (index < connections % clients)
            self.clients.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--role",
                        "client",
                        "--port",
                        str(self.port),
                        "--source",
                        f"127.0.0.{index + 2}",
                        "--connections",
                        str(count),
                        "--compression",
                        client_compression,
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        reports = [self.ask(client) for client in self.clients]
        opened = sum(answer["connected"] for answer in reports)
        assert opened == connections, (opened, connections)
        self.retries = sum(answer["retries"] for answer in reports)
        negotiated = reports[0]["extensions"]
        if (self.compression == "none") != (negotiated == []):
            raise RuntimeError(f"--compression {self.compression} negotiated {negotiated}")

    def ask(self, client: subprocess.Popen[str], line: str | None = None) -> dict[str, Any]:
        """Send ``line`` to a client if given, and return its next report."""
        assert client.stdin is not None and client.stdout is not None
        if line is not None:
            client.stdin.write(line + "\n")
            client.stdin.flush()
        answer = client.stdout.readline()
        if not answer:
            raise RuntimeError(f"client {client.pid} exited with status {client.wait()}")
        fields: dict[str, Any] = json.loads(answer)
        return fields

    def publish_to_all(self, n: int) -> float:
        """Publish message ``n`` from a connection of the first client; return the seconds
        until every connection has received it."""
        for client in self.clients:
            assert self.ask(client, f"arm {n}")["armed"] == n
        sent: float = self.ask(self.clients[0], f"publish {n}")["sent"]
        for client in self.clients:
            assert client.stdin is not None
            client.stdin.write(f"wait {n}\n")
            client.stdin.flush()
        last = max(self.ask(client)["last"] for client in self.clients)
        return float(last - sent)

    def close(self) -> None:
        """Kill the clients, stop the server (kill it and its workers if it lingers)."""
        for client in self.clients:
            with contextlib.suppress(ProcessLookupError):
                client.kill()
        for client in self.clients:
            client.wait()
        with contextlib.suppress(ProcessLookupError):
            self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            for pid in [self.server.pid, *self.worker_pids]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.server.wait()
        # Workers outlive a killed supervisor briefly (they stop when its relay closes).
        deadline = time.monotonic() + STOP_TIMEOUT
        while (alive := [pid for pid in self.worker_pids if alive_pid(pid)]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()


def alive_pid(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@contextlib.contextmanager
def running(compression: str, workers: int) -> Iterator[Run]:
    """A server with ``workers`` workers, killed with its clients on the way out."""
    run = Run(compression, workers)
    try:
        yield run
    except Exception as exc:
        tail = "\n".join(run.server_log().splitlines()[-20:])
        raise RuntimeError(f"{exc!r}; the server's log ends with:\n{tail}") from exc
    finally:
        run.close()


def measure(
    compression: str, connections: int, workers: int, per_client: int, idle: float
) -> dict[str, Any]:
    """One setting: the server's memory with the connections idle, and a publish to all."""
    with running(compression, workers) as run:
        run.wait_listening()
        time.sleep(0.5)
        base = run.memory()
        start = time.monotonic()
        run.connect(connections, per_client)
        opening = time.monotonic() - start
        time.sleep(idle)
        loaded = run.memory()
        elapsed = run.publish_to_all(1)
        time.sleep(idle)
        after = run.memory()
        return {
            "compression": compression,
            "connections": connections,
            "workers": workers,
            "clients": len(run.clients),
            "open_s": opening,
            "retries": run.retries,
            "base_mib": base.rss / 1024,
            "rss_kib": (loaded.rss - base.rss) / connections,
            "pss_kib": (loaded.pss - base.pss) / connections,
            "total_gib": loaded.rss / 2**20,
            "after_kib": (after.rss - base.rss) / connections,
            "publish_ms": elapsed * 1000,
            "per_s": connections / elapsed,
        }


# (field, header, format): the columns of the report.
COLUMNS = (
    ("compression", "setting", "{:<8}"),
    ("connections", "conns", "{:>7}"),
    ("workers", "workers", "{:>7}"),
    ("clients", "clients", "{:>7}"),
    ("open_s", "open s", "{:>7.1f}"),
    ("retries", "retries", "{:>7}"),
    ("base_mib", "base MiB", "{:>8.1f}"),
    ("rss_kib", "KiB/conn", "{:>8.2f}"),
    ("pss_kib", "PSS KiB", "{:>8.2f}"),
    ("total_gib", "GiB", "{:>6.3f}"),
    ("publish_ms", "publish ms", "{:>10.1f}"),
    ("per_s", "msg/s", "{:>9.0f}"),
    ("after_kib", "KiB after", "{:>9.2f}"),
)


def main() -> int:
    """Parse the options; run a client, or coordinate the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--role", choices=["coordinator", "client"], default="coordinator")
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument(
        "--compression",
        default="none,deflate",
        help="comma-separated settings of wsrs serve --compression",
    )
    parser.add_argument(
        "--idle", type=float, default=12.0, help="seconds idle before measuring (default 12)"
    )
    parser.add_argument(
        "--per-client",
        type=int,
        default=0,
        help="connections per client process (default: what RLIMIT_NOFILE allows, at most 18,000)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2,000 connections, 2 workers, 1 s idle"
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        compression = None if args.compression == "none" else args.compression
        asyncio.run(client_main(args.port, args.source, args.connections, compression))
        return 0

    if args.quick:
        args.connections, args.workers, args.idle = 2000, 2, 1.0
        args.per_client = args.per_client or 1000
    limit = raise_fd_limit() - FD_MARGIN
    per_client = min(args.per_client or 18_000, limit)
    per_worker = math.ceil(args.connections / args.workers * 1.1)  # SO_REUSEPORT spreads them
    if per_worker > limit:
        print(f"skipped: ~{per_worker:,} connections per worker, RLIMIT_NOFILE allows {limit:,}")
        return 0
    if math.ceil(args.connections / per_client) > 250:
        print("skipped: more than 250 client processes (source addresses 127.0.0.2-251)")
        return 0

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, stop)
    print(" ".join(re.sub(r"\.\d+f", "", fmt).format(header) for _, header, fmt in COLUMNS))
    status = 0
    for compression in args.compression.split(","):
        try:
            row = measure(compression, args.connections, args.workers, per_client, args.idle)
        except Exception as exc:
            print(f"{compression:<8} error: {exc}", flush=True)
            status = 1
            continue
        print(" ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
