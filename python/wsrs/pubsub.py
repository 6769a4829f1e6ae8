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

This module has no I/O of its own: it writes through each connection's transport. The
loop over subscribers runs in Python (one call per subscriber to write the shared frame);
encoding, the expensive part, happens once.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal

from . import _core
from .asyncio.base import BaseProtocol
from .connection import State


__all__ = ["DEFAULT_BUDGET", "Hub", "HubStats", "SubscriberStats"]

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

    Raises:
        ValueError: For a negative budget or an unknown policy.
    """

    def __init__(
        self, *, budget: int = DEFAULT_BUDGET, policy: Literal["close", "drop"] = "close"
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

    def subscribe(self, connection: BaseProtocol, topic: str) -> None:
        """Deliver the messages published on ``topic`` to ``connection`` from now on, until
        :meth:`unsubscribe` or until it closes. Subscribing twice changes nothing."""
        subscriber = self._subscribers.get(connection)
        if subscriber is None:
            subscriber = self._subscribers[connection] = _Subscriber(set(), SubscriberStats())
            connection.connection_lost_waiter.add_done_callback(lambda _: self._forget(connection))
        subscriber.topics.add(topic)
        self._topics.setdefault(topic, set()).add(connection)

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

        Returns:
            How many connections the message was written to.

        Raises:
            TypeError: If ``message`` is neither ``str`` nor bytes-like.
        """
        members = self._topics.get(topic)
        shared = _core.SharedMessage(message, text=text)
        if not members:
            return 0
        delivered = 0
        for connection in tuple(members):
            if self._deliver(connection, shared):
                delivered += 1
        self.stats.delivered += delivered
        return delivered

    def _deliver(self, connection: BaseProtocol, shared: _core.SharedMessage) -> bool:
        core, writer, transport = connection.connection, connection._writer, connection.transport
        if core is None or writer is None or transport is None or core.state is not State.OPEN:
            return False
        stats = self._subscribers[connection].stats
        if transport.get_write_buffer_size() > self.budget:
            if self.policy == "drop":
                stats.dropped += 1
                self.stats.dropped += 1
                return False
            logger.info("closing a subscriber over its budget of %d bytes", self.budget)
            self.stats.closed_slow += 1
            connection._start_closing(core, SLOW_CLOSE_CODE, SLOW_CLOSE_REASON)
            return False
        try:
            frame = core.send_shared(shared)
        except ValueError:
            # The connection is sending a fragmented message of its own: nothing may come
            # between its fragments.
            stats.dropped += 1
            self.stats.dropped += 1
            return False
        writer.write_now(frame)
        stats.delivered += 1
        return True
