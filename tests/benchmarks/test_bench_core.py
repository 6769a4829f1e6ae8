"""Timings of the Rust core through its Python API (pytest-benchmark).

Run the timings with ``python -m pytest tests/benchmarks --benchmark-enable``. Without
``--benchmark-enable`` (pyproject.toml passes ``--benchmark-disable``) every operation runs once
and the tests are smoke tests: they check results, never timings.

Deflate benchmarks use ``no_context_takeover`` on both sides, so that repeating one message
compresses it from scratch every time (with context takeover, the second copy of a message
would compress to a few back-references).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar

import pytest

from wsrs._core import Reader, Writer, apply_mask, validate_utf8


P = ParamSpec("P")
T = TypeVar("T")

SIZES = [1024, 1 << 20]
SIZE_IDS = ["1KiB", "1MiB"]
MASK = b"\x37\xfa\x21\x3d"


class Benchmark(Protocol):
    """The part of pytest-benchmark's ``benchmark`` fixture used here, typed."""

    def __call__(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


def random_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def mask_reference(data: bytes, mask: bytes) -> bytes:
    """XOR with the repeated mask, computed on Python integers."""
    key = (mask * (len(data) // 4 + 1))[: len(data)]
    value = int.from_bytes(data, "big") ^ int.from_bytes(key, "big")
    return value.to_bytes(len(data), "big")


def ascii_heavy_text(size: int) -> str:
    """About ``size`` UTF-8 bytes of printable ASCII with ~2% multibyte characters."""
    rng = random.Random(size)
    ascii_chars = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ 0123456789 ,.:;{}[]-_ etaoin shrdlu "
    wide_chars = "éüß€→𝄞"
    chars: list[str] = []
    length = 0
    while length < size:
        c = rng.choice(wide_chars) if rng.random() < 0.02 else rng.choice(ascii_chars)
        chars.append(c)
        length += len(c.encode())
    return "".join(chars)


def json_text(size: int) -> str:
    """At least ``size`` bytes of JSON-like records, one per line (ASCII)."""
    rng = random.Random(size)
    events = ["price_update", "trade", "order_book", "heartbeat", "chat"]
    symbols = ["BTC-USD", "ETH-USD", "SOL-EUR", "AAPL", "MSFT", "EURUSD"]
    words = ["hello", "world", "latency", "socket", "frame", "message", "server", "ok"]
    lines: list[str] = []
    length = 0
    record_id = 100_000
    while length < size:
        record_id += rng.randint(1, 3)
        record = {
            "id": record_id,
            "event": rng.choice(events),
            "symbol": rng.choice(symbols),
            "price": round(rng.uniform(1, 50_000), 2),
            "qty": rng.randint(0, 999),
            "ts": 1_700_000_000_000 + record_id * 37,
            "user": f"user_{rng.randint(0, 4999)}",
            "text": " ".join(rng.choices(words, k=rng.randint(1, 6))),
            "flags": [rng.random() < 0.5, rng.random() < 0.5],
        }
        line = json.dumps(record, separators=(",", ":"))
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)


def sized(size: int, text: str) -> str:
    """Cut ASCII ``text`` to exactly ``size`` characters (and bytes)."""
    assert text.isascii() and len(text) >= size
    return text[:size]


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_apply_mask(benchmark: Benchmark, size: int) -> None:
    data = random_bytes(size)
    result = benchmark(apply_mask, data, MASK)
    assert result == mask_reference(data, MASK)
    assert apply_mask(result, MASK) == data


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_validate_utf8(benchmark: Benchmark, size: int) -> None:
    data = ascii_heavy_text(size).encode()
    assert not data.isascii()
    assert benchmark(validate_utf8, data) is True
    assert validate_utf8(data + b"\xff") is False
    assert validate_utf8(data[:-1] + b"\xc0\xaf") is False


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("client", [True, False], ids=["client-masked", "server"])
def test_writer_message_binary(benchmark: Benchmark, size: int, client: bool) -> None:
    payload = random_bytes(size)
    writer = Writer(client=client)
    frame = benchmark(writer.message, payload)
    header = 4 if size < 1 << 16 else 10
    assert len(frame) == header + (4 if client else 0) + size
    assert Reader(client=not client, max_size=None).feed(frame) == [payload]


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_writer_message_text(benchmark: Benchmark, size: int) -> None:
    text = ascii_heavy_text(size)
    writer = Writer(client=True)
    frame = benchmark(writer.message, text)
    assert frame[0] == 0x81  # FIN, text
    assert Reader(client=False, max_size=None).feed(frame) == [text]


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("client", [True, False], ids=["client", "server-masked"])
def test_reader_feed_binary(benchmark: Benchmark, size: int, client: bool) -> None:
    payload = random_bytes(size)
    frame = Writer(client=not client).message(payload)
    reader = Reader(client=client, max_size=None)
    assert benchmark(reader.feed, frame) == [payload]
    assert not (reader.failed or reader.closed or reader.in_message)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_reader_feed_text(benchmark: Benchmark, size: int) -> None:
    text = ascii_heavy_text(size)
    frame = Writer(client=True).message(text)
    reader = Reader(client=False, max_size=None)
    assert benchmark(reader.feed, frame) == [text]
    assert not (reader.failed or reader.closed or reader.in_message)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_deflate_message(benchmark: Benchmark, size: int) -> None:
    text = sized(size, json_text(size))
    writer = Writer(client=False, deflate=True, no_context_takeover=True)
    frame = benchmark(writer.message, text)
    assert frame[0] == 0xC1  # FIN, RSV1, text
    assert len(frame) < size // 2
    reader = Reader(client=True, deflate=True, no_context_takeover=True, max_size=None)
    assert reader.feed(frame) == [text]


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_inflate_message(benchmark: Benchmark, size: int) -> None:
    text = sized(size, json_text(size))
    frame = Writer(client=False, deflate=True, no_context_takeover=True).message(text)
    reader = Reader(client=True, deflate=True, no_context_takeover=True, max_size=None)
    assert benchmark(reader.feed, frame) == [text]
    assert not (reader.failed or reader.closed or reader.in_message)
