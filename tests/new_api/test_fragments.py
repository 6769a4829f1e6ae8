"""wsrs.asyncio: fragmented messages, streamed with ``recv_streaming`` or joined by ``recv``,
and the ``max_size=(max_message_size, max_fragment_size)`` limit.

Most tests run the same code against websockets and wsrs (the ``api`` fixture), or with one
library on each side (the ``peers`` fixture), to show that wsrs behaves as websockets 17.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

import wsrs
import wsrs.asyncio.client
import wsrs.asyncio.server
from wsrs.asyncio.base import RECEIVE_BUFFER_SIZE
from wsrs.asyncio.server import ServerConnection

from .test_connection import API, APIS, uri_of


@pytest.fixture(params=list(APIS))
def api(request: pytest.FixtureRequest) -> API:
    return APIS[request.param]


@pytest.fixture(
    params=[(server, client) for server in APIS for client in APIS],
    ids=lambda pair: f"{pair[0]}-server-{pair[1]}-client",
)
def peers(request: pytest.FixtureRequest) -> tuple[API, API]:
    """The library of the server and that of the client: each with each."""
    server, client = request.param
    return APIS[server], APIS[client]


async def silent(connection: ServerConnection) -> None:
    await connection.wait_closed()


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_recv_streaming_yields_each_fragment_as_it_arrives(
    peers: tuple[API, API], compression: str | None
) -> None:
    server_api, client_api = peers
    gate = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        async def pieces() -> AsyncIterator[bytes]:
            # Text sent as bytes: "é" and "€" are split across frames.
            yield b"caf\xc3"
            await gate.wait()
            yield b"\xa9 \xe2\x82"
            yield b"\xac"

        await connection.send(pieces(), text=True)
        await connection.send([b"\x01\x02", b"\xfe\xff"])
        await connection.send(["😀", "😀"])
        await connection.send([b"caf\xc3", b"\xa9"])
        await connection.send("whole")
        await connection.wait_closed()

    async with server_api.serve(  # type: ignore[operator]
        handler, "127.0.0.1", 0, compression=compression
    ) as server:
        async with client_api.connect(  # type: ignore[operator]
            uri_of(server), compression=compression
        ) as client:
            assert bool(client.response.headers.get("Sec-WebSocket-Extensions")) == bool(
                compression
            )
            stream = client.recv_streaming()
            # The first fragment comes before the next one is even sent.
            assert await anext(stream) == "caf"
            gate.set()
            # websockets ends a message sent from an iterable with an empty frame.
            assert [piece async for piece in stream] == ["é ", "€", ""]
            assert [piece async for piece in client.recv_streaming()] == [
                b"\x01\x02",
                b"\xfe\xff",
                b"",
            ]
            assert [piece async for piece in client.recv_streaming(decode=False)] == [
                "😀".encode(),
                "😀".encode(),
                b"",
            ]
            assert [piece async for piece in client.recv_streaming(decode=True)] == [
                "caf",
                "é",
                "",
            ]
            assert [piece async for piece in client.recv_streaming()] == ["whole"]


async def test_recv_joins_fragments(peers: tuple[API, API]) -> None:
    server_api, client_api = peers

    async def handler(connection: ServerConnection) -> None:
        await connection.send(["😀", "😀"])
        await connection.send([b"\x01\x02", b"\xfe\xff"])
        await connection.send([b"caf\xc3", b"\xa9"], text=True)
        await connection.send(b"x" for _ in range(100))  # more frames than max_queue
        await connection.wait_closed()

    async with server_api.serve(handler, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with client_api.connect(uri_of(server), max_queue=4) as client:  # type: ignore[operator]
            assert await client.recv() == "😀😀"
            assert await client.recv() == b"\x01\x02\xfe\xff"
            assert await client.recv(decode=False) == "café".encode()
            assert await client.recv() == b"x" * 100


async def test_recv_cancelled_in_a_fragmented_message_loses_nothing(api: API) -> None:
    gate = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        async def pieces() -> AsyncIterator[str]:
            yield "⏳"
            await gate.wait()
            yield "⌛️"

        await connection.send(pieces())
        await connection.wait_closed()

    async with api.serve(handler, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            recv = asyncio.create_task(client.recv())
            await asyncio.sleep(0.05)  # the first fragment arrives
            recv.cancel()
            with pytest.raises(asyncio.CancelledError):
                await recv
            gate.set()
            assert await client.recv() == "⏳⌛️"


async def test_concurrent_recv_and_recv_streaming(api: API) -> None:
    async with api.serve(silent, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            streaming = asyncio.create_task(anext(client.recv_streaming()))
            await asyncio.sleep(0)
            with pytest.raises(api.exceptions.ConcurrencyError) as raised:
                await client.recv()
            assert str(raised.value) == (
                "cannot call recv while another coroutine is already running recv or recv_streaming"
            )
            with pytest.raises(api.exceptions.ConcurrencyError) as raised:
                async for _ in client.recv_streaming():
                    pytest.fail("did not raise")
            assert str(raised.value) == (
                "cannot call recv_streaming while another coroutine is already running recv "
                "or recv_streaming"
            )
            streaming.cancel()
            with pytest.raises(asyncio.CancelledError):
                await streaming
            recv = asyncio.create_task(client.recv())
            await asyncio.sleep(0)
            with pytest.raises(api.exceptions.ConcurrencyError):
                async for _ in client.recv_streaming():
                    pytest.fail("did not raise")
            recv.cancel()


async def test_recv_streaming_left_early(api: API) -> None:
    """Cancelled before its first piece, recv_streaming leaves the connection usable; left
    after one (cancelled or closed), it leaves it unusable, as websockets documents."""
    gate = asyncio.Event()
    done = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        await gate.wait()

        async def pieces() -> AsyncIterator[str]:
            yield "one"
            await done.wait()
            yield "two"

        await connection.send(["a", "b"])
        await connection.send(pieces())

    async with api.serve(handler, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server), close_timeout=0.1) as client:  # type: ignore[operator]
            waiting = asyncio.create_task(anext(client.recv_streaming()))
            await asyncio.sleep(0.01)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            gate.set()
            assert [piece async for piece in client.recv_streaming()] == ["a", "b", ""]
            stream = client.recv_streaming()
            assert await anext(stream) == "one"
            pending = asyncio.create_task(anext(stream))
            await asyncio.sleep(0.01)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            with pytest.raises(api.exceptions.ConcurrencyError):
                await client.recv()
            done.set()


async def test_recv_streaming_closed_early_by_the_consumer(api: API) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.send(["a", "b"])
        await connection.wait_closed()

    async with api.serve(handler, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            async with contextlib.aclosing(client.recv_streaming()) as stream:
                async for piece in stream:
                    assert piece == "a"
                    break
            with pytest.raises(api.exceptions.ConcurrencyError):
                await client.recv()


async def test_recv_streaming_after_the_end(api: API) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.send("last")
        await connection.close(1001)

    async with api.serve(handler, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            assert [piece async for piece in client.recv_streaming()] == ["last"]
            with pytest.raises(api.exceptions.ConnectionClosedOK):
                async for _ in client.recv_streaming():
                    pytest.fail("did not raise")


async def test_connection_closed_in_a_streamed_message(api: API) -> None:
    async def handler(connection: ServerConnection) -> None:
        async def pieces() -> AsyncIterator[str]:
            yield "cut"
            await asyncio.sleep(10)
            yield "never"

        send = asyncio.create_task(connection.send(pieces()))
        await asyncio.sleep(0.05)
        connection.transport.abort()  # type: ignore[union-attr]
        send.cancel()

    async with api.serve(handler, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            pieces: list[object] = []
            with pytest.raises(api.exceptions.ConnectionClosedError):
                async for piece in client.recv_streaming():
                    pieces.append(piece)
            assert pieces == ["cut"]


async def test_decoding_invalid_utf8_fails_with_1007(api: API) -> None:
    for receive in ("recv", "recv_streaming", "fragments"):

        async def sender(connection: ServerConnection, receive: str = receive) -> None:
            if receive == "fragments":
                await connection.send([b"ok", b"\xff"])
            else:
                await connection.send(b"\xff")
            await connection.wait_closed()

        async with api.serve(sender, "127.0.0.1", 0) as server:  # type: ignore[operator]
            async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
                with pytest.raises(api.exceptions.ConnectionClosedError) as raised:
                    if receive == "recv":
                        await client.recv(decode=True)
                    else:
                        async for _ in client.recv_streaming(decode=True):
                            pass
                assert raised.value.sent.code == 1007, receive


@pytest.mark.parametrize(
    ("max_size", "message", "compression"),
    [
        # The fragment limit, from the header: a frame of 11 bytes, unfragmented or not.
        ((1000, 10), b"x" * 11, None),
        ((None, 10), [b"x" * 5, b"y" * 11], None),
        # After decompression: a few compressed bytes inflate past the fragment limit.
        ((1000, 50), b"\x00" * 51, "deflate"),
        ((None, 50), [b"\x00" * 10, b"\x00" * 51], "deflate"),
        # The message limit, with fragments within theirs.
        ((100, 10), [b"x" * 10] * 11, None),
        ((100, None), [b"x" * 60, b"y" * 60], "deflate"),
    ],
)
async def test_max_size_pair_fails_with_1009(
    api: API,
    max_size: tuple[int | None, int | None],
    message: bytes | list[bytes],
    compression: str | None,
) -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.send(b"x" * 10)  # within the limits
        await connection.send(message)
        await connection.wait_closed()

    async with api.serve(handler, "127.0.0.1", 0, compression=compression) as server:  # type: ignore[operator]
        async with api.connect(  # type: ignore[operator]
            uri_of(server), max_size=max_size, compression=compression
        ) as client:
            assert await client.recv() == b"x" * 10
            with pytest.raises(api.exceptions.ConnectionClosedError) as raised:
                await client.recv()
            assert raised.value.sent.code == 1009


async def test_max_size_pair_on_the_server_side(api: API) -> None:
    received: list[object] = []

    async def handler(connection: ServerConnection) -> None:
        try:
            received.append(await connection.recv())
            await connection.recv()
        except api.exceptions.ConnectionClosedError as exc:
            received.append(exc.sent.code)

    # Uncompressed: the compressed payload of "abcd" would be over 4 bytes already.
    async with api.serve(  # type: ignore[operator]
        handler, "127.0.0.1", 0, max_size=(100, 4), compression=None
    ) as server:
        async with api.connect(uri_of(server), compression=None) as client:  # type: ignore[operator]
            await client.send(["abcd", "efgh"])
            await client.send(["abcd", "efghi"])
            await client.wait_closed()
    assert received == ["abcdefgh", 1009]


async def test_fragments_of_an_unread_message_stay_bounded() -> None:
    """A peer that sends fragment after fragment while nothing reads them fills the queue
    to ``max_queue`` and then waits: reading is paused, memory stays bounded."""
    sent = asyncio.Event()
    count = 10_000  # 10 MB: more than the socket buffers hold

    async def handler(connection: ServerConnection) -> None:
        async def pieces() -> AsyncIterator[bytes]:
            for _ in range(count):
                yield b"x" * 1000
            sent.set()

        await connection.send(pieces())
        await connection.wait_closed()

    async with wsrs.asyncio.server.serve(handler, "127.0.0.1", 0) as server:
        async with wsrs.asyncio.client.connect(
            uri_of(server), max_queue=4, max_size=None, compression=None
        ) as client:
            await asyncio.sleep(0.5)
            # The server could not send everything: the client stopped reading once the
            # queue held 4 fragments (with the rest of the chunk read then: 1 MiB at most).
            assert not sent.is_set()
            queued = len(client.messages)
            assert 4 <= queued <= 4 + RECEIVE_BUFFER_SIZE // 1000, queued
            assert await client.recv() == b"x" * 1000 * count
            assert sent.is_set()


async def test_the_4_0_api_receives_fragmented_messages_whole() -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.send(["frag", "ments"])
        await connection.wait_closed()

    async with wsrs.asyncio.server.serve(handler, "127.0.0.1", 0) as server:
        client = await wsrs.connect(uri_of(server))
        try:
            assert not client.stream_fragments
            assert await client.recv() == "fragments"
            assert list(client.messages) == []
        finally:
            await client.close()
