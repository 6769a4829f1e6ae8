"""Fan-out through Redis: one 1 KiB message published on one node, delivered by another to
its 1,000 local subscribers (wsrs.pubsub.Hub with wsrs.pubsub_redis.RedisBroker).

    python benches/redis_fanout.py                      # 1,000 subscribers, 20 rounds
    python benches/redis_fanout.py --connections 200 --rounds 50
    python benches/redis_fanout.py --redis redis://127.0.0.1:6379   # an existing Redis

Without ``--redis`` it starts its own ``redis-server`` (Debian's package) on a free port,
without persistence. Processes: the subscribing node (``--role server``: a wsrs.asyncio
server whose hub has N subscribers on one topic), the publishing node (``--role
publisher``: a hub with no subscribers, so the message goes out through Redis only) and
this one, which opens the N client connections and counts what they receive.

Each round: the publisher publishes once; the round ends when every client has the
message. Rows: ``redis`` (two nodes, through Redis), and ``local`` (the subscribing node
publishes itself, no broker: the same fan-out without the Redis hop). Reported: the time
``Hub.publish`` takes at the publisher (median; with a broker it encodes the envelope and
queues it), the time the subscribing node takes to deliver one message to its N
subscribers (median), one round end to end (median, publish to the last client's
receipt), and messages delivered per second (N * rounds / the time of all rounds).
Last, a burst: the publishing node publishes 10,000 messages back to back on a topic that
no node follows (the time ``Hub.publish`` takes, and the rate at which its broker hands
them to Redis, in pipelines).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Any


HOST = "127.0.0.1"
MESSAGE = "x" * 1024
TOPIC = "bench"
BURST = 10_000


async def lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def server_main(redis_url: str | None) -> None:
    from wsrs.asyncio.server import serve
    from wsrs.pubsub import Hub
    from wsrs.pubsub_redis import RedisBroker

    broker = None if redis_url is None else RedisBroker(redis_url)
    hub = Hub(broker=broker)
    fan_outs: list[float] = []
    if broker is not None:
        deliver = broker._deliver
        assert deliver is not None

        def timed(topic: str, data: bytes, text: bool) -> None:
            start = time.perf_counter()
            deliver(topic, data, text)
            fan_outs.append(time.perf_counter() - start)

        broker._deliver = timed

    async def hold(connection: Any) -> None:
        hub.subscribe(connection, TOPIC)
        await connection.wait_closed()

    reader = await lines()
    async with serve(hold, HOST, 0, compression=None, ping_interval=None) as server:
        say(port=server.sockets[0].getsockname()[1])
        while True:
            line = (await reader.readline()).strip()
            if line == b"ready":
                if broker is not None:
                    await broker.wait_ready()
                say(ready=len(hub.subscribers(TOPIC)))
            elif line == b"go":  # local: publish here
                start = time.perf_counter()
                hub.publish(TOPIC, MESSAGE)
                fan_outs.append(time.perf_counter() - start)
                say(published=fan_outs[-1])
            else:
                say(fan_outs=fan_outs)
                await hub.aclose()
                return


async def publisher_main(redis_url: str) -> None:
    from wsrs.pubsub import Hub
    from wsrs.pubsub_redis import RedisBroker

    broker = RedisBroker(redis_url, max_pending=2 * BURST)
    hub = Hub(broker=broker)
    reader = await lines()
    await broker.wait_ready()
    say(ready=True)
    while (line := (await reader.readline()).split()) and line[0] != b"stop":
        if line[0] == b"burst":  # on a topic nobody follows: Redis drops them
            start = time.perf_counter()
            for _ in range(int(line[1])):
                hub.publish("burst", MESSAGE)
            queued = time.perf_counter() - start
            await broker.wait_ready()
            say(queued=queued, sent=time.perf_counter() - start)
            continue
        start = time.perf_counter()
        hub.publish(TOPIC, MESSAGE)
        say(published=time.perf_counter() - start)
    say(stats=broker.stats.sent)
    await hub.aclose()


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def tell(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def ask(process: subprocess.Popen[str], line: str | None = None) -> Any:
    assert process.stdout is not None
    if line is not None:
        tell(process, line)
    return json.loads(process.stdout.readline())


async def run(count: int, rounds: int, redis_url: str | None) -> dict[str, float]:
    from wsrs.asyncio.client import connect

    through = [] if redis_url is None else ["--redis", redis_url]
    server = spawn("--role", "server", *through)
    port = ask(server)["port"]
    clients = []
    for first in range(0, count, 200):
        clients += await asyncio.gather(
            *(
                connect(f"ws://{HOST}:{port}/", compression=None, ping_interval=None)
                for _ in range(min(200, count - first))
            )
        )
    publisher = server if redis_url is None else spawn("--role", "publisher", *through)
    if redis_url is not None:
        assert ask(publisher)["ready"]
    # Every client subscribed (and, through Redis, the topic subscribed there).
    while ask(server, "ready")["ready"] < count:
        await asyncio.sleep(0.05)
    publishes, round_trips = [], []
    start = time.perf_counter()
    for _ in range(rounds):
        begin = time.perf_counter()
        tell(publisher, "go")
        await asyncio.gather(*(client.recv() for client in clients))
        round_trips.append(time.perf_counter() - begin)
        # Read after the round: the clients receive while the publisher answers.
        publishes.append(ask(publisher)["published"])
    elapsed = time.perf_counter() - start
    fan_outs = ask(server, "stop")["fan_outs"]
    burst: dict[str, float] = {}
    if redis_url is not None:
        burst = ask(publisher, f"burst {BURST}")
        assert ask(publisher, "stop")["stats"] == rounds + BURST
    await asyncio.gather(*(client.close() for client in clients))
    for process in {server, publisher}:
        assert process.wait(60) == 0
    return {
        "publish_us": statistics.median(publishes) * 1e6,
        "fan_out_ms": statistics.median(fan_outs) * 1e3,
        "round_ms": statistics.median(round_trips) * 1e3,
        "delivered_per_s": count * rounds / elapsed,
        **burst,
    }


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.01)
    return process, f"redis://{HOST}:{port}"


async def main_async(count: int, rounds: int, redis_url: str | None) -> None:
    redis_server = None
    if redis_url is None:
        redis_server, redis_url = start_redis()
    try:
        print(f"one 1 KiB text message to {count:,} subscribers, {rounds} rounds")
        header = f"{'row':<6} {'publish us':>11} {'fan-out ms':>11} {'round ms':>9}"
        print(f"{header} {'delivered msg/s':>16}")
        burst = ""
        for row, url in [("redis", redis_url), ("local", None)]:
            result = await run(count, rounds, url)
            print(
                f"{row:<6} {result['publish_us']:>11.1f} {result['fan_out_ms']:>11.2f} "
                f"{result['round_ms']:>9.2f} {result['delivered_per_s']:>16,.0f}"
            )
            if "sent" in result:
                burst = (
                    f"burst: {BURST:,} publishes back to back on one node, "
                    f"{result['queued'] / BURST * 1e6:.1f} us each, all handed to Redis "
                    f"at {BURST / result['sent']:,.0f} msg/s"
                )
        print(burst)
    finally:
        if redis_server is not None:
            redis_server.kill()
            redis_server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--role", choices=["main", "server", "publisher"], default="main")
    parser.add_argument("--redis", help="a Redis URL; default: start redis-server")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(server_main(args.redis))
    elif args.role == "publisher":
        asyncio.run(publisher_main(args.redis))
    else:
        asyncio.run(main_async(args.connections, args.rounds, args.redis))


if __name__ == "__main__":
    main()
