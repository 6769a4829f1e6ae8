"""A real browser against a FastAPI app served by uvicorn with ``--ws
wsrs.uvicorn:WebSocketProtocol``: headless Chromium (Debian's package) driven by Playwright.

The app serves its own page over HTTP and a WebSocket endpoint that echoes, then reports
how the browser closed; the page talks to it with the browser's own ``WebSocket``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ..asyncio.test_browser import page, pytestmark  # noqa: F401 - the fixture, the skip mark
from .utils import run_server


fastapi = pytest.importorskip("fastapi", reason="FastAPI isn't installed")

from fastapi import FastAPI, WebSocket  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402
from playwright.async_api import Page  # noqa: E402


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>wsrs under uvicorn</title>
<script>
"use strict";
let ws;
const messages = [];
let waiting = null;

function open() {
  ws = new WebSocket(`ws://${location.host}/ws`, ["chat"]);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (event) => {
    const data = typeof event.data === "string"
      ? event.data : Array.from(new Uint8Array(event.data));
    if (waiting) { const w = waiting; waiting = null; w(data); } else messages.push(data);
  };
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve({protocol: ws.protocol, extensions: ws.extensions});
    ws.onerror = () => reject(new Error("WebSocket error"));
  });
}

function next() {
  if (messages.length) return Promise.resolve(messages.shift());
  return new Promise((resolve) => { waiting = resolve; });
}

function closeWith(code, reason) {
  return new Promise((resolve) => {
    ws.onclose = (event) =>
      resolve({code: event.code, reason: event.reason, clean: event.wasClean});
    ws.close(code, reason);
  });
}
</script>
"""


def make_app(closes: asyncio.Queue[tuple[int, str | None]]) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def index() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        assert websocket.scope["subprotocols"] == ["chat"]
        await websocket.accept(subprotocol="chat")
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                await closes.put((message["code"], message.get("reason")))
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"].upper())
            else:
                await websocket.send_bytes(message["bytes"][::-1])

    return app


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_chromium_talks_to_a_fastapi_app(page: Page, http: str) -> None:  # noqa: F811
    closes: asyncio.Queue[tuple[int, str | None]] = asyncio.Queue()
    async with run_server(make_app(closes), http=http) as (_server, uri):
        await page.goto(uri.replace("ws://", "http://") + "/")
        opened: dict[str, Any] = await page.evaluate("open()")
        assert opened["protocol"] == "chat"
        # Chromium offers permessage-deflate; wsrs.uvicorn accepts it by default.
        assert opened["extensions"].startswith("permessage-deflate")
        await page.evaluate("ws.send('hello from chromium')")
        assert await page.evaluate("next()") == "HELLO FROM CHROMIUM"
        await page.evaluate("ws.send(new Uint8Array([1, 2, 3, 250]).buffer)")
        assert await page.evaluate("next()") == [250, 3, 2, 1]
        large = "é" * 100_000  # compressed both ways, over several reads
        await page.evaluate(f"ws.send('{large}')")
        assert await page.evaluate("next()") == large.upper()
        closed = await page.evaluate("closeWith(4001, 'bye')")
        assert closed == {"code": 4001, "reason": "bye", "clean": True}
        assert await asyncio.wait_for(closes.get(), 5) == (4001, "bye")
