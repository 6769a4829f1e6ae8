"""Fan-out: one 1 KiB message to N open connections, wsrs.asyncio against websockets 17.

    python benches/broadcast.py                          # 1,000 and 10,000 connections
    python benches/broadcast.py --libs wsrs-hub,websockets
    python benches/broadcast.py --connections 1000 --rounds 20
    python benches/broadcast.py --compression deflate     # permessage-deflate on both sides

For each library, a server process (``--role server``) accepts N connections (compression
off unless ``--compression deflate``, keepalive off), then, when asked on stdin, fans the
message out ``--rounds`` times, one round after the clients confirmed the previous one:
``broadcast(server.connections, message)`` (rows ``wsrs`` and ``websockets``),
``Hub.publish`` to a topic every connection subscribed to (``wsrs-hub``), or ``await
connection.send(message)`` for each connection in turn (``websockets-send-loop``). A client
process (``--role client``, plain wsrs.asyncio clients for both servers, so only the server
side differs) opens the N connections and counts the messages that arrive.

Reported per library and N: the time one fan-out takes in the server (median over rounds;
``broadcast()`` and ``publish`` only encode and queue the frames), and the messages
delivered per second (N * rounds / the time from each order to broadcast to the last message
received by the clients, summed over rounds). The servers and clients of every library are
up at once and take turns round by round, in an order that alternates, so that the
machine's drift hits every library alike. Linux: every process raises its file-descriptor
limit to the hard limit; N above what it allows is skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any


HOST = "127.0.0.1"
MESSAGE = "x" * 1024
# With compression, something like a real update: 1 KiB of JSON that compresses about 3:1.
JSON_MESSAGE = json.dumps(
    [
        {"id": i, "symbol": f"SYM{i * 7919 % 1000:03d}", "price": round(i * 1.618, 3)}
        for i in range(23)
    ]
)[:1024]


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def server_main(lib: str, rounds: int, compression: str | None) -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    server_module: Any
    if lib.startswith("wsrs"):
        import wsrs.asyncio.server as server_module
    else:
        import websockets.asyncio.server as server_module
    broadcast, serve = server_module.broadcast, server_module.serve
    from wsrs.pubsub import Hub

    hub = Hub()

    async def hold(connection: Any) -> None:
        if lib == "wsrs-hub":
            hub.subscribe(connection, "all")
        await connection.wait_closed()

    async def fan_out(connections: set[Any], message: str) -> None:
        if lib == "wsrs-hub":
            hub.publish("all", message)
        elif lib.endswith("send-loop"):
            for connection in connections:
                await connection.send(message)
        else:
            broadcast(connections, message)

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    message = MESSAGE if compression is None else JSON_MESSAGE
    async with serve(
        hold, HOST, 0, compression=compression, ping_interval=None, max_queue=None
    ) as server:
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        durations = []
        while True:
            line = await reader.readline()
            if not line or line.strip() == b"stop":
                break
            connections = server.connections
            start = time.perf_counter()
            await fan_out(connections, message)
            durations.append(time.perf_counter() - start)
            print(json.dumps({"sent": len(connections)}), flush=True)
        print(json.dumps({"durations": durations}), flush=True)


async def client_main(port: int, count: int, rounds: int, compression: str | None) -> None:
    raise_fd_limit()
    from wsrs.asyncio.client import connect

    connections = []
    for start in range(0, count, 200):
        batch = [
            connect(
                f"ws://{HOST}:{port}/",
                compression=compression,
                ping_interval=None,
                open_timeout=60,
            )
            for _ in range(min(200, count - start))
        ]
        connections += await asyncio.gather(*batch)
    print(json.dumps({"connected": len(connections)}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    for _ in range(rounds):
        await reader.readline()
        await asyncio.gather(*(c.recv() for c in connections))
        print(json.dumps({"received": len(connections)}), flush=True)
    await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)


class Pair:
    """The server and client processes of one library, with N connections open between them."""

    def __init__(self, lib: str, count: int, rounds: int, compression: str | None) -> None:
        options = [] if compression is None else ["--compression", compression]
        self.lib = lib
        self.count = count
        self.server = self.spawn(
            "--role", "server", "--lib", lib, "--rounds", str(rounds), *options
        )
        port = json.loads(self.readline(self.server))["port"]
        self.client = self.spawn(
            "--role",
            "client",
            "--port",
            str(port),
            "--connections",
            str(count),
            "--rounds",
            str(rounds),
            *options,
        )
        assert json.loads(self.readline(self.client))["connected"] == count
        self.elapsed = 0.0  # from each "go" to the last message received, summed over rounds

    @staticmethod
    def spawn(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def readline(process: subprocess.Popen[str]) -> str:
        assert process.stdout is not None
        return process.stdout.readline()

    @staticmethod
    def write(process: subprocess.Popen[str], line: str) -> None:
        assert process.stdin is not None
        process.stdin.write(line + "\n")
        process.stdin.flush()

    def round(self) -> None:
        """One fan-out, timed from the order to the last message received."""
        start = time.perf_counter()
        self.write(self.client, "go")
        self.write(self.server, "go")
        assert json.loads(self.readline(self.server))["sent"] == self.count
        assert json.loads(self.readline(self.client))["received"] == self.count
        self.elapsed += time.perf_counter() - start

    def stop(self) -> list[float]:
        """Stop both processes; return the server's fan-out durations."""
        self.write(self.server, "stop")
        durations: list[float] = json.loads(self.readline(self.server))["durations"]
        assert self.client.stdin is not None
        self.client.stdin.close()
        self.client.wait(60)
        self.server.wait(60)
        return durations


def run(libs: list[str], count: int, rounds: int, compression: str | None) -> dict[str, Any]:
    """Fan out ``rounds`` times per library, the libraries taking turns round by round (in an
    order that alternates), so that the machine's drift hits them alike."""
    pairs = [Pair(lib, count, rounds, compression) for lib in libs]
    time.sleep(1)
    for index in range(rounds):
        for pair in pairs if index % 2 == 0 else pairs[::-1]:
            pair.round()
    results = {}
    for pair in pairs:
        durations = pair.stop()
        results[pair.lib] = {
            "broadcast_ms": statistics.median(durations) * 1000,
            "delivered_per_s": count * rounds / pair.elapsed,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--role", choices=["main", "server", "client"], default="main")
    parser.add_argument("--lib", default="wsrs")
    parser.add_argument("--port", type=int)
    parser.add_argument("--connections", type=int, action="append")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--compression", choices=["deflate"], default=None)
    parser.add_argument(
        "--libs",
        default="wsrs,wsrs-hub,websockets,websockets-send-loop",
        help="wsrs (broadcast()), wsrs-hub (Hub.publish), websockets (broadcast()), "
        "websockets-send-loop (await send() per connection)",
    )
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(server_main(args.lib, args.rounds, args.compression))
        return
    if args.role == "client":
        asyncio.run(client_main(args.port, args.connections[0], args.rounds, args.compression))
        return
    counts = args.connections or [1000, 10000]
    limit = raise_fd_limit()
    what = "compression off" if args.compression is None else "permessage-deflate, JSON"
    print(f"broadcast of one 1 KiB text message, {args.rounds} rounds, {what}")
    print(f"{'library':<22} {'connections':>11} {'one fan-out ms':>15} {'delivered msg/s':>16}")
    for count in counts:
        if count + 100 > limit:  # each process holds one side of the connections
            print(f"{count} connections: skipped, the file-descriptor limit is {limit}")
            continue
        for lib, result in run(args.libs.split(","), count, args.rounds, args.compression).items():
            print(
                f"{lib:<22} {count:>11,} {result['broadcast_ms']:>15.2f} "
                f"{result['delivered_per_s']:>16,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
