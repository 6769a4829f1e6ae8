"""Parse WebSocket URIs as defined in `section 3 of RFC 6455`_.

.. _section 3 of RFC 6455: https://datatracker.ietf.org/doc/html/rfc6455#section-3
"""

from __future__ import annotations

import functools
import ipaddress
import re
import urllib.parse
from typing import NamedTuple

from .exceptions import InvalidURI


__all__ = ["WebSocketURI", "ip_version", "parse_uri"]


class WebSocketURI(NamedTuple):
    """Hold the parts of a WebSocket URI that the opening handshake needs."""

    secure: bool
    """``True`` for ``wss://`` URIs."""
    host: str
    """Lower-case host name or IP address, without the brackets of an IPv6 literal."""
    port: int
    """Port, always set: 80 for ``ws://`` and 443 for ``wss://`` when the URI omits it."""
    resource_name: str
    """Path and optional query, e.g. ``"/chat?room=1"``; ``"/"`` when the URI has no path."""
    user_info: tuple[str, str] | None = None
    """``(username, password)`` from ``ws://user:pass@host/``, percent-decoded, where user
    info is allowed (``parse_uri(..., user_info=True)``); ``None`` otherwise."""


# Controls and spaces would end the request line early or inject headers, and urlsplit()
# silently drops tabs and newlines instead of failing, so reject them all up front.
_forbidden_re = re.compile(r"[\x00-\x20\x7f]")

# RFC 3986 §3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ), lower-cased.
_reg_name_re = re.compile(r"[a-z0-9\-._~%!$&'()*+,;=]+")

# RFC 3986 §3.2.2: IP-literal = "[" ( IPv6address / IPvFuture ) "]", then an optional port.
# IPvFuture has no known use with WebSocket and isn't supported.
_ip_literal_re = re.compile(r"\[([^\]]+)\](?::[0-9]*)?")

# Characters kept as they are when percent-encoding a non-ASCII resource name: RFC 3986's
# unreserved, sub-delims, ":", "@", "/", "?" and "%" (already percent-encoded octets).
_safe_chars = "!$%&'()*+,/:;=?@~"


def parse_uri(uri: str, *, user_info: bool = False) -> WebSocketURI:
    """Parse and validate a WebSocket URI.

    Non-ASCII characters in the path and query are percent-encoded as UTF-8 and a non-ASCII
    host is encoded with IDNA, so the result can be written to the request line as it is.

    Args:
        uri: WebSocket URI, e.g. ``"wss://example.com/chat"``.
        user_info: Accept ``user:password@`` before the host (the websockets >= 10 API sends
            it as HTTP Basic authentication); websockets 4.0 rejects it.

    Returns:
        The parsed URI.

    Raises:
        InvalidURI: If ``uri`` isn't a ``ws://`` or ``wss://`` URI with a host, or if it has
            user info (unless allowed, and then both a user name and a password), a
            fragment, an invalid port, spaces or control characters.
    """
    if _forbidden_re.search(uri):
        raise InvalidURI(uri, "contains a space or a control character")
    try:
        parsed = urllib.parse.urlsplit(uri)
    except ValueError:  # brackets unbalanced or not around an IP address
        raise InvalidURI(uri, "has an invalid host") from None
    # RFC 6455 §3: ws-URI = "ws:" "//" host [ ":" port ] path [ "?" query ]
    #              wss-URI = "wss:" "//" host [ ":" port ] path [ "?" query ]
    if parsed.scheme not in ("ws", "wss"):
        raise InvalidURI(uri, "scheme isn't ws or wss")
    # RFC 6455 §3: "Fragment identifiers are meaningless in the context of WebSocket URIs and
    # MUST NOT be used on these URIs." "#" must be escaped as %23 elsewhere.
    if "#" in uri:
        raise InvalidURI(uri, "contains a fragment identifier")
    # websockets 4.0 rejects user info rather than sending an Authorization header.
    credentials: tuple[str, str] | None = None
    if "@" in parsed.netloc:
        if not user_info:
            raise InvalidURI(uri, "contains user info")
        if not parsed.username or parsed.password is None:
            raise InvalidURI(uri, "has a user name without a password")
        credentials = (
            urllib.parse.unquote(parsed.username),
            urllib.parse.unquote(parsed.password),
        )
    host = parsed.hostname
    if not host:
        raise InvalidURI(uri, "has no host")
    if "[" in parsed.netloc:
        match = _ip_literal_re.fullmatch(parsed.netloc)
        try:
            ipaddress.IPv6Address(match[1] if match else "")
        except ValueError:
            raise InvalidURI(uri, "has an invalid host") from None
    else:
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise InvalidURI(uri, "has an invalid host") from None
        if not _reg_name_re.fullmatch(host):
            raise InvalidURI(uri, "has an invalid host")
    try:
        port = parsed.port
    except ValueError:  # port isn't an integer in range(65536)
        raise InvalidURI(uri, "has an invalid port") from None
    secure = parsed.scheme == "wss"
    if port is None:
        # RFC 6455 §3: "The port component is OPTIONAL; the default for "ws" is port 80, while
        # the default for "wss" is port 443."
        port = 443 if secure else 80
    resource_name = parsed.path or "/"
    if parsed.query:
        resource_name += "?" + parsed.query
    if not resource_name.isascii():
        resource_name = urllib.parse.quote(resource_name, safe=_safe_chars)
    return WebSocketURI(secure, host, port, resource_name, credentials)


@functools.lru_cache(maxsize=256)
def ip_version(host: str) -> int | None:
    """Return 4 or 6 if ``host`` is an IP address (IPv6 without brackets, with an optional
    ``%`` zone), ``None`` if it is a host name.

    Cached: a client asks it twice per connection (the ``Host`` header, and whether the
    address needs resolving), and parsing an address costs more than a connection's frames.
    """
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None
