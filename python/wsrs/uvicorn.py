"""wsrs as uvicorn's WebSocket protocol: :class:`WebSocketProtocol` (ASGI WebSocket spec 2.4).

Run an ASGI application with it::

    uvicorn app:app --ws wsrs.uvicorn:WebSocketProtocol

or ``uvicorn.run(app, ws="wsrs.uvicorn:WebSocketProtocol")``. uvicorn's HTTP protocol (h11
or httptools) reads the upgrade request, creates this protocol, feeds it the request again
and hands it the transport; from then on the opening handshake
(:func:`wsrs.opening.accept` / :func:`wsrs.opening.reject`), the connection rules
(:class:`wsrs.connection.Connection`) and the asyncio plumbing
(:class:`wsrs.asyncio.base.BaseProtocol`: reading into one buffer, flow control, keepalive,
closing TCP) are the ones of wsrs' other front ends. This module only translates between
them and the ASGI events.

Theory of operation
-------------------

1. The request is checked as soon as it arrives; an invalid one gets its HTTP error
   (400, 426...) without running the application. A valid one starts the application with
   the ``websocket`` scope; its first ``receive()`` returns ``websocket.connect``.
2. The application answers with ``websocket.accept`` (the 101 response, with uvicorn's
   default headers, the application's headers and its subprotocol), ``websocket.close``
   (403) or ``websocket.http.response.start`` / ``.body`` (its own HTTP response; written
   as it comes when it has a ``Content-Length``, else gathered and sent with one). When it
   fails or returns first, the client gets a 500 while nothing was sent yet.
3. Once accepted, ``receive()`` returns the messages in order and then one
   ``websocket.disconnect``, as often as it is called. Reading from the client pauses
   while a message waits unread, as uvicorn's own protocols do; ``send()`` waits while
   the transport's write buffer is full.
4. The end: the application's ``websocket.close`` starts the closing handshake (its code
   and reason are what ``receive()`` reports from then on); uvicorn's shutdown closes
   with 1012; an application that returns without closing drops the connection without a
   close frame (the client sees 1006), as uvicorn does.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import http
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import unquote

from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)

from .asyncio.base import BaseProtocol
from .asyncio.keepalive import Keepalive
from .connection import Connection, State
from .datastructures import Headers
from .exceptions import ConnectionClosed, InvalidState
from .extensions.base import ServerExtensionFactory
from .extensions.permessage_deflate import ServerPerMessageDeflateFactory
from .headers import parse_subprotocol_list
from .http11 import Request, Response, error_response, parse_request
from .opening import Accepted, accept, check_origin, negotiate_extensions, reject


if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent, WebSocketEvent, WebSocketScope
    from uvicorn.config import Config
    from uvicorn.server import ServerState


__all__ = ["WebSocketProtocol"]

CLOSE_TIMEOUT = 10.0
"""Seconds allowed for the closing handshake and for closing TCP, as in uvicorn."""


class _Phase(enum.Enum):
    """Where the application is in the ASGI WebSocket exchange."""

    CONNECTING = "connecting"  # no answer to the handshake yet
    RESPONDING = "responding"  # websocket.http.response.start sent, body to come
    OPEN = "open"  # websocket.accept sent
    CLOSED = "closed"  # websocket.close or the whole HTTP response sent


def _headers(pairs: Iterable[tuple[bytes, bytes]], into: Headers) -> Headers:
    """Add ASGI header pairs (bytes, ISO-8859-1 as HTTP/1.1 carries them) to ``into``."""
    for name, value in pairs:
        into[name.decode("latin-1")] = value.decode("latin-1")
    return into


def _no_subprotocol(headers: Headers) -> None:
    """The application chooses the subprotocol later, in ``websocket.accept``."""
    return None


class WebSocketProtocol(BaseProtocol):
    """uvicorn's WebSocket protocol on wsrs.

    uvicorn creates it (``--ws wsrs.uvicorn:WebSocketProtocol``); its settings come from
    uvicorn's :class:`~uvicorn.config.Config`: ``ws_max_size`` (a larger message closes
    the connection with 1009), ``ws_ping_interval`` and ``ws_ping_timeout`` (keepalive;
    ``None`` or 0 disables it; a late pong closes with 1011), ``ws_per_message_deflate``
    (permessage-deflate, 12-bit windows as uvicorn's websockets protocol), ``root_path``.
    ``ws_max_queue`` is not used: reading pauses as soon as a message waits unread, as in
    uvicorn's websockets-sansio and wsproto protocols.

    Args:
        config: uvicorn's configuration.
        server_state: uvicorn's server state: the protocol registers itself in
            ``connections`` and its application task in ``tasks``, and sends
            ``default_headers`` (``server``, ``date``) with its responses.
        app_state: The state the lifespan startup filled; each connection's scope gets a
            shallow copy.
    """

    is_client = False
    side = "server"
    half_close = False  # uvicorn closes its transports with close()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        super().__init__(
            loop=_loop if _loop is not None else asyncio.get_running_loop(),
            timeout=CLOSE_TIMEOUT,
            max_size=config.ws_max_size,
            # Pause reading while a message waits unread (resume once none does).
            max_queue=1,
            read_limit=2**16,
            # asyncio's default high-water mark: uvicorn leaves the transport's limits
            # alone, so does this protocol; the writer batches up to it.
            write_limit=2**16,
            ping_interval=config.ws_ping_interval or None,
            ping_timeout=config.ws_ping_timeout,
        )
        self.config = config
        """uvicorn's configuration."""
        self.app = config.loaded_app
        self.logger = logging.getLogger("uvicorn.error")
        self.root_path = config.root_path
        self.app_state = app_state
        # uvicorn types the set with its own protocol classes.
        self.connections: set[Any] = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        self.server: tuple[str, int | None] | None = None
        """The local address, for the scope."""
        self.client: tuple[str, int] | None = None
        """The client's address, for the scope."""
        self.scheme: Literal["ws", "wss"] = "ws"
        self.scope: WebSocketScope | None = None
        """The ASGI scope, once the request was checked."""
        self.subprotocol: str | None = None
        """The subprotocol the application accepted, if any."""
        self.close_timeout: float | None = CLOSE_TIMEOUT
        """Seconds to wait for the client's close frame after sending one (uvicorn's
        name); then the transport is closed, and aborted ``timeout`` seconds later if it
        is still open."""
        self.ping_sent_at = 0.0
        """Event-loop time of the last keepalive ping; 0.0 before the first."""
        self._factories: list[ServerExtensionFactory] = []
        if config.ws_per_message_deflate:
            self._factories.append(
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            )
        self._accepted: Accepted | None = None
        self._phase = _Phase.CONNECTING
        self._ended_by = ""  # what moved the phase to CLOSED, for error messages
        self._connect_sent = False
        self._disconnect: dict[str, Any] | None = None  # set by websocket.close, shutdown
        self._response: Response | None = None  # the denial response being sent
        self._body = bytearray()  # its body, gathered when it has no Content-Length
        self._streaming = False  # whether its head is sent and its body goes out as it comes

    # ------------------------------------------------------------------ uvicorn's names

    @property
    def close_timer(self) -> asyncio.TimerHandle | None:
        """The timer that gives up on the client's close frame, while it is awaited."""
        connection = self.connection
        if connection is None or connection.close_sent is None:
            return None
        if connection.close_rcvd is not None:
            return None
        transport = cast(asyncio.Transport, self.transport)  # set before the connection
        return None if transport.is_closing() else self._close_timer

    @property
    def ping_timer(self) -> Keepalive | None:
        """The keepalive timer (:class:`~wsrs.asyncio.keepalive.Keepalive`); ``None`` when
        keepalive is disabled or not started."""
        return self._keepalive

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register the connection and start reading the request (asyncio callback)."""
        writable = cast(asyncio.Transport, transport)
        self._attach(writable)
        self.connections.add(self)
        self.server = get_local_addr(writable)
        self.client = get_remote_addr(writable)
        self.scheme = "wss" if is_ssl(writable) else "ws"
        self._trace("WebSocket connection made")
        task = self.loop.create_task(self._run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake the application and unregister the connection (asyncio callback)."""
        super().connection_lost(exc)
        self.connections.discard(self)
        self._trace("WebSocket connection lost")

    def shutdown(self) -> None:
        """Close the connection because uvicorn shuts down.

        An open connection closes with 1012 (service restart), which ``receive()``
        reports at once; a handshake the application has not answered gets a 500.
        """
        connection = self.connection
        if connection is not None and connection.state is State.OPEN:
            self._disconnect = {"type": "websocket.disconnect", "code": 1012}
            self._start_closing(connection, 1012, "")
            self._queue.end()
        elif self._phase is _Phase.CONNECTING or (
            self._phase is _Phase.RESPONDING and not self._streaming
        ):
            self._send_500()
        elif not cast(asyncio.Transport, self.transport).is_closing():
            # Waiting for the client's close frame, or in the middle of a response whose
            # head is sent: stop waiting.
            self._close_then_abort()

    def _start_closing(self, connection: Connection, code: int, reason: str) -> None:
        """Send a close frame; give up on the client's after ``close_timeout``."""
        super()._start_closing(connection, code, reason)
        self._arm_timer(self.close_timeout, self._close_then_abort)

    def _trace(self, event: str) -> None:
        if self.logger.level <= TRACE_LOG_LEVEL:
            prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.log(TRACE_LOG_LEVEL, "%s%s", prefix, event)

    # ------------------------------------------------------------------ the request

    async def _run(self) -> None:
        """Check the request, then run the application."""
        try:
            request: Request = await self._handshake.read(parse_request)
            values = request.headers.get_all("Sec-WebSocket-Protocol")
            subprotocols = parse_subprotocol_list(values) if values else []
            self._accepted = accept(
                request,
                process_origin=check_origin,
                process_extensions=functools.partial(
                    negotiate_extensions, available_extensions=self._factories
                ),
                process_subprotocol=_no_subprotocol,
                server_header=None,
            )
        except Exception as exc:
            response = None if self._handshake.eof else reject(exc)
            if response is None:
                self._close_early()
                return
            self.logger.info("Invalid WebSocket handshake: HTTP %d: %s", response.status_code, exc)
            _headers(self.default_headers, response.headers)
            self._respond(response, "the HTTP response")
            return
        self.scope = self._make_scope(request, subprotocols)
        await self._run_asgi(self.scope)

    def _make_scope(self, request: Request, subprotocols: list[str]) -> WebSocketScope:
        raw_path, _, query_string = request.path.partition("?")
        return {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": (self.root_path + raw_path).encode("ascii"),
            "query_string": query_string.encode("ascii"),
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers.raw_items()
            ],
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }

    async def _run_asgi(self, scope: WebSocketScope) -> None:
        try:
            result = await self.app(scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self._send_500()
        else:
            if self._phase is _Phase.CONNECTING:
                self.logger.error("ASGI callable returned without completing handshake.")
                self._send_500()
            elif self._phase is _Phase.RESPONDING:
                self.logger.error("ASGI callable returned without completing the response.")
                self._send_500()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        connection = self.connection
        if self._phase is _Phase.RESPONDING:
            # The head of the response is sent, the body is not complete: close.
            self._close_early()
        elif connection is not None and connection.state is State.OPEN:
            # Returned without websocket.close: drop the connection, as uvicorn does.
            connection.fail(1006, "ASGI application returned without closing")
            self._after_events(connection)

    # ------------------------------------------------------------------ ASGI receive

    async def receive(self) -> WebSocketEvent:
        """Return the next ASGI event: ``websocket.connect``, ``websocket.receive``
        (``text`` or ``bytes``), then ``websocket.disconnect`` on every call."""
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        message = await self._queue.get()
        if message is None:
            return self._disconnect_event()  # type: ignore[return-value]
        if type(message) is str:
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}  # type: ignore[typeddict-item]

    def _disconnect_event(self) -> dict[str, Any]:
        if self._disconnect is not None:
            return self._disconnect
        connection = self.connection
        if connection is None:  # never accepted
            return {"type": "websocket.disconnect", "code": 1006}
        rcvd = connection.close_rcvd
        if rcvd is not None:
            return {"type": "websocket.disconnect", "code": rcvd.code, "reason": rcvd.reason}
        if connection.failure is not None:
            code = connection.close_code
            return {"type": "websocket.disconnect", "code": code, "reason": connection.close_reason}
        # TCP closed without a closing handshake.
        return {"type": "websocket.disconnect", "code": 1006}

    # ------------------------------------------------------------------ ASGI send

    async def send(self, message: ASGISendEvent) -> None:
        """Handle an ASGI event from the application.

        Raises:
            ClientDisconnected: When the client is gone (an :exc:`OSError`).
            RuntimeError: When the event is not expected at this point.
        """
        if self._paused_writing:
            try:
                await self._drain()
            except ConnectionClosed:
                raise ClientDisconnected from None
        if self.connection_lost_waiter.done():
            raise ClientDisconnected
        kind = message["type"]
        phase = self._phase
        if phase is _Phase.OPEN:
            if kind == "websocket.send":
                self._send_data(message)
            elif kind == "websocket.close":
                self._close(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got '{kind}'."
                )
        elif phase is _Phase.CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._deny()
            elif kind == "websocket.http.response.start":
                self._start_response(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                    f"'websocket.http.response.start' but got '{kind}'."
                )
        elif phase is _Phase.RESPONDING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
                )
            self._response_body(message)
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending {self._ended_by}.")

    def _log_answer(self, answer: str | int) -> None:
        """Log the answer to the handshake as uvicorn does (``uvicorn.error``, INFO)."""
        scope = cast("WebSocketScope", self.scope)
        self.logger.info(
            '%s - "WebSocket %s" %s',
            get_client_addr(scope),
            get_path_with_query_string(scope),
            answer,
        )

    def _accept(self, message: Any) -> None:
        accepted = cast(Accepted, self._accepted)
        headers = accepted.response.headers
        _headers([*self.default_headers, *message.get("headers", [])], headers)
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers["Sec-WebSocket-Protocol"] = subprotocol
        self._log_answer("[accepted]")
        self._phase = _Phase.OPEN
        self.subprotocol = subprotocol
        self.extensions = accepted.extensions
        self._write_http(accepted.response.serialize())
        self.connection_open()

    def _send_data(self, message: Any) -> None:
        data = message.get("bytes")
        if data is None:
            data = message.get("text")
            if data is None:
                raise RuntimeError("Expected 'bytes' or 'text' in ASGI message 'websocket.send'.")
        try:
            self._write_message(cast(Any, self.connection), data)
        except InvalidState:
            raise ClientDisconnected from None

    def _close(self, message: Any) -> None:
        code = message.get("code") or 1000
        reason = message.get("reason") or ""
        connection = self.connection
        if connection is not None and connection.state is State.OPEN:
            # ValueError for a code that may not be sent or a reason over 123 bytes.
            self._start_closing(connection, code, reason)
        self._phase = _Phase.CLOSED
        self._ended_by = "'websocket.close'"
        self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._queue.end()

    # ------------------------------------------------------------------ denial responses

    def _deny(self) -> None:
        self._log_answer(403)
        response = Response(403, "Forbidden", Headers(), b"")
        _headers(self.default_headers, response.headers)
        response.headers["Content-Length"] = "0"
        response.headers["Connection"] = "close"
        self._respond(response, "'websocket.close'")

    def _start_response(self, message: Any) -> None:
        status = message["status"]
        if not 100 <= status < 600:
            raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
        headers = _headers([*self.default_headers, *message.get("headers", [])], Headers())
        if "Connection" not in headers:
            headers["Connection"] = "close"
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        self._log_answer(status)
        self._response = Response(status, phrase, headers, None)
        self._phase = _Phase.RESPONDING
        if "Content-Length" in headers or "Transfer-Encoding" in headers:
            # The application frames the body: send the head now, the body as it comes.
            self._streaming = True
            self._write_http(self._response.serialize())

    def _response_body(self, message: Any) -> None:
        response = cast(Response, self._response)
        body = message.get("body", b"")
        if self._streaming:
            if body:
                self._write_http(body)
        else:
            self._body += body
        if message.get("more_body", False):
            return
        if self._streaming:
            self._finish("the HTTP response")
        else:
            response.headers["Content-Length"] = str(len(self._body))
            response.body = bytes(self._body)
            self._respond(response, "the HTTP response")

    def _send_500(self) -> None:
        """Answer with 500 unless the application's answer is (partly) sent."""
        if self._phase is _Phase.CONNECTING or (
            self._phase is _Phase.RESPONDING and not self._streaming
        ):
            response = error_response(500, "Internal Server Error")
            _headers(self.default_headers, response.headers)
            self._respond(response, "the HTTP response")

    def _respond(self, response: Response, ended_by: str) -> None:
        """Send an HTTP response instead of 101, then close the connection."""
        self._write_http(response.serialize())
        self._finish(ended_by)

    def _finish(self, ended_by: str) -> None:
        self._phase = _Phase.CLOSED
        self._ended_by = ended_by
        self._disconnect = {"type": "websocket.disconnect", "code": 1006}
        self._queue.end()
        self._close_early(linger=True)

    # ------------------------------------------------------------------ keepalive

    def _keepalive_ping(self) -> Any:
        self.ping_sent_at = self.loop.time()
        return super()._keepalive_ping()
