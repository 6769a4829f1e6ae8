"""A node for the tests across processes: a wsrs.asyncio server whose hub has a RedisBroker.

    python tests/pubsub/node.py REDIS_URL HOST NAME

Prints its port, then obeys a line on stdin at a time, answering one line each:

- ``ready``: wait until the broker is connected, subscribed and flushed; ``ready``;
- ``publish TOPIC COUNT``: publish ``NAME TOPIC i`` for i in 0..COUNT-1; ``published``;
- ``quit``: close the hub and the server; the broker's counters as JSON.

Its clients send ``subscribe TOPIC`` and get ``subscribed TOPIC`` back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

from wsrs.asyncio.server import ServerConnection, serve
from wsrs.pubsub import Hub
from wsrs.pubsub_redis import RedisBroker


async def main(url: str, host: str, name: str) -> None:
    broker = RedisBroker(url)
    hub = Hub(broker=broker)

    async def handler(connection: ServerConnection) -> None:
        async for message in connection:
            assert isinstance(message, str)
            topic = message.removeprefix("subscribe ")
            hub.subscribe(connection, topic)
            await connection.send(f"subscribed {topic}")

    loop = asyncio.get_running_loop()
    async with serve(handler, host, 0, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if command[0] == "ready":
                await broker.wait_ready()
                print("ready", flush=True)
            elif command[0] == "publish":
                topic, count = command[1], int(command[2])
                for i in range(count):
                    hub.publish(topic, f"{name} {topic} {i}")
                print("published", flush=True)
            else:
                await hub.aclose()
                print(json.dumps(dataclasses.asdict(broker.stats)), flush=True)
                return


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
