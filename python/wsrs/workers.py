"""Serve a handler from N worker processes on one port: ``wsrs serve`` and :func:`run`.

::

    wsrs serve app:handler --host 0.0.0.0 --port 8765 --workers 4

``app:handler`` names a handler of :mod:`wsrs.asyncio.server` (one argument, the
connection) as ``module:attribute``, imported by each worker from ``--app-dir`` (the current
directory by default); with ``--api legacy``, a handler of the websockets 4.0 API at the top
level, :func:`wsrs.serve` (``handler(websocket, path)``). :func:`run` is the same from
Python.

**Processes.** The command is the *supervisor*: it checks that the address is free, starts N
workers (``python -m wsrs._worker``) and restarts any that exits, as gunicorn's and uvicorn's
supervisors do: a worker killed, crashed or told to stop with its own ``SIGTERM`` is replaced
at once (``SIGTERM`` to one worker is how to restart it gracefully). Each worker listens on
its own socket bound to the same address with ``SO_REUSEPORT``, and the kernel spreads new
connections between them; with ``--unix PATH`` the supervisor listens and the workers
accept on that one socket. A worker that fails to start (its module does not import, the
handler does not exist, the address is taken) stops everything with an error when the
server starts, and is retried with a backoff later (0.1 s, doubling, up to 5 s) until it
fails :data:`MAX_BOOT_FAILURES` times in a row.

**Stopping.** ``SIGTERM`` or ``SIGINT`` (Ctrl-C) to the supervisor stops every worker
gracefully: each stops accepting, closes its connections with 1001 (going away) so clients
know to reconnect, waits up to ``--graceful-timeout`` seconds for the closing handshakes
and the handlers, then aborts the connections left and cancels their handlers. The
supervisor exits with status 0 once every worker has stopped (it kills a worker still
running 5 s after the graceful timeout). A second signal kills the workers at once. If the
supervisor dies, its workers notice (their relay socket closes) and stop gracefully too.

**Topics across workers.** In the handler's module, give your hub :func:`broker`::

    from wsrs import workers
    from wsrs.pubsub import Hub

    hub = Hub(broker=workers.broker())

Under ``wsrs serve --workers N`` (N > 1) it is a :class:`~wsrs.relay.RelayBroker`: what a
worker publishes reaches the subscribers of every worker, through the supervisor's relay
(at most once, in order per topic and publishing worker, memory bounded: see
:mod:`wsrs.relay`). With ``--redis URL`` it is a
:class:`~wsrs.pubsub_redis.RedisBroker`, across hosts. Otherwise (one worker, or outside
``wsrs serve``) it is ``None``: the hub stays in the process. The workers close the
brokers :func:`broker` made when they stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import functools
import importlib
import json
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .asyncio.base import BaseProtocol
from .asyncio.server import Server, serve
from .connection import State
from .pubsub import Broker, Gap
from .relay import Relay, RelayBroker, RelayChannel


__all__ = [
    "BOOT_FAILURE",
    "KILL_MARGIN",
    "MAX_BOOT_FAILURES",
    "Config",
    "HandlerError",
    "Supervisor",
    "broker",
    "load_handler",
    "main",
    "run",
]

logger = logging.getLogger("wsrs.workers")

# A handler of either API: handler(connection) or, for the legacy API,
# handler(websocket, path). (Not "Handler": the documentation means wsrs.server.Handler.)
AnyHandler = Callable[..., Awaitable[None]]

BOOT_FAILURE = 3
"""The exit status of a worker that could not start (gunicorn's)."""
MAX_BOOT_FAILURES = 5
"""Failed starts in a row of one worker after which the supervisor gives up."""
KILL_MARGIN = 5.0
"""Seconds the supervisor waits beyond the graceful timeout before killing a worker."""
_BACKOFF = (0.1, 5.0)
_ENV = "WSRS_WORKER"
_LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


@dataclasses.dataclass
class Config:
    """How to serve; the options of ``wsrs serve``, documented in :func:`run`."""

    handler: str
    api: str = "asyncio"
    host: str = "127.0.0.1"
    port: int = 8765
    unix: str | None = None
    workers: int = 1
    graceful_timeout: float = 10.0
    redis: str | None = None
    compression: str | None = "deflate"
    max_size: int | None = 2**20
    backlog: int = 2048
    app_dir: str = "."
    log_level: str = "info"

    def where(self, address: Any = None) -> str:
        """The address served, as a URI: the one configured, or the socket address
        ``address``."""
        if self.unix is not None:
            return f"unix:{self.unix}"
        host, port = (self.host, self.port) if address is None else address[:2]
        return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"


class HandlerError(Exception):
    """The handler named by ``module:attribute`` cannot be found."""


def load_handler(spec: str) -> AnyHandler:
    """Import the handler named ``module:attribute`` (the attribute may be dotted).

    Raises:
        HandlerError: If ``spec`` is malformed, the module does not exist, the attribute
            does not or is not callable.
        Exception: Whatever importing the module raises otherwise.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise HandlerError(f"handler must be given as 'module:attribute', got {spec!r}")
    try:
        value: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        parts = module_name.split(".")
        if exc.name not in {".".join(parts[:i]) for i in range(1, len(parts) + 1)}:
            raise  # a module that the handler's module imports is missing
        raise HandlerError(f"cannot import {module_name!r}: {exc}") from None
    for name in attribute.split("."):
        try:
            value = getattr(value, name)
        except AttributeError:
            raise HandlerError(f"{spec!r}: no attribute {name!r} in {value!r}") from None
    if not callable(value):
        raise HandlerError(f"{spec!r} is not callable: {value!r}")
    return value  # type: ignore[no-any-return]


# What the process is: a worker of `wsrs serve` (with its channel to the relay), or serving
# in process (no channel); None outside run().


@dataclasses.dataclass
class _Runtime:
    config: Config
    channel: RelayChannel | None
    brokers: list[Broker] = dataclasses.field(default_factory=list)


_runtime: _Runtime | None = None


def broker(*, on_gap: Callable[[Gap], object] | None = None) -> Broker | None:
    """Return a broker for a :class:`~wsrs.pubsub.Hub` of this worker, so that its topics
    span every worker: see the module's docstring. Each call makes a new broker, for one hub.

    Args:
        on_gap: Called with a :class:`~wsrs.pubsub.Gap` for a topic whose messages this
            worker may have missed: the relay dropped them (the worker did not read them in
            time), or Redis lost them; the application resynchronises the topic's clients.

    Returns:
        A :class:`~wsrs.pubsub_redis.RedisBroker` under ``--redis``, a
        :class:`~wsrs.relay.RelayBroker` under ``--workers N`` with N > 1, else ``None``.
    """
    runtime = _runtime
    if runtime is None:
        return None
    made: Broker
    if runtime.config.redis is not None:
        from .pubsub_redis import RedisBroker

        made = RedisBroker(runtime.config.redis, on_gap=on_gap)
    elif runtime.channel is not None and runtime.config.workers > 1:
        made = RelayBroker(runtime.channel, on_gap=on_gap)
    else:
        return None
    runtime.brokers.append(made)
    return made


# Sockets -------------------------------------------------------------------------------------


def _bind(config: Config) -> socket.socket:
    """Check the address is free and hold it: for TCP, a socket bound with SO_REUSEPORT that
    does not listen (it keeps a port chosen by the kernel, for --port 0); for a Unix socket,
    the listening socket itself."""
    if config.unix is not None:
        return _bind_unix(config.unix, config.backlog)
    # "" is every interface, as for asyncio's create_server().
    family, _, _, _, address = socket.getaddrinfo(
        config.host or None, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    # A listener of another process with SO_REUSEPORT would accept our SO_REUSEPORT bind
    # and share the port: bind without it first, to see the port is free.
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = (address[0], probe.getsockname()[1], *address[2:])
    return _reuse_port_socket(family, address)


def _reuse_port_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_unix(path: str, backlog: int) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(path)
                except ConnectionRefusedError:
                    os.unlink(path)  # left by a server that is gone
                else:
                    raise OSError(errno.EADDRINUSE, f"a server listens on {path} already")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


# A worker ------------------------------------------------------------------------------------


def _stop_on_signals() -> asyncio.Event:
    """Return an event that SIGTERM and SIGINT set."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


@dataclasses.dataclass
class _Running:
    # A running server of either API, as _serve() drives it.
    close: Callable[[], None]
    wait_closed: Callable[[], Awaitable[None]]
    connections: Callable[[], list[BaseProtocol]]
    handlers: Callable[[], list[asyncio.Task[None]]]


async def _start(config: Config, handler: AnyHandler, sock: socket.socket) -> _Running:
    # backlog: asyncio listens again on a socket it is given, with 100 unless told.
    options: dict[str, Any] = dict(
        sock=sock,
        backlog=config.backlog,
        compression=config.compression,
        max_size=config.max_size,
    )
    if config.api == "legacy":
        from .server import serve as legacy_serve

        legacy = await legacy_serve(handler, **options)
        return _Running(
            legacy.close,
            legacy.wait_closed,
            lambda: list(legacy.websockets),
            lambda: [ws.handler_task for ws in legacy.websockets if ws.handler_task is not None],
        )
    server: Server = await serve(handler, **options)
    return _Running(
        functools.partial(server.close, close_connections=True, code=1001),
        server.wait_closed,
        lambda: list(server.all_connections),
        lambda: list(server.handlers),
    )


async def _serve(
    config: Config,
    handler: AnyHandler,
    sock: socket.socket,
    stop: asyncio.Event,
    ready: Callable[[], None],
) -> None:
    """Serve on ``sock`` until ``stop`` is set, then drain (1001, graceful timeout)."""
    server = await _start(config, handler, sock)
    ready()
    await stop.wait()
    logger.info("stopping: closing %d connections with 1001", len(server.connections()))
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), config.graceful_timeout)
    except TimeoutError:
        left = [c for c in server.connections() if c.state is not State.CLOSED]
        handlers = [task for task in server.handlers() if not task.done()]
        logger.warning(
            "%d connections and %d handlers left after %s s: aborting them",
            len(left),
            len(handlers),
            config.graceful_timeout,
        )
        for connection in left:
            connection.fail_connection(1006)
        for task in handlers:
            task.cancel()
        await server.wait_closed()
    assert _runtime is not None
    for made in _runtime.brokers:
        await made.aclose()


async def _worker(spec: dict[str, Any]) -> int:
    global _runtime
    config = Config(**spec["config"])
    index = spec["index"]
    stop = _stop_on_signals()
    # Stop when the supervisor is gone too.
    channel = await RelayChannel.open(socket.socket(fileno=spec["relay_fd"]), on_lost=stop.set)
    _runtime = _Runtime(config, channel)
    try:
        sys.path.insert(0, config.app_dir)
        handler = load_handler(config.handler)
        if spec["listen_fd"] is not None:
            sock = socket.socket(fileno=spec["listen_fd"])
        else:
            sock = _reuse_port_socket(spec["family"], tuple(spec["address"]))
            sock.listen(config.backlog)
    except (HandlerError, OSError) as exc:
        logger.error("worker %d cannot start: %s", index, exc)
        return BOOT_FAILURE
    except Exception:
        logger.exception("worker %d cannot start: importing %s failed", index, config.handler)
        return BOOT_FAILURE
    await _serve(config, handler, sock, stop, channel.ready)
    channel.close()
    return 0


def worker_main() -> int:
    """Run a worker (``python -m wsrs._worker``, started by the supervisor); return its exit
    status."""
    spec = json.loads(os.environ.pop(_ENV))
    _setup_logging(spec["config"]["log_level"])
    return asyncio.run(_worker(spec))


# The supervisor ------------------------------------------------------------------------------


def _describe(status: int) -> str:
    if status < 0:
        return f"was killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"


class Supervisor:
    """Start the workers, restart them, stop them: ``wsrs serve``.

    Args:
        config: What to serve and how.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.relay = Relay()
        """The relay of the workers' topics."""
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        """The running workers by index."""
        self._stopping = asyncio.Event()
        self._failed = False
        self._ready: set[int] = set()
        self._up = False
        self._spec: dict[str, Any] = {}
        self._pass_fds: tuple[int, ...] = ()
        self._where = config.where()

    async def run(self) -> int:
        """Serve until a signal stops the workers, or a worker cannot start; return the
        exit status (0, or 1 on a failure)."""
        config = self.config
        try:
            sock = _bind(config)
        except OSError as exc:
            logger.error("cannot listen on %s: %s", config.where(), exc)
            return 1
        with sock:
            self._spec = {"config": dataclasses.asdict(config), "listen_fd": None}
            if config.unix is not None:
                self._spec["listen_fd"] = sock.fileno()
                self._pass_fds = (sock.fileno(),)
            else:
                self._spec.update(family=sock.family, address=sock.getsockname())
            self._where = config.where(sock.getsockname())
            status = await self._supervise()
        _unlink(config)
        return status

    async def _supervise(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signal.Signals(signum))
        slots = [asyncio.create_task(self._slot(index)) for index in range(self.config.workers)]
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([stopping, *slots], return_when=asyncio.FIRST_COMPLETED)
        self._stopping.set()  # the slots stop their workers (a slot that failed too)
        _, late = await asyncio.wait(slots, timeout=self.config.graceful_timeout + KILL_MARGIN)
        if late:
            logger.error("killing %d workers that did not stop in time", len(late))
            self._kill()
            await asyncio.wait(late)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        for slot in slots:
            slot.result()  # raise what went wrong, if anything
        stats = self.relay.stats
        logger.info("stopped (relay: %d messages routed, %d dropped)", stats.routed, stats.dropped)
        return 1 if self._failed else 0

    def _on_signal(self, signum: signal.Signals) -> None:
        if self._stopping.is_set():
            logger.warning("%s again: killing the workers", signum.name)
            self._kill()
            return
        logger.info(
            "%s: stopping the workers (graceful timeout %s s)",
            signum.name,
            self.config.graceful_timeout,
        )
        self._stopping.set()

    def _kill(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    async def _spawn(self, index: int) -> tuple[asyncio.subprocess.Process, asyncio.Future[None]]:
        ours, theirs = socket.socketpair()
        spec = dict(self._spec, index=index, relay_fd=theirs.fileno())
        # The worker runs the wsrs this process runs.
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=path, **{_ENV: json.dumps(spec)})
        with theirs:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "wsrs._worker",
                pass_fds=(theirs.fileno(), *self._pass_fds),
                env=env,
            )
        link = await self.relay.attach(ours, f"worker {index} (pid {process.pid})")
        return process, link.ready

    async def _slot(self, index: int) -> None:
        # Run worker `index` and its successors until the supervisor stops.
        boot_failures = 0
        stopping = asyncio.ensure_future(self._stopping.wait())
        while not self._stopping.is_set():
            process, ready = await self._spawn(index)
            self.processes[index] = process
            exited = asyncio.ensure_future(process.wait())
            waiting: list[asyncio.Future[Any]] = [exited, ready, stopping]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if ready.done():
                boot_failures = 0
                self._on_ready(index, process.pid)
                await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                # The supervisor stops. (ProcessLookupError: it exited meanwhile.)
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            status = await exited
            del self.processes[index]
            if self._stopping.is_set():
                return
            if ready.done():
                logger.warning(
                    "worker %d (pid %d) %s; restarting it", index, process.pid, _describe(status)
                )
                continue
            boot_failures += 1
            if not self._up or boot_failures >= MAX_BOOT_FAILURES:
                times = f" {boot_failures} times in a row" if boot_failures > 1 else ""
                logger.error(
                    "worker %d failed to start%s (it %s): stopping",
                    index,
                    times,
                    _describe(status),
                )
                self._failed = True
                self._stopping.set()
                return
            delay = min(_BACKOFF[1], _BACKOFF[0] * 2 ** (boot_failures - 1))
            logger.error(
                "worker %d failed to start (it %s); trying again in %.1f s",
                index,
                _describe(status),
                delay,
            )
            await asyncio.wait([stopping], timeout=delay)

    def _on_ready(self, index: int, pid: int) -> None:
        logger.info("worker %d (pid %d) ready", index, pid)
        self._ready.add(index)
        if not self._up and len(self._ready) == self.config.workers:
            self._up = True
            logger.info("listening on %s with %d workers", self._where, self.config.workers)


# Entry points --------------------------------------------------------------------------------


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=_LOG_FORMAT)


def run(
    handler: str | AnyHandler,
    *,
    api: str = "asyncio",
    host: str = "127.0.0.1",
    port: int = 8765,
    unix: str | None = None,
    workers: int = 1,
    graceful_timeout: float = 10.0,
    redis: str | None = None,
    compression: str | None = "deflate",
    max_size: int | None = 2**20,
    backlog: int = 2048,
    app_dir: str = ".",
    log_level: str = "info",
) -> int:
    """Serve ``handler`` until SIGTERM or SIGINT; return the exit status.

    With an import string, ``"module:attribute"``, this is ``wsrs serve``: a supervisor
    and ``workers`` worker processes (see the module's docstring). With the handler
    itself, it serves in this process (``workers`` must be 1), stopping as a worker does.

    Args:
        handler: The handler, or where to import it.
        api: ``"asyncio"``: a handler of :func:`wsrs.asyncio.server.serve`,
            ``handler(connection)``; ``"legacy"``: a handler of the websockets 4.0 API,
            :func:`wsrs.serve`, ``handler(websocket, path)``.
        host: The address to listen on: one address, the first that ``getaddrinfo`` gives
            for it; ``""`` for every interface.
        port: The port; 0 lets the kernel choose one (logged).
        unix: Listen on this Unix socket path instead of ``host`` and ``port``.
        workers: How many worker processes.
        graceful_timeout: Seconds a stopping worker waits for its connections to close and
            its handlers to return before it aborts them.
        redis: A Redis URL: :func:`broker` returns a
            :class:`~wsrs.pubsub_redis.RedisBroker` on it.
        compression: ``"deflate"`` (permessage-deflate), ``"lean"`` (its lean setting: see
            :doc:`/topics/compression`) or ``None``.
        max_size: The largest message received, in bytes; ``None`` for no limit.
        backlog: The length of each listening socket's queue of connections to accept.
        app_dir: The directory the handler's module is imported from (put first in
            ``sys.path``).
        log_level: ``"debug"``, ``"info"``, ``"warning"`` or ``"error"``; logs go to
            stderr (unless logging was configured already).

    Raises:
        ValueError: If a handler object is given with ``workers`` other than 1, or
            ``api`` is unknown.
    """
    if api not in ("asyncio", "legacy"):
        raise ValueError(f"unknown api: {api!r}; expected 'asyncio' or 'legacy'")
    config = Config(
        handler=handler if isinstance(handler, str) else "",
        api=api,
        host=host,
        port=port,
        unix=unix,
        workers=workers,
        graceful_timeout=graceful_timeout,
        redis=redis,
        compression=compression,
        max_size=max_size,
        backlog=backlog,
        app_dir=os.path.abspath(app_dir),
        log_level=log_level,
    )
    _setup_logging(log_level)
    if isinstance(handler, str):
        return asyncio.run(Supervisor(config).run())
    if workers != 1:
        raise ValueError(
            "give the handler as an import string, 'module:attribute', to run several workers"
        )
    return asyncio.run(_serve_here(config, handler))


async def _serve_here(config: Config, handler: AnyHandler) -> int:
    global _runtime
    _runtime = _Runtime(config, None)
    try:
        sock = _bind(config)
        if config.unix is None:
            sock.listen(config.backlog)
    except OSError as exc:
        logger.error("cannot listen on %s: %s", config.where(), exc)
        return 1
    where = config.where(sock.getsockname())
    stop = _stop_on_signals()
    await _serve(config, handler, sock, stop, lambda: logger.info("listening on %s", where))
    _unlink(config)
    return 0


def _unlink(config: Config) -> None:
    if config.unix is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(config.unix)


def _max_size(value: str) -> int | None:
    return None if value == "none" else int(value)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``wsrs serve`` (``python -m wsrs serve``)."""
    parser = argparse.ArgumentParser(
        prog="wsrs serve",
        description="Serve a WebSocket handler from N worker processes on one port.",
    )
    parser.add_argument("handler", metavar="module:handler", help="the handler to serve")
    parser.add_argument(
        "--api",
        choices=["asyncio", "legacy"],
        default="asyncio",
        help="asyncio: handler(connection) of wsrs.asyncio.server.serve (default); "
        "legacy: handler(websocket, path) of wsrs.serve",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port, 0 for any (default 8765)")
    parser.add_argument("--unix", metavar="PATH", help="listen on this Unix socket instead")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for connections on stop (default 10)",
    )
    parser.add_argument("--redis", metavar="URL", help="broker() returns a RedisBroker on it")
    parser.add_argument(
        "--compression",
        choices=["deflate", "lean", "none"],
        default="deflate",
        help="permessage-deflate with its defaults, its lean setting (least memory per "
        "connection, for many connections), or none (default deflate)",
    )
    parser.add_argument(
        "--max-size",
        type=_max_size,
        default=2**20,
        metavar="BYTES",
        help="largest message received, or 'none' (default 1048576)",
    )
    parser.add_argument("--backlog", type=int, default=2048, help="(default 2048)")
    parser.add_argument("--app-dir", default=".", help="where to import the module from")
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default="info"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if ":" not in args.handler:
        parser.error(f"the handler must be given as module:attribute, got {args.handler!r}")
    return run(
        args.handler,
        api=args.api,
        host=args.host,
        port=args.port,
        unix=args.unix,
        workers=args.workers,
        graceful_timeout=args.graceful_timeout,
        redis=args.redis,
        compression=None if args.compression == "none" else args.compression,
        max_size=args.max_size,
        backlog=args.backlog,
        app_dir=args.app_dir,
        log_level=args.log_level,
    )
