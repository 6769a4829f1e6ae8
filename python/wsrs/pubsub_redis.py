"""Topics across processes and hosts through Redis pub/sub: :class:`RedisBroker`.

Give a broker to each process's :class:`~wsrs.pubsub.Hub`; every hub on the same Redis then
delivers what any of them publishes::

    hub = Hub(broker=RedisBroker("redis://redis.internal:6379"))
    hub.subscribe(websocket, "prices")  # the first local subscriber: SUBSCRIBE wsrs:prices
    hub.publish("prices", update)       # local subscribers now, other nodes through Redis
    ...
    await hub.aclose()                  # stops the broker's two tasks

Each broker is a *node* with a random id (a UUID4). A topic is a Redis channel
(``channel_prefix`` + the topic, UTF-8), subscribed while the topic has a local subscriber.
Each message travels in an envelope (:func:`encode_envelope`): a version, whether it is text,
the id of the node that published it and its number in that node's sequence for the topic
(1, 2, 3...), then the payload as it was published.

What is guaranteed:

- **At most once, in publish order**, per topic and publishing node: a node delivers a
  message to its local subscribers when it publishes it, and ignores its own messages when
  Redis echoes them; a receiving node drops a message whose number it has seen (a batch sent
  again after a lost connection). Messages of different nodes are not ordered between them.
- **Gaps are reported, not repaired.** Redis pub/sub keeps nothing for a subscriber that is
  not connected. ``on_gap`` is called with a :class:`~wsrs.pubsub.Gap` for a topic when a number is
  skipped (those messages are missing), and, after the connection to Redis was lost and
  made again, once for each topic that was subscribed then (``node`` is ``None``: what any
  node published meanwhile may be missing). The application resynchronises its clients,
  from a database say. Exceptions raised by ``on_gap`` are logged, never propagated.
- **Publishing never waits for Redis.** :meth:`RedisBroker.send` puts the envelope in a
  queue that one task sends to Redis in pipelined batches. While Redis is unreachable the
  queue keeps up to ``max_pending`` messages, sent once it is back; beyond that a publish
  raises :exc:`~wsrs.pubsub.BrokerUnavailable` and nothing is delivered, locally either.
- **Lost connections** are made again with exponential backoff (with jitter, from
  ``backoff[0]`` to ``backoff[1]`` seconds); the topics are subscribed again. The broker's
  tasks never let an exception out: the application only sees ``on_gap`` and
  :attr:`RedisBroker.stats`. A Redis that stops answering without closing the connection
  is noticed by a ping unanswered for ``ping_interval`` seconds.

The envelope and the sequence bookkeeping (:func:`encode_envelope`, :func:`decode_envelope`,
:class:`SequenceTracker`) are Sans-I/O, with no Redis in them. Requires ``redis[hiredis]``
(``pip install wsrs[redis]``).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
import struct
import uuid
from collections.abc import Callable
from typing import Any, cast

import redis.asyncio
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from . import _core
from .pubsub import BrokerUnavailable, Gap, report_gap


__all__ = [
    "ENVELOPE_VERSION",
    "BrokerStats",
    "BrokerUnavailable",
    "Envelope",
    "Gap",
    "RedisBroker",
    "SequenceTracker",
    "decode_envelope",
    "encode_envelope",
]

logger = logging.getLogger("wsrs.pubsub")

# The envelope --------------------------------------------------------------------------------

ENVELOPE_VERSION = 1
"""The version byte of :func:`encode_envelope`; envelopes of another version are refused."""

# version (u8), flags (u8), node id (16 bytes), sequence number (u64), network byte order.
_HEADER = struct.Struct("!BB16sQ")
_TEXT = 0x01


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A message as it travels between nodes."""

    node: bytes
    """The 16 bytes of the publishing node's UUID."""
    seq: int
    """Its number in the node's sequence for the topic, from 1."""
    text: bool
    """Whether it is a text message (else binary)."""
    data: bytes
    """The payload as published (UTF-8 for text)."""


def encode_envelope(node: bytes, seq: int, text: bool, data: bytes) -> bytes:
    """Return the envelope of a message: a 26-byte header, then ``data``.

    Raises:
        struct.error: If ``node`` is not 16 bytes or ``seq`` is not a u64.
    """
    if len(node) != 16:
        raise struct.error(f"node id has {len(node)} bytes, expected 16")
    return _HEADER.pack(ENVELOPE_VERSION, _TEXT if text else 0, node, seq) + data


def decode_envelope(raw: bytes) -> Envelope:
    """Return the message in an envelope made by :func:`encode_envelope`.

    Raises:
        ValueError: If ``raw`` is shorter than the header, of another version, or has
            unknown flags.
    """
    if len(raw) < _HEADER.size:
        raise ValueError(f"envelope has {len(raw)} bytes, expected at least {_HEADER.size}")
    version, flags, node, seq = _HEADER.unpack_from(raw)
    if version != ENVELOPE_VERSION:
        raise ValueError(f"envelope version {version}, expected {ENVELOPE_VERSION}")
    if flags & ~_TEXT:
        raise ValueError(f"unknown envelope flags 0x{flags:02x}")
    return Envelope(node, seq, bool(flags & _TEXT), raw[_HEADER.size :])


class SequenceTracker:
    """The last number received per topic and publishing node: tells duplicates and gaps."""

    def __init__(self) -> None:
        self._last: dict[str, dict[bytes, int]] = {}

    def observe(self, topic: str, node: bytes, seq: int) -> range | None:
        """Record message ``seq`` of ``node`` on ``topic``.

        Returns:
            ``None`` if it was seen already (or an earlier one came after it): drop it.
            Otherwise the numbers missing before it, an empty range when none are; the
            first message of a node on a topic never counts as a gap.
        """
        nodes = self._last.setdefault(topic, {})
        last = nodes.get(node)
        if last is not None and seq <= last:
            return None
        nodes[node] = seq
        return range(0) if last is None else range(last + 1, seq)

    def forget(self, topic: str) -> None:
        """Start ``topic`` over: what comes next is a first message, whatever its number."""
        self._last.pop(topic, None)


# The broker ----------------------------------------------------------------------------------


@dataclasses.dataclass
class BrokerStats:
    """What a broker did."""

    sent: int = 0
    """Messages handed to Redis."""
    received: int = 0
    """Messages of other nodes delivered to the hub."""
    duplicates: int = 0
    """Messages of other nodes received twice and dropped."""
    missed: int = 0
    """Messages of other nodes known missing by their numbers."""
    invalid: int = 0
    """Messages that were not valid envelopes (or not UTF-8 though text), dropped."""
    refused: int = 0
    """Publishes refused with :exc:`~wsrs.pubsub.BrokerUnavailable`."""
    reconnects: int = 0
    """Connections to Redis made again after one was lost or could not be made."""


DEFAULT_MAX_PENDING = 10_000
BATCH = 256
"""Messages sent to Redis in one pipeline (one round trip)."""


class RedisBroker:
    """Carry a :class:`~wsrs.pubsub.Hub`'s topics to the hubs of other processes through
    Redis pub/sub.

    Its tasks start with the first topic or publish, so it must be used within a running
    event loop, from the loop's thread: elsewhere, subscribing and publishing raise
    :exc:`RuntimeError`.

    Args:
        url: Where Redis is, as ``redis.asyncio.Redis.from_url`` reads it.
        channel_prefix: Put before each topic to name its Redis channel.
        max_pending: Messages kept while Redis is unreachable or slow; a publish beyond
            them raises :exc:`~wsrs.pubsub.BrokerUnavailable`.
        on_gap: Called with each :class:`~wsrs.pubsub.Gap`, from the event loop.
        backoff: The first and the longest delay between attempts to reach Redis, in
            seconds.
        timeout: How long connecting to Redis and each command may take, in seconds.
        ping_interval: After this many seconds without a message from Redis, the broker
            pings it; after as many again without an answer, the connection counts as
            lost.
        node_id: This node's id; a new UUID4 by default.

    Raises:
        ValueError: For a ``max_pending`` below 1 or a backoff that is not
            ``0 < first <= longest``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379",
        *,
        channel_prefix: str = "wsrs:",
        max_pending: int = DEFAULT_MAX_PENDING,
        on_gap: Callable[[Gap], object] | None = None,
        backoff: tuple[float, float] = (0.05, 5.0),
        timeout: float = 5.0,
        ping_interval: float = 5.0,
        node_id: uuid.UUID | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        if not 0 < backoff[0] <= backoff[1]:
            raise ValueError("backoff must be (first, longest) with 0 < first <= longest")
        self.url = url
        self.max_pending = max_pending
        self.on_gap = on_gap
        self.backoff = backoff
        self.timeout = timeout
        self.ping_interval = ping_interval
        self.node_id = uuid.uuid4() if node_id is None else node_id
        """This node's id, in the envelope of every message it publishes."""
        self.stats = BrokerStats()
        """Counters since the broker was made."""
        self._prefix = channel_prefix.encode()
        # A channel no topic can have: subscribed whatever the topics, so that the pub/sub
        # connection always exists and its first confirmation says it is up.
        self._own_channel = self._prefix + b"\x00node\x00" + self.node_id.bytes
        self._deliver: Callable[[str, bytes, bool], None] | None = None
        self._wanted: set[str] = set()  # topics with local subscribers
        self._requested: set[str] = set()  # topics SUBSCRIBEd on the current connection
        self._subscribed: set[str] = set()  # ... and confirmed by Redis
        self._seq: dict[str, int] = {}
        self._tracker = SequenceTracker()
        self._outbox: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._client: redis.asyncio.Redis | None = None
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = False
        self._closed = False
        self._wakeup = asyncio.Event()  # something to send or to (un)subscribe
        self._changed = asyncio.Event()  # replaced on each change; see _notify

    @property
    def connected(self) -> bool:
        """Whether the pub/sub connection to Redis is up."""
        return self._connected

    def pending(self) -> int:
        """How many published messages wait to be handed to Redis."""
        return len(self._outbox)

    # The Broker protocol of wsrs.pubsub.Hub.

    def bind(self, deliver: Callable[[str, bytes, bool], None]) -> None:
        """Serve the hub that delivers with ``deliver``; called by the hub.

        Raises:
            RuntimeError: If the broker serves a hub already.
        """
        if self._deliver is not None:
            raise RuntimeError("this broker serves another hub already")
        self._deliver = deliver

    def join(self, topic: str) -> None:
        """Subscribe ``topic``'s channel (soon, from the broker's task)."""
        self._start()
        self._tracker.forget(topic)
        self._wanted.add(topic)

    def leave(self, topic: str) -> None:
        """Unsubscribe ``topic``'s channel (soon, from the broker's task)."""
        self._start()
        self._wanted.discard(topic)

    def send(self, topic: str, data: bytes, text: bool) -> None:
        """Queue a message published on this node for Redis.

        Raises:
            BrokerUnavailable: If the broker is closed or ``max_pending`` messages wait
                for Redis already.
        """
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        if len(self._outbox) >= self.max_pending:
            self.stats.refused += 1
            state = "is connected to" if self._connected else "cannot reach"
            raise BrokerUnavailable(
                f"{len(self._outbox)} messages wait for Redis already, "
                f"the most allowed (max_pending); the broker {state} {self.url}"
            )
        self._start()
        seq = self._seq[topic] = self._seq.get(topic, 0) + 1
        envelope = encode_envelope(self.node_id.bytes, seq, text, data)
        self._outbox.append((self._prefix + topic.encode(), envelope))

    async def wait_ready(self) -> None:
        """Wait until the broker is connected to Redis, every topic with a local subscriber
        is subscribed there and every message published so far was handed to Redis.

        It may never be, while Redis is unreachable: use a timeout.

        Raises:
            BrokerUnavailable: If the broker is closed, or closes meanwhile.
        """
        self._start()
        while not (
            self._connected
            and self._subscribed == self._wanted
            and self._requested == self._wanted
            and not self._outbox
        ):
            if self._closed:
                raise BrokerUnavailable("the broker is closed")
            await self._changed.wait()

    async def aclose(self) -> None:
        """Stop the broker's tasks and close its connections to Redis. Messages not handed
        to Redis yet are dropped (:meth:`wait_ready` first to send them)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            # redis-py swallows a cancellation now and then: closing while a pipeline is
            # sent left the send task waiting again, in 2 runs of 100 closes out of 2.
            # Then it is cancelled again.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
        self._connected = False
        self._notify()

    # The tasks.

    def _start(self) -> None:
        # Raises RuntimeError outside a running event loop, before anything changes.
        asyncio.get_running_loop()
        self._wakeup.set()
        if self._tasks or self._closed:
            return
        self._client = redis.asyncio.Redis.from_url(
            self.url,
            # Reconnecting is ours: the topics may have gaps, and on_gap must hear of it.
            retry=Retry(NoBackoff(), 0),
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            socket_keepalive=True,
        )
        self._tasks = [
            asyncio.create_task(self._receive_loop(self._client), name="wsrs-redis-receive"),
            asyncio.create_task(self._send_loop(self._client), name="wsrs-redis-send"),
        ]

    def _notify(self) -> None:
        # Wake whoever waits in wait_ready(); they check again.
        self._changed.set()
        self._changed = asyncio.Event()

    def _delay(self, attempt: int) -> float:
        first, longest = self.backoff
        return random.uniform(0.5, 1.0) * min(longest, first * (1 << min(attempt, 32)))

    async def _receive_loop(self, client: redis.asyncio.Redis) -> None:
        attempt = 0
        lost: set[str] = set()  # topics subscribed when the connection was lost
        while True:
            pubsub = client.pubsub()
            try:
                requested = set(self._wanted)
                channels = [self._prefix + topic.encode() for topic in requested]
                await pubsub.subscribe(self._own_channel, *channels)
                self._requested = requested
                self._pubsub = pubsub
                self._wakeup.set()  # topics joined or left meanwhile
                while True:
                    message = await self._next_message(pubsub)
                    if message["type"] == "pong":
                        continue
                    if message["channel"] == self._own_channel:
                        # SUBSCRIBE is done, for every channel it named: up again.
                        self._connected = True
                        attempt = 0
                        self._report_lost(lost & requested & self._wanted)
                        lost.clear()
                        self._notify()
                    else:
                        self._handle(message)
            except Exception as exc:
                # Once per outage at warning level; each failed attempt after, at debug.
                if self._connected:
                    logger.warning("lost the connection to Redis at %s: %s", self.url, exc)
                else:
                    level = logging.DEBUG if attempt else logging.WARNING
                    logger.log(level, "cannot reach Redis at %s: %s", self.url, exc)
                lost |= self._requested if self._connected else set()
                self._connected = False
                self._pubsub = None
                self._requested = set()
                self._subscribed = set()
                self._notify()
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            self.stats.reconnects += 1
            await asyncio.sleep(self._delay(attempt))
            attempt += 1

    async def _next_message(self, pubsub: PubSub) -> dict[str, Any]:
        # Quiet for ping_interval: ping; quiet for another: the connection is lost.
        # With hiredis, a read that times out keeps what it read of a reply.
        message = await pubsub.get_message(timeout=self.ping_interval)
        # test_redis_that_stops_answering runs this block, but coverage 7.17 on CPython
        # 3.11 stops tracing the frames of a task once a timeout has cancelled a read in
        # it (asyncio.timeout alone does it), so it is excluded from the measure.
        if message is None:  # pragma: no cover
            await pubsub.ping()
            message = await pubsub.get_message(timeout=self.ping_interval)
            if message is None:
                raise TimeoutError(f"no answer to a ping in {self.ping_interval} s")
        return cast(dict[str, Any], message)

    def _report_lost(self, topics: set[str]) -> None:
        for topic in sorted(topics):
            report_gap(Gap(topic, None), self.on_gap)

    def _handle(self, message: dict[str, Any]) -> None:
        kind, channel, data = message["type"], message["channel"], message["data"]
        topic = channel[len(self._prefix) :].decode()
        if kind == "subscribe":
            self._subscribed.add(topic)
            self._notify()
            return
        if kind == "unsubscribe":
            self._subscribed.discard(topic)
            self._notify()
            return
        if topic not in self._wanted:
            return  # left; Redis has not confirmed UNSUBSCRIBE yet
        try:
            envelope = decode_envelope(data)
        except ValueError as exc:
            self.stats.invalid += 1
            logger.warning("dropped a message on topic %r: %s", topic, exc)
            return
        if envelope.node == self.node_id.bytes:
            return  # our own, delivered when published
        if envelope.text and not _core.validate_utf8(envelope.data):
            self.stats.invalid += 1
            logger.warning("dropped a text message on topic %r: invalid UTF-8", topic)
            return
        missing = self._tracker.observe(topic, envelope.node, envelope.seq)
        if missing is None:
            self.stats.duplicates += 1
            return
        if missing:
            self.stats.missed += len(missing)
            report_gap(Gap(topic, uuid.UUID(bytes=envelope.node), missing), self.on_gap)
        self.stats.received += 1
        assert self._deliver is not None  # bound before any topic is joined
        self._deliver(topic, envelope.data, envelope.text)

    async def _send_loop(self, client: redis.asyncio.Redis) -> None:
        attempt = 0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._sync_subscriptions()
                while self._outbox:
                    batch = [self._outbox[i] for i in range(min(BATCH, len(self._outbox)))]
                    async with client.pipeline(transaction=False) as pipeline:
                        for channel, envelope in batch:
                            pipeline.publish(channel, envelope)
                        await pipeline.execute()
                    # Sent: only now out of the queue. A batch that fails is sent again;
                    # the receivers drop what they got already by its number.
                    for _ in batch:
                        self._outbox.popleft()
                    self.stats.sent += len(batch)
                attempt = 0
                self._notify()
            except Exception as exc:
                level = logging.DEBUG if attempt else logging.WARNING
                logger.log(level, "cannot publish to Redis at %s: %s", self.url, exc)
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                self._wakeup.set()

    async def _sync_subscriptions(self) -> None:
        # SUBSCRIBE what has gained local subscribers, UNSUBSCRIBE what has lost them, on
        # the current connection; the receive task subscribes everything on a new one.
        pubsub = self._pubsub
        if pubsub is None:
            return
        add = self._wanted - self._requested
        remove = self._requested - self._wanted
        self._requested = set(self._wanted)
        if add:
            await pubsub.subscribe(*(self._prefix + topic.encode() for topic in add))
        if remove:
            await pubsub.unsubscribe(*(self._prefix + topic.encode() for topic in remove))
