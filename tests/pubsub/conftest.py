"""A Redis server of the tests' own: Debian's redis-server on 127.0.0.1, a free port, no
persistence. The tests that need it skip when the binary is missing. Every test of the
package runs on both transports (``transport_kind``)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest


class RedisServer:
    """A redis-server process that the tests can kill and start again on the same port."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16) == b"+PONG\r\n":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def pause(self, paused: bool = True) -> None:
        """Stop the server (SIGSTOP) or let it go on (SIGCONT): its connections stay open
        but nothing answers meanwhile."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def kill(self) -> None:
        """Kill the server (SIGKILL: no goodbye to its clients)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A running Redis of this test's own."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(binary)
    server.start()
    yield server
    if server.process is not None:
        server.pause(False)
        server.kill()


@pytest.fixture(autouse=True)
def on_both_transports(transport_kind: str) -> str:
    """Every test of this package runs on asyncio's transport and on the native one."""
    return transport_kind
