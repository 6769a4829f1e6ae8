"""Client loop for the Autobahn Testsuite (wstest in fuzzingserver mode).

    python compliance/client.py --url ws://127.0.0.1:9001 --agent wsrs
    python compliance/client.py --url ws://127.0.0.1:9001 --agent wsrs-asyncio --api asyncio

Asks for the number of cases, runs each one by echoing every message back, then asks
wstest to write its reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import urllib.parse
from typing import Any

import wsrs
import wsrs.asyncio.client


connect: Any = wsrs.connect
"""The front end under test: ``wsrs.connect`` (4.0 API) or ``wsrs.asyncio.client.connect``."""
slow: dict[str, Any] = {"timeout": 120}
"""Options for a handshake that may take long (wstest writes its reports first)."""


async def get_case_count(url: str) -> int:
    """Return the number of cases wstest offers."""
    async with connect(f"{url}/getCaseCount", ping_interval=None) as websocket:
        return int(json.loads(await websocket.recv()))


async def run_case(url: str, case: int, agent: str) -> None:
    """Run one case: echo every message until the connection closes."""
    uri = f"{url}/runCase?case={case}&agent={urllib.parse.quote(agent)}"
    try:
        async with connect(uri, max_size=2**25, max_queue=1, ping_interval=None) as ws:
            async for message in ws:
                await ws.send(message)
    except wsrs.ConnectionClosed:
        pass  # expected where the server misbehaves on purpose
    except OSError as exc:
        print(f"case {case}: {exc!r}", file=sys.stderr, flush=True)


async def update_reports(url: str, agent: str) -> None:
    """Ask wstest to write the reports."""
    uri = f"{url}/updateReports?agent={urllib.parse.quote(agent)}"
    async with connect(uri, ping_interval=None, **slow):
        pass


async def main(url: str, agent: str, cases: list[int] | None) -> None:
    """Run every case (or the given ones) then update the reports."""
    count = await get_case_count(url)
    print(f"{count} cases", flush=True)
    for case in cases or range(1, count + 1):
        await run_case(url, case, agent)
    await update_reports(url, agent)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:9001")
    parser.add_argument("--agent", default="wsrs")
    parser.add_argument("--case", type=int, action="append", help="run only these cases")
    parser.add_argument("--api", choices=["legacy", "asyncio"], default="legacy")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL)
    if args.api == "asyncio":
        connect = wsrs.asyncio.client.connect
        slow = {"open_timeout": 120}
    asyncio.run(main(args.url.rstrip("/"), args.agent, args.case))
