"""Interoperability with the websockets library (a different implementation)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.exceptions
import websockets.extensions.permessage_deflate as ws_deflate

import wsrs
from wsrs import ConnectionClosedError, ConnectionClosedOK, WebSocketServerProtocol
from wsrs.extensions.base import ClientExtensionFactory

from .utils import MS, Capture, DeflateParams, deflate_params, run_server, tcp_relay


COMPRESSION = pytest.mark.parametrize("compression", ["deflate", None])

MESSAGES: list[str | bytes] = [
    "",
    "hello",
    "ünïcödé ☃ " * 10,
    b"",
    b"\x00\x01\xfe\xff",
    "t" * 2**20,  # 1 MiB of text
    os.urandom(2**20),  # 1 MiB, incompressible
    bytes(2**20),  # 1 MiB, very compressible
]


async def echo(ws: WebSocketServerProtocol, path: str) -> None:
    async for message in ws:
        await ws.send(message)


# Incompressible 1 MiB messages grow slightly when deflated, and both libraries check the
# size of each frame as received (compressed) against max_size: leave some room.
MAX_SIZE = 2**21


def ws_connect(uri: str, compression: str | None) -> websockets.asyncio.client.connect:
    return websockets.asyncio.client.connect(
        uri,
        compression=compression,
        proxy=None,
        open_timeout=2,
        close_timeout=2,
        max_size=MAX_SIZE,
    )


@contextlib.asynccontextmanager
async def ws_server(
    handler: Callable[[websockets.asyncio.server.ServerConnection], Awaitable[None]],
    compression: str | None,
) -> AsyncIterator[str]:
    async with websockets.asyncio.server.serve(
        handler, "127.0.0.1", 0, compression=compression, close_timeout=2, max_size=MAX_SIZE
    ) as server:
        port = list(server.sockets)[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


async def ws_echo(ws: websockets.asyncio.server.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


# ---------------------------------------------------------------------------- wsrs server


@COMPRESSION
async def test_wsrs_server_websockets_client_messages(compression: str | None) -> None:
    cap_extensions: list[list[object]] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        cap_extensions.append(list(ws.extensions))
        await echo(ws, path)

    async with run_server(handler, compression=compression, max_size=MAX_SIZE) as uri:
        async with ws_connect(uri, compression) as client:
            for message in MESSAGES:
                await client.send(message)
                assert await asyncio.wait_for(client.recv(), 5000 * MS) == message
            # Fragmented message from websockets.
            await client.send(["frag", "mented"])
            assert await client.recv() == "fragmented"
    expected = [wsrs.PerMessageDeflate] if compression else []
    assert [[type(e) for e in exts] for exts in cap_extensions] == [expected]


@COMPRESSION
async def test_wsrs_server_websockets_client_ping_pong(compression: str | None) -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=compression) as uri:
        async with ws_connect(uri, compression) as client:
            server_ws = await cap.get()
            latency = await asyncio.wait_for(await client.ping(b"from websockets"), 1000 * MS)
            assert latency >= 0
            await asyncio.wait_for(await server_ws.ping("from wsrs"), 1000 * MS)
            await asyncio.wait_for(await server_ws.ping(), 1000 * MS)


@COMPRESSION
async def test_wsrs_server_closes_with_code(compression: str | None) -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.send("bye soon")
        await ws.close(4000, "custom close")

    async with run_server(handler, compression=compression) as uri:
        async with ws_connect(uri, compression) as client:
            assert await client.recv() == "bye soon"
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as exc_info:
                await client.recv()
            assert exc_info.value.rcvd is not None
            assert (exc_info.value.rcvd.code, exc_info.value.rcvd.reason) == (4000, "custom close")


@COMPRESSION
async def test_wsrs_server_handler_returns_1000(compression: str | None) -> None:
    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        await ws.send("only")

    async with run_server(handler, compression=compression) as uri:
        async with ws_connect(uri, compression) as client:
            assert await client.recv() == "only"
            with pytest.raises(websockets.exceptions.ConnectionClosedOK) as exc_info:
                await client.recv()
            assert exc_info.value.rcvd is not None
            assert exc_info.value.rcvd.code == 1000


@COMPRESSION
async def test_websockets_client_closes_with_code(compression: str | None) -> None:
    cap = Capture()
    async with run_server(cap.handler, compression=compression) as uri:
        async with ws_connect(uri, compression) as client:
            server_ws = await cap.get()
            await client.close(1001, "client leaving")
        await asyncio.wait_for(server_ws.wait_closed(), 2000 * MS)
        assert (server_ws.close_code, server_ws.close_reason) == (1001, "client leaving")
        with pytest.raises(ConnectionClosedOK):
            await server_ws.recv()


async def test_wsrs_server_max_size_with_websockets_client() -> None:
    cap = Capture()
    async with run_server(cap.handler, max_size=2**10) as uri:
        async with ws_connect(uri, "deflate") as client:
            server_ws = await cap.get()
            await client.send(os.urandom(2**10 + 1))
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as exc_info:
                await asyncio.wait_for(client.recv(), 2000 * MS)
            assert exc_info.value.rcvd is not None
            assert exc_info.value.rcvd.code == 1009
            with pytest.raises(ConnectionClosedError) as exc_info2:
                await server_ws.recv()
            assert exc_info2.value.code == 1009


# ---------------------------------------------------------------------------- wsrs client


@COMPRESSION
async def test_wsrs_client_websockets_server_messages(compression: str | None) -> None:
    async with ws_server(ws_echo, compression) as uri:
        async with wsrs.connect(uri, compression=compression, max_size=MAX_SIZE) as ws:
            expected = [wsrs.PerMessageDeflate] if compression else []
            assert [type(e) for e in ws.extensions] == expected
            for message in MESSAGES:
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), 5000 * MS) == message


@COMPRESSION
async def test_wsrs_client_websockets_server_ping_pong(compression: str | None) -> None:
    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        await asyncio.wait_for(await ws.ping(b"from websockets"), 1)
        await ws.send("pinged")
        await ws.wait_closed()

    async with ws_server(handler, compression) as uri:
        async with wsrs.connect(uri, compression=compression) as ws:
            await asyncio.wait_for(await ws.ping(), 1000 * MS)
            await asyncio.wait_for(await ws.ping("text"), 1000 * MS)
            assert await asyncio.wait_for(ws.recv(), 1000 * MS) == "pinged"


@COMPRESSION
async def test_websockets_server_closes_with_code(compression: str | None) -> None:
    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        await ws.send("bye soon")
        await ws.close(4001, "server close")

    async with ws_server(handler, compression) as uri:
        async with wsrs.connect(uri, compression=compression) as ws:
            assert await ws.recv() == "bye soon"
            with pytest.raises(ConnectionClosedError) as exc_info:
                await ws.recv()
            assert (exc_info.value.code, exc_info.value.reason) == (4001, "server close")
            await asyncio.wait_for(ws.wait_closed(), 2000 * MS)


@COMPRESSION
async def test_wsrs_client_closes_with_code(compression: str | None) -> None:
    seen: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            await ws.recv()
        assert ws.close_code is not None
        seen.set_result((ws.close_code, ws.close_reason or ""))

    async with ws_server(handler, compression) as uri:
        ws = await wsrs.connect(uri, compression=compression)
        await asyncio.wait_for(ws.close(4002, "client close"), 2000 * MS)
        assert ws.close_code == 4002
        assert await asyncio.wait_for(seen, 2000 * MS) == (4002, "client close")


async def test_wsrs_client_subprotocol_with_websockets_server() -> None:
    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        await ws.send(ws.subprotocol or "none")

    async with websockets.asyncio.server.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=["chat"],  # type: ignore[list-item]
    ) as server:
        port = list(server.sockets)[0].getsockname()[1]
        async with wsrs.connect(f"ws://127.0.0.1:{port}/", subprotocols=["other", "chat"]) as ws:
            assert ws.subprotocol == "chat"
            assert await ws.recv() == "chat"


# ---------------------------------------------------------------------------- RFC 7692 variants

# About 545 KiB of JSON that deflates about 20 times smaller, even with a 512-byte window.
JSON_TEXT = json.dumps(
    [
        {"id": i, "name": f"user{i % 10}", "active": i % 2 == 0, "tags": ["alpha", "beta"]}
        for i in range(7500)
    ]
)
RANDOM = os.urandom(300 * 2**10)  # incompressible

DEFLATE_MESSAGES: list[str | bytes] = [
    "hello",
    "ünïcödé ☃ " * 10,
    b"\x00\x01\xfe\xff",
    "",
    b"",
    JSON_TEXT,
    JSON_TEXT.encode(),
    RANDOM,
]


def fragments(message: str | bytes, count: int = 4) -> list[Any]:
    """Split a message into ``count`` fragments at most (one empty fragment if empty)."""
    size = max(1, -(-len(message) // count))
    return [message[i : i + size] for i in range(0, len(message), size)] or [message]


def peer_params(extensions: Sequence[object]) -> DeflateParams | None:
    """Return what websockets negotiated, as :func:`deflate_params` does for wsrs."""
    if not extensions:
        return None
    [extension] = extensions
    assert isinstance(extension, ws_deflate.PerMessageDeflate)
    return (
        extension.remote_no_context_takeover,
        extension.local_no_context_takeover,
        extension.remote_max_window_bits,
        extension.local_max_window_bits,
    )


def assert_compatible(wsrs_side: DeflateParams | None, peer: DeflateParams | None) -> None:
    """Check that both sides agree: each inflates with a window as large as the other
    deflates with, and neither relies on the other resetting its context unless it does."""
    if wsrs_side is None or peer is None:
        assert wsrs_side is peer is None
        return
    remote_nct, local_nct, remote_mwb, local_mwb = wsrs_side
    peer_remote_nct, peer_local_nct, peer_remote_mwb, peer_local_mwb = peer
    assert peer_local_mwb <= remote_mwb
    assert local_mwb <= peer_remote_mwb
    assert peer_local_nct or not remote_nct
    assert local_nct or not peer_remote_nct


async def check_wire_size(
    exchange: Callable[[], Awaitable[None]],
    counters: Callable[[], tuple[int, int]],
    compressed: tuple[bool, bool],
) -> None:
    """Run ``exchange`` (one round trip of JSON_TEXT) and check, from the bytes counted each
    way, whether each direction was compressed."""
    upstream, downstream = counters()
    await exchange()
    after_upstream, after_downstream = counters()
    sent = (after_upstream - upstream, after_downstream - downstream)
    for was_compressed, size in zip(compressed, sent, strict=True):
        if was_compressed:
            assert size < len(JSON_TEXT) // 8, sent
        else:
            assert size > len(JSON_TEXT), sent


# (factory arguments of the websockets client, of the wsrs server, negotiated parameters on the
# wsrs side: remote_no_context_takeover, local_no_context_takeover, remote_max_window_bits,
# local_max_window_bits).
#
# Not tested: a wsrs server requiring client_max_window_bits=8, which websockets refuses since
# zlib cannot compress with a 256-byte window ("unsupported client_max_window_bits = 8").
WSRS_SERVER_VARIANTS = [
    pytest.param({}, {}, (False, False, 15, 15), id="default"),
    pytest.param(
        {"server_no_context_takeover": True},
        {},
        (False, True, 15, 15),
        id="offer-server_no_context_takeover",
    ),
    pytest.param(
        {"client_no_context_takeover": True},
        {},
        (True, False, 15, 15),
        id="offer-client_no_context_takeover",
    ),
    *[
        pytest.param(
            {"server_max_window_bits": bits},
            {},
            (False, False, 15, bits),
            id=f"offer-server_max_window_bits={bits}",
        )
        for bits in range(8, 16)
    ],
    *[
        pytest.param(
            {"client_max_window_bits": bits},
            {},
            (False, False, bits, 15),
            id=f"offer-client_max_window_bits={bits}",
        )
        for bits in range(9, 16)  # websockets compresses with 9 bits at least
    ],
    pytest.param(
        {"client_max_window_bits": None},
        {},
        (False, False, 15, 15),
        id="offer-no-client_max_window_bits",
    ),
    pytest.param(
        {},
        {"server_no_context_takeover": True},
        (False, True, 15, 15),
        id="require-server_no_context_takeover",
    ),
    pytest.param(
        {},
        {"client_no_context_takeover": True},
        (True, False, 15, 15),
        id="require-client_no_context_takeover",
    ),
    *[
        pytest.param(
            {},
            {"server_max_window_bits": bits},
            (False, False, 15, bits),
            id=f"require-server_max_window_bits={bits}",
        )
        for bits in range(8, 16)
    ],
    *[
        pytest.param(
            {},
            {"client_max_window_bits": bits},
            (False, False, bits, 15),
            id=f"require-client_max_window_bits={bits}",
        )
        for bits in range(9, 16)
    ],
    pytest.param(
        {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 12,
            "client_max_window_bits": 13,
        },
        {"server_max_window_bits": 10, "client_max_window_bits": 11},
        (True, True, 11, 10),
        id="all",
    ),
]


@pytest.mark.parametrize(("client_kwargs", "server_kwargs", "expected"), WSRS_SERVER_VARIANTS)
async def test_wsrs_server_websockets_client_deflate(
    client_kwargs: dict[str, Any], server_kwargs: dict[str, Any], expected: DeflateParams
) -> None:
    negotiated: list[DeflateParams | None] = []

    async def handler(ws: WebSocketServerProtocol, path: str) -> None:
        negotiated.append(deflate_params(ws))
        await echo(ws, path)

    server_extensions = [wsrs.ServerPerMessageDeflateFactory(**server_kwargs)]
    client_extensions = [ws_deflate.ClientPerMessageDeflateFactory(**client_kwargs)]
    async with (
        run_server(
            handler, compression=None, extensions=server_extensions, max_size=MAX_SIZE
        ) as uri,
        tcp_relay(uri) as relay,
        websockets.asyncio.client.connect(
            relay.uri,
            compression=None,
            extensions=client_extensions,
            proxy=None,
            open_timeout=2,
            close_timeout=2,
            max_size=MAX_SIZE,
        ) as client,
    ):
        assert_compatible(expected, peer_params(client.protocol.extensions))
        for message in DEFLATE_MESSAGES:
            await client.send(message)
            assert await asyncio.wait_for(client.recv(), 5000 * MS) == message
            # A fragmented compressed message: wsrs reassembles it, then echoes it whole.
            await client.send(fragments(message))
            assert await asyncio.wait_for(client.recv(), 5000 * MS) == message

        async def exchange() -> None:
            await client.send(JSON_TEXT)
            assert await asyncio.wait_for(client.recv(), 5000 * MS) == JSON_TEXT

        # wsrs sends uncompressed messages when it must compress with 8 bits (zlib can't).
        await check_wire_size(
            exchange, lambda: (relay.upstream, relay.downstream), (True, expected[3] > 8)
        )
    assert negotiated == [expected]


async def test_wsrs_server_websockets_client_fragmented() -> None:
    """Fragmented compressed messages from websockets, from (async) iterables."""

    async def chunks(message: str) -> AsyncIterator[str]:
        for chunk in fragments(message, 64):
            yield chunk

    async with (
        run_server(echo, max_size=MAX_SIZE) as uri,
        ws_connect(uri, "deflate") as client,
    ):
        await client.send(["frag", "mented", " ", "ünïcödé"])
        assert await client.recv() == "fragmented ünïcödé"
        await client.send([b"\x00", b"", b"\xff" * 1000])
        assert await client.recv() == b"\x00" + b"\xff" * 1000
        await client.send(fragments(JSON_TEXT, 200))
        assert await asyncio.wait_for(client.recv(), 5000 * MS) == JSON_TEXT
        await client.send(chunks(JSON_TEXT))
        assert await asyncio.wait_for(client.recv(), 5000 * MS) == JSON_TEXT
        await client.send(fragments(RANDOM, 10))
        assert await asyncio.wait_for(client.recv(), 5000 * MS) == RANDOM
        # The compression context carries over fragmented messages.
        for _ in range(3):
            await client.send(fragments(JSON_TEXT[:20000], 7))
            assert await client.recv() == JSON_TEXT[:20000]


async def ws_fragmenting_echo(ws: websockets.asyncio.server.ServerConnection) -> None:
    """Echo every message back in fragments."""
    async for message in ws:
        await ws.send(fragments(message))


# (factory arguments of the wsrs client, of the websockets server, negotiated parameters on the
# wsrs side, or None when websockets declines the offer).
WSRS_CLIENT_VARIANTS = [
    pytest.param({}, {}, (False, False, 15, 15), id="default"),
    pytest.param(
        {"server_no_context_takeover": True},
        {},
        (True, False, 15, 15),
        id="offer-server_no_context_takeover",
    ),
    pytest.param(
        {"client_no_context_takeover": True},
        {},
        (False, True, 15, 15),
        id="offer-client_no_context_takeover",
    ),
    *[
        pytest.param(
            {"server_max_window_bits": bits},
            {},
            (False, False, bits, 15),
            id=f"offer-server_max_window_bits={bits}",
        )
        for bits in range(9, 16)
    ],
    # websockets declines server_max_window_bits=8 (zlib can't compress with 8 bits).
    pytest.param({"server_max_window_bits": 8}, {}, None, id="offer-server_max_window_bits=8"),
    *[
        pytest.param(
            {"client_max_window_bits": bits},
            {},
            (False, False, 15, bits),
            id=f"offer-client_max_window_bits={bits}",
        )
        for bits in range(8, 16)
    ],
    pytest.param(
        {"client_max_window_bits": None},
        {},
        (False, False, 15, 15),
        id="offer-no-client_max_window_bits",
    ),
    pytest.param(
        {},
        {"server_no_context_takeover": True},
        (True, False, 15, 15),
        id="require-server_no_context_takeover",
    ),
    pytest.param(
        {},
        {"client_no_context_takeover": True},
        (False, True, 15, 15),
        id="require-client_no_context_takeover",
    ),
    *[
        pytest.param(
            {},
            {"server_max_window_bits": bits},
            (False, False, bits, 15),
            id=f"require-server_max_window_bits={bits}",
        )
        for bits in range(9, 16)  # websockets compresses with 9 bits at least
    ],
    *[
        pytest.param(
            {},
            {"client_max_window_bits": bits},
            (False, False, 15, bits),
            id=f"require-client_max_window_bits={bits}",
        )
        for bits in range(8, 16)
    ],
    pytest.param(
        {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 12,
            "client_max_window_bits": 13,
        },
        {"server_max_window_bits": 10, "client_max_window_bits": 11},
        (True, True, 10, 11),
        id="all",
    ),
]


@pytest.mark.parametrize(("client_kwargs", "server_kwargs", "expected"), WSRS_CLIENT_VARIANTS)
async def test_wsrs_client_websockets_server_deflate(
    client_kwargs: dict[str, Any], server_kwargs: dict[str, Any], expected: DeflateParams | None
) -> None:
    peer: list[DeflateParams | None] = []

    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        peer.append(peer_params(ws.protocol.extensions))
        await ws_fragmenting_echo(ws)

    # compression="deflate" offers client_max_window_bits without a value; so do these.
    client_extensions: list[ClientExtensionFactory] = [
        wsrs.ClientPerMessageDeflateFactory(**{"client_max_window_bits": True, **client_kwargs})
    ]
    async with (
        websockets.asyncio.server.serve(
            handler,
            "127.0.0.1",
            0,
            compression=None,
            extensions=[ws_deflate.ServerPerMessageDeflateFactory(**server_kwargs)],
            close_timeout=2,
            max_size=MAX_SIZE,
        ) as server,
        tcp_relay(f"ws://127.0.0.1:{list(server.sockets)[0].getsockname()[1]}/") as relay,
        wsrs.connect(
            relay.uri, compression=None, extensions=client_extensions, max_size=MAX_SIZE
        ) as ws,
    ):
        assert deflate_params(ws) == expected
        for message in DEFLATE_MESSAGES:
            # websockets echoes the message in fragments: wsrs reassembles them.
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), 5000 * MS) == message

        async def exchange() -> None:
            await ws.send(JSON_TEXT)
            assert await asyncio.wait_for(ws.recv(), 5000 * MS) == JSON_TEXT

        await check_wire_size(
            exchange,
            lambda: (relay.upstream, relay.downstream),
            (expected is not None and expected[3] > 8, expected is not None),
        )
    assert_compatible(expected, peer[0])
