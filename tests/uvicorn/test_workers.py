"""``uvicorn --workers 2 --ws wsrs.uvicorn:WebSocketProtocol``: the command line, worker
processes importing wsrs by its import string, and the shutdown closing with 1012."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import websockets.asyncio.client
from websockets.exceptions import ConnectionClosed


HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_workers_serve_and_shut_down_with_1012() -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, *sys.path]))
    server = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "workers_app:app",
            "--ws", "wsrs.uvicorn:WebSocketProtocol",
            "--workers", "2", "--port", str(port), "--lifespan", "off",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        clients: list[websockets.asyncio.client.ClientConnection] = []
        deadline = time.monotonic() + 20
        while len(clients) < 20:
            try:
                clients.append(await websockets.asyncio.client.connect(f"ws://127.0.0.1:{port}/"))
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                assert server.poll() is None, "uvicorn exited"
                await asyncio.sleep(0.1)
        pids = set()
        for i, client in enumerate(clients):
            await client.send(f"hello {i}")
            word, number, pid = (await client.recv()).split()
            assert (word, number) == ("hello", str(i))
            pids.add(int(pid))
        assert server.pid not in pids  # served by worker processes, not the supervisor
        server.send_signal(signal.SIGTERM)
        for client in clients:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(client.recv(), 15)
            assert client.close_code == 1012
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:  # pragma: no cover - only when the test fails
            server.kill()
            server.wait()
    assert server.stderr is not None
    with server.stderr:
        log = server.stderr.read()
    assert log.count("Started server process") == 2
