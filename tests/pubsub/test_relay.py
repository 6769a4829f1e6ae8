"""The relay of ``wsrs serve --workers N`` in one process: its frames, its routing between
channels, and its bounds."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from wsrs import workers as workers_module
from wsrs.pubsub import BrokerUnavailable, Gap
from wsrs.relay import (
    DEFAULT_MAX_FRAME,
    Frame,
    FrameDecoder,
    Kind,
    Relay,
    RelayBroker,
    RelayChannel,
    RelayError,
    RelayLink,
    encode_frame,
    encode_gap,
)


# Frames ---------------------------------------------------------------------------------------


def test_frames_round_trip() -> None:
    frames = [
        encode_frame(Kind.JOIN, "prices"),
        encode_frame(Kind.LEAVE, "prix en €"),
        encode_frame(Kind.PUBLISH, "prices", b'{"eur": 1}', text=True),
        encode_frame(Kind.PUBLISH, "", b"\x00\xff"),
        encode_frame(Kind.READY),
        encode_gap("prices", 3),
    ]
    stream = b"".join(frames)
    expected = [
        Frame(Kind.JOIN, "prices", False, b"", frames[0]),
        Frame(Kind.LEAVE, "prix en €", False, b"", frames[1]),
        Frame(Kind.PUBLISH, "prices", True, b'{"eur": 1}', frames[2]),
        Frame(Kind.PUBLISH, "", False, b"\x00\xff", frames[3]),
        Frame(Kind.READY, "", False, b"", frames[4]),
        Frame(Kind.GAP, "prices", False, b"\0\0\0\0\0\0\0\3", frames[5]),
    ]
    assert FrameDecoder().feed(stream) == expected
    # Byte by byte: each frame comes out when its last byte does.
    decoder = FrameDecoder()
    decoded = [frame for i in range(len(stream)) for frame in decoder.feed(stream[i : i + 1])]
    assert decoded == expected
    assert frames[2] == struct.pack("!IBBH", 4 + 6 + 10, 3, 1, 6) + b'prices{"eur": 1}'


def test_topic_too_long() -> None:
    assert len(encode_frame(Kind.JOIN, "t" * 65535)) == 8 + 65535
    with pytest.raises(ValueError, match="topic has 65536 bytes in UTF-8, expected at most"):
        encode_frame(Kind.JOIN, "t" * 65536)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (struct.pack("!I", 3) + b"\x01\x00\x00", f"frame of 7 bytes, expected 8 to {2**10}"),
        (struct.pack("!I", 2**10 - 3), f"frame of {2**10 + 1} bytes, expected 8 to {2**10}"),
        (struct.pack("!IBBH", 4, 9, 0, 0), "unknown frame kind 9"),
        (struct.pack("!IBBH", 4, 3, 2, 0), "unknown frame flags 0x02"),
        (struct.pack("!IBBH", 6, 1, 0, 3) + b"ab", "topic of 3 bytes in a frame of 10"),
        (struct.pack("!IBBH", 5, 1, 0, 1) + b"\xff", "topic is not UTF-8"),
        (struct.pack("!IBBH", 5, 5, 0, 1) + b"t", "GAP frame with 0 bytes of count, expected 8"),
    ],
)
def test_invalid_frames(raw: bytes, error: str) -> None:
    with pytest.raises(RelayError, match=error):
        FrameDecoder(max_frame=2**10).feed(raw)


def test_frames_up_to_the_limit() -> None:
    raw = encode_frame(Kind.PUBLISH, "t", bytes(DEFAULT_MAX_FRAME - 9))
    assert len(raw) == DEFAULT_MAX_FRAME
    assert FrameDecoder().feed(raw)[0].data == bytes(DEFAULT_MAX_FRAME - 9)


# Routing --------------------------------------------------------------------------------------


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.001)


class Worker:
    """A worker's channel to the relay and what its brokers received."""

    def __init__(self, channel: RelayChannel) -> None:
        self.channel = channel
        self.received: list[tuple[str, bytes, bool]] = []
        self.lost = False
        channel.on_lost = self._on_lost

    def _on_lost(self) -> None:
        self.lost = True

    def broker(self, on_gap: Callable[[Gap], object] | None = None) -> RelayBroker:
        broker = RelayBroker(self.channel, on_gap=on_gap)
        broker.bind(lambda *message: self.received.append(message))
        return broker


OPEN: list[asyncio.BaseTransport | socket.socket] = []


@pytest.fixture(autouse=True)
async def close_everything() -> AsyncIterator[None]:
    """Close the links, channels and sockets a test opened."""
    yield
    while OPEN:
        OPEN.pop().close()
    await asyncio.sleep(0)  # connection_lost() runs


async def workers(
    relay: Relay, count: int, max_frame: int = DEFAULT_MAX_FRAME
) -> tuple[list[RelayLink], list[Worker]]:
    links, channels = [], []
    for i in range(count):
        ours, theirs = socket.socketpair()
        links.append(await relay.attach(ours, f"worker {i}"))
        channels.append(Worker(await RelayChannel.open(theirs, max_frame=max_frame)))
        assert links[-1].transport is not None and channels[-1].channel.transport is not None
        OPEN.extend([links[-1].transport, channels[-1].channel.transport])
    return links, channels


async def test_route_to_followers_only_never_back() -> None:
    relay = Relay()
    links, (a, b, c) = await workers(relay, 3)
    broker_a, broker_b, broker_c = a.broker(), b.broker(), c.broker()
    broker_a.join("t")
    broker_b.join("t")
    broker_c.join("other")
    await eventually(lambda: relay.followers("t") == {links[0], links[1]})
    for i in range(100):
        broker_a.send("t", b"%d" % i, False)
    broker_b.send("t", "é".encode(), True)
    await eventually(lambda: len(a.received) == 1 and len(b.received) == 100)
    assert b.received == [("t", b"%d" % i, False) for i in range(100)]
    assert a.received == [("t", "é".encode(), True)]
    assert c.received == []
    assert relay.stats.routed == 101 and relay.stats.dropped == 0
    # Leaving: the relay routes nothing more to b.
    broker_b.leave("t")
    broker_b.leave("t")  # not followed: nothing happens
    await eventually(lambda: relay.followers("t") == {links[0]})
    assert links[1].topics == set()
    broker_b.send("t", b"late", False)
    await eventually(lambda: len(a.received) == 2)
    assert b.received[-1] == ("t", b"99", False)


async def test_ready_and_odd_frames(caplog: pytest.LogCaptureFixture) -> None:
    relay = Relay()
    (link,), (worker,) = await workers(relay, 1)
    worker.channel.ready()
    await link.ready
    worker.channel.ready()  # said twice: nothing more
    # A LEAVE for a topic it never joined; frames other than PUBLISH sent to a worker.
    worker.channel._write(encode_frame(Kind.LEAVE, "never"))
    link.send(encode_frame(Kind.JOIN, "t"), "t")
    worker.channel._write(encode_frame(Kind.JOIN, "t"))
    await eventually(lambda: relay.followers("t") == {link})
    assert worker.received == []
    # GAP is the relay's to send: from a worker it is a bug, logged and ignored.
    worker.channel._write(encode_gap("t", 1))
    await eventually(lambda: "worker 0 sent a GAP frame, which only the relay sends" in caplog.text)
    assert relay.followers("t") == {link}


async def test_brokers_sharing_a_channel() -> None:
    # Two hubs in one worker: one JOIN for both; each gets the other's messages locally
    # and the relay's, never its own.
    relay = Relay()
    links, (a, b) = await workers(relay, 2)
    first, second = a.broker(), a.broker()
    remote = b.broker()
    first.join("t")
    second.join("t")
    second.join("t")
    remote.join("t")
    await eventually(lambda: len(relay.followers("t")) == 2)
    first.send("t", b"1", False)
    remote.send("t", b"2", False)
    await eventually(lambda: len(a.received) == 3 and len(b.received) == 1)
    assert sorted(a.received) == [("t", b"1", False), ("t", b"2", False), ("t", b"2", False)]
    # The topic stays joined until the last broker of the worker leaves.
    first.leave("t")
    await asyncio.sleep(0.01)
    assert links[0] in relay.followers("t")
    await second.aclose()
    await eventually(lambda: links[0] not in relay.followers("t"))
    with pytest.raises(BrokerUnavailable, match="the broker is closed"):
        second.send("t", b"3", False)
    second.join("t")  # closed: nothing happens
    assert "t" not in a.channel._topics
    with pytest.raises(RuntimeError, match="serves another hub already"):
        first.bind(lambda *message: None)


async def test_a_worker_gone() -> None:
    relay = Relay()
    links, (a, b) = await workers(relay, 2)
    broker_a, broker_b = a.broker(), b.broker()
    broker_a.join("t")
    broker_b.join("t")
    await eventually(lambda: len(relay.followers("t")) == 2)
    b.channel.close()
    await links[1].closed
    assert relay.followers("t") == {links[0]}
    assert b.lost and b.channel.closed
    b.channel.close()  # closed already
    broker_b.join("u")  # nothing is written any more
    with pytest.raises(BrokerUnavailable, match="the relay is closed: the supervisor is gone"):
        broker_b.send("t", b"x", False)
    broker_a.send("t", b"y", False)  # to nobody


async def test_message_too_large() -> None:
    relay = Relay()
    _, (worker,) = await workers(relay, 1, max_frame=100)
    broker = worker.broker()
    broker.send("t", bytes(91), False)
    with pytest.raises(ValueError, match="message of 92 bytes is too large for the relay"):
        broker.send("t", bytes(92), False)


async def test_a_worker_that_does_not_read(caplog: pytest.LogCaptureFixture) -> None:
    # Its messages are dropped beyond max_buffer, counted and logged; the relay never waits.
    caplog.set_level(logging.WARNING, "wsrs.workers")
    relay = Relay(max_buffer=2**16)
    ours, theirs = socket.socketpair()
    link = await relay.attach(ours, "worker 7")
    assert link.transport is not None
    OPEN.extend([link.transport, theirs])
    frame = encode_frame(Kind.PUBLISH, "t", bytes(2**14))
    sent = [link.send(frame, "t") for _ in range(200)]
    assert relay.stats.dropped == link.dropped == sent.count(False) > 0
    assert relay.stats.routed == sent.count(True)
    assert link.transport is not None
    assert link.transport.get_write_buffer_size() <= 2**16 + len(frame)
    assert "worker 7 does not read its relay socket: dropping its messages" in caplog.text
    # It reads again: so does the relay.
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    while link.transport.get_write_buffer_size():
        await loop.sock_recv(theirs, 2**20)
    assert link.send(frame, "t")
    assert f"worker 7 reads again; {link.dropped} messages dropped so far" in caplog.text
    theirs.close()


async def test_a_relay_that_does_not_read() -> None:
    # A worker keeps max_buffer bytes for the relay; beyond, publishing raises.
    ours, theirs = socket.socketpair()
    channel = await RelayChannel.open(theirs, max_buffer=2**16)
    assert channel.transport is not None and channel.on_lost is None
    OPEN.extend([channel.transport, ours])
    broker = RelayBroker(channel)
    with pytest.raises(BrokerUnavailable, match=f"over {2**16} bytes wait for the relay"):
        for _ in range(1000):
            broker.send("t", bytes(2**14), False)
    ours.close()


async def test_invalid_frames_end_the_link(caplog: pytest.LogCaptureFixture) -> None:
    relay = Relay()
    ours, theirs = socket.socketpair()
    link = await relay.attach(ours, "worker 3")
    OPEN.append(theirs)
    theirs.sendall(struct.pack("!IBBH", 4, 9, 0, 0))
    await link.closed
    assert "closing the relay link of worker 3: unknown frame kind 9" in caplog.text
    theirs.close()
    # And the other way.
    ours, theirs = socket.socketpair()
    worker = Worker(await RelayChannel.open(theirs))
    OPEN.append(ours)
    ours.sendall(struct.pack("!I", 0))
    await eventually(lambda: worker.lost)
    assert "closing the relay channel: frame of 4 bytes, expected 8" in caplog.text
    ours.close()


# Gaps -----------------------------------------------------------------------------------------


async def test_a_worker_that_does_not_read_learns_what_it_missed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The worker stops reading; the relay drops past max_buffer and, once the worker reads
    # again, tells it how many messages of each topic it dropped, after those it kept.
    caplog.set_level(logging.WARNING, "wsrs")
    relay = Relay(max_buffer=2**16)
    links, (publisher, reader) = await workers(relay, 2)
    events: list[object] = []
    gaps: list[Gap] = []

    def on_gap(gap: Gap) -> None:
        events.append(gap)
        gaps.append(gap)

    source = publisher.broker()
    follower = RelayBroker(reader.channel, on_gap=on_gap)
    follower.bind(lambda *message: events.append(message))
    bystander = reader.broker()  # follows another topic: told nothing
    for topic in ("t", "u", "gone"):
        follower.join(topic)
    bystander.join("other")
    link = links[1]
    await eventually(lambda: link.topics == {"t", "u", "gone", "other"})
    assert reader.channel.transport is not None
    reader.channel.transport.pause_reading()
    payload = bytes(2**14)
    published = 0  # on each topic
    while link.dropped < 20:
        for topic in ("t", "u", "gone"):
            source.send(topic, payload, False)
        published += 1
        await asyncio.sleep(0.001)
    assert relay.stats.dropped == link.dropped
    assert set(link.missed) == {"t", "u", "gone"} and sum(link.missed.values()) == link.dropped
    # Leaving a topic forgets its drops: what the relay keeps is bounded by what it follows.
    follower.leave("gone")
    await eventually(lambda: "gone" not in link.missed)
    assert set(link.missed) <= link.topics
    expected = [Gap(topic, None, dropped=link.missed[topic]) for topic in ("t", "u")]
    routed = 2 * published - link.missed["t"] - link.missed["u"]
    reader.channel.transport.resume_reading()
    await eventually(lambda: len(gaps) == 2)
    assert gaps == expected and link.missed == {}
    assert relay.stats.gaps == 2
    # Every message of t and u routed came first (those of the topic left are not
    # delivered any more), then the gaps.
    assert events[routed:] == gaps and len(events) == routed + 2
    assert all(message[0] in ("t", "u") for message in events[:routed])  # type: ignore[index]
    assert reader.received == []  # the bystander
    assert "worker 1 does not read its relay socket: dropping its messages" in caplog.text
    assert f"worker 1 reads again; {link.dropped} messages dropped so far" in caplog.text
    assert "messages may be missing on topic 't'" in caplog.text
    # It reads on: a new message comes after the gaps.
    source.send("t", b"after", False)
    await eventually(lambda: events[-1] == ("t", b"after", False))


async def test_gaps_before_the_next_message(caplog: pytest.LogCaptureFixture) -> None:
    # Room again for a message before the buffer drained: its GAP frames go first.
    relay = Relay(max_buffer=2**16)
    ours, theirs = socket.socketpair()
    link = await relay.attach(ours, "worker 5")
    assert link.transport is not None
    OPEN.extend([link.transport, theirs])
    relay._received(link, Frame(Kind.JOIN, "t", False, b"", b""))
    frame = encode_frame(Kind.PUBLISH, "t", bytes(2**14))
    sent = [link.send(frame, "t") for _ in range(200)]
    assert link.missed == {"t": sent.count(False)}
    relay.max_buffer = 2**30  # as if the worker had read enough for one more
    marker = encode_frame(Kind.PUBLISH, "t", b"next")
    assert link.send(marker, "t") and link.missed == {}
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    decoder, frames = FrameDecoder(), list[Frame]()
    while not frames or frames[-1].raw != marker:
        frames += decoder.feed(await loop.sock_recv(theirs, 2**20))
    assert [frame.kind for frame in frames[-2:]] == [Kind.GAP, Kind.PUBLISH]
    assert int.from_bytes(frames[-2].data) == sent.count(False) == link.dropped
    assert relay.stats.gaps == 1
    theirs.close()


async def test_gap_for_every_broker_of_the_topic(caplog: pytest.LogCaptureFixture) -> None:
    # Each broker of the worker that follows the topic is told; one whose on_gap raises
    # does not stop the others (logged).
    ours, theirs = socket.socketpair()
    worker = Worker(await RelayChannel.open(theirs))
    assert worker.channel.transport is not None
    OPEN.extend([worker.channel.transport, ours])
    told: list[Gap] = []

    def broken(gap: Gap) -> None:
        raise RuntimeError("a bug in on_gap")

    worker.broker(on_gap=broken).join("t")
    worker.broker().join("t")  # no on_gap: logged only
    worker.broker(on_gap=told.append).join("t")
    worker.broker(on_gap=told.append).join("u")
    ours.sendall(encode_gap("t", 7) + encode_gap("nobody", 1))
    await eventually(lambda: len(told) == 1)
    await asyncio.sleep(0.01)
    assert told == [Gap("t", None, dropped=7)]
    assert "on_gap failed" in caplog.text and "a bug in on_gap" in caplog.text
    # Logged once for the worker, not once per broker.
    assert caplog.text.count("messages may be missing on topic 't'") == 1
    assert "topic 'nobody'" not in caplog.text
    ours.close()


async def test_workers_broker_passes_on_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = socket.socketpair()
    channel = await RelayChannel.open(theirs)
    assert channel.transport is not None
    OPEN.extend([channel.transport, ours])
    config = workers_module.Config("app:handler", workers=2)
    monkeypatch.setattr(workers_module, "_runtime", workers_module._Runtime(config, channel))
    told: list[Gap] = []
    made = workers_module.broker(on_gap=told.append)
    assert isinstance(made, RelayBroker) and made.on_gap == told.append
    assert workers_module.broker().on_gap is None  # type: ignore[union-attr]
    ours.close()
