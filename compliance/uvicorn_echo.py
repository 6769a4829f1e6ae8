"""Echo server for the Autobahn Testsuite through uvicorn, with wsrs as its WebSocket protocol.

    python compliance/uvicorn_echo.py --port 9002                    # uvicorn's h11
    python compliance/uvicorn_echo.py --port 9002 --http httptools

A plain ASGI application (no framework) echoes every message back; uvicorn serves it on
127.0.0.1 with ``ws=wsrs.uvicorn:WebSocketProtocol`` and permessage-deflate on (uvicorn's
default), so cases 12.* and 13.* exercise compression.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn


Message = MutableMapping[str, Any]


async def echo(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Accept the connection and echo every message until the client disconnects."""
    if scope["type"] != "websocket":  # lifespan is off: only plain HTTP requests land here
        await send({"type": "http.response.start", "status": 426, "headers": []})
        await send({"type": "http.response.body", "body": b"WebSocket only\n"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--http", choices=["h11", "httptools"], default="h11")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    uvicorn.run(
        echo,
        host=args.host,
        port=args.port,
        http=args.http,
        ws="wsrs.uvicorn:WebSocketProtocol",
        lifespan="off",
        # 9.* cases send messages of up to 16 MiB.
        ws_max_size=2**25,
        ws_ping_interval=None,
        log_level="debug" if args.debug else "critical",
    )
