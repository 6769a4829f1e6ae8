"""Proxies between a client and a WebSocket server, without I/O: which proxy to use, its
address, and the ``CONNECT`` request and response of an HTTP proxy.

As websockets >= 15, a client connects through the proxy that the system configures for the
URI (environment variables ``ws_proxy``/``wss_proxy``, ``socks_proxy``, ``https_proxy``,
``http_proxy`` and ``no_proxy``, read by :func:`urllib.request.getproxies`), or through one
given by address: ``http://`` and ``https://`` proxies open a tunnel with ``CONNECT``
(`RFC 9110 §9.3.6`_); ``socks5h://``, ``socks5://``, ``socks4a://`` and ``socks4://``
proxies need the ``python-socks`` package. The asyncio side is in
:mod:`wsrs.asyncio.proxy`.

.. _RFC 9110 §9.3.6: https://datatracker.ietf.org/doc/html/rfc9110#section-9.3.6
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
import urllib.request
from collections.abc import Callable

from .datastructures import Headers
from .exceptions import (
    InvalidMessage,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    SecurityError,
)
from .headers import build_authorization_basic, build_host
from .http11 import Response, parse_response
from .uri import WebSocketURI
from .version import USER_AGENT


__all__ = ["Proxy", "get_proxy", "parse_proxy", "parse_proxy_response", "prepare_connect_request"]

SCHEMES = ("socks5h", "socks5", "socks4a", "socks4", "https", "http")
"""The proxy schemes supported, as websockets'."""


@dataclasses.dataclass
class Proxy:
    """The address of a proxy, as :func:`parse_proxy` returns it.

    Attributes:
        scheme: One of :data:`SCHEMES`.
        host: Host name (in lower case, IDNA-encoded) or IP address.
        port: Port, the scheme's default (80, or 443 for ``https``) if the address has none.
        username: User name, when the address has credentials (``scheme://user:pass@host``).
        password: Password, with the user name.
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def user_info(self) -> tuple[str, str] | None:
        """The credentials as ``(username, password)``, or ``None``."""
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)


def parse_proxy(proxy: str) -> Proxy:
    """Parse and check the address of a proxy, such as ``http://proxy:3128``.

    Raises:
        InvalidProxy: If the scheme isn't supported, the host is missing, the address has a
            path, query or fragment, or a user name without a password.
    """
    try:
        parsed = urllib.parse.urlparse(proxy)
        port = parsed.port
    except ValueError as exc:
        raise InvalidProxy(proxy, str(exc)) from None
    if parsed.scheme not in SCHEMES:
        raise InvalidProxy(proxy, f"scheme {parsed.scheme} isn't supported")
    if parsed.hostname is None:
        raise InvalidProxy(proxy, "hostname isn't provided")
    if parsed.path not in ("", "/"):
        raise InvalidProxy(proxy, "path is meaningless")
    if parsed.query:
        raise InvalidProxy(proxy, "query is meaningless")
    if parsed.fragment:
        raise InvalidProxy(proxy, "fragment is meaningless")
    host = parsed.hostname
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidProxy(proxy, "hostname isn't valid") from None
    username, password = parsed.username, parsed.password
    if username is not None:
        if password is None:
            raise InvalidProxy(proxy, "username provided without password")
        username = urllib.parse.unquote(username)
        password = urllib.parse.unquote(password)
    if port is None:
        port = 443 if parsed.scheme == "https" else 80
    return Proxy(parsed.scheme, host, port, username, password)


# urllib's no_proxy check over given proxies (undocumented, so looked up), and whether
# proxy settings come from the environment alone on this platform.
_bypass_environment: Callable[[str, dict[str, str]], bool] | None = getattr(
    urllib.request, "proxy_bypass_environment", None
)
_ENVIRONMENT_ONLY = (
    _bypass_environment is not None and urllib.request.proxy_bypass is _bypass_environment
)


def _proxy_variables() -> bool:
    """Whether an environment variable's name ends in ``_proxy``, in any case: else
    urllib's ``getproxies()`` finds none (where the environment is all it reads).

    One pass in C over the names as ``os.environ`` keeps them (bytes on POSIX), where
    urllib decodes every variable in Python: most machines have no proxy variable, and the
    scan cost a client connection more than its opening handshake.
    """
    try:
        names = b"\0".join(getattr(os.environ, "_data", None)).lower()  # type: ignore[arg-type]
    except TypeError:  # pragma: no cover (not POSIX, or not CPython's os.environ)
        return True
    return b"_proxy\0" in names + b"\0"


def get_proxy(wsuri: WebSocketURI) -> str | None:
    """The address of the proxy that the system configures for ``wsuri``, or ``None``.

    The host and port are checked against ``no_proxy`` first. Then, as RFC 6455's *Proxy
    Usage* advice and websockets do: a proxy configured for the WebSocket scheme itself
    (``wss_proxy``/``ws_proxy``) wins, then a SOCKS proxy, then the HTTPS proxy, and for
    ``ws://`` the HTTP proxy last. A SOCKS proxy given as ``http://host:port`` (how some
    systems declare it) means ``socks5h://host:port``.
    """
    if _ENVIRONMENT_ONLY and not _proxy_variables():
        return None
    proxies = urllib.request.getproxies()
    address = f"{wsuri.host}:{wsuri.port}"
    # One scan of the environment, not two: where the system has no proxy settings of its
    # own (not macOS, not Windows), urllib's proxy_bypass() is proxy_bypass_environment()
    # over the proxies getproxies() just read (a scan costs as much as a WebSocket round
    # trip with a few hundred variables).
    if _ENVIRONMENT_ONLY:
        assert _bypass_environment is not None
        if _bypass_environment(address, proxies):
            return None
    elif urllib.request.proxy_bypass(address):  # pragma: no cover (macOS, Windows)
        return None
    schemes = ("wss", "socks", "https") if wsuri.secure else ("ws", "socks", "https", "http")
    for scheme in schemes:
        proxy = proxies.get(scheme)
        if proxy is not None:
            if scheme == "socks" and proxy.startswith("http://"):
                proxy = "socks5h://" + proxy[len("http://") :]
            return proxy
    return None


def prepare_connect_request(
    proxy: Proxy, wsuri: WebSocketURI, user_agent_header: str | None = USER_AGENT
) -> bytes:
    """The ``CONNECT`` request that asks an HTTP proxy for a tunnel to ``wsuri``'s server,
    with the proxy's credentials as ``Proxy-Authorization`` (Basic) if it has some."""
    target = build_host(wsuri.host, wsuri.port, wsuri.secure, always_include_port=True)
    headers = Headers()
    headers["Host"] = build_host(wsuri.host, wsuri.port, wsuri.secure)
    if user_agent_header is not None:
        headers["User-Agent"] = user_agent_header
    if proxy.user_info is not None:
        headers["Proxy-Authorization"] = build_authorization_basic(*proxy.user_info)
    return f"CONNECT {target} HTTP/1.1\r\n".encode() + headers.serialize()


def parse_proxy_response(buf: bytes | bytearray, *, eof: bool = False) -> Response | None:
    """Parse an HTTP proxy's response to ``CONNECT`` from everything received so far.

    Returns:
        ``None`` while the response is incomplete; the response once the tunnel is open
        (a 2xx status).

    Raises:
        InvalidProxyStatus: If the proxy refused (another status).
        InvalidProxyMessage: If the response is malformed, too large, incomplete at
            ``eof``, or followed by data (the server speaks only after our handshake
            request, so these bytes can't be from it).
    """
    try:
        parsed = parse_response(buf, eof=eof, proxy=True)
    except (InvalidMessage, SecurityError) as exc:
        raise InvalidProxyMessage("did not receive a valid HTTP response from proxy") from exc
    if parsed is None:
        return None
    response, size = parsed
    if not 200 <= response.status_code < 300:
        raise InvalidProxyStatus(response)
    if size != len(buf):
        raise InvalidProxyMessage("proxy sent data after its response to CONNECT")
    return response
