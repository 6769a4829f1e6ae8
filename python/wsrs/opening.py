"""The opening handshake of both sides, without I/O: requests and responses in and out.

Every front end calls these functions and only adds its own I/O and hooks, so the rules of
`RFC 6455 §4`_ and the answer to each failure are decided here once:

Server:

1. parse the request (:func:`wsrs.http11.parse_request`);
2. :func:`accept` checks it and builds the 101 response, calling the front end's policies
   for the origin, the extensions and the subprotocol (the defaults are
   :func:`check_origin`, :func:`negotiate_extensions` and :func:`negotiate_subprotocol`);
3. when any step raises, :func:`reject` gives the HTTP response that answers the failure:
   ``403`` for a forbidden origin, ``426`` with ``Sec-WebSocket-Version: 13`` for another
   version, ``431`` past a size limit, ``400`` for any other invalid handshake, the
   application's own response for :exc:`~wsrs.exceptions.AbortHandshake`, ``500`` for a bug.

Client:

1. :func:`connect_request` builds the request and the key to check the answer with;
2. :func:`check_response` checks the response and what it negotiated (defaults:
   :func:`check_extensions` and :func:`check_subprotocol`).

.. _RFC 6455 §4: https://datatracker.ietf.org/doc/html/rfc6455#section-4
"""

from __future__ import annotations

import dataclasses
import http
import re
from collections.abc import Callable, Sequence

from .datastructures import Headers, HeadersLike
from .exceptions import (
    AbortHandshake,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidOrigin,
    InvalidStatusCode,
    NegotiationError,
    SecurityError,
)
from .extensions.base import ClientExtensionFactory, Extension, ServerExtensionFactory
from .handshake import (
    build_request,
    build_response,
    check_request,
    check_response as check_response_headers,
    generate_key,
)
from .headers import (
    build_extension_list,
    build_host,
    build_subprotocol_list,
    parse_extension_list,
    parse_subprotocol_list,
)
from .http11 import Request, Response, error_response
from .uri import WebSocketURI
from .version import USER_AGENT


__all__ = [
    "Accepted",
    "accept",
    "check_extensions",
    "check_origin",
    "check_response",
    "check_subprotocol",
    "connect_request",
    "negotiate_extensions",
    "negotiate_subprotocol",
    "reject",
    "select_subprotocol",
    "select_subprotocol_in_server_order",
]


# ---------------------------------------------------------------------------- server


@dataclasses.dataclass
class Accepted:
    """What :func:`accept` decided: the 101 response and what it negotiated."""

    response: Response
    """The ``101 Switching Protocols`` response to send."""
    origin: str | None
    """The request's ``Origin`` header, if any."""
    extensions: list[Extension]
    """The extensions accepted, in the order they apply."""
    subprotocol: str | None
    """The subprotocol chosen, if any."""


def accept(
    request: Request,
    *,
    process_origin: Callable[[Headers], str | None],
    process_extensions: Callable[[Headers], tuple[str | None, list[Extension]]],
    process_subprotocol: Callable[[Headers], str | None],
    extra_headers: HeadersLike | Callable[[], HeadersLike] | None = None,
    server_header: str | None = USER_AGENT,
) -> Accepted:
    """Check an opening handshake request and build the 101 response.

    Args:
        request: The parsed request (:func:`wsrs.http11.parse_request` checks that it is a
            ``GET``).
        process_origin: Check the ``Origin`` header and return it, or raise
            :exc:`~wsrs.exceptions.InvalidOrigin` (see :func:`check_origin`).
        process_extensions: Return the ``Sec-WebSocket-Extensions`` response header (or
            ``None``) and the accepted extensions (see :func:`negotiate_extensions`).
        process_subprotocol: Return the subprotocol chosen, or ``None`` (see
            :func:`negotiate_subprotocol`).
        extra_headers: Headers added to the response, or a function returning them, called
            once the request is known to be acceptable; they may override ``Server``.
        server_header: Value of the ``Server`` header, unless ``extra_headers`` has one;
            ``None`` omits it.

    Returns:
        The response and what was negotiated. Send the response, then open the connection.

    Raises:
        InvalidHandshake: When the request is not an acceptable handshake; answer with
            :func:`reject`.
    """
    headers = request.headers
    key = check_request(headers)
    origin = process_origin(headers)
    response_headers = Headers()
    extension_header, extensions = process_extensions(headers)
    if extension_header is not None:
        response_headers["Sec-WebSocket-Extensions"] = extension_header
    subprotocol = process_subprotocol(headers)
    if subprotocol is not None:
        response_headers["Sec-WebSocket-Protocol"] = subprotocol
    if callable(extra_headers):
        extra_headers = extra_headers()
    if extra_headers is not None:
        response_headers.update(extra_headers)
    if server_header is not None and "Server" not in response_headers:
        response_headers["Server"] = server_header
    build_response(response_headers, key)
    response = Response(101, "Switching Protocols", response_headers)
    return Accepted(response, origin, extensions, subprotocol)


def reject(exc: BaseException) -> Response | None:
    """Return the HTTP response that answers a failed opening handshake.

    Args:
        exc: What failed: an :exc:`~wsrs.exceptions.InvalidHandshake` raised while reading
            or checking the request, :exc:`~wsrs.exceptions.AbortHandshake` from the
            application, or any other exception (a bug: ``500``).

    Returns:
        The response to send before closing the connection, or ``None`` when no response
        can reach the client (it closed the connection: :exc:`EOFError`,
        :exc:`ConnectionError`) or it is too late for one (:exc:`TimeoutError`).
    """
    if isinstance(exc, AbortHandshake):
        headers = exc.headers.copy()
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(len(exc.body))
        if "Connection" not in headers:
            headers["Connection"] = "close"
        status = http.HTTPStatus(exc.status)
        return Response(status.value, status.phrase, headers, exc.body)
    if isinstance(exc, EOFError | ConnectionError | TimeoutError):
        return None
    code, extra = _rejection_status(exc)
    if code == 500:
        return error_response(500, "Failed to open a WebSocket connection.\n")
    return error_response(code, f"Failed to open a WebSocket connection: {exc}.\n", extra)


def _rejection_status(exc: BaseException) -> tuple[int, dict[str, str]]:
    """The status code (and extra headers) that answer a failed handshake."""
    if isinstance(exc, InvalidOrigin):
        return 403, {}
    if isinstance(exc, InvalidHeaderValue) and exc.name == "Sec-WebSocket-Version":
        # RFC 6455 §4.4: reply with the versions the server supports.
        return 426, {"Sec-WebSocket-Version": "13"}
    if isinstance(exc, SecurityError):
        return 431, {}
    if isinstance(exc, InvalidHandshake):
        return 400, {}
    return 500, {}


def check_origin(
    headers: Headers, origins: Sequence[str | re.Pattern[str] | None] | None = None
) -> str | None:
    """Check the ``Origin`` header against ``origins``.

    ``origins`` holds the allowed values: strings, compiled regular expressions that must
    match the whole origin (websockets >= 10), and ``None`` or ``''`` (websockets 4.0's
    spelling) to allow requests without ``Origin``. ``None`` instead of a list allows any.

    Returns:
        The origin, or ``None`` when the request has none.

    Raises:
        InvalidOrigin: When the origin is not allowed.
        InvalidHeader: When there are several ``Origin`` headers.
    """
    try:
        origin = headers.get("Origin")
    except KeyError as exc:  # several Origin headers
        raise InvalidHeader("Origin", "multiple values") from exc
    if origins is None or origin in origins:
        return origin
    if origin is None:
        if "" in origins:
            return origin
    elif any(isinstance(o, re.Pattern) and o.fullmatch(origin) for o in origins):
        return origin
    raise InvalidOrigin(origin)


def negotiate_extensions(
    headers: Headers, available_extensions: Sequence[ServerExtensionFactory] | None
) -> tuple[str | None, list[Extension]]:
    """Accept or decline the client's extension offers.

    For each offer, in the client's order, the first server factory of the same name that
    accepts it wins; offers nobody accepts are declined, which does not fail the handshake.

    Returns:
        The ``Sec-WebSocket-Extensions`` response header (or ``None``) and the accepted
        extensions.

    Raises:
        InvalidHeaderFormat: When the header is malformed.
    """
    values = headers.get_all("Sec-WebSocket-Extensions")
    if not values or not available_extensions:
        return None, []
    response: list[tuple[str, list[tuple[str, str | None]]]] = []
    accepted: list[Extension] = []
    for name, params in parse_extension_list(values):
        for factory in available_extensions:
            if factory.name != name:
                continue
            try:
                response_params, extension = factory.process_request_params(params, accepted)
            except NegotiationError:
                continue
            response.append((name, response_params))
            accepted.append(extension)
            break
    if not response:
        return None, []
    return build_extension_list(response), accepted


def negotiate_subprotocol(
    headers: Headers,
    available_subprotocols: Sequence[str] | None,
    select: Callable[[Sequence[str], Sequence[str]], str | None] | None = None,
) -> str | None:
    """Pick a subprotocol among those the client offers.

    Args:
        headers: Request headers.
        available_subprotocols: The server's subprotocols, in order of preference.
        select: Chooses among ``(client_subprotocols, server_subprotocols)``;
            :func:`select_subprotocol` by default.

    Returns:
        The subprotocol, or ``None`` without a common one.
    """
    values = headers.get_all("Sec-WebSocket-Protocol")
    if not values or not available_subprotocols:
        return None
    if select is None:
        select = select_subprotocol
    return select(parse_subprotocol_list(values), available_subprotocols)


def select_subprotocol(
    client_subprotocols: Sequence[str], server_subprotocols: Sequence[str]
) -> str | None:
    """Choose the subprotocol both support with the lowest sum of positions in both lists.

    The client's and the server's preferences weigh the same; ties go to the server's
    order. ``None`` when they have none in common: the connection then proceeds without a
    subprotocol.
    """
    common = [p for p in server_subprotocols if p in client_subprotocols]
    if not common:
        return None
    return min(common, key=lambda p: client_subprotocols.index(p) + server_subprotocols.index(p))


def select_subprotocol_in_server_order(
    client_subprotocols: Sequence[str], server_subprotocols: Sequence[str]
) -> str:
    """Choose the first of the server's subprotocols that the client offers (the rule of
    websockets >= 10, whose server requires a subprotocol once it supports some).

    Raises:
        NegotiationError: When the client offers none, or none that the server supports
            (answered with 400).
    """
    if not client_subprotocols:
        raise NegotiationError("missing subprotocol")
    for subprotocol in server_subprotocols:
        if subprotocol in client_subprotocols:
            return subprotocol
    raise NegotiationError("invalid subprotocol; expected one of " + ", ".join(server_subprotocols))


# ---------------------------------------------------------------------------- client


def connect_request(
    wsuri: WebSocketURI,
    *,
    origin: str | None = None,
    extensions: Sequence[ClientExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    extra_headers: HeadersLike | None = None,
    user_agent: str | None = USER_AGENT,
) -> tuple[Request, str]:
    """Build the opening handshake request of a client.

    Args:
        wsuri: Where to connect: the ``Host`` header and the request target.
        origin: Value of the ``Origin`` header, if any.
        extensions: Extension factories whose offers go in ``Sec-WebSocket-Extensions``.
        subprotocols: Subprotocols offered, in order of preference.
        extra_headers: Headers added to the request; they may override ``User-Agent``.
        user_agent: Value of the ``User-Agent`` header, unless ``extra_headers`` has one;
            ``None`` omits it.

    Returns:
        The request, and the key to pass to :func:`check_response`.
    """
    headers = Headers()
    headers["Host"] = build_host(wsuri.host, wsuri.port, wsuri.secure)
    if origin is not None:
        headers["Origin"] = origin
    if extensions:
        headers["Sec-WebSocket-Extensions"] = build_extension_list(
            [(f.name, f.get_request_params()) for f in extensions]
        )
    if subprotocols:
        headers["Sec-WebSocket-Protocol"] = build_subprotocol_list(subprotocols)
    if extra_headers is not None:
        headers.update(extra_headers)
    if user_agent is not None and "User-Agent" not in headers:
        headers["User-Agent"] = user_agent
    key = generate_key()
    build_request(headers, key)
    return Request("GET", wsuri.resource_name, headers), key


def check_response(
    response: Response,
    key: str,
    *,
    process_extensions: Callable[[Headers], list[Extension]],
    process_subprotocol: Callable[[Headers], str | None],
) -> tuple[list[Extension], str | None]:
    """Check the server's answer to the opening handshake.

    Args:
        response: The parsed response.
        key: The key returned by :func:`connect_request`.
        process_extensions: Check the extensions the server accepted and build them (see
            :func:`check_extensions`).
        process_subprotocol: Check the subprotocol the server chose (see
            :func:`check_subprotocol`).

    Returns:
        The negotiated extensions and subprotocol. Open the connection with them.

    Raises:
        InvalidStatusCode: When the status is not 101.
        InvalidHandshake: When the response is not a valid handshake or negotiates what
            was not offered.
    """
    if response.status_code != 101:
        raise InvalidStatusCode(response.status_code)
    check_response_headers(response.headers, key)
    extensions = process_extensions(response.headers)
    subprotocol = process_subprotocol(response.headers)
    return extensions, subprotocol


def check_extensions(
    headers: Headers, available_extensions: Sequence[ClientExtensionFactory] | None
) -> list[Extension]:
    """Check the extensions the server accepted and build them.

    Raises:
        InvalidHandshake: When the server accepted an extension that was not offered, or
            with parameters the factory refuses.
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


def check_subprotocol(headers: Headers, available_subprotocols: Sequence[str] | None) -> str | None:
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
