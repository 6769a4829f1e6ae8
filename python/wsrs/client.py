"""The client side: :func:`connect`, :func:`unix_connect` and
:class:`WebSocketClientProtocol`."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Generator, Sequence
from types import TracebackType
from typing import Any

from .exceptions import InvalidHandshake, InvalidStatusCode, NegotiationError
from .extensions.base import ClientExtensionFactory, Extension
from .handshake import build_request, check_response, generate_key
from .headers import (
    build_extension_list,
    build_subprotocol_list,
    parse_extension_list,
    parse_subprotocol_list,
)
from .http11 import Headers, HeadersLike, Request, Response, parse_response
from .protocol import WebSocketCommonProtocol
from .uri import WebSocketURI, parse_uri
from .version import USER_AGENT


__all__ = ["WebSocketClientProtocol", "connect", "unix_connect"]

logger = logging.getLogger("wsrs.client")


class WebSocketClientProtocol(WebSocketCommonProtocol):
    """The client side of a WebSocket connection.

    Args:
        origin: Value of the ``Origin`` header, if any.
        extensions: Client extension factories, in order of preference.
        subprotocols: Subprotocols to offer, in order of preference.
        extra_headers: Extra request headers (a mapping or ``(name, value)`` pairs), which
            may override ``User-Agent``.
        **kwds: Passed on to :class:`~wsrs.protocol.WebSocketCommonProtocol`.
    """

    is_client = True
    side = "client"

    def __init__(
        self,
        *,
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        extra_headers: HeadersLike | None = None,
        **kwds: Any,
    ) -> None:
        super().__init__(**kwds)
        self.origin = origin
        self.available_extensions = extensions
        self.available_subprotocols = subprotocols
        self.extra_headers = extra_headers

    async def handshake(
        self,
        wsuri: WebSocketURI,
        origin: str | None = None,
        available_extensions: Sequence[ClientExtensionFactory] | None = None,
        available_subprotocols: Sequence[str] | None = None,
        extra_headers: HeadersLike | None = None,
    ) -> None:
        """Perform the client side of the opening handshake.

        Raises:
            InvalidStatusCode: When the server answers with another status than 101.
            InvalidHandshake: When the response is not a valid handshake, or negotiates
                an extension or subprotocol that was not offered.
        """
        headers = Headers()
        default_port = 443 if wsuri.secure else 80
        host = f"[{wsuri.host}]" if ":" in wsuri.host else wsuri.host
        headers["Host"] = host if wsuri.port == default_port else f"{host}:{wsuri.port}"
        if origin is not None:
            headers["Origin"] = origin
        if available_extensions:
            headers["Sec-WebSocket-Extensions"] = build_extension_list(
                [(f.name, f.get_request_params()) for f in available_extensions]
            )
        if available_subprotocols:
            headers["Sec-WebSocket-Protocol"] = build_subprotocol_list(available_subprotocols)
        if extra_headers is not None:
            headers.update(extra_headers)
        if "User-Agent" not in headers:
            headers["User-Agent"] = USER_AGENT
        key = generate_key()
        build_request(headers, key)

        request = Request("GET", wsuri.resource_name, headers)
        self.path = wsuri.resource_name
        self.request_headers = headers
        self.raw_request_headers = list(headers.raw_items())
        self._write_http(request.serialize())

        response: Response = await self._read_http(parse_response)
        self.response_headers = response.headers
        self.raw_response_headers = list(response.headers.raw_items())
        if response.status_code != 101:
            raise InvalidStatusCode(response.status_code)
        check_response(response.headers, key)
        self.extensions = self.process_extensions(response.headers, available_extensions)
        self.subprotocol = self.process_subprotocol(response.headers, available_subprotocols)
        self.connection_open()

    @staticmethod
    def process_extensions(
        headers: Headers, available_extensions: Sequence[ClientExtensionFactory] | None
    ) -> list[Extension]:
        """Check the extensions the server accepted and build them.

        Raises:
            InvalidHandshake: When the server accepted an extension that was not offered,
                or with parameters the factory refuses.
        """
        values = headers.get_all("Sec-WebSocket-Extensions")
        if not values:
            return []
        if not available_extensions:
            raise InvalidHandshake("no extensions supported")
        accepted: list[Extension] = []
        for name, params in parse_extension_list(values):
            for factory in available_extensions:
                if factory.name != name:
                    continue
                try:
                    extension = factory.process_response_params(params, accepted)
                except NegotiationError:
                    continue
                accepted.append(extension)
                break
            else:
                raise NegotiationError(f"unsupported extension: name = {name}, params = {params}")
        return accepted

    @staticmethod
    def process_subprotocol(
        headers: Headers, available_subprotocols: Sequence[str] | None
    ) -> str | None:
        """Check the subprotocol the server chose.

        Raises:
            InvalidHandshake: When the server chose a subprotocol that was not offered, or
                several.
        """
        values = headers.get_all("Sec-WebSocket-Protocol")
        if not values:
            return None
        if not available_subprotocols:
            raise InvalidHandshake("no subprotocols supported")
        subprotocols = parse_subprotocol_list(values)
        if len(subprotocols) > 1:
            raise InvalidHandshake(f"multiple subprotocols: {', '.join(subprotocols)}")
        if subprotocols[0] not in available_subprotocols:
            raise NegotiationError(f"unsupported subprotocol: {subprotocols[0]}")
        return subprotocols[0]


class Connect:
    """Connect to a WebSocket server: ``await connect(uri)`` or ``async with connect(uri)``.

    Args:
        uri: ``ws://`` or ``wss://`` URI of the server.
        create_protocol: Factory of the connection, :class:`WebSocketClientProtocol` by
            default (``klass`` is its old name).
        timeout: Seconds allowed for the opening handshake and for the closing handshake.
        max_size: Largest incoming message in bytes (1 MiB); ``None`` for no limit.
        max_queue: Incoming messages buffered before reading pauses (32).
        read_limit: Largest opening handshake response in bytes (64 KiB).
        write_limit: Write buffer high-water mark in bytes (64 KiB).
        loop: Accepted for compatibility; must be the running loop.
        origin: Value of the ``Origin`` header.
        extensions: Client extension factories.
        subprotocols: Subprotocols to offer, in order of preference.
        extra_headers: Extra request headers (mapping or pairs); may override ``User-Agent``.
        compression: ``'deflate'`` (default) offers permessage-deflate; ``None`` disables.
        ping_interval: Seconds between keepalive pings (20); ``None`` disables.
        ping_timeout: Seconds to wait for a keepalive pong (20); ``None`` waits forever.
        legacy_recv: ``recv()`` returns ``None`` instead of raising once closed.
        **kwds: Passed to :meth:`asyncio.loop.create_connection` (``ssl``, ``sock``,
            ``server_hostname``, ``local_addr``...). ``wss://`` URIs use a default TLS
            context unless ``ssl`` is given.

    Raises:
        InvalidURI: When ``uri`` is not a valid WebSocket URI (raised at once).
        ValueError: When ``ssl`` is given with a ``ws://`` URI, or for an unknown
            ``compression`` (raised at once).
    """

    def __init__(
        self,
        uri: str,
        *,
        path: str | None = None,
        create_protocol: Callable[..., WebSocketClientProtocol] | None = None,
        timeout: float = 10,
        max_size: int | None = 2**20,
        max_queue: int | None = 2**5,
        read_limit: int = 2**16,
        write_limit: int = 2**16,
        loop: asyncio.AbstractEventLoop | None = None,
        legacy_recv: bool = False,
        klass: Callable[..., WebSocketClientProtocol] | None = None,
        origin: str | None = None,
        extensions: list[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        extra_headers: HeadersLike | None = None,
        compression: str | None = "deflate",
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        **kwds: Any,
    ) -> None:
        self._wsuri = parse_uri(uri)
        if self._wsuri.secure:
            kwds.setdefault("ssl", True)
        elif kwds.get("ssl") is not None:
            raise ValueError(
                "connect() received an ssl argument for a ws:// URI; use a wss:// URI to enable TLS"
            )
        if compression == "deflate":
            from .extensions.permessage_deflate import ClientPerMessageDeflateFactory

            extensions = [] if extensions is None else list(extensions)
            if not any(f.name == "permessage-deflate" for f in extensions):
                extensions.append(ClientPerMessageDeflateFactory(client_max_window_bits=True))
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        if create_protocol is None:
            create_protocol = klass if klass is not None else WebSocketClientProtocol
        self._loop = loop
        self._path = path
        self._timeout = timeout
        self._kwds = kwds
        self._factory = functools.partial(
            create_protocol,
            host=self._wsuri.host,
            port=self._wsuri.port,
            secure=self._wsuri.secure,
            timeout=timeout,
            max_size=max_size,
            max_queue=max_queue,
            read_limit=read_limit,
            write_limit=write_limit,
            legacy_recv=legacy_recv,
            origin=origin,
            extensions=extensions,
            subprotocols=subprotocols,
            extra_headers=extra_headers,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        self.websocket: WebSocketClientProtocol | None = None

    async def _connect(self) -> WebSocketClientProtocol:
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise ValueError("loop must be the running event loop (or None)")
        kwds = dict(self._kwds)
        if self._path is not None:
            if kwds.get("ssl") and "server_hostname" not in kwds:
                kwds["server_hostname"] = self._wsuri.host
            _, protocol = await loop.create_unix_connection(self._factory, self._path, **kwds)
        elif "sock" in kwds:
            if kwds.get("ssl") and "server_hostname" not in kwds:
                kwds["server_hostname"] = self._wsuri.host
            _, protocol = await loop.create_connection(self._factory, **kwds)
        else:
            _, protocol = await loop.create_connection(
                self._factory, self._wsuri.host, self._wsuri.port, **kwds
            )
        assert isinstance(protocol, WebSocketClientProtocol)
        try:
            async with asyncio.timeout(self._timeout):
                await protocol.handshake(
                    self._wsuri,
                    origin=protocol.origin,
                    available_extensions=protocol.available_extensions,
                    available_subprotocols=protocol.available_subprotocols,
                    extra_headers=protocol.extra_headers,
                )
        except BaseException:
            # Close TCP without a closing handshake: the connection never opened (or is
            # abandoned by a cancelled caller).
            protocol.fail_connection(1006)
            raise
        self.websocket = protocol
        return protocol

    def __await__(self) -> Generator[Any, None, WebSocketClientProtocol]:
        return self._connect().__await__()

    async def __aenter__(self) -> WebSocketClientProtocol:
        return await self._connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.websocket is not None
        await self.websocket.close()


connect = Connect
"""Connect to a WebSocket server; see :class:`Connect`."""


def unix_connect(path: str, uri: str = "ws://localhost/", **kwargs: Any) -> Connect:
    """Connect to a WebSocket server listening on the Unix socket ``path``.

    ``uri`` gives the ``Host`` header and the request path; otherwise like :func:`connect`.
    """
    return Connect(uri, path=path, **kwargs)
