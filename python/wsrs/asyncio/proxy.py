"""Open a connection through a proxy, for :class:`~wsrs.asyncio.client.connect`: a tunnel
through an HTTP(S) proxy with ``CONNECT``, or a socket through a SOCKS proxy (with the
``python-socks`` package). What to send and how to read the answer is in :mod:`wsrs.proxy`.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

from ..exceptions import ProxyError
from ..proxy import Proxy, parse_proxy_response, prepare_connect_request
from ..uri import WebSocketURI


__all__ = ["connect_http_proxy", "connect_socks_proxy"]


class _ConnectTunnel(asyncio.Protocol):
    """Send ``CONNECT`` to an HTTP proxy and wait for its answer."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.buffer = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(self.request)

    def _parse(self, eof: bool) -> None:
        if self.opened.done():
            return
        try:
            if parse_proxy_response(self.buffer, eof=eof) is not None:
                self.opened.set_result(None)
        except ProxyError as exc:
            self.opened.set_exception(exc)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._parse(eof=False)

    def eof_received(self) -> None:
        self._parse(eof=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._parse(eof=True)


async def connect_http_proxy(
    proxy: Proxy,
    wsuri: WebSocketURI,
    *,
    user_agent_header: str | None,
    **kwargs: Any,
) -> asyncio.Transport:
    """Connect to an HTTP proxy (TLS for ``https://``: pass ``ssl``), ask it for a tunnel to
    ``wsuri``'s server and return the transport once the tunnel is open.

    Args:
        proxy: The proxy, from :func:`~wsrs.proxy.parse_proxy`.
        wsuri: Where the tunnel goes.
        user_agent_header: ``User-Agent`` of the ``CONNECT`` request; ``None`` omits it.
        **kwargs: For :meth:`asyncio.loop.create_connection` to the proxy.

    Raises:
        InvalidProxyStatus: If the proxy refuses.
        InvalidProxyMessage: If its response is malformed or it closes the connection first.
        OSError: If the proxy can't be reached.
    """
    request = prepare_connect_request(proxy, wsuri, user_agent_header)
    loop = asyncio.get_running_loop()
    transport, tunnel = await loop.create_connection(
        lambda: _ConnectTunnel(request), proxy.host, proxy.port, **kwargs
    )
    try:
        await tunnel.opened
    except BaseException:
        transport.abort()
        raise
    return transport


SOCKS_RDNS = {"socks5h": True, "socks5": False, "socks4a": True, "socks4": False}
"""Whether the proxy resolves the server's host name (``h`` and ``a`` schemes)."""


async def connect_socks_proxy(
    proxy: Proxy, wsuri: WebSocketURI, *, local_addr: Any = None
) -> socket.socket:
    """Connect to ``wsuri``'s server through a SOCKS proxy; return the connected socket.

    Raises:
        ImportError: If ``python-socks`` isn't installed.
        ProxyError: If the proxy refuses or fails.
        OSError: If the proxy can't be reached.
    """
    try:
        from python_socks import ProxyType
        from python_socks.async_.asyncio import Proxy as SocksProxy
    except ImportError:
        raise ImportError("connecting through a SOCKS proxy requires python-socks") from None
    proxy_type = ProxyType.SOCKS5 if proxy.scheme.startswith("socks5") else ProxyType.SOCKS4
    socks = SocksProxy(
        proxy_type,
        proxy.host,
        proxy.port,
        proxy.username,
        proxy.password,
        SOCKS_RDNS[proxy.scheme],
    )
    try:
        sock: socket.socket = await socks.connect(wsuri.host, wsuri.port, local_addr=local_addr)
    except OSError:
        raise
    except Exception as exc:  # python-socks' own errors
        raise ProxyError("failed to connect to SOCKS proxy") from exc
    return sock
