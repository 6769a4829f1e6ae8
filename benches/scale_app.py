"""The handler that ``benches/scale_idle.py`` serves with ``wsrs serve --workers N``.

Every connection subscribes to :data:`TOPIC` on a hub whose broker spans the workers
(:func:`wsrs.workers.broker`), then waits for messages. A text message ``publish <n>`` makes
its worker publish :func:`payload` ``(n)`` (1 KiB) on the topic: the worker writes it to its
own subscribers and the supervisor's relay carries it to every other worker, which writes it
to theirs. Anything else is ignored.
"""

from __future__ import annotations

import json

from wsrs import workers
from wsrs.asyncio.server import ServerConnection
from wsrs.pubsub import Hub


TOPIC = "all"
SIZE = 1024

hub = Hub(broker=workers.broker())

# Something like a real update, so that permessage-deflate has work to do: ~1 KiB of JSON.
_BODY = json.dumps(
    [
        {"id": i, "symbol": f"SYM{i * 7919 % 1000:03d}", "price": round(i * 1.618, 3)}
        for i in range(30)
    ]
)


def payload(n: int) -> str:
    """The message of publish number ``n``: ``n`` in 8 digits, then JSON, 1 KiB in all."""
    return (f"{n:08d}" + _BODY)[:SIZE]


async def handler(connection: ServerConnection) -> None:
    """Follow the topic; publish on it when told to."""
    hub.subscribe(connection, TOPIC)
    async for message in connection:
        if isinstance(message, str) and message.startswith("publish "):
            hub.publish(TOPIC, payload(int(message.split()[1])))
