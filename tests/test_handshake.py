from __future__ import annotations

import base64
import unittest.mock

import pytest

from wsrs.exceptions import (
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidUpgrade,
)
from wsrs.handshake import (
    GUID,
    VERSION,
    accept_key,
    build_request,
    build_response,
    check_request,
    check_response,
    generate_key,
)
from wsrs.http11 import Headers, Request, Response, parse_request, parse_response


# RFC 6455 §1.3.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_constants() -> None:
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert VERSION == "13"


def test_accept_key_rfc_6455_example() -> None:
    # RFC 6455 §1.3: "the server would append the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    # to form the string "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11". The
    # server would then take the SHA-1 hash of this string, giving the value 0xb3 0x7a 0x4f 0x2c
    # 0xc0 0x62 0x4f 0x16 0x90 0xf6 0x46 0x06 0xcf 0x38 0x59 0x45 0xb2 0xbe 0xc4 0xea. This
    # value is then base64-encoded [...], to give the value "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="".
    assert accept_key(KEY) == ACCEPT
    digest = bytes.fromhex("b37a4f2cc0624f1690f64606cf385945b2bec4ea")
    assert base64.b64decode(ACCEPT) == digest


def test_generate_key() -> None:
    key = generate_key()
    assert len(base64.b64decode(key, validate=True)) == 16
    assert generate_key() != key


def test_generate_key_uses_a_csprng() -> None:
    with unittest.mock.patch("secrets.token_bytes", return_value=b"the sample nonce") as mock:
        assert generate_key() == KEY
    mock.assert_called_once_with(16)


def test_round_trip() -> None:
    request_headers = Headers(Host="server.example.com")
    key = generate_key()
    build_request(request_headers, key)
    request = Request("GET", "/chat", request_headers)
    parsed_request = parse_request(request.serialize())
    assert parsed_request is not None
    assert check_request(parsed_request[0].headers) == key

    response_headers = Headers()
    build_response(response_headers, key)
    response = Response(101, "Switching Protocols", response_headers)
    parsed_response = parse_response(response.serialize())
    assert parsed_response is not None
    check_response(parsed_response[0].headers, key)


def test_build_request() -> None:
    headers = Headers(Host="server.example.com")
    build_request(headers, KEY)
    assert list(headers.raw_items()) == [
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ]


def test_build_response() -> None:
    headers = Headers()
    build_response(headers, KEY)
    assert list(headers.raw_items()) == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", ACCEPT),
    ]


def request_headers(**changes: str | list[str] | None) -> Headers:
    """Return valid request headers, with some of them replaced or removed (``None``)."""
    values: dict[str, str | list[str] | None] = {
        "Host": "server.example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    values.update({name.replace("_", "-"): value for name, value in changes.items()})
    headers = Headers()
    for name, value in values.items():
        for item in [] if value is None else [value] if isinstance(value, str) else value:
            headers[name] = item
    return headers


def response_headers(**changes: str | list[str] | None) -> Headers:
    """Return valid response headers, with some of them replaced or removed (``None``)."""
    values: dict[str, str | list[str] | None] = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": ACCEPT,
    }
    values.update({name.replace("_", "-"): value for name, value in changes.items()})
    headers = Headers()
    for name, value in values.items():
        for item in [] if value is None else [value] if isinstance(value, str) else value:
            headers[name] = item
    return headers


@pytest.mark.parametrize(
    "headers",
    [
        request_headers(),
        request_headers(Upgrade="WebSocket"),
        request_headers(Upgrade="WEBSOCKET"),
        request_headers(Upgrade="h2c, websocket"),
        request_headers(Upgrade=["h2c", "websocket"]),
        request_headers(Connection="keep-alive, Upgrade"),
        request_headers(Connection="upgrade"),
        request_headers(Connection=["keep-alive", "UPGRADE"]),
    ],
)
def test_check_request(headers: Headers) -> None:
    assert check_request(headers) == KEY


@pytest.mark.parametrize(
    ("headers", "exc_type", "message"),
    [
        (request_headers(Connection=None), InvalidUpgrade, "missing Connection header"),
        (
            request_headers(Connection="keep-alive"),
            InvalidUpgrade,
            "invalid Connection header: keep-alive",
        ),
        (
            request_headers(Connection=["close", "keep-alive"]),
            InvalidUpgrade,
            "invalid Connection header: close, keep-alive",
        ),
        (
            request_headers(Connection="Upgrade;"),
            InvalidHeaderFormat,
            "invalid Connection header: expected comma at 7 in Upgrade;",
        ),
        (request_headers(Upgrade=None), InvalidUpgrade, "missing Upgrade header"),
        (request_headers(Upgrade="h2c"), InvalidUpgrade, "invalid Upgrade header: h2c"),
        (
            request_headers(Upgrade="websocket/13"),
            InvalidUpgrade,
            "invalid Upgrade header: websocket/13",
        ),
        (
            request_headers(Upgrade="web socket"),
            InvalidHeaderFormat,
            "invalid Upgrade header: expected comma at 4 in web socket",
        ),
        (
            request_headers(Sec_WebSocket_Version=None),
            InvalidHeader,
            "missing Sec-WebSocket-Version header",
        ),
        (
            request_headers(Sec_WebSocket_Version=["13", "13"]),
            InvalidHeader,
            "invalid Sec-WebSocket-Version header: "
            "more than one Sec-WebSocket-Version header found",
        ),
        (
            request_headers(Sec_WebSocket_Version="8"),
            InvalidHeaderValue,
            "invalid Sec-WebSocket-Version header: 8",
        ),
        (
            request_headers(Sec_WebSocket_Version="13, 8"),
            InvalidHeaderValue,
            "invalid Sec-WebSocket-Version header: 13, 8",
        ),
        (
            request_headers(Sec_WebSocket_Version=""),
            InvalidHeaderValue,
            "empty Sec-WebSocket-Version header",
        ),
        (
            request_headers(Sec_WebSocket_Key=None),
            InvalidHeader,
            "missing Sec-WebSocket-Key header",
        ),
        (
            request_headers(Sec_WebSocket_Key=[KEY, KEY]),
            InvalidHeader,
            "invalid Sec-WebSocket-Key header: more than one Sec-WebSocket-Key header found",
        ),
        (
            request_headers(Sec_WebSocket_Key="not base64!"),
            InvalidHeaderValue,
            "invalid Sec-WebSocket-Key header: not base64!",
        ),
        (
            request_headers(Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZQ"),
            InvalidHeaderValue,
            "invalid Sec-WebSocket-Key header: dGhlIHNhbXBsZSBub25jZQ",
        ),
        (
            request_headers(Sec_WebSocket_Key="c2hvcnQ="),
            InvalidHeaderValue,
            "invalid Sec-WebSocket-Key header: c2hvcnQ=",
        ),
        (
            request_headers(Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZSE="),
            InvalidHeaderValue,
            "invalid Sec-WebSocket-Key header: dGhlIHNhbXBsZSBub25jZSE=",
        ),
        (
            request_headers(Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZQ\xe9="),
            InvalidHeaderValue,
            "invalid Sec-WebSocket-Key header: dGhlIHNhbXBsZSBub25jZQ\xe9=",
        ),
        (
            request_headers(Sec_WebSocket_Key=""),
            InvalidHeaderValue,
            "empty Sec-WebSocket-Key header",
        ),
    ],
)
def test_check_invalid_request(
    headers: Headers, exc_type: type[InvalidHeader], message: str
) -> None:
    with pytest.raises(InvalidHeader) as raised:
        check_request(headers)
    assert type(raised.value) is exc_type
    assert str(raised.value) == message


def test_check_request_version_mismatch_is_distinguishable() -> None:
    # A server answers 426 Upgrade Required with Sec-WebSocket-Version: 13 to this error only.
    # The version is checked before the key, so old clients get that answer too.
    headers = request_headers(Sec_WebSocket_Version="8", Sec_WebSocket_Key="x")
    with pytest.raises(InvalidHeaderValue) as raised:
        check_request(headers)
    assert raised.value.name == "Sec-WebSocket-Version"
    assert raised.value.value == "8"


@pytest.mark.parametrize(
    "headers",
    [
        response_headers(),
        response_headers(Upgrade="WebSocket", Connection="upgrade"),
        response_headers(Connection=["keep-alive", "Upgrade"]),
    ],
)
def test_check_response(headers: Headers) -> None:
    check_response(headers, KEY)


@pytest.mark.parametrize(
    ("headers", "exc_type", "message"),
    [
        (response_headers(Connection=None), InvalidUpgrade, "missing Connection header"),
        (response_headers(Connection="close"), InvalidUpgrade, "invalid Connection header: close"),
        (response_headers(Upgrade=None), InvalidUpgrade, "missing Upgrade header"),
        (response_headers(Upgrade="h2c"), InvalidUpgrade, "invalid Upgrade header: h2c"),
        (
            response_headers(Sec_WebSocket_Accept=None),
            InvalidHeader,
            "missing Sec-WebSocket-Accept header",
        ),
        (
            response_headers(Sec_WebSocket_Accept=[ACCEPT, ACCEPT]),
            InvalidHeader,
            "invalid Sec-WebSocket-Accept header: more than one Sec-WebSocket-Accept header found",
        ),
        (
            response_headers(Sec_WebSocket_Accept=KEY),
            InvalidHeaderValue,
            f"invalid Sec-WebSocket-Accept header: {KEY}",
        ),
        (
            response_headers(Sec_WebSocket_Accept=""),
            InvalidHeaderValue,
            "empty Sec-WebSocket-Accept header",
        ),
    ],
)
def test_check_invalid_response(
    headers: Headers, exc_type: type[InvalidHeader], message: str
) -> None:
    with pytest.raises(InvalidHeader) as raised:
        check_response(headers, KEY)
    assert type(raised.value) is exc_type
    assert str(raised.value) == message


def test_check_response_with_another_key() -> None:
    with pytest.raises(InvalidHeaderValue):
        check_response(response_headers(), generate_key())
