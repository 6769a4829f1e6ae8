"""Topics: publish a message once, deliver it to every connection subscribed to its topic.

A :class:`Hub` keeps which connections follow which topics, for connections of either API
(the 4.0 protocols at top level and :mod:`wsrs.asyncio` connections)::

    hub = Hub()

    async def handler(websocket):
        hub.subscribe(websocket, "prices")
        async for message in websocket:
            ...

    hub.publish("prices", json.dumps(update))

How a publish goes out:

- **Encoded once.** The message becomes one :class:`wsrs._core.SharedMessage`: every
  subscriber without compression is written the same ``bytes`` object, and those with
  permessage-deflate one frame per compression setting, compressed once as a fresh
  compressor would, context takeover included (each connection adds the message to its
  compression window, so its own messages and its peer's decompressor stay in step).
  Clients mask each frame with their own key, so they encode it themselves.
- **Slow subscribers.** Each subscriber has a budget of unsent bytes (``budget``, 4 MiB by
  default): the data in its transport's write buffer. A publish finds a subscriber over its
  budget and, by the hub's ``policy``, either closes its connection (``"close"``, the
  default: close code 1008 and a reason, aborted after the close timeout if the peer does
  not read that either) or skips the message for it (``"drop"``, counted). Either way the
  memory a subscriber holds is bounded by its budget plus one message, however slow it is,
  and the other subscribers are not held back.
- **Counters**: :attr:`Hub.stats` for the hub (delivered, dropped, closed for slowness),
  :meth:`Hub.stats_of` per connection.

A connection leaves every topic when it closes. The hub is not thread-safe: use it from the
event loop's thread.

**Beyond one process.** With ``broker=`` (:class:`wsrs.pubsub_redis.RedisBroker`, say), a
publish also goes to the hubs of the other processes and hosts, and theirs come to this one::

    hub = Hub(broker=RedisBroker("redis://127.0.0.1:6379"))
    ...
    await hub.aclose()

The hub tells its broker when a topic gets its first local subscriber and when its last one
leaves, hands it each message it publishes (before writing it to the local subscribers, so
a broker that cannot take it fails the whole publish), and delivers the messages the broker
receives from other nodes exactly as its own publishes. Without a broker (the default)
everything stays in the process.

This module has no I/O of its own: it writes through each connection's transport. The
loop over subscribers runs in Python (one call per subscriber to write the shared frame);
encoding, the expensive part, happens once.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from typing import Literal, Protocol

from . import _core
from .asyncio.base import BaseProtocol
from .connection import State


__all__ = [
    "DEFAULT_BUDGET",
    "Broker",
    "BrokerUnavailable",
    "Gap",
    "Hub",
    "HubStats",
    "SubscriberStats",
    "report_gap",
]

logger = logging.getLogger("wsrs.pubsub")

DEFAULT_BUDGET = 4 * 2**20
"""Unsent bytes a subscriber may hold before the hub's policy applies (4 MiB)."""

SLOW_CLOSE_CODE = 1008
SLOW_CLOSE_REASON = "too slow to keep up with its topics"


@dataclasses.dataclass
class SubscriberStats:
    """What a hub did for one connection."""

    delivered: int = 0
    """Messages written to it."""
    dropped: int = 0
    """Messages skipped because it was over its budget (policy ``"drop"``) or sending a
    fragmented message of its own."""


@dataclasses.dataclass
class HubStats(SubscriberStats):
    """What a hub did for all its connections."""

    closed_slow: int = 0
    """Connections closed because they were over their budget (policy ``"close"``)."""


class BrokerUnavailable(Exception):
    """A publish a broker cannot take: it is closed, or too much waits to be sent already
    (:class:`~wsrs.pubsub_redis.RedisBroker` and :class:`~wsrs.relay.RelayBroker` raise it)."""


@dataclasses.dataclass(frozen=True)
class Gap:
    """Messages of a topic that this process may not have delivered.

    A broker reports it through its ``on_gap`` callback (:class:`~wsrs.pubsub_redis.RedisBroker`,
    :class:`~wsrs.relay.RelayBroker`, :func:`wsrs.workers.broker`), so the application can
    resynchronise the topic's subscribers (send them a snapshot, say).
    """

    topic: str
    node: uuid.UUID | None
    """The publishing node whose messages are missing (Redis); ``None`` when the publisher is
    not known: after a lost connection to Redis (what any node published on the topic
    meanwhile may be missing), or for messages the relay dropped."""
    missing: range = range(0)
    """The numbers of ``node``'s messages that never came (empty when ``node`` is
    ``None``)."""
    dropped: int = 0
    """How many messages of the topic the relay of ``wsrs serve --workers N`` dropped for
    this worker because it did not read them in time (0 for the gaps of Redis)."""


def report_gap(gap: Gap, *on_gap: Callable[[Gap], object] | None) -> None:
    """Log ``gap`` once and call each ``on_gap`` callback (``None`` is skipped) with it; log
    what a callback raises, never propagate it (a broker's callbacks run in its own I/O
    paths), and go on with the next."""
    logger.warning("messages may be missing on topic %r: %s", gap.topic, gap)
    for callback in on_gap:
        if callback is not None:
            try:
                callback(gap)
            except Exception:
                logger.exception("on_gap failed")


class Broker(Protocol):
    """What a :class:`Hub` needs from a broker that carries its topics to other processes.

    The hub calls these from the event loop's thread; none of them may block.
    """

    def bind(self, deliver: Callable[[str, bytes, bool], None]) -> None:
        """Attach the broker to its hub: ``deliver(topic, data, text)`` is how it hands over
        a message that another node published. A broker serves one hub."""

    def join(self, topic: str) -> None:
        """Start receiving ``topic`` from other nodes: it has its first local subscriber."""

    def leave(self, topic: str) -> None:
        """Stop receiving ``topic``: its last local subscriber left."""

    def send(self, topic: str, data: bytes, text: bool) -> None:
        """Take a message published on this node, for the other nodes; raise if it cannot
        be taken (then the hub delivers it nowhere)."""

    async def aclose(self) -> None:
        """Stop: nothing is sent or received afterwards and the broker's tasks are done."""


@dataclasses.dataclass(eq=False)
class _Subscriber:
    topics: set[str]
    stats: SubscriberStats


class Hub:
    """Topics and their subscribers, in one process.

    Args:
        budget: Unsent bytes a subscriber may hold before ``policy`` applies.
        policy: ``"close"`` closes a subscriber over its budget with code 1008;
            ``"drop"`` skips messages for it while it is over its budget.
        broker: Carries the topics to and from the hubs of other processes; ``None``
            (the default) keeps them in this process.

    Raises:
        ValueError: For a negative budget or an unknown policy.
    """

    def __init__(
        self,
        *,
        budget: int = DEFAULT_BUDGET,
        policy: Literal["close", "drop"] = "close",
        broker: Broker | None = None,
    ) -> None:
        if budget < 0:
            raise ValueError("budget must be a positive integer or 0")
        if policy not in ("close", "drop"):
            raise ValueError(f"unknown policy: {policy!r}; expected 'close' or 'drop'")
        self.budget = budget
        self.policy = policy
        self.stats = HubStats()
        """Counters over every connection the hub served."""
        self._topics: dict[str, set[BaseProtocol]] = {}
        self._subscribers: dict[BaseProtocol, _Subscriber] = {}
        self.broker = broker
        """The broker given to the constructor, if any."""
        if broker is not None:
            broker.bind(self._receive)

    async def aclose(self) -> None:
        """Stop the broker, if any; the hub keeps serving its own process."""
        if self.broker is not None:
            await self.broker.aclose()
            self.broker = None

    def subscribe(self, connection: BaseProtocol, topic: str) -> None:
        """Deliver the messages published on ``topic`` to ``connection`` from now on, until
        :meth:`unsubscribe` or until it closes. Subscribing twice changes nothing."""
        subscriber = self._subscribers.get(connection)
        if subscriber is None:
            subscriber = self._subscribers[connection] = _Subscriber(set(), SubscriberStats())
            connection.connection_lost_waiter.add_done_callback(lambda _: self._forget(connection))
        subscriber.topics.add(topic)
        members = self._topics.get(topic)
        if members is None:
            members = self._topics[topic] = set()
            if self.broker is not None:
                self.broker.join(topic)
        members.add(connection)

    def unsubscribe(self, connection: BaseProtocol, topic: str) -> None:
        """Stop delivering ``topic`` to ``connection``; nothing happens if it wasn't
        subscribed."""
        subscriber = self._subscribers.get(connection)
        if subscriber is None or topic not in subscriber.topics:
            return
        subscriber.topics.discard(topic)
        self._leave(connection, topic)

    def _leave(self, connection: BaseProtocol, topic: str) -> None:
        members = self._topics[topic]
        members.discard(connection)
        if not members:
            del self._topics[topic]
            if self.broker is not None:
                self.broker.leave(topic)

    def _forget(self, connection: BaseProtocol) -> None:
        # Called once per connection: when it closes (registered on its first subscribe).
        for topic in self._subscribers.pop(connection).topics:
            self._leave(connection, topic)

    def topics(self, connection: BaseProtocol | None = None) -> set[str]:
        """The topics ``connection`` follows, or every topic with a subscriber."""
        if connection is None:
            return set(self._topics)
        subscriber = self._subscribers.get(connection)
        return set() if subscriber is None else set(subscriber.topics)

    def subscribers(self, topic: str) -> set[BaseProtocol]:
        """The connections subscribed to ``topic``."""
        return set(self._topics.get(topic, ()))

    def stats_of(self, connection: BaseProtocol) -> SubscriberStats | None:
        """The counters of a subscribed connection; ``None`` once it has left every topic
        by closing, or if it never subscribed."""
        subscriber = self._subscribers.get(connection)
        return None if subscriber is None else subscriber.stats

    def publish(
        self, topic: str, message: str | bytes | bytearray | memoryview, *, text: bool | None = None
    ) -> int:
        """Write ``message`` to every open subscriber of ``topic`` now, without waiting.

        ``str`` is sent as text and bytes-like data as binary, unless ``text`` says
        otherwise. Subscribers over their budget get the hub's policy instead.

        With a broker, the message goes to the other nodes too, unless the broker refuses it:
        then it raises and the message is written nowhere.

        Returns:
            How many connections in this process the message was written to.

        Raises:
            TypeError: If ``message`` is neither ``str`` nor bytes-like.
            Exception: Whatever the broker raises when it cannot take the message
                (:exc:`BrokerUnavailable` for the brokers of wsrs).
        """
        shared = _core.SharedMessage(message, text=text)
        if self.broker is not None:
            is_text = isinstance(message, str) if text is None else text
            data = message.encode() if isinstance(message, str) else bytes(message)
            self.broker.send(topic, data, is_text)
        return self._fan_out(topic, shared)

    def _receive(self, topic: str, data: bytes, text: bool) -> None:
        # A message published on another node, handed over by the broker.
        self._fan_out(topic, _core.SharedMessage(data, text=text))

    def _fan_out(self, topic: str, shared: _core.SharedMessage) -> int:
        members = self._topics.get(topic)
        if not members:
            return 0
        delivered = 0
        for connection in tuple(members):
            if self._deliver(connection, shared):
                delivered += 1
        self.stats.delivered += delivered
        return delivered

    def _deliver(self, connection: BaseProtocol, shared: _core.SharedMessage) -> bool:
        core, transport = connection.connection, connection.transport
        if core is None or transport is None or core.state is not State.OPEN:
            return False
        stats = self._subscribers[connection].stats
        if core.sending_fragments:
            # The connection is sending a fragmented message of its own: nothing may come
            # between its fragments.
            stats.dropped += 1
            self.stats.dropped += 1
            return False
        if transport.get_write_buffer_size() > self.budget:
            if self.policy == "drop":
                stats.dropped += 1
                self.stats.dropped += 1
                return False
            logger.info("closing a subscriber over its budget of %d bytes", self.budget)
            self.stats.closed_slow += 1
            connection._start_closing(core, SLOW_CLOSE_CODE, SLOW_CLOSE_REASON)
            return False
        connection._write_shared(shared)
        stats.delivered += 1
        return True
