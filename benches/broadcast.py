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
delivered per second (N * rounds / the time from the first broadcast to the last message
received by the clients). Linux: both processes raise their file-descriptor limit to the
hard limit; N above what it allows is skipped with a note.
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
    if lib.startswith("wsrs"):
        from wsrs.asyncio.server import broadcast, serve
    else:
        from websockets.asyncio.server import broadcast, serve  # type: ignore[no-redef]
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


def run(lib: str, count: int, rounds: int, compression: str | None) -> dict[str, float]:
    def spawn(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    options = [] if compression is None else ["--compression", compression]
    server = spawn("--role", "server", "--lib", lib, "--rounds", str(rounds), *options)
    assert server.stdin is not None and server.stdout is not None
    port = json.loads(server.stdout.readline())["port"]
    client = spawn("--role", "client", "--port", str(port), "--connections", str(count), *options)
    assert client.stdin is not None and client.stdout is not None
    assert json.loads(client.stdout.readline())["connected"] == count
    time.sleep(1)
    start = time.perf_counter()
    for _ in range(rounds):
        client.stdin.write("go\n")
        client.stdin.flush()
        server.stdin.write("go\n")
        server.stdin.flush()
        assert json.loads(server.stdout.readline())["sent"] == count
        assert json.loads(client.stdout.readline())["received"] == count
    elapsed = time.perf_counter() - start
    server.stdin.write("stop\n")
    server.stdin.flush()
    durations = json.loads(server.stdout.readline())["durations"]
    client.stdin.close()
    client.wait(60)
    server.wait(60)
    return {
        "broadcast_ms": statistics.median(durations) * 1000,
        "delivered_per_s": count * rounds / elapsed,
    }


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
        if count + 100 > limit:
            print(f"{count} connections: skipped, the file-descriptor limit is {limit}")
            continue
        for lib in args.libs.split(","):
            result = run(lib, count, args.rounds, args.compression)
            print(
                f"{lib:<22} {count:>11,} {result['broadcast_ms']:>15.2f} "
                f"{result['delivered_per_s']:>16,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
