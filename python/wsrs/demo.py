"""Demo: start an echo server, talk to it with a client, print what happens.

python -m wsrs.demo
"""

from __future__ import annotations

import asyncio
import time

import wsrs


async def echo(websocket: wsrs.WebSocketServerProtocol, path: str) -> None:
    """Echo every message back until the client closes."""
    async for message in websocket:
        await websocket.send(message)


async def main() -> None:
    """Run the server and the client in one process, over loopback."""
    async with wsrs.serve(echo, "127.0.0.1", 0) as server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"echo server listening on ws://{host}:{port}")
        async with wsrs.connect(f"ws://{host}:{port}/demo") as websocket:
            print(f"connected; extensions negotiated: {websocket.extensions}")
            await websocket.send("Hello, wsrs!")
            print(f"text echoed:   {await websocket.recv()!r}")
            await websocket.send(bytes(range(8)))
            print(f"binary echoed: {await websocket.recv()!r}")
            pong = await websocket.ping()
            await pong
            print("ping answered by a pong")

            count, size = 10_000, 1024
            payload = b"x" * size
            start = time.perf_counter()
            for _ in range(count):
                await websocket.send(payload)
                await websocket.recv()
            elapsed = time.perf_counter() - start
            print(f"{count} round trips of {size} bytes: {count / elapsed:,.0f} per second")
        print(f"closed with code {websocket.close_code}")


if __name__ == "__main__":
    asyncio.run(main())
