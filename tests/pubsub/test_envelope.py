"""The Sans-I/O part of wsrs.pubsub_redis: the envelope and the sequence bookkeeping, with
no Redis."""

from __future__ import annotations

import struct
import uuid

import pytest

from wsrs.pubsub_redis import (
    ENVELOPE_VERSION,
    Envelope,
    SequenceTracker,
    decode_envelope,
    encode_envelope,
)


NODE = uuid.UUID("12345678-1234-4321-8765-1234567890ab").bytes


def test_envelope_layout() -> None:
    raw = encode_envelope(NODE, 258, True, b"caf\xc3\xa9")
    # version, flags (text), node id, sequence number (u64, network order), payload.
    assert raw == b"\x01\x01" + NODE + b"\x00\x00\x00\x00\x00\x00\x01\x02" + b"caf\xc3\xa9"
    assert decode_envelope(raw) == Envelope(NODE, 258, True, b"caf\xc3\xa9")
    binary = encode_envelope(NODE, 2**64 - 1, False, b"")
    assert binary[1] == 0 and len(binary) == 26
    assert decode_envelope(binary) == Envelope(NODE, 2**64 - 1, False, b"")
    assert ENVELOPE_VERSION == 1


@pytest.mark.parametrize("text", [True, False])
@pytest.mark.parametrize("size", [0, 1, 125, 1024, 70_000])
def test_envelope_round_trip(text: bool, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert decode_envelope(encode_envelope(NODE, size + 1, text, data)) == Envelope(
        NODE, size + 1, text, data
    )


def test_envelope_errors() -> None:
    with pytest.raises(struct.error, match="node id has 4 bytes, expected 16"):
        encode_envelope(b"node", 1, False, b"")
    with pytest.raises(struct.error):
        encode_envelope(NODE, -1, False, b"")
    raw = encode_envelope(NODE, 1, False, b"x")
    for size in range(26):
        with pytest.raises(ValueError, match=f"envelope has {size} bytes, expected at least 26"):
            decode_envelope(raw[:size])
    with pytest.raises(ValueError, match="envelope version 2, expected 1"):
        decode_envelope(b"\x02" + raw[1:])
    with pytest.raises(ValueError, match="unknown envelope flags 0x03"):
        decode_envelope(raw[:1] + b"\x03" + raw[2:])


def test_sequence_tracker() -> None:
    tracker = SequenceTracker()
    other = uuid.uuid4().bytes
    # The first message of a node on a topic is never a gap, whatever its number.
    assert tracker.observe("t", NODE, 5) == range(0)
    assert tracker.observe("t", NODE, 6) == range(0)
    assert tracker.observe("t", NODE, 6) is None  # a duplicate
    assert tracker.observe("t", NODE, 3) is None  # older than the last one
    assert tracker.observe("t", NODE, 9) == range(7, 9)  # 7 and 8 are missing
    # Per node and per topic.
    assert tracker.observe("t", other, 1) == range(0)
    assert tracker.observe("u", NODE, 1) == range(0)
    assert tracker.observe("t", other, 3) == range(2, 3)
    # Forgetting a topic starts it over; the others are kept.
    tracker.forget("t")
    tracker.forget("never")
    assert tracker.observe("t", NODE, 2) == range(0)
    assert tracker.observe("u", NODE, 1) is None
