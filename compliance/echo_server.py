"""Echo server for the Autobahn Testsuite (wstest in fuzzingclient mode).

    python compliance/echo_server.py --port 9002               # the 4.0 API (top level)
    python compliance/echo_server.py --port 9002 --api asyncio # wsrs.asyncio
    python compliance/echo_server.py --port 9002 --compression lean  # the lean setting

Listens on 127.0.0.1 and echoes every message back, with permessage-deflate on (the
default), so cases 12.* and 13.* exercise compression. Each front end serves with its own
``serve``; the echo loop is the same.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

import wsrs
import wsrs.asyncio.server


async def echo(websocket: Any) -> None:
    """Echo every message until the connection closes."""
    try:
        async for message in websocket:
            await websocket.send(message)
    except wsrs.ConnectionClosed:
        pass  # many cases misbehave on purpose; wsrs already failed the connection


async def main(host: str, port: int, api: str, compression: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.cancel)
    serve: Any = wsrs.asyncio.server.serve if api == "asyncio" else wsrs.serve
    # 9.* cases send messages of up to 16 MiB.
    options: dict[str, Any] = dict(max_size=2**25, max_queue=1, ping_interval=None)
    async with serve(echo, host, port, compression=compression, **options):
        print(f"listening on ws://{host}:{port}", flush=True)
        try:
            await stop
        except asyncio.CancelledError:
            pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api", choices=["legacy", "asyncio"], default="legacy")
    parser.add_argument("--compression", choices=["deflate", "lean"], default="deflate")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL)
    asyncio.run(main(args.host, args.port, args.api, args.compression))
