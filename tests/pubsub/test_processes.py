"""Hubs in several server processes, on two "hosts" (127.0.0.1 and 127.0.0.2), each
process its own node: every client gets every message of its topics exactly once, in
publish order per topic and publisher."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

from wsrs.asyncio.client import ClientConnection, connect

from .conftest import RedisServer


NODE = pathlib.Path(__file__).with_name("node.py")
TIMEOUT = 30


class Process:
    """A node process (node.py), driven through its stdin and stdout."""

    def __init__(self, url: str, host: str, name: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        self.process = subprocess.Popen(
            [sys.executable, str(NODE), url, host, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.name = name
        self.uri = f"ws://{host}:{self.read()}/"

    def read(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    async def ask(self, command: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return await asyncio.wait_for(asyncio.to_thread(self.read), TIMEOUT)


async def subscriber(uri: str, topics: list[str]) -> ClientConnection:
    client = await connect(uri, compression=None)
    for topic in topics:
        await client.send(f"subscribe {topic}")
        assert await client.recv() == f"subscribed {topic}"
    return client


async def test_nodes_in_processes_on_two_hosts(redis_server: RedisServer) -> None:
    # Host 1 runs two server processes, host 2 one.
    hosts = [("127.0.0.1", "n1"), ("127.0.0.1", "n2"), ("127.0.0.2", "n3")]
    nodes = [Process(redis_server.url, host, name) for host, name in hosts]
    try:
        # On each node: a client of both topics, a client of "a" only, one of "b" only.
        plan: list[tuple[Process, list[str]]] = [
            (node, topics) for node in nodes for topics in (["a", "b"], ["a"], ["b"])
        ]
        clients = [await subscriber(node.uri, topics) for node, topics in plan]
        assert await asyncio.gather(*(node.ask("ready") for node in nodes)) == ["ready"] * 3
        counts = {"a": 300, "b": 100}

        # All nodes publish at the same time, on both topics.
        # (Each process is asked one thing at a time: two threads reading one pipe at once
        # could interleave the replies.)
        async def publish_all(node: Process) -> list[str]:
            return [await node.ask(f"publish {topic} {n}") for topic, n in counts.items()]

        published = await asyncio.gather(*(publish_all(node) for node in nodes))
        assert published == [["published"] * 2] * 3

        async def receive(client: ClientConnection, topics: list[str]) -> None:
            expected = sum(counts[topic] for topic in topics) * len(nodes)
            received: dict[tuple[str, str], list[int]] = {}
            for _ in range(expected):
                message = await asyncio.wait_for(client.recv(), TIMEOUT)
                assert isinstance(message, str)
                name, topic, i = message.split()
                received.setdefault((name, topic), []).append(int(i))
            # Exactly once, in publish order per topic and publisher; nothing more.
            assert received == {
                (node.name, topic): list(range(counts[topic])) for node in nodes for topic in topics
            }
            await client.close()

        await asyncio.gather(
            *(receive(client, topics) for client, (_, topics) in zip(clients, plan, strict=True))
        )
        stats: list[dict[str, Any]] = [json.loads(await node.ask("quit")) for node in nodes]
        for node_stats in stats:
            # Each node sent its 400 messages and got the other two nodes' 800, no gaps.
            assert node_stats["sent"] == 400 and node_stats["received"] == 800
            assert node_stats["missed"] == node_stats["duplicates"] == 0
        for node in nodes:
            assert node.process.wait(TIMEOUT) == 0
    finally:
        for node in nodes:
            if node.process.poll() is None:
                node.process.kill()
            node.process.communicate()  # closes the pipes
