"""The server of the websockets >= 14 API: :func:`serve`, :func:`unix_serve`, :class:`Server`,
:class:`ServerConnection`, :func:`broadcast`, :func:`basic_auth`.

A drop-in for ``websockets.asyncio.server``: the handler takes one argument, the connection;
``process_request(connection, request)`` and ``process_response(connection, request,
response)`` may answer or change the handshake.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import http
import inspect
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeAlias

from .. import _core
from ..connection import State
from ..datastructures import Headers
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
)
from ..extensions.base import ServerExtensionFactory
from ..headers import parse_authorization_basic, parse_subprotocol_list
from ..http11 import Request, Response, error_response, parse_request
from ..opening import (
    accept,
    check_origin,
    negotiate_extensions,
    reject,
    select_subprotocol_in_server_order,
)
from ..server import _apply_compression
from ..version import USER_AGENT
from .accept import NativeServer, create_server as create_listener
from .connection import Connection, DataLike, LoggerLike, MaxQueue, WriteLimit


__all__ = [
    "Server",
    "ServerConnection",
    "basic_auth",
    "broadcast",
    "serve",
    "unix_serve",
]

logger = logging.getLogger("websockets.server")

Origin: TypeAlias = "str | re.Pattern[str] | None"
SelectSubprotocol: TypeAlias = Callable[["ServerConnection", Sequence[str]], "str | None"]
ProcessRequest: TypeAlias = Callable[
    ["ServerConnection", Request], "Awaitable[Response | None] | Response | None"
]
ProcessResponse: TypeAlias = Callable[
    ["ServerConnection", Request, Response], "Awaitable[Response | None] | Response | None"
]


class ServerConnection(Connection):
    """The server side of a WebSocket connection, as ``websockets.asyncio.server``'s.

    Args:
        server: The :class:`Server` it belongs to.
        **kwargs: Options of :class:`~wsrs.asyncio.connection.Connection`.
    """

    is_client = False
    side = "server"

    def __init__(
        self,
        server: Server,
        *,
        origins: Sequence[Origin] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: SelectSubprotocol | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.server = server
        """The server this connection belongs to."""
        self.origins = origins
        self.available_extensions = extensions
        self.available_subprotocols = subprotocols
        self._select_subprotocol = select_subprotocol
        self.username: str | None = None
        """The user name, after :func:`basic_auth` accepted the request."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the handshake and the handler once the transport exists (asyncio callback)."""
        super().connection_made(transport)
        self.server.start_handler(self)

    def respond(self, status: int | http.HTTPStatus, text: str) -> Response:
        """Build a plain-text HTTP response, e.g. for ``process_request`` to return.

        Args:
            status: HTTP status code.
            text: Body, encoded as UTF-8.
        """
        return error_response(status, text)

    def process_origin(self, headers: Headers) -> str | None:
        """Check the ``Origin`` header against ``origins`` (:func:`wsrs.opening.check_origin`)."""
        return check_origin(headers, self.origins)

    def process_subprotocol(self, headers: Headers) -> str | None:
        """Select the subprotocol with ``select_subprotocol``, or else the first of the
        server's that the client offers
        (:func:`wsrs.opening.select_subprotocol_in_server_order`)."""
        values = headers.get_all("Sec-WebSocket-Protocol")
        offered = parse_subprotocol_list(values) if values else []
        if self._select_subprotocol is not None:
            return self._select_subprotocol(self, offered)
        if not self.available_subprotocols:
            return None
        return select_subprotocol_in_server_order(offered, self.available_subprotocols)

    async def handshake(
        self,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        server_header: str | None = USER_AGENT,
    ) -> None:
        """Perform the opening handshake: read the request, send the response."""
        response: Response | None = None
        try:
            request: Request = await self._handshake.read(parse_request)
        except Exception as exc:
            self.request = None
            # No response can reach a client that closed its side (the parser reports a
            # request cut short as InvalidMessage).
            response = None if self._handshake.eof else reject(exc)
            if response is None:
                self.fail_connection(1006)
                return
            request = Request("GET", "/", Headers())
            exc_for_log: BaseException | None = exc
        else:
            self.request = request
            exc_for_log = None
            try:
                if process_request is not None:
                    try:
                        response = await _maybe_await(process_request(self, request))
                    except Exception as exc:
                        self.logger.error("process_request failed", exc_info=True)
                        response = reject(exc)
                if response is None:
                    accepted = accept(
                        request,
                        process_origin=self.process_origin,
                        process_extensions=functools.partial(
                            negotiate_extensions, available_extensions=self.available_extensions
                        ),
                        process_subprotocol=self.process_subprotocol,
                        server_header=server_header,
                    )
                    response = accepted.response
                    self.extensions = accepted.extensions
                    self._subprotocol = accepted.subprotocol
            except Exception as exc:
                response = reject(exc)
                assert response is not None  # reject() answers all but EOF and timeouts
                exc_for_log = exc
        if process_response is not None and self.request is not None:
            try:
                changed = await _maybe_await(process_response(self, request, response))
            except Exception as exc:
                self.logger.error("process_response failed", exc_info=True)
                changed = reject(exc)
                exc_for_log = None  # logged
            if changed is not None:
                response = changed
        if response.status_code == 101 and self.server.closing:
            # As websockets: a handshake that ends while the server closes is refused, so
            # close() never waits for a handler that started after it.
            response = self.respond(503, "Server is shutting down.\n")
        if server_header is not None and "Server" not in response.headers:
            response.headers["Server"] = server_header
        self.response = response
        if response.status_code == 101:
            self._write_http(response.serialize())
            self.connection_open()
            return
        if exc_for_log is not None:
            if response.status_code == 500:
                self.logger.error("opening handshake failed", exc_info=exc_for_log)
            else:
                self.logger.info("opening handshake failed: %s", exc_for_log)
        self._write_http(response.serialize())
        self._close_early(linger=True)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Server:
    """A running WebSocket server, as ``websockets.asyncio.server.Server``.

    Awaiting :func:`serve` returns it; ``async with serve(...) as server`` closes it on exit.
    """

    def __init__(
        self,
        create_server: Callable[[], Awaitable[asyncio.Server | NativeServer]],
        handler: Callable[[ServerConnection], Coroutine[Any, Any, None]],
        logger: LoggerLike,
    ) -> None:
        self._create_server = create_server
        self.handler = handler
        self.logger = logger
        self.server: asyncio.Server | NativeServer | None = None
        """The underlying :class:`asyncio.Server`, or :class:`~.accept.NativeServer` when
        connections are accepted onto the native transport."""
        self.handlers: set[asyncio.Task[None]] = set()
        self.all_connections: set[ServerConnection] = set()
        self._closing: asyncio.Task[None] | None = None
        self._close_called: asyncio.Future[None]  # set by _start(), on the running loop

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing is not None

    @property
    def connections(self) -> set[ServerConnection]:
        """The open connections: the opening handshake succeeded and the handler runs."""
        return {c for c in self.all_connections if c.state is State.OPEN}

    def start_handler(self, connection: ServerConnection) -> None:
        """Run the handshake and the handler of a new connection in a task of their own."""
        task = connection.loop.create_task(self.handler(connection))
        self.handlers.add(task)
        task.add_done_callback(self.handlers.discard)

    def close(self, close_connections: bool = True, code: int = 1001, reason: str = "") -> None:
        """Close the server: stop accepting connections, then close the open ones with
        ``code`` and ``reason`` (unless ``close_connections`` is false) and wait for the
        handlers. Call :meth:`wait_closed` to wait until it is done."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(
                self._close(close_connections, code, reason)
            )
            if not self._close_called.done():  # pragma: no branch
                self._close_called.set_result(None)

    async def _close(self, close_connections: bool, code: int, reason: str) -> None:
        assert self.server is not None
        self.server.close()
        await asyncio.sleep(0)
        if close_connections:
            closing = [c.close(code, reason) for c in list(self.all_connections)]
            if closing:
                await asyncio.gather(*closing, return_exceptions=True)
        if self.handlers:
            await asyncio.wait(list(self.handlers))
        await self.server.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the server is closed (by :meth:`close`, from any task) and every
        handler has returned."""
        if self._closing is None:
            await asyncio.shield(self._close_called)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on."""
        assert self.server is not None
        return self.server.get_loop()

    def is_serving(self) -> bool:
        """Whether the server accepts connections."""
        return self.server is not None and self.server.is_serving()

    async def start_serving(self) -> None:
        """Start accepting connections (after ``serve(..., start_serving=False)``)."""
        assert self.server is not None
        await self.server.start_serving()

    async def serve_forever(self) -> None:
        """Accept connections until :meth:`close` is called (then return once the server is
        closed) or the task is cancelled (then close the server and re-raise)."""
        try:
            if not self.is_serving():
                await self.start_serving()
            await self.wait_closed()
        except asyncio.CancelledError:
            self.close()
            await self.wait_closed()
            raise

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        assert self.server is not None
        return tuple(self.server.sockets)

    async def _start(self) -> Server:
        self._close_called = asyncio.get_running_loop().create_future()
        self.server = await self._create_server()
        return self

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


def serve(
    handler: Callable[[ServerConnection], Awaitable[None]],
    host: str | None = None,
    port: int | None = None,
    *,
    origins: Sequence[Origin] | None = None,
    extensions: Sequence[ServerExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    select_subprotocol: SelectSubprotocol | None = None,
    compression: str | None = "deflate",
    process_request: ProcessRequest | None = None,
    process_response: ProcessResponse | None = None,
    server_header: str | None = USER_AGENT,
    open_timeout: float | None = 10,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float | None = 10,
    max_size: int | None | tuple[int | None, int | None] = 2**20,
    max_queue: MaxQueue = 16,
    write_limit: WriteLimit = 2**15,
    logger: LoggerLike | None = None,
    create_connection: type[ServerConnection] | None = None,
    **kwargs: Any,
) -> Server:
    """Create a WebSocket server listening on ``host`` and ``port``.

    Each connection runs ``handler(connection)`` once its opening handshake succeeded, and
    is closed when it returns (1011 when it raises). Await the result or use it as an
    asynchronous context manager. Arguments as websockets 17's ``serve``; ``**kwargs`` go
    to :meth:`asyncio.loop.create_server` (``ssl``, ``sock``, ``reuse_port``,
    ``start_serving``...). Besides websockets' ``compression="deflate"`` and ``None``,
    ``compression="lean"`` negotiates permessage-deflate with the lean preset for many busy
    connections (see :ref:`lean-compression`).
    """
    if isinstance(subprotocols, str):
        raise TypeError("subprotocols must be a list, not a str")
    factories = _apply_compression(compression, list(extensions) if extensions else None)
    connection_class = ServerConnection if create_connection is None else create_connection
    server_logger: LoggerLike = (
        logger if logger is not None else logging.getLogger("websockets.server")
    )
    if kwargs.get("ssl") is not None:
        kwargs.setdefault("ssl_handshake_timeout", open_timeout)
    unix = kwargs.pop("unix", False)

    def factory() -> ServerConnection:
        connection = connection_class(
            server,
            origins=origins,
            extensions=factories,
            subprotocols=subprotocols,
            select_subprotocol=select_subprotocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_size=max_size,
            max_queue=max_queue,
            write_limit=write_limit,
            logger=server_logger,
        )
        return connection

    async def run(connection: ServerConnection) -> None:
        try:
            async with asyncio.timeout(open_timeout):
                await connection.handshake(process_request, process_response, server_header)
        except TimeoutError:
            connection.fail_connection(1006)
            return
        except Exception:
            connection.logger.error("opening handshake failed", exc_info=True)
            connection.fail_connection(1006)
            return
        if connection.state is not State.OPEN:
            await connection.wait_closed()
            return
        server.all_connections.add(connection)
        try:
            await handler(connection)
        except ConnectionClosed:
            await connection.close()
        except Exception:
            connection.logger.error("connection handler failed", exc_info=True)
            await connection.close(1011)
        else:
            await connection.close()
        finally:
            server.all_connections.discard(connection)

    async def create_server() -> asyncio.Server | NativeServer:
        kind = connection_class.transport_kind
        if unix:
            return await create_listener(factory, kind, unix=True, **kwargs)
        return await create_listener(factory, kind, host, port, **kwargs)

    server = Server(create_server, run, server_logger)
    return server


def unix_serve(
    handler: Callable[[ServerConnection], Awaitable[None]],
    path: str | None = None,
    **kwargs: Any,
) -> Server:
    """Like :func:`serve`, on the Unix socket ``path``."""
    return serve(handler, unix=True, path=path, **kwargs)


def broadcast(
    connections: Iterable[Connection],
    message: DataLike,
    raise_exceptions: bool = False,
    *,
    text: bool | None = None,
) -> int:
    """Send a message to several connections at once, without waiting.

    A ``str`` is sent as a text frame and a bytes-like object as a binary frame, unless
    ``text`` says otherwise (``text=True`` sends UTF-8 bytes, such as JSON from a library
    that produces bytes, as text without decoding them; ``text=False`` sends a ``str`` as
    binary). As in websockets, :func:`broadcast` skips connections that aren't open and
    connections that are sending a fragmented message, and goes on when writing to one
    fails.

    Where it does better than websockets:

    - **Encoded once.** Every server connection with the same encoding is written the same
      ``bytes`` object: one frame for the connections without compression, and one per
      compression setting (window size, level, memory level) for the connections with
      permessage-deflate, compressed once as a fresh compressor would, so it suits every
      peer whatever its context. Each connection records the message in its compression
      window, so its own later messages still refer back to what the peer has seen (its
      compression state is rebuilt from that window on its next compressed message). Client
      connections mask each frame with their own key, so they encode it themselves.
    - **Backpressure.** A connection whose write buffer is over its high-water mark
      (``write_limit``) is **skipped**, not closed: a slow reader cannot make the server's
      memory grow (websockets writes to it anyway). The skipped connections are counted and
      logged at WARNING; they stay open and get the next broadcasts once they catch up.

    Args:
        connections: Where to send.
        message: ``str`` for text, bytes-like for binary.
        raise_exceptions: Raise an :exc:`ExceptionGroup` of the failures instead of logging
            them: :exc:`~wsrs.exceptions.ConcurrencyError` for a connection sending a
            fragmented message, :exc:`RuntimeError` (caused by the error) for a failed write.
        text: Send as text (``True``) or binary (``False``) whatever the type of
            ``message``.

    Returns:
        How many connections were skipped because their write buffer was full.

    Raises:
        TypeError: If ``message`` is neither ``str`` nor bytes-like.
    """
    if not isinstance(message, str | bytes | bytearray | memoryview):
        raise TypeError("data must be str or bytes")
    shared = _core.SharedMessage(message, text=text)
    skipped = 0
    errors: list[Exception] = []
    for connection in connections:
        core, transport = connection.connection, connection.transport
        if core is None or transport is None or core.state is not State.OPEN:
            continue
        if core.sending_fragments:
            if raise_exceptions:
                errors.append(ConcurrencyError("sending a fragmented message"))
            else:
                connection.logger.warning("skipped broadcast: sending a fragmented message")
            continue
        if transport.get_write_buffer_size() > connection.write_limit:
            skipped += 1
            connection.logger.warning("skipped broadcast: the write buffer is full")
            continue
        try:
            connection._write_shared(shared)
        except Exception as exc:
            if raise_exceptions:
                failure = RuntimeError("failed to write message")
                failure.__cause__ = exc
                errors.append(failure)
            else:
                connection.logger.warning("skipped broadcast: failed to write message: %s", exc)
    if errors:
        raise ExceptionGroup("skipped broadcast", errors)
    return skipped


def basic_auth(
    realm: str = "",
    credentials: tuple[str, str] | Iterable[tuple[str, str]] | None = None,
    check_credentials: Callable[[str, str], Awaitable[bool] | bool] | None = None,
) -> ProcessRequest:
    """Return a ``process_request`` that enforces HTTP Basic Authentication (RFC 7617).

    Args:
        realm: Scope of protection, shown by browsers.
        credentials: A ``(username, password)`` pair or a list of them.
        check_credentials: A function (or coroutine function) checking a username and
            password; give either it or ``credentials``.

    Requests without valid credentials get ``401 Unauthorized`` with a
    ``WWW-Authenticate`` header; accepted ones set ``connection.username``.
    """
    if (credentials is None) == (check_credentials is None):
        raise ValueError("provide either credentials or check_credentials")
    if credentials is not None:
        if (
            isinstance(credentials, tuple)
            and len(credentials) == 2
            and isinstance(credentials[0], str)
        ):
            pairs = [credentials]
        else:
            try:
                pairs = list(credentials)
            except TypeError:
                raise TypeError(f"invalid credentials argument: {credentials}") from None
        for pair in pairs:
            valid = isinstance(pair, tuple) and len(pair) == 2
            if not (valid and all(isinstance(item, str) for item in pair)):
                raise TypeError(f"invalid credentials argument: {credentials}")
        known = dict(pairs)

        def check(username: str, password: str) -> bool:
            expected = known.get(username)
            return expected is not None and hmac.compare_digest(expected, password)

        check_credentials = check

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        try:
            authorization = request.headers["Authorization"]
        except KeyError:
            response = connection.respond(401, "Missing credentials\n")
        else:
            username = parse_authorization_basic(authorization)
            if username is None:
                response = connection.respond(401, "Unsupported credentials\n")
            else:
                assert check_credentials is not None
                valid = await _maybe_await(check_credentials(*username))
                if valid:
                    connection.username = username[0]
                    return None
                response = connection.respond(401, "Invalid credentials\n")
        response.headers["WWW-Authenticate"] = f'Basic realm="{realm}", charset="UTF-8"'
        return response

    return process_request
