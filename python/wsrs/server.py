"""The server side: :func:`serve`, :func:`unix_serve`, :class:`WebSocketServer` and
:class:`WebSocketServerProtocol`."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator, Sequence
from types import TracebackType
from typing import Any, TypeAlias

from .asyncio.accept import NativeServer, create_server
from .datastructures import Headers, HeadersLike
from .exceptions import (
    AbortHandshake,
    ConnectionClosed,
)
from .extensions.base import Extension, ServerExtensionFactory
from .http11 import Request, Response, error_response, parse_request
from .opening import (
    accept,
    check_origin,
    negotiate_extensions,
    negotiate_subprotocol,
    reject,
    select_subprotocol,
)
from .protocol import State, WebSocketCommonProtocol


__all__ = ["WebSocketServer", "WebSocketServerProtocol", "serve", "unix_serve"]

logger = logging.getLogger("wsrs.server")

Handler: TypeAlias = Callable[..., Awaitable[Any]]
"""A connection handler: ``handler(websocket, path)`` or ``handler(websocket)``."""

ExtraHeaders: TypeAlias = HeadersLike | Callable[[str, list[tuple[str, str]]], HeadersLike]
"""Extra response headers: a mapping, ``(name, value)`` pairs, or a callable taking the
request path and raw headers and returning one of those."""

ProcessRequestResult: TypeAlias = tuple[int, HeadersLike] | tuple[int, HeadersLike, bytes] | None


class WebSocketServerProtocol(WebSocketCommonProtocol):
    """The server side of a WebSocket connection.

    Performs the opening handshake, then calls the handler with the connection; when the
    handler returns, closes the connection with 1000, and if it raises, logs the error and
    closes the connection with 1011.

    Args:
        ws_handler: Coroutine function called as ``ws_handler(websocket, path)`` (or
            ``ws_handler(websocket)``) for each connection.
        ws_server: The :class:`WebSocketServer` this connection belongs to.
        origins: Acceptable ``Origin`` header values; ``''`` in the list admits requests
            without one. ``None`` accepts any.
        extensions: Server extension factories, in order of preference.
        subprotocols: Supported subprotocols, in order of preference.
        extra_headers: Headers added to the 101 response, which may override ``Server``.
        **kwds: Passed on to :class:`~wsrs.protocol.WebSocketCommonProtocol`.
    """

    is_client = False
    side = "server"

    def __init__(
        self,
        ws_handler: Handler,
        ws_server: WebSocketServer,
        *,
        origins: Sequence[str] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        extra_headers: ExtraHeaders | None = None,
        **kwds: Any,
    ) -> None:
        super().__init__(**kwds)
        self.ws_handler = ws_handler
        self.ws_server = ws_server
        self.origins = origins
        self.available_extensions = extensions
        self.available_subprotocols = subprotocols
        self.extra_headers = extra_headers
        self.origin: str | None = None
        """The request's ``Origin`` header, if any."""
        self.handler_task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register with the server and start the handshake and handler task."""
        super().connection_made(transport)
        self.ws_server.register(self)
        self.handler_task = self.loop.create_task(self.handler())

    async def handler(self) -> None:
        """Run the opening handshake, the connection handler and the closing handshake."""
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    path = await self.handshake(
                        origins=self.origins,
                        available_extensions=self.available_extensions,
                        available_subprotocols=self.available_subprotocols,
                        extra_headers=self.extra_headers,
                    )
            except asyncio.CancelledError:
                if self.ws_server.closing:
                    self._reject(error_response(503, "Server is shutting down.\n"))
                    return
                self._close_early()
                raise
            except Exception as exc:
                self._reject_handshake(exc)
                return
            try:
                await self._call_handler(path)
            except ConnectionClosed as exc:
                logger.debug("connection handler ended by a closed connection: %s", exc)
            except asyncio.CancelledError:
                # The server is shutting down and the handler did not finish in time.
                self.fail_connection(1001)
                raise
            except Exception:
                logger.error("connection handler failed", exc_info=True)
                self.fail_connection(1011)
                await self.wait_closed()
                return
            await self.close()
        finally:
            self.ws_server.unregister(self)

    async def _call_handler(self, path: str) -> None:
        if _takes_path(self.ws_handler):
            await self.ws_handler(self, path)
        else:
            await self.ws_handler(self)

    def _reject_handshake(self, exc: Exception) -> None:
        """Answer a failed opening handshake with an HTTP error, or just close."""
        if self._handshake.eof and not isinstance(exc, AbortHandshake):
            # No response can reach a client that closed its side: asyncio closes the
            # transport on EOF. (The parser reports a request cut short as InvalidMessage.)
            exc = EOFError(str(exc))
        response = reject(exc)
        if response is None:
            if isinstance(exc, TimeoutError):
                logger.info("opening handshake timed out")
            else:
                logger.debug("connection closed during the opening handshake: %s", exc)
            self._close_early()
            return
        if response.status_code == 500:
            logger.error("opening handshake failed", exc_info=exc)
        elif not isinstance(exc, AbortHandshake):
            # The details can quote request headers: keep them out of logs above DEBUG.
            logger.info("rejected an invalid opening handshake with HTTP %d", response.status_code)
            logger.debug("invalid opening handshake: %s", exc)
        self._reject(response)

    def _reject(self, response: Response) -> None:
        self._write_http(response.serialize())
        self._close_early(linger=True)

    async def handshake(
        self,
        origins: Sequence[str] | None = None,
        available_extensions: Sequence[ServerExtensionFactory] | None = None,
        available_subprotocols: Sequence[str] | None = None,
        extra_headers: ExtraHeaders | None = None,
    ) -> str:
        """Perform the server side of the opening handshake.

        Returns:
            The request path.

        Raises:
            InvalidHandshake: When the request is not an acceptable WebSocket handshake.
            AbortHandshake: When ``process_request`` answers instead.
        """
        request: Request = await self._handshake.read(parse_request)
        self.path = request.path
        self.request_headers = request.headers
        self.raw_request_headers = list(request.headers.raw_items())

        early = self.process_request(request.path, request.headers)
        if inspect.isawaitable(early):
            early = await early
        if early is not None:
            raise AbortHandshake(*early)
        if self._handshake.eof:
            # The client closed its side, with its request or while process_request ran:
            # asyncio closes the transport then, so the connection can never open.
            raise EOFError("connection closed during the opening handshake")

        extra: HeadersLike | Callable[[], HeadersLike] | None
        if callable(extra_headers):
            extra = functools.partial(extra_headers, request.path, self.raw_request_headers)
        else:
            extra = extra_headers

        accepted = accept(
            request,
            process_origin=lambda headers: self.process_origin(headers, origins),
            process_extensions=lambda headers: self.process_extensions(
                headers, available_extensions
            ),
            process_subprotocol=lambda headers: self.process_subprotocol(
                headers, available_subprotocols
            ),
            extra_headers=extra,
        )
        response = accepted.response
        self.origin = accepted.origin
        self.extensions = accepted.extensions
        self.subprotocol = accepted.subprotocol
        self.response_headers = response.headers
        self.raw_response_headers = list(response.headers.raw_items())
        self._write_http(response.serialize())
        self.connection_open()
        return request.path

    def process_request(
        self, path: str, request_headers: Headers
    ) -> ProcessRequestResult | Awaitable[ProcessRequestResult]:
        """Intercept the request before the WebSocket handshake; override to use.

        It may be a coroutine. Returning ``None`` continues the handshake; returning
        ``(status, headers)`` or ``(status, headers, body)`` sends that HTTP response
        instead and closes the connection (for example, a health check). While it runs,
        :attr:`state` is CONNECTING.
        """
        return None

    @staticmethod
    def process_origin(headers: Headers, origins: Sequence[str] | None = None) -> str | None:
        """Check the ``Origin`` header against ``origins``; override to change the policy.

        Returns:
            The origin, or ``None`` when the request has none.

        Raises:
            InvalidOrigin: When the origin is not allowed; a request without ``Origin`` is
                allowed only if ``origins`` contains ``''`` (or ``None``).
        """
        return check_origin(headers, origins)

    @staticmethod
    def process_extensions(
        headers: Headers,
        available_extensions: Sequence[ServerExtensionFactory] | None,
    ) -> tuple[str | None, list[Extension]]:
        """Accept or decline the client's extension offers; override to change the policy.

        For each offer, in the client's order, the first server factory of the same name
        that accepts it wins; offers nobody accepts are declined, which does not fail the
        handshake.

        Returns:
            The ``Sec-WebSocket-Extensions`` response header (or ``None``) and the accepted
            extensions.
        """
        return negotiate_extensions(headers, available_extensions)

    def process_subprotocol(
        self, headers: Headers, available_subprotocols: Sequence[str] | None
    ) -> str | None:
        """Pick a subprotocol among those the client offers, with :meth:`select_subprotocol`."""
        return negotiate_subprotocol(headers, available_subprotocols, self.select_subprotocol)

    @staticmethod
    def select_subprotocol(
        client_subprotocols: Sequence[str], server_subprotocols: Sequence[str]
    ) -> str | None:
        """Choose a subprotocol; override to change the algorithm.

        The default picks the subprotocol both support with the lowest sum of its
        positions in the two lists, giving the client's and the server's preferences equal
        weight (ties go to the server's order). ``None`` when they have none in common: the
        connection then proceeds without a subprotocol.
        """
        return select_subprotocol(client_subprotocols, server_subprotocols)


def _takes_path(handler: Handler) -> bool:
    """Whether the handler takes ``(websocket, path)`` rather than ``(websocket)``.

    Asked once per connection: the answer is cached per handler (``inspect.signature``
    costs as much as the rest of a connection's handshake), unless it is unhashable.
    """
    try:
        return _takes_path_cached(handler)
    except TypeError:  # unhashable
        return _signature_takes_path(handler)


def _signature_takes_path(handler: Handler) -> bool:
    try:
        inspect.signature(handler).bind(None, None)
    except TypeError:
        return False
    return True


_takes_path_cached = functools.lru_cache(maxsize=64)(_signature_takes_path)


class WebSocketServer:
    """A running WebSocket server, returned by :func:`serve` and :func:`unix_serve`.

    Closing it stops accepting connections, closes every open connection with 1001 (going
    away), lets handlers finish, and answers handshakes in progress with 503.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.server: asyncio.Server | NativeServer | None = None
        self.websockets: set[WebSocketServerProtocol] = set()
        """The connections of this server, from handshake to close."""
        self.closing = False
        """Whether :meth:`close` was called."""
        self._close_task: asyncio.Task[None] | None = None
        self._timeout: float | None = 10

    def wrap(self, server: asyncio.Server | NativeServer) -> None:
        """Attach the listening asyncio server."""
        self.server = server

    def register(self, protocol: WebSocketServerProtocol) -> None:
        """Track a new connection."""
        self.websockets.add(protocol)
        self._timeout = protocol.timeout

    def unregister(self, protocol: WebSocketServerProtocol) -> None:
        """Stop tracking a connection."""
        self.websockets.discard(protocol)

    @property
    def sockets(self) -> list[Any]:
        """The sockets the server listens on; empty once the server is closed."""
        if self.server is None or self.closing:
            return []
        return list(self.server.sockets)

    def close(self) -> None:
        """Close the server: stop accepting, close connections with 1001 (going away).

        Use :meth:`wait_closed` to wait until it is done.
        """
        if self._close_task is None:
            self.closing = True
            self._close_task = self.loop.create_task(self._close())

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
        # Let handshakes in progress see the server is closing: they answer 503.
        for websocket in list(self.websockets):
            if websocket.state is State.CONNECTING and websocket.handler_task is not None:
                websocket.handler_task.cancel()
        closes = [
            self.loop.create_task(websocket.close(1001))
            for websocket in list(self.websockets)
            if websocket.state is State.OPEN
        ]
        if closes:
            await asyncio.wait(closes)
        handlers = [ws.handler_task for ws in list(self.websockets) if ws.handler_task is not None]
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=self._timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self.server is not None:
            await self.server.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every connection handler has finished."""
        if self._close_task is not None:
            await asyncio.shield(self._close_task)
        elif self.server is not None:
            await self.server.wait_closed()

    async def __aenter__(self) -> WebSocketServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


class Serve:
    """Start a WebSocket server: ``await serve(...)`` or ``async with serve(...)``.

    Args:
        ws_handler: Coroutine function called with each connection, as
            ``ws_handler(websocket, path)`` or ``ws_handler(websocket)``.
        host: Host to listen on, as for :meth:`asyncio.loop.create_server`.
        port: Port to listen on.
        create_protocol: Factory of connections, a subclass of
            :class:`WebSocketServerProtocol` by default (``klass`` is its old name).
        timeout: Seconds allowed for the opening and closing handshakes.
        max_size: Largest incoming message in bytes (1 MiB); ``None`` for no limit.
        max_queue: Incoming messages buffered before reading pauses (32).
        read_limit: Largest opening handshake request in bytes (64 KiB).
        write_limit: Write buffer high-water mark in bytes (64 KiB).
        loop: Accepted for compatibility; must be the running loop.
        legacy_recv: ``recv()`` returns ``None`` instead of raising once closed.
        origins: Acceptable ``Origin`` values (``''`` admits none); ``None`` accepts any.
        extensions: Server extension factories.
        subprotocols: Supported subprotocols, in order of preference.
        extra_headers: Extra 101 response headers: mapping, pairs, or a callable
            ``(path, raw_request_headers)``.
        compression: ``'deflate'`` (default) enables permessage-deflate; ``'lean'`` enables
            it with the lean preset for many busy connections (see
            :ref:`lean-compression`); ``None`` disables.
        ping_interval: Seconds between keepalive pings (20); ``None`` disables.
        ping_timeout: Seconds to wait for a keepalive pong (20); ``None`` waits forever.
        **kwds: Passed to :meth:`asyncio.loop.create_server` (``ssl``, ``sock``,
            ``reuse_port``, ``backlog``...).
    """

    def __init__(
        self,
        ws_handler: Handler,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        path: str | None = None,
        create_protocol: Callable[..., WebSocketServerProtocol] | None = None,
        timeout: float = 10,
        max_size: int | None = 2**20,
        max_queue: int | None = 2**5,
        read_limit: int = 2**16,
        write_limit: int = 2**16,
        loop: asyncio.AbstractEventLoop | None = None,
        legacy_recv: bool = False,
        klass: Callable[..., WebSocketServerProtocol] | None = None,
        origins: Sequence[str] | None = None,
        extensions: list[ServerExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        extra_headers: ExtraHeaders | None = None,
        compression: str | None = "deflate",
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        **kwds: Any,
    ) -> None:
        if create_protocol is None:
            create_protocol = klass if klass is not None else WebSocketServerProtocol
        extensions = _apply_compression(compression, extensions)
        self._loop = loop
        self._host = host
        self._port = port
        self._path = path
        self._kwds = kwds
        self._protocol_options: dict[str, Any] = dict(
            host=host if isinstance(host, str) else None,
            port=port,
            secure=kwds.get("ssl") is not None,
            timeout=timeout,
            max_size=max_size,
            max_queue=max_queue,
            read_limit=read_limit,
            write_limit=write_limit,
            legacy_recv=legacy_recv,
            origins=origins,
            extensions=extensions,
            subprotocols=subprotocols,
            extra_headers=extra_headers,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        self._create_protocol = create_protocol
        self._ws_handler = ws_handler
        self.ws_server: WebSocketServer | None = None

    async def _start(self) -> WebSocketServer:
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise ValueError("loop must be the running event loop (or None)")
        ws_server = WebSocketServer(loop)
        factory = functools.partial(
            self._create_protocol, self._ws_handler, ws_server, **self._protocol_options
        )
        kind = getattr(self._create_protocol, "transport_kind", None)
        server: asyncio.Server | NativeServer
        if self._path is not None:
            server = await create_server(factory, kind, self._path, unix=True, **self._kwds)
        else:
            server = await create_server(factory, kind, self._host, self._port, **self._kwds)
        ws_server.wrap(server)
        self.ws_server = ws_server
        return ws_server

    def __await__(self) -> Generator[Any, None, WebSocketServer]:
        return self._start().__await__()

    async def __aenter__(self) -> WebSocketServer:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.ws_server is not None
        self.ws_server.close()
        await self.ws_server.wait_closed()


serve = Serve
"""Start a WebSocket server; see :class:`~wsrs.server.Serve`."""


def unix_serve(ws_handler: Handler, path: str, **kwargs: Any) -> Serve:
    """Start a WebSocket server on a Unix socket at ``path``; otherwise like :func:`serve`."""
    return Serve(ws_handler, path=path, **kwargs)


def _apply_compression(
    compression: str | None, extensions: list[ServerExtensionFactory] | None
) -> list[ServerExtensionFactory] | None:
    """Add the permessage-deflate factory of ``compression`` unless one is there already.

    ``'deflate'`` is websockets' value (default parameters); ``'lean'`` the preset that
    keeps no zlib state between messages and bounds the windows a connection keeps to
    :data:`~wsrs.extensions.permessage_deflate.LEAN_WINDOW_BITS` bits.

    Raises:
        ValueError: For any other value than these and ``None``.
    """
    if compression is None:
        return extensions
    if compression not in ("deflate", "lean"):
        raise ValueError(f"unsupported compression: {compression}")
    from .extensions.permessage_deflate import LEAN_WINDOW_BITS, ServerPerMessageDeflateFactory

    extensions = [] if extensions is None else list(extensions)
    if not any(f.name == "permessage-deflate" for f in extensions):
        if compression == "lean":
            factory = ServerPerMessageDeflateFactory(
                server_max_window_bits=LEAN_WINDOW_BITS,
                client_max_window_bits=LEAN_WINDOW_BITS,
                lean=True,
            )
        else:
            factory = ServerPerMessageDeflateFactory()
        extensions.append(factory)
    return extensions
