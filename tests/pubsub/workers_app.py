"""The handlers the tests of ``wsrs serve`` run in worker processes
(tests/pubsub/test_workers.py): ``handler``, and ``legacy_handler`` for ``--api legacy``.

A client first receives ``pid PID`` (the worker's), then sends commands, one per message:

- ``subscribe TOPIC``: answered ``subscribed TOPIC``;
- ``unsubscribe TOPIC``: answered ``unsubscribed TOPIC``;
- ``publish TOPIC COUNT``: publishes ``PID TOPIC i`` for i in 0..COUNT-1, answered
  ``published``;
- ``sleep``: the handler stops reading and sleeps for an hour (it ignores the close).

Importing the module fails (RuntimeError) if the file named by ``WORKERS_APP_FAIL`` exists,
and sleeps for a minute, without an event loop, if ``WORKERS_APP_SLOW`` is set (saying
``importing slowly`` on stderr first).
"""

from __future__ import annotations

import asyncio
import os
import time

from wsrs import workers
from wsrs.asyncio.server import ServerConnection
from wsrs.pubsub import Hub
from wsrs.server import WebSocketServerProtocol


fail = os.environ.get("WORKERS_APP_FAIL")
if fail is not None and os.path.exists(fail):
    raise RuntimeError("told to fail by WORKERS_APP_FAIL")
if os.environ.get("WORKERS_APP_SLOW"):
    os.write(2, b"importing slowly\n")  # one write: the workers share stderr
    time.sleep(60)

hub = Hub(broker=workers.broker())
not_a_handler = 42


async def handler(connection: ServerConnection) -> None:
    await connection.send(f"pid {os.getpid()}")
    await commands(connection)


async def legacy_handler(websocket: WebSocketServerProtocol, path: str) -> None:
    """The same for ``--api legacy``; the greeting is ``pid PID PATH``."""
    await websocket.send(f"pid {os.getpid()} {path}")
    await commands(websocket)


async def commands(connection: ServerConnection | WebSocketServerProtocol) -> None:
    pid = os.getpid()
    while True:
        message = await connection.recv()
        assert isinstance(message, str)
        command = message.split()
        if command[0] == "subscribe":
            hub.subscribe(connection, command[1])
            await connection.send(f"subscribed {command[1]}")
        elif command[0] == "unsubscribe":
            hub.unsubscribe(connection, command[1])
            await connection.send(f"unsubscribed {command[1]}")
        elif command[0] == "publish":
            for i in range(int(command[2])):
                hub.publish(command[1], f"{pid} {command[1]} {i}")
            await connection.send("published")
        else:
            await asyncio.sleep(3600)
