"""Tests of ``wsrs._core`` driven from Python: codec functions, Reader rules, Writer round trips.

The Reader never raises for a peer's protocol violation: the error comes back as the last
element of the list returned by ``feed``. These tests check that contract rule by rule, with
the close code each rule gives.
"""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import pytest

from tests import reference as ref
from wsrs import _core
from wsrs._core import (
    Close,
    Fragment,
    Ping,
    Pong,
    ProtocolError,
    Reader,
    Utf8Validator,
    Writer,
    apply_mask,
    build_close,
    encode_frame,
    is_valid_close_code,
    parse_close,
    validate_utf8,
)


if TYPE_CHECKING:
    from wsrs._core import Event


KEY = bytes.fromhex("37fa213d")
MASKED_HELLO = bytes.fromhex("8185 37fa213d 7f9f4d5158")
UNMASKED_HELLO = bytes.fromhex("8105") + b"Hello"

# What a Reader outcome normalises to: events, with the error as ("error", code).
Outcome = list[object]


def cframe(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False, key: bytes = KEY
) -> bytes:
    """A frame as a client sends it (masked), for a server-side reader."""
    return ref.encode_frame(opcode, payload, fin=fin, rsv1=rsv1, key=key)


def sframe(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A frame as a server sends it (unmasked), for a client-side reader."""
    return ref.encode_frame(opcode, payload, fin=fin, rsv1=rsv1)


def server(**kwargs: object) -> Reader:
    return Reader(client=False, **kwargs)  # type: ignore[arg-type]


def client(**kwargs: object) -> Reader:
    return Reader(client=True, **kwargs)  # type: ignore[arg-type]


def norm(events: Iterable[Event]) -> Outcome:
    out: Outcome = []
    for event in events:
        if isinstance(event, ProtocolError):
            out.append(("error", event.code))
        else:
            out.append(event)
    return out


def feed_pieces(reader: Reader, pieces: Iterable[bytes]) -> Outcome:
    out: Outcome = []
    for piece in pieces:
        out.extend(norm(reader.feed(piece)))
    return out


def expect_error(events: Sequence[Event], code: int, before: Sequence[object] = ()) -> None:
    """``events`` is ``before``, then a ProtocolError with ``code`` as the last element."""
    assert events, "expected a ProtocolError"
    err = events[-1]
    assert isinstance(err, ProtocolError), events
    assert err.code == code, (err.code, err.reason)
    assert isinstance(err.reason, str) and err.reason
    assert str(err) == err.reason
    assert norm(events[:-1]) == list(before)


def deflate_raw(data: bytes, wbits: int = 15) -> bytes:
    """Compress as permessage-deflate does: raw DEFLATE, sync flush, tail stripped."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


# --------------------------------------------------------------------------------------------
# Module constants and event classes


def test_constants() -> None:
    assert _core.MAX_HEADER_LEN == 14
    assert _core.GIL_RELEASE_THRESHOLD == 64 * 1024
    assert _core.LARGE_MESSAGE_SIZE == 64 * 1024
    assert _core.MAX_KEPT_SEND_BUFFER == 16 << 20


def test_event_classes() -> None:
    assert Ping(b"a") == Ping(b"a") and Ping(b"a") != Ping(b"b")
    assert Pong(b"a").data == b"a"
    assert Close(1000, "bye") == Close(1000, "bye") != Close(1001, "bye")
    assert (Close(1000, "x").code, Close(1000, "x").reason) == (1000, "x")
    assert repr(Ping(b"a'\x00")) == "Ping(b'a\\'\\x00')"
    assert repr(Close(1000, "bye")) == 'Close(1000, "bye")'
    assert issubclass(ProtocolError, Exception)


# --------------------------------------------------------------------------------------------
# apply_mask


def test_apply_mask_rfc6455_example() -> None:
    assert apply_mask(b"Hello", KEY) == bytes.fromhex("7f9f4d5158")
    assert apply_mask(bytes.fromhex("7f9f4d5158"), KEY) == b"Hello"


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 7, 8, 31, 32, 33, 125, 126, 65535, 65536])
def test_apply_mask_lengths(length: int) -> None:
    data = bytes((i * 7 + 3) % 256 for i in range(length))
    key = b"\x6d\xb6\xb2\x80"
    assert apply_mask(data, key) == ref.mask(data, key)


def test_apply_mask_gil_release_threshold() -> None:
    n = _core.GIL_RELEASE_THRESHOLD
    for length in (n - 1, n, n + 5):
        data = bytes(range(256)) * (length // 256) + bytes(length % 256)
        assert apply_mask(data, KEY) == ref.mask(data, KEY)


def test_apply_mask_buffer_types() -> None:
    data = bytearray(b"Hello")
    assert apply_mask(data, KEY) == bytes.fromhex("7f9f4d5158")
    assert data == bytearray(b"Hello"), "bytearray input must not be mutated"
    assert apply_mask(memoryview(b"Hello"), bytearray(KEY)) == bytes.fromhex("7f9f4d5158")
    assert apply_mask(b"Hello", memoryview(KEY)) == bytes.fromhex("7f9f4d5158")
    # A non-contiguous memoryview is still bytes-like.
    assert apply_mask(memoryview(b"HxexlxlxoX")[::2], KEY) == bytes.fromhex("7f9f4d5158")
    assert type(apply_mask(bytearray(b"ab"), KEY)) is bytes


@pytest.mark.parametrize("bad", ["Hello", 123, None, [1, 2, 3]])
def test_apply_mask_type_errors(bad: object) -> None:
    with pytest.raises(TypeError):
        apply_mask(bad, KEY)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        apply_mask(b"Hello", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
def test_apply_mask_bad_key(key: bytes) -> None:
    with pytest.raises(ValueError):
        apply_mask(b"Hello", key)


# --------------------------------------------------------------------------------------------
# validate_utf8 and Utf8Validator

UTF8_CASES = [
    (b"", True),
    (b"Hello", True),
    ("κόσμε".encode(), True),
    ("\U0001f600".encode(), True),
    ("\U0010ffff".encode(), True),
    (b"\x00", True),
    (b"\xff", False),
    (b"\xc0\x80", False),  # overlong NUL
    (b"\xe0\x80\x80", False),  # overlong
    (b"\xed\xa0\x80", False),  # surrogate U+D800
    (b"\xf4\x90\x80\x80", False),  # over U+10FFFF
    (b"\xe2\x82", False),  # truncated
    (b"Hello\x80", False),
    ("κόσμε".encode() + b"\xed\xa0\x80edited", False),
]


@pytest.mark.parametrize(("data", "valid"), UTF8_CASES)
def test_validate_utf8(data: bytes, valid: bool) -> None:
    assert validate_utf8(data) is valid
    assert validate_utf8(bytearray(data)) is valid
    assert validate_utf8(memoryview(data)) is valid


def test_validate_utf8_type_error() -> None:
    with pytest.raises(TypeError):
        validate_utf8("text")  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "valid"), UTF8_CASES)
def test_utf8_validator_every_split(data: bytes, valid: bool) -> None:
    for i in range(len(data) + 1):
        v = Utf8Validator()
        try:
            v.feed(data[:i])
            v.feed(bytearray(data[i:]), final=True)
        except ProtocolError as exc:
            assert exc.code == 1007
            ok = False
        else:
            ok = True
        assert ok is valid, i


def test_utf8_validator_incomplete_then_final() -> None:
    v = Utf8Validator()
    v.feed(b"\xe2\x82")  # the start of the euro sign: not yet an error
    v.feed(memoryview(b"\xac"), final=True)
    v = Utf8Validator()
    v.feed(b"\xe2")
    v.feed(b"\x82")
    with pytest.raises(ProtocolError) as info:
        v.feed(b"", final=True)
    assert info.value.code == 1007


def test_utf8_validator_fails_fast() -> None:
    v = Utf8Validator()
    v.feed(b"ok")
    with pytest.raises(ProtocolError) as info:
        v.feed(b"\xed\xa0")  # a surrogate can never become valid: fail now
    assert info.value.code == 1007
    v = Utf8Validator()
    v.feed(b"\xe2\x82")
    with pytest.raises(ProtocolError):
        v.feed(b"A")  # the pending code point cannot be completed by "A"


def test_utf8_validator_reset() -> None:
    v = Utf8Validator()
    v.feed(b"\xe2\x82")
    v.reset()
    v.feed(b"A", final=True)
    # After an error the validator starts over by itself.
    v = Utf8Validator()
    with pytest.raises(ProtocolError):
        v.feed(b"\xff")
    v.feed(b"fine", final=True)


def test_utf8_validator_type_error() -> None:
    with pytest.raises(TypeError):
        Utf8Validator().feed("text")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# encode_frame


def test_encode_frame_rfc6455_examples() -> None:
    # RFC 6455 §5.7.
    assert encode_frame(0x1, b"Hello") == UNMASKED_HELLO
    assert encode_frame(0x1, b"Hello", mask=KEY) == MASKED_HELLO
    assert encode_frame(0x1, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert encode_frame(0x0, b"lo") == bytes.fromhex("80026c6f")
    assert encode_frame(0x9, b"Hello") == bytes.fromhex("8905") + b"Hello"
    assert encode_frame(0xA, b"Hello", mask=KEY) == bytes.fromhex("8a85 37fa213d 7f9f4d5158")
    frame = encode_frame(0x2, bytes(256))
    assert frame[:4] == bytes.fromhex("827e0100") and len(frame) == 4 + 256
    frame = encode_frame(0x2, bytes(65536))
    assert frame[:10] == bytes.fromhex("827f0000000000010000") and len(frame) == 10 + 65536


@pytest.mark.parametrize(
    ("length", "header_len"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]
)
@pytest.mark.parametrize("masked", [False, True])
def test_encode_frame_edge_lengths(length: int, header_len: int, masked: bool) -> None:
    payload = bytes((i * 13) % 256 for i in range(length))
    key = b"\x01\x02\x03\x04" if masked else None
    frame = encode_frame(0x2, payload, mask=key)
    expected_header_len = header_len + (4 if masked else 0)
    assert len(frame) == expected_header_len + length
    assert frame == ref.encode_frame(0x2, payload, key=key)
    header = ref.parse_header(frame)
    assert header is not None
    assert (header.header_len, header.length, header.key) == (expected_header_len, length, key)
    assert header.fin and header.opcode == 0x2 and not header.rsv1
    # Through a reader of the matching side.
    reader = Reader(client=not masked, max_size=None)
    assert reader.feed(frame) == [payload]


def test_encode_frame_flags() -> None:
    frame = encode_frame(0x1, b"x", fin=False, rsv1=True)
    assert frame[0] == 0x41
    frame = encode_frame(0x2, b"x", rsv1=True)
    assert frame[0] == 0xC2


def test_encode_frame_buffer_types() -> None:
    payload = bytearray(b"Hello")
    assert encode_frame(0x1, payload, mask=bytearray(KEY)) == MASKED_HELLO
    assert payload == bytearray(b"Hello"), "bytearray input must not be mutated"
    assert encode_frame(0x1, memoryview(b"Hello"), mask=memoryview(KEY)) == MASKED_HELLO


def test_encode_frame_type_errors() -> None:
    with pytest.raises(TypeError):
        encode_frame(0x1, "Hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_frame(0x1, b"Hello", mask="abcd")  # type: ignore[arg-type]


@pytest.mark.parametrize("opcode", ref.RESERVED_OPCODES)
def test_encode_frame_reserved_opcode(opcode: int) -> None:
    with pytest.raises(ValueError):
        encode_frame(opcode, b"")


@pytest.mark.parametrize("key", [b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
def test_encode_frame_bad_mask(key: bytes) -> None:
    with pytest.raises(ValueError):
        encode_frame(0x1, b"Hello", mask=key)


@pytest.mark.parametrize("opcode", ref.CONTROL_OPCODES)
def test_encode_frame_control_rules(opcode: int) -> None:
    assert len(encode_frame(opcode, bytes(125))) == 127
    with pytest.raises(ValueError):
        encode_frame(opcode, bytes(126))
    with pytest.raises(ValueError):
        encode_frame(opcode, b"", fin=False)


# --------------------------------------------------------------------------------------------
# Close payloads

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
VALID_CODES += [3000, 3999, 4000, 4999]
INVALID_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_codes(code: int) -> None:
    assert is_valid_close_code(code)
    payload = build_close(code, "bye")
    assert payload == code.to_bytes(2, "big") + b"bye"
    assert parse_close(payload) == (code, "bye")


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_codes(code: int) -> None:
    assert not is_valid_close_code(code)
    with pytest.raises(ValueError):
        build_close(code)
    with pytest.raises(ProtocolError) as info:
        parse_close(code.to_bytes(2, "big"))
    assert info.value.code == 1002


def test_parse_close() -> None:
    assert parse_close(b"") == (1005, "")
    assert parse_close(b"\x03\xe8") == (1000, "")
    assert parse_close(bytearray(b"\x03\xe8bye")) == (1000, "bye")
    assert parse_close(memoryview(b"\x03\xe9" + "κόσμε".encode())) == (1001, "κόσμε")
    with pytest.raises(ProtocolError) as info:
        parse_close(b"\x03")
    assert info.value.code == 1002
    with pytest.raises(ProtocolError) as info:
        parse_close(b"\x03\xe8\xff")
    assert info.value.code == 1007
    with pytest.raises(TypeError):
        parse_close("\x03\xe8")  # type: ignore[arg-type]


def test_build_close() -> None:
    assert build_close() == b""
    assert build_close(None) == b""
    assert build_close(1000) == b"\x03\xe8"
    assert build_close(1000, "é" * 61 + "x") == b"\x03\xe8" + ("é" * 61 + "x").encode()
    assert len(build_close(1000, "x" * 123)) == 125
    with pytest.raises(ValueError):
        build_close(1000, "x" * 124)
    with pytest.raises(ValueError):
        build_close(1000, "é" * 62)  # 124 bytes of UTF-8
    with pytest.raises(ValueError):
        build_close(None, "a reason without a code")


def test_close_code_out_of_range() -> None:
    with pytest.raises(OverflowError):
        is_valid_close_code(65536)
    with pytest.raises(OverflowError):
        build_close(-1)


# --------------------------------------------------------------------------------------------
# Reader: valid input


def test_reader_rfc6455_examples() -> None:
    assert client().feed(UNMASKED_HELLO) == ["Hello"]
    assert server().feed(MASKED_HELLO) == ["Hello"]
    fragmented = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
    assert client().feed(fragmented) == ["Hello"]
    assert client().feed(bytes.fromhex("8905") + b"Hello") == [Ping(b"Hello")]
    assert server().feed(bytes.fromhex("8a85 37fa213d 7f9f4d5158")) == [Pong(b"Hello")]
    assert client().feed(bytes.fromhex("827e0100") + bytes(256)) == [bytes(256)]
    big = bytes.fromhex("827f0000000000010000") + bytes(65536)
    assert client().feed(big) == [bytes(65536)]


def test_reader_buffer_types() -> None:
    data = bytearray(MASKED_HELLO)
    assert server().feed(data) == ["Hello"]
    assert data == bytearray(MASKED_HELLO), "bytearray input must not be mutated"
    assert server().feed(memoryview(MASKED_HELLO)) == ["Hello"]
    with pytest.raises(TypeError):
        server().feed("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        server().feed(None)  # type: ignore[arg-type]


def test_reader_type_error_keeps_state() -> None:
    reader = server()
    assert reader.feed(MASKED_HELLO[:4]) == []
    with pytest.raises(TypeError):
        reader.feed(1)  # type: ignore[arg-type]
    assert reader.feed(MASKED_HELLO[4:]) == ["Hello"]
    assert not reader.failed


def test_reader_empty_messages_and_feeds() -> None:
    reader = server()
    assert reader.feed(b"") == []
    events = reader.feed(cframe(0x1) + cframe(0x2) + cframe(0x9) + cframe(0xA))
    assert events == ["", b"", Ping(b""), Pong(b"")]
    assert reader.feed(cframe(0x1, fin=False) + cframe(0x0, fin=False) + cframe(0x0)) == [""]


def test_reader_close_frames() -> None:
    assert server().feed(cframe(0x8)) == [Close(1005, "")]
    assert server().feed(cframe(0x8, b"\x03\xe8")) == [Close(1000, "")]
    assert server().feed(cframe(0x8, build_close(4000, "κόσμε"))) == [Close(4000, "κόσμε")]
    assert client().feed(sframe(0x8, build_close(1001, "x" * 123))) == [Close(1001, "x" * 123)]


def test_reader_control_frames_between_fragments() -> None:
    reader = server()
    assert reader.feed(cframe(0x1, b"Hel", fin=False)) == []
    assert reader.in_message
    assert reader.feed(cframe(0x9, b"ping")) == [Ping(b"ping")]
    assert reader.feed(cframe(0xA, b"pong")) == [Pong(b"pong")]
    assert reader.in_message
    assert reader.feed(cframe(0x0, b"l", fin=False) + cframe(0x9)) == [Ping(b"")]
    assert reader.feed(cframe(0x0, b"o")) == ["Hello"]
    assert not reader.in_message
    # A close frame inside a fragmented message is delivered at once, and ends the input.
    reader = server()
    events = reader.feed(
        cframe(0x2, b"ab", fin=False) + cframe(0x8, b"\x03\xe8") + cframe(0x0, b"cd")
    )
    assert events == [Close(1000, "")]
    assert reader.closed


def test_reader_masked_control_frame_between_split_payload() -> None:
    # The mask phase of the data frame must survive a control frame in between.
    reader = server()
    frame = cframe(0x1, b"abcdefg", fin=False, key=b"\x01\x02\x03\x04")
    assert reader.feed(frame[:9]) == []
    assert reader.feed(frame[9:]) == []
    assert reader.feed(cframe(0x9, b"xyz", key=b"\xff\xee\xdd\xcc")) == [Ping(b"xyz")]
    assert reader.feed(cframe(0x0, b"hij", key=b"\x10\x20\x30\x40")) == ["abcdefghij"]


def test_reader_no_max_size() -> None:
    reader = server(max_size=None)
    data = bytes(range(256)) * 1100
    assert reader.feed(cframe(0x2, data)) == [data]
    # A huge declared length is not an error without a limit: the reader waits for it.
    reader = client(max_size=None)
    assert reader.feed(ref.encode_header(0x2, 1 << 40)) == []
    assert reader.in_message and not reader.failed
    assert reader.feed(b"abc") == []


def fragments(events: Iterable[Event]) -> list[object]:
    """The events with each :class:`Fragment` as a ``(data, text, fin)`` tuple."""
    return [
        (event.data, event.text, event.fin) if isinstance(event, Fragment) else event
        for event in events
    ]


def test_fragment_class() -> None:
    fragment = Fragment(b"a'\xff", True, False)
    assert (fragment.data, fragment.text, fragment.fin) == (b"a'\xff", True, False)
    assert repr(fragment) == "Fragment(b'a\\'\\xff', text=True, fin=False)"
    assert repr(Fragment(b"", False, True)) == "Fragment(b'', text=False, fin=True)"


def test_reader_streams_fragments_frame_by_frame() -> None:
    reader = server(stream_fragments=True)
    # Each frame of a fragmented message comes as it ends, before the last one arrives;
    # "é" is split across the first two frames.
    assert fragments(reader.feed(cframe(0x1, b"caf\xc3", fin=False))) == [(b"caf\xc3", True, False)]
    assert fragments(reader.feed(cframe(0x0, b"\xa9", fin=False) + cframe(0x9, b"p"))) == [
        (b"\xa9", True, False),
        Ping(b"p"),
    ]
    assert fragments(reader.feed(cframe(0x0, b""))) == [(b"", True, True)]
    # A message of one frame comes whole.
    assert reader.feed(cframe(0x2, b"whole") + cframe(0x1, b"text")) == [b"whole", "text"]
    # A fragmented text message that is not UTF-8 fails at the frame that shows it.
    events = reader.feed(cframe(0x1, b"ok", fin=False) + cframe(0x0, b"\xff"))
    assert fragments(events[:1]) == [(b"ok", True, False)]
    expect_error(events[1:], 1007)


def test_reader_streamed_fragments_count_against_max_size() -> None:
    reader = server(max_size=10, stream_fragments=True)
    events = reader.feed(cframe(0x2, bytes(6), fin=False) + cframe(0x0, bytes(5)))
    assert fragments(events[:1]) == [(bytes(6), False, False)]
    expect_error(events[1:], 1009)


def test_reader_streams_compressed_fragments() -> None:
    data = b"Hello, fragments! " * 100
    compressed = deflate_raw(data)
    third = len(compressed) // 3
    stream = sframe(0x2, compressed[:third], fin=False, rsv1=True)
    stream += sframe(0x0, compressed[third : 2 * third], fin=False)
    stream += sframe(0x0, compressed[2 * third :])
    events = client(deflate=True, stream_fragments=True).feed(stream)
    assert [type(event) for event in events] == [Fragment] * 3
    assert b"".join(event.data for event in events) == data  # type: ignore[union-attr]
    assert [event.fin for event in events] == [False, False, True]  # type: ignore[union-attr]


def test_reader_max_fragment_size() -> None:
    # From the header, before the payload: fragmented or not, streamed or not.
    for stream in (False, True):
        reader = client(max_size=100, max_fragment_size=4, stream_fragments=stream)
        expect_error(reader.feed(ref.encode_header(0x2, 5)), 1009)
        reader = client(max_size=100, max_fragment_size=4, stream_fragments=stream)
        events = reader.feed(sframe(0x1, b"abcd", fin=False) + sframe(0x0, b"efg"))
        assert (
            b"".join(
                event.data if isinstance(event, Fragment) else event.encode()  # type: ignore[union-attr]
                for event in events
            )
            == b"abcdefg"
        )
    reader = client(max_size=None, max_fragment_size=4)
    events = reader.feed(sframe(0x1, b"abcd", fin=False) + sframe(0x0, b"efghi"))
    expect_error(events, 1009)
    assert "frame too big (limit 4 bytes)" in str(events[-1])
    # After decompression: 4 compressed bytes inflate to 1000.
    compressed = deflate_raw(bytes(1000))
    reader = client(deflate=True, max_fragment_size=999)
    expect_error(reader.feed(sframe(0x2, compressed, rsv1=True)), 1009)
    reader = client(deflate=True, max_fragment_size=1000)
    assert reader.feed(sframe(0x2, compressed, rsv1=True)) == [bytes(1000)]


def test_reader_exactly_max_size() -> None:
    assert server(max_size=10).feed(cframe(0x2, bytes(10))) == [bytes(10)]
    assert server(max_size=0).feed(cframe(0x1)) == [""]
    stream = cframe(0x1, b"aaaa", fin=False) + cframe(0x0, b"bbb", fin=False)
    stream += cframe(0x0, b"ccc")
    assert server(max_size=10).feed(stream) == ["aaaabbbccc"]


def test_reader_large_chunk_releases_gil() -> None:
    data = bytes(range(256)) * 600  # over GIL_RELEASE_THRESHOLD
    stream = cframe(0x2, data) + cframe(0x1, b"after")
    assert len(stream) >= _core.GIL_RELEASE_THRESHOLD
    assert server(max_size=None).feed(stream) == [data, "after"]
    expect_error(server(max_size=1000).feed(stream), 1009)


# --------------------------------------------------------------------------------------------
# Reader: every error rule, with its close code


@pytest.mark.parametrize("opcode", ref.RESERVED_OPCODES)
@pytest.mark.parametrize("fin", [True, False])
def test_reader_reserved_opcodes(opcode: int, fin: bool) -> None:
    expect_error(client().feed(ref.encode_header(opcode, 0, fin=fin)), 1002)
    expect_error(server().feed(ref.encode_header(opcode, 3, fin=fin, key=KEY)), 1002)


@pytest.mark.parametrize("opcode", [0x1, 0x2, 0x8, 0x9, 0xA])
@pytest.mark.parametrize("bit", ["rsv1", "rsv2", "rsv3"])
def test_reader_rsv_bits_without_deflate(opcode: int, bit: str) -> None:
    header = ref.encode_header(opcode, 0, **{bit: True})  # type: ignore[arg-type]
    expect_error(client().feed(header), 1002)


@pytest.mark.parametrize("opcode", [0x1, 0x2, 0x8, 0x9, 0xA])
@pytest.mark.parametrize("bit", ["rsv2", "rsv3"])
def test_reader_rsv2_rsv3_with_deflate(opcode: int, bit: str) -> None:
    header = ref.encode_header(opcode, 0, **{bit: True})  # type: ignore[arg-type]
    expect_error(client(deflate=True).feed(header), 1002)


def test_reader_rsv1_on_continuation_with_deflate() -> None:
    payload = deflate_raw(b"Hello, world")
    first = sframe(0x1, payload[:4], fin=False, rsv1=True)
    reader = client(deflate=True)
    assert reader.feed(first) == []
    expect_error(reader.feed(sframe(0x0, payload[4:], rsv1=True)), 1002)
    # Also on the continuation of an uncompressed message.
    reader = client(deflate=True)
    assert reader.feed(sframe(0x2, b"ab", fin=False)) == []
    expect_error(reader.feed(sframe(0x0, b"cd", rsv1=True)), 1002)


@pytest.mark.parametrize("opcode", ref.CONTROL_OPCODES)
def test_reader_rsv1_on_control_with_deflate(opcode: int) -> None:
    expect_error(client(deflate=True).feed(sframe(opcode, rsv1=True)), 1002)
    expect_error(server(deflate=True).feed(cframe(opcode, b"\x03\xe8", rsv1=True)), 1002)


@pytest.mark.parametrize("opcode", ref.CONTROL_OPCODES)
def test_reader_fragmented_control_frame(opcode: int) -> None:
    expect_error(client().feed(sframe(opcode, fin=False)), 1002)
    expect_error(server().feed(cframe(opcode, b"\x03\xe8", fin=False)), 1002)


@pytest.mark.parametrize("opcode", ref.CONTROL_OPCODES)
@pytest.mark.parametrize("length", [126, 127, 65535, 1 << 20])
def test_reader_control_frame_too_long(opcode: int, length: int) -> None:
    header = ref.encode_header(opcode, length)
    # Decided from the first two bytes, whatever the extended length says.
    expect_error(client().feed(header[:2]), 1002)
    expect_error(client(max_size=None).feed(header), 1002)


def test_reader_continuation_without_message() -> None:
    expect_error(client().feed(sframe(0x0, b"x")), 1002)
    expect_error(client().feed(sframe(0x0, b"x", fin=False)), 1002)
    expect_error(server().feed(cframe(0x0)), 1002)
    # After a complete message, a continuation is again out of place.
    expect_error(client().feed(sframe(0x1, b"a") + sframe(0x0, b"b")), 1002, ["a"])


@pytest.mark.parametrize("first", [0x1, 0x2])
@pytest.mark.parametrize("second", [0x1, 0x2])
def test_reader_data_frame_inside_fragmented_message(first: int, second: int) -> None:
    stream = sframe(first, b"a", fin=False) + sframe(second, b"b")
    expect_error(client().feed(stream), 1002)


@pytest.mark.parametrize("opcode", ref.OPCODES)
def test_reader_unmasked_frame_to_server(opcode: int) -> None:
    expect_error(server().feed(ref.encode_header(opcode, 0)), 1002)


@pytest.mark.parametrize("opcode", ref.OPCODES)
def test_reader_masked_frame_to_client(opcode: int) -> None:
    expect_error(client().feed(ref.encode_header(opcode, 0, key=KEY)), 1002)


def test_reader_masking_rule_checked_from_header() -> None:
    # The header alone decides: no payload needed.
    expect_error(client().feed(ref.encode_header(0x2, 100, key=KEY)), 1002)
    expect_error(server().feed(ref.encode_header(0x2, 100)), 1002)


@pytest.mark.parametrize("max_size", [None, 1 << 20])
def test_reader_64bit_length_top_bit(max_size: int | None) -> None:
    header = bytes([0x82, 0x7F]) + (1 << 63).to_bytes(8, "big")
    expect_error(client(max_size=max_size).feed(header), 1002)
    header = bytes([0x82, 0xFF]) + ((1 << 64) - 1).to_bytes(8, "big") + KEY
    expect_error(server(max_size=max_size).feed(header), 1002)


@pytest.mark.parametrize("length", [1001, 65535, 65536, 1 << 40, (1 << 63) - 1])
def test_reader_too_big_from_header(length: int) -> None:
    # Only the header is fed: the limit is decided before any payload arrives.
    expect_error(client(max_size=1000).feed(ref.encode_header(0x2, length)), 1009)
    expect_error(server(max_size=1000).feed(ref.encode_header(0x1, length, key=KEY)), 1009)


def test_reader_too_big_across_fragments() -> None:
    reader = client(max_size=1000)
    assert reader.feed(sframe(0x2, bytes(600), fin=False)) == []
    expect_error(reader.feed(ref.encode_header(0x0, 401)), 1009)
    reader = client(max_size=1000)
    assert reader.feed(sframe(0x2, bytes(600), fin=False)) == []
    assert reader.feed(sframe(0x0, bytes(400))) == [bytes(1000)]


def test_reader_too_big_default_limit() -> None:
    expect_error(client().feed(ref.encode_header(0x2, (1 << 20) + 1)), 1009)
    expect_error(client(max_size=0).feed(ref.encode_header(0x1, 1)), 1009)


def test_reader_close_payload_of_one_byte() -> None:
    expect_error(client().feed(sframe(0x8, b"\x03")), 1002)
    expect_error(server().feed(cframe(0x8, b"\x03")), 1002)


@pytest.mark.parametrize("code", INVALID_CODES)
def test_reader_invalid_close_code(code: int) -> None:
    expect_error(client().feed(sframe(0x8, code.to_bytes(2, "big") + b"x")), 1002)


def test_reader_close_reason_not_utf8() -> None:
    expect_error(client().feed(sframe(0x8, b"\x03\xe8\xff")), 1007)
    expect_error(server().feed(cframe(0x8, b"\x03\xe8" + b"ok\xed\xa0\x80")), 1007)


def test_reader_invalid_utf8_text() -> None:
    expect_error(client().feed(sframe(0x1, b"\xff")), 1007)
    expect_error(server().feed(cframe(0x1, b"\xc0\x80")), 1007)
    # A code point cut by the end of the message.
    expect_error(client().feed(sframe(0x1, "€".encode()[:2])), 1007)
    # Binary messages are not validated.
    assert client().feed(sframe(0x2, b"\xff")) == [b"\xff"]


def test_reader_invalid_utf8_fails_at_the_fragment() -> None:
    reader = server()
    assert reader.feed(cframe(0x1, b"fine", fin=False)) == []
    expect_error(reader.feed(cframe(0x0, b"ab\xffcd", fin=False)), 1007)
    assert reader.failed
    # A code point split between fragments is fine...
    euro = "€".encode()
    reader = server()
    assert reader.feed(cframe(0x1, b"a" + euro[:1], fin=False)) == []
    assert reader.feed(cframe(0x0, euro[1:2], fin=False)) == []
    assert reader.feed(cframe(0x0, euro[2:] + b"b")) == ["a€b"]
    # ...until the next fragment cannot complete it.
    reader = server()
    assert reader.feed(cframe(0x1, b"a" + euro[:2], fin=False)) == []
    expect_error(reader.feed(cframe(0x0, b"A", fin=False)), 1007)


def test_reader_invalid_utf8_fails_within_a_frame() -> None:
    # The error comes with the chunk that holds the bad byte, not at the end of the frame.
    payload = b"x" * 10 + b"\xff" + b"y" * 1000
    frame = cframe(0x1, payload, fin=False)
    reader = server()
    assert reader.feed(frame[:16]) == []  # header (8 bytes) and 8 good bytes
    expect_error(reader.feed(frame[16:20]), 1007)


def test_reader_invalid_utf8_compressed() -> None:
    expect_error(client(deflate=True).feed(sframe(0x1, deflate_raw(b"ok\xff"), rsv1=True)), 1007)


def test_reader_corrupt_compressed_data() -> None:
    # BFINAL=1, BTYPE=11: a reserved block type.
    expect_error(client(deflate=True).feed(sframe(0x2, b"\x07\x00", rsv1=True)), 1007)


def test_reader_events_before_an_error_are_delivered() -> None:
    stream = cframe(0x1, b"one") + cframe(0x9, b"p") + cframe(0x2, b"two")
    stream += ref.encode_header(0x3, 0, key=KEY) + cframe(0x1, b"never")
    events = server().feed(stream)
    expect_error(events, 1002, ["one", Ping(b"p"), b"two"])


def test_reader_ignores_input_after_an_error() -> None:
    reader = server()
    assert not reader.failed and not reader.closed
    expect_error(reader.feed(sframe(0x1, b"unmasked")), 1002)
    assert reader.failed and not reader.closed and not reader.in_message
    assert reader.feed(MASKED_HELLO) == []
    assert reader.feed(b"\xff" * 100) == []
    assert reader.failed


def test_reader_error_drops_message_in_progress() -> None:
    reader = server()
    assert reader.feed(cframe(0x1, b"a", fin=False)) == []
    assert reader.in_message
    expect_error(reader.feed(cframe(0x1, b"b")), 1002)
    assert not reader.in_message


def test_reader_ignores_input_after_close() -> None:
    reader = server()
    events = reader.feed(cframe(0x1, b"a") + cframe(0x8, b"\x03\xe8bye") + cframe(0x1, b"b"))
    assert events == ["a", Close(1000, "bye")]
    assert reader.closed and not reader.failed
    # Even garbage after the close frame is ignored, not an error.
    assert reader.feed(b"\xff" * 20) == []
    assert reader.feed(MASKED_HELLO) == []
    assert reader.closed and not reader.failed


# --------------------------------------------------------------------------------------------
# Reader: split points


def _run_splits(make: Callable[[], Reader], stream: bytes) -> Outcome:
    """Feed ``stream`` whole, byte by byte and split at every point: all must agree."""
    expected = feed_pieces(make(), [stream])
    assert feed_pieces(make(), [stream[i : i + 1] for i in range(len(stream))]) == expected
    for i in range(len(stream) + 1):
        assert feed_pieces(make(), [stream[:i], stream[i:]]) == expected, i
    return expected


def _multi_frame_stream(frame: Callable[..., bytes]) -> tuple[bytes, Outcome]:
    stream = frame(0x1, b"Hello")
    stream += frame(0x1, "κό".encode(), fin=False)
    stream += frame(0x9, b"p")
    stream += frame(0x0, b"", fin=False)
    stream += frame(0x0, "σμε".encode())
    stream += frame(0x2, bytes(range(256)) + b"abcd")  # 16-bit length
    stream += frame(0xA, b"q" * 125)
    stream += frame(0x8, build_close(1000, "bye"))
    expected: Outcome = [
        "Hello",
        Ping(b"p"),
        "κόσμε",
        bytes(range(256)) + b"abcd",
        Pong(b"q" * 125),
        Close(1000, "bye"),
    ]
    return stream, expected


def test_reader_every_split_server() -> None:
    stream, expected = _multi_frame_stream(cframe)
    assert _run_splits(server, stream) == expected


def test_reader_every_split_client() -> None:
    stream, expected = _multi_frame_stream(sframe)
    assert _run_splits(client, stream) == expected


def test_reader_every_split_with_64bit_length() -> None:
    data = bytes(range(256)) * 257
    stream = sframe(0x2, data) + sframe(0x1, b"end")
    assert feed_pieces(client(), [stream[i : i + 7] for i in range(0, len(stream), 7)]) == [
        data,
        "end",
    ]
    for i in range(0, 20):
        assert feed_pieces(client(), [stream[:i], stream[i:]]) == [data, "end"]


def test_reader_every_split_with_error() -> None:
    stream = cframe(0x1, b"ok") + cframe(0x9, b"p") + cframe(0x1, b"bad \xff text")
    stream += cframe(0x1, b"never")
    assert _run_splits(server, stream) == ["ok", Ping(b"p"), ("error", 1007)]


def test_reader_every_split_deflate() -> None:
    writer = Writer(client=True, deflate=True)
    messages: list[str | bytes] = ["Hello", "Hello", b"\x00" * 300, "κόσμε" * 20]
    stream = b"".join(writer.message(m, fragment_size=7) for m in messages)
    stream += writer.ping(b"x") + writer.close(1001)
    expected: Outcome = [*messages, Ping(b"x"), Close(1001, "")]
    assert _run_splits(lambda: server(deflate=True), stream) == expected


# --------------------------------------------------------------------------------------------
# Large binary messages received in place (Reader.receive_buffer)


def _read_into(reader: Reader, data: bytes) -> tuple[list[Event], bytes]:
    """Do what the transport does with ``receive_buffer``: read as much of ``data`` as the
    buffer takes; return the events and what is left."""
    buffer = reader.receive_buffer()
    assert buffer is not None
    view = memoryview(buffer)
    assert not view.readonly and view.nbytes == len(buffer)
    n = min(len(view), len(data))
    view[:n] = data[:n]
    view.release()
    return reader.received(n), data[n:]


@pytest.mark.parametrize("is_client", [True, False])
@pytest.mark.parametrize("piece", [1, 3, 4096, 200_000])
def test_reader_receives_large_binary_in_place(is_client: bool, piece: int) -> None:
    payload = bytes(range(256)) * 1000 + b"!"
    writer = Writer(client=not is_client)
    stream = writer.message(b"small") + writer.message(payload) + writer.message("after")
    reader = Reader(client=is_client)
    # The transport's first read holds the first message and the large one's header.
    head = len(writer.message(b"small")) + (10 if is_client else 14)
    assert reader.feed(stream[:head]) == [b"small"]
    assert not reader.receiving_direct, "stopped at the header: starts with receive_buffer"
    rest = stream[head:]
    events: list[Event] = []
    while not events:
        new, left = _read_into(reader, rest[:piece])  # one read of at most `piece` bytes
        assert reader.receiving_direct is not bool(new)
        rest = left + rest[piece:]
        events += new
    assert events == [payload]
    assert type(events[0]) is bytes
    assert reader.receive_buffer() is None, "not inside a large binary payload"
    assert reader.feed(rest) == ["after"]


@pytest.mark.parametrize("is_client", [True, False])
def test_reader_feed_fills_a_message_received_in_place(is_client: bool) -> None:
    payload = b"\x00\xff\x10" * 50_000
    writer = Writer(client=not is_client)
    stream = writer.message(payload) + writer.ping(b"p") + writer.message(payload)
    for split in (1, 5, 11, 12, 70_000, len(stream) - 1):
        reader = Reader(client=is_client)
        events = reader.feed(stream[:split]) + reader.feed(stream[split:])
        assert events == [payload, Ping(b"p"), payload]
    # Reading into the buffer and feeding mix.
    reader = Reader(client=is_client)
    assert reader.feed(stream[:20_000]) == []
    events, rest = _read_into(reader, stream[20_000:70_000])
    assert events == [] and rest == b""
    assert reader.feed(stream[70_000:]) == [payload, Ping(b"p"), payload]


def test_reader_receive_buffer_only_for_large_plain_binary() -> None:
    writer = Writer(client=True)
    for message in ("x" * 100_000, b"x" * 65_535):
        reader = server()
        frame = writer.message(message)
        assert reader.feed(frame[:20]) == []
        assert reader.receive_buffer() is None and not reader.receiving_direct
    fragmented = writer.frame(0x2, b"x" * 100_000, fin=False)
    reader = server()
    assert reader.feed(fragmented[:20]) == []
    assert reader.receive_buffer() is None
    compressed = Writer(client=True, deflate=True).message(bytes(range(256)) * 1000)
    reader = server(deflate=True)
    assert reader.feed(compressed[:20]) == []
    assert reader.receive_buffer() is None


def test_reader_received_misuse() -> None:
    reader = server()
    with pytest.raises(ValueError):
        reader.received(1)
    frame = Writer(client=True).message(b"y" * 100_000)
    reader.feed(frame[:14])
    buffer = reader.receive_buffer()
    assert buffer is not None and len(buffer) == 100_000
    with pytest.raises(ValueError):
        reader.received(100_001)
    assert reader.received(0) == []
    events, rest = _read_into(reader, frame[14:])
    assert events == [b"y" * 100_000] and rest == b""


def test_reader_too_big_before_receiving_in_place() -> None:
    frame = Writer(client=True).message(b"z" * 200_000)
    reader = server(max_size=100_000)
    assert norm(reader.feed(frame[:14])) == [("error", 1009)]
    assert reader.receive_buffer() is None


# --------------------------------------------------------------------------------------------
# Writer and Reader round trips


@pytest.mark.parametrize("message", ["", "Hello", "κόσμε" * 100, b"", b"\x00\xff" * 40000])
def test_round_trip_server_to_client(message: str | bytes) -> None:
    writer = Writer(client=False)
    frame = writer.message(message)
    header = ref.parse_header(frame)
    assert header is not None and header.key is None
    assert header.opcode == (0x1 if isinstance(message, str) else 0x2)
    assert header.fin and not header.rsv1
    assert frame == ref.encode_frame(header.opcode, frame[header.header_len :])
    assert client(max_size=None).feed(frame) == [message]


@pytest.mark.parametrize("message", ["", "Hello", "κόσμε" * 100, b"", b"\x00\xff" * 40000])
def test_round_trip_client_to_server(message: str | bytes) -> None:
    writer = Writer(client=True)
    frame = writer.message(message)
    header = ref.parse_header(frame)
    assert header is not None and header.key is not None, "a client must mask"
    payload = message.encode() if isinstance(message, str) else message
    assert frame == ref.encode_frame(header.opcode, payload, key=header.key)
    assert server(max_size=None).feed(frame) == [message]


def test_client_masks_with_fresh_keys() -> None:
    writer = Writer(client=True)
    frames = [writer.message("Hello") for _ in range(20)]
    keys = set()
    for frame in frames:
        header = ref.parse_header(frame)
        assert header is not None and header.key is not None
        assert frame[1] & 0x80
        keys.add(header.key)
    assert len(set(frames)) == 20, "two encodings of one message must differ"
    assert len(keys) == 20
    # Control frames are masked too.
    for frame in (writer.ping(b"p"), writer.pong(), writer.close(1000)):
        assert frame[1] & 0x80


def test_writer_buffer_types() -> None:
    data = bytearray(b"binary")
    frame = Writer(client=True).message(data)
    assert data == bytearray(b"binary"), "bytearray input must not be mutated"
    assert server().feed(frame) == [b"binary"]
    assert client().feed(Writer(client=False).message(memoryview(b"mv"))) == [b"mv"]
    with pytest.raises(TypeError):
        Writer(client=False).message(123)  # type: ignore[arg-type]


@pytest.mark.parametrize("is_client", [True, False])
@pytest.mark.parametrize("message", ["", "κόσμε" * 100, b"\x00\xff" * 40000, bytearray(b"ba")])
def test_writer_message_buffer_round_trip(is_client: bool, message: str | bytes) -> None:
    writer = Writer(client=is_client)
    frame = writer.message_buffer(message)
    assert type(frame) is bytearray
    header = ref.parse_header(bytes(frame))
    assert header is not None and (header.key is not None) is is_client
    assert header.fin and not header.rsv1
    expected = message.encode() if isinstance(message, str) else bytes(message)
    assert len(frame) == header.header_len + len(expected)
    assert Reader(client=not is_client, max_size=None).feed(frame) == [
        message if isinstance(message, str) else expected
    ]


def test_writer_message_buffer_reused_only_when_released() -> None:
    writer = Writer(client=True)
    tracemalloc.start()
    try:
        first = writer.message_buffer(b"a" * 100_000)
        assert first is not None
        origin = tracemalloc.get_object_traceback(first)
        del first
        # Nothing refers to it any more: the same object again (allocated on the line
        # above, not this one), resized, masked with a new key.
        second = writer.message_buffer(b"b" * 50)
        assert second is not None and len(second) == 50 + 6
        assert tracemalloc.get_object_traceback(second) == origin
    finally:
        tracemalloc.stop()
    view = memoryview(second)  # as a transport holding unsent data does (Python >= 3.12)
    kept = bytes(second)
    del second
    third = writer.message_buffer(b"c" * 50)
    assert third is not None and third is not view.obj
    assert bytes(view) == kept, "memory still referred to must not be overwritten"
    assert server().feed(bytes(view) + third) == [b"b" * 50, b"c" * 50]
    held, held_bytes = third, bytes(third)
    del third
    fourth = writer.message_buffer(b"d")
    assert fourth is not None and fourth is not held and bytes(held) == held_bytes
    assert server().feed(held + fourth) == [b"c" * 50, b"d"]


def test_writer_message_buffer_compressed_and_compact() -> None:
    writer = Writer(client=True, deflate=True, compress_threshold=100)
    assert writer.message_buffer(b"x" * 100) is None, "compressed: use message()"
    frame = writer.message_buffer(b"x" * 99)
    assert frame is not None and server(deflate=True).feed(frame) == [b"x" * 99]
    del frame
    assert writer.compact() >= 99 + 6, "the kept buffer counts"
    assert writer.compact() == 0
    plain = Writer(client=False)
    frame = plain.message_buffer(b"y" * 1000)
    assert frame is not None
    assert plain.compact() == len(frame)


def test_writer_message_buffer_large_not_kept() -> None:
    writer = Writer(client=False)
    big = writer.message_buffer(bytes(16 << 20))
    assert big is not None and len(big) == (16 << 20) + 10
    del big
    assert writer.compact() == 0, "a buffer over 16 MiB is not kept"
    with pytest.raises(TypeError):
        writer.message_buffer(123)  # type: ignore[arg-type]


@pytest.mark.parametrize("is_client", [True, False])
@pytest.mark.parametrize("fragment_size", [1, 3, 5, 100, 1000])
def test_round_trip_fragment_size(is_client: bool, fragment_size: int) -> None:
    message = "κόσμε" * 20  # 200 bytes of UTF-8
    encoded = message.encode()
    stream = Writer(client=is_client).message(message, fragment_size=fragment_size)
    frames = []
    rest = stream
    while rest:
        header = ref.parse_header(rest)
        assert header is not None
        assert (header.key is not None) is is_client
        frames.append(header)
        rest = rest[header.header_len + header.length :]
    count = -(-len(encoded) // fragment_size)
    assert len(frames) == count
    assert [h.opcode for h in frames] == [0x1] + [0x0] * (count - 1)
    assert [h.fin for h in frames] == [False] * (count - 1) + [True]
    assert all(h.length <= fragment_size for h in frames)
    assert Reader(client=not is_client).feed(stream) == [message]


def test_writer_frame() -> None:
    writer = Writer(client=False)
    assert writer.frame(0x1, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert writer.frame(0x0, b"lo") == bytes.fromhex("80026c6f")
    assert writer.frame(0x2, b"x", rsv1=True)[0] == 0xC2
    with pytest.raises(ValueError):
        writer.frame(0x3, b"")
    with pytest.raises(ValueError):
        writer.frame(0x9, b"", fin=False)
    with pytest.raises(ValueError):
        writer.frame(0x9, bytes(126))
    frame = Writer(client=True).frame(0x1, b"Hello")
    assert server().feed(frame) == ["Hello"]


@pytest.mark.parametrize("is_client", [True, False])
@pytest.mark.parametrize("data", ["", "héllo", b"\x00\xff", bytearray(b"ba"), "x" * 125])
def test_ping_pong(is_client: bool, data: str | bytes) -> None:
    writer = Writer(client=is_client)
    reader = Reader(client=not is_client)
    raw = data.encode() if isinstance(data, str) else bytes(data)
    assert reader.feed(writer.ping(data)) == [Ping(raw)]
    assert reader.feed(writer.pong(data)) == [Pong(raw)]
    assert reader.feed(writer.ping(memoryview(raw))) == [Ping(raw)]


def test_ping_pong_without_data() -> None:
    writer = Writer(client=False)
    assert writer.ping() == b"\x89\x00"
    assert writer.pong() == b"\x8a\x00"
    assert writer.ping(None) == b"\x89\x00"


@pytest.mark.parametrize("data", ["x" * 126, b"x" * 126, "é" * 63, bytes(1000)])
def test_ping_pong_too_long(data: str | bytes) -> None:
    writer = Writer(client=True)
    with pytest.raises(ValueError):
        writer.ping(data)
    with pytest.raises(ValueError):
        writer.pong(data)


def test_ping_type_error() -> None:
    with pytest.raises(TypeError):
        Writer(client=True).ping(123)  # type: ignore[arg-type]


@pytest.mark.parametrize("is_client", [True, False])
def test_close_round_trip(is_client: bool) -> None:
    cases: list[tuple[int | None, str, Close]] = [
        (None, "", Close(1005, "")),
        (1000, "", Close(1000, "")),
        (1001, "going away", Close(1001, "going away")),
        (4999, "κόσμε", Close(4999, "κόσμε")),
        (1000, "x" * 123, Close(1000, "x" * 123)),
    ]
    for code, reason, expected in cases:
        frame = Writer(client=is_client).close(code, reason)
        reader = Reader(client=not is_client)
        assert reader.feed(frame) == [expected]
        assert reader.closed


@pytest.mark.parametrize("code", [1005, 1006, 999, 1004, 1015, 0, 5000])
def test_close_invalid_codes(code: int) -> None:
    with pytest.raises(ValueError):
        Writer(client=False).close(code)
    with pytest.raises(ValueError):
        Writer(client=True).close(code, "reason")


def test_close_bad_arguments() -> None:
    writer = Writer(client=False)
    with pytest.raises(ValueError):
        writer.close(None, "reason without a code")
    with pytest.raises(ValueError):
        writer.close(1000, "x" * 124)


# --------------------------------------------------------------------------------------------
# permessage-deflate


def test_rfc7692_vectors_reader() -> None:
    # RFC 7692 §7.2.3.1 and §7.2.3.2: server-to-client frames, with context takeover.
    reader = client(deflate=True)
    assert reader.feed(bytes.fromhex("c107f248cdc9c90700")) == ["Hello"]
    assert reader.feed(bytes.fromhex("c105f200110000")) == ["Hello"]
    # Without deflate, the same frame is an error (RSV1).
    expect_error(client().feed(bytes.fromhex("c107f248cdc9c90700")), 1002)


def test_rfc7692_vectors_fragmented() -> None:
    # RFC 7692 §7.2.3.1: the compressed payload split into two frames.
    reader = client(deflate=True)
    assert reader.feed(bytes.fromhex("4103f248cd")) == []
    assert reader.feed(bytes.fromhex("8004c9c90700")) == ["Hello"]


def test_rfc7692_vectors_writer() -> None:
    writer = Writer(client=False, deflate=True)
    assert writer.message("Hello") == bytes.fromhex("c107f248cdc9c90700")
    assert writer.message("Hello") == bytes.fromhex("c105f200110000")


def test_rfc7692_no_context_takeover() -> None:
    writer = Writer(client=False, deflate=True, no_context_takeover=True)
    reader = client(deflate=True, no_context_takeover=True)
    for _ in range(3):
        frame = writer.message("Hello")
        assert frame == bytes.fromhex("c107f248cdc9c90700")
        assert reader.feed(frame) == ["Hello"]


def _messages() -> list[str | bytes]:
    text = "The quick brown fox jumps over the lazy dog. κόσμε. " * 50
    noise = bytes((i * 7919 + (i >> 3) * 31) % 256 for i in range(5000))
    return ["Hello", "", "Hello", text, noise, "κόσμε", text.encode(), b"\x00" * 70000, "end"]


@pytest.mark.parametrize("is_client", [True, False])
@pytest.mark.parametrize("bits", [8, 9, 10, 11, 12, 13, 14, 15])
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_deflate_round_trip(is_client: bool, bits: int, no_context_takeover: bool) -> None:
    writer = Writer(
        client=is_client,
        deflate=True,
        max_window_bits=bits,
        no_context_takeover=no_context_takeover,
    )
    reader = Reader(
        client=not is_client,
        deflate=True,
        max_window_bits=bits,
        no_context_takeover=no_context_takeover,
        max_size=None,
    )
    for message in _messages():
        frame = writer.message(message)
        header = ref.parse_header(frame)
        assert header is not None and header.rsv1
        assert (header.key is not None) is is_client
        assert reader.feed(frame) == [message]
        # And fragmented: RSV1 on the first frame only.
        stream = writer.message(message, fragment_size=100)
        first = ref.parse_header(stream)
        assert first is not None and first.rsv1
        rest = stream[first.header_len + first.length :]
        while rest:
            header = ref.parse_header(rest)
            assert header is not None and header.opcode == 0x0 and not header.rsv1
            rest = rest[header.header_len + header.length :]
        assert reader.feed(stream) == [message]


def test_deflate_smaller_peer_window() -> None:
    # A reader with a larger window than the peer's compressor reads it fine.
    writer = Writer(client=False, deflate=True, max_window_bits=9)
    reader = client(deflate=True, max_window_bits=15, max_size=None)
    for message in _messages():
        assert reader.feed(writer.message(message)) == [message]


def test_deflate_compresses() -> None:
    data = b"a" * 10000
    frame = Writer(client=False, deflate=True).message(data)
    assert len(frame) < 100
    assert client(deflate=True).feed(frame) == [data]


@pytest.mark.parametrize("is_client", [True, False])
def test_compress_threshold(is_client: bool) -> None:
    writer = Writer(client=is_client, deflate=True, compress_threshold=100)
    reader = Reader(client=not is_client, deflate=True)
    for size, compressed in [(0, False), (1, False), (99, False), (100, True), (5000, True)]:
        for fragment_size in (0, 10):
            message = "x" * size
            stream = writer.message(message, fragment_size=fragment_size)
            header = ref.parse_header(stream)
            assert header is not None
            assert header.rsv1 is compressed, size
            assert reader.feed(stream) == [message]


def test_deflate_interleaves_compressed_and_plain_messages() -> None:
    # Uncompressed messages leave the DEFLATE context alone (RFC 7692 §6.1).
    writer = Writer(client=False, deflate=True, compress_threshold=10)
    reader = client(deflate=True)
    hello = "Hello, world!"
    messages: list[str | bytes] = [hello, "short", hello, b"tiny", hello + "!"]
    for message in messages:
        assert reader.feed(writer.message(message)) == [message]


def test_deflate_control_frames_between_compressed_fragments() -> None:
    writer = Writer(client=True, deflate=True)
    stream = writer.message("Hello " * 100, fragment_size=4)
    header = ref.parse_header(stream)
    assert header is not None
    first_len = header.header_len + header.length
    reader = server(deflate=True)
    assert reader.feed(stream[:first_len]) == []
    assert reader.feed(writer.ping(b"in between")) == [Ping(b"in between")]
    assert reader.feed(stream[first_len:]) == ["Hello " * 100]


def test_deflate_invalid_arguments() -> None:
    for bits in (0, 7, 16, 255):
        with pytest.raises(ValueError):
            Writer(client=True, deflate=True, max_window_bits=bits)
        with pytest.raises(ValueError):
            Reader(client=True, deflate=True, max_window_bits=bits)
    with pytest.raises(ValueError):
        Writer(client=True, deflate=True, level=10)
    for level in range(10):
        writer = Writer(client=False, deflate=True, level=level)
        assert client(deflate=True).feed(writer.message("Hello" * 10)) == ["Hello" * 10]


def test_deflate_exactly_max_size() -> None:
    for limit in (0, 1, 100, 16383, 16384, 16385, 32768, 40000):
        # A fresh writer for each reader: with context takeover they go in pairs.
        frame = Writer(client=False, deflate=True).message(bytes(limit))
        assert client(deflate=True, max_size=limit).feed(frame) == [bytes(limit)]
        frame = Writer(client=False, deflate=True).message(bytes(limit + 1))
        expect_error(client(deflate=True, max_size=limit).feed(frame), 1009)


@pytest.mark.parametrize("with_writer", [True, False])
@pytest.mark.parametrize("chunk", [0, 1000, 7])
def test_decompression_bomb(with_writer: bool, chunk: int) -> None:
    bomb_size = 10 << 20
    if with_writer:
        frame = Writer(client=True, deflate=True).message(bytes(bomb_size))
    else:
        frame = cframe(0x2, deflate_raw(bytes(bomb_size)), rsv1=True)
    header = ref.parse_header(frame)
    assert header is not None and header.rsv1 and header.fin
    assert len(frame) < 64 * 1024, "a real bomb: tiny on the wire"
    reader = server(deflate=True, max_size=1 << 20)
    if chunk == 0:
        events = reader.feed(frame)
    else:
        events = []
        for i in range(0, len(frame), chunk):
            events = reader.feed(frame[i : i + chunk])
            if events:
                break
    expect_error(events, 1009)
    assert reader.failed


def test_decompression_bomb_fragmented() -> None:
    stream = Writer(client=False, deflate=True).message(bytes(10 << 20), fragment_size=512)
    reader = client(deflate=True, max_size=1 << 20)
    expect_error(reader.feed(stream), 1009)


def test_deflate_empty_message() -> None:
    # RFC 7692 §7.2.3.6: an empty message compresses to the single byte 0x00.
    writer = Writer(client=False, deflate=True)
    assert writer.message(b"") == bytes.fromhex("c20100")
    assert client(deflate=True).feed(bytes.fromhex("c20100")) == [b""]
    assert client(deflate=True).feed(bytes.fromhex("c100")) == [""]
    writer = Writer(client=False, deflate=True, no_context_takeover=True)
    reader = client(deflate=True, no_context_takeover=True)
    messages: list[str | bytes] = ["a", "", b"", "b", ""]
    for message in messages:
        assert reader.feed(writer.message(message)) == [message]


def test_deflate_empty_message_after_another() -> None:
    """With context takeover, an empty message after another one compresses to 0x00.

    zlib writes nothing for a second sync flush without new input; the writer must still
    produce the empty stored block of RFC 7692 §7.2.3.6.
    """
    writer = Writer(client=False, deflate=True)
    reader = client(deflate=True)
    messages: list[str | bytes] = ["Hello", "", b"", "Hello"]
    for message in messages:
        assert reader.feed(writer.message(message)) == [message]


def test_deflate_peer_ends_the_stream() -> None:
    # A peer may end the DEFLATE stream (BFINAL); the next message starts a new stream.
    def finished(data: bytes) -> bytes:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        return comp.compress(data) + comp.flush(zlib.Z_FINISH)

    reader = client(deflate=True)
    assert reader.feed(sframe(0x1, finished(b"Hello"), rsv1=True)) == ["Hello"]
    assert reader.feed(sframe(0x1, finished(b"World"), rsv1=True)) == ["World"]
    # A peer that leaves the tail in place is read as well.
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = comp.compress(b"tail") + comp.flush(zlib.Z_SYNC_FLUSH)
    assert client(deflate=True).feed(sframe(0x1, payload, rsv1=True)) == ["tail"]


def test_deflate_large_incompressible_message() -> None:
    # Over GIL_RELEASE_THRESHOLD on both sides, compressed and masked.
    data = bytes((i * 2654435761 >> 13) & 0xFF for i in range(200_000))
    writer = Writer(client=True, deflate=True)
    reader = server(deflate=True, max_size=None)
    assert reader.feed(writer.message(data)) == [data]
    assert reader.feed(writer.message(data, fragment_size=70_000)) == [data]


# --------------------------------------------------------------------------------------------
# Writer.fragment: a message streamed one fragment at a time, and compress=False


def stream_fragments(
    writer: Writer,
    pieces: Sequence[str | bytes],
    *,
    text: bool | None = None,
    compress: bool = True,
) -> list[bytes]:
    """Frames of ``pieces`` sent as websockets 17 sends an iterable: each piece with
    ``fin=False``, then an empty final continuation."""
    frames = [
        writer.fragment(piece, first=i == 0, fin=False, text=text, compress=compress)
        for i, piece in enumerate(pieces)
    ]
    frames.append(writer.fragment(b"", first=False, fin=True))
    return frames


@pytest.mark.parametrize("is_client", [True, False])
@pytest.mark.parametrize("deflate", [False, True])
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_writer_fragment_round_trip(
    is_client: bool, deflate: bool, no_context_takeover: bool
) -> None:
    settings = {"deflate": deflate, "no_context_takeover": no_context_takeover}
    writer = Writer(client=is_client, **settings)
    reader = Reader(client=not is_client, max_size=None, **settings)
    text = "caf\u00e9 \u20ac\U0001d11e " * 50
    utf8 = text.encode()
    # Pieces cut inside multi-byte sequences: the reader validates as the bytes come.
    cuts = [0, 4, 5, 13, 14, 15, len(utf8) - 2, len(utf8)]
    split = [utf8[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    big = bytes(range(256)) * 400
    for _ in range(2):
        assert not writer.in_message
        frames = stream_fragments(writer, split, text=True)
        headers = [ref.parse_header(frame) for frame in frames]
        assert [(h.opcode, h.fin, h.rsv1) for h in headers if h is not None] == [
            (0x1, False, deflate)
        ] + [(0x0, False, False)] * (len(split) - 1) + [(0x0, True, False)]
        assert all(frame[1] & 0x80 == (0x80 if is_client else 0) for frame in frames)
        events: list[Event] = []
        for frame in frames:
            events.extend(reader.feed(frame))
        assert events == [text]
        assert reader.feed(b"".join(stream_fragments(writer, [big, b"", big[:1000]]))) == [
            big + big[:1000]
        ]
        assert reader.feed(b"".join(stream_fragments(writer, ["abc", "d"], text=False))) == [
            b"abcd"
        ]
        assert reader.feed(writer.message("between")) == ["between"]
        # A single fragment that is the whole message, and control frames in between.
        assert reader.feed(writer.fragment("one", first=True, fin=True)) == ["one"]
        stream = writer.fragment(b"x", first=True, fin=False) + writer.ping(b"p")
        stream += writer.fragment(b"y", first=False, fin=True)
        assert reader.feed(stream) == [Ping(b"p"), b"xy"]


def test_writer_fragment_order_and_types() -> None:
    writer = Writer(client=False, deflate=True)
    with pytest.raises(ValueError, match="no fragmented message is in progress"):
        writer.fragment(b"x", first=False, fin=True)
    writer.fragment("x", first=True, fin=False)
    assert writer.in_message
    with pytest.raises(ValueError, match="a fragmented message is in progress"):
        writer.fragment(b"y", first=True, fin=True)
    with pytest.raises(ValueError, match="a fragmented message is in progress"):
        writer.message(b"y")
    with pytest.raises(ValueError, match="a fragmented message is in progress"):
        writer.message_buffer(b"y", compress=False)
    assert writer.binary_header(1, compress=False) is None
    with pytest.raises(TypeError):
        writer.fragment(3, first=False, fin=True)  # type: ignore[arg-type]
    assert writer.in_message
    # Bytes-like continuations of a text message (websockets checks uniform types itself).
    frame = writer.fragment(memoryview(b"yz"), first=False, fin=True)
    assert not writer.in_message
    assert ref.parse_header(frame) is not None
    assert client(deflate=True).feed(writer.fragment(b"\xff", first=True, fin=True)) == [b"\xff"]


def test_writer_fragment_compression_threshold() -> None:
    # The first fragment decides: a whole message below the threshold is not compressed; a
    # message in several fragments is, whatever their size.
    writer = Writer(client=False, deflate=True, compress_threshold=100)
    assert writer.fragment(b"tiny", first=True, fin=True) == sframe(0x2, b"tiny")
    assert writer.fragment(bytes(100), first=True, fin=True)[0] == 0xC2
    first = writer.fragment(b"a", first=True, fin=False)
    assert first[0] == 0x42
    # RFC 7692 7.2.1: a non-final fragment ends with the whole sync flush.
    assert first.endswith(b"\x00\x00\xff\xff")
    writer.fragment(b"", first=False, fin=True)
    plain = writer.fragment(bytes(500), first=True, fin=False, compress=False)
    assert plain == sframe(0x2, bytes(500), fin=False)
    assert writer.fragment(b"b", first=False, fin=True, compress=True) == sframe(0x0, b"b")


def payload(frame: bytes) -> bytes:
    """The unmasked payload of the single frame ``frame``."""
    header = ref.parse_header(frame)
    assert header is not None and len(frame) == header.header_len + header.length
    data = frame[header.header_len :]
    return data if header.key is None else ref.mask(data, header.key)


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_writer_compress_false(no_context_takeover: bool) -> None:
    """websockets issue 538: a message sent uncompressed has RSV1 clear and leaves the
    compressor alone, so the compressed messages around it decode."""
    settings = {"deflate": True, "no_context_takeover": no_context_takeover}
    writer = Writer(client=True, **settings)
    twin = Writer(client=True, **settings)
    reader = Reader(client=False, **settings)
    for i in range(3):
        message = f"message {i} " * 20
        compressed = writer.message(message)
        header = ref.parse_header(compressed)
        assert header is not None and header.rsv1
        # The same compressed payload as a writer that never sent the others.
        assert payload(compressed) == payload(twin.message(message))
        plain = [
            writer.message(message, compress=False),
            writer.message(message.encode(), compress=False, fragment_size=7),
            bytes(writer.message_buffer(b"buffer", compress=False) or b""),
            b"".join(stream_fragments(writer, [b"s", b"t"], compress=False)),
        ]
        for frame in plain:
            assert not frame[0] & 0x40
        assert reader.feed(compressed + b"".join(plain)) == [
            message,
            message,
            message.encode(),
            b"buffer",
            b"st",
        ]
    server_writer = Writer(client=False, deflate=True)
    assert server_writer.binary_header(10) is None
    assert server_writer.binary_header(10, compress=False) == bytes.fromhex("820a")


@pytest.mark.parametrize("is_client", [True, False])
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_writer_fragment_interop_websockets(is_client: bool, no_context_takeover: bool) -> None:
    """websockets' own Sans-I/O protocol with its PerMessageDeflate decodes the fragments."""
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Frame, Opcode
    from websockets.protocol import Protocol, Side

    peer = Protocol(Side.SERVER if is_client else Side.CLIENT, max_size=None)
    peer.extensions = [PerMessageDeflate(no_context_takeover, False, 15, 15)]
    writer = Writer(client=is_client, deflate=True, no_context_takeover=no_context_takeover)

    def received(data: bytes) -> list[tuple[Opcode, bytes]]:
        peer.receive_data(data)
        messages: list[tuple[Opcode, bytes]] = []
        opcode, parts = Opcode.CONT, list[bytes]()
        for frame in peer.events_received():
            assert isinstance(frame, Frame) and not frame.rsv1, "decoded"
            if frame.opcode is not Opcode.CONT:
                opcode, parts = frame.opcode, []
            parts.append(bytes(frame.data))
            if frame.fin:
                messages.append((opcode, b"".join(parts)))
        return messages

    text = "h\u00e9llo w\u00f6rld " * 300
    utf8 = text.encode()
    for _ in range(3):
        pieces = [utf8[:1], utf8[1:2], utf8[2:5000], b"", utf8[5000:]]
        stream = b"".join(stream_fragments(writer, pieces, text=True))
        assert stream[0] == 0x41, "compressed text, FIN clear"
        assert received(stream) == [(Opcode.TEXT, utf8)]
        stream = writer.message(b"whole") + writer.message(b"plain", compress=False)
        assert received(stream) == [(Opcode.BINARY, b"whole"), (Opcode.BINARY, b"plain")]
        stream = b"".join(stream_fragments(writer, [b"plain", b" stream"], compress=False))
        assert received(stream) == [(Opcode.BINARY, b"plain stream")]
        assert received(writer.fragment(b"only", first=True, fin=True)) == [
            (Opcode.BINARY, b"only")
        ]


def test_writer_rejects_lone_surrogates() -> None:
    writer = Writer(client=False)
    with pytest.raises(UnicodeEncodeError):
        writer.message("\ud800")
    with pytest.raises(UnicodeEncodeError):
        writer.ping("\udfff")


def test_reader_feed_borrows_any_buffer() -> None:
    """bytes, a bytearray, contiguous and strided memoryviews all read the same; a buffer
    changed after feed() does not change what feed() returned."""
    stream = ref.encode_frame(0x1, b"Hello") + ref.encode_frame(0x2, b"\x00\x01" * 40_000)
    expected = ["Hello", b"\x00\x01" * 40_000]
    shared = bytearray(len(stream) + 10)
    shared[: len(stream)] = stream
    inputs: list[object] = [
        stream,
        bytearray(stream),
        memoryview(shared)[: len(stream)],
        memoryview(bytes(b for pair in zip(stream, stream, strict=True) for b in pair))[::2],
    ]
    for data in inputs:
        events = Reader(client=True).feed(data)  # type: ignore[arg-type]
        assert events == expected
    events = Reader(client=True).feed(memoryview(shared)[: len(stream)])
    shared[:] = bytes(len(shared))
    assert events == expected
    assert Reader(client=True).feed(bytearray()) == []
    with pytest.raises(TypeError, match="expected a bytes-like object, got int"):
        Reader(client=True).feed(3)  # type: ignore[arg-type]


def test_shared_message_is_encoded_once_per_encoding() -> None:
    data = b"shared by many connections, " * 40
    message = _core.SharedMessage(data)
    assert len(message) == len(data) and message.encodings == 0
    plain = [Writer(client=False) for _ in range(2)]
    deflating = [
        Writer(client=False, deflate=True, no_context_takeover=nct) for nct in (False, True)
    ]
    small = Writer(client=False, deflate=True, max_window_bits=10)
    frames = [w.shared(message) for w in plain + deflating + [small]]
    assert frames[0] is frames[1] and frames[2] is frames[3]
    assert len({id(f) for f in frames}) == 3 and message.encodings == 3
    assert frames[0] == sframe(0x2, data)
    assert frames[2][0] == 0xC2 and len(frames[2]) < len(data) // 5  # FIN, RSV1, binary
    # compress=False and a message under the threshold share the plain frame.
    assert deflating[0].shared(message, compress=False) is frames[0]
    assert Writer(client=False, deflate=True, compress_threshold=10**6).shared(message) is frames[0]
    assert message.encodings == 3
    # Every peer reads its frame, and each writer's own messages after it still decode.
    for writer, frame, nct in [(deflating[0], frames[2], False), (deflating[1], frames[3], True)]:
        reader = client(deflate=True, no_context_takeover=nct)
        frame += writer.message(data) + writer.shared(message) + writer.message(data[::-1])
        assert reader.feed(frame) == [data, data, data, data[::-1]]


def test_shared_message_text_and_clients() -> None:
    assert Writer(client=False).shared(_core.SharedMessage("é")) == sframe(0x1, "é".encode())
    text = _core.SharedMessage(b'{"a": 1}', text=True)
    assert Writer(client=False).shared(text) == sframe(0x1, b'{"a": 1}')
    binary = _core.SharedMessage("x", text=False)
    assert Writer(client=False).shared(binary) == sframe(0x2, b"x")
    # A client masks each frame with its own key: nothing shared.
    message = _core.SharedMessage(b"masked " * 50)
    writer = Writer(client=True, deflate=True)
    first, second = writer.shared(message), writer.shared(message)
    assert first != second and message.encodings == 0
    assert server(deflate=True).feed(first + second) == [b"masked " * 50] * 2
    with pytest.raises(TypeError):
        _core.SharedMessage(42)  # type: ignore[arg-type]


def test_shared_message_refused_while_fragmenting() -> None:
    writer = Writer(client=False)
    writer.fragment("half", first=True, fin=False)
    with pytest.raises(ValueError, match="fragmented message is in progress"):
        writer.shared(_core.SharedMessage("x"))
