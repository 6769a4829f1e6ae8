"""wsrs.pubsub.Hub in one process: topics, encode-once fan-out to both APIs, slow
subscribers, counters."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets.asyncio.client

import wsrs
from wsrs import _core
from wsrs.asyncio.base import BaseProtocol
from wsrs.asyncio.client import connect
from wsrs.asyncio.server import ServerConnection, serve
from wsrs.pubsub import DEFAULT_BUDGET, Hub, HubStats, SubscriberStats

from ..new_api.test_connection import MS, uri_of


async def subscribed(hub: Hub, topics: list[str]) -> Callable[[ServerConnection], Any]:
    async def handler(connection: ServerConnection) -> None:
        for topic in topics:
            hub.subscribe(connection, topic)
        async for message in connection:
            assert isinstance(message, str)
            command, _, topic = message.partition(" ")
            if command == "unsubscribe":
                hub.unsubscribe(connection, topic)
                await connection.send("done")
            elif command == "subscribe":
                hub.subscribe(connection, topic)
                await connection.send("done")

    return handler


async def wait_for(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(MS)
    raise AssertionError("condition not met in time")


def test_arguments() -> None:
    assert Hub().budget == DEFAULT_BUDGET and Hub().policy == "close"
    with pytest.raises(ValueError, match="budget"):
        Hub(budget=-1)
    with pytest.raises(ValueError, match="unknown policy"):
        Hub(policy="ignore")  # type: ignore[arg-type]
    hub = Hub()
    assert hub.publish("nobody", "x") == 0
    with pytest.raises(TypeError):
        hub.publish("nobody", 42)  # type: ignore[arg-type]


async def test_topics_reach_their_subscribers_once_encoded() -> None:
    hub = Hub()
    async with serve(await subscribed(hub, ["news", "sport"]), "127.0.0.1", 0) as server:
        plain = [await connect(uri_of(server), compression=None) for _ in range(3)]
        deflate = [
            await websockets.asyncio.client.connect(uri_of(server)),
            await connect(uri_of(server)),
        ]
        clients: list[Any] = [*plain, *deflate]
        await wait_for(lambda: len(hub.subscribers("news")) == 5)
        frames: list[bytes] = []
        for connection in hub.subscribers("news"):
            core = connection.connection
            assert core is not None
            original = core.send_shared

            def spy(message: _core.SharedMessage, original: Any = original) -> bytes:
                frame: bytes = original(message)
                frames.append(frame)
                return frame

            core.send_shared = spy  # type: ignore[method-assign]
        news = "headline: " + "the quick brown fox jumps over the lazy dog " * 20
        assert hub.publish("news", news) == 5
        for client in clients:
            assert await client.recv() == news
        assert len({id(frame) for frame in frames}) == 2  # plain, and deflate at 15 bits
        assert hub.publish("sport", b"\x00score", text=False) == 5
        for client in clients:
            assert await client.recv() == b"\x00score"
        assert hub.publish("weather", "rain") == 0
        assert hub.topics() == {"news", "sport"}
        assert hub.stats == HubStats(delivered=10)
        for connection in hub.subscribers("news"):
            assert hub.stats_of(connection) == SubscriberStats(delivered=2)
            assert hub.topics(connection) == {"news", "sport"}
        # Unsubscribing, then leaving by closing.
        await clients[0].send("unsubscribe news")
        assert await clients[0].recv() == "done"
        assert len(hub.subscribers("news")) == 4 and len(hub.subscribers("sport")) == 5
        for client in clients:
            await client.close()
        await wait_for(lambda: not hub.topics())
        assert hub.subscribers("news") == set()


async def test_hub_with_lean_subscribers() -> None:
    """compression="lean": the subscribers share one compressed frame per message, and their
    own messages in between still decode, with no zlib state kept on the connections."""
    hub = Hub()
    async with serve(await subscribed(hub, ["news"]), "127.0.0.1", 0, compression="lean") as server:
        clients: list[Any] = [
            await websockets.asyncio.client.connect(uri_of(server)),
            await connect(uri_of(server)),
        ]
        await wait_for(lambda: len(hub.subscribers("news")) == 2)
        for round_ in range(3):
            news = f"headline {round_}: " + "the quick brown fox jumps over the lazy dog " * 20
            assert hub.publish("news", news) == 2
            for client in clients:
                assert await client.recv() == news
                # A command of the client's own, answered by the connection's compressor.
                await client.send(f"subscribe news-{round_} " + "padding " * 30)
                assert await client.recv() == "done"
        for connection in hub.subscribers("news"):
            core = connection.connection
            assert core is not None
            assert not core._writer.deflater_allocated and not core.reader.inflater_allocated
        assert hub.stats == HubStats(delivered=6)
        for client in clients:
            await client.close()


async def test_hub_serves_the_4_0_api_too() -> None:
    hub = Hub()

    async def handler(websocket: wsrs.WebSocketServerProtocol, path: str) -> None:
        hub.subscribe(websocket, path)
        hub.subscribe(websocket, path)  # twice: once
        hub.unsubscribe(websocket, "/never")
        await websocket.wait_closed()

    async with wsrs.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with wsrs.connect(f"ws://127.0.0.1:{port}/room") as client:
            await wait_for(lambda: len(hub.subscribers("/room")) == 1)
            connection = next(iter(hub.subscribers("/room")))
            assert isinstance(connection, BaseProtocol)
            assert hub.publish("/room", "hello 4.0") == 1
            assert await client.recv() == "hello 4.0"
    await wait_for(lambda: not hub.topics())
    assert hub.stats_of(connection) is None and hub.topics(connection) == set()


@contextlib.asynccontextmanager
async def slow_and_fast(hub: Hub, **options: Any) -> AsyncIterator[tuple[Any, Any, Any]]:
    """A server whose subscribers have a tiny send buffer; a client that stops reading
    (tiny receive buffer) and one that reads."""
    connected: list[ServerConnection] = []

    async def handler(connection: ServerConnection) -> None:
        assert connection.transport is not None
        sock = connection.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        connected.append(connection)
        hub.subscribe(connection, "feed")
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None, **options) as server:
        host, port = server.sockets[0].getsockname()[:2]
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect((host, port))
        slow = await connect(uri_of(server), sock=raw, compression=None, max_size=None)
        await wait_for(lambda: len(connected) == 1)
        fast = await connect(uri_of(server), compression=None, max_size=None)
        await wait_for(lambda: len(connected) == 2)
        assert slow.transport is not None
        slow.transport.pause_reading()
        yield slow, fast, connected[0]
        slow.transport.resume_reading()
        await fast.close()
        await slow.close()


async def test_slow_subscriber_drop_policy() -> None:
    budget = 256 * 1024
    hub = Hub(budget=budget, policy="drop")
    async with slow_and_fast(hub) as (slow, fast, slow_side):
        assert slow_side.transport is not None
        message = b"x" * 32 * 1024
        for i in range(100):
            hub.publish("feed", message[:-1] + bytes([i]))
            # Bounded: the budget, plus one message and its header.
            assert slow_side.transport.get_write_buffer_size() <= budget + len(message) + 14
            assert (await fast.recv())[-1] == i
        stats = hub.stats_of(slow_side)
        assert stats is not None and stats.dropped > 50 and stats.delivered + stats.dropped == 100
        assert hub.stats.dropped == stats.dropped and hub.stats.closed_slow == 0
        assert hub.stats.delivered == 100 + stats.delivered
        # Once it reads again it gets what was kept, in order, and the next messages.
        slow.transport.resume_reading()
        received = [(await slow.recv())[-1] for _ in range(stats.delivered)]
        assert received == sorted(received)
        hub.publish("feed", b"after")
        assert await slow.recv() == b"after"
        assert await fast.recv() == b"after"


async def test_slow_subscriber_close_policy() -> None:
    hub = Hub(budget=64 * 1024)
    async with slow_and_fast(hub, close_timeout=0.2) as (_slow, fast, slow_side):
        message = "y" * 16 * 1024
        for _ in range(50):
            hub.publish("feed", message)
            assert await fast.recv() == message
        assert hub.stats.closed_slow == 1
        assert slow_side.connection is not None
        assert slow_side.connection.state is not wsrs.State.OPEN
        await asyncio.wait_for(slow_side.wait_closed(), 2)
        assert slow_side not in hub.subscribers("feed")
        hub.publish("feed", "still here")
        assert await fast.recv() == "still here"


async def test_subscriber_sending_fragments_is_skipped() -> None:
    hub = Hub()
    release = asyncio.Event()

    async def fragments() -> AsyncIterator[str]:
        yield "part one, "
        await release.wait()
        yield "part two"

    async def handler(connection: ServerConnection) -> None:
        hub.subscribe(connection, "t")
        await connection.send(fragments())
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        async with connect(uri_of(server)) as client:
            await wait_for(lambda: len(hub.subscribers("t")) == 1)
            await asyncio.sleep(10 * MS)
            assert hub.publish("t", "between fragments") == 0
            assert hub.stats.dropped == 1
            release.set()
            assert await client.recv() == "part one, part two"
            assert hub.publish("t", "after") == 1
            assert await client.recv() == "after"


class FakeBroker:
    """Records what the hub tells its broker; refuses sends when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.deliver: Callable[[str, bytes, bool], None] | None = None
        self.refuse = False

    def bind(self, deliver: Callable[[str, bytes, bool], None]) -> None:
        self.deliver = deliver

    def join(self, topic: str) -> None:
        self.calls.append(("join", topic))

    def leave(self, topic: str) -> None:
        self.calls.append(("leave", topic))

    def send(self, topic: str, data: bytes, text: bool) -> None:
        if self.refuse:
            raise RuntimeError("refused")
        self.calls.append(("send", topic, data, text))

    async def aclose(self) -> None:
        self.calls.append(("aclose",))


async def test_hub_with_a_broker() -> None:
    broker = FakeBroker()
    hub = Hub(broker=broker)
    assert hub.broker is broker and broker.deliver is not None
    async with serve(await subscribed(hub, ["news"]), "127.0.0.1", 0) as server:
        first = await connect(uri_of(server))
        await wait_for(lambda: len(hub.subscribers("news")) == 1)
        second = await connect(uri_of(server))
        await wait_for(lambda: len(hub.subscribers("news")) == 2)
        # The broker hears of the first subscriber of a topic only.
        assert broker.calls == [("join", "news")]
        # Publishing hands the message to the broker as bytes, text or not.
        assert hub.publish("news", "café") == 2
        assert hub.publish("news", bytearray(b"\x01"), text=False) == 2
        assert hub.publish("news", b"raw text", text=True) == 2
        assert hub.publish("news", "as binary", text=False) == 2
        assert hub.publish("elsewhere", memoryview(b"m")) == 0
        assert broker.calls[1:] == [
            ("send", "news", "café".encode(), True),
            ("send", "news", b"\x01", False),
            ("send", "news", b"raw text", True),
            ("send", "news", b"as binary", False),
            ("send", "elsewhere", b"m", False),
        ]
        for client in (first, second):
            assert [await client.recv() for _ in range(4)] == [
                "café",
                b"\x01",
                "raw text",
                b"as binary",
            ]
        # A message the broker refuses is delivered nowhere.
        broker.refuse = True
        with pytest.raises(RuntimeError, match="refused"):
            hub.publish("news", "lost")
        # What the broker receives from other nodes is delivered like a publish.
        broker.deliver("news", b"from afar", True)
        broker.deliver("news", b"\xff", False)
        broker.deliver("nobody", b"x", True)
        for client in (first, second):
            assert await client.recv() == "from afar"
            assert await client.recv() == b"\xff"
        assert hub.stats == HubStats(delivered=12)
        # It hears of the last subscriber leaving.
        await first.close()
        await wait_for(lambda: len(hub.subscribers("news")) == 1)
        assert broker.calls[-1] == ("send", "elsewhere", b"m", False)
        await second.send("unsubscribe news")
        assert await second.recv() == "done"
        assert broker.calls[-1:] == [("leave", "news")]
        await second.close()
    await hub.aclose()
    assert broker.calls[-1:] == [("aclose",)] and hub.broker is None
    await hub.aclose()  # once only
    assert broker.calls.count(("aclose",)) == 1
    await Hub().aclose()  # without a broker: nothing to do
