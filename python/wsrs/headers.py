"""Parse and build the values of the HTTP headers used in the opening handshake.

To avoid depending on a parsing library, the parsers implement by hand the ABNF of
`RFC 6455 §4.3`_ and `§9.1`_, with the rules of `RFC 7230`_: ``token``, ``quoted-string``,
``OWS`` (optional whitespace) and the ``#rule`` for comma-separated lists.

Every parser takes the values of all the headers with the same name, as returned by
:meth:`~wsrs.datastructures.Headers.get_all`, because RFC 7230 §3.2.2 makes several headers
equivalent to one with their values separated by commas. Errors report the header value and the
position where parsing failed, as :exc:`~wsrs.exceptions.InvalidHeaderFormat`.

.. _RFC 6455 §4.3: https://datatracker.ietf.org/doc/html/rfc6455#section-4.3
.. _§9.1: https://datatracker.ietf.org/doc/html/rfc6455#section-9.1
.. _RFC 7230: https://datatracker.ietf.org/doc/html/rfc7230#appendix-B
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeAlias, TypeVar

from .datastructures import ows_re, protocol_re, quoted_string_re, token_re, unquote_re
from .exceptions import InvalidHeaderFormat
from .uri import ip_version


__all__ = [
    "ExtensionHeader",
    "ExtensionParameter",
    "build_authorization_basic",
    "build_extension_list",
    "build_host",
    "build_subprotocol_list",
    "parse_authorization_basic",
    "parse_connection",
    "parse_extension_list",
    "parse_subprotocol_list",
    "parse_upgrade",
]

ExtensionParameter: TypeAlias = tuple[str, str | None]
"""Extension parameter: name and value, ``None`` if the parameter has no value."""

ExtensionHeader: TypeAlias = tuple[str, list[ExtensionParameter]]
"""Extension offer or response: extension name and parameters, in order."""

_T = TypeVar("_T")


def _peek(header: str, pos: int) -> str | None:
    """Return the character at ``pos``, or ``None`` at the end of ``header``."""
    return header[pos] if pos < len(header) else None


def _parse_ows(header: str, pos: int) -> int:
    """Skip optional whitespace and return the new position."""
    match = ows_re.match(header, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _parse_match(
    pattern: re.Pattern[str], what: str, header: str, pos: int, name: str
) -> tuple[str, int]:
    """Match ``pattern`` at ``pos`` and return the matched text and the new position."""
    match = pattern.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(name, f"expected {what}", header, pos)
    return match.group(), match.end()


def _parse_token(header: str, pos: int, name: str) -> tuple[str, int]:
    """Parse a token and return it with the new position."""
    return _parse_match(token_re, "token", header, pos, name)


def _parse_list(
    parse_item: Callable[[str, int, str], tuple[_T, int]],
    header_values: str | Iterable[str],
    name: str,
) -> list[_T]:
    """Parse comma-separated lists with at least one element, over one or more headers.

    Args:
        parse_item: Parser of an element, taking the header, the position and the name, and
            returning the element and the new position.
        header_values: Values of the headers.
        name: Header name, for error messages.

    Returns:
        The elements of all the lists, in order.

    Raises:
        InvalidHeaderFormat: If a header value isn't a valid list.
    """
    if isinstance(header_values, str):
        header_values = [header_values]
    items: list[_T] = []
    for header in header_values:
        # RFC 7230 §7: 1#element => *( "," OWS ) element *( OWS "," [ OWS element ] )
        # "a recipient MUST accept lists that satisfy the following syntax", which tolerates
        # empty elements, so skip extra commas.
        pos = _parse_ows(header, 0)
        while _peek(header, pos) == ",":
            pos = _parse_ows(header, pos + 1)
        while True:
            # Invariant: an element starts at pos.
            item, pos = parse_item(header, pos, name)
            items.append(item)
            pos = _parse_ows(header, pos)
            if pos == len(header):
                break
            if _peek(header, pos) != ",":
                raise InvalidHeaderFormat(name, "expected comma", header, pos)
            while _peek(header, pos) == ",":
                pos = _parse_ows(header, pos + 1)
            if pos == len(header):
                break
    return items


def _parse_protocol(header: str, pos: int, name: str) -> tuple[str, int]:
    """Parse a protocol of the ``Upgrade`` header and return it with the new position."""
    return _parse_match(protocol_re, "protocol", header, pos, name)


def parse_connection(header_values: str | Iterable[str]) -> list[str]:
    """Parse ``Connection`` headers.

    Args:
        header_values: Values of the ``Connection`` headers.

    Returns:
        The connection options, e.g. ``["keep-alive", "Upgrade"]``, with their case.

    Raises:
        InvalidHeaderFormat: If a value isn't a list of tokens.
    """
    # RFC 7230 §6.1: Connection = 1#connection-option, connection-option = token
    return _parse_list(_parse_token, header_values, "Connection")


def parse_upgrade(header_values: str | Iterable[str]) -> list[str]:
    """Parse ``Upgrade`` headers.

    Args:
        header_values: Values of the ``Upgrade`` headers.

    Returns:
        The protocols, e.g. ``["websocket"]``, with their case.

    Raises:
        InvalidHeaderFormat: If a value isn't a list of protocols.
    """
    # RFC 7230 §6.7: Upgrade = 1#protocol
    return _parse_list(_parse_protocol, header_values, "Upgrade")


def parse_subprotocol_list(header_values: str | Iterable[str]) -> list[str]:
    """Parse ``Sec-WebSocket-Protocol`` headers.

    Args:
        header_values: Values of the ``Sec-WebSocket-Protocol`` headers.

    Returns:
        The subprotocols, in order of preference for a request.

    Raises:
        InvalidHeaderFormat: If a value isn't a list of tokens.
    """
    # RFC 6455 §4.3: Sec-WebSocket-Protocol-Client = 1#token
    return _parse_list(_parse_token, header_values, "Sec-WebSocket-Protocol")


def build_subprotocol_list(subprotocols: Sequence[str]) -> str:
    """Build the value of a ``Sec-WebSocket-Protocol`` header.

    This is the reverse of :func:`parse_subprotocol_list`.

    Args:
        subprotocols: Subprotocols, at least one.

    Returns:
        The header value, e.g. ``"chat, superchat"``.

    Raises:
        ValueError: If ``subprotocols`` is empty or contains something else than a token.
    """
    if not subprotocols:
        raise ValueError("expected at least one subprotocol")
    for subprotocol in subprotocols:
        if not token_re.fullmatch(subprotocol):
            raise ValueError(f"invalid subprotocol: {subprotocol!r}")
    return ", ".join(subprotocols)


def _parse_extension_param(header: str, pos: int, name: str) -> tuple[ExtensionParameter, int]:
    """Parse an extension parameter and return it with the new position."""
    # RFC 6455 §9.1: extension-param = token [ "=" (token | quoted-string) ]
    param_name, pos = _parse_token(header, pos, name)
    pos = _parse_ows(header, pos)
    if _peek(header, pos) != "=":
        return (param_name, None), pos
    pos = _parse_ows(header, pos + 1)
    if _peek(header, pos) != '"':
        value, pos = _parse_token(header, pos, name)
        return (param_name, value), pos
    quoted, end = _parse_match(quoted_string_re, "quoted string", header, pos, name)
    value = unquote_re.sub(r"\1", quoted[1:-1])
    # RFC 6455 §9.1: "When using the quoted-string syntax variant, the value after
    # quoted-string unescaping MUST conform to the 'token' ABNF."
    if not token_re.fullmatch(value):
        raise InvalidHeaderFormat(name, "expected token in quoted string", header, pos)
    return (param_name, value), end


def _parse_extension(header: str, pos: int, name: str) -> tuple[ExtensionHeader, int]:
    """Parse an extension and its parameters and return them with the new position."""
    # RFC 6455 §9.1: extension = extension-token *( ";" extension-param )
    extension_name, pos = _parse_token(header, pos, name)
    pos = _parse_ows(header, pos)
    params: list[ExtensionParameter] = []
    while _peek(header, pos) == ";":
        pos = _parse_ows(header, pos + 1)
        param, pos = _parse_extension_param(header, pos, name)
        params.append(param)
        pos = _parse_ows(header, pos)
    return (extension_name, params), pos


def parse_extension_list(header_values: str | Iterable[str]) -> list[ExtensionHeader]:
    """Parse ``Sec-WebSocket-Extensions`` headers.

    A value such as ``permessage-deflate; client_max_window_bits, x-foo; bar="1"`` gives
    ``[("permessage-deflate", [("client_max_window_bits", None)]), ("x-foo", [("bar", "1")])]``.

    Args:
        header_values: Values of the ``Sec-WebSocket-Extensions`` headers.

    Returns:
        The extensions with their parameters, in order; quoted parameter values are unescaped,
        and parameters without a value have the value ``None``.

    Raises:
        InvalidHeaderFormat: If a value doesn't match the grammar of RFC 6455 §9.1.
    """
    # RFC 6455 §9.1: Sec-WebSocket-Extensions = extension-list
    # extension-list = 1#extension
    return _parse_list(_parse_extension, header_values, "Sec-WebSocket-Extensions")


def build_extension_list(extensions: Sequence[tuple[str, Sequence[ExtensionParameter]]]) -> str:
    """Build the value of a ``Sec-WebSocket-Extensions`` header.

    This is the reverse of :func:`parse_extension_list`. Values are written as tokens, never
    quoted, since RFC 6455 §9.1 only allows tokens anyway.

    Args:
        extensions: Extensions with their parameters, at least one.

    Returns:
        The header value, e.g. ``"permessage-deflate; client_max_window_bits=15"``.

    Raises:
        ValueError: If ``extensions`` is empty or if a name or value isn't a token.
    """
    if not extensions:
        raise ValueError("expected at least one extension")
    parts = []
    for name, params in extensions:
        if not token_re.fullmatch(name):
            raise ValueError(f"invalid extension name: {name!r}")
        items = [name]
        for param_name, value in params:
            if not token_re.fullmatch(param_name):
                raise ValueError(f"invalid parameter name: {param_name!r}")
            if value is None:
                items.append(param_name)
            elif token_re.fullmatch(value):
                items.append(f"{param_name}={value}")
            else:
                raise ValueError(f"invalid value for parameter {param_name}: {value!r}")
        parts.append("; ".join(items))
    return ", ".join(parts)


def build_host(host: str, port: int, secure: bool, *, always_include_port: bool = False) -> str:
    """Build the value of a ``Host`` header (or the target of a ``CONNECT`` request).

    An IPv6 address goes in brackets (RFC 3986 §3.2.2); the port is left out when it is the
    default of the scheme (80 for ``ws``, 443 for ``wss``), unless ``always_include_port``.
    """
    if ip_version(host) == 6:
        host = f"[{host}]"
    if always_include_port or port != (443 if secure else 80):
        host = f"{host}:{port}"
    return host


def build_authorization_basic(username: str, password: str) -> str:
    """Build the value of an ``Authorization`` header for HTTP Basic authentication
    (RFC 7617), credentials encoded as UTF-8. The user name may not contain ``:``."""
    if ":" in username:
        raise ValueError("a user name for Basic authentication may not contain ':'")
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


def parse_authorization_basic(header: str) -> tuple[str, str] | None:
    """Parse the value of an ``Authorization`` header for HTTP Basic authentication.

    Returns:
        The user name and the password, or ``None`` if the scheme isn't ``Basic`` or the
        credentials aren't valid Base64 of UTF-8 ``user:password``.
    """
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip().encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep:
        return None
    return username, password
