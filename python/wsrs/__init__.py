"""wsrs: WebSockets for Python asyncio (RFC 6455, RFC 7692) with a Rust core.

The API is the classic one of the ``websockets`` library (its 4.0 line)::

    import asyncio
    import wsrs

    async def echo(websocket, path):
        async for message in websocket:
            await websocket.send(message)

    async def main():
        async with wsrs.serve(echo, "localhost", 8765):
            async with wsrs.connect("ws://localhost:8765") as websocket:
                await websocket.send("Hello!")
                print(await websocket.recv())

    asyncio.run(main())
"""

from __future__ import annotations

from .client import WebSocketClientProtocol, connect, unix_connect
from .datastructures import Headers
from .exceptions import (
    AbortHandshake,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    DuplicateParameter,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidParameterName,
    InvalidParameterValue,
    InvalidState,
    InvalidStatusCode,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    SecurityError,
    WebSocketException,
    WebSocketProtocolError,
)
from .extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from .protocol import State, WebSocketCommonProtocol
from .server import WebSocketServer, WebSocketServerProtocol, serve, unix_serve
from .uri import WebSocketURI, parse_uri
from .version import version as __version__


__all__ = [
    "AbortHandshake",
    "ClientPerMessageDeflateFactory",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DuplicateParameter",
    "Headers",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidState",
    "InvalidStatusCode",
    "InvalidURI",
    "InvalidUpgrade",
    "NegotiationError",
    "PayloadTooBig",
    "PerMessageDeflate",
    "ProtocolError",
    "SecurityError",
    "ServerPerMessageDeflateFactory",
    "State",
    "WebSocketClientProtocol",
    "WebSocketCommonProtocol",
    "WebSocketException",
    "WebSocketProtocolError",
    "WebSocketServer",
    "WebSocketServerProtocol",
    "WebSocketURI",
    "__version__",
    "connect",
    "parse_uri",
    "serve",
    "unix_connect",
    "unix_serve",
]
