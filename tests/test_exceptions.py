from __future__ import annotations

import http

import pytest

from wsrs.exceptions import (
    CLOSE_CODES,
    AbortHandshake,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    DuplicateParameter,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidParameterName,
    InvalidParameterValue,
    InvalidState,
    InvalidStatusCode,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    SecurityError,
    WebSocketException,
    WebSocketProtocolError,
    connection_closed,
    format_close,
)
from wsrs.http11 import Headers


@pytest.mark.parametrize(
    ("exception", "message"),
    [
        (WebSocketException("something went wrong"), "something went wrong"),
        (InvalidHandshake("invalid request"), "invalid request"),
        (AbortHandshake(200, [], b"OK\n"), "HTTP 200, 0 headers, 3 bytes"),
        (
            AbortHandshake(http.HTTPStatus.FORBIDDEN, {"Content-Type": "text/plain"}),
            "HTTP 403, 1 headers, 0 bytes",
        ),
        (InvalidMessage("malformed HTTP message"), "malformed HTTP message"),
        (SecurityError("line too long"), "line too long"),
        (InvalidHeader("Name"), "missing Name header"),
        (InvalidHeader("Name", ""), "empty Name header"),
        (InvalidHeader("Name", "Value"), "invalid Name header: Value"),
        (
            InvalidHeaderFormat("Sec-WebSocket-Protocol", "expected token", "a=|", 1),
            "invalid Sec-WebSocket-Protocol header: expected token at 1 in a=|",
        ),
        (
            InvalidHeaderValue("Sec-WebSocket-Version", "8"),
            "invalid Sec-WebSocket-Version header: 8",
        ),
        (InvalidUpgrade("Upgrade"), "missing Upgrade header"),
        (InvalidUpgrade("Connection", "close"), "invalid Connection header: close"),
        (InvalidOrigin(None), "missing Origin header"),
        (InvalidOrigin(""), "empty Origin header"),
        (InvalidOrigin("https://evil"), "invalid Origin header: https://evil"),
        (InvalidStatusCode(403), "server rejected WebSocket connection: HTTP 403"),
        (NegotiationError("unsupported subprotocol: spam"), "unsupported subprotocol: spam"),
        (InvalidParameterName("|"), "invalid parameter name: |"),
        (InvalidParameterValue("a", None), "missing value for parameter a"),
        (InvalidParameterValue("a", ""), "empty value for parameter a"),
        (InvalidParameterValue("a", "|"), "invalid value for parameter a: |"),
        (DuplicateParameter("a"), "duplicate parameter: a"),
        (InvalidState("connection isn't open"), "connection isn't open"),
        (
            ConnectionClosed(1000, ""),
            "WebSocket connection is closed: code = 1000 (OK), no reason",
        ),
        (
            ConnectionClosed(1001, "bye"),
            "WebSocket connection is closed: code = 1001 (going away), reason = bye",
        ),
        (
            ConnectionClosed(1005, ""),
            "WebSocket connection is closed: code = 1005 (no status code [internal]), no reason",
        ),
        (
            ConnectionClosed(1006, ""),
            "WebSocket connection is closed: code = 1006 "
            "(connection closed abnormally [internal]), no reason",
        ),
        (
            ConnectionClosed(1016, ""),
            "WebSocket connection is closed: code = 1016 (unknown), no reason",
        ),
        (
            ConnectionClosed(3000, ""),
            "WebSocket connection is closed: code = 3000 (registered), no reason",
        ),
        (
            ConnectionClosed(4000, ""),
            "WebSocket connection is closed: code = 4000 (private use), no reason",
        ),
        (InvalidURI("http://localhost/"), "http://localhost/ isn't a valid URI"),
        (
            InvalidURI("http://localhost/", "scheme isn't ws or wss"),
            "http://localhost/ isn't a valid URI: scheme isn't ws or wss",
        ),
        (PayloadTooBig("message too big"), "message too big"),
        (WebSocketProtocolError("invalid opcode"), "invalid opcode"),
    ],
)
def test_str(exception: Exception, message: str) -> None:
    assert str(exception) == message


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (InvalidHandshake, WebSocketException),
        (AbortHandshake, InvalidHandshake),
        (InvalidMessage, InvalidHandshake),
        (SecurityError, InvalidHandshake),
        (InvalidHeader, InvalidHandshake),
        (InvalidHeaderFormat, InvalidHeader),
        (InvalidHeaderValue, InvalidHeader),
        (InvalidUpgrade, InvalidHeader),
        (InvalidOrigin, InvalidHeader),
        (InvalidStatusCode, InvalidHandshake),
        (NegotiationError, InvalidHandshake),
        (InvalidParameterName, NegotiationError),
        (InvalidParameterValue, NegotiationError),
        (DuplicateParameter, NegotiationError),
        (InvalidState, WebSocketException),
        (ConnectionClosed, InvalidState),
        (ConnectionClosedOK, ConnectionClosed),
        (ConnectionClosedError, ConnectionClosed),
        (InvalidURI, WebSocketException),
        (PayloadTooBig, WebSocketException),
        (WebSocketProtocolError, WebSocketException),
        (WebSocketException, Exception),
    ],
)
def test_hierarchy(cls: type[Exception], base: type[Exception]) -> None:
    assert cls.__bases__ == (base,)


def test_protocol_error_alias() -> None:
    assert ProtocolError is WebSocketProtocolError


def test_abort_handshake_attributes() -> None:
    exc = AbortHandshake(http.HTTPStatus.FOUND, [("Location", "/")], b"moved")
    assert exc.status == 302
    assert isinstance(exc.headers, Headers)
    assert exc.headers == {"location": "/"}
    assert exc.body == b"moved"


def test_abort_handshake_without_body() -> None:
    exc = AbortHandshake(404, Headers())
    assert exc.body == b""


def test_invalid_header_attributes() -> None:
    exc = InvalidHeader("Sec-WebSocket-Key", "spam")
    assert exc.name == "Sec-WebSocket-Key"
    assert exc.value == "spam"


def test_invalid_header_format_attributes() -> None:
    exc = InvalidHeaderFormat("Upgrade", "expected protocol", "websocket/", 9)
    assert exc.name == "Upgrade"
    assert exc.value == "expected protocol at 9 in websocket/"
    assert exc.header == "websocket/"
    assert exc.pos == 9


def test_invalid_origin_attributes() -> None:
    exc = InvalidOrigin("https://evil")
    assert exc.name == "Origin"
    assert exc.value == "https://evil"


def test_invalid_status_code_attributes() -> None:
    exc = InvalidStatusCode(403)
    assert exc.status_code == 403
    # websockets 3.4 changelog: "raises InvalidStatusCode with a code attribute".
    assert exc.code == 403


def test_parameter_errors_attributes() -> None:
    assert InvalidParameterName("x").name == "x"
    exc = InvalidParameterValue("server_max_window_bits", "16")
    assert (exc.name, exc.value) == ("server_max_window_bits", "16")
    assert DuplicateParameter("x").name == "x"


def test_connection_closed_attributes() -> None:
    exc = ConnectionClosed(1011, "oops")
    assert exc.code == 1011
    assert exc.reason == "oops"


def test_invalid_uri_attributes() -> None:
    exc = InvalidURI("ws://", "has no host")
    assert exc.uri == "ws://"
    assert exc.msg == "has no host"


@pytest.mark.parametrize("code", [1000, 1001])
def test_connection_closed_ok(code: int) -> None:
    exc = connection_closed(code, "bye")
    assert type(exc) is ConnectionClosedOK
    assert (exc.code, exc.reason) == (code, "bye")


@pytest.mark.parametrize("code", [1002, 1005, 1006, 1011, 3000, 4999])
def test_connection_closed_error(code: int) -> None:
    exc = connection_closed(code, "")
    assert type(exc) is ConnectionClosedError
    assert (exc.code, exc.reason) == (code, "")


def test_subclasses_accept_any_code() -> None:
    # The constructors don't choose; connection_closed() does.
    assert ConnectionClosedOK(1006, "").code == 1006
    assert ConnectionClosedError(1000, "").code == 1000


def test_format_close() -> None:
    assert format_close(1009, "too big") == "code = 1009 (message too big), reason = too big"
    assert format_close(1015, "") == "code = 1015 (TLS failure [internal]), no reason"


def test_close_codes() -> None:
    assert 1004 not in CLOSE_CODES
    assert all(1000 <= code <= 1015 for code in CLOSE_CODES)


def test_codec_errors_close_codes() -> None:
    assert PayloadTooBig("too big").close_code == 1009
    assert PayloadTooBig.close_code == 1009
    assert ProtocolError("bad opcode").close_code == 1002
    assert ProtocolError.close_code == 1002
    exc = ProtocolError("invalid UTF-8", close_code=1007)
    assert exc.close_code == 1007
    assert exc.args == ("invalid UTF-8",)


def test_catch_all() -> None:
    with pytest.raises(WebSocketException):
        raise connection_closed(1000, "")
    with pytest.raises(InvalidHandshake):
        raise InvalidHeaderValue("Sec-WebSocket-Version", "8")
