"""A peer that floods an endpoint and never reads: server memory, wsrs against websockets.

The attack of issue #18, measured side by side::

    python benches/flood.py                       # ping flood, 6 s per library
    python benches/flood.py --kind messages       # 1 KiB text messages; the handler sleeps
    python benches/flood.py --seconds 3 --libs wsrs

For each library a fresh server process (``--serve LIB``) listens on 127.0.0.1 with
compression off; its handler sleeps and never reads. A raw TCP client (this process) does
the opening handshake with a small receive buffer, then writes masked frames (125-byte
pings, or 1 KiB text messages) as fast as the server takes them, for ``--seconds`` or until
``--limit`` frames, and never reads. Reported: frames the client could send, the time it
took, and the growth of the server's resident set (``VmRSS`` from ``/proc/PID/status``)
from just after the handshake to the end of the flood. Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import select
import socket
import subprocess
import sys
import time


HOST = "127.0.0.1"
LIBS = ("wsrs", "websockets")
MiB = 2**20


# ---------------------------------------------------------------------------- server process


async def sleeper(*args: object) -> None:
    """Never read: the handler of every library under test."""
    await asyncio.Event().wait()


async def serve(lib: str) -> None:
    if lib == "wsrs":
        import wsrs

        server = await wsrs.serve(sleeper, HOST, 0, compression=None, ping_interval=None)
    else:
        from websockets.asyncio.server import serve as ws_serve

        server = await ws_serve(sleeper, HOST, 0, compression=None, ping_interval=None)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------------------- flooding client


def rss(pid: int) -> int:
    """Resident set size of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError("VmRSS")


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame of fewer than 126 bytes, or of 126 to 65535, masked with a zero key
    (the key is part of the frame, so any key is valid)."""
    if len(payload) < 126:
        header = bytes([0x80 | opcode, 0x80 | len(payload)])
    else:
        header = bytes([0x80 | opcode, 0x80 | 126]) + len(payload).to_bytes(2, "big")
    return header + b"\x00\x00\x00\x00" + payload


def handshake(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.connect((HOST, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("server closed during the handshake")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(response.split(b"\r\n", 1)[0].decode())
    return sock


def flood(lib: str, kind: str, seconds: float, limit: int) -> tuple[int, float, int]:
    """Return (frames sent, seconds, server RSS growth in bytes)."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", lib], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        sock = handshake(port)
        time.sleep(0.2)
        before = rss(server.pid)
        if kind == "pings":
            frame = masked_frame(0x9, b"p" * 125)
        else:
            frame = masked_frame(0x1, b"m" * 1024)
        burst = frame * 100
        sock.setblocking(False)
        sent_bytes = 0
        pending = memoryview(burst)
        start = time.perf_counter()
        deadline = start + seconds
        while sent_bytes < limit * len(frame) and time.perf_counter() < deadline:
            select.select([], [sock], [], 0.05)
            try:
                n = sock.send(pending)
            except BlockingIOError:
                continue
            sent_bytes += n
            pending = pending[n:]
            if not pending:
                pending = memoryview(burst)
        elapsed = time.perf_counter() - start
        growth = rss(server.pid) - before
        sock.close()
        return sent_bytes // len(frame), elapsed, growth
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serve", choices=LIBS, help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=("pings", "messages"), default="pings")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--limit", type=int, default=4_000_000, help="frames at most")
    parser.add_argument("--libs", default=",".join(LIBS))
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    print(f"{args.kind} flood, client never reads, at most {args.seconds} s / {args.limit} frames")
    print(f"{'library':<12} {'frames sent':>12} {'seconds':>8} {'server RSS growth':>18}")
    for lib in args.libs.split(","):
        sent, elapsed, growth = flood(lib, args.kind, args.seconds, args.limit)
        print(f"{lib:<12} {sent:>12,} {elapsed:>8.1f} {growth / MiB:>14.1f} MiB")


if __name__ == "__main__":
    main()
