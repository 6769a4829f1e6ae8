"""``python -m wsrs ws://host:port/path``: an interactive WebSocket client.

Type a line to send it as a text message; messages received are printed as they come,
``< `` before text and ``< (binary)`` before the hex of binary ones. End with Ctrl-D (end of
input) or Ctrl-C. The ``wsrs`` console script runs the same.

``python -m wsrs serve module:handler [options]`` (``wsrs serve``) runs a server of N worker
processes instead: see :mod:`wsrs.workers`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading

from .asyncio.client import ClientConnection, connect
from .exceptions import ConnectionClosed


__all__ = ["main"]

# Control characters would move the cursor or worse: show them escaped.
_ESCAPES = {code: repr(chr(code))[1:-1] for code in (*range(32), *range(127, 160))}


def printable(text: str) -> str:
    """Return ``text`` with its control characters escaped, safe to print to a terminal."""
    return text.translate(_ESCAPES)


async def _show_incoming(websocket: ClientConnection) -> None:
    async for message in websocket:
        if isinstance(message, str):
            print(f"< {printable(message)}", flush=True)
        else:
            print(f"< (binary) {message.hex()}", flush=True)


def _read_lines(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Read stdin in a thread (reading it from the loop blocks on some platforms); ``None``
    marks its end."""
    for line in sys.stdin:
        loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
    loop.call_soon_threadsafe(lines.put_nowait, None)


async def interact(uri: str) -> int:
    """Run the interactive client; return the exit status."""
    try:
        websocket = await connect(uri)
    except Exception as exc:
        print(f"Failed to connect to {uri}: {exc}.", file=sys.stderr)
        return 1
    print(f"Connected to {uri}.", flush=True)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_read_lines, args=(loop, lines), daemon=True).start()
    incoming = asyncio.create_task(_show_incoming(websocket))
    closed = asyncio.ensure_future(websocket.wait_closed())
    try:
        while True:
            next_line = asyncio.ensure_future(lines.get())
            await asyncio.wait([next_line, closed], return_when=asyncio.FIRST_COMPLETED)
            if not next_line.done():
                next_line.cancel()
                break
            line = next_line.result()
            if line is None:
                break
            with contextlib.suppress(ConnectionClosed):
                await websocket.send(line)
    finally:
        await websocket.close()
        with contextlib.suppress(ConnectionClosed):
            await incoming
    reason = f" {websocket.close_reason}" if websocket.close_reason else ""
    print(f"Connection closed: {websocket.close_code}{reason}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m wsrs`` and of the ``wsrs`` console script: ``serve``
    runs :func:`wsrs.workers.main`, anything else the interactive client."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        from .workers import main as serve

        return serve(args[1:])
    parser = argparse.ArgumentParser(prog="wsrs", description="Interactive WebSocket client.")
    parser.add_argument("uri", metavar="<uri>", help="ws:// or wss:// URI to connect to")
    options = parser.parse_args(args)
    try:
        return asyncio.run(interact(options.uri))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
