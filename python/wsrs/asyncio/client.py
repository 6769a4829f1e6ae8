"""The client of the websockets >= 14 API: :func:`connect`, :func:`unix_connect`,
:class:`ClientConnection`, :func:`process_exception`.

A drop-in for ``websockets.asyncio.client``: ``await connect(uri)``, ``async with
connect(uri) as websocket``, or ``async for websocket in connect(uri)`` to reconnect with
exponential backoff when the connection fails.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import ssl
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from types import TracebackType
from typing import Any, Literal

from ..datastructures import Headers, HeadersLike
from ..exceptions import (
    InvalidMessage,
    InvalidStatus,
    InvalidStatusCode,
    InvalidURI,
    SecurityError,
)
from ..extensions.base import ClientExtensionFactory
from ..headers import build_authorization_basic
from ..http11 import Response, parse_response
from ..opening import check_extensions, check_response, check_subprotocol, connect_request
from ..proxy import Proxy, get_proxy, parse_proxy
from ..uri import WebSocketURI, parse_uri
from ..version import USER_AGENT
from .connect import create_connection
from .connection import Connection, LoggerLike, MaxQueue, WriteLimit
from .proxy import connect_http_proxy, connect_socks_proxy


__all__ = ["ClientConnection", "connect", "process_exception", "unix_connect"]

# The default logger of connections, looked up once (getLogger takes a lock).
_logger = logging.getLogger("websockets.client")

MAX_REDIRECTS = int(os.environ.get("WEBSOCKETS_MAX_REDIRECTS", "10"))
"""Redirects followed at most by one :func:`connect`: 10, or the value of the environment
variable ``WEBSOCKETS_MAX_REDIRECTS`` that websockets documents."""


class ClientConnection(Connection):
    """The client side of a WebSocket connection, as ``websockets.asyncio.client``'s.

    Args:
        origin: ``Origin`` header of the request, if any.
        extensions: Client extension factories, in order of preference.
        subprotocols: Subprotocols offered, in order of preference.
        **kwargs: Options of :class:`~wsrs.asyncio.connection.Connection`.
    """

    is_client = True
    side = "client"

    def __init__(
        self,
        *,
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.origin = origin
        self.available_extensions = extensions
        self.available_subprotocols = subprotocols
        self.wsuri: WebSocketURI | None = None

    async def handshake(
        self,
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
    ) -> None:
        """Perform the opening handshake: send the request, check the response.

        Raises:
            InvalidStatus: When the server answers with another status than 101.
            InvalidHandshake: When the response is not a valid handshake.
        """
        assert self.wsuri is not None
        headers: list[tuple[str, str]] = []
        if self.wsuri.user_info is not None:
            headers.append(("Authorization", build_authorization_basic(*self.wsuri.user_info)))
        if additional_headers is not None:
            headers.extend(Headers(additional_headers).raw_items())
        request, key = connect_request(
            self.wsuri,
            origin=self.origin,
            extensions=self.available_extensions,
            subprotocols=self.available_subprotocols,
            extra_headers=headers,
            user_agent=user_agent_header,
        )
        self.request = request
        self._write_http(request.serialize())
        try:
            response: Response = await self._handshake.read(parse_response)
        except InvalidMessage as exc:
            # As websockets: the cause says why. EOFError, the server closed the connection,
            # is a transient failure worth retrying (process_exception); ValueError, what
            # it sent isn't an HTTP response, is not.
            cause = EOFError if self._handshake.eof else ValueError
            raise InvalidMessage("did not receive a valid HTTP response") from cause(str(exc))
        self.response = response
        try:
            self.extensions, self._subprotocol = check_response(
                response,
                key,
                process_extensions=functools.partial(
                    check_extensions, available_extensions=self.available_extensions
                ),
                process_subprotocol=functools.partial(
                    check_subprotocol, available_subprotocols=self.available_subprotocols
                ),
            )
        except InvalidStatusCode:
            raise InvalidStatus(response) from None
        self.connection_open()


def process_exception(exc: Exception) -> Exception | None:
    """Tell whether a failed connection attempt is worth retrying (``None``) or fatal.

    Retried: network errors (:exc:`OSError`, :exc:`TimeoutError`), a connection closed
    during the handshake, and HTTP 500, 502, 503 and 504. Anything else is returned, to be
    raised.
    """
    if isinstance(exc, OSError | TimeoutError):
        return None
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return None
    if isinstance(exc, InvalidStatus) and exc.response.status_code in (500, 502, 503, 504):
        return None
    return exc


def backoff(
    initial_delay: float = 5.0,
    min_delay: float = 3.1,
    max_delay: float = 90.0,
    factor: float = 1.618,
) -> Generator[float]:
    """Yield the delays between reconnection attempts: a random first one, then growing
    exponentially up to ``max_delay``."""
    yield random.random() * initial_delay
    delay = min_delay
    while delay < max_delay:
        yield delay
        delay *= factor
    while True:
        yield max_delay


class connect:  # noqa: N801 - a class spelled as the function it stands for, as websockets'
    """Connect to the WebSocket server at ``uri``, as ``websockets.asyncio.client.connect``.

    ``await connect(uri)`` returns a :class:`ClientConnection`; ``async with connect(uri)
    as websocket`` closes it on exit; ``async for websocket in connect(uri)`` reconnects
    with backoff after each failure that :func:`process_exception` deems transient.

    Credentials in the URI (``ws://user:pass@host/``) are sent with HTTP Basic
    authentication; HTTP redirects (301, 302, 303, 307, 308) are followed, up to
    :data:`MAX_REDIRECTS`. ``**kwargs`` go to :meth:`asyncio.loop.create_connection`
    (``ssl``, ``sock``, ``server_hostname``, ``local_addr``...).

    ``proxy``: by default (``True``) the proxy that the system configures for the URI is
    used, if any (environment variables, see :func:`wsrs.proxy.get_proxy`); ``None``
    connects directly; an address (``http://``, ``https://``, ``socks5h://``, ``socks5://``,
    ``socks4a://``, ``socks4://``) overrides the system's choice. Through an HTTP proxy,
    ``ssl``, ``ssl_*`` and ``server_hostname`` configure TLS with the server, ``proxy_ssl``,
    ``proxy_server_hostname`` and the other ``proxy_*`` arguments TLS with an ``https://``
    proxy, and the remaining ``**kwargs`` the TCP connection to the proxy. SOCKS proxies
    need the ``python-socks`` package.

    Raises:
        InvalidURI: If ``uri`` isn't a valid WebSocket URI.
        InvalidProxy: If ``proxy`` isn't a valid proxy address.
        InvalidProxyStatus: If an HTTP proxy refuses the tunnel.
        InvalidProxyMessage: If an HTTP proxy's response is malformed.
        OSError: If the TCP connection fails.
        InvalidHandshake: If the opening handshake fails.
        TimeoutError: If the opening handshake times out (``open_timeout``).
    """

    def __init__(
        self,
        uri: str,
        *,
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        compression: str | None = "deflate",
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
        process_exception: Callable[[Exception], Exception | None] = process_exception,
        open_timeout: float | None = 10,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        reconnect_delays: Callable[[], Generator[float]] = backoff,
        max_size: int | None | tuple[int | None, int | None] = 2**20,
        max_queue: MaxQueue = 16,
        write_limit: WriteLimit = 2**15,
        logger: LoggerLike | None = None,
        create_connection: type[ClientConnection] | None = None,
        proxy: str | Literal[True] | None = True,
        **kwargs: Any,
    ) -> None:
        self.uri = uri
        self.proxy = proxy
        self.ws_uri = parse_uri(uri, user_info=True)
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols must be a list, not a str")
        if not self.ws_uri.secure and kwargs.get("ssl") is not None:
            raise ValueError("ssl argument is incompatible with a ws:// URI")
        if compression == "deflate":
            from ..extensions.permessage_deflate import ClientPerMessageDeflateFactory

            extensions = [] if extensions is None else list(extensions)
            if not any(f.name == "permessage-deflate" for f in extensions):
                extensions.append(ClientPerMessageDeflateFactory(client_max_window_bits=True))
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        self.logger: LoggerLike = logger if logger is not None else _logger
        self.additional_headers = additional_headers
        self.user_agent_header = user_agent_header
        self.process_exception = process_exception
        self.open_timeout = open_timeout
        self.reconnect_delays = reconnect_delays
        self._create_connection = (
            ClientConnection if create_connection is None else create_connection
        )
        self._connection_options: dict[str, Any] = dict(
            origin=origin,
            extensions=extensions,
            subprotocols=subprotocols,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_size=max_size,
            max_queue=max_queue,
            write_limit=write_limit,
            logger=self.logger,
        )
        self._kwargs = kwargs
        self.connection: ClientConnection | None = None

    async def _open_tcp(self) -> ClientConnection:
        kwargs = dict(self._kwargs)
        wsuri = self.ws_uri
        if wsuri.secure:
            kwargs.setdefault("ssl", True)
            if kwargs.get("ssl") is None:
                raise ValueError("ssl=None is incompatible with a wss:// URI")
            # The certificate is checked against the URI's host, even when host= or sock=
            # says where to connect.
            kwargs.setdefault("server_hostname", wsuri.host)
        proxy = self.proxy
        if kwargs.get("unix") or kwargs.get("sock") is not None:
            proxy = None
        elif proxy is True:
            proxy = get_proxy(wsuri)
        factory = functools.partial(self._create_connection, **self._connection_options)
        kind = self._create_connection.transport_kind
        if kwargs.pop("unix", False):
            _, connection = await create_connection(factory, kind, unix=True, **kwargs)
        elif proxy is not None:
            connection = await self._open_through_proxy(parse_proxy(proxy), factory, kwargs)
        elif kwargs.get("sock") is not None:
            _, connection = await create_connection(factory, kind, **kwargs)
        else:
            kwargs.setdefault("host", wsuri.host)
            kwargs.setdefault("port", wsuri.port)
            _, connection = await create_connection(factory, kind, **kwargs)
        assert isinstance(connection, ClientConnection)
        connection.wsuri = wsuri
        return connection

    async def _open_through_proxy(
        self, proxy: Proxy, factory: Callable[[], ClientConnection], kwargs: dict[str, Any]
    ) -> ClientConnection:
        loop = asyncio.get_running_loop()
        wsuri = self.ws_uri
        if proxy.scheme.startswith("socks"):
            local_addr = kwargs.pop("local_addr", None)
            sock = await connect_socks_proxy(proxy, wsuri, local_addr=local_addr)
            if wsuri.secure:
                kwargs.setdefault("server_hostname", wsuri.host)
            kind = self._create_connection.transport_kind
            _, connection = await create_connection(factory, kind, sock=sock, **kwargs)
            assert isinstance(connection, ClientConnection)
            return connection
        # HTTP(S) proxy: TLS options (ssl*, server_hostname) are for the server, proxy_*
        # options for TLS to an https:// proxy, the rest for the TCP connection to the proxy.
        server_kwargs: dict[str, Any] = {}
        proxy_kwargs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key.startswith("ssl") or key == "server_hostname":
                server_kwargs[key] = value
            elif key.startswith("proxy_"):
                proxy_kwargs[key[len("proxy_") :]] = value
            else:
                proxy_kwargs[key] = value
        if proxy.scheme == "https":
            proxy_kwargs.setdefault("ssl", True)
            if proxy_kwargs["ssl"] is None:
                raise ValueError("proxy_ssl=None is incompatible with an https:// proxy")
        elif proxy_kwargs.get("ssl") is not None:
            raise ValueError("proxy_ssl argument is incompatible with an http:// proxy")
        transport = await connect_http_proxy(
            proxy, wsuri, user_agent_header=self.user_agent_header, **proxy_kwargs
        )
        connection = factory()
        transport.set_protocol(connection)
        ssl_context = server_kwargs.pop("ssl", None)
        if ssl_context is not None:
            if ssl_context is True:
                ssl_context = ssl.create_default_context()
            server_kwargs.setdefault("server_hostname", wsuri.host)
            try:
                tls = await loop.start_tls(transport, connection, ssl_context, **server_kwargs)
            except BaseException:
                transport.abort()
                raise
            assert tls is not None
            transport = tls
        connection.connection_made(transport)
        return connection

    def _redirect(self, exc: Exception) -> Exception | str:
        """The URI to follow for a redirect response, as websockets does; else the
        exception to raise: ``exc`` itself when it isn't a redirect."""
        if not isinstance(exc, InvalidStatus):
            return exc
        response = exc.response
        location = response.headers.get("Location")
        if response.status_code not in (300, 301, 302, 303, 307, 308) or location is None:
            return exc
        old = self.ws_uri
        new_uri = urllib.parse.urljoin(self.uri, location)
        try:
            new = parse_uri(new_uri, user_info=True)
        except InvalidURI as invalid:
            return invalid
        if self._kwargs.get("sock") is not None:
            # The socket was closed with the failed attempt: it cannot be reused.
            return ValueError(f"cannot follow redirect to {new_uri} with a preexisting socket")
        if old.secure and not new.secure:
            return SecurityError(f"cannot follow redirect to non-secure URI {new_uri}")
        if (old.secure, old.host, old.port) != (new.secure, new.host, new.port):
            if self._kwargs.get("unix"):
                return ValueError(
                    f"cannot follow cross-origin redirect to {new_uri} with a Unix socket"
                )
            if self._kwargs.get("host") is not None or self._kwargs.get("port") is not None:
                return ValueError(
                    f"cannot follow cross-origin redirect to {new_uri} "
                    "with an explicit host or port"
                )
            # Credentials meant for one origin must not leak to another.
            if self.additional_headers is not None:
                self.additional_headers = Headers(
                    (name, value)
                    for name, value in Headers(self.additional_headers).raw_items()
                    if name.lower() not in ("authorization", "cookie", "proxy-authorization")
                )
        return new_uri

    async def _connect(self) -> ClientConnection:
        try:
            async with asyncio.timeout(self.open_timeout):
                for _ in range(MAX_REDIRECTS):
                    connection = await self._open_tcp()
                    try:
                        await connection.handshake(self.additional_headers, self.user_agent_header)
                    except asyncio.CancelledError:
                        connection.fail_connection(1006)
                        raise
                    except Exception as exc:
                        connection.fail_connection(1006)
                        followed = self._redirect(exc)
                        if followed is exc:
                            raise
                        if isinstance(followed, Exception):
                            raise followed from exc
                        self.uri = followed
                        self.ws_uri = parse_uri(followed, user_info=True)
                        continue
                    return connection
                raise SecurityError(f"more than {MAX_REDIRECTS} redirects")
        except TimeoutError as exc:
            raise TimeoutError("timed out during opening handshake") from exc

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._connect().__await__()

    async def __aenter__(self) -> ClientConnection:
        if self.connection is not None:
            raise RuntimeError("connect() isn't reentrant")
        self.connection = await self._connect()
        return self.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self.connection is not None
        try:
            await self.connection.__aexit__(exc_type, exc_value, traceback)
        finally:
            self.connection = None

    async def __aiter__(self) -> AsyncIterator[ClientConnection]:
        delays: Generator[float] | None = None
        while True:
            try:
                async with self as connection:
                    yield connection
            except Exception as exc:
                try:
                    new_exc = self.process_exception(exc)
                except Exception as raised:
                    new_exc = raised
                if new_exc is exc:
                    raise
                if new_exc is not None:
                    raise new_exc from exc
                if delays is None:
                    delays = self.reconnect_delays()
                delay = next(delays)
                self.logger.info(
                    "connect failed; reconnecting in %.1f seconds: %s",
                    delay,
                    traceback.format_exception_only(exc)[0].strip(),
                )
                await asyncio.sleep(delay)
            else:
                delays = None


def unix_connect(path: str | None = None, uri: str | None = None, **kwargs: Any) -> connect:
    """Like :func:`connect`, over the Unix socket ``path``; ``uri`` (``ws://localhost/`` by
    default, ``wss://localhost/`` with ``ssl``) gives the ``Host`` header and the path."""
    if uri is None:
        uri = "ws://localhost/" if kwargs.get("ssl") is None else "wss://localhost/"
    return connect(uri=uri, unix=True, path=path, **kwargs)
