"""wsrs.pubsub_redis.RedisBroker against a real Redis: nodes in one process (each hub with
its own broker, so its own node id), a Redis killed and started again, a Redis that is not
there, envelopes that are not ours."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio

from wsrs.asyncio.client import ClientConnection, connect
from wsrs.asyncio.server import serve
from wsrs.pubsub import Hub
from wsrs.pubsub_redis import (
    BrokerStats,
    BrokerUnavailable,
    Gap,
    RedisBroker,
    encode_envelope,
)

from ..new_api.test_connection import uri_of
from .conftest import RedisServer
from .test_hub import subscribed, wait_for


TIMEOUT = 10


class Node:
    """A hub with its broker and a server whose clients subscribe to ``topics``."""

    def __init__(self, url: str, **options: Any) -> None:
        self.gaps: list[Gap] = []
        options.setdefault("on_gap", self.gaps.append)
        self.broker = RedisBroker(url, **options)
        self.hub = Hub(broker=self.broker)
        self.clients: list[ClientConnection] = []

    async def client(self, uri: str, topic: str) -> ClientConnection:
        count = len(self.hub.subscribers(topic))
        client = await connect(uri)
        self.clients.append(client)
        await wait_for(lambda: len(self.hub.subscribers(topic)) == count + 1)
        return client


@contextlib.asynccontextmanager
async def node(url: str, topics: list[str], **options: Any) -> AsyncIterator[tuple[Node, str]]:
    """A node, and the URI of its server."""
    new = Node(url, **options)
    async with serve(await subscribed(new.hub, topics), "127.0.0.1", 0) as server:
        try:
            yield new, uri_of(server)
        finally:
            for client in new.clients:
                await client.close()
            await new.hub.aclose()


async def ready(*nodes: Node) -> None:
    await asyncio.wait_for(asyncio.gather(*(n.broker.wait_ready() for n in nodes)), TIMEOUT)


async def receive(client: ClientConnection, count: int) -> list[Any]:
    return [await asyncio.wait_for(client.recv(), TIMEOUT) for _ in range(count)]


def tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if not task.done()}


async def test_two_nodes_deliver_once_in_order(redis_server: RedisServer) -> None:
    before = tasks()
    async with (
        node(redis_server.url, ["news"]) as (a, uri_a),
        node(redis_server.url, ["news"]) as (b, uri_b),
    ):
        assert a.broker.node_id != b.broker.node_id
        client_a = await a.client(uri_a, "news")
        client_b = await b.client(uri_b, "news")
        await ready(a, b)
        # Interleaved publishes of both nodes, text and binary.
        for i in range(100):
            a.hub.publish("news", f"a{i}")
            b.hub.publish("news", f"b{i}".encode())
        for client in (client_a, client_b):
            received = await receive(client, 200)
            assert [m for m in received if isinstance(m, str)] == [f"a{i}" for i in range(100)]
            assert [m for m in received if isinstance(m, bytes)] == [
                f"b{i}".encode() for i in range(100)
            ]
        await ready(a, b)
        assert a.broker.stats == BrokerStats(sent=100, received=100)
        assert b.broker.stats == BrokerStats(sent=100, received=100)
        assert a.hub.stats.delivered == b.hub.stats.delivered == 200
        assert a.gaps == b.gaps == [] and a.broker.pending() == 0
        # Nothing more arrives (no echo of a node's own messages).
        a.hub.publish("news", "last")
        assert await receive(client_a, 1) == await receive(client_b, 1) == ["last"]
        # A channel per topic with local subscribers: UNSUBSCRIBE when the last one leaves.
        monitor = redis.asyncio.Redis.from_url(redis_server.url)
        channels = await monitor.pubsub_numsub(b"wsrs:news")
        assert channels == [(b"wsrs:news", 2)]
        await client_b.send("unsubscribe news")
        assert await receive(client_b, 1) == ["done"]
        await ready(b)
        assert await monitor.pubsub_numsub(b"wsrs:news") == [(b"wsrs:news", 1)]
        a.hub.publish("news", "only a")
        b.hub.publish("news", "from b")
        assert await receive(client_a, 2) == ["only a", "from b"]
        # Subscribing again: what a sent meanwhile is no gap.
        await client_b.send("subscribe news")
        assert await receive(client_b, 1) == ["done"]
        await ready(b)
        a.hub.publish("news", "again")
        assert await receive(client_b, 1) == ["again"]
        assert b.gaps == []
        await monitor.aclose()
    # Every task of the brokers is done.
    assert tasks() == before


async def test_redis_killed_and_restarted(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    before = tasks()
    async with (
        node(redis_server.url, ["feed", "quiet"], backoff=(0.02, 0.1)) as (a, uri_a),
        node(redis_server.url, ["feed", "quiet"], backoff=(0.02, 0.1)) as (b, uri_b),
    ):
        client_a = await a.client(uri_a, "feed")
        client_b = await b.client(uri_b, "feed")
        await ready(a, b)
        for i in range(10):
            a.hub.publish("feed", str(i))
        assert await receive(client_b, 10) == [str(i) for i in range(10)]
        assert await receive(client_a, 10) == [str(i) for i in range(10)]

        caplog.set_level(logging.WARNING, "wsrs.pubsub")
        redis_server.kill()
        await wait_for(lambda: not a.broker.connected and not b.broker.connected)
        # Publishing while Redis is down: queued, delivered locally at once.
        for i in range(10, 20):
            a.hub.publish("feed", str(i))
        assert a.broker.pending() == 10
        assert await receive(client_a, 10) == [str(i) for i in range(10, 20)]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(a.broker.wait_ready(), 0.2)
        await asyncio.sleep(0.3)  # a few attempts to reconnect fail

        redis_server.start()
        await ready(a, b)
        assert a.broker.pending() == 0
        for i in range(20, 30):
            a.hub.publish("feed", str(i))
        assert await receive(client_a, 10) == [str(i) for i in range(20, 30)]
        # b gets 20-29, and maybe some of 10-19 (if it subscribed again before a sent them),
        # in order, each once.
        received: list[int] = []
        while not received or received[-1] != 29:
            received.append(int(*await receive(client_b, 1)))
        assert received == sorted(set(received)) and received[-10:] == list(range(20, 30))
        assert set(received[:-10]) <= set(range(10, 20))
        # Both nodes report the lost connection for their topics; b also the numbers it
        # knows missing, if any.
        for n in (a, b):
            assert Gap("feed", None) in n.gaps and Gap("quiet", None) in n.gaps
            assert n.broker.stats.reconnects >= 2
        missing = [gap for gap in b.gaps if gap.node is not None]
        assert [number for gap in missing for number in gap.missing] == [
            i + 1 for i in range(10, 20) if i not in received
        ]
        assert all(gap.node == a.broker.node_id for gap in missing)
        assert b.broker.stats.missed == 10 - len(received[:-10])
        # Logged once per outage, not once per attempt.
        assert caplog.text.count("lost the connection to Redis") == 2
        assert caplog.text.count("cannot reach Redis") <= 2
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        # The connections and their handlers lived through it.
        for client in (client_a, client_b):
            await client.send("unsubscribe feed")
            assert await receive(client, 1) == ["done"]
    assert tasks() == before


async def until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT)


async def test_redis_that_stops_answering(redis_server: RedisServer) -> None:
    """A Redis that keeps its connections open but answers nothing (SIGSTOP): an
    unanswered ping counts as a lost connection."""
    before = tasks()
    options: dict[str, Any] = {"ping_interval": 0.5, "timeout": 1.0, "backoff": (0.02, 0.1)}
    async with (
        node(redis_server.url, ["feed"], **options) as (a, _),
        node(redis_server.url, ["feed"], **options) as (b, uri_b),
    ):
        client = await b.client(uri_b, "feed")
        await ready(a, b)
        await asyncio.sleep(1.2)  # quiet: pings are answered, nothing is lost
        assert a.broker.connected and b.broker.connected and b.gaps == []
        a.hub.publish("feed", "before")
        assert await receive(client, 1) == ["before"]
        redis_server.pause()
        try:
            await until(lambda: not a.broker.connected and not b.broker.connected)
            a.hub.publish("feed", "meanwhile")
            await asyncio.sleep(1.0)  # attempts to reconnect time out
        finally:
            redis_server.pause(False)
        await ready(a, b)
        a.hub.publish("feed", "after")
        received = await receive(client, 1)
        if received == ["meanwhile"]:  # b subscribed again before a sent it
            received = await receive(client, 1)
        assert received == ["after"]
        assert Gap("feed", None) in b.gaps
    assert tasks() == before


async def test_publish_while_redis_is_unreachable(redis_server: RedisServer) -> None:
    url = redis_server.url
    redis_server.kill()
    before = tasks()
    async with node(url, ["t"], max_pending=3, backoff=(0.01, 0.02)) as (a, uri):
        client = await a.client(uri, "t")
        for i in range(3):
            assert a.hub.publish("t", str(i)) == 1
        with pytest.raises(BrokerUnavailable, match="3 messages wait for Redis already"):
            a.hub.publish("t", "too many")
        assert a.broker.stats.refused == 1
        assert await receive(client, 3) == ["0", "1", "2"]  # "too many" went nowhere
        await wait_for(lambda: a.broker.stats.reconnects >= 3)
        assert not a.broker.connected
        # Redis comes back: the queue drains.
        redis_server.start()
        await ready(a)
        assert a.broker.stats.sent == 3 and a.gaps == []
        assert a.hub.publish("t", "now") == 1
        assert await receive(client, 1) == ["now"]
        await ready(a)
        # Full again while connected: the message says so.
        a.broker.max_pending = 1
        a.hub.publish("t", "queued")
        with pytest.raises(BrokerUnavailable, match="the broker is connected to"):
            a.hub.publish("t", "refused")
        waiter = asyncio.create_task(a.broker.wait_ready())
        await a.hub.aclose()
        with pytest.raises(BrokerUnavailable, match="closed"):
            await waiter
    assert tasks() == before


async def test_closed_broker(redis_server: RedisServer) -> None:
    broker = RedisBroker(redis_server.url)
    await broker.aclose()  # never started
    await broker.aclose()
    with pytest.raises(BrokerUnavailable, match="the broker is closed"):
        broker.send("t", b"x", False)
    with pytest.raises(BrokerUnavailable, match="the broker is closed"):
        await broker.wait_ready()
    broker.join("t")  # starts nothing
    broker.leave("t")
    assert not broker.connected


def test_broker_arguments() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        RedisBroker(max_pending=0)
    for backoff in [(0.0, 1.0), (2.0, 1.0)]:
        with pytest.raises(ValueError, match="backoff"):
            RedisBroker(backoff=backoff)
    node_id = uuid.uuid4()
    broker = RedisBroker(node_id=node_id)
    assert broker.node_id == node_id and broker.url == "redis://127.0.0.1:6379"
    Hub(broker=broker)
    with pytest.raises(RuntimeError, match="serves another hub"):
        Hub(broker=broker)
    assert broker._delay(0) <= 0.05 and broker._delay(10_000) <= 5.0
    # Outside an event loop: refused before anything changes.
    with pytest.raises(RuntimeError, match="no running event loop"):
        broker.send("t", b"x", False)
    with pytest.raises(RuntimeError, match="no running event loop"):
        broker.join("t")
    assert broker.pending() == 0 and broker._seq == {} and broker._wanted == set()


async def test_envelopes_not_ours(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Duplicates, gaps, junk and invalid text published by hand; an on_gap that fails."""
    failures: list[Gap] = []

    def on_gap(gap: Gap) -> None:
        failures.append(gap)
        raise RuntimeError("a bug in on_gap")

    async with node(redis_server.url, ["t"], channel_prefix="app:", on_gap=on_gap) as (a, uri):
        client = await a.client(uri, "t")
        await ready(a)
        other = uuid.uuid4()
        publisher = redis.asyncio.Redis.from_url(redis_server.url)
        for raw in [
            encode_envelope(other.bytes, 1, True, b"one"),
            encode_envelope(other.bytes, 1, True, b"one again"),  # a duplicate
            b"junk",
            encode_envelope(other.bytes, 2, True, b"\xff"),  # not UTF-8
            encode_envelope(a.broker.node_id.bytes, 7, True, b"an echo"),
            encode_envelope(other.bytes, 5, False, b"five"),  # 2, 3, 4 missing
            encode_envelope(other.bytes, 6, True, b"six"),
        ]:
            await publisher.publish(b"app:t", raw)
        assert await receive(client, 3) == ["one", b"five", "six"]
        assert failures == [Gap("t", other, range(2, 5))]
        assert a.broker.stats == BrokerStats(received=3, duplicates=1, missed=3, invalid=2)
        assert "on_gap failed" in caplog.text and "a bug in on_gap" in caplog.text
        assert "envelope has 4 bytes" in caplog.text and "invalid UTF-8" in caplog.text
        # Without on_gap, gaps are logged and counted.
        a.broker.on_gap = None
        await publisher.publish(b"app:t", encode_envelope(other.bytes, 9, True, b"nine"))
        assert await receive(client, 1) == ["nine"]
        assert a.broker.stats.missed == 5 and len(failures) == 1
        # A message on a topic just left (before Redis confirmed UNSUBSCRIBE) is ignored.
        a.broker._handle({"type": "message", "channel": b"app:gone", "data": b"late"})
        assert a.broker.stats.received == 4
        await publisher.aclose()
