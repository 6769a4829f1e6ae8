"""Define the exceptions raised by wsrs.

The hierarchy follows websockets 4.0, extended with the finer-grained handshake errors and the
``ConnectionClosedOK`` / ``ConnectionClosedError`` split that websockets added later:

* :exc:`WebSocketException`
    * :exc:`InvalidHandshake`
        * :exc:`AbortHandshake`
        * :exc:`InvalidMessage`
        * :exc:`SecurityError`
        * :exc:`InvalidHeader`
            * :exc:`InvalidHeaderFormat`
            * :exc:`InvalidHeaderValue`
            * :exc:`InvalidUpgrade`
            * :exc:`InvalidOrigin`
        * :exc:`InvalidStatusCode`
        * :exc:`NegotiationError`
            * :exc:`InvalidParameterName`
            * :exc:`InvalidParameterValue`
            * :exc:`DuplicateParameter`
    * :exc:`InvalidState`
        * :exc:`ConnectionClosed`
            * :exc:`ConnectionClosedOK`
            * :exc:`ConnectionClosedError`
    * :exc:`InvalidURI`
    * :exc:`PayloadTooBig`
    * :exc:`WebSocketProtocolError` (also available as :exc:`ProtocolError`)

The codec errors, :exc:`WebSocketProtocolError` and :exc:`PayloadTooBig`, carry the close code
that fails the connection in their ``close_code`` attribute, so the protocol handles every
error coming from the Rust core with a single ``except`` clause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .datastructures import Headers, HeadersLike


if TYPE_CHECKING:
    from .frames import Close
    from .http11 import Response


__all__ = [
    "CLOSE_CODES",
    "AbortHandshake",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DuplicateParameter",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidState",
    "InvalidStatus",
    "InvalidStatusCode",
    "InvalidURI",
    "InvalidUpgrade",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "SecurityError",
    "WebSocketException",
    "WebSocketProtocolError",
    "connection_closed",
    "format_close",
]


class WebSocketException(Exception):
    """Base class of every exception defined by wsrs."""


# Handshake errors.


class InvalidHandshake(WebSocketException):
    """Raise when the opening handshake fails."""


class AbortHandshake(InvalidHandshake):
    """Raise to abort the opening handshake and answer with an HTTP response.

    A server's ``process_request`` raises it (or returns the equivalent tuple) to send
    ``status``, ``headers`` and ``body`` instead of switching protocols.

    Args:
        status: HTTP status code, e.g. an :class:`http.HTTPStatus` member.
        headers: Response headers, as anything :class:`~wsrs.datastructures.Headers` accepts.
        body: Response body; ``None`` means empty, as in websockets 4.0.
    """

    def __init__(self, status: int, headers: HeadersLike, body: bytes | None = None) -> None:
        self.status = status
        """HTTP status code of the response."""
        self.headers = Headers(headers)
        """Headers of the response."""
        self.body = b"" if body is None else body
        """Body of the response, possibly empty."""
        super().__init__(
            f"HTTP {status}, {len(self.headers)} headers, {len(self.body)} bytes",
        )


class InvalidMessage(InvalidHandshake):
    """Raise when a handshake request or response is not valid HTTP/1.1."""


class SecurityError(InvalidHandshake):
    """Raise when a handshake request or response exceeds a security limit.

    The limits (line length, number of headers, total size, body size) are constants in
    :mod:`wsrs.http11`.
    """


class InvalidHeader(InvalidHandshake):
    """Raise when an HTTP header is missing, malformed or has an unacceptable value.

    Args:
        name: Header name, e.g. ``"Sec-WebSocket-Key"``.
        value: Header value; ``None`` means that the header is missing.
    """

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name = name
        """Name of the header."""
        self.value = value
        """Value of the header, or ``None`` if it is missing."""
        if value is None:
            message = f"missing {name} header"
        elif value == "":
            message = f"empty {name} header"
        else:
            message = f"invalid {name} header: {value}"
        super().__init__(message)


class InvalidHeaderFormat(InvalidHeader):
    """Raise when an HTTP header does not match its grammar.

    websockets 4.0 named this error ``InvalidHeader(message, string, pos)``.

    Args:
        name: Header name.
        error: What the parser expected, e.g. ``"expected token"``.
        header: Header value being parsed.
        pos: Position in ``header`` where parsing failed.
    """

    def __init__(self, name: str, error: str, header: str, pos: int) -> None:
        self.header = header
        """Header value being parsed."""
        self.pos = pos
        """Position in :attr:`header` where parsing failed."""
        super().__init__(name, f"{error} at {pos} in {header}")


class InvalidHeaderValue(InvalidHeader):
    """Raise when an HTTP header is well-formed but its value is not acceptable.

    A server answers ``426 Upgrade Required`` when :attr:`~InvalidHeader.name` is
    ``"Sec-WebSocket-Version"`` and ``400 Bad Request`` otherwise.
    """


class InvalidUpgrade(InvalidHeader):
    """Raise when the ``Upgrade`` or ``Connection`` header does not ask for WebSocket."""


class InvalidOrigin(InvalidHeader):
    """Raise when the ``Origin`` header of a request is not allowed.

    Args:
        origin: Value of the ``Origin`` header, or ``None`` if it is missing.
    """

    def __init__(self, origin: str | None) -> None:
        super().__init__("Origin", origin)


class InvalidStatusCode(InvalidHandshake):
    """Raise when the status code of a handshake response is not 101.

    Args:
        status_code: Status code received from the server.
    """

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        """Status code received from the server."""
        super().__init__(f"server rejected WebSocket connection: HTTP {status_code}")

    @property
    def code(self) -> int:
        """Return :attr:`status_code`, under the name given by the websockets 3.4 changelog."""
        return self.status_code


class InvalidStatus(InvalidHandshake):
    """Raise when a handshake response rejects the WebSocket upgrade (websockets >= 10 API).

    Args:
        response: The HTTP response the server sent instead of 101.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        """The response: ``status_code``, ``headers``, ``body``."""
        super().__init__(f"server rejected WebSocket connection: HTTP {response.status_code}")


class InvalidProxy(WebSocketException):
    """Raise when the address of a proxy isn't valid (websockets >= 15 API).

    Args:
        proxy: The proxy's address.
        msg: What is wrong with it.
    """

    def __init__(self, proxy: str, msg: str) -> None:
        self.proxy = proxy
        """The proxy's address."""
        self.msg = msg
        """What is wrong with it."""
        super().__init__(f"{proxy} isn't a valid proxy: {msg}")


class ProxyError(InvalidHandshake):
    """Raise when connecting through a proxy fails."""


class InvalidProxyMessage(ProxyError):
    """Raise when the response of an HTTP proxy to ``CONNECT`` is malformed."""


class InvalidProxyStatus(ProxyError):
    """Raise when an HTTP proxy refuses to open a tunnel.

    Args:
        response: The proxy's response, whose status isn't 2xx.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        """The proxy's response."""
        super().__init__(f"proxy rejected connection: HTTP {response.status_code:d}")


class NegotiationError(InvalidHandshake):
    """Raise when negotiating a subprotocol or an extension fails."""


class InvalidParameterName(NegotiationError):
    """Raise when an extension parameter has an unknown name.

    Args:
        name: Parameter name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        """Name of the parameter."""
        super().__init__(f"invalid parameter name: {name}")


class InvalidParameterValue(NegotiationError):
    """Raise when an extension parameter has a missing or unacceptable value.

    Args:
        name: Parameter name.
        value: Parameter value; ``None`` means that the value is missing.
    """

    def __init__(self, name: str, value: str | None) -> None:
        self.name = name
        """Name of the parameter."""
        self.value = value
        """Value of the parameter, or ``None`` if it is missing."""
        if value is None:
            message = f"missing value for parameter {name}"
        elif value == "":
            message = f"empty value for parameter {name}"
        else:
            message = f"invalid value for parameter {name}: {value}"
        super().__init__(message)


class DuplicateParameter(NegotiationError):
    """Raise when an extension parameter occurs more than once.

    Args:
        name: Parameter name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        """Name of the parameter."""
        super().__init__(f"duplicate parameter: {name}")


# Connection errors.


class InvalidState(WebSocketException):
    """Raise when an operation is forbidden in the current state of the connection."""


CLOSE_CODES: dict[int, str] = {
    1000: "OK",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported type",
    # 1004 is reserved.
    1005: "no status code [internal]",
    1006: "connection closed abnormally [internal]",
    1007: "invalid data",
    1008: "policy violation",
    1009: "message too big",
    1010: "extension required",
    1011: "unexpected error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS failure [internal]",
}
"""Explanations of the close codes, as shown in :exc:`ConnectionClosed` messages."""


def format_close(code: int, reason: str) -> str:
    """Describe a close code and reason for humans.

    Args:
        code: Close code.
        reason: Close reason; empty means none.

    Returns:
        A string such as ``"code = 1000 (OK), no reason"``.
    """
    # RFC 6455 §7.4.2: "Status codes in the range 3000-3999 are reserved for use by libraries,
    # frameworks, and applications. [...] Status codes in the range 4000-4999 are reserved for
    # private use".
    if 3000 <= code < 4000:
        explanation = "registered"
    elif 4000 <= code < 5000:
        explanation = "private use"
    else:
        explanation = CLOSE_CODES.get(code, "unknown")
    result = f"code = {code} ({explanation}), "
    result += f"reason = {reason}" if reason else "no reason"
    return result


class ConnectionClosed(InvalidState):
    """Raise when reading from or writing to a closed connection.

    The constructor doesn't pick a subclass; :func:`connection_closed` does.

    Args:
        code: Close code of the connection.
        reason: Close reason of the connection; empty means none.
        rcvd: The close frame received, if any (websockets >= 10 API).
        sent: The close frame sent, if any.
        rcvd_then_sent: Whether the close frame was received before one was sent, when
            both were; ``None`` otherwise.
        frames: Describe the connection by its close frames, as websockets >= 10 does
            (``"received 1000 (OK); then sent 1000 (OK)"``), rather than by its close code,
            as websockets 4.0 does (``"WebSocket connection is closed: code = 1000 (OK),
            no reason"``).
    """

    def __init__(
        self,
        code: int,
        reason: str,
        *,
        rcvd: Close | None = None,
        sent: Close | None = None,
        rcvd_then_sent: bool | None = None,
        frames: bool = False,
    ) -> None:
        self.code = code
        """Close code of the connection."""
        self.reason = reason
        """Close reason of the connection."""
        self.rcvd = rcvd
        """The close frame received, if any: its ``code`` and ``reason``."""
        self.sent = sent
        """The close frame sent, if any: its ``code`` and ``reason``."""
        self.rcvd_then_sent = rcvd_then_sent
        """With both close frames, whether the peer's came first; ``None`` otherwise."""
        self._frames = frames
        super().__init__(f"WebSocket connection is closed: {format_close(code, reason)}")

    def __str__(self) -> str:
        if not self._frames:
            return super().__str__()
        if self.rcvd is None and self.sent is None:
            return "no close frame received or sent"
        if self.rcvd is None:
            return f"sent {self.sent}; no close frame received"
        if self.sent is None:
            return f"received {self.rcvd}; no close frame sent"
        if self.rcvd_then_sent:
            return f"received {self.rcvd}; then sent {self.sent}"
        return f"sent {self.sent}; then received {self.rcvd}"


class ConnectionClosedOK(ConnectionClosed):
    """Raise like :exc:`ConnectionClosed` when the connection closed normally (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed):
    """Raise like :exc:`ConnectionClosed` when the connection closed with an error.

    The close code is neither 1000 (OK) nor 1001 (going away).
    """


def connection_closed(
    code: int,
    reason: str,
    *,
    rcvd: Close | None = None,
    sent: Close | None = None,
    rcvd_then_sent: bool | None = None,
    frames: bool = False,
) -> ConnectionClosed:
    """Build the :exc:`ConnectionClosed` subclass that matches a close code.

    Args:
        code: Close code of the connection.
        reason: Close reason of the connection.
        rcvd: The close frame received, if any.
        sent: The close frame sent, if any.
        rcvd_then_sent: With both, whether the one received came first.
        frames: Describe it by its close frames (websockets >= 10) rather than its code.

    Returns:
        A :exc:`ConnectionClosedOK` for 1000 and 1001, a :exc:`ConnectionClosedError` otherwise.
    """
    cls = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
    return cls(code, reason, rcvd=rcvd, sent=sent, rcvd_then_sent=rcvd_then_sent, frames=frames)


# Other errors.


class ConcurrencyError(WebSocketException, RuntimeError):
    """Raise when receiving or sending messages concurrently is not allowed: two coroutines
    call ``recv()`` at once, or send while a fragmented message is being sent."""


class InvalidURI(WebSocketException):
    """Raise when connecting to a URI that isn't a valid WebSocket URI.

    Args:
        uri: The URI.
        msg: Why it isn't valid, if known.
    """

    def __init__(self, uri: str, msg: str | None = None) -> None:
        self.uri = uri
        """The URI."""
        self.msg = msg
        """Why the URI isn't valid, or ``None``."""
        message = f"{uri} isn't a valid URI"
        if msg is not None:
            message += f": {msg}"
        super().__init__(message)


class PayloadTooBig(WebSocketException):
    """Raise when a received message or frame exceeds the maximum size."""

    close_code: int = 1009
    """Close code that fails the connection: 1009 (message too big)."""


class WebSocketProtocolError(WebSocketException):
    """Raise when the other side breaks the WebSocket protocol.

    Args:
        *args: Message, as for :exc:`Exception`.
        close_code: Close code that fails the connection: 1002 (protocol error) by default,
            1007 (invalid data) for invalid UTF-8.
    """

    close_code: int = 1002
    """Close code that fails the connection."""

    def __init__(self, *args: object, close_code: int = 1002) -> None:
        super().__init__(*args)
        self.close_code = close_code


ProtocolError = WebSocketProtocolError
"""Alias of :exc:`WebSocketProtocolError`, the name used by later versions of websockets."""
