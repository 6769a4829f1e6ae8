"""``wsrs serve``, run as a user would: a supervisor process and its workers on one port
(tests/pubsub/workers_app.py is the handler), topics across the workers, restarts, stopping
with 1001, and the errors at start."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from wsrs import workers
from wsrs.__main__ import main
from wsrs.asyncio.client import ClientConnection, connect, unix_connect
from wsrs.asyncio.server import ServerConnection
from wsrs.exceptions import ConnectionClosed
from wsrs.workers import Config, HandlerError, _reuse_port_socket, _start, load_handler

from .conftest import RedisServer


HERE = pathlib.Path(__file__).parent
TIMEOUT = 30


class Supervisor:
    """``python -m wsrs serve workers_app:handler ...``, its log read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.uri = ""

    @classmethod
    async def start(
        cls, *args: str, handler: str = "workers_app:handler", **env: str
    ) -> Supervisor:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wsrs",
            "serve",
            handler,
            "--app-dir",
            str(HERE),
            *args,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **env),
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.lines.append(line.decode().rstrip("\n"))
            self._new_line.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def expect(self, pattern: str, start: int = 0) -> re.Match[str]:
        """Wait for a log line matching ``pattern``, from line ``start`` on."""

        async def wait() -> re.Match[str]:
            seen = start
            while True:
                for line in self.lines[seen:]:
                    match = re.search(pattern, line)
                    if match is not None:
                        return match
                seen = len(self.lines)
                self._new_line.clear()
                if self._reader.done():
                    raise AssertionError(f"no line matches {pattern!r} in:\n{self.log}")
                await self._new_line.wait()

        return await asyncio.wait_for(wait(), TIMEOUT)

    async def listening(self) -> str:
        """Wait until the workers listen; return the URI."""
        self.uri = (await self.expect(r"listening on (\S+) with"))[1]
        return self.uri

    async def wait(self) -> int:
        """Wait for the supervisor's exit (and its log's end); return its status."""
        status = await asyncio.wait_for(self.process.wait(), TIMEOUT)
        await self._reader
        return status

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)


Start = Callable[..., asyncio.Future[Supervisor]]
"""How a test starts a supervisor: ``await supervisors(*args, handler=..., **env)``."""


@pytest.fixture
async def supervisors() -> AsyncIterator[Start]:
    """Start supervisors; kill what is left of them at the end."""
    started: list[Supervisor] = []

    async def start(*args: str, **kwargs: str) -> Supervisor:
        supervisor = await Supervisor.start(*args, **kwargs)
        started.append(supervisor)
        return supervisor

    yield start  # type: ignore[misc]
    for supervisor in started:
        if supervisor.process.returncode is None:
            supervisor.process.kill()
            await supervisor.process.wait()
        await supervisor._reader


async def client(uri: str) -> tuple[ClientConnection, int]:
    """Connect; return the connection and the pid of the worker serving it."""
    connection = await connect(uri, compression=None)
    greeting = await asyncio.wait_for(connection.recv(), TIMEOUT)
    assert isinstance(greeting, str) and greeting.startswith("pid ")
    return connection, int(greeting.split()[1])


async def ask(connection: ClientConnection, command: str) -> str:
    await connection.send(command)
    answer = await asyncio.wait_for(connection.recv(), TIMEOUT)
    assert isinstance(answer, str)
    return answer


async def routed(subscriber: ClientConnection, publisher: ClientConnection) -> int:
    """Return once the relay has read the topics the subscriber's worker joined so far;
    return how many messages the relay routed for it.

    A worker sends its JOIN to the relay before it answers ``subscribed``, but the relay
    reads each worker's socket in its own time: a message published later in another worker
    can be read first and find no follower (as a Redis SUBSCRIBE racing a PUBLISH). Frames of
    one worker are read in order, so once a message on a topic joined after them reaches the
    subscriber, the relay knows its earlier topics. The publisher follows no ``sync``.
    """
    assert await ask(subscriber, "subscribe sync") == "subscribed sync"
    for _ in range(300):
        assert await ask(publisher, "publish sync 1") == "published"
        try:
            message = await asyncio.wait_for(subscriber.recv(), 0.1)
        except TimeoutError:
            continue
        assert isinstance(message, str) and message.endswith(" sync 0")
        break
    else:
        raise AssertionError("the relay never routed a message to the subscriber's worker")
    # Late copies of earlier tries come before the answer; none after it.
    routed = 1
    await subscriber.send("unsubscribe sync")
    while (message := await asyncio.wait_for(subscriber.recv(), TIMEOUT)) != "unsubscribed sync":
        assert isinstance(message, str) and message.endswith(" sync 0")
        routed += 1
    return routed


async def closed_with(connection: ClientConnection) -> int | None:
    """Read until the connection closes; return its close code. Nothing may come first."""
    with pytest.raises(ConnectionClosed):
        message = await asyncio.wait_for(connection.recv(), TIMEOUT)
        raise AssertionError(f"unexpected message: {message!r}")
    return connection.close_code


async def keep_one_per_worker(
    seen: dict[int, ClientConnection], pid: int, connection: ClientConnection
) -> None:
    if pid in seen:
        await connection.close()
    else:
        seen[pid] = connection


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: its parent has not reaped it yet.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


async def test_workers_share_the_port_and_their_topics(
    supervisors: Start,
) -> None:
    supervisor = await supervisors("--port", "0", "--workers", "2", "--compression", "none")
    uri = await supervisor.listening()
    # The kernel spreads connections between the two workers' sockets (by a hash of the
    # addresses): 20 connections all landing in one worker has odds of 2 in a million.
    clients = [await client(uri) for _ in range(20)]
    by_pid: dict[int, list[ClientConnection]] = {}
    for connection, pid in clients:
        by_pid.setdefault(pid, []).append(connection)
    assert len(by_pid) == 2
    for connection, _ in clients:
        assert await ask(connection, "subscribe news") == "subscribed news"
    # A publisher in each worker, at the same time: every subscriber, in both workers, gets
    # every message once, in order per publisher.
    publishers = [connections[0] for connections in by_pid.values()]
    synced = await routed(publishers[0], publishers[1]) + await routed(publishers[1], publishers[0])
    await asyncio.gather(*(p.send("publish news 200") for p in publishers))
    for connection, _ in clients:
        received: dict[int, list[int]] = {}
        for _ in range(400 + (connection in publishers)):  # and "published"
            message = await asyncio.wait_for(connection.recv(), TIMEOUT)
            assert isinstance(message, str)
            if message != "published":
                sender, _, i = message.split()
                received.setdefault(int(sender), []).append(int(i))
        assert received == {pid: list(range(200)) for pid in by_pid}
    # SIGTERM: every client is closed with 1001, the supervisor exits with 0.
    supervisor.signal(signal.SIGTERM)
    codes = await asyncio.gather(*(closed_with(connection) for connection, _ in clients))
    assert codes == [1001] * 20
    assert await supervisor.wait() == 0
    assert all(gone(pid) for pid in by_pid)
    assert "SIGTERM: stopping the workers" in supervisor.log
    # Each message went to the other worker only.
    assert f"stopped (relay: {400 + synced} messages routed, 0 dropped)" in supervisor.log


async def test_a_worker_that_dies_is_replaced(
    supervisors: Start,
) -> None:
    supervisor = await supervisors("--port", "0", "--workers", "2")
    uri = await supervisor.listening()
    first, pid = await client(uri)
    start = len(supervisor.lines)
    os.kill(pid, signal.SIGKILL)
    assert await closed_with(first) == 1006
    match = await supervisor.expect(rf"worker (\d) \(pid {pid}\) was killed by SIGKILL; restarting")
    new_pid = int((await supervisor.expect(rf"worker {match[1]} \(pid (\d+)\) ready", start))[1])
    # The port kept serving; the new worker gets connections too, and its topics.
    seen: dict[int, ClientConnection] = {}
    for _ in range(200):
        connection, pid = await client(uri)
        await keep_one_per_worker(seen, pid, connection)
        if new_pid in seen and len(seen) == 2:
            break
    assert new_pid in seen and len(seen) == 2
    for connection in seen.values():
        assert await ask(connection, "subscribe t") == "subscribed t"
    other = next(pid for pid in seen if pid != new_pid)
    await routed(seen[new_pid], seen[other])
    await seen[other].send("publish t 1")
    assert await asyncio.wait_for(seen[new_pid].recv(), TIMEOUT) == f"{other} t 0"
    # SIGTERM to a worker: it drains (1001) and exits with 0; the supervisor replaces it,
    # as gunicorn does (a graceful restart of one worker).
    start = len(supervisor.lines)
    os.kill(new_pid, signal.SIGTERM)
    assert await closed_with(seen[new_pid]) == 1001
    await supervisor.expect(rf"\(pid {new_pid}\) exited with status 0; restarting", start)
    await supervisor.expect(r"ready", start)
    supervisor.signal(signal.SIGINT)
    assert await supervisor.wait() == 0
    assert "SIGINT: stopping the workers" in supervisor.log


async def test_graceful_timeout_then_abort(
    supervisors: Start,
) -> None:
    supervisor = await supervisors("--port", "0", "--graceful-timeout", "0.5")
    connection, pid = await client(await supervisor.listening())
    await connection.send("sleep")  # the handler never returns by itself
    supervisor.signal(signal.SIGTERM)
    # The client answers the close frame: closed with 1001; the handler is cancelled.
    assert await closed_with(connection) == 1001
    assert await supervisor.wait() == 0
    assert "0 connections and 1 handlers left after 0.5 s: aborting them" in supervisor.log


async def test_graceful_timeout_aborts_connections(
    supervisors: Start,
) -> None:
    supervisor = await supervisors("--port", "0", "--graceful-timeout", "0.5")
    uri = await supervisor.listening()
    # A client that never reads: its handler waits for the closing handshake forever.
    port = int(uri.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readline()).startswith(b"HTTP/1.1 101")
    await supervisor.expect("ready")
    supervisor.signal(signal.SIGTERM)
    assert await supervisor.wait() == 0
    assert "1 connections and 1 handlers left after 0.5 s: aborting them" in supervisor.log
    writer.close()


async def test_a_second_signal_kills_the_workers(
    supervisors: Start,
) -> None:
    supervisor = await supervisors("--port", "0", "--graceful-timeout", "60")
    connection, pid = await client(await supervisor.listening())
    await connection.send("sleep")
    supervisor.signal(signal.SIGTERM)
    assert await closed_with(connection) == 1001
    supervisor.signal(signal.SIGTERM)
    assert await supervisor.wait() == 0
    assert "SIGTERM again: killing the workers" in supervisor.log
    assert gone(pid)


async def test_workers_that_do_not_stop_are_killed(
    supervisors: Start,
) -> None:
    # The workers sleep while importing the handler's module: no event loop runs to hear
    # SIGTERM. The supervisor kills them 5 s after the graceful timeout.
    supervisor = await supervisors(
        "--port", "0", "--workers", "2", "--graceful-timeout", "0.1", WORKERS_APP_SLOW="1"
    )
    while sum(line.count("importing slowly") for line in supervisor.lines) < 2:
        await supervisor.expect("importing slowly", len(supervisor.lines))
    supervisor.signal(signal.SIGTERM)
    assert await supervisor.wait() == 0
    assert "killing 2 workers that did not stop in time" in supervisor.log


async def test_the_supervisor_dying_stops_the_workers(
    supervisors: Start,
) -> None:
    supervisor = await supervisors("--port", "0", "--workers", "2")
    connection, pid = await client(await supervisor.listening())
    supervisor.process.kill()
    assert await closed_with(connection) == 1001
    for _ in range(100):
        if gone(pid):
            break
        await asyncio.sleep(0.1)
    assert gone(pid)


@pytest.mark.parametrize("api", ["asyncio", "legacy"])
async def test_lean_compression(supervisors: Start, api: str) -> None:
    # --compression lean: 12-bit windows, answered to a client's default offer.
    handler = "workers_app:handler" if api == "asyncio" else "workers_app:legacy_handler"
    supervisor = await supervisors(
        "--port", "0", "--api", api, "--compression", "lean", handler=handler
    )
    uri = await supervisor.listening()
    connection = await connect(uri, compression="deflate")
    assert connection.response is not None
    extensions = connection.response.headers["Sec-WebSocket-Extensions"]
    assert "server_max_window_bits=12" in extensions, extensions
    greeting = await asyncio.wait_for(connection.recv(), TIMEOUT)
    assert isinstance(greeting, str) and greeting.startswith("pid ")
    assert await ask(connection, "subscribe t") == "subscribed t"
    supervisor.signal(signal.SIGTERM)
    assert await closed_with(connection) == 1001
    assert await supervisor.wait() == 0


async def test_legacy_api(supervisors: Start) -> None:
    # Handlers of the websockets 4.0 API, handler(websocket, path); their hubs span the
    # workers too.
    supervisor = await supervisors(
        "--port",
        "0",
        "--workers",
        "2",
        "--api",
        "legacy",
        "--graceful-timeout",
        "0.5",
        handler="workers_app:legacy_handler",
    )
    uri = await supervisor.listening()
    seen: dict[int, ClientConnection] = {}
    while len(seen) < 2:
        connection = await connect(uri + "/room", compression=None)
        greeting = await asyncio.wait_for(connection.recv(), TIMEOUT)
        assert isinstance(greeting, str)
        _, pid, path = greeting.split()
        assert path == "/room"
        await keep_one_per_worker(seen, int(pid), connection)
    a, b = seen
    for connection in seen.values():
        assert await ask(connection, "subscribe t") == "subscribed t"
    await routed(seen[b], seen[a])
    assert await ask(seen[a], "publish t 1") == f"{a} t 0"  # its own subscriber
    assert await asyncio.wait_for(seen[a].recv(), TIMEOUT) == "published"
    assert await asyncio.wait_for(seen[b].recv(), TIMEOUT) == f"{a} t 0"
    await seen[b].send("sleep")
    supervisor.signal(signal.SIGTERM)
    codes = await asyncio.gather(*(closed_with(c) for c in seen.values()))
    assert codes == [1001, 1001]
    assert await supervisor.wait() == 0
    assert "0 connections and 1 handlers left after 0.5 s: aborting them" in supervisor.log


async def test_unknown_module_or_handler(
    supervisors: Start,
) -> None:
    for handler, error in [
        ("no_such_module:handler", "cannot import 'no_such_module': No module named"),
        ("workers_app:nothing", "no attribute 'nothing'"),
        ("workers_app:not_a_handler", "'workers_app:not_a_handler' is not callable: 42"),
    ]:
        supervisor = await supervisors("--port", "0", "--workers", "2", handler=handler)
        assert await supervisor.wait() == 1
        assert re.search(rf"worker \d cannot start: .*{re.escape(error)}", supervisor.log)
        assert re.search(
            r"worker \d failed to start \(it exited with status 3\): stopping", supervisor.log
        )
        assert "listening" not in supervisor.log


async def test_module_that_fails_to_import(supervisors: Start, tmp_path: pathlib.Path) -> None:
    fail = tmp_path / "fail"
    fail.touch()
    supervisor = await supervisors("--port", "0", WORKERS_APP_FAIL=str(fail))
    assert await supervisor.wait() == 1
    assert "worker 0 cannot start: importing workers_app:handler failed" in supervisor.log
    assert "worker 0 failed to start (it exited with status 3): stopping" in supervisor.log
    assert "RuntimeError: told to fail by WORKERS_APP_FAIL" in supervisor.log


async def test_a_worker_that_cannot_restart(supervisors: Start, tmp_path: pathlib.Path) -> None:
    # Once the server is up, a worker that fails to start again is retried with a backoff,
    # and the supervisor gives up after 5 failures in a row.
    fail = tmp_path / "fail"
    supervisor = await supervisors("--port", "0", WORKERS_APP_FAIL=str(fail))
    _, pid = await client(await supervisor.listening())
    fail.touch()
    os.kill(pid, signal.SIGKILL)
    assert await supervisor.wait() == 1
    for delay in ["0.1", "0.2", "0.4", "0.8"]:
        assert f"failed to start (it exited with status 3); trying again in {delay} s" in (
            supervisor.log
        )
    assert "failed to start 5 times in a row (it exited with status 3): stopping" in (
        supervisor.log
    )


async def test_stopping_while_a_worker_waits_to_restart(
    supervisors: Start, tmp_path: pathlib.Path
) -> None:
    fail = tmp_path / "fail"
    supervisor = await supervisors("--port", "0", WORKERS_APP_FAIL=str(fail))
    _, pid = await client(await supervisor.listening())
    fail.touch()
    os.kill(pid, signal.SIGKILL)
    await supervisor.expect(r"trying again in 0\.8 s")
    supervisor.signal(signal.SIGTERM)
    assert await supervisor.wait() == 0
    assert "5 times in a row" not in supervisor.log


async def test_busy_port(supervisors: Start) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        supervisor = await supervisors("--port", str(port), "--workers", "2")
        assert await supervisor.wait() == 1
    assert (
        f"cannot listen on ws://127.0.0.1:{port}: [Errno 98] Address already in use"
        in supervisor.log
    )


@pytest.mark.parametrize(
    ("host", "uri", "connect_to"),
    [("", "ws://0.0.0.0:", "ws://127.0.0.1:"), ("::1", "ws://[::1]:", "ws://[::1]:")],
)
async def test_hosts(supervisors: Start, host: str, uri: str, connect_to: str) -> None:
    # "" is every interface, as for asyncio; an IPv6 address is written in brackets.
    supervisor = await supervisors("--host", host, "--port", "0")
    listening = await supervisor.listening()
    assert listening.startswith(uri)
    connection, _ = await client(connect_to + listening.rsplit(":", 1)[1])
    supervisor.signal(signal.SIGTERM)
    assert await closed_with(connection) == 1001
    assert await supervisor.wait() == 0


async def test_unix_socket(supervisors: Start, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "ws.sock")
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)  # left behind by a server that is gone
    supervisor = await supervisors("--unix", path, "--workers", "2")
    assert await supervisor.listening() == f"unix:{path}"
    connection = await unix_connect(path, "ws://localhost/")
    greeting = await asyncio.wait_for(connection.recv(), TIMEOUT)
    assert isinstance(greeting, str) and greeting.startswith("pid ")
    # Another server on the same path: refused.
    other = await supervisors("--unix", path)
    assert await other.wait() == 1
    assert f"cannot listen on unix:{path}: [Errno 98] a server listens on {path} already" in (
        other.log
    )
    supervisor.signal(signal.SIGTERM)
    assert await supervisor.wait() == 0
    assert await closed_with(connection) == 1001
    assert not os.path.exists(path)


async def test_topics_through_redis(supervisors: Start, redis_server: RedisServer) -> None:
    supervisor = await supervisors("--port", "0", "--workers", "2", "--redis", redis_server.url)
    uri = await supervisor.listening()
    seen: dict[int, ClientConnection] = {}
    while len(seen) < 2:
        connection, pid = await client(uri)
        await keep_one_per_worker(seen, pid, connection)
    for connection in seen.values():
        assert await ask(connection, "subscribe r") == "subscribed r"
    a, b = seen
    # Redis confirms SUBSCRIBE asynchronously: publish until the other worker hears.
    for _ in range(100):
        await seen[a].send("publish r 1")
        try:
            message = await asyncio.wait_for(seen[b].recv(), 0.1)
        except TimeoutError:
            continue
        assert message == f"{a} r 0"
        break
    else:
        raise AssertionError("worker b never received worker a's message through Redis")
    supervisor.signal(signal.SIGTERM)
    assert await supervisor.wait() == 0


async def talk(where: str, process: subprocess.Popen[str]) -> int | None:
    if where.startswith("unix:"):
        connection = await unix_connect(where[5:], "ws://localhost/")
    else:
        connection = await connect(where)
    assert await connection.recv() == "hello"
    process.send_signal(signal.SIGTERM)
    return await closed_with(connection)


def test_serve_in_process(tmp_path: pathlib.Path) -> None:
    # run(handler) with the handler itself: one process, stopped as a worker is.
    script = tmp_path / "serve.py"
    script.write_text(
        "import sys\n"
        "from wsrs.workers import run\n"
        "async def handler(connection):\n"
        "    await connection.send('hello')\n"
        "    await connection.wait_closed()\n"
        "kwargs = {'unix': sys.argv[1]} if len(sys.argv) > 1 else {'port': 0}\n"
        "sys.exit(run(handler, **kwargs))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for args in [[], [str(tmp_path / "ws.sock")]]:
        process = subprocess.Popen(
            [sys.executable, str(script), *args], stderr=subprocess.PIPE, text=True, env=env
        )
        assert process.stderr is not None
        line = process.stderr.readline()
        where = re.search(r"listening on (\S+)$", line)
        assert where is not None, line

        assert asyncio.run(talk(where[1], process)) == 1001
        assert process.wait(TIMEOUT) == 0
        process.stderr.close()


# In this process -----------------------------------------------------------------------------


def test_load_handler(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    handler: object = load_handler("wsrs.workers:Config.where")
    assert handler is Config.where
    for spec, error in [
        ("handler", "handler must be given as 'module:attribute', got 'handler'"),
        (":handler", "handler must be given as 'module:attribute'"),
        ("wsrs.no_such:handler", "cannot import 'wsrs.no_such': No module named 'wsrs.no_such'"),
        ("wsrs.workers:Config.nothing", "no attribute 'nothing'"),
        ("wsrs.workers:MAX_BOOT_FAILURES", "is not callable: 5"),
    ]:
        with pytest.raises(HandlerError, match=re.escape(error)):
            load_handler(spec)
    # A module that the handler's module imports is missing: that error, as it is.
    (tmp_path / "needs_more.py").write_text("import no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        load_handler("needs_more:handler")


async def echo(connection: ServerConnection) -> None:
    await connection.wait_closed()


def test_broker_outside_wsrs_serve() -> None:
    assert workers.broker() is None


def test_run_errors_in_process() -> None:
    with pytest.raises(ValueError, match="give the handler as an import string"):
        workers.run(echo, workers=2)
    with pytest.raises(ValueError, match="unknown api: 'old'; expected 'asyncio' or 'legacy'"):
        workers.run(echo, api="old")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert workers.run(echo, port=port) == 1
        # wsrs serve: the supervisor checks the port before starting any worker.
        assert main(["serve", "workers_app:handler", "--port", str(port)]) == 1
        assert main(["serve", "x:y", "--port", str(port), "--max-size", "none"]) == 1


def test_address_taken_in_process(tmp_path: pathlib.Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError, match="Address already in use"):
            _reuse_port_socket(socket.AF_INET, busy.getsockname())
    not_a_socket = tmp_path / "file"
    not_a_socket.touch()
    assert workers.run(echo, unix=str(not_a_socket)) == 1


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["handler"], "the handler must be given as module:attribute, got 'handler'"),
        (["a:b", "--workers", "0"], "--workers must be at least 1"),
        (["a:b", "--compression", "gzip"], "invalid choice: 'gzip'"),
    ],
)
def test_usage(args: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *args])
    assert exited.value.code == 2
    assert error in capsys.readouterr().err


@pytest.mark.parametrize("api", ["asyncio", "legacy"])
async def test_backlog_reaches_listen(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # asyncio listens again on the socket it is given (with 100 unless told): --backlog
    # must reach it.
    backlogs: list[int | None] = []
    original = asyncio.base_events.BaseEventLoop.create_server

    async def spy(self: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> Any:
        backlogs.append(kwargs.get("backlog"))
        return await original(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "create_server", spy)

    async def handler(*args: Any) -> None:
        pass

    sock = _reuse_port_socket(socket.AF_INET, ("127.0.0.1", 0))
    running = await _start(Config("app:handler", api=api, backlog=77), handler, sock)
    running.close()
    await running.wait_closed()
    assert backlogs == [77]
