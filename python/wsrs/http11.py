"""Parse and serialize the HTTP/1.1 messages of the opening handshake, without I/O.

The parsers work on the receive buffer as it is:

- :func:`parse_request` and :func:`parse_response` take everything received so far;
- they return ``None`` when more data is needed, or the message and the number of bytes it
  used; the caller drops those bytes and keeps the rest, which are the first WebSocket frames;
- they raise :exc:`~wsrs.exceptions.InvalidMessage` on malformed input and
  :exc:`~wsrs.exceptions.SecurityError` as soon as a limit is exceeded, even if the message
  is incomplete: a peer sending megabytes without a newline is rejected after ``MAX_LINE``.

Parsers keep no state between calls. Before the head is complete, each call only runs a few
scans of the buffer in C (``find``, ``count``), so feeding a head byte by byte stays cheap.

The grammar is RFC 7230 (HTTP/1.1 message syntax), applied strictly: CRLF line endings, no
obsolete line folding, only ``GET`` requests and ``HTTP/1.1``. WebSocket software implements
HTTP/1.1 strictly, so there is little need for lenient parsing.
"""

from __future__ import annotations

import dataclasses
import http
import re

from . import _core
from .datastructures import (
    Headers,
    HeadersLike,
    MultipleValuesError,
    bvalue_re,
    token_re,
    value_re,
)
from .exceptions import InvalidMessage, SecurityError


__all__ = [
    "MAX_BODY",
    "MAX_HEADERS",
    "MAX_HEAD_SIZE",
    "MAX_LINE",
    "Headers",
    "HeadersLike",
    "MultipleValuesError",
    "Request",
    "Response",
    "error_response",
    "parse_request",
    "parse_response",
]

MAX_LINE = 8192
"""Maximum length of the request line, status line or a header line, without CRLF.

8 KiB is the most common default of popular HTTP servers.
"""

MAX_HEADERS = 128
"""Maximum number of header lines in a request or response."""

MAX_HEAD_SIZE = 65536
"""Maximum size of the start line and headers together, including every CRLF.

``MAX_HEADERS`` lines of ``MAX_LINE`` bytes would allow 1 MiB. Common servers accept 16 to
64 KiB of headers, and a handshake needs well under 1 KiB plus cookies.
"""

MAX_BODY = 2**20
"""Maximum size of a response body.

Bodies exist only to read the error message of a server that rejects the handshake; they
aren't meant for file transfers.
"""


def _d(value: bytes) -> str:
    """Decode bytes for an error message, escaping what isn't UTF-8."""
    return value.decode(errors="backslashreplace")


# RFC 7230 §5.3: request-target, here in origin-form or absolute-form; both are made of
# visible ASCII characters.
_target_re = re.compile(rb"[\x21-\x7e]+")

# RFC 7230 §3.1.2: status-code = 3DIGIT; 1xx is the smallest class (RFC 7231 §6).
_status_re = re.compile(rb"[1-9][0-9][0-9]")

# RFC 7230 §3.3.2: Content-Length = 1*DIGIT
_length_re = re.compile(r"[0-9]+")


@dataclasses.dataclass
class Request:
    """Hold an HTTP/1.1 request of the opening handshake.

    The request has no body: RFC 6455 §4.1 handshakes are ``GET`` requests.
    """

    method: str
    """Request method, always ``"GET"`` when parsed."""
    path: str
    """Request target, e.g. ``"/chat?room=1"``, neither percent-decoded nor validated."""
    headers: Headers
    """Request headers."""

    def serialize(self) -> bytes:
        """Serialize the request line and headers.

        Returns:
            The request, ready to send.

        Raises:
            ValueError: If the method isn't a token or the path isn't visible ASCII.
        """
        if not token_re.fullmatch(self.method):
            raise ValueError(f"invalid HTTP method: {self.method!r}")
        if not (self.path.isascii() and _target_re.fullmatch(self.path.encode())):
            raise ValueError(f"invalid HTTP request target: {self.path!r}")
        # RFC 7230 §3.1.1: request-line = method SP request-target SP HTTP-version CRLF
        request_line = f"{self.method} {self.path} HTTP/1.1\r\n".encode()
        return request_line + self.headers.serialize()


@dataclasses.dataclass
class Response:
    """Hold an HTTP/1.1 response of the opening handshake."""

    status_code: int
    """Status code, e.g. 101."""
    reason_phrase: str
    """Reason phrase, e.g. ``"Switching Protocols"``."""
    headers: Headers
    """Response headers."""
    body: bytes | None = None
    """Response body; ``None`` for 1xx, 204 and 304 responses, which can't have one."""

    def serialize(self) -> bytes:
        """Serialize the status line, headers and body.

        Returns:
            The response, ready to send.

        Raises:
            ValueError: If the status code doesn't have 3 digits or the reason phrase contains
                forbidden characters.
        """
        if not 100 <= self.status_code <= 999:
            raise ValueError(f"invalid HTTP status code: {self.status_code}")
        if not value_re.fullmatch(self.reason_phrase):
            raise ValueError(f"invalid HTTP reason phrase: {self.reason_phrase!r}")
        # RFC 7230 §3.1.2: status-line = HTTP-version SP status-code SP reason-phrase CRLF
        status_line = f"HTTP/1.1 {self.status_code} {self.reason_phrase}\r\n"
        response = status_line.encode("latin-1") + self.headers.serialize()
        if self.body is not None:
            response += self.body
        return response


def error_response(status: int, text: str | None = None, headers: HeadersLike = ()) -> Response:
    """Build a plain-text HTTP error response that closes the connection.

    Args:
        status: Status code, e.g. ``http.HTTPStatus.BAD_REQUEST``; it must be a known one.
        text: Body, encoded as UTF-8; by default, the status code and its reason phrase.
        headers: Headers added after ``Content-Type``, ``Content-Length`` and ``Connection``,
            e.g. ``{"Sec-WebSocket-Version": "13"}`` for a ``426 Upgrade Required``.

    Returns:
        The response.

    Raises:
        ValueError: If ``status`` isn't a known HTTP status code.
    """
    status = http.HTTPStatus(status)
    if text is None:
        text = f"{status.value} {status.phrase}\n"
    body = text.encode()
    response_headers = Headers(
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
        headers,
    )
    return Response(status.value, status.phrase, response_headers, body)


def parse_request(buf: bytes | bytearray, *, eof: bool = False) -> tuple[Request, int] | None:
    """Parse the HTTP/1.1 request of an opening handshake from the start of a buffer.

    Call it with everything received so far, each time data arrives, until it doesn't return
    ``None``. Then drop the bytes it used from the buffer: the rest are WebSocket frames.

    The request target is decoded as ASCII; header values are decoded as ISO-8859-1.

    Args:
        buf: Data received so far, starting with the request.
        eof: ``True`` if the connection was closed and no more data will arrive.

    Returns:
        ``None`` if the request is incomplete, else the request and the number of bytes it used.

    Raises:
        InvalidMessage: If the request is malformed, isn't a ``GET`` with an HTTP/1.1 version,
            has a body, or is incomplete while ``eof`` is ``True``.
        SecurityError: If the request exceeds ``MAX_LINE``, ``MAX_HEADERS`` or
            ``MAX_HEAD_SIZE``, even if it is incomplete.
    """
    head = _parse_head(buf, eof=eof, start_line="request line")
    if head is None:
        # Junk (another protocol, a scanner) is refused as soon as its first line is in,
        # rather than when the head would end.
        first_line = _first_line(buf)
        if first_line is not None:
            _parse_request_line(first_line)
        return None
    lines, size = head
    method, target = _parse_request_line(lines[0])
    headers = _parse_headers(lines[1:])

    # RFC 7230 §3.3.3: the body length of a request comes from Transfer-Encoding or
    # Content-Length. A handshake request has no body, so refuse both rather than read one.
    if "Transfer-Encoding" in headers:
        raise InvalidMessage("transfer codings aren't supported in a handshake request")
    if any(value != "0" for value in headers.get_all("Content-Length")):
        raise InvalidMessage("a handshake request can't have a body")

    return Request(method.decode(), target.decode(), headers), size


def _first_line(buf: bytes | bytearray) -> bytes | None:
    """The first line of an incomplete head, once it is complete."""
    end = buf.find(b"\r\n", 0, MAX_LINE + 2)
    return None if end == -1 else bytes(buf[:end])


def _parse_request_line(line: bytes) -> tuple[bytes, bytes]:
    """Check a request line; return its method and target."""
    # RFC 7230 §3.1.1: request-line = method SP request-target SP HTTP-version CRLF
    # Only fixed values are accepted for the method and the version, which makes parsing easy.
    try:
        method, target, version = line.split(b" ", 2)
    except ValueError:  # not enough values to unpack (expected 3, got 1 or 2)
        raise InvalidMessage(f"invalid HTTP request line: {_d(line)}") from None
    # RFC 6455 §4.1: "The method of the request MUST be GET, and the HTTP version MUST be at
    # least 1.1."
    if method != b"GET":
        raise InvalidMessage(f"unsupported HTTP method: {_d(method)}")
    if version != b"HTTP/1.1":
        raise InvalidMessage(f"unsupported HTTP version: {_d(version)}")
    if not _target_re.fullmatch(target):
        raise InvalidMessage(f"invalid HTTP request target: {_d(target)}")
    return method, target


def _parse_status_line(line: bytes, proxy: bool) -> tuple[int, str]:
    """Check a status line; return its status code and reason phrase."""
    # RFC 7230 §3.1.2: status-line = HTTP-version SP status-code SP reason-phrase CRLF
    # RFC 7230 §3.1.2 asks clients to ignore the reason phrase; tolerate a missing SP before it.
    version, _, rest = line.partition(b" ")
    raw_status_code, _, raw_reason = rest.partition(b" ")
    if version != b"HTTP/1.1" and not (proxy and version == b"HTTP/1.0"):
        raise InvalidMessage(f"unsupported HTTP version: {_d(version)}")
    if not _status_re.fullmatch(raw_status_code):
        raise InvalidMessage(f"invalid HTTP status code: {_d(raw_status_code)}")
    if not bvalue_re.fullmatch(raw_reason):
        raise InvalidMessage(f"invalid HTTP reason phrase: {_d(raw_reason)}")
    return int(raw_status_code), raw_reason.decode("latin-1")


def parse_response(
    buf: bytes | bytearray, *, eof: bool = False, proxy: bool = False
) -> tuple[Response, int] | None:
    """Parse the HTTP/1.1 response of an opening handshake from the start of a buffer.

    Call it with everything received so far, each time data arrives, until it doesn't return
    ``None``; call it once more with ``eof=True`` if the connection closes before. Then drop
    the bytes it used from the buffer: after a 101 response, the rest are WebSocket frames.

    1xx, 204 and 304 responses have no body. Other responses have a body of
    ``Content-Length`` bytes, or, without this header, a body that ends when the connection
    closes, which only an ``eof=True`` call returns. The reason phrase and header values are
    decoded as ISO-8859-1.

    With ``proxy=True``, it parses the response of an HTTP proxy to a ``CONNECT`` request
    instead: HTTP/1.0 is accepted too (some proxies still answer with it), and the response
    ends with its head whatever its status (RFC 9110 §9.3.6: a 2xx response has no body and
    the tunnel starts right after; the proxy closes the connection after any other).

    Args:
        buf: Data received so far, starting with the response.
        eof: ``True`` if the connection was closed and no more data will arrive.
        proxy: Whether this is a proxy's response to ``CONNECT``.

    Returns:
        ``None`` if the response is incomplete, else the response and the number of bytes it
        used.

    Raises:
        InvalidMessage: If the response is malformed, doesn't have an HTTP/1.1 version, uses a
            transfer coding, or is incomplete while ``eof`` is ``True``.
        SecurityError: If the response exceeds ``MAX_LINE``, ``MAX_HEADERS``,
            ``MAX_HEAD_SIZE`` or ``MAX_BODY``, even if it is incomplete.
    """
    head = _parse_head(buf, eof=eof, start_line="status line")
    if head is None:
        first_line = _first_line(buf)
        if first_line is not None:
            _parse_status_line(first_line, proxy)
        return None
    lines, size = head
    status_code, reason = _parse_status_line(lines[0], proxy)

    headers = _parse_headers(lines[1:])

    # RFC 7230 §3.3.3: "Any response to a HEAD request and any response with a 1xx
    # (Informational), 204 (No Content), or 304 (Not Modified) status code is always
    # terminated by the first empty line after the header fields".
    if proxy or status_code < 200 or status_code in (204, 304):
        return Response(status_code, reason, headers), size

    if "Transfer-Encoding" in headers:
        raise InvalidMessage("transfer codings aren't supported in a handshake response")

    content_length = headers.get_all("Content-Length")
    if content_length:
        # RFC 7230 §3.3.2: Content-Length = 1*DIGIT. Repeated values may be rejected.
        if len(content_length) > 1 or not _length_re.fullmatch(content_length[0]):
            raise InvalidMessage(f"invalid Content-Length: {', '.join(content_length)}")
        length = int(content_length[0])
        if length > MAX_BODY:
            raise SecurityError(f"body too large: {length} bytes, expected at most {MAX_BODY}")
        end = size + length
        if len(buf) < end:
            if eof:
                raise InvalidMessage("connection closed while reading HTTP body")
            return None
        return Response(status_code, reason, headers, bytes(buf[size:end])), end

    # RFC 7230 §3.3.3: "Otherwise, this is a response message without a declared message body
    # length, so the message body length is determined by the number of octets received prior
    # to the server closing the connection."
    if len(buf) - size > MAX_BODY:
        raise SecurityError(f"body too large: over {MAX_BODY} bytes")
    if not eof:
        return None
    return Response(status_code, reason, headers, bytes(buf[size:])), len(buf)


def _parse_head(
    buf: bytes | bytearray, *, eof: bool, start_line: str
) -> tuple[list[bytes], int] | None:
    """Split the start line and headers of a message into lines, enforcing the limits.

    Args:
        buf: Data received so far, starting with the message.
        eof: ``True`` if no more data will arrive.
        start_line: Name of the first line in error messages.

    Returns:
        ``None`` if the head is incomplete, else its lines without CRLF, starting with the
        start line, and its size including the empty line that ends it.

    Raises:
        InvalidMessage: If a line doesn't end with CRLF, or the head is incomplete while
            ``eof`` is ``True``.
        SecurityError: If a limit is exceeded.
    """
    # RFC 7230 §3: HTTP-message = start-line *( header-field CRLF ) CRLF [ message-body ]
    # Looking for the end only within MAX_HEAD_SIZE bounds the work on oversized input.
    end = buf.find(b"\r\n\r\n", 0, MAX_HEAD_SIZE)
    if end == -1:
        _check_partial_head(buf, eof=eof, start_line=start_line)
        return None

    lines = bytes(buf[:end]).split(b"\r\n")
    if len(lines) > MAX_HEADERS + 1:
        raise SecurityError(f"too many HTTP headers: expected at most {MAX_HEADERS}")
    for line in lines:
        if len(line) > MAX_LINE:
            raise SecurityError(f"HTTP line too long: expected at most {MAX_LINE} bytes")
        # RFC 7230 §3.5 allows recognizing a bare LF as a line terminator; like websockets,
        # accept only CRLF.
        if b"\n" in line:
            raise InvalidMessage("HTTP line ends with LF instead of CRLF")
    return lines, end + 4


def _check_partial_head(buf: bytes | bytearray, *, eof: bool, start_line: str) -> None:
    """Enforce the limits on an incomplete head, so oversized input is rejected early.

    Only the last, unfinished line is checked for length here; complete lines are checked
    once the head is complete, and ``MAX_HEAD_SIZE`` bounds the wait.

    Raises:
        InvalidMessage: If a line ends with a bare LF, or if ``eof`` is ``True``.
        SecurityError: If a limit is exceeded.
    """
    # A pending CR may be the start of the CRLF that ends the line: don't count it.
    unfinished = len(buf) - buf.rfind(b"\n") - 1 - buf.endswith(b"\r")
    if unfinished > MAX_LINE:
        raise SecurityError(f"HTTP line too long: expected at most {MAX_LINE} bytes")
    line_count = buf.count(b"\n")
    if line_count > buf.count(b"\r\n"):
        raise InvalidMessage("HTTP line ends with LF instead of CRLF")
    if line_count > MAX_HEADERS + 1:
        raise SecurityError(f"too many HTTP headers: expected at most {MAX_HEADERS}")
    if len(buf) >= MAX_HEAD_SIZE:
        # The end of the head, if it ever comes, will be past the limit.
        raise SecurityError(f"HTTP head too large: expected at most {MAX_HEAD_SIZE} bytes")
    if eof:
        where = start_line if line_count == 0 else "headers"
        raise InvalidMessage(f"connection closed while reading HTTP {where}")


# Why _core.parse_header_fields refuses a header line, as InvalidMessage says it.
_FIELD_ERRORS = {
    # RFC 7230 §3.2.4: "A server that receives an obs-fold in a request message [...] MUST
    # either reject the message by sending a 400 (Bad Request) [...] or replace each
    # received obs-fold with one or more SP octets". A client may reject it too.
    "folded": "obsolete line folding isn't supported: {}",
    "line": "invalid HTTP header line: {}",
    # RFC 7230 §3.2.4: "No whitespace is allowed between the header field-name and colon."
    "name": "invalid HTTP header name: {}",
    "value": "invalid HTTP header value: {}",
}


def _parse_headers(lines: list[bytes]) -> Headers:
    """Parse header lines.

    RFC 7230 §3.2: ``header-field = field-name ":" OWS field-value OWS``, checked in Rust
    (``wsrs._core.parse_header_fields``: the name a token, the value visible characters,
    obs-text, spaces and tabs, as :mod:`wsrs.datastructures` states for headers wsrs
    writes).

    Args:
        lines: Header lines without CRLF.

    Returns:
        The headers, names decoded as ASCII and values as ISO-8859-1.

    Raises:
        InvalidMessage: If a line isn't a valid header field.
    """
    try:
        by_name, fields = _core.parse_header_fields(lines)
    except ValueError as exc:
        kind, part = exc.args
        raise InvalidMessage(_FIELD_ERRORS[kind].format(_d(part))) from None
    return Headers._parsed(by_name, fields)
