"""Tests of :mod:`wsrs.datastructures`: :class:`Headers` and the shared header grammar."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from wsrs.datastructures import (
    Headers,
    MultipleValuesError,
    protocol_re,
    quoted_string_re,
    token_re,
    value_re,
)
from wsrs.http11 import Headers as Http11Headers


def test_http11_reexports_headers() -> None:
    assert Http11Headers is Headers


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        (token_re, "permessage-deflate", True),
        (token_re, "a b", False),
        (token_re, "", False),
        (value_re, "visible text\twith tab", True),
        (value_re, "no\r\ninjection", False),
        (quoted_string_re, '"quoted \\" string"', True),
        (quoted_string_re, '"unterminated', False),
        (protocol_re, "websocket", True),
        (protocol_re, "h2/2.0", True),
        (protocol_re, "h2/", False),
    ],
)
def test_grammar(pattern: Any, text: str, matches: bool) -> None:
    assert (pattern.fullmatch(text) is not None) is matches


def test_headers_case_insensitive() -> None:
    headers = Headers([("Upgrade", "websocket"), ("Sec-WebSocket-Key", "x")])
    assert headers["upgrade"] == "websocket"
    assert headers["UPGRADE"] == "websocket"
    assert "sec-websocket-key" in headers
    assert "Origin" not in headers
    assert not headers.__contains__(42)
    assert len(headers) == 2
    assert list(headers) == ["upgrade", "sec-websocket-key"]


def test_headers_missing() -> None:
    headers = Headers()
    with pytest.raises(KeyError):
        headers["Upgrade"]
    assert headers.get("Upgrade") is None
    assert headers.get("Upgrade", "default") == "default"


def test_headers_repeated() -> None:
    headers = Headers()
    headers["Sec-WebSocket-Protocol"] = "chat"
    headers["sec-websocket-protocol"] = "superchat"
    headers["Origin"] = "http://example.com"
    assert len(headers) == 2
    assert list(headers) == ["sec-websocket-protocol", "origin"]
    assert headers.get_all("SEC-WEBSOCKET-PROTOCOL") == ["chat", "superchat"]
    assert headers.get_all("Connection") == []
    assert list(headers.raw_items()) == [
        ("Sec-WebSocket-Protocol", "chat"),
        ("sec-websocket-protocol", "superchat"),
        ("Origin", "http://example.com"),
    ]
    with pytest.raises(MultipleValuesError) as raised:
        headers["Sec-WebSocket-Protocol"]
    assert isinstance(raised.value, KeyError)
    assert str(raised.value) == "multiple values for header: Sec-WebSocket-Protocol"
    with pytest.raises(MultipleValuesError):
        headers.get("Sec-WebSocket-Protocol")
    with pytest.raises(MultipleValuesError):
        list(headers.items())


def test_multiple_values_error_without_args() -> None:
    assert str(MultipleValuesError()) == ""


def test_headers_get_all_returns_a_copy() -> None:
    headers = Headers(Upgrade="websocket")
    headers.get_all("Upgrade").append("h2c")
    assert headers.get_all("Upgrade") == ["websocket"]


def test_headers_delete() -> None:
    headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    del headers["A"]
    assert list(headers.raw_items()) == [("B", "2")]
    with pytest.raises(KeyError):
        del headers["A"]


def test_headers_pop() -> None:
    headers = Headers([("A", "1"), ("B", "2"), ("b", "3")])
    assert headers.pop("a") == "1"
    assert "A" not in headers
    with pytest.raises(KeyError):
        headers.pop("A")
    assert headers.pop("A", None) is None
    with pytest.raises(MultipleValuesError):
        headers.pop("B")
    assert headers.get_all("B") == ["2", "3"]


def test_headers_setdefault() -> None:
    headers = Headers(A="1")
    assert headers.setdefault("a", "2") == "1"
    assert headers.setdefault("B", "2") == "2"
    assert headers.setdefault("C") == ""
    assert list(headers.raw_items()) == [("A", "1"), ("B", "2"), ("C", "")]
    headers["A"] = "3"
    with pytest.raises(MultipleValuesError):
        headers.setdefault("A", "4")


def test_headers_clear() -> None:
    headers = Headers([("A", "1"), ("a", "2")])
    headers.clear()
    assert len(headers) == 0
    assert list(headers.raw_items()) == []


class KeysAndGetItem:
    """A dict-like object that isn't a Mapping."""

    def keys(self) -> Iterable[str]:
        return ["X-Custom"]

    def __getitem__(self, key: str) -> str:
        return "value"


def test_headers_update() -> None:
    headers = Headers(Server="wsrs")
    headers.update(
        Headers([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]),
        {"Cache-Control": "no-cache"},
        [("Vary", "Origin")],
        KeysAndGetItem(),
        Date="today",
    )
    assert list(headers.raw_items()) == [
        ("Server", "wsrs"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Cache-Control", "no-cache"),
        ("Vary", "Origin"),
        ("X-Custom", "value"),
        ("Date", "today"),
    ]


def test_headers_copy() -> None:
    headers = Headers([("A", "1")])
    copy = headers.copy()
    copy["A"] = "2"
    copy["B"] = "3"
    assert list(headers.raw_items()) == [("A", "1")]
    assert headers.get_all("A") == ["1"]
    assert copy.get_all("A") == ["1", "2"]
    assert type(copy) is Headers


def test_headers_equality() -> None:
    headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    assert headers == Headers([("b", "2"), ("a", "1"), ("A", "3")])
    assert headers != Headers([("A", "3"), ("B", "2"), ("a", "1")])
    assert Headers(A="1", B="2") == {"a": "1", "B": "2"}
    assert Headers(A="1") != {"a": "2"}
    assert Headers(A="1") != {1: "1"}
    assert Headers() == {}
    assert Headers() != []
    assert Headers().__eq__(42) is NotImplemented


def test_headers_serialize() -> None:
    headers = Headers([("Upgrade", "websocket"), ("X-Empty", ""), ("X", "caf\xe9")])
    assert headers.serialize() == b"Upgrade: websocket\r\nX-Empty: \r\nX: caf\xe9\r\n\r\n"
    assert str(headers) == "Upgrade: websocket\r\nX-Empty: \r\nX: caf\xe9\r\n\r\n"
    assert Headers().serialize() == b"\r\n"


def test_headers_repr() -> None:
    headers = Headers([("A", "1"), ("a", "2")])
    assert repr(headers) == "Headers([('A', '1'), ('a', '2')])"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("", "x", "invalid header name: ''"),
        ("Bad Name", "x", "invalid header name: 'Bad Name'"),
        ("Bad:Name", "x", "invalid header name: 'Bad:Name'"),
        ("X", "a\r\nInjected: 1", "invalid header value: 'a\\r\\nInjected: 1'"),
        ("X", "a\nb", "invalid header value: 'a\\nb'"),
        ("X", "\x00", "invalid header value: '\\x00'"),
        ("X", "\x7f", "invalid header value: '\\x7f'"),
        ("X", "\u20ac", "invalid header value: '\u20ac'"),
    ],
)
def test_headers_reject_invalid(name: str, value: str, message: str) -> None:
    headers = Headers()
    with pytest.raises(ValueError) as raised:
        headers[name] = value
    assert str(raised.value) == message
    assert len(headers) == 0


# Request.
