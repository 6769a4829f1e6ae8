from __future__ import annotations

import pytest

from wsrs.exceptions import InvalidURI
from wsrs.uri import WebSocketURI, ip_version, parse_uri


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("ws://localhost/", (False, "localhost", 80, "/")),
        ("wss://localhost/", (True, "localhost", 443, "/")),
        ("ws://localhost", (False, "localhost", 80, "/")),
        ("ws://localhost:8080/", (False, "localhost", 8080, "/")),
        ("wss://localhost:80/", (True, "localhost", 80, "/")),
        ("ws://localhost:/", (False, "localhost", 80, "/")),
        ("ws://localhost/path?query", (False, "localhost", 80, "/path?query")),
        ("ws://localhost?query", (False, "localhost", 80, "/?query")),
        ("ws://localhost/path?", (False, "localhost", 80, "/path")),
        ("ws://localhost/a;b/c", (False, "localhost", 80, "/a;b/c")),
        ("ws://localhost/%20%23", (False, "localhost", 80, "/%20%23")),
        ("WS://LOCALHOST/PATH?QUERY", (False, "localhost", 80, "/PATH?QUERY")),
        ("ws://127.0.0.1:8765/", (False, "127.0.0.1", 8765, "/")),
        ("ws://[::1]/", (False, "::1", 80, "/")),
        ("wss://[::1]:8443/chat", (True, "::1", 8443, "/chat")),
        ("ws://[2001:DB8::1]/", (False, "2001:db8::1", 80, "/")),
        ("ws://xn--bcher-kva.de/", (False, "xn--bcher-kva.de", 80, "/")),
        ("ws://bücher.de/", (False, "xn--bcher-kva.de", 80, "/")),
        ("ws://localhost/ä?é=ö", (False, "localhost", 80, "/%C3%A4?%C3%A9=%C3%B6")),
        ("ws://localhost/é%C3%A9", (False, "localhost", 80, "/%C3%A9%C3%A9")),
        ("ws://a-b.c_d~e/", (False, "a-b.c_d~e", 80, "/")),
    ],
)
def test_parse_uri(uri: str, parsed: tuple[bool, str, int, str]) -> None:
    result = parse_uri(uri)
    assert isinstance(result, WebSocketURI)
    assert result[:4] == parsed and result.user_info is None


def test_websocket_uri_fields() -> None:
    uri = parse_uri("wss://example.com:8443/chat?room=1")
    assert uri.secure is True
    assert uri.host == "example.com"
    assert uri.port == 8443
    assert uri.resource_name == "/chat?room=1"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://localhost/", "scheme isn't ws or wss"),
        ("https://localhost/", "scheme isn't ws or wss"),
        ("localhost/", "scheme isn't ws or wss"),
        ("", "scheme isn't ws or wss"),
        ("ws://localhost/path#fragment", "contains a fragment identifier"),
        ("ws://localhost/#", "contains a fragment identifier"),
        ("ws://user:pass@localhost/", "contains user info"),
        ("ws://user@localhost/", "contains user info"),
        ("ws://@localhost/", "contains user info"),
        ("ws:///path", "has no host"),
        ("ws://:8080/", "has no host"),
        ("ws:/localhost/", "has no host"),
        ("ws://local<host/", "has an invalid host"),
        ("ws://" + "é" * 64 + ".com/", "has an invalid host"),
        ("ws://[::1/", "has an invalid host"),
        ("ws://::1]/", "has an invalid host"),
        ("ws://[::1]x/", "has an invalid host"),
        ("ws://[127.0.0.1]/", "has an invalid host"),
        ("ws://[v1.fe]/", "has an invalid host"),
        ("ws://localhost:port/", "has an invalid port"),
        ("ws://localhost:65536/", "has an invalid port"),
        ("ws://local host/", "contains a space or a control character"),
        ("ws://localhost/a b", "contains a space or a control character"),
        ("ws://localhost/a\tb", "contains a space or a control character"),
        ("ws://localhost/\r\nX-Injected: 1", "contains a space or a control character"),
        ("ws://localhost/\x00", "contains a space or a control character"),
        ("ws://localhost/\x7f", "contains a space or a control character"),
    ],
)
def test_parse_invalid_uri(uri: str, reason: str) -> None:
    with pytest.raises(InvalidURI) as raised:
        parse_uri(uri)
    assert raised.value.uri == uri
    assert raised.value.msg == reason
    assert str(raised.value) == f"{uri} isn't a valid URI: {reason}"


@pytest.mark.parametrize(
    ("host", "version"),
    [
        ("127.0.0.1", 4),
        ("::1", 6),
        ("fe80::1%eth0", 6),
        ("example.com", None),
        ("localhost", None),
        ("", None),
        ("1.2.3", None),
    ],
)
def test_ip_version(host: str, version: int | None) -> None:
    assert ip_version(host) == version
    assert ip_version(host) == version  # from the cache
