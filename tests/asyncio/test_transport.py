"""The native transport (wsrs.asyncio.transport): its asyncio.Transport semantics over a real
socket pair, taking connections over from asyncio and uvloop, choosing it, and its error
paths (peer reset, half-close, writing to a closed socket, a slow reader, pausing)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
from collections.abc import Iterator
from typing import Any, cast

import pytest

import wsrs
from wsrs import _core
from wsrs.asyncio import transport as native
from wsrs.asyncio.messages import MessageQueue
from wsrs.asyncio.transport import NativeTransport, take_over, use_native
from wsrs.asyncio.writer import FrameWriter

from .utils import MS, eventually, run_server


class Recorder(asyncio.BufferedProtocol):
    """A buffered protocol that records what the transport does to it."""

    def __init__(self, *, keep_open: bool = False) -> None:
        self.buffer = bytearray(1 << 16)
        self.data = bytearray()
        self.eof = False
        self.keep_open = keep_open
        self.paused = 0
        self.resumed = 0
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self.buffer[:nbytes]

    def eof_received(self) -> bool:
        self.eof = True
        return self.keep_open

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    yield ours, theirs
    theirs.close()
    ours.close()


async def make(
    sock: socket.socket, protocol: asyncio.BufferedProtocol | None = None
) -> tuple[NativeTransport, Recorder]:
    recorder = Recorder() if protocol is None else protocol
    assert isinstance(recorder, Recorder)
    own = sock.dup()
    own.setblocking(False)
    transport = NativeTransport(asyncio.get_running_loop(), own, recorder, {"peername": "peer"})
    return transport, recorder


def errors_reported() -> list[dict[str, Any]]:
    """Collect what the running loop's exception handler receives from now on."""
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    return reported


async def read_until(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        data += await asyncio.wait_for(loop.sock_recv(sock, size - len(data)), 2000 * MS)
    return data


# ---------------------------------------------------------------------------- choosing it


@pytest.mark.parametrize(
    ("env", "setting", "expected"),
    [
        (None, None, False),
        ("native", None, True),
        ("asyncio", None, False),
        ("bogus", None, False),
        (None, "native", True),
        ("native", "asyncio", False),
        ("asyncio", "native", False),  # the variable forces asyncio, for debugging
        ("bogus", "native", True),
    ],
)
def test_use_native(
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    setting: native.TransportKind | None,
    expected: bool,
) -> None:
    if env is None:
        monkeypatch.delenv(native.ENVIRONMENT_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, env)
    assert use_native(setting) is expected


# ---------------------------------------------------------------------------- the transport


async def test_reads_and_writes(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    assert transport.get_extra_info("peername") == "peer"
    assert transport.get_extra_info("socket").fileno() >= 0
    assert repr(transport).startswith("<NativeTransport fd=")
    assert transport.can_write_eof() and transport.is_reading() and not transport.is_closing()
    assert transport.get_protocol() is protocol
    transport.write(b"hello ")
    transport.write(b"")
    transport.writelines([b"wor", bytearray(b"ld")])
    assert await read_until(theirs, 11) == b"hello world"
    theirs.send(b"ping")
    await eventually(lambda: protocol.data == b"ping")
    transport.close()
    transport.close()
    assert await protocol.lost is None
    assert transport.is_closing() and not transport.is_reading()
    # After connection_lost(), writes are ignored.
    transport.write(b"ignored")
    transport.writelines([b"ignored"])


async def test_eof_closes_unless_the_protocol_keeps_it_open(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours, Recorder(keep_open=True))
    theirs.shutdown(socket.SHUT_WR)
    await eventually(lambda: protocol.eof)
    # Half-closed by the peer: still writing.
    transport.write(b"after eof")
    assert await read_until(theirs, 9) == b"after eof"
    assert not protocol.lost.done()
    transport.abort()
    assert await protocol.lost is None


async def test_eof_closes(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    theirs.close()
    assert await protocol.lost is None
    assert protocol.eof and transport.is_closing()


async def test_peer_reset_is_connection_lost_with_the_error() -> None:
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    client = socket.socket()
    client.setblocking(False)
    await loop.sock_connect(client, listener.getsockname())
    server, _ = await loop.sock_accept(listener)
    listener.close()
    server.setblocking(False)
    transport, protocol = await make(server)
    server.close()
    # RST instead of FIN: close with SO_LINGER 0.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    exc = await protocol.lost
    assert isinstance(exc, ConnectionResetError)
    assert transport.is_closing()


async def test_write_to_a_closed_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    transport.pause_reading()  # not to see EOF first
    theirs.close()
    transport.write(b"x")
    assert isinstance(await protocol.lost, BrokenPipeError)


async def test_writelines_to_a_closed_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    transport.pause_reading()
    theirs.close()
    transport.writelines([b"x", b"y"])
    assert isinstance(await protocol.lost, BrokenPipeError)


async def test_slow_reader_queues_pauses_and_resumes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    transport.set_write_buffer_limits(high=1 << 16)
    assert transport.get_write_buffer_limits() == (1 << 14, 1 << 16)
    chunk = os.urandom(1 << 20)
    transport.write(chunk)
    transport.writelines([chunk[:100], memoryview(chunk)[100:]])
    assert transport.get_write_buffer_size() > 0
    assert protocol.paused == 1
    # Closing and half-closing wait for the queue.
    transport.write_eof()
    transport.write_eof()
    with pytest.raises(RuntimeError):
        transport.write(b"x")
    with pytest.raises(RuntimeError):
        transport.writelines([b"x"])
    assert await read_until(theirs, 2 << 20) == chunk + chunk
    await eventually(lambda: protocol.resumed == 1)
    assert transport.get_write_buffer_size() == 0
    # EOF reached the peer once the queue was flushed.
    loop = asyncio.get_running_loop()
    assert await asyncio.wait_for(loop.sock_recv(theirs, 1), 2000 * MS) == b""
    transport.close()
    assert await protocol.lost is None


async def test_close_waits_for_the_queue(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    chunk = os.urandom(4 << 20)
    transport.write(chunk)
    transport.close()
    transport.write_eof()  # closing: nothing to do
    assert not protocol.lost.done()
    assert await read_until(theirs, len(chunk)) == chunk
    assert await protocol.lost is None


async def test_abort_drops_the_queue(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    transport.write(os.urandom(4 << 20))
    assert transport.get_write_buffer_size() > 0
    transport.close()
    transport.abort()
    transport.abort()
    assert await protocol.lost is None


async def test_flush_error(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    transport.pause_reading()
    transport.write(os.urandom(4 << 20))
    theirs.close()
    assert isinstance(await protocol.lost, (BrokenPipeError, ConnectionResetError))


async def test_shutdown_error(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    transport, protocol = await make(ours)
    transport.pause_reading()
    transport._io.close()  # every system call fails with EBADF from now on
    transport.write_eof()
    exc = await protocol.lost
    assert isinstance(exc, OSError) and exc.errno == 9


async def test_set_write_buffer_limits(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    transport, protocol = await make(ours)
    transport.set_write_buffer_limits()
    assert transport.get_write_buffer_limits() == (16384, 65536)
    transport.set_write_buffer_limits(low=100)
    assert transport.get_write_buffer_limits() == (100, 400)
    with pytest.raises(ValueError):
        transport.set_write_buffer_limits(high=1, low=2)
    transport.abort()
    await protocol.lost


async def test_pause_and_resume_reading(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    transport.pause_reading()
    transport.pause_reading()
    assert not transport.is_reading()
    theirs.send(b"held")
    await asyncio.sleep(20 * MS)
    assert protocol.data == b""
    transport.resume_reading()
    transport.resume_reading()
    await eventually(lambda: protocol.data == b"held")
    transport.close()
    transport.pause_reading()  # closing: nothing to do
    transport.resume_reading()
    await protocol.lost


async def test_protocol_error_is_reported_and_closes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    reported = errors_reported()

    class Broken(Recorder):
        def buffer_updated(self, nbytes: int) -> None:
            raise ZeroDivisionError

    transport, protocol = await make(ours, Broken())
    theirs.send(b"x")
    assert isinstance(await protocol.lost, ZeroDivisionError)
    assert isinstance(reported[0]["exception"], ZeroDivisionError)
    assert reported[0]["transport"] is transport


async def test_keyboard_interrupt_propagates(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair

    class Interrupted(Recorder):
        def buffer_updated(self, nbytes: int) -> None:
            raise KeyboardInterrupt

    transport, protocol = await make(ours, Interrupted())
    transport.pause_reading()
    theirs.send(b"x")
    await asyncio.sleep(10 * MS)
    with pytest.raises(KeyboardInterrupt):
        transport._read_ready()
    transport.abort()
    await protocol.lost


async def test_spurious_readiness_reads_nothing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _ = pair
    transport, protocol = await make(ours)
    transport._read_ready()  # nothing to read: EAGAIN
    assert protocol.data == b"" and not protocol.eof
    transport.set_protocol(other := Recorder())
    assert transport.get_protocol() is other
    transport.abort()
    await other.lost


def test_socket_rejects_a_read_only_buffer() -> None:
    with socket.socket() as sock:
        with pytest.raises(TypeError):
            _core.Socket(sock.fileno()).recv_into(b"read only")


# ------------------------------------------------------- reading and writing from Rust


class Delivering(Recorder):
    """A protocol the socket reads for by itself (``Socket.deliver_to``), as an open
    connection's ``BaseProtocol`` is, with a client's reader (frames are not masked)."""

    def __init__(self) -> None:
        super().__init__()
        self._active = False
        self.reader = _core.Reader(client=True)
        self.queue = MessageQueue(asyncio.get_running_loop(), 0, lambda: None, lambda: None)
        self.rest: list[object] = []
        self.error: BaseException | None = None

    def _receive_rest(self, events: list[object]) -> None:
        if self.error is not None:
            raise self.error
        self.rest.extend(events)


async def delivering(
    sock: socket.socket,
) -> tuple[NativeTransport, Delivering, FrameWriter]:
    transport, protocol = await make(sock, Delivering())
    assert isinstance(protocol, Delivering)
    writer = FrameWriter(asyncio.get_running_loop(), transport, 1 << 16)
    transport._io.deliver_to(protocol, protocol.reader, protocol.queue, writer)
    return transport, protocol, writer


async def test_socket_reads_for_its_protocol(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol, writer = await delivering(ours)
    assert transport._io.delivering
    writer.fresh = False
    theirs.send(b"\x81\x02hi\x89\x00\x82\x01!")  # text, ping, binary
    await eventually(lambda: len(protocol.rest) == 2)
    # The message before the ping went to the queue, the rest to the protocol.
    assert list(protocol.queue.messages) == ["hi"]
    assert isinstance(protocol.rest[0], _core.Ping) and protocol.rest[1] == b"!"
    assert protocol._active and writer.fresh
    assert protocol.data == b""  # nothing went through get_buffer/buffer_updated
    theirs.shutdown(socket.SHUT_WR)
    assert await protocol.lost is None
    assert protocol.eof


async def test_socket_reports_errors_of_its_protocol(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    reported = errors_reported()
    transport, protocol, _ = await delivering(ours)
    protocol.error = ZeroDivisionError()
    theirs.send(b"\x89\x00")
    assert isinstance(await protocol.lost, ZeroDivisionError)
    assert reported[0]["message"] == "fatal read error on native transport"
    assert reported[0]["transport"] is transport
    assert not transport._io.delivering  # forgotten once closed


async def test_socket_lets_keyboard_interrupt_through(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    transport, protocol, _ = await delivering(ours)
    protocol.error = KeyboardInterrupt()
    transport.pause_reading()
    theirs.send(b"\x89\x00")
    await asyncio.sleep(10 * MS)
    with pytest.raises(KeyboardInterrupt):
        transport._io.ready(transport)
    transport.abort()
    await protocol.lost


async def test_socket_without_a_protocol_reads_through_the_transport(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    transport, protocol, _ = await delivering(ours)
    with pytest.raises(TypeError):
        _core.Socket(ours.fileno()).receive_delivered()
    transport.set_protocol(protocol)  # a new protocol: the socket forgets the old one
    assert not transport._io.delivering
    theirs.send(b"raw")
    await eventually(lambda: protocol.data == b"raw")
    transport.abort()
    await protocol.lost


async def test_writer_writes_to_the_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    loop = asyncio.get_running_loop()
    transport, protocol = await make(ours)
    writer = FrameWriter(loop, transport, 8)
    assert writer.socket is transport._io and writer.transport is transport
    assert writer.loop is loop and writer.write_limit == 8
    called: list[bytes] = []
    transport.write = called.append  # type: ignore[method-assign, assignment]
    writer.write_message(b"one")  # fresh: at once
    assert theirs.recv(100) == b"one"
    writer.write_message(b"two")  # a batch ...
    assert writer.batching
    writer.write_message(b"333")
    with pytest.raises(BlockingIOError):
        theirs.recv(100)
    writer.write_message(b"four")  # ... written once it reaches write_limit
    assert theirs.recv(100) == b"two333four"
    writer.write_message(bytearray(b"five"))
    await asyncio.sleep(0)  # the end of the loop iteration flushes the rest
    assert not writer.batching and writer.fresh
    writer.write_now(memoryview(b"six"))
    assert theirs.recv(100) == b"fivesix"
    assert called == []  # transport.write was never called
    writer.socket = None
    writer.write_message(b"seven")
    assert called == [b"seven"]
    with pytest.raises(TypeError, match="socket must be"):
        writer.socket = object()
    with pytest.raises(TypeError, match="socket must be"):
        _core.FrameWriter(loop, transport, 8, socket=b"")
    transport.abort()
    await protocol.lost


async def test_writer_leaves_what_the_kernel_refuses_to_the_transport(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    writer = FrameWriter(asyncio.get_running_loop(), transport, 1 << 16)
    chunk = os.urandom(4 << 20)
    writer.write_message(chunk)
    assert transport.get_write_buffer_size() > 0 and protocol.paused == 1
    assert await read_until(theirs, len(chunk)) == chunk
    await eventually(lambda: protocol.resumed == 1)
    transport.close()
    assert await protocol.lost is None


async def test_writer_reports_socket_errors(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    writer = FrameWriter(asyncio.get_running_loop(), transport, 1 << 16)
    theirs.close()
    writer.write_message(b"nobody reads this")
    assert isinstance(await protocol.lost, BrokenPipeError)


async def test_writer_goes_through_the_transport_once_it_stops_writing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    protocol.keep_open = True
    writer = FrameWriter(asyncio.get_running_loop(), transport, 1 << 16)
    transport.write_eof()
    assert not transport._io.direct
    with pytest.raises(RuntimeError, match="write_eof"):
        writer.write_message(b"late")
    assert theirs.recv(100) == b""
    transport.close()
    await protocol.lost
    writer.write_now(b"dropped")  # closing: nothing written, nothing raised


async def test_writer_drops_the_batch_of_a_closing_transport(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    writer = FrameWriter(asyncio.get_running_loop(), transport, 1 << 16)
    writer.write_message(b"sent")
    writer.write_message(b"batched")
    transport.close()
    writer.flush()
    await protocol.lost
    assert theirs.recv(100) == b"sent"


async def test_writer_encodes_messages_with_its_encoder(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    writer = FrameWriter(asyncio.get_running_loop(), transport, 8)
    encoder = _core.Writer(client=False)
    assert writer.encoder is None
    writer.encoder = encoder.message
    assert writer.encoder == encoder.message
    writer.send(encoder.message, "hi")  # fresh: at once
    assert theirs.recv(100) == b"\x81\x02hi"
    writer.send(encoder.message, b"ab")  # a batch ...
    assert writer.batching
    with pytest.raises(BlockingIOError):
        theirs.recv(100)
    writer.send(encoder.message, b"cdefg")  # ... written once it reaches write_limit
    assert theirs.recv(100) == b"\x82\x02ab\x82\x05cdefg"
    await asyncio.sleep(0)
    assert writer.fresh
    # Another callable makes the frame itself.
    writer.send(lambda data: b"frame:" + cast(bytes, data), b"x")
    assert theirs.recv(100) == b"frame:x"
    # An error while encoding leaves the writer as it was, fresh or batching.
    writer.fresh = True
    with pytest.raises(TypeError):
        writer.send(encoder.message, cast(Any, 5))
    assert writer.fresh and not writer.batching
    writer.fresh = False
    with pytest.raises(TypeError):
        writer.send(encoder.message, cast(Any, 5))
    assert not writer.batching
    writer.encoder = None
    writer.send(encoder.message, "no encoder")  # made by encoder.message, the same frame
    await asyncio.sleep(0)
    assert theirs.recv(100) == b"\x81\x0ano encoder"
    with pytest.raises(TypeError, match="message method of a Writer"):
        writer.encoder = print
    transport.abort()
    await protocol.lost


async def test_writer_encodes_through_the_transport_without_socket(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    transport, protocol = await make(ours)
    writer = FrameWriter(asyncio.get_running_loop(), transport, 1 << 16)
    writer.socket = None
    written: list[bytes] = []
    transport.write = written.append  # type: ignore[method-assign, assignment]
    encoder = _core.Writer(client=False)
    writer.encoder = encoder.message
    writer.send(encoder.message, "one")
    writer.send(encoder.message, "two")
    await asyncio.sleep(0)
    assert written == [b"\x81\x03one", b"\x81\x03two"]
    transport.abort()
    await protocol.lost


# ---------------------------------------------------------------------------- taking over


class FakeTransport(asyncio.Transport):
    pass


async def test_take_over_refuses_other_transports() -> None:
    loop = asyncio.get_running_loop()
    assert take_over(loop, FakeTransport(), Recorder()) is None


async def test_take_over_refuses_a_transport_with_bytes_queued() -> None:
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        transport, _ = await loop.create_connection(asyncio.Protocol, *listener.getsockname()[:2])
        transport.pause_reading()
        transport.write(b"x" * (16 << 20))  # more than the socket buffers take
        assert transport.get_write_buffer_size() > 0
        assert take_over(loop, transport, Recorder()) is None
        transport.abort()
    finally:
        listener.close()


async def test_tls_keeps_asyncio_transport(
    monkeypatch: pytest.MonkeyPatch,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
) -> None:
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "native")
    async with run_server(ssl=server_context) as uri:
        async with wsrs.connect(uri.replace("ws://", "wss://"), ssl=client_context) as ws:
            assert not isinstance(ws.transport, NativeTransport)
            await ws.send("over tls")
            assert await ws.recv() == "over tls"


async def test_setting_on_the_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.ENVIRONMENT_VARIABLE, raising=False)

    class NativeClient(wsrs.WebSocketClientProtocol):
        transport_kind = "native"

    async with run_server() as uri:
        async with wsrs.connect(uri, create_protocol=NativeClient) as ws:
            assert isinstance(ws.transport, NativeTransport)
            await ws.send("native")
            assert await ws.recv() == "native"
        async with wsrs.connect(uri) as ws:
            assert not isinstance(ws.transport, NativeTransport)
        monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "asyncio")
        async with wsrs.connect(uri, create_protocol=NativeClient) as ws:
            assert not isinstance(ws.transport, NativeTransport)


async def test_unix_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "native")
    path = str(tmp_path / "ws.sock")

    async def handler(ws: wsrs.WebSocketServerProtocol, _: str) -> None:
        assert isinstance(ws.transport, NativeTransport)
        async for message in ws:
            await ws.send(message)

    async with wsrs.unix_serve(handler, path):
        async with wsrs.unix_connect(path, "ws://localhost/") as ws:
            assert isinstance(ws.transport, NativeTransport)
            for message in ("text", b"binary", os.urandom(300_000)):
                await ws.send(message)
                assert await ws.recv() == message
