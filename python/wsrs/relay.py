"""Topics across the worker processes of one host: the relay of ``wsrs serve --workers N``.

The supervisor of :mod:`wsrs.workers` holds one end of a Unix socket pair per worker (the
worker inherits the other end) and runs a :class:`Relay` on them: each worker says which
topics its hubs follow, and each message a worker publishes goes to the workers that follow
its topic, never back to the one that published it. In a worker, :class:`RelayChannel` is
that worker's end, and :class:`RelayBroker` is the :class:`~wsrs.pubsub.Broker` a
:class:`~wsrs.pubsub.Hub` uses on it (:func:`wsrs.workers.broker` makes one)::

    hub = Hub(broker=wsrs.workers.broker())

The relay serves one host. Across hosts, use Redis
(:class:`~wsrs.pubsub_redis.RedisBroker`, ``wsrs serve --redis URL``).

**Frames.** Both directions carry the same frames (:func:`encode_frame`,
:class:`FrameDecoder`): a 4-byte length (of what follows it), a kind (``JOIN``, ``LEAVE``,
``PUBLISH``, ``READY``, ``GAP``), flags (``TEXT``), the length of the topic (2 bytes), the
topic in UTF-8 and, for ``PUBLISH``, the payload, for ``GAP`` a count (8 bytes), network
byte order. ``READY`` tells the supervisor that the worker listens; ``GAP`` tells a worker
how many messages of a topic the relay dropped for it.

What is guaranteed:

- **At most once, in publish order** per topic and publishing worker: each worker's frames
  are read in order, routed as they come and written in order; the relay never sends a
  message back to the worker that published it (that worker delivered it to its own
  subscribers already).
- **A topic is joined when the relay reads the JOIN.** A worker writes its ``JOIN`` to the
  relay as its hub subscribes, but the relay reads each worker's socket in its own time: a
  message published in another worker soon after (even one a client sent after it was told
  it was subscribed) can be read first and miss the new follower, as a Redis ``SUBSCRIBE``
  can miss a racing ``PUBLISH``. Frames of one worker are read in order: once a message of
  a topic a worker joined reaches it, the relay routes every topic it joined before.
- **Bounded memory, the relay never waits.** The relay keeps up to ``max_buffer`` bytes
  unsent per worker (a worker whose event loop is stuck stops reading its socket); beyond
  that it drops the messages for that worker, counts them (:attr:`Relay.stats`, per worker
  :attr:`RelayLink.dropped`) and logs once per run of drops.
- **Gaps are reported, not repaired.** The relay counts the dropped messages of a worker per
  topic (:attr:`RelayLink.missed`, at most one entry per topic the worker follows: a topic
  it leaves is forgotten). When the worker reads again (its socket buffer drains, or a new
  message finds room), the relay sends it one ``GAP`` frame per topic with drops (after
  the messages it kept, before any later one), and the worker's :class:`RelayBroker`
  objects that follow the topic call their ``on_gap`` with a :class:`~wsrs.pubsub.Gap`
  (``node`` is ``None``, :attr:`~wsrs.pubsub.Gap.dropped` the count), as
  :class:`~wsrs.pubsub_redis.RedisBroker` does: the application resynchronises the topic's
  clients. Exceptions raised by ``on_gap`` are logged, never propagated.
- **Bounded buffers for publishing too.** A worker keeps up to ``max_buffer`` bytes for
  the relay; beyond that :meth:`RelayBroker.send` raises
  :exc:`~wsrs.pubsub.BrokerUnavailable`, as a publish on a broker that cannot keep up.
- **Frames are bounded**: a message over ``max_frame`` bytes (16 MiB) is refused when
  published (:exc:`ValueError`); a frame announcing more, or otherwise invalid, ends the
  link to the worker that sent it (logged; it is a bug).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import socket
import struct
from collections.abc import Callable

from .pubsub import BrokerUnavailable, Gap, report_gap


__all__ = [
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_FRAME",
    "Frame",
    "FrameDecoder",
    "Kind",
    "Relay",
    "RelayBroker",
    "RelayChannel",
    "RelayError",
    "RelayLink",
    "RelayStats",
    "encode_frame",
    "encode_gap",
]

logger = logging.getLogger("wsrs.workers")

DEFAULT_MAX_FRAME = 2**24
"""The largest frame, its length field included (16 MiB)."""
DEFAULT_MAX_BUFFER = 2**24
"""Bytes kept unsent for one peer before messages are dropped or refused (16 MiB)."""

# Frame length (u32, of what follows it), kind (u8), flags (u8), topic length (u16).
_HEADER = struct.Struct("!IBBH")
_TEXT = 0x01
_COUNT = 8  # the payload of GAP: a count of messages, u64


class Kind(enum.IntEnum):
    """What a frame says."""

    JOIN = 1
    """The worker's hubs follow the topic now."""
    LEAVE = 2
    """They do not any more."""
    PUBLISH = 3
    """A message on the topic."""
    READY = 4
    """The worker listens (worker to supervisor; no topic)."""
    GAP = 5
    """Messages of the topic the relay dropped for the worker (supervisor to worker); the
    payload is their number (8 bytes)."""


@dataclasses.dataclass(frozen=True)
class Frame:
    """A decoded frame."""

    kind: Kind
    topic: str
    text: bool
    data: bytes
    raw: bytes
    """The frame as it was received, to forward it unchanged."""


class RelayError(ValueError):
    """A frame that breaks the format."""


def encode_frame(kind: Kind, topic: str = "", data: bytes = b"", *, text: bool = False) -> bytes:
    """Return the frame of ``kind`` for ``topic``, with ``data`` (``PUBLISH``; for ``GAP``,
    the count: see :func:`encode_gap`).

    Raises:
        ValueError: If the topic is longer than 65,535 bytes in UTF-8.
    """
    name = topic.encode()
    if len(name) > 0xFFFF:
        raise ValueError(f"topic has {len(name)} bytes in UTF-8, expected at most 65535")
    size = 4 + len(name) + len(data)
    return _HEADER.pack(size, kind, _TEXT if text else 0, len(name)) + name + data


def encode_gap(topic: str, count: int) -> bytes:
    """Return the ``GAP`` frame: ``count`` messages of ``topic`` were dropped."""
    return encode_frame(Kind.GAP, topic, count.to_bytes(_COUNT))


class FrameDecoder:
    """Split a byte stream into frames (Sans-I/O).

    Args:
        max_frame: The largest frame accepted, its length field included.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Take bytes received; return the frames they complete, in order.

        Raises:
            RelayError: On a frame that breaks the format; the stream cannot be read
                further.
        """
        self._buffer += data
        frames: list[Frame] = []
        start = 0
        buffer = self._buffer
        while len(buffer) - start >= 4:
            size = int.from_bytes(buffer[start : start + 4])
            if not _HEADER.size - 4 <= size <= self.max_frame - 4:
                raise RelayError(
                    f"frame of {size + 4} bytes, expected {_HEADER.size} to {self.max_frame}"
                )
            end = start + 4 + size
            if len(buffer) < end:
                break
            frames.append(_decode(bytes(buffer[start:end])))
            start = end
        del buffer[:start]
        return frames


def _decode(raw: bytes) -> Frame:
    _, kind, flags, length = _HEADER.unpack_from(raw)
    try:
        frame_kind = Kind(kind)
    except ValueError:
        raise RelayError(f"unknown frame kind {kind}") from None
    if flags & ~_TEXT:
        raise RelayError(f"unknown frame flags 0x{flags:02x}")
    end = _HEADER.size + length
    if end > len(raw):
        raise RelayError(f"topic of {length} bytes in a frame of {len(raw)}")
    try:
        topic = raw[_HEADER.size : end].decode()
    except UnicodeDecodeError:
        raise RelayError("topic is not UTF-8") from None
    if frame_kind is Kind.GAP and len(raw) - end != _COUNT:
        raise RelayError(f"GAP frame with {len(raw) - end} bytes of count, expected {_COUNT}")
    return Frame(frame_kind, topic, bool(flags & _TEXT), raw[end:], raw)


# The supervisor's side ----------------------------------------------------------------------


@dataclasses.dataclass
class RelayStats:
    """What a relay did."""

    routed: int = 0
    """Messages written to a worker."""
    dropped: int = 0
    """Messages not written to a worker that had ``max_buffer`` bytes unsent already."""
    gaps: int = 0
    """``GAP`` frames sent: topics reported to a worker that read again after drops."""


class RelayLink(asyncio.Protocol):
    """The relay's end of one worker's socket pair (an asyncio protocol).

    Args:
        relay: The relay it belongs to.
        name: How logs call the worker.
    """

    def __init__(self, relay: Relay, name: str) -> None:
        self.relay = relay
        self.name = name
        self.topics: set[str] = set()
        """The topics the worker follows."""
        self.dropped = 0
        """Messages dropped for this worker because it did not read them."""
        self.missed: dict[str, int] = {}
        """Messages dropped per topic that the worker was not told of yet (with ``GAP``);
        only topics the worker follows."""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done when the worker said ``READY``."""
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done when the socket is closed."""
        self.transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder(relay.max_frame)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (asyncio callback); be told when its buffer drains."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # resume_writing() comes when the buffer is back under max_buffer // 4 after it
        # went over max_buffer, which is where send() starts dropping.
        transport.set_write_buffer_limits(high=self.relay.max_buffer)

    def resume_writing(self) -> None:
        """Tell the worker what it missed: it reads again (asyncio callback)."""
        if self.missed:
            self._report_gaps()

    def data_received(self, data: bytes) -> None:
        """Route what the worker sent (asyncio callback)."""
        try:
            frames = self._decoder.feed(data)
        except RelayError as exc:
            logger.error("closing the relay link of %s: %s", self.name, exc)
            assert self.transport is not None
            self.transport.abort()
            return
        for frame in frames:
            self.relay._received(self, frame)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the worker's topics (asyncio callback)."""
        self.relay._lost(self)
        self.closed.set_result(None)

    def send(self, raw: bytes, topic: str) -> bool:
        """Write a frame of ``topic`` to the worker unless ``max_buffer`` bytes wait for it
        already (then count it in :attr:`missed`); return whether it was written."""
        transport = self.transport
        assert transport is not None
        if transport.get_write_buffer_size() > self.relay.max_buffer:
            if not self.missed:
                logger.warning(
                    "%s does not read its relay socket: dropping its messages", self.name
                )
            self.dropped += 1
            self.relay.stats.dropped += 1
            self.missed[topic] = self.missed.get(topic, 0) + 1
            return False
        if self.missed:
            self._report_gaps()
        transport.write(raw)
        self.relay.stats.routed += 1
        return True

    def _report_gaps(self) -> None:
        logger.warning("%s reads again; %d messages dropped so far", self.name, self.dropped)
        assert self.transport is not None
        self.transport.write(b"".join(encode_gap(*item) for item in self.missed.items()))
        self.relay.stats.gaps += len(self.missed)
        self.missed.clear()


class Relay:
    """Route the topics of the workers of one host (runs in the supervisor).

    Args:
        max_buffer: Bytes kept unsent for one worker before its messages are dropped.
        max_frame: The largest frame a worker may send.
    """

    def __init__(
        self, *, max_buffer: int = DEFAULT_MAX_BUFFER, max_frame: int = DEFAULT_MAX_FRAME
    ) -> None:
        self.max_buffer = max_buffer
        self.max_frame = max_frame
        self.stats = RelayStats()
        """Counters over every worker."""
        self._topics: dict[str, set[RelayLink]] = {}

    async def attach(self, sock: socket.socket, name: str) -> RelayLink:
        """Serve the worker at the other end of ``sock`` (a connected Unix socket)."""
        loop = asyncio.get_running_loop()
        _, link = await loop.create_unix_connection(lambda: RelayLink(self, name), sock=sock)
        return link

    def followers(self, topic: str) -> set[RelayLink]:
        """The links of the workers that follow ``topic``."""
        return set(self._topics.get(topic, ()))

    def _received(self, link: RelayLink, frame: Frame) -> None:
        topic = frame.topic
        if frame.kind is Kind.PUBLISH:
            for other in self._topics.get(topic, ()):
                if other is not link:
                    other.send(frame.raw, topic)
        elif frame.kind is Kind.JOIN:
            link.topics.add(topic)
            self._topics.setdefault(topic, set()).add(link)
        elif frame.kind is Kind.LEAVE:
            if topic in link.topics:
                link.topics.discard(topic)
                link.missed.pop(topic, None)  # it does not need to know any more
                self._leave(link, topic)
        elif frame.kind is Kind.READY:
            if not link.ready.done():
                link.ready.set_result(None)
        else:
            logger.error("%s sent a GAP frame, which only the relay sends", link.name)

    def _leave(self, link: RelayLink, topic: str) -> None:
        links = self._topics[topic]
        links.discard(link)
        if not links:
            del self._topics[topic]

    def _lost(self, link: RelayLink) -> None:
        for topic in link.topics:
            self._leave(link, topic)
        link.topics.clear()
        link.missed.clear()


# The worker's side --------------------------------------------------------------------------


class RelayChannel(asyncio.Protocol):
    """A worker's end of its socket pair with the supervisor (an asyncio protocol).

    Every :class:`RelayBroker` of the worker shares it: it joins a topic once for all of
    them, delivers what the relay sends to those that follow the topic, and a message one of
    them publishes to the others too.

    Args:
        max_buffer: Bytes kept unsent to the relay before publishing raises
            :exc:`~wsrs.pubsub.BrokerUnavailable`.
        max_frame: The largest frame, in either direction.
        on_lost: Called when the socket closes (the supervisor is gone).
    """

    def __init__(
        self,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_frame: int = DEFAULT_MAX_FRAME,
        on_lost: Callable[[], object] | None = None,
    ) -> None:
        self.max_buffer = max_buffer
        self.max_frame = max_frame
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder(max_frame)
        self._topics: dict[str, list[RelayBroker]] = {}

    @classmethod
    async def open(
        cls,
        sock: socket.socket,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_frame: int = DEFAULT_MAX_FRAME,
        on_lost: Callable[[], object] | None = None,
    ) -> RelayChannel:
        """Run a channel on ``sock`` (a connected Unix socket) in the running loop."""
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_unix_connection(
            lambda: cls(max_buffer=max_buffer, max_frame=max_frame, on_lost=on_lost), sock=sock
        )
        return channel

    @property
    def closed(self) -> bool:
        """Whether the socket is closed."""
        return self.transport is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (asyncio callback)."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop; call ``on_lost`` (asyncio callback)."""
        self.transport = None
        if self.on_lost is not None:
            self.on_lost()

    def data_received(self, data: bytes) -> None:
        """Deliver what the relay sent (asyncio callback)."""
        try:
            frames = self._decoder.feed(data)
        except RelayError as exc:
            logger.error("closing the relay channel: %s", exc)
            assert self.transport is not None
            self.transport.abort()
            return
        for frame in frames:
            if frame.kind is Kind.PUBLISH:
                for broker in tuple(self._topics.get(frame.topic, ())):
                    broker._receive(frame.topic, frame.data, frame.text)
            elif frame.kind is Kind.GAP:
                gap = Gap(frame.topic, None, dropped=int.from_bytes(frame.data))
                brokers = self._topics.get(frame.topic, ())
                if brokers:
                    report_gap(gap, *(broker.on_gap for broker in brokers))

    def ready(self) -> None:
        """Tell the supervisor that this worker listens."""
        self._write(encode_frame(Kind.READY))

    def close(self) -> None:
        """Close the socket."""
        if self.transport is not None:
            self.transport.close()

    def _write(self, frame: bytes) -> None:
        if self.transport is not None:
            self.transport.write(frame)

    def _join(self, broker: RelayBroker, topic: str) -> None:
        brokers = self._topics.setdefault(topic, [])
        if not brokers:
            self._write(encode_frame(Kind.JOIN, topic))
        if broker not in brokers:
            brokers.append(broker)

    def _leave(self, broker: RelayBroker, topic: str) -> None:
        brokers = self._topics.get(topic)
        if brokers is None or broker not in brokers:
            return
        brokers.remove(broker)
        if not brokers:
            del self._topics[topic]
            self._write(encode_frame(Kind.LEAVE, topic))

    def _send(self, broker: RelayBroker, topic: str, data: bytes, text: bool) -> None:
        if self.transport is None:
            raise BrokerUnavailable("the relay is closed: the supervisor is gone")
        if self.transport.get_write_buffer_size() > self.max_buffer:
            raise BrokerUnavailable(
                f"over {self.max_buffer} bytes wait for the relay already (max_buffer)"
            )
        frame = encode_frame(Kind.PUBLISH, topic, data, text=text)
        if len(frame) > self.max_frame:
            raise ValueError(
                f"message of {len(data)} bytes is too large for the relay "
                f"(frames up to {self.max_frame} bytes)"
            )
        self.transport.write(frame)
        for other in tuple(self._topics.get(topic, ())):
            if other is not broker:
                other._receive(topic, data, text)


class RelayBroker:
    """The :class:`~wsrs.pubsub.Broker` of a hub in a worker of ``wsrs serve --workers N``:
    its topics reach the hubs of the other workers through the supervisor's relay.

    :func:`wsrs.workers.broker` makes one; several brokers (several hubs) may share the
    worker's channel.

    Args:
        channel: The worker's channel to the relay.
        on_gap: Called with a :class:`~wsrs.pubsub.Gap` for each topic of this broker whose
            messages the relay dropped for this worker (it did not read them in time), once
            the worker reads again; from the event loop.
    """

    def __init__(
        self, channel: RelayChannel, *, on_gap: Callable[[Gap], object] | None = None
    ) -> None:
        self.channel = channel
        self.on_gap = on_gap
        self._deliver: Callable[[str, bytes, bool], None] | None = None
        self._topics: set[str] = set()
        self._closed = False

    def bind(self, deliver: Callable[[str, bytes, bool], None]) -> None:
        """Serve the hub that delivers with ``deliver``; called by the hub.

        Raises:
            RuntimeError: If the broker serves a hub already.
        """
        if self._deliver is not None:
            raise RuntimeError("this broker serves another hub already")
        self._deliver = deliver

    def join(self, topic: str) -> None:
        """Receive ``topic`` from the other workers."""
        if not self._closed:
            self._topics.add(topic)
            self.channel._join(self, topic)

    def leave(self, topic: str) -> None:
        """Stop receiving ``topic``."""
        self._topics.discard(topic)
        self.channel._leave(self, topic)

    def send(self, topic: str, data: bytes, text: bool) -> None:
        """Hand a message published in this worker to the relay, for the other workers.

        Raises:
            BrokerUnavailable: If the broker is closed, the supervisor is gone, or
                ``max_buffer`` bytes wait for the relay already.
            ValueError: If the message is larger than a relay frame.
        """
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        self.channel._send(self, topic, data, text)

    async def aclose(self) -> None:
        """Leave every topic; publishing raises afterwards."""
        self._closed = True
        for topic in tuple(self._topics):
            self.leave(topic)

    def _receive(self, topic: str, data: bytes, text: bool) -> None:
        assert self._deliver is not None  # bound before any topic is joined
        self._deliver(topic, data, text)
