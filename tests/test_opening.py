"""The opening handshake of both sides without sockets: :mod:`wsrs.opening`.

A client's request goes through the server's :func:`accept` and the response back through
the client's :func:`check_response`, as bytes, with the parsers of :mod:`wsrs.http11`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import pytest

from wsrs.datastructures import Headers
from wsrs.exceptions import (
    AbortHandshake,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidStatusCode,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
)
from wsrs.extensions.base import Extension, ServerExtensionFactory
from wsrs.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from wsrs.http11 import Request, Response, parse_request, parse_response
from wsrs.opening import (
    Accepted,
    accept,
    check_extensions,
    check_origin,
    check_response,
    check_subprotocol,
    connect_request,
    negotiate_extensions,
    negotiate_subprotocol,
    reject,
    select_subprotocol,
)
from wsrs.uri import parse_uri
from wsrs.version import USER_AGENT


def server_accept(
    request: Request,
    *,
    origins: Sequence[str] | None = None,
    extensions: Sequence[ServerExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    **kwargs: object,
) -> Accepted:
    """``accept`` with the default policies, as a front end wires them."""
    return accept(
        request,
        process_origin=functools.partial(check_origin, origins=origins),
        process_extensions=functools.partial(negotiate_extensions, available_extensions=extensions),
        process_subprotocol=functools.partial(
            negotiate_subprotocol, available_subprotocols=subprotocols
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def over_the_wire(request: Request) -> Request:
    """Serialize and parse a request, as it travels."""
    parsed = parse_request(request.serialize())
    assert parsed is not None
    return parsed[0]


def response_over_the_wire(response: Response) -> Response:
    parsed = parse_response(response.serialize(), eof=True)
    assert parsed is not None
    return parsed[0]


def client_check(
    response: Response,
    key: str,
    *,
    extensions: Sequence[ClientPerMessageDeflateFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
) -> tuple[list[Extension], str | None]:
    return check_response(
        response,
        key,
        process_extensions=functools.partial(check_extensions, available_extensions=extensions),
        process_subprotocol=functools.partial(
            check_subprotocol, available_subprotocols=subprotocols
        ),
    )


# ---------------------------------------------------------------------------- both sides


def test_handshake_round_trip() -> None:
    request, key = connect_request(parse_uri("ws://example.com/chat?room=1"))
    accepted = server_accept(over_the_wire(request))
    response = response_over_the_wire(accepted.response)
    assert response.status_code == 101
    assert client_check(response, key) == ([], None)
    assert accepted.origin is None and accepted.extensions == [] and accepted.subprotocol is None


def test_handshake_round_trip_with_everything_negotiated() -> None:
    request, key = connect_request(
        parse_uri("wss://example.com/"),
        origin="https://example.com",
        extensions=[ClientPerMessageDeflateFactory(client_max_window_bits=True)],
        subprotocols=["chat", "superchat"],
    )
    assert request.headers["Host"] == "example.com"  # the default port is left out
    accepted = server_accept(
        over_the_wire(request),
        origins=["https://example.com"],
        extensions=[ServerPerMessageDeflateFactory()],
        subprotocols=["superchat", "chat"],
    )
    assert accepted.origin == "https://example.com"
    assert accepted.subprotocol == "superchat"  # 1 + 0 against 0 + 1: the server's order
    assert [type(e) for e in accepted.extensions] == [PerMessageDeflate]
    response = response_over_the_wire(accepted.response)
    assert response.headers["Sec-WebSocket-Protocol"] == "superchat"
    assert response.headers["Server"] == USER_AGENT
    extensions, subprotocol = client_check(
        response,
        key,
        extensions=[ClientPerMessageDeflateFactory(client_max_window_bits=True)],
        subprotocols=["chat", "superchat"],
    )
    assert [type(e) for e in extensions] == [PerMessageDeflate]
    assert subprotocol == "superchat"


# ---------------------------------------------------------------------------- server


def test_accept_rfc_6455_example() -> None:
    # RFC 6455 §1.3: the key "dGhlIHNhbXBsZSBub25jZQ==" is answered by
    # "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    headers = Headers(
        Host="server.example.com",
        Upgrade="websocket",
        Connection="Upgrade",
    )
    headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    headers["Sec-WebSocket-Version"] = "13"
    accepted = server_accept(Request("GET", "/chat", headers))
    assert accepted.response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accepted.response.reason_phrase == "Switching Protocols"


def test_accept_extra_headers_may_override_server() -> None:
    request, _ = connect_request(parse_uri("ws://example.com/"))
    accepted = server_accept(request, extra_headers={"Server": "mine", "X-A": "1"})
    assert accepted.response.headers["Server"] == "mine"
    assert accepted.response.headers["X-A"] == "1"
    accepted = server_accept(request, server_header=None)
    assert "Server" not in accepted.response.headers


def test_accept_calls_extra_headers_only_for_an_acceptable_request() -> None:
    calls: list[None] = []

    def extra() -> dict[str, str]:
        calls.append(None)
        return {"X-Called": "yes"}

    request, _ = connect_request(parse_uri("ws://example.com/"))
    assert server_accept(request, extra_headers=extra).response.headers["X-Called"] == "yes"
    del request.headers["Sec-WebSocket-Key"]
    with pytest.raises(InvalidHeader):
        server_accept(request, extra_headers=extra)
    assert len(calls) == 1


def test_accept_checks_origin_before_negotiating() -> None:
    negotiated: list[Headers] = []

    def extensions(headers: Headers) -> tuple[str | None, list[Extension]]:
        negotiated.append(headers)
        return None, []

    request, _ = connect_request(parse_uri("ws://example.com/"), origin="https://evil.example")
    with pytest.raises(InvalidOrigin):
        accept(
            request,
            process_origin=functools.partial(check_origin, origins=["https://example.com"]),
            process_extensions=extensions,
            process_subprotocol=lambda headers: None,
        )
    assert negotiated == []


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        (None, None, True),
        (None, "https://any.example", True),
        (["https://a.example"], "https://a.example", True),
        (["https://a.example"], "https://b.example", False),
        (["https://a.example"], None, False),
        (["https://a.example", ""], None, True),
    ],
)
def test_check_origin(origins: list[str] | None, origin: str | None, allowed: bool) -> None:
    headers = Headers() if origin is None else Headers(Origin=origin)
    if allowed:
        assert check_origin(headers, origins) == origin
    else:
        with pytest.raises(InvalidOrigin):
            check_origin(headers, origins)


def test_check_origin_rejects_several_origins() -> None:
    headers = Headers([("Origin", "https://a.example"), ("Origin", "https://b.example")])
    with pytest.raises(InvalidHeader, match="multiple values"):
        check_origin(headers)


class Refusing(ServerExtensionFactory):
    """A server factory that refuses every offer."""

    name = "permessage-deflate"

    def process_request_params(
        self, params: Sequence[tuple[str, str | None]], accepted: Sequence[Extension]
    ) -> tuple[list[tuple[str, str | None]], Extension]:
        raise NegotiationError("refused")


def test_negotiate_extensions() -> None:
    offer = Headers({"Sec-WebSocket-Extensions": "x-unknown, permessage-deflate"})
    assert negotiate_extensions(Headers(), [ServerPerMessageDeflateFactory()]) == (None, [])
    assert negotiate_extensions(offer, None) == (None, [])
    header, extensions = negotiate_extensions(offer, [ServerPerMessageDeflateFactory()])
    assert header == "permessage-deflate"
    assert len(extensions) == 1
    # A factory that refuses declines the offer; the next of the same name may accept.
    assert negotiate_extensions(offer, [Refusing()]) == (None, [])
    header, _ = negotiate_extensions(offer, [Refusing(), ServerPerMessageDeflateFactory()])
    assert header == "permessage-deflate"


def test_negotiate_extensions_rejects_a_malformed_offer() -> None:
    with pytest.raises(InvalidHeaderFormat):
        negotiate_extensions(
            Headers({"Sec-WebSocket-Extensions": "permessage-deflate;;"}),
            [ServerPerMessageDeflateFactory()],
        )


def test_negotiate_subprotocol() -> None:
    offer = Headers({"Sec-WebSocket-Protocol": "a, b"})
    assert negotiate_subprotocol(Headers(), ["a"]) is None
    assert negotiate_subprotocol(offer, None) is None
    assert negotiate_subprotocol(offer, ["c"]) is None
    assert negotiate_subprotocol(offer, ["b", "a"]) == "b"  # 1 + 0 against 0 + 1: server's
    assert negotiate_subprotocol(offer, ["b"]) == "b"
    assert negotiate_subprotocol(offer, ["a", "b"], lambda client, server: server[-1]) == "b"


def test_select_subprotocol_weighs_both_preferences() -> None:
    assert select_subprotocol(["a", "b", "c", "d"], ["d", "b"]) == "b"  # 1 + 1 < 3 + 0
    assert select_subprotocol(["a"], ["b"]) is None


@pytest.mark.parametrize(
    ("exc", "status", "header"),
    [
        (InvalidOrigin("https://evil.example"), 403, None),
        (InvalidHeaderValue("Sec-WebSocket-Version", "8"), 426, ("Sec-WebSocket-Version", "13")),
        (InvalidHeaderValue("Sec-WebSocket-Key", "short"), 400, None),
        (SecurityError("request too large"), 431, None),
        (InvalidMessage("did not receive a valid HTTP request"), 400, None),
        (InvalidUpgrade("Upgrade", "h2c"), 400, None),
        (NegotiationError("bad"), 400, None),
        (InvalidHandshake("anything else"), 400, None),
    ],
)
def test_reject_maps_failures_to_status_codes(
    exc: Exception, status: int, header: tuple[str, str] | None
) -> None:
    response = reject(exc)
    assert response is not None
    assert response.status_code == status
    assert response.headers["Connection"] == "close"
    assert response.body == f"Failed to open a WebSocket connection: {exc}.\n".encode()
    assert response.headers["Content-Length"] == str(len(response.body))
    if header is not None:
        assert response.headers[header[0]] == header[1]


def test_reject_hides_the_details_of_a_bug() -> None:
    response = reject(RuntimeError("secret detail"))
    assert response is not None
    assert response.status_code == 500 and response.body is not None
    assert b"secret" not in response.body


@pytest.mark.parametrize(
    "exc", [EOFError("gone"), ConnectionResetError("reset"), TimeoutError("slow")]
)
def test_reject_sends_nothing_when_no_response_can_help(exc: Exception) -> None:
    assert reject(exc) is None


def test_reject_sends_the_response_of_abort_handshake() -> None:
    response = reject(AbortHandshake(200, {"Content-Type": "text/plain"}, b"OK\n"))
    assert response is not None
    assert (response.status_code, response.reason_phrase, response.body) == (200, "OK", b"OK\n")
    assert response.headers["Content-Length"] == "3"
    assert response.headers["Connection"] == "close"
    # The application's own framing headers are kept.
    response = reject(AbortHandshake(401, {"Content-Length": "0", "Connection": "keep-alive"}))
    assert response is not None
    assert response.headers.get_all("Content-Length") == ["0"]
    assert response.headers["Connection"] == "keep-alive"


# ---------------------------------------------------------------------------- client


def test_connect_request() -> None:
    request, key = connect_request(
        parse_uri("ws://[::1]:8080/path?q"),
        extra_headers=[("X-Extra", "1"), ("User-Agent", "mine/1.0")],
    )
    assert request.method == "GET" and request.path == "/path?q"
    assert request.headers["Host"] == "[::1]:8080"
    assert request.headers["User-Agent"] == "mine/1.0"
    assert request.headers["Sec-WebSocket-Key"] == key
    assert request.headers["Sec-WebSocket-Version"] == "13"
    assert "Origin" not in request.headers
    assert "Sec-WebSocket-Extensions" not in request.headers
    request, _ = connect_request(parse_uri("ws://example.com/"), user_agent=None)
    assert "User-Agent" not in request.headers


def test_connect_request_keys_are_fresh() -> None:
    uri = parse_uri("ws://example.com/")
    assert connect_request(uri)[1] != connect_request(uri)[1]


def test_check_response_rejects_another_status() -> None:
    with pytest.raises(InvalidStatusCode) as raised:
        client_check(Response(403, "Forbidden", Headers()), "key")
    assert raised.value.status_code == 403


def test_check_response_rejects_a_wrong_accept() -> None:
    request, key = connect_request(parse_uri("ws://example.com/"))
    response = server_accept(request).response
    with pytest.raises(InvalidHeaderValue):
        client_check(response, "AAAAAAAAAAAAAAAAAAAAAA==")
    assert client_check(response, key) == ([], None)


def test_check_extensions() -> None:
    accepted = Headers({"Sec-WebSocket-Extensions": "permessage-deflate"})
    factory = ClientPerMessageDeflateFactory()
    assert check_extensions(Headers(), None) == []
    with pytest.raises(InvalidHandshake, match="no extensions supported"):
        check_extensions(accepted, None)
    assert len(check_extensions(accepted, [factory])) == 1
    with pytest.raises(NegotiationError, match="unsupported extension"):
        check_extensions(Headers({"Sec-WebSocket-Extensions": "x-unknown"}), [factory])
    # Parameters the factory refuses: no other factory takes it.
    refused = Headers({"Sec-WebSocket-Extensions": "permessage-deflate; x=1"})
    with pytest.raises(NegotiationError, match="unsupported extension"):
        check_extensions(refused, [factory])


def test_check_subprotocol() -> None:
    chose = Headers({"Sec-WebSocket-Protocol": "chat"})
    assert check_subprotocol(Headers(), None) is None
    assert check_subprotocol(chose, ["chat"]) == "chat"
    with pytest.raises(InvalidHandshake, match="no subprotocols supported"):
        check_subprotocol(chose, None)
    with pytest.raises(NegotiationError, match="unsupported subprotocol: chat"):
        check_subprotocol(chose, ["superchat"])
    with pytest.raises(InvalidHandshake, match="multiple subprotocols: chat, superchat"):
        check_subprotocol(Headers({"Sec-WebSocket-Protocol": "chat, superchat"}), ["chat"])


def test_check_origin_with_patterns_and_none() -> None:
    import re

    origins: list[str | re.Pattern[str] | None] = [
        "https://a.example",
        re.compile(r"https://[a-z]+\.b\.example"),
        None,
    ]
    assert check_origin(Headers(Origin="https://x.b.example"), origins) == "https://x.b.example"
    assert check_origin(Headers(), origins) is None
    with pytest.raises(InvalidOrigin):
        check_origin(Headers(Origin="https://x.c.example"), origins)
    with pytest.raises(InvalidOrigin):
        check_origin(Headers(), ["https://a.example"])


def test_select_subprotocol_in_server_order() -> None:
    from wsrs.opening import select_subprotocol_in_server_order as select

    assert select(["b", "a"], ["a", "b"]) == "a"
    with pytest.raises(NegotiationError, match="missing subprotocol"):
        select([], ["a"])
    with pytest.raises(NegotiationError, match="expected one of a, b"):
        select(["c"], ["a", "b"])
