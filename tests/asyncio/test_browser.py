"""A real browser against a wsrs server: headless Chromium driven by Playwright.

Chromium is the system's (Debian's ``chromium`` package), never one downloaded by Playwright.
The wsrs server also serves the test page, through ``process_request``; the test drives the
page's WebSocket step by step with ``page.evaluate`` and the server side directly, and counts
the bytes on the wire with a TCP relay to check that both sides compress.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

import wsrs
from wsrs import ConnectionClosedError, WebSocketServerProtocol
from wsrs.http11 import Headers
from wsrs.server import ProcessRequestResult

from .utils import MS, Capture, Relay, deflate_params, run_server, tcp_relay


pytest.importorskip("playwright.async_api", reason="Playwright for Python isn't installed")

from playwright.async_api import Page, async_playwright  # noqa: E402


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium executable (install Debian's chromium package)"
)

TIMEOUT = 5000 * MS

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>wsrs</title>
<script>
"use strict";
let ws, closed;
const messages = [], waiters = [];

function connect(path) {
  ws = new WebSocket(`ws://${location.host}${path}`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (event) => {
    const waiter = waiters.shift();
    if (waiter) waiter(event.data); else messages.push(event.data);
  };
  closed = new Promise((resolve) => {
    ws.onclose = (event) =>
      resolve({code: event.code, reason: event.reason, wasClean: event.wasClean});
  });
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws.extensions);
    ws.onerror = () => reject(new Error("WebSocket error"));
  });
}

async function describe(data) {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return {
    type: typeof data === "string" ? "text" : "binary",
    length: bytes.byteLength,
    sha256: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(""),
  };
}

async function send(data) {
  ws.send(data);
  return await describe(data);
}

const sendText = (text, count = 1) => send(text.repeat(count));
const sendBytes = (bytes) => send(new Uint8Array(bytes).buffer);

function sendRandom(size) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {  // getRandomValues fills 64 KiB at most
    crypto.getRandomValues(bytes.subarray(i, i + 65536));
  }
  return send(bytes.buffer);
}

async function receive() {
  const data = messages.length ? messages.shift() : await new Promise((resolve, reject) => {
    waiters.push(resolve);
    setTimeout(() => reject(new Error("no message")), 5000);
  });
  return await describe(data);
}

function close(code, reason) {
  ws.close(code, reason);
  return closed;
}

const waitClosed = () => closed;
</script>
"""


def describe(message: str | bytes) -> dict[str, Any]:
    """What the page's ``describe()`` returns for this message."""
    data = message.encode() if isinstance(message, str) else message
    return {
        "type": "text" if isinstance(message, str) else "binary",
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


class PageServerProtocol(WebSocketServerProtocol):
    """Serve the test page at / to plain HTTP requests."""

    def process_request(self, path: str, request_headers: Headers) -> ProcessRequestResult:
        if "Upgrade" in request_headers:
            return None
        if path == "/":
            return 200, {"Content-Type": "text/html; charset=utf-8"}, PAGE.encode()
        return 404, {"Content-Type": "text/plain"}, b"not found\n"


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


async def server_and_page(
    cap: Capture, page: Page, relay: Relay, path: str
) -> WebSocketServerProtocol:
    """Load the page through the relay, connect its WebSocket; return the server side."""
    await page.goto(relay.uri.replace("ws://", "http://", 1))
    extensions = await page.evaluate("(path) => connect(path)", path)
    server_ws = await cap.get()
    # Chromium offers permessage-deflate with default parameters; wsrs accepts it as is.
    assert server_ws.request_headers is not None
    assert server_ws.request_headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; client_max_window_bits"
    )
    assert extensions == "permessage-deflate"
    assert [type(e) for e in server_ws.extensions] == [wsrs.PerMessageDeflate]
    assert deflate_params(server_ws) == (False, False, 15, 15)
    assert server_ws.path == path
    return server_ws


async def test_chromium_messages_and_client_close(page: Page) -> None:
    cap = Capture()
    async with (
        run_server(cap.handler, create_protocol=PageServerProtocol, max_size=2**21) as uri,
        tcp_relay(uri) as relay,
    ):
        server_ws = await server_and_page(cap, page, relay, "/chat?room=1")

        async def from_page(expression: str, *args: Any) -> None:
            """Send a message from the page; check what wsrs receives."""
            sent = await page.evaluate(expression, list(args))
            assert describe(await asyncio.wait_for(server_ws.recv(), TIMEOUT)) == sent

        async def to_page(message: str | bytes) -> None:
            """Send a message from wsrs; check what the page receives."""
            await server_ws.send(message)
            assert await page.evaluate("receive()") == describe(message)

        # Text and binary (ArrayBuffer) messages.
        assert await page.evaluate("sendText('hello ☃')") == describe("hello ☃")
        assert await asyncio.wait_for(server_ws.recv(), TIMEOUT) == "hello ☃"
        await to_page("ünïcödé from wsrs")
        await to_page("")
        assert await page.evaluate("sendBytes([0, 1, 254, 255])") == describe(b"\x00\x01\xfe\xff")
        assert await asyncio.wait_for(server_ws.recv(), TIMEOUT) == b"\x00\x01\xfe\xff"
        await to_page(bytes(range(256)))
        await to_page(b"")

        # 1 MiB of compressible text each way: both sides compress.
        unit, count = "ws ☃ chromium ", 2**16  # 16 bytes in UTF-8
        text = unit * count
        upstream, downstream = relay.upstream, relay.downstream
        await from_page("([unit, count]) => sendText(unit, count)", unit, count)
        assert relay.upstream - upstream < 2**20 // 8
        await to_page(text)
        assert relay.downstream - downstream < 2**20 // 8
        await from_page("([unit, count]) => sendText(unit, count)", "·", 2**19)

        # 1 MiB of random bytes each way.
        await from_page("([size]) => sendRandom(size)", 2**20)
        await to_page(os.urandom(2**20))

        # The page closes with a code and a reason.
        closed = await page.evaluate("close(4000, 'bye')")
        assert closed == {"code": 4000, "reason": "bye", "wasClean": True}
        await asyncio.wait_for(server_ws.wait_closed(), TIMEOUT)
        assert (server_ws.close_code, server_ws.close_reason) == (4000, "bye")
        with pytest.raises(ConnectionClosedError):  # 4000 isn't a normal closure
            await server_ws.recv()


async def test_chromium_server_close(page: Page) -> None:
    cap = Capture()
    async with (
        run_server(cap.handler, create_protocol=PageServerProtocol) as uri,
        tcp_relay(uri) as relay,
    ):
        server_ws = await server_and_page(cap, page, relay, "/")
        await server_ws.send("welcome")
        assert await page.evaluate("receive()") == describe("welcome")

        closing = asyncio.create_task(server_ws.close(1001, "going away"))
        closed = await page.evaluate("waitClosed()")
        await asyncio.wait_for(closing, TIMEOUT)
        assert closed == {"code": 1001, "reason": "going away", "wasClean": True}
        # Chromium echoes the code of the close frame it received.
        assert (server_ws.close_code, server_ws.close_reason) == (1001, "going away")


async def test_chromium_gets_the_page_and_404(page: Page) -> None:
    async with run_server(create_protocol=PageServerProtocol) as uri:
        http_uri = uri.replace("ws://", "http://", 1)
        response = await page.goto(http_uri)
        assert response is not None and response.status == 200
        assert await page.title() == "wsrs"
        response = await page.goto(http_uri + "missing")
        assert response is not None and response.status == 404
