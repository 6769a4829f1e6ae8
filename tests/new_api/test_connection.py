"""wsrs.asyncio: the websockets >= 14 API over real sockets, both sides.

Most tests run the same code against ``websockets.asyncio`` and ``wsrs.asyncio`` (the
``api`` fixture) to show that moving is a change of import; a few check wsrs alone.
"""

from __future__ import annotations

import asyncio
import types
import uuid
from collections.abc import AsyncIterator

import pytest
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.exceptions

import wsrs.asyncio.client
import wsrs.asyncio.server
import wsrs.exceptions
from tests.asyncio.utils import through_transport
from wsrs.asyncio.server import ServerConnection


MS = 0.001


class API(types.SimpleNamespace):
    """One implementation of the API: its serve, connect and exceptions."""

    serve: object
    connect: object
    exceptions: types.ModuleType


APIS = {
    "wsrs": API(
        serve=wsrs.asyncio.server.serve,
        connect=wsrs.asyncio.client.connect,
        exceptions=wsrs.exceptions,
    ),
    "websockets": API(
        serve=websockets.asyncio.server.serve,
        connect=websockets.asyncio.client.connect,
        exceptions=websockets.exceptions,
    ),
}


@pytest.fixture(params=list(APIS))
def api(request: pytest.FixtureRequest) -> API:
    return APIS[request.param]


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


def uri_of(server: object) -> str:
    host, port = server.sockets[0].getsockname()[:2]  # type: ignore[attr-defined]
    return f"ws://{host}:{port}/"


async def test_echo_text_and_binary(api: API) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            await client.send("hello")
            assert await client.recv() == "hello"
            await client.send(b"\x00\x01")
            assert await client.recv() == b"\x00\x01"
            await client.send(bytearray(b"ba"))
            assert await client.recv() == b"ba"
            await client.send(["frag", "ments"])
            assert await client.recv() == "fragments"

            async def chunks() -> AsyncIterator[bytes]:
                yield b"a"
                yield b"b"

            await client.send(chunks())
            assert await client.recv() == b"ab"


async def test_recv_decode(api: API) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            await client.send("café")
            assert await client.recv(decode=False) == "café".encode()
            await client.send("café".encode())
            assert await client.recv(decode=True) == "café"
            await client.send("text", text=False)
            assert await client.recv() == b"text"
            await client.send(b"bytes", text=True)
            assert await client.recv() == "bytes"


@pytest.mark.parametrize("second", ["recv", "async for"])
async def test_concurrent_recv_is_an_error(api: API, second: str) -> None:
    async def silent(connection: ServerConnection) -> None:
        await connection.wait_closed()

    async with api.serve(silent, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            first = asyncio.create_task(client.recv())
            await asyncio.sleep(10 * MS)
            with pytest.raises(api.exceptions.ConcurrencyError):
                if second == "recv":
                    await client.recv()
                else:
                    async for _ in client:
                        pass  # pragma: no cover
            first.cancel()


async def test_iteration_cancelled_while_waiting_loses_nothing(api: API) -> None:
    async def first_message() -> object:
        async for message in client:
            return message
        return None  # pragma: no cover

    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            waiting = asyncio.create_task(first_message())
            await asyncio.sleep(10 * MS)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await client.send("after")
            assert await client.recv() == "after"
            await client.send("again")
            assert await first_message() == "again"


async def test_ping_resolves_to_the_latency(api: API) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            pong = await client.ping()
            latency = await asyncio.wait_for(pong, 1)
            assert isinstance(latency, float) and 0 < latency < 1
            assert client.latency == latency
            await client.pong(b"unsolicited")


async def test_close_reports_both_close_frames(api: API) -> None:
    closed: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    async def closing(connection: ServerConnection) -> None:
        await connection.close(4000, "bye")
        closed.set_result(connection)

    async with api.serve(closing, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            with pytest.raises(api.exceptions.ConnectionClosedError) as raised:
                await client.recv()
            exc = raised.value
            assert (exc.rcvd.code, exc.rcvd.reason) == (4000, "bye")
            assert (exc.sent.code, exc.sent.reason) == (4000, "bye")
            assert exc.rcvd_then_sent is True
            assert str(exc) == "received 4000 (private use) bye; then sent 4000 (private use) bye"
            assert client.close_code == 4000 and client.close_reason == "bye"
        server_side = await closed
        assert server_side.close_code == 4000  # type: ignore[attr-defined]


async def test_normal_closure_ends_iteration(api: API) -> None:
    async def two(connection: ServerConnection) -> None:
        await connection.send("1")
        await connection.send("2")

    async with api.serve(two, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            assert [message async for message in client] == ["1", "2"]
            assert client.close_code == 1000
            with pytest.raises(api.exceptions.ConnectionClosedOK):
                await client.send("late")


async def test_state_and_addresses(api: API) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            assert client.state.name == "OPEN"
            assert client.remote_address == server.sockets[0].getsockname()
            assert client.local_address[0] == "127.0.0.1"
            assert client.subprotocol is None
            assert client.close_code is None
            assert client.request.path == "/"
            assert client.response.status_code == 101
        assert client.state.name == "CLOSED"


@pytest.mark.parametrize(
    ("server_api", "client_api"), [("wsrs", "websockets"), ("websockets", "wsrs")]
)
@pytest.mark.parametrize("compression", ["deflate", None])
async def test_interop_with_websockets(
    server_api: str, client_api: str, compression: str | None
) -> None:
    serve, connect = APIS[server_api].serve, APIS[client_api].connect
    messages = ["text " * 100, b"binary " * 100, "", b"", "x" * 100_000, b"y" * 100_000]
    async with serve(echo, "127.0.0.1", 0, compression=compression) as server:  # type: ignore[operator]
        async with connect(uri_of(server), compression=compression) as client:  # type: ignore[operator]
            for message in messages:
                await client.send(message)
                assert await client.recv() == message
            await client.close(1001, "done")
        assert client.close_code == 1001


async def test_recv_streaming(api: API) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            await client.send("whole")
            assert [f async for f in client.recv_streaming()] == ["whole"]
            await client.send(b"bin")
            assert [f async for f in client.recv_streaming(decode=True)] == ["bin"]


async def test_send_rejects_what_is_not_a_message(api: API) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            with pytest.raises(TypeError):
                await client.send({"a": 1})
            with pytest.raises(TypeError):
                await client.send(42)
            await client.send([])  # an empty iterable sends nothing
            await client.send("still open")
            assert await client.recv() == "still open"
            # A fragment of the wrong type leaves a message half sent: the connection fails.
            with pytest.raises(TypeError):
                await client.send([42])
            await client.wait_closed()
            assert client.state.name == "CLOSED"
            if api is APIS["wsrs"]:
                assert client.close_code == 1011


async def test_mixed_fragments_fail_the_connection(api: API) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            with pytest.raises(TypeError):
                await client.send(["text", b"bytes"])
            await client.wait_closed()
            assert client.state.name == "CLOSED"
            if api is APIS["wsrs"]:
                assert client.close_code == 1011


async def test_other_sends_wait_for_a_fragmented_message(api: API) -> None:
    release = asyncio.Event()

    async def slow() -> AsyncIterator[str]:
        yield "first "
        await release.wait()
        yield "second"

    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
            fragmented = asyncio.create_task(client.send(slow()))
            await asyncio.sleep(10 * MS)
            other = asyncio.create_task(client.send("after"))
            await asyncio.sleep(10 * MS)
            assert not other.done()
            release.set()
            await fragmented
            await other
            assert await client.recv() == "first second"
            assert await client.recv() == "after"


async def test_ping_pong_after_close_and_duplicate_ping(api: API) -> None:
    async def silent(connection: ServerConnection) -> None:
        await connection.wait_closed()

    async with api.serve(silent, "127.0.0.1", 0) as server:  # type: ignore[operator]
        async with api.connect(uri_of(server), ping_interval=None) as client:  # type: ignore[operator]
            server_side = next(iter(server.connections))
            server_side.transport.pause_reading()  # no pong comes back
            await client.ping(b"same")
            with pytest.raises(api.exceptions.ConcurrencyError):
                await client.ping(b"same")
            server_side.transport.resume_reading()
        with pytest.raises(api.exceptions.ConnectionClosedOK):
            await client.ping()
        with pytest.raises(api.exceptions.ConnectionClosedOK):
            await client.pong()
        with pytest.raises(api.exceptions.ConnectionClosedOK):
            await client.send("late")
        await client.close()  # idempotent


async def test_context_manager_closes_with_1011_on_error(api: API) -> None:
    async with api.serve(echo, "127.0.0.1", 0) as server:  # type: ignore[operator]
        with pytest.raises(RuntimeError):
            async with api.connect(uri_of(server)) as client:  # type: ignore[operator]
                raise RuntimeError("boom")
        assert client.close_code == 1011


async def test_limits_as_pairs_and_no_close_timeout() -> None:
    async with wsrs.asyncio.server.serve(
        echo, "127.0.0.1", 0, max_queue=(4, 1), write_limit=(1024, 256), max_size=(1000, 100)
    ) as server:
        async with wsrs.asyncio.client.connect(
            uri_of(server), close_timeout=None, max_queue=None
        ) as client:
            assert client.max_queue == 0
            with pytest.raises(wsrs.exceptions.ConnectionClosedError):
                await client.send("x" * 1001)
                await client.recv()
            assert client.close_code == 1009
            assert client.id.version == 4 and client.logger.name == "websockets.client"
            assert client.id is client.id  # made once
            client.id = uuid.UUID(int=1)  # assignable, as in websockets
            assert client.id.int == 1


async def test_compress_false_sends_one_message_uncompressed() -> None:
    async with wsrs.asyncio.server.serve(echo, "127.0.0.1", 0) as server:
        async with wsrs.asyncio.client.connect(uri_of(server)) as client:
            assert client.extensions
            transport = through_transport(client)
            written: list[bytes] = []
            write = transport.write

            def recording(data: bytes) -> None:
                written.append(bytes(data))
                write(data)

            transport.write = recording  # type: ignore[method-assign,assignment]
            text = "compressible " * 100
            # Each in its own loop iteration, so that each is written alone.
            await client.send(text, compress=False)
            await asyncio.sleep(0)
            await client.send(text)
            await asyncio.sleep(0)
            await client.send(["frag", "ments"], compress=False)
            await asyncio.sleep(0)
            await client.send(b"\xce\xb1" * 10, text=True, compress=False)
            await asyncio.sleep(0)
            transport.write = write  # type: ignore[method-assign]
            assert written[0][0] & 0x40 == 0 and len(written[0]) > len(text)  # no RSV1
            assert written[1][0] & 0x40 and len(written[1]) < len(text) // 4
            assert written[2][0] & 0x40 == 0
            assert await client.recv() == text
            assert await client.recv() == text
            assert await client.recv() == "fragments"
            assert await client.recv() == "α" * 10
