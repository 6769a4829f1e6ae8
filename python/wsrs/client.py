"""The client side: :func:`connect`, :func:`unix_connect` and
:class:`WebSocketClientProtocol`."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Generator, Sequence
from types import TracebackType
from typing import Any

from .asyncio.connect import create_connection
from .datastructures import Headers, HeadersLike
from .extensions.base import ClientExtensionFactory, Extension
from .http11 import Response, parse_response
from .opening import check_extensions, check_response, check_subprotocol, connect_request
from .protocol import WebSocketCommonProtocol
from .uri import WebSocketURI, parse_uri


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
        request, key = connect_request(
            wsuri,
            origin=origin,
            extensions=available_extensions,
            subprotocols=available_subprotocols,
            extra_headers=extra_headers,
        )
        self.path = wsuri.resource_name
        self.request_headers = request.headers
        self.raw_request_headers = list(request.headers.raw_items())
        self._write_http(request.serialize())

        response: Response = await self._handshake.read(parse_response)
        self.response_headers = response.headers
        self.raw_response_headers = list(response.headers.raw_items())
        self.extensions, self.subprotocol = check_response(
            response,
            key,
            process_extensions=lambda headers: self.process_extensions(
                headers, available_extensions
            ),
            process_subprotocol=lambda headers: self.process_subprotocol(
                headers, available_subprotocols
            ),
        )
        self.connection_open()

    @staticmethod
    def process_extensions(
        headers: Headers, available_extensions: Sequence[ClientExtensionFactory] | None
    ) -> list[Extension]:
        """Check the extensions the server accepted and build them; override to change the
        policy.

        Raises:
            InvalidHandshake: When the server accepted an extension that was not offered,
                or with parameters the factory refuses.
        """
        return check_extensions(headers, available_extensions)

    @staticmethod
    def process_subprotocol(
        headers: Headers, available_subprotocols: Sequence[str] | None
    ) -> str | None:
        """Check the subprotocol the server chose; override to change the policy.

        Raises:
            InvalidHandshake: When the server chose a subprotocol that was not offered, or
                several.
        """
        return check_subprotocol(headers, available_subprotocols)


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
        kind = getattr(self._factory.func, "transport_kind", None)
        if self._path is not None:
            if kwds.get("ssl") and "server_hostname" not in kwds:
                kwds["server_hostname"] = self._wsuri.host
            _, protocol = await create_connection(
                self._factory, kind, unix=True, path=self._path, **kwds
            )
        elif "sock" in kwds:
            if kwds.get("ssl") and "server_hostname" not in kwds:
                kwds["server_hostname"] = self._wsuri.host
            _, protocol = await create_connection(self._factory, kind, **kwds)
        else:
            _, protocol = await create_connection(
                self._factory, kind, host=self._wsuri.host, port=self._wsuri.port, **kwds
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
"""Connect to a WebSocket server; see :class:`~wsrs.client.Connect`."""


def unix_connect(path: str, uri: str = "ws://localhost/", **kwargs: Any) -> Connect:
    """Connect to a WebSocket server listening on the Unix socket ``path``.

    ``uri`` gives the ``Host`` header and the request path; otherwise like :func:`connect`.
    """
    return Connect(uri, path=path, **kwargs)
