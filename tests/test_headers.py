from __future__ import annotations

from collections.abc import Sequence

import pytest

from wsrs.exceptions import InvalidHeaderFormat
from wsrs.headers import (
    ExtensionHeader,
    ExtensionParameter,
    build_authorization_basic,
    build_extension_list,
    build_host,
    build_subprotocol_list,
    parse_authorization_basic,
    parse_connection,
    parse_extension_list,
    parse_subprotocol_list,
    parse_upgrade,
)


# Connection and Upgrade.


@pytest.mark.parametrize(
    ("header_values", "options"),
    [
        ("Upgrade", ["Upgrade"]),
        ("keep-alive, Upgrade", ["keep-alive", "Upgrade"]),
        (",, keep-alive ,,Upgrade , ", ["keep-alive", "Upgrade"]),
        (["keep-alive", "upgrade"], ["keep-alive", "upgrade"]),
        ([], []),
    ],
)
def test_parse_connection(header_values: str | list[str], options: list[str]) -> None:
    assert parse_connection(header_values) == options


@pytest.mark.parametrize(
    ("header_values", "protocols"),
    [
        ("websocket", ["websocket"]),
        ("WebSocket", ["WebSocket"]),
        ("HTTP/2.0, SHTTP/1.3, IRC/6.9, RTA/x11", ["HTTP/2.0", "SHTTP/1.3", "IRC/6.9", "RTA/x11"]),
        (["h2c", "websocket"], ["h2c", "websocket"]),
    ],
)
def test_parse_upgrade(header_values: str | list[str], protocols: list[str]) -> None:
    assert parse_upgrade(header_values) == protocols


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "expected protocol at 0 in "),
        (",", "expected protocol at 1 in ,"),
        ("websocket/", "expected comma at 9 in websocket/"),
        ("/1", "expected protocol at 0 in /1"),
        ("websocket websocket", "expected comma at 10 in websocket websocket"),
    ],
)
def test_parse_invalid_upgrade(header: str, message: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as raised:
        parse_upgrade(header)
    assert raised.value.name == "Upgrade"
    assert str(raised.value) == f"invalid Upgrade header: {message}"


def test_parse_invalid_connection() -> None:
    with pytest.raises(InvalidHeaderFormat) as raised:
        parse_connection(["close", "keep-alive; Upgrade"])
    assert str(raised.value) == (
        "invalid Connection header: expected comma at 10 in keep-alive; Upgrade"
    )
    assert (raised.value.name, raised.value.header, raised.value.pos) == (
        "Connection",
        "keep-alive; Upgrade",
        10,
    )


# Sec-WebSocket-Protocol.


@pytest.mark.parametrize(
    ("header_values", "subprotocols"),
    [
        # RFC 6455 §1.3.
        ("chat, superchat", ["chat", "superchat"]),
        ("chat", ["chat"]),
        ("chat,superchat", ["chat", "superchat"]),
        ("\t chat \t,\t superchat \t", ["chat", "superchat"]),
        # RFC 7230 §7: empty list elements are ignored.
        (",chat", ["chat"]),
        ("chat,", ["chat"]),
        (", ,chat, ,, superchat ,", ["chat", "superchat"]),
        # Several headers.
        (
            ["chat", "superchat, v2.bookings.example.net"],
            ["chat", "superchat", "v2.bookings.example.net"],
        ),
        ([], []),
    ],
)
def test_parse_subprotocol_list(header_values: str | list[str], subprotocols: list[str]) -> None:
    assert parse_subprotocol_list(header_values) == subprotocols


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "expected token at 0 in "),
        (" ", "expected token at 1 in  "),
        (",", "expected token at 1 in ,"),
        (", ,", "expected token at 3 in , ,"),
        ("chat superchat", "expected comma at 5 in chat superchat"),
        ("chat;superchat", "expected comma at 4 in chat;superchat"),
        ('"chat"', 'expected token at 0 in "chat"'),
        ("chat, @", "expected token at 6 in chat, @"),
    ],
)
def test_parse_invalid_subprotocol_list(header: str, message: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as raised:
        parse_subprotocol_list(["chat", header])
    assert raised.value.name == "Sec-WebSocket-Protocol"
    assert raised.value.header == header
    assert str(raised.value) == f"invalid Sec-WebSocket-Protocol header: {message}"


def test_build_subprotocol_list() -> None:
    assert build_subprotocol_list(["chat"]) == "chat"
    assert build_subprotocol_list(["chat", "superchat"]) == "chat, superchat"
    header = build_subprotocol_list(["a", "b.c", "d~e"])
    assert parse_subprotocol_list(header) == ["a", "b.c", "d~e"]


@pytest.mark.parametrize(
    ("subprotocols", "message"),
    [
        ([], "expected at least one subprotocol"),
        (["chat", ""], "invalid subprotocol: ''"),
        (["chat, superchat"], "invalid subprotocol: 'chat, superchat'"),
        (["ch\u00e2t"], "invalid subprotocol: 'ch\u00e2t'"),
    ],
)
def test_build_invalid_subprotocol_list(subprotocols: list[str], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        build_subprotocol_list(subprotocols)
    assert str(raised.value) == message


# Sec-WebSocket-Extensions.


@pytest.mark.parametrize(
    ("header_values", "extensions"),
    [
        ("foo", [("foo", [])]),
        ("foo, bar", [("foo", []), ("bar", [])]),
        (
            'foo; name; token=token; quoted-string="quoted-string"',
            [
                (
                    "foo",
                    [("name", None), ("token", "token"), ("quoted-string", "quoted-string")],
                )
            ],
        ),
        ("foo; bar; baz, quux", [("foo", [("bar", None), ("baz", None)]), ("quux", [])]),
        ("foo ;\tbar\t=\t1 , baz", [("foo", [("bar", "1")]), ("baz", [])]),
        ('foo;bar=1;baz="2",quux', [("foo", [("bar", "1"), ("baz", "2")]), ("quux", [])]),
        # Quoted strings are unescaped.
        ('foo; bar="\\b\\a\\z"', [("foo", [("bar", "baz")])]),
        ('foo; bar="\\1\\0"', [("foo", [("bar", "10")])]),
        # RFC 7692 §7.1 example.
        (
            "permessage-deflate; client_max_window_bits, permessage-deflate",
            [
                ("permessage-deflate", [("client_max_window_bits", None)]),
                ("permessage-deflate", []),
            ],
        ),
        (
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
            [
                (
                    "permessage-deflate",
                    [("server_no_context_takeover", None), ("client_max_window_bits", "10")],
                ),
            ],
        ),
        # RFC 7230 §7: empty list elements are ignored.
        (",foo,, bar ,", [("foo", []), ("bar", [])]),
        # Several headers.
        (
            ["permessage-deflate; client_max_window_bits", "x-webkit-deflate-frame"],
            [
                ("permessage-deflate", [("client_max_window_bits", None)]),
                ("x-webkit-deflate-frame", []),
            ],
        ),
        ([], []),
    ],
)
def test_parse_extension_list(
    header_values: str | list[str], extensions: list[ExtensionHeader]
) -> None:
    assert parse_extension_list(header_values) == extensions


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "expected token at 0 in "),
        (",", "expected token at 1 in ,"),
        ("foo;", "expected token at 4 in foo;"),
        ("foo; bar=", "expected token at 9 in foo; bar="),
        ("foo; bar= ", "expected token at 10 in foo; bar= "),
        ("foo bar", "expected comma at 4 in foo bar"),
        ("foo; bar baz", "expected comma at 9 in foo; bar baz"),
        ("foo; bar=1 2", "expected comma at 11 in foo; bar=1 2"),
        ("foo; =1", "expected token at 5 in foo; =1"),
        ("foo; bar=a=b", "expected comma at 10 in foo; bar=a=b"),
        ('"foo"', 'expected token at 0 in "foo"'),
        ('foo; bar="baz', 'expected quoted string at 9 in foo; bar="baz'),
        ('foo; bar="baz\\"', 'expected quoted string at 9 in foo; bar="baz\\"'),
        ('foo; bar=""', 'expected token in quoted string at 9 in foo; bar=""'),
        ('foo; bar="b z"', 'expected token in quoted string at 9 in foo; bar="b z"'),
        ('foo; bar="\\""', 'expected token in quoted string at 9 in foo; bar="\\""'),
        ('foo; bar="a,b"', 'expected token in quoted string at 9 in foo; bar="a,b"'),
        ('foo; bar="\x00"', 'expected quoted string at 9 in foo; bar="\x00"'),
    ],
)
def test_parse_invalid_extension_list(header: str, message: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as raised:
        parse_extension_list(["foo", header])
    assert raised.value.name == "Sec-WebSocket-Extensions"
    assert raised.value.header == header
    assert str(raised.value) == f"invalid Sec-WebSocket-Extensions header: {message}"


@pytest.mark.parametrize(
    ("extensions", "header"),
    [
        ([("foo", [])], "foo"),
        ([("foo", []), ("bar", [])], "foo, bar"),
        (
            [("permessage-deflate", [("client_max_window_bits", None)])],
            "permessage-deflate; client_max_window_bits",
        ),
        (
            [
                ("permessage-deflate", [("server_max_window_bits", "12")]),
                ("permessage-deflate", ()),
            ],
            "permessage-deflate; server_max_window_bits=12, permessage-deflate",
        ),
    ],
)
def test_build_extension_list(
    extensions: Sequence[tuple[str, Sequence[ExtensionParameter]]], header: str
) -> None:
    assert build_extension_list(extensions) == header
    assert parse_extension_list(header) == [(name, list(params)) for name, params in extensions]


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ([], "expected at least one extension"),
        ([("", [])], "invalid extension name: ''"),
        ([("foo bar", [])], "invalid extension name: 'foo bar'"),
        ([("foo", [("b;r", None)])], "invalid parameter name: 'b;r'"),
        ([("foo", [("bar", "")])], "invalid value for parameter bar: ''"),
        ([("foo", [("bar", "a b")])], "invalid value for parameter bar: 'a b'"),
    ],
)
def test_build_invalid_extension_list(
    extensions: Sequence[tuple[str, Sequence[ExtensionParameter]]], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        build_extension_list(extensions)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("host", "port", "secure", "always", "expected"),
    [
        ("example.com", 80, False, False, "example.com"),
        ("example.com", 443, True, False, "example.com"),
        ("example.com", 443, False, False, "example.com:443"),
        ("example.com", 80, False, True, "example.com:80"),
        ("127.0.0.1", 8080, False, False, "127.0.0.1:8080"),
        ("::1", 443, True, False, "[::1]"),
        ("fe80::1", 8443, True, True, "[fe80::1]:8443"),
    ],
)
def test_build_host(host: str, port: int, secure: bool, always: bool, expected: str) -> None:
    assert build_host(host, port, secure, always_include_port=always) == expected


def test_basic_authorization_round_trip() -> None:
    header = build_authorization_basic("Aladdin", "open sesame")
    assert header == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="  # RFC 7617 section 2
    assert parse_authorization_basic(header) == ("Aladdin", "open sesame")
    assert parse_authorization_basic(build_authorization_basic("é", "p:w")) == ("é", "p:w")
    with pytest.raises(ValueError, match="may not contain"):
        build_authorization_basic("a:b", "c")


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!", "Basic " + "//79", "Basic dXNlcg=="])
def test_parse_authorization_basic_invalid(header: str) -> None:
    assert parse_authorization_basic(header) is None
