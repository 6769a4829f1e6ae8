"""Build and check the headers of the WebSocket opening handshake, per `RFC 6455 §4`_.

A client:

1. generates a key with :func:`generate_key` and adds the handshake headers to its ``GET``
   request with :func:`build_request`;
2. checks that the response status is 101, then checks the response headers with
   :func:`check_response` and the same key.

A server:

1. checks that the request is a ``GET`` (:func:`~wsrs.http11.parse_request` does), then checks
   the request headers with :func:`check_request`, which returns the client's key;
2. answers 101 with the headers added by :func:`build_response` and that key, or an error:
   ``426 Upgrade Required`` with ``Sec-WebSocket-Version: 13`` if :func:`check_request` raised
   :exc:`~wsrs.exceptions.InvalidHeaderValue` for ``Sec-WebSocket-Version``,
   ``400 Bad Request`` for any other :exc:`~wsrs.exceptions.InvalidHandshake`.

The checks of ``Host`` and ``Origin``, and the negotiation of subprotocols and extensions,
depend on the application and belong to the caller; :mod:`wsrs.headers` parses their values.

.. _RFC 6455 §4: https://datatracker.ietf.org/doc/html/rfc6455#section-4
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

from .datastructures import Headers
from .exceptions import InvalidHeader, InvalidHeaderValue, InvalidUpgrade
from .headers import parse_connection, parse_upgrade


__all__ = [
    "GUID",
    "VERSION",
    "accept_key",
    "build_request",
    "build_response",
    "check_request",
    "check_response",
    "generate_key",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""Globally Unique Identifier appended to the key before hashing it (RFC 6455 §1.3)."""

VERSION = "13"
"""The only value of ``Sec-WebSocket-Version`` defined by RFC 6455 (§4.1)."""


def generate_key() -> str:
    """Generate a random value for the ``Sec-WebSocket-Key`` header of a request.

    Returns:
        16 random bytes from a CSPRNG, base64-encoded.
    """
    # RFC 6455 §4.1: "The value of this header field MUST be a nonce consisting of a randomly
    # selected 16-byte value that has been base64-encoded [...]. The nonce MUST be selected
    # randomly for each connection."
    return base64.b64encode(secrets.token_bytes(16)).decode()


def accept_key(key: str) -> str:
    """Compute the ``Sec-WebSocket-Accept`` value that answers a ``Sec-WebSocket-Key``.

    Args:
        key: Value of the ``Sec-WebSocket-Key`` header.

    Returns:
        The base64-encoded SHA-1 hash of the key followed by :data:`GUID`.
    """
    # RFC 6455 §4.2.2: "concatenate this with the Globally Unique Identifier [...] A SHA-1
    # hash (160 bits) [FIPS.180-3], base64-encoded (see Section 4 of [RFC4648]), of this
    # concatenation is then returned in the server's handshake."
    sha1 = hashlib.sha1((key + GUID).encode(), usedforsecurity=False).digest()
    return base64.b64encode(sha1).decode()


def build_request(headers: Headers, key: str) -> None:
    """Add the headers of the WebSocket handshake to a request.

    Args:
        headers: Request headers, updated in place.
        key: Value from :func:`generate_key`, to pass to :func:`check_response` later.
    """
    # RFC 6455 §4.1, items 5 to 7 and 9 of the client requirements.
    headers["Upgrade"] = "websocket"
    headers["Connection"] = "Upgrade"
    headers["Sec-WebSocket-Key"] = key
    headers["Sec-WebSocket-Version"] = VERSION


def check_request(headers: Headers) -> str:
    """Check the WebSocket handshake headers of a request.

    Args:
        headers: Request headers.

    Returns:
        The value of the ``Sec-WebSocket-Key`` header, to pass to :func:`build_response`.

    Raises:
        InvalidUpgrade: If ``Connection`` lacks ``Upgrade`` or ``Upgrade`` lacks ``websocket``.
        InvalidHeaderFormat: If ``Connection`` or ``Upgrade`` is malformed.
        InvalidHeaderValue: If ``Sec-WebSocket-Version`` isn't 13 (answer 426 with
            ``Sec-WebSocket-Version: 13``), or if ``Sec-WebSocket-Key`` isn't 16 bytes in
            base64.
        InvalidHeader: If ``Sec-WebSocket-Version`` or ``Sec-WebSocket-Key`` is missing or
            repeated.
    """
    _check_upgrade(headers)

    # RFC 6455 §4.2.1: "A |Sec-WebSocket-Version| header field, with a value of 13."
    # Checked before the key so that clients of other versions get a 426 response.
    version = _get_single(headers, "Sec-WebSocket-Version")
    if version != VERSION:
        raise InvalidHeaderValue("Sec-WebSocket-Version", version)

    # RFC 6455 §4.2.1: "A |Sec-WebSocket-Key| header field with a base64-encoded (see
    # Section 4 of [RFC4648]) value that, when decoded, is 16 bytes in length."
    key = _get_single(headers, "Sec-WebSocket-Key")
    try:
        raw_key = base64.b64decode(key.encode(), validate=True)
    except binascii.Error:
        raise InvalidHeaderValue("Sec-WebSocket-Key", key) from None
    if len(raw_key) != 16:
        raise InvalidHeaderValue("Sec-WebSocket-Key", key)

    return key


def build_response(headers: Headers, key: str) -> None:
    """Add the headers of the WebSocket handshake to a 101 response.

    Args:
        headers: Response headers, updated in place.
        key: Value returned by :func:`check_request`.
    """
    # RFC 6455 §4.2.2, items 5.2 to 5.4 of the server requirements.
    headers["Upgrade"] = "websocket"
    headers["Connection"] = "Upgrade"
    headers["Sec-WebSocket-Accept"] = accept_key(key)


def check_response(headers: Headers, key: str) -> None:
    """Check the WebSocket handshake headers of a 101 response.

    Checking the status code is up to the caller.

    Args:
        headers: Response headers.
        key: Value passed to :func:`build_request`.

    Raises:
        InvalidUpgrade: If ``Connection`` lacks ``Upgrade`` or ``Upgrade`` lacks ``websocket``.
        InvalidHeaderFormat: If ``Connection`` or ``Upgrade`` is malformed.
        InvalidHeaderValue: If ``Sec-WebSocket-Accept`` doesn't match ``key``.
        InvalidHeader: If ``Sec-WebSocket-Accept`` is missing or repeated.
    """
    _check_upgrade(headers)

    # RFC 6455 §4.1: "If the response lacks a |Sec-WebSocket-Accept| header field or the
    # |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of the
    # concatenation of the |Sec-WebSocket-Key| (as a string, not base64-decoded) with the
    # string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" [...] the client MUST _Fail the WebSocket
    # Connection_."
    accept = _get_single(headers, "Sec-WebSocket-Accept")
    if accept != accept_key(key):
        raise InvalidHeaderValue("Sec-WebSocket-Accept", accept)


def _check_upgrade(headers: Headers) -> None:
    """Check the ``Connection`` and ``Upgrade`` headers of a request or a response."""
    # RFC 6455 §4.2.1: "A |Connection| header field that includes the token "Upgrade",
    # treated as an ASCII case-insensitive value." §4.1 requires the same of responses.
    connection = headers.get_all("Connection")
    if not connection:
        raise InvalidUpgrade("Connection")
    if not any(option.lower() == "upgrade" for option in parse_connection(connection)):
        raise InvalidUpgrade("Connection", ", ".join(connection))

    # RFC 6455 §4.2.1: "An |Upgrade| header field containing the value "websocket", treated
    # as an ASCII case-insensitive value." §4.1 requires the same of responses.
    upgrade = headers.get_all("Upgrade")
    if not upgrade:
        raise InvalidUpgrade("Upgrade")
    if not any(protocol.lower() == "websocket" for protocol in parse_upgrade(upgrade)):
        raise InvalidUpgrade("Upgrade", ", ".join(upgrade))


def _get_single(headers: Headers, name: str) -> str:
    """Return the value of a header that must occur exactly once."""
    values = headers.get_all(name)
    if not values:
        raise InvalidHeader(name)
    if len(values) > 1:
        raise InvalidHeader(name, f"more than one {name} header found")
    return values[0]
