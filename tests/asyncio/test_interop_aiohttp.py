"""Interoperability with aiohttp's WebSocket client and server, with permessage-deflate.

aiohttp has no API to send fragmented messages; fragmented compressed messages are covered
with the websockets library in test_interop.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import wsrs
from wsrs import ConnectionClosedError, NegotiationError, WebSocketServerProtocol
from wsrs.extensions.base import ClientExtensionFactory

from .utils import MS, Capture, DeflateParams, deflate_params, run_server, tcp_relay


# Incompressible messages grow slightly when deflated and sizes are checked per frame as
# received: leave room above the largest message.
MAX_SIZE = 2**21

# About 545 KiB of JSON that deflates about 20 times smaller, even with a 512-byte window.
JSON_TEXT = json.dumps(
    [
        {"id": i, "name": f"user{i % 10}", "active": i % 2 == 0, "tags": ["alpha", "beta"]}
        for i in range(7500)
    ]
)
RANDOM = os.urandom(300 * 2**10)  # incompressible

MESSAGES: list[str | bytes] = [
    "hello",
    "ünïcödé ☃ " * 10,
    b"\x00\x01\xfe\xff",
    "",
    b"",
    JSON_TEXT,
    JSON_TEXT.encode(),
    RANDOM,
]

TIMEOUT = 5000 * MS


async def echo(ws: WebSocketServerProtocol, path: str) -> None:
    async for message in ws:
        await ws.send(message)


def check_wire_size(sent: int, compressed: bool) -> None:
    """Check the bytes one JSON_TEXT message took on the wire."""
    if compressed:
        assert sent < len(JSON_TEXT) // 8, sent
    else:
        assert sent > len(JSON_TEXT), sent


# ---------------------------------------------------------------------------- aiohttp client


async def aiohttp_send(ws: aiohttp.ClientWebSocketResponse, message: str | bytes) -> None:
    if isinstance(message, str):
        await ws.send_str(message)
    else:
        await ws.send_bytes(message)


async def aiohttp_receive(ws: aiohttp.ClientWebSocketResponse) -> str | bytes:
    msg = await ws.receive(timeout=TIMEOUT)
    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
    data = msg.data
    assert isinstance(data, str | bytes)
    return data


# (aiohttp's compress argument, wsrs server factory arguments, negotiated parameters on the
# wsrs side: remote_no_context_takeover, local_no_context_takeover, remote_max_window_bits,
# local_max_window_bits).
#
# aiohttp's client offers "permessage-deflate; client_max_window_bits" plus
# "server_max_window_bits=N" when compress=N < 15; it never offers no_context_takeover, but
# it honors client_no_context_takeover and client_max_window_bits in the response.
#
# Not tested: a wsrs server requiring client_max_window_bits=8, which aiohttp refuses
# ("Invalid window size") since zlib cannot compress with a 256-byte window.
WSRS_SERVER_VARIANTS = [
    pytest.param(15, {}, (False, False, 15, 15), id="default"),
    *[
        pytest.param(bits, {}, (False, False, 15, bits), id=f"offer-server_max_window_bits={bits}")
        for bits in range(9, 15)
    ],
    pytest.param(
        15,
        {"server_no_context_takeover": True},
        (False, True, 15, 15),
        id="require-server_no_context_takeover",
    ),
    pytest.param(
        15,
        {"client_no_context_takeover": True},
        (True, False, 15, 15),
        id="require-client_no_context_takeover",
    ),
    *[
        pytest.param(
            15,
            {"server_max_window_bits": bits},
            (False, False, 15, bits),
            id=f"require-server_max_window_bits={bits}",
        )
        for bits in range(8, 16)
    ],
    *[
        pytest.param(
            15,
            {"client_max_window_bits": bits},
            (False, False, bits, 15),
            id=f"require-client_max_window_bits={bits}",
        )
        for bits in range(9, 16)
    ],
    pytest.param(
        10,
        {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 9,
            "client_max_window_bits": 12,
        },
        (True, True, 12, 9),
        id="all",
    ),
    pytest.param(0, {}, None, id="no-compression"),
]


@pytest.mark.parametrize(("compress", "server_kwargs", "expected"), WSRS_SERVER_VARIANTS)
async def test_wsrs_server_aiohttp_client(
    compress: int, server_kwargs: dict[str, Any], expected: DeflateParams | None
) -> None:
    negotiated: list[DeflateParams | None] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        negotiated.append(deflate_params(ws))
        await echo(ws, path)

    server_extensions = [wsrs.ServerPerMessageDeflateFactory(**server_kwargs)]
    async with (
        run_server(
            handler, compression=None, extensions=server_extensions, max_size=MAX_SIZE
        ) as uri,
        tcp_relay(uri) as relay,
        aiohttp.ClientSession() as session,
        session.ws_connect(relay.uri, compress=compress, max_msg_size=MAX_SIZE) as client,
    ):
        if expected is None:
            assert client.compress == 0
        else:
            # aiohttp compresses with the window wsrs inflates with, and resets its
            # compressor when wsrs requires it.
            assert client.compress == expected[2]
            assert client.client_notakeover == expected[0]
        for message in MESSAGES:
            await aiohttp_send(client, message)
            assert await aiohttp_receive(client) == message

        upstream, downstream = relay.upstream, relay.downstream
        await client.send_str(JSON_TEXT)
        assert await aiohttp_receive(client) == JSON_TEXT
        check_wire_size(relay.upstream - upstream, expected is not None)
        # wsrs sends uncompressed messages when it must compress with 8 bits (zlib can't).
        check_wire_size(relay.downstream - downstream, expected is not None and expected[3] > 8)
    assert negotiated == [expected]


async def test_wsrs_server_aiohttp_client_close_codes() -> None:
    cap = Capture()
    async with (
        run_server(cap.handler) as uri,
        aiohttp.ClientSession() as session,
    ):
        async with session.ws_connect(uri, compress=15) as client:
            server_ws = await cap.get()
            await client.close(code=4000, message=b"client leaving")
        await asyncio.wait_for(server_ws.wait_closed(), 2000 * MS)
        assert (server_ws.close_code, server_ws.close_reason) == (4000, "client leaving")

        async with session.ws_connect(uri, compress=15) as client:
            server_ws = await cap.get()
            await server_ws.send("bye soon")
            # aiohttp answers the close frame when the application reads it.
            closing = asyncio.create_task(server_ws.close(4001, "server leaving"))
            assert await aiohttp_receive(client) == "bye soon"
            msg = await client.receive(timeout=TIMEOUT)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert (msg.data, msg.extra) == (4001, "server leaving")
            await asyncio.wait_for(closing, TIMEOUT)
        assert client.close_code == 4001


# ---------------------------------------------------------------------------- aiohttp server


@contextlib.asynccontextmanager
async def aiohttp_server(
    compress: bool, *, per_message_wbits: int | None = None
) -> AsyncIterator[str]:
    """Run an aiohttp echo server; yield its ws:// URI.

    With ``per_message_wbits``, aiohttp compresses each reply with a fresh compressor of
    that window size instead of the negotiated one.
    """

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=compress, max_msg_size=MAX_SIZE)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data, compress=per_message_wbits)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data, compress=per_message_wbits)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"ws://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


# (aiohttp's compress argument, wsrs client factory arguments, negotiated parameters on the
# wsrs side, or None when aiohttp declines the offer).
#
# aiohttp's server accepts server_no_context_takeover and server_max_window_bits=9..15; it
# ignores client_no_context_takeover and client_max_window_bits (it inflates with a 32 KiB
# window whatever the client uses), so the wsrs client applies what it offered.
WSRS_CLIENT_VARIANTS = [
    pytest.param(True, {}, (False, False, 15, 15), id="default"),
    pytest.param(
        True,
        {"server_no_context_takeover": True},
        (True, False, 15, 15),
        id="offer-server_no_context_takeover",
    ),
    pytest.param(
        True,
        {"client_no_context_takeover": True},
        (False, True, 15, 15),
        id="offer-client_no_context_takeover",
    ),
    # 15 isn't here: see test_wsrs_client_aiohttp_server_max_window_bits_15.
    *[
        pytest.param(
            True,
            {"server_max_window_bits": bits},
            (False, False, bits, 15),
            id=f"offer-server_max_window_bits={bits}",
        )
        for bits in range(9, 15)
    ],
    # aiohttp declines server_max_window_bits=8 (zlib can't compress with 8 bits).
    pytest.param(True, {"server_max_window_bits": 8}, None, id="offer-server_max_window_bits=8"),
    *[
        pytest.param(
            True,
            {"client_max_window_bits": bits},
            (False, False, 15, bits),
            id=f"offer-client_max_window_bits={bits}",
        )
        for bits in range(8, 16)
    ],
    pytest.param(
        True,
        {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 11,
            "client_max_window_bits": 10,
        },
        (True, True, 11, 10),
        id="all",
    ),
    pytest.param(False, {}, None, id="server-no-compression"),
]


def client_factory(**kwargs: Any) -> list[ClientExtensionFactory]:
    # compression="deflate" offers client_max_window_bits without a value; so does this.
    return [wsrs.ClientPerMessageDeflateFactory(**{"client_max_window_bits": True, **kwargs})]


@pytest.mark.parametrize(("compress", "client_kwargs", "expected"), WSRS_CLIENT_VARIANTS)
async def test_wsrs_client_aiohttp_server(
    compress: bool, client_kwargs: dict[str, Any], expected: DeflateParams | None
) -> None:
    async with (
        aiohttp_server(compress) as uri,
        tcp_relay(uri) as relay,
        wsrs.connect(
            relay.uri,
            compression=None,
            extensions=client_factory(**client_kwargs),
            max_size=MAX_SIZE,
        ) as ws,
    ):
        assert deflate_params(ws) == expected
        for message in MESSAGES:
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message

        upstream, downstream = relay.upstream, relay.downstream
        await ws.send(JSON_TEXT)
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == JSON_TEXT
        check_wire_size(relay.upstream - upstream, expected is not None and expected[3] > 8)
        check_wire_size(relay.downstream - downstream, expected is not None)


async def test_wsrs_client_aiohttp_server_no_compression_offered() -> None:
    async with (
        aiohttp_server(True) as uri,
        wsrs.connect(uri, compression=None, max_size=MAX_SIZE) as ws,
    ):
        assert ws.extensions == []
        await ws.send(JSON_TEXT)
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == JSON_TEXT


@pytest.mark.parametrize("wbits", [9, 12, 15])
async def test_wsrs_client_aiohttp_server_per_message_wbits(wbits: int) -> None:
    """aiohttp can compress a message with another window than the negotiated one, with a
    fresh compressor each time; that's valid when not larger than the negotiated window."""
    async with (
        aiohttp_server(True, per_message_wbits=wbits) as uri,
        wsrs.connect(uri, max_size=MAX_SIZE) as ws,
    ):
        for message in MESSAGES:
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message


async def test_wsrs_client_aiohttp_server_max_window_bits_15() -> None:
    """RFC 7692 §7.1.2.1: a server accepting an offer with server_max_window_bits must
    include it in its response; aiohttp leaves it out when the value is 15, and the wsrs
    client fails the connection, as websockets' does ("expected server_max_window_bits")."""
    async with aiohttp_server(True) as uri:
        with pytest.raises(NegotiationError):
            await wsrs.connect(
                uri, compression=None, extensions=client_factory(server_max_window_bits=15)
            )


async def test_wsrs_client_aiohttp_server_close_codes() -> None:
    closed: asyncio.Future[tuple[int | None, str]] = asyncio.get_running_loop().create_future()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True)
        await ws.prepare(request)
        msg = await ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT and msg.data == "close please":
            await ws.send_str("bye soon")
            await ws.close(code=4001, message=b"server leaving")
        else:
            closed.set_result((ws.close_code, msg.extra or ""))
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        uri = f"ws://127.0.0.1:{runner.addresses[0][1]}/"

        async with wsrs.connect(uri) as ws:
            await ws.send("close please")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "bye soon"
            with pytest.raises(ConnectionClosedError) as exc_info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert (exc_info.value.code, exc_info.value.reason) == (4001, "server leaving")

        ws = await wsrs.connect(uri)
        await asyncio.wait_for(ws.close(4000, "client leaving"), TIMEOUT)
        assert await asyncio.wait_for(closed, TIMEOUT) == (4000, "client leaving")
    finally:
        await runner.cleanup()
