"""Tests of the Sans-I/O connection: no sockets, no event loop, no timing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wsrs import _core
from wsrs._core import Close, Fragment, Ping, Pong, ProtocolError, Reader, Writer
from wsrs.connection import Connection, Side, State
from wsrs.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    PayloadTooBig,
    WebSocketProtocolError,
)
from wsrs.extensions.permessage_deflate import PerMessageDeflate


SIDES = [Side.SERVER, Side.CLIENT]


def peer_writer(side: Side) -> Writer:
    """A writer for the other end: a client's frames are masked."""
    return Writer(client=side is Side.SERVER)


def peer_reader(side: Side) -> Reader:
    """A reader for what this side sends."""
    return Reader(client=side is Side.SERVER, max_size=None)


@pytest.mark.parametrize("side", SIDES)
def test_messages(side: Side) -> None:
    conn = Connection(side)
    peer = peer_writer(side)
    data = peer.message("café") + peer.message(b"\x00\x01") + peer.message("", fragment_size=0)
    assert conn.receive_data(data) == ["café", b"\x00\x01", ""]
    assert conn.data_to_send() == []
    assert conn.state is State.OPEN
    assert not conn.stream_ended and not conn.close_expected()
    assert conn.close_code is None and conn.close_reason == ""


@pytest.mark.parametrize("side", SIDES)
def test_send_message_round_trips(side: Side) -> None:
    conn = Connection(side)
    reader = peer_reader(side)
    assert reader.feed(conn.send_message("hé") + conn.send_message(b"x" * 70000)) == [
        "hé",
        b"x" * 70000,
    ]
    with pytest.raises(TypeError):
        conn.send_message(42)
    assert reader.feed(conn.send_shared(_core.SharedMessage("shared"))) == ["shared"]
    assert not conn.sending_fragments
    first = conn.send_fragment("a", first=True, fin=False)
    assert conn.sending_fragments
    with pytest.raises(ValueError):
        conn.send_shared(_core.SharedMessage("between fragments"))
    last = conn.send_fragment("b", first=False, fin=True)
    assert not conn.sending_fragments
    assert reader.feed(first + last) == ["ab"]
    assert conn.state is State.OPEN


@pytest.mark.parametrize("side", SIDES)
def test_ping_is_answered(side: Side) -> None:
    conn = Connection(side)
    events = conn.receive_data(peer_writer(side).ping(b"abc"))
    assert events == [Ping(b"abc")]
    assert peer_reader(side).feed(b"".join(conn.data_to_send())) == [Pong(b"abc")]
    assert conn.data_to_send() == []


@pytest.mark.parametrize("side", SIDES)
def test_pong_acknowledges_earlier_pings(side: Side) -> None:
    conn = Connection(side)
    for payload in [b"1", b"2", b"3"]:
        conn.send_ping(payload, waiter=payload.decode())
    with pytest.raises(ValueError, match="already waiting"):
        conn.send_ping(b"2")
    assert conn.has_ping(b"2")
    assert conn.pings == {b"1": "1", b"2": "2", b"3": "3"}
    assert conn.acknowledge(b"unsolicited") == []
    assert conn.acknowledge(b"2") == [(b"1", "1"), (b"2", "2")]
    assert not conn.has_ping(b"1") and conn.has_ping(b"3")
    assert conn.acknowledge(b"3") == [(b"3", "3")]
    with pytest.raises(ValueError):
        conn.send_ping(b"x" * 126)
    assert not conn.has_ping(b"x" * 126)


@pytest.mark.parametrize("side", SIDES)
def test_forgotten_ping_is_not_acknowledged(side: Side) -> None:
    conn = Connection(side)
    conn.send_ping(b"1")
    conn.send_ping(b"2")
    assert conn.forget_ping(b"1")
    assert not conn.forget_ping(b"1")
    assert not conn.has_ping(b"1")
    assert conn.acknowledge(b"1") == []  # unsolicited now
    assert conn.acknowledge(b"2") == [(b"2", None)]


@pytest.mark.parametrize("side", SIDES)
def test_peer_closes(side: Side) -> None:
    conn = Connection(side)
    events = conn.receive_data(peer_writer(side).close(1001, "bye"))
    assert events == [Close(1001, "bye")]
    assert conn.state is State.CLOSING
    # RFC 6455 §5.5.1: the close frame is echoed with its code.
    assert peer_reader(side).feed(b"".join(conn.data_to_send())) == [Close(1001, "bye")]
    assert conn.stream_ended and conn.close_expected()
    assert (conn.close_code, conn.close_reason) == (1001, "bye")
    assert conn.close_sent == Close(1001, "bye")
    # Nothing is delivered after a close frame, and pings get no pong.
    assert conn.receive_data(peer_writer(side).message("late")) == []
    conn.receive_eof()
    assert conn.state.name == "CLOSED"
    assert conn.close_code == 1001


@pytest.mark.parametrize("side", SIDES)
def test_peer_closes_without_code(side: Side) -> None:
    conn = Connection(side)
    assert conn.receive_data(peer_writer(side).close()) == [Close(1005, "")]
    # The echo carries no code either.
    echo = b"".join(conn.data_to_send())
    assert peer_reader(side).feed(echo) == [Close(1005, "")]
    assert conn.close_code == 1005


@pytest.mark.parametrize("side", SIDES)
def test_local_close_then_reply(side: Side) -> None:
    conn = Connection(side)
    frame = conn.send_close(1000, "done")
    assert peer_reader(side).feed(frame) == [Close(1000, "done")]
    assert conn.state is State.CLOSING
    assert not conn.close_expected() and not conn.stream_ended
    # Messages sent before the peer saw our close frame are still delivered.
    assert conn.receive_data(peer_writer(side).message("in flight")) == ["in flight"]
    assert conn.receive_data(peer_writer(side).close(1000, "ok")) == [Close(1000, "ok")]
    assert conn.data_to_send() == []  # no second close frame
    assert conn.close_expected()
    assert (conn.close_code, conn.close_reason) == (1000, "ok")


@pytest.mark.parametrize("side", SIDES)
def test_no_pong_after_close_sent(side: Side) -> None:
    conn = Connection(side)
    conn.send_close()
    conn.receive_data(peer_writer(side).ping(b"p"))
    assert conn.data_to_send() == []


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 5000])
def test_invalid_close_code_changes_nothing(code: int) -> None:
    conn = Connection(Side.SERVER)
    with pytest.raises(ValueError):
        conn.send_close(code)
    with pytest.raises(ValueError):
        conn.send_close(1000, "x" * 124)
    assert conn.state is State.OPEN and conn.close_sent is None


@pytest.mark.parametrize("side", SIDES)
def test_protocol_error_fails_the_connection(side: Side) -> None:
    conn = Connection(side)
    events = conn.receive_data(peer_writer(side).message("ok") + b"\x83\x80\x00\x00\x00\x00")
    assert events[0] == "ok"
    assert isinstance(events[1], ProtocolError) and events[1].code == 1002
    assert isinstance(conn.failure, WebSocketProtocolError)
    assert peer_reader(side).feed(b"".join(conn.data_to_send())) == [Close(1002, "reserved opcode")]
    assert conn.stream_ended and conn.close_expected()
    assert conn.close_code == 1002
    # A failed connection reports its failure code even once TCP is closed.
    conn.receive_eof()
    assert conn.close_code == 1002


def test_message_too_big_fails_with_1009() -> None:
    conn = Connection(Side.CLIENT, max_size=10)
    conn.receive_data(Writer(client=False).message(b"x" * 11))
    assert isinstance(conn.failure, PayloadTooBig)
    assert conn.close_code == 1009


@pytest.mark.parametrize("side", SIDES)
def test_streamed_fragments_and_the_fragment_limit(side: Side) -> None:
    conn = Connection(side, max_size=100, max_fragment_size=4, stream_fragments=True)
    peer = peer_writer(side)
    events = conn.receive_data(
        peer.fragment("ab", first=True, fin=False) + peer.fragment("cd", first=False, fin=True)
    )
    assert [(e.data, e.text, e.fin) for e in events if isinstance(e, Fragment)] == [
        (b"ab", True, False),
        (b"cd", True, True),
    ]
    assert conn.receive_data(peer.message(b"abcd")) == [b"abcd"]
    # A frame over the fragment limit fails the connection with 1009.
    [error] = conn.receive_data(peer.message(b"abcde"))
    assert isinstance(error, ProtocolError) and error.code == 1009
    assert isinstance(conn.failure, PayloadTooBig)
    assert conn.close_code == 1009


def test_invalid_utf8_fails_with_1007() -> None:
    conn = Connection(Side.CLIENT)
    conn.receive_data(b"\x81\x02\xc3\x28")
    assert conn.close_code == 1007
    assert isinstance(conn.failure, WebSocketProtocolError)
    # The cause reports the code the connection failed with, not 1002.
    assert conn.failure.close_code == 1007
    conn.receive_eof()
    exc = conn.close_exc
    assert isinstance(exc, ConnectionClosedError)
    assert exc.code == 1007 and exc.__cause__ is conn.failure


@pytest.mark.parametrize(
    ("data", "code", "cause"),
    [
        (b"\x83\x00", 1002, WebSocketProtocolError),  # reserved opcode
        (b"\x81\x02\xc3\x28", 1007, WebSocketProtocolError),  # invalid UTF-8
        (b"\x82\x0b" + b"x" * 11, 1009, PayloadTooBig),  # over max_size
    ],
)
def test_each_failure_reports_its_own_close_code(
    data: bytes, code: int, cause: type[Exception]
) -> None:
    conn = Connection(Side.CLIENT, max_size=10)
    conn.receive_data(data)
    conn.receive_eof()
    exc = conn.close_exc
    assert isinstance(exc, ConnectionClosedError)
    assert (exc.code, type(exc.__cause__), exc.__cause__.close_code) == (code, cause, code)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- what may be sent


@pytest.mark.parametrize("side", SIDES)
def test_nothing_may_be_sent_once_closing(side: Side) -> None:
    conn = Connection(side)
    conn.send_ping(b"waiting")
    conn.send_close(1000)
    sends: list[Callable[[], object]] = [
        lambda: conn.send_message("late"),
        lambda: conn.send_message_buffer(b"x" * 70_000),
        lambda: conn.send_shared(_core.SharedMessage("late")),
        lambda: conn.send_ping(b"late"),
        lambda: conn.send_pong(b"late"),
        lambda: conn.send_close(1000),
    ]
    for send in sends:
        with pytest.raises(InvalidState, match="WebSocket connection is CLOSING"):
            send()
    conn.receive_eof()
    with pytest.raises(InvalidState, match="WebSocket connection is CLOSED"):
        conn.send_message("later")


@pytest.mark.parametrize("side", SIDES)
def test_normal_closure_reports_connection_closed_ok(side: Side) -> None:
    conn = Connection(side)
    conn.send_close(1000, "bye")
    conn.receive_data(peer_writer(side).close(1000, "bye"))
    assert conn.close_expected()
    conn.receive_eof()
    exc = conn.close_exc
    assert isinstance(exc, ConnectionClosedOK)
    assert (exc.code, exc.reason, exc.__cause__) == (1000, "bye", None)


def test_lost_connection_reports_1006() -> None:
    conn = Connection(Side.CLIENT)
    conn.receive_eof()
    exc = conn.close_exc
    assert isinstance(exc, ConnectionClosedError) and exc.code == 1006


def test_the_server_closes_tcp_first() -> None:
    # RFC 6455 §7.1.1: the server closes TCP at once; the client waits for it.
    assert Connection(Side.SERVER).closes_tcp_first
    assert not Connection(Side.CLIENT).closes_tcp_first


def test_abandoned_pings_return_their_waiters() -> None:
    conn = Connection(Side.CLIENT)
    conn.send_ping(b"1", "first")
    conn.send_ping(b"2", "second")
    assert conn.abandon_pings() == ["first", "second"]
    assert conn.pings == {} and conn.acknowledge(b"1") == []


def test_fail_by_the_application() -> None:
    conn = Connection(Side.SERVER)
    conn.fail(1011, "handler crashed")
    assert peer_reader(Side.SERVER).feed(b"".join(conn.data_to_send())) == [
        Close(1011, "handler crashed")
    ]
    assert conn.state is State.CLOSING and conn.close_expected()
    assert conn.close_code == 1011
    # Failing again changes nothing and sends nothing.
    conn.fail(1002)
    assert conn.data_to_send() == []
    assert conn.close_code == 1011


def test_fail_without_close_frame() -> None:
    conn = Connection(Side.CLIENT)
    conn.fail(1006)
    assert conn.data_to_send() == []
    assert conn.close_code == 1006 and conn.stream_ended


def test_fail_after_local_close_reports_the_failure() -> None:
    conn = Connection(Side.CLIENT)
    conn.send_close(1000)
    conn.receive_data(b"\x83\x00")
    assert conn.data_to_send() == []  # the close frame was already sent
    assert conn.close_code == 1002


def test_eof_without_closing_handshake() -> None:
    conn = Connection(Side.SERVER)
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.close_code == 1006 and conn.stream_ended


@pytest.mark.parametrize("side", SIDES)
def test_extensions_configure_the_codec(side: Side) -> None:
    ext = PerMessageDeflate(False, False, 15, 15, {"threshold": 0})
    conn = Connection(side, extensions=[ext])
    peer = Writer(client=side is Side.SERVER, deflate=True, compress_threshold=0)
    frame = peer.message("compressed " * 20)
    assert frame[0] & 0x40  # RSV1: the peer compressed it
    assert conn.receive_data(frame) == ["compressed " * 20]
    sent = conn.send_message("back " * 20)
    assert sent[0] & 0x40
    reader = Reader(client=side is Side.SERVER, deflate=True)
    assert reader.feed(sent) == ["back " * 20]
