from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from wsrs import _core
from wsrs.datastructures import Headers, token_re, value_re
from wsrs.exceptions import InvalidMessage, SecurityError
from wsrs.http11 import (
    MAX_BODY,
    MAX_HEAD_SIZE,
    MAX_HEADERS,
    MAX_LINE,
    Request,
    Response,
    error_response,
    parse_request,
    parse_response,
)


M = TypeVar("M")
Parser = Callable[[bytes | bytearray], "tuple[M, int] | None"]

# A masked text frame, as a client would send right after its request.
FRAMES = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"

# RFC 6455 §1.3.
CLIENT_HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

SERVER_HANDSHAKE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)


def parse_fed(parse: Parser[M], data: bytes, *, step: int = 1, trailing: bytes = FRAMES) -> M:
    """Parse a message fed whole, in pieces of ``step`` bytes and followed by trailing data."""
    whole = parse(data)
    assert whole is not None
    message, size = whole
    assert size == len(data)
    assert parse(bytearray(data)) == whole
    # Trailing data is left for the caller.
    assert parse(data + trailing) == (message, len(data))
    # Incomplete data is never enough.
    buf = bytearray()
    for start in range(0, len(data) - 1, step):
        buf += data[start : start + step]
        if len(buf) < len(data):
            assert parse(buf) is None
    return message


def assert_rejected(
    parse: Parser[Any],
    data: bytes,
    exc_type: type[Exception],
    message: str,
    *,
    step: int = 1,
) -> int:
    """Check that parsing fails fed whole and in pieces; return the size that failed first."""
    with pytest.raises(exc_type) as raised:
        parse(data)
    assert str(raised.value) == message
    buf = bytearray()
    for start in range(0, len(data), step):
        buf += data[start : start + step]
        try:
            result = parse(buf)
        except exc_type as exc:
            assert str(exc) == message
            return len(buf)
        assert result is None
    raise AssertionError("parsing in pieces didn't fail")  # pragma: no cover


START_LINE_ERRORS = (
    "invalid HTTP request line",
    "unsupported HTTP method",
    "unsupported HTTP version",
    "invalid HTTP request target",
    "invalid HTTP status code",
    "invalid HTTP reason phrase",
)


def expected_failure_point(data: bytes, message: str) -> int:
    """Where parsing in pieces must fail: a bad start line as soon as it is complete (junk
    is refused without waiting for a head that may never end), anything else once the head
    is."""
    if message.startswith(START_LINE_ERRORS):
        return data.index(b"\r\n") + 2
    return data.index(b"\r\n\r\n") + 4


def test_parse_request() -> None:
    request = parse_fed(parse_request, CLIENT_HANDSHAKE)
    assert request.method == "GET"
    assert request.path == "/chat"
    assert request.headers["Host"] == "server.example.com"
    assert request.headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert request.headers["Sec-WebSocket-Protocol"] == "chat, superchat"
    assert len(request.headers) == 7


def test_parse_request_round_trip() -> None:
    result = parse_request(CLIENT_HANDSHAKE)
    assert result is not None
    assert result[0].serialize() == CLIENT_HANDSHAKE


def test_parse_request_strips_whitespace_and_decodes_latin_1() -> None:
    data = b"GET /?q=1 HTTP/1.1\r\nHost:example.com\r\nX: \t caf\xe9 x \t\r\nY:\r\n\r\n"
    request = parse_fed(parse_request, data)
    assert request.path == "/?q=1"
    assert list(request.headers.raw_items()) == [
        ("Host", "example.com"),
        ("X", "caf\xe9 x"),
        ("Y", ""),
    ]


def test_parse_request_without_headers() -> None:
    request = parse_fed(parse_request, b"GET / HTTP/1.1\r\n\r\n")
    assert request == Request("GET", "/", Headers())


def test_parse_request_with_empty_body() -> None:
    request = parse_fed(parse_request, b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert request.headers["Content-Length"] == "0"


def test_parse_request_at_limits() -> None:
    # A line of MAX_LINE bytes and MAX_HEADERS headers are accepted.
    long_line = b"X-Long: " + b"x" * (MAX_LINE - 8) + b"\r\n"
    headers = long_line + b"X: 1\r\n" * (MAX_HEADERS - 1)
    data = b"GET / HTTP/1.1\r\n" + headers + b"\r\n"
    request = parse_fed(parse_request, data, step=101)
    assert len(request.headers.get_all("X")) == MAX_HEADERS - 1
    # A line of MAX_LINE bytes followed by a CR without its LF yet is still incomplete.
    assert parse_request(b"GET / HTTP/1.1\r\n" + long_line[:-1]) is None


def test_parse_request_head_at_size_limit() -> None:
    start = b"GET / HTTP/1.1\r\n"
    filler = b"X: " + b"x" * (MAX_LINE - 3) + b"\r\n"
    count, rest = divmod(MAX_HEAD_SIZE - len(start) - 2, len(filler))
    last = b"Y: " + b"y" * (rest - 5) + b"\r\n"
    data = start + filler * count + last + b"\r\n"
    assert len(data) == MAX_HEAD_SIZE
    parse_fed(parse_request, data, step=997)
    # One more byte is too much.
    data = start + filler * count + b"Y" + last + b"\r\n"
    assert_rejected(
        parse_request,
        data,
        SecurityError,
        f"HTTP head too large: expected at most {MAX_HEAD_SIZE} bytes",
        step=997,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET /\r\n\r\n", "invalid HTTP request line: GET /"),
        (b"\r\n\r\n", "invalid HTTP request line: "),
        (b"POST / HTTP/1.1\r\n\r\n", "unsupported HTTP method: POST"),
        (b"get / HTTP/1.1\r\n\r\n", "unsupported HTTP method: get"),
        (b"GET / HTTP/1.0\r\n\r\n", "unsupported HTTP version: HTTP/1.0"),
        (b"GET / HTTP/2\r\n\r\n", "unsupported HTTP version: HTTP/2"),
        (b"GET / HTTP/1.1 \r\n\r\n", "unsupported HTTP version: HTTP/1.1 "),
        (b"GET /a b HTTP/1.1\r\n\r\n", "unsupported HTTP version: b HTTP/1.1"),
        (b"GET  HTTP/1.1\r\n\r\n", "invalid HTTP request target: "),
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", "invalid HTTP request target: /caf\xe9"),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", "invalid HTTP request target: /\x7f"),
        (b"GET / HTTP/1.1\r\nHost\r\n\r\n", "invalid HTTP header line: Host"),
        (b"GET / HTTP/1.1\r\n: x\r\n\r\n", "invalid HTTP header name: "),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "invalid HTTP header name: Host "),
        (b"GET / HTTP/1.1\r\nX(y): x\r\n\r\n", "invalid HTTP header name: X(y)"),
        (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", "invalid HTTP header value: a\x00b"),
        (b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "invalid HTTP header value: a\rb"),
        (b"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", "invalid HTTP header value: a\x7f"),
        (
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            "obsolete line folding isn't supported:  b",
        ),
        (
            b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n",
            "obsolete line folding isn't supported: \tb",
        ),
        (
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "transfer codings aren't supported in a handshake request",
        ),
        (
            b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "a handshake request can't have a body",
        ),
        (
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n",
            "a handshake request can't have a body",
        ),
    ],
)
def test_parse_invalid_request(data: bytes, message: str) -> None:
    size = assert_rejected(parse_request, data, InvalidMessage, message)
    # The head is complete when these errors are detected.
    assert size == expected_failure_point(data, message)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\n\n",
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\n",
    ],
)
def test_parse_request_with_bare_lf(data: bytes) -> None:
    size = assert_rejected(
        parse_request, data, InvalidMessage, "HTTP line ends with LF instead of CRLF"
    )
    # The error is detected at the first bare LF, without waiting for the end of the head.
    assert size == data.replace(b"\r\n", b"__").index(b"\n") + 1


def test_parse_request_with_bare_lf_before_the_end() -> None:
    with pytest.raises(InvalidMessage, match="LF instead of CRLF"):
        parse_request(b"GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\r\n")


def test_parse_request_with_line_too_long() -> None:
    message = f"HTTP line too long: expected at most {MAX_LINE} bytes"
    data = b"GET /" + b"x" * (MAX_LINE - 13) + b" HTTP/1.1\r\n\r\n"
    size = assert_rejected(parse_request, data, SecurityError, message)
    # The error is detected as soon as the line exceeds the limit, before its CRLF.
    assert size == MAX_LINE + 1


def test_parse_request_with_long_line_rejected_before_crlf() -> None:
    message = f"HTTP line too long: expected at most {MAX_LINE} bytes"
    # A peer that sends 1 MB without a newline is rejected after MAX_LINE + 1 bytes.
    with pytest.raises(SecurityError, match="line too long"):
        parse_request(b"G" * 2**20)
    data = b"GET / HTTP/1.1\r\nX-Long: " + b"x" * MAX_LINE
    buf = bytearray(data[: 16 + MAX_LINE])
    assert parse_request(buf) is None
    buf += data[16 + MAX_LINE : 17 + MAX_LINE]
    with pytest.raises(SecurityError) as raised:
        parse_request(buf)
    assert str(raised.value) == message


def test_parse_request_with_complete_line_too_long() -> None:
    # A complete line that is too long, followed by more headers.
    long_line = b"X-Long: " + b"x" * (MAX_LINE - 7) + b"\r\n"
    data = b"GET / HTTP/1.1\r\n" + long_line + b"Host: x\r\n\r\n"
    with pytest.raises(SecurityError, match="line too long"):
        parse_request(data)
    assert parse_request(data[:-2]) is None


def test_parse_request_with_too_many_headers() -> None:
    message = f"too many HTTP headers: expected at most {MAX_HEADERS}"
    data = b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n"
    size = assert_rejected(parse_request, data, SecurityError, message)
    # The error is detected before the end of the head.
    assert size < len(data)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"", "request line"),
        (b"GET / HTTP/1.1", "request line"),
        (b"GET / HTTP/1.1\r", "request line"),
        (b"GET / HTTP/1.1\r\n", "headers"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r", "headers"),
    ],
)
def test_parse_request_at_eof(data: bytes, where: str) -> None:
    assert parse_request(data) is None
    with pytest.raises(InvalidMessage) as raised:
        parse_request(data, eof=True)
    assert str(raised.value) == f"connection closed while reading HTTP {where}"


def test_parse_complete_request_at_eof() -> None:
    assert parse_request(CLIENT_HANDSHAKE, eof=True) == parse_request(CLIENT_HANDSHAKE)


def test_serialize_request() -> None:
    request = Request("GET", "/chat?room=1", Headers(Host="example.com"))
    assert request.serialize() == b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("G ET", "/", "invalid HTTP method: 'G ET'"),
        ("", "/", "invalid HTTP method: ''"),
        ("GET", "/a b", "invalid HTTP request target: '/a b'"),
        ("GET", "", "invalid HTTP request target: ''"),
        ("GET", "/\r\nX: 1", "invalid HTTP request target: '/\\r\\nX: 1'"),
        ("GET", "/caf\xe9", "invalid HTTP request target: '/caf\xe9'"),
    ],
)
def test_serialize_invalid_request(method: str, path: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Request(method, path, Headers()).serialize()
    assert str(raised.value) == message


# Response.


def test_parse_response() -> None:
    response = parse_fed(parse_response, SERVER_HANDSHAKE)
    assert response.status_code == 101
    assert response.reason_phrase == "Switching Protocols"
    assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert response.body is None


def test_parse_response_round_trip() -> None:
    result = parse_response(SERVER_HANDSHAKE)
    assert result is not None
    assert result[0].serialize() == SERVER_HANDSHAKE


def test_parse_response_without_reason_phrase() -> None:
    response = parse_fed(parse_response, b"HTTP/1.1 101\r\n\r\n")
    assert (response.status_code, response.reason_phrase) == (101, "")
    response = parse_fed(parse_response, b"HTTP/1.1 101 \r\n\r\n")
    assert (response.status_code, response.reason_phrase) == (101, "")


def test_parse_response_with_latin_1_reason_phrase() -> None:
    response = parse_fed(parse_response, b"HTTP/1.1 101 Prot\xf4coles \tchang\xe9s\r\n\r\n")
    assert response.reason_phrase == "Prot\xf4coles \tchang\xe9s"


@pytest.mark.parametrize("status_code", [100, 101, 199, 204, 304])
def test_parse_response_without_body(status_code: int) -> None:
    # These responses never have a body, whatever their headers say.
    data = f"HTTP/1.1 {status_code} OK\r\nContent-Length: 5\r\n\r\n".encode()
    response = parse_fed(parse_response, data)
    assert response.status_code == status_code
    assert response.body is None


def test_parse_response_with_content_length() -> None:
    data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nforbidden\n"
    response = parse_fed(parse_response, data)
    assert response == Response(403, "Forbidden", Headers({"Content-Length": "10"}), b"forbidden\n")


def test_parse_response_with_empty_body() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    response = parse_fed(parse_response, data)
    assert response.body == b""


def test_parse_response_body_until_eof() -> None:
    data = b"HTTP/1.1 500 Internal Server Error\r\n\r\nsomething went wrong\n"
    for end in range(len(data) + 1):
        assert parse_response(data[:end]) is None
    result = parse_response(data, eof=True)
    assert result is not None
    assert result == (Response(500, "Internal Server Error", Headers(), data[-21:]), len(data))
    result = parse_response(data[:-21], eof=True)
    assert result is not None
    assert result[0].body == b""


def test_parse_response_body_at_size_limit() -> None:
    head = b"HTTP/1.1 200 OK\r\n\r\n"
    result = parse_response(head + b"x" * MAX_BODY, eof=True)
    assert result is not None
    assert result[0].body == b"x" * MAX_BODY
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % MAX_BODY
    result = parse_response(head + b"x" * MAX_BODY)
    assert result is not None
    assert result[1] == len(head) + MAX_BODY


def test_parse_response_body_too_large() -> None:
    head = b"HTTP/1.1 200 OK\r\n\r\n"
    with pytest.raises(SecurityError) as raised:
        parse_response(head + b"x" * (MAX_BODY + 1))
    assert str(raised.value) == f"body too large: over {MAX_BODY} bytes"


def test_parse_response_content_length_too_large() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
    message = f"body too large: {MAX_BODY + 1} bytes, expected at most {MAX_BODY}"
    assert_rejected(parse_response, data, SecurityError, message)


def test_parse_response_body_at_eof() -> None:
    data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nforbid"
    assert parse_response(data) is None
    with pytest.raises(InvalidMessage) as raised:
        parse_response(data, eof=True)
    assert str(raised.value) == "connection closed while reading HTTP body"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/1.1\r\n\r\n", "invalid HTTP status code: "),
        (b"\r\n\r\n", "unsupported HTTP version: "),
        (b"HTTP/1.0 101 OK\r\n\r\n", "unsupported HTTP version: HTTP/1.0"),
        (b"HTTP/2 101 OK\r\n\r\n", "unsupported HTTP version: HTTP/2"),
        (b"HTTP/1.1  101 OK\r\n\r\n", "invalid HTTP status code: "),
        (b"HTTP/1.1 1O1 OK\r\n\r\n", "invalid HTTP status code: 1O1"),
        (b"HTTP/1.1 099 OK\r\n\r\n", "invalid HTTP status code: 099"),
        (b"HTTP/1.1 1010 OK\r\n\r\n", "invalid HTTP status code: 1010"),
        (b"HTTP/1.1 +10 OK\r\n\r\n", "invalid HTTP status code: +10"),
        (b"HTTP/1.1 101 O\x00K\r\n\r\n", "invalid HTTP reason phrase: O\x00K"),
        (b"HTTP/1.1 101 OK\r\nX\r\n\r\n", "invalid HTTP header line: X"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "transfer codings aren't supported in a handshake response",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "invalid Content-Length: x",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "invalid Content-Length: -1",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            "invalid Content-Length: 1, 1",
        ),
    ],
)
def test_parse_invalid_response(data: bytes, message: str) -> None:
    size = assert_rejected(parse_response, data, InvalidMessage, message)
    assert size == expected_failure_point(data, message)


def test_parse_response_limits() -> None:
    data = b"HTTP/1.1 101 OK\r\n" + b"X: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n"
    with pytest.raises(SecurityError, match="too many HTTP headers"):
        parse_response(data)
    with pytest.raises(SecurityError, match="line too long"):
        parse_response(b"HTTP/1.1 101 " + b"x" * MAX_LINE)
    with pytest.raises(InvalidMessage, match="LF instead of CRLF"):
        parse_response(b"HTTP/1.1 101 OK\n")


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"", "status line"),
        (b"HTTP/1.1 101 Switching Protocols\r", "status line"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", "headers"),
    ],
)
def test_parse_response_at_eof(data: bytes, where: str) -> None:
    assert parse_response(data) is None
    with pytest.raises(InvalidMessage) as raised:
        parse_response(data, eof=True)
    assert str(raised.value) == f"connection closed while reading HTTP {where}"


def test_serialize_response() -> None:
    response = Response(101, "Switching Protocols", Headers(Upgrade="websocket"))
    assert response.serialize() == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    )
    response = Response(200, "D\xe9j\xe0 vu", Headers(), b"body")
    assert response.serialize() == b"HTTP/1.1 200 D\xe9j\xe0 vu\r\n\r\nbody"


@pytest.mark.parametrize(
    ("status_code", "reason_phrase", "message"),
    [
        (99, "OK", "invalid HTTP status code: 99"),
        (1000, "OK", "invalid HTTP status code: 1000"),
        (200, "O\r\nX: 1", "invalid HTTP reason phrase: 'O\\r\\nX: 1'"),
        (200, "\u20ac", "invalid HTTP reason phrase: '\u20ac'"),
    ],
)
def test_serialize_invalid_response(status_code: int, reason_phrase: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Response(status_code, reason_phrase, Headers()).serialize()
    assert str(raised.value) == message


# Error responses.


def test_error_response() -> None:
    response = error_response(http.HTTPStatus.BAD_REQUEST)
    assert response.serialize() == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 16\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"400 Bad Request\n"
    )
    assert parse_response(response.serialize()) == (response, len(response.serialize()))


def test_error_response_with_text_and_headers() -> None:
    response = error_response(
        426, "Sec-WebSocket-Version \u2260 13\n", {"Sec-WebSocket-Version": "13"}
    )
    assert response.status_code == 426
    assert response.reason_phrase == "Upgrade Required"
    assert response.body == "Sec-WebSocket-Version \u2260 13\n".encode()
    assert list(response.headers.raw_items()) == [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", "29"),
        ("Connection", "close"),
        ("Sec-WebSocket-Version", "13"),
    ]


def test_error_response_with_unknown_status() -> None:
    with pytest.raises(ValueError):
        error_response(599)


def test_junk_is_refused_at_its_first_line() -> None:
    with pytest.raises(InvalidMessage, match="invalid HTTP request line: HELO relay.invalid"):
        parse_request(b"HELO relay.invalid\r\n")
    with pytest.raises(InvalidMessage, match="unsupported HTTP version: 220"):
        parse_response(b"220 smtp.invalid ESMTP Postfix\r\n")
    assert parse_response(b"HTTP/1.1 101 Switching Protocols\r\n") is None
    assert parse_request(b"GET / HTTP/1.1\r\n") is None


def test_received_header_fields_follow_the_grammar_of_written_ones() -> None:
    # Received header lines are checked in Rust (wsrs._core.parse_header_fields), headers
    # wsrs writes against the regular expressions of wsrs.datastructures: both agree on
    # every byte, in names and in values.
    for byte in range(256):
        char = chr(byte)
        name_ok = token_re.fullmatch(f"X{char}Y") is not None
        value_ok = value_re.fullmatch(f"a{char}b") is not None
        try:
            _core.parse_header_fields([b"X" + bytes([byte]) + b"Y: v"])
        except ValueError as exc:
            assert not name_ok and exc.args[0] in ("name", "line"), byte
        else:
            assert name_ok or byte == ord(":"), byte
        try:
            by_name, fields = _core.parse_header_fields([b"X: a" + bytes([byte]) + b"b"])
        except ValueError as exc:
            assert not value_ok and exc.args == ("value", b"a" + bytes([byte]) + b"b"), byte
        else:
            assert value_ok, byte
            assert fields == [("X", f"a{char}b")] and by_name == {"x": [f"a{char}b"]}


def test_header_fields_keep_repeated_names_in_order() -> None:
    by_name, fields = _core.parse_header_fields([b"A: 1", b"b: 2", b"a: 3", b"Caf: \xe9 "])
    assert fields == [("A", "1"), ("b", "2"), ("a", "3"), ("Caf", "\xe9")]
    assert by_name == {"a": ["1", "3"], "b": ["2"], "caf": ["\xe9"]}
    headers = Headers._parsed(by_name, fields)
    assert headers.get_all("A") == ["1", "3"] and list(headers.raw_items()) == fields
    with pytest.raises(TypeError):
        _core.parse_header_fields(["not bytes"])  # type: ignore[list-item]
