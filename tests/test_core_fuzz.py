"""Property tests of ``wsrs._core``: the Reader on random and adversarial input, and the codec
functions against the pure-Python reference in ``reference.py``.

The Reader contract under any input: ``feed`` returns a list of documented events; at most one
``ProtocolError``, as the last element, with code 1002, 1007 or 1009; nothing is ever raised;
after an error or a close frame every further ``feed`` returns ``[]``.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import socket
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from hypothesis import HealthCheck, given, settings, strategies as st

from tests import reference as ref
from wsrs._core import (
    LARGE_MESSAGE_SIZE,
    Close,
    Ping,
    Pong,
    ProtocolError,
    Reader,
    Socket,
    Utf8Validator,
    Writer,
    apply_mask,
    encode_frame,
    is_valid_close_code,
    validate_utf8,
)
from wsrs.asyncio.messages import MessageQueue


if TYPE_CHECKING:
    from wsrs._core import Event


SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ERROR_CODES = {1002, 1007, 1009}

# (client, deflate, max_size)
READER_CONFIGS = st.tuples(st.booleans(), st.booleans(), st.sampled_from([None, 0, 1, 64, 1000]))


def make_reader(config: tuple[bool, bool, int | None]) -> Reader:
    is_client, deflate, max_size = config
    return Reader(client=is_client, deflate=deflate, max_size=max_size)


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """Split ``data`` at the given points (taken modulo its length, in order)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = []
    start = 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


Outcome = list[object]


def check_feed(reader: Reader, pieces: Sequence[bytes], max_size: int | None) -> Outcome:
    """Feed ``pieces`` and check the contract; return the events, the error as a tuple."""
    outcome: Outcome = []
    done = False
    for piece in pieces:
        events: list[Event] = reader.feed(piece)
        assert isinstance(events, list)
        if done:
            assert events == [], "input after an error or a close frame must be ignored"
            continue
        for i, event in enumerate(events):
            last = i == len(events) - 1
            if isinstance(event, ProtocolError):
                assert last, "a ProtocolError is only ever the last element"
                assert event.code in ERROR_CODES, (event.code, event.reason)
                assert isinstance(event.reason, str)
                assert reader.failed and not reader.closed and not reader.in_message
                outcome.append(("error", event.code))
                done = True
            elif isinstance(event, Close):
                assert is_valid_close_code(event.code) or event.code == 1005
                assert isinstance(event.reason, str)
                assert len(event.reason.encode()) <= 123
                # Nothing follows a close frame, not even an error.
                assert last, events
                assert reader.closed and not reader.failed
                outcome.append(event)
                done = True
            elif isinstance(event, Ping | Pong):
                assert isinstance(event.data, bytes) and len(event.data) <= 125
                outcome.append(event)
            else:
                assert isinstance(event, str | bytes), type(event)
                if max_size is not None:
                    size = len(event.encode()) if isinstance(event, str) else len(event)
                    assert size <= max_size
                outcome.append(event)
        if not done:
            assert not reader.failed and not reader.closed
    return outcome


# --------------------------------------------------------------------------------------------
# Reader: random bytes


@SETTINGS
@given(config=READER_CONFIGS, data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 700)))
def test_reader_random_bytes(
    config: tuple[bool, bool, int | None], data: bytes, cuts: list[int]
) -> None:
    whole = check_feed(make_reader(config), [data], config[2])
    pieces = check_feed(make_reader(config), split(data, cuts), config[2])
    assert pieces == whole, "the outcome must not depend on how the input is split"


@SETTINGS
@given(config=READER_CONFIGS, data=st.binary(max_size=300))
def test_reader_random_bytes_after_valid_header(
    config: tuple[bool, bool, int | None], data: bytes
) -> None:
    # Random bytes behind a plausible first byte and mask bit for the side, to go deeper.
    is_client = config[0]
    head = bytes([0x81, 0x00 if is_client else 0x80])
    check_feed(make_reader(config), [head + data], config[2])
    check_feed(make_reader(config), [head + data[i : i + 1] for i in range(len(data))], config[2])


# --------------------------------------------------------------------------------------------
# Reader: frame streams with mutations


@st.composite
def raw_frames(draw: st.DrawFn, masked: bool) -> bytes:
    """One frame from the reference encoder: any opcode and flags, mostly sensible."""
    opcode = draw(st.sampled_from(ref.OPCODES + (3, 0xB)))
    control = opcode in ref.CONTROL_OPCODES
    if opcode == ref.OP_CLOSE and draw(st.booleans()):
        code = draw(st.sampled_from([1000, 1001, 1005, 1007, 1015, 3000, 4999, 5000]))
        reason = draw(st.text(max_size=20)).encode()
        payload = code.to_bytes(2, "big") + reason
    elif opcode == ref.OP_TEXT and draw(st.booleans()):
        payload = draw(st.text(max_size=60)).encode()
    elif draw(st.booleans()):
        payload = zlib.compress(draw(st.binary(max_size=60)))[2:-4]
    else:
        payload = draw(st.binary(max_size=125 if control else 200))
    fin = draw(st.booleans()) if not control else draw(st.sampled_from([True] * 9 + [False]))
    rsv1 = draw(st.sampled_from([False] * 3 + [True]))
    key = draw(st.binary(min_size=4, max_size=4)) if masked else None
    return ref.encode_frame(opcode, payload, fin=fin, rsv1=rsv1, key=key)


@st.composite
def writer_stream(draw: st.DrawFn, is_client: bool, deflate: bool) -> tuple[bytes, Outcome]:
    """A valid stream from a Writer for the other side, and the events it encodes."""
    writer = Writer(client=not is_client, deflate=deflate)
    stream = b""
    expected: Outcome = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["text", "binary", "ping", "pong", "close"]))
        if kind == "text":
            text = draw(st.text(min_size=1, max_size=300))
            stream += writer.message(text, fragment_size=draw(st.integers(0, 50)))
            expected.append(text)
        elif kind == "binary":
            data = draw(st.binary(min_size=1, max_size=300))
            stream += writer.message(data, fragment_size=draw(st.integers(0, 50)))
            expected.append(data)
        elif kind in ("ping", "pong"):
            data = draw(st.binary(max_size=125))
            stream += writer.ping(data) if kind == "ping" else writer.pong(data)
            expected.append(Ping(data) if kind == "ping" else Pong(data))
        else:
            reason = draw(st.text(max_size=30))
            stream += writer.close(1000, reason)
            expected.append(Close(1000, reason))
            break
    return stream, expected


@st.composite
def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(buf)))
        if op == "flip" and buf:
            i = at % len(buf)
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and buf:
            buf[at % len(buf)] = draw(st.integers(0, 255))
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del buf[at:]
    return bytes(buf)


@SETTINGS
@given(
    config=READER_CONFIGS,
    data=st.data(),
    cuts=st.lists(st.integers(0, 5000), max_size=8),
)
def test_reader_mutated_raw_frames(
    config: tuple[bool, bool, int | None], data: st.DataObject, cuts: list[int]
) -> None:
    is_client = config[0]
    frames = data.draw(st.lists(raw_frames(masked=not is_client), max_size=6))
    stream = data.draw(mutate(b"".join(frames)))
    whole = check_feed(make_reader(config), [stream], config[2])
    pieces = check_feed(make_reader(config), split(stream, cuts), config[2])
    assert same_outcome(pieces, whole, config[1])


def same_outcome(pieces: list[object], whole: list[object], deflate: bool) -> bool:
    """Whether feeding in pieces gave what feeding whole did. A compressed message that is
    both corrupt and too big may fail with either code (1007 or 1009), depending on how much
    zlib inflated before it met the corrupt bytes, which depends on the split."""
    if pieces == whole:
        return True
    either = {("error", 1007), ("error", 1009)}
    return (
        deflate
        and pieces[:-1] == whole[:-1]
        and bool(pieces)
        and bool(whole)
        and pieces[-1] in either
        and whole[-1] in either
    )


@SETTINGS
@given(
    config=READER_CONFIGS,
    data=st.data(),
    cuts=st.lists(st.integers(0, 5000), max_size=8),
)
def test_reader_mutated_writer_stream(
    config: tuple[bool, bool, int | None], data: st.DataObject, cuts: list[int]
) -> None:
    is_client, deflate, max_size = config
    stream, _ = data.draw(writer_stream(is_client, deflate))
    mutated = data.draw(mutate(stream))
    whole = check_feed(make_reader(config), [mutated], max_size)
    pieces = check_feed(make_reader(config), split(mutated, cuts), max_size)
    assert same_outcome(pieces, whole, deflate)


@SETTINGS
@given(
    is_client=st.booleans(),
    deflate=st.booleans(),
    data=st.data(),
    cuts=st.lists(st.integers(0, 5000), max_size=10),
)
def test_reader_valid_writer_stream(
    is_client: bool, deflate: bool, data: st.DataObject, cuts: list[int]
) -> None:
    # Unmutated: the reader gives back exactly what was sent, however the input is split.
    stream, expected = data.draw(writer_stream(is_client, deflate))
    reader = Reader(client=is_client, deflate=deflate, max_size=None)
    assert check_feed(reader, split(stream, cuts), None) == expected
    # With a small max_size: the same prefix of events, then maybe 1009 and nothing else.
    reader = Reader(client=is_client, deflate=deflate, max_size=64)
    got = check_feed(reader, [stream], 64)
    if got and got[-1] == ("error", 1009):
        assert got[:-1] == expected[: len(got) - 1]
    else:
        assert got == expected


# --------------------------------------------------------------------------------------------
# Differential: codec functions against the reference


@SETTINGS
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.integers(65530, 65540).map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256)),
    ),
    key=st.binary(min_size=4, max_size=4),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_apply_mask_vs_reference(data: bytes, key: bytes, kind: type) -> None:
    arg = kind(data)
    assert apply_mask(arg, key) == ref.mask(data, key)
    if kind is bytearray:
        assert arg == bytearray(data)


@SETTINGS
@given(
    opcode=st.sampled_from(ref.OPCODES),
    data=st.one_of(
        st.binary(max_size=300),
        st.sampled_from([125, 126, 127, 65535, 65536, 65537]).map(bytes),
    ),
    fin=st.booleans(),
    rsv1=st.booleans(),
    key=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
)
def test_encode_frame_vs_reference(
    opcode: int, data: bytes, fin: bool, rsv1: bool, key: bytes | None
) -> None:
    if opcode in ref.CONTROL_OPCODES:
        data = data[:125]
        fin = True
    frame = encode_frame(opcode, data, fin=fin, rsv1=rsv1, mask=key)
    assert frame == ref.encode_frame(opcode, data, fin=fin, rsv1=rsv1, key=key)
    header = ref.parse_header(frame)
    assert header is not None
    assert (header.opcode, header.fin, header.rsv1, header.key) == (opcode, fin, rsv1, key)
    assert header.length == len(data) == len(frame) - header.header_len
    assert not header.rsv2 and not header.rsv3


def _utf8_bytes() -> st.SearchStrategy[bytes]:
    """Mostly valid UTF-8 with the occasional bad or truncated sequence."""
    chunk = st.one_of(
        st.text(max_size=10).map(str.encode),
        st.binary(min_size=1, max_size=3),
        st.sampled_from(
            [b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xf0\x9f\x98"]
        ),
    )
    return st.lists(chunk, max_size=8).map(b"".join)


def _valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@SETTINGS
@given(data=st.one_of(st.binary(max_size=200), _utf8_bytes()))
def test_validate_utf8_vs_decode(data: bytes) -> None:
    assert validate_utf8(data) is _valid(data)


@functools.cache
def _proper_prefixes() -> frozenset[bytes]:
    """Every proper prefix of the UTF-8 encoding of a code point: what may end a piece."""
    out = set()
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        encoded = chr(cp).encode()
        for n in range(1, len(encoded)):
            out.add(encoded[:n])
    return frozenset(out)


def _viable(prefix: bytes) -> bool:
    """Whether ``prefix`` can still be the start of valid UTF-8."""
    try:
        prefix.decode("utf-8")
    except UnicodeDecodeError as exc:
        tail = prefix[exc.start :]
        return len(tail) <= 3 and tail in _proper_prefixes()
    return True


@SETTINGS
@given(data=st.one_of(st.binary(max_size=100), _utf8_bytes()), cuts=st.lists(st.integers(0, 200)))
def test_utf8_validator_pieces_vs_decode(data: bytes, cuts: list[int]) -> None:
    pieces = split(data, cuts)
    validator = Utf8Validator()
    failed_at = None
    for i, piece in enumerate(pieces):
        try:
            validator.feed(piece, final=i == len(pieces) - 1)
        except ProtocolError as exc:
            assert exc.code == 1007
            failed_at = i
            break
    assert (failed_at is None) is _valid(data)
    if failed_at is not None:
        # It fails at the first piece after which the bytes cannot be valid UTF-8 any more.
        seen = b""
        expected_at = len(pieces) - 1
        for i, piece in enumerate(pieces[:-1]):
            seen += piece
            if not _viable(seen):
                expected_at = i
                break
        assert failed_at == expected_at


@SETTINGS
@given(data=_utf8_bytes(), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_reader_text_vs_decode(data: bytes, cuts: list[int]) -> None:
    # A text message in fragments: the reader agrees with bytes.decode, and fails fast.
    pieces = split(data, cuts)
    frames = [
        ref.encode_frame(ref.OP_TEXT if i == 0 else ref.OP_CONT, piece, fin=i == len(pieces) - 1)
        for i, piece in enumerate(pieces)
    ]
    reader = Reader(client=True)
    outcome: Outcome = []
    error_frame = None
    for i, frame in enumerate(frames):
        events = reader.feed(frame)
        outcome.extend(events)
        if events and isinstance(events[-1], ProtocolError):
            assert events[-1].code == 1007
            error_frame = i
            break
    if _valid(data):
        assert outcome == [data.decode()]
    else:
        assert error_frame is not None
        seen = b""
        expected_at = len(pieces) - 1
        for i, piece in enumerate(pieces[:-1]):
            seen += piece
            if not _viable(seen):
                expected_at = i
                break
        assert error_frame == expected_at


def test_proper_prefixes_sanity() -> None:
    assert b"\xe2\x82" in _proper_prefixes()
    assert b"\xed\xa0" not in _proper_prefixes()
    assert _viable(b"ok\xf0\x9f\x98") and not _viable(b"ok\xed\xa0")
    # Python's own incremental decoder is laxer about surrogate prefixes.
    codecs.getincrementaldecoder("utf-8")().decode(b"\xed\xa0", final=False)


# --------------------------------------------------------------------------------------------
# Socket.receive (the native transport's read): the same events as Reader.feed


def socket_events(reader: Reader, pieces: Sequence[bytes]) -> tuple[list[object], bool]:
    """Send ``pieces`` through a socket pair, reading with ``Socket.receive`` after each one
    until nothing is left; return the events (errors as tuples) and whether EOF was seen."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        theirs.setblocking(False)
        sock = Socket(ours.fileno())
        events: list[object] = []

        def drain() -> bool:
            while True:
                got = sock.receive(reader)
                if got is None:
                    return True
                if not got:
                    return False
                events.extend(("error", e.code) if isinstance(e, ProtocolError) else e for e in got)

        for piece in pieces:
            view = memoryview(piece)
            while view:
                try:
                    view = view[theirs.send(view) :]
                except BlockingIOError:
                    pass
                drain()
        theirs.shutdown(socket.SHUT_WR)
        eof = drain()
        sock.close()
        return events, eof


def feed_events(reader: Reader, data: bytes) -> list[object]:
    return [("error", e.code) if isinstance(e, ProtocolError) else e for e in reader.feed(data)]


@st.composite
def large_stream(draw: st.DrawFn, is_client: bool) -> bytes:
    """Messages around the size received in place (64 KiB), between small ones."""
    writer = Writer(client=not is_client)
    stream = b""
    for _ in range(draw(st.integers(1, 4))):
        size = draw(st.sampled_from([1, 125, (1 << 16) - 1, 1 << 16, 100_000, 300_000]))
        data = bytes([draw(st.integers(0, 255))]) * size
        text = draw(st.booleans())
        stream += writer.message(data.decode("latin-1") if text else data)
    return stream


@SETTINGS
@given(
    is_client=st.booleans(),
    data=st.one_of(
        st.binary(max_size=600),
        st.booleans().flatmap(lambda c: writer_stream(c, False).map(lambda s: s[0])),
    ),
    cuts=st.lists(st.integers(0, 700), max_size=8),
)
def test_socket_receive_matches_feed(is_client: bool, data: bytes, cuts: list[int]) -> None:
    reader = Reader(client=is_client, max_size=None)
    events, eof = socket_events(reader, split(data, cuts))
    assert eof
    assert events == feed_events(Reader(client=is_client, max_size=None), data)


@settings(max_examples=25, deadline=None)
@given(is_client=st.booleans(), data=st.data())
def test_socket_receive_large_messages_in_place(is_client: bool, data: st.DataObject) -> None:
    stream = data.draw(large_stream(is_client))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    reader = Reader(client=is_client, max_size=None)
    events, eof = socket_events(reader, split(stream, cuts))
    assert eof and not reader.receiving_direct
    assert events == feed_events(Reader(client=is_client, max_size=None), stream)


def deliver_events(reader: Reader, pieces: Sequence[bytes]) -> tuple[list[object], list[object]]:
    """Send ``pieces`` through a socket pair, reading with ``Socket.deliver`` into a queue
    with no receiver; return what the queue took, in order, and every event in order (those
    the queue took, then the ones left to the caller, for each read)."""
    loop = asyncio.new_event_loop()
    queue = MessageQueue(loop, 0, lambda: None, lambda: None)
    ours, theirs = socket.socketpair()
    everything: list[object] = []
    try:
        ours.setblocking(False)
        theirs.setblocking(False)
        sock = Socket(ours.fileno())

        def drain() -> None:
            while (got := sock.deliver(reader, queue)) is not None:
                taken, rest = got
                if not taken and not rest:
                    return
                queued = list(queue.messages)
                everything.extend(queued[len(queued) - taken :])
                for event in rest:
                    everything.append(event)
                # What the caller gets starts with what the queue does not take.
                if rest:
                    first = rest[0]
                    assert not isinstance(first, str | bytes) or len(first) >= LARGE_MESSAGE_SIZE

        for piece in pieces:
            view = memoryview(piece)
            while view:
                try:
                    view = view[theirs.send(view) :]
                except BlockingIOError:
                    pass
                drain()
        theirs.shutdown(socket.SHUT_WR)
        drain()
        sock.close()
    finally:
        ours.close()
        theirs.close()
        loop.close()
    return list(queue.messages), everything


@SETTINGS
@given(
    is_client=st.booleans(),
    data=st.one_of(
        st.binary(max_size=600),
        st.booleans().flatmap(lambda c: writer_stream(c, False).map(lambda s: s[0])),
    ),
    cuts=st.lists(st.integers(0, 700), max_size=8),
)
def test_socket_deliver_matches_feed(is_client: bool, data: bytes, cuts: list[int]) -> None:
    """``Socket.deliver`` hands the queue the messages at the start of each read and leaves
    the rest, in order: together, the events ``Reader.feed`` gives."""
    taken, everything = deliver_events(Reader(client=is_client, max_size=None), split(data, cuts))
    expected = feed_events(Reader(client=is_client, max_size=None), data)
    assert [("error", e.code) if isinstance(e, ProtocolError) else e for e in everything] == (
        expected
    )
    assert all(type(message) in (str, bytes) for message in taken)


@settings(max_examples=25, deadline=None)
@given(is_client=st.booleans(), data=st.data())
def test_socket_deliver_leaves_large_messages(is_client: bool, data: st.DataObject) -> None:
    stream = data.draw(large_stream(is_client))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    taken, everything = deliver_events(Reader(client=is_client, max_size=None), split(stream, cuts))
    assert everything == feed_events(Reader(client=is_client, max_size=None), stream)
    assert all(len(cast(str | bytes, message)) < LARGE_MESSAGE_SIZE for message in taken)
