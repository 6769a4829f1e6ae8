"""Unit tests of the extension interfaces and of permessage-deflate (RFC 7692 §7).

No sockets: negotiation is driven through the factories and the handshake helpers, and the
negotiated extensions configure ``wsrs._core`` readers and writers directly.
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Sequence
from typing import Any

import pytest

from wsrs._core import Reader, Writer, apply_mask
from wsrs.client import Connect, WebSocketClientProtocol
from wsrs.exceptions import (
    DuplicateParameter,
    InvalidHandshake,
    InvalidHeaderFormat,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
)
from wsrs.extensions.base import ClientExtensionFactory, Extension, ServerExtensionFactory
from wsrs.extensions.permessage_deflate import (
    DEFAULT_THRESHOLD,
    LEAN_WINDOW_BITS,
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from wsrs.headers import ExtensionParameter, build_extension_list, parse_extension_list
from wsrs.http11 import Headers
from wsrs.server import Serve, WebSocketServerProtocol


# (remote_no_context_takeover, local_no_context_takeover,
#  remote_max_window_bits, local_max_window_bits)
Attrs = tuple[bool, bool, int, int]

SNCT: ExtensionParameter = ("server_no_context_takeover", None)
CNCT: ExtensionParameter = ("client_no_context_takeover", None)
CMWB: ExtensionParameter = ("client_max_window_bits", None)

TAIL = b"\x00\x00\xff\xff"


def smwb(value: int | str) -> ExtensionParameter:
    return ("server_max_window_bits", str(value))


def cmwb(value: int | str) -> ExtensionParameter:
    return ("client_max_window_bits", str(value))


def attrs(ext: Extension) -> Attrs:
    assert isinstance(ext, PerMessageDeflate)
    return (
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
    )


class OtherExtension(Extension):
    name = "x-other"


class OtherServerFactory(ServerExtensionFactory):
    name = "x-other"

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], Extension]:
        return list(params), OtherExtension()


class OtherClientFactory(ClientExtensionFactory):
    name = "x-other"

    def get_request_params(self) -> list[ExtensionParameter]:
        return [("foo", "1")]

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> Extension:
        return OtherExtension()


# Base classes.


def test_extension_defaults_configure_nothing() -> None:
    ext = Extension()
    assert ext.reader_options() == {}
    assert ext.writer_options() == {}
    assert OtherExtension().reader_options() == {}


def test_client_factory_base_is_abstract() -> None:
    factory = ClientExtensionFactory()
    with pytest.raises(NotImplementedError):
        factory.get_request_params()
    with pytest.raises(NotImplementedError):
        factory.process_response_params([], [])


def test_server_factory_base_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        ServerExtensionFactory().process_request_params([], [])


# PerMessageDeflate.


def test_extension_attributes() -> None:
    settings = {"level": 3}
    ext = PerMessageDeflate(True, False, 10, 12, settings)
    assert ext.name == "permessage-deflate"
    assert attrs(ext) == (True, False, 10, 12)
    assert ext.compress_settings == {"level": 3}
    settings["level"] = 9
    assert ext.compress_settings == {"level": 3}, "settings must be copied"
    assert PerMessageDeflate(False, False, 15, 15).compress_settings == {}


def test_extension_repr() -> None:
    ext = PerMessageDeflate(False, True, 9, 15)
    assert repr(ext) == (
        "PerMessageDeflate(remote_no_context_takeover=False, "
        "local_no_context_takeover=True, remote_max_window_bits=9, "
        "local_max_window_bits=15)"
    )


@pytest.mark.parametrize("bits", [8, 9, 12, 15])
def test_extension_accepts_window_bits(bits: int) -> None:
    ext = PerMessageDeflate(False, False, bits, bits)
    assert ext.remote_max_window_bits == ext.local_max_window_bits == bits


@pytest.mark.parametrize("bits", [-1, 0, 7, 16, 32])
def test_extension_rejects_remote_window_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="remote_max_window_bits must be between 8 and 15"):
        PerMessageDeflate(False, False, bits, 15)


@pytest.mark.parametrize("bits", [-1, 0, 7, 16, 32])
def test_extension_rejects_local_window_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="local_max_window_bits must be between 8 and 15"):
        PerMessageDeflate(False, False, 15, bits)


BAD_COMPRESS_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"wbits": 10}, "must not include wbits"),
    ({"wbits": -15, "level": 1}, "must not include wbits"),
    ({"strategy": 1}, "unsupported compress_settings: strategy"),
    ({"strategy": 1, "wait": 8}, "unsupported compress_settings: strategy, wait"),
    ({"memLevel": 0}, "memLevel must be an integer between 1 and 9"),
    ({"memLevel": 10}, "memLevel must be an integer between 1 and 9"),
    ({"memLevel": True}, "memLevel must be an integer between 1 and 9"),
    ({"level": 10}, "level must be an integer between 0 and 9"),
    ({"level": -1}, "level must be an integer between 0 and 9"),
    ({"level": -2}, "level must be an integer between 0 and 9"),
    ({"level": "6"}, "level must be an integer between 0 and 9"),
    ({"level": 6.0}, "level must be an integer between 0 and 9"),
    ({"level": None}, "level must be an integer between 0 and 9"),
    ({"level": True}, "level must be an integer between 0 and 9"),
    ({"threshold": -1}, "threshold must be a non-negative integer"),
    ({"threshold": 1.5}, "threshold must be a non-negative integer"),
    ({"threshold": False}, "threshold must be a non-negative integer"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_COMPRESS_SETTINGS)
def test_compress_settings_rejected_everywhere(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PerMessageDeflate(False, False, 15, 15, settings)
    with pytest.raises(ValueError, match=message):
        ClientPerMessageDeflateFactory(compress_settings=settings)
    with pytest.raises(ValueError, match=message):
        ServerPerMessageDeflateFactory(compress_settings=settings)


@pytest.mark.parametrize(
    "settings",
    [
        None,
        {},
        {"level": 0},
        {"level": 6},
        {"level": 9},
        {"threshold": 0},
        {"threshold": 4096},
        {"memLevel": 1},
        {"memLevel": 9, "level": 1},
    ],
)
def test_compress_settings_accepted(settings: dict[str, Any] | None) -> None:
    ext = PerMessageDeflate(False, False, 15, 15, settings)
    # Every accepted level is one the Rust core accepts too.
    Writer(client=False, **ext.writer_options())


def test_reader_options() -> None:
    assert PerMessageDeflate(True, False, 9, 15).reader_options() == {
        "deflate": True,
        "max_window_bits": 9,
        "no_context_takeover": True,
        "pooled": False,
    }
    # Reading from a peer with an 8-bit window is supported (the inflater may be larger).
    assert PerMessageDeflate(False, True, 8, 8).reader_options() == {
        "deflate": True,
        "max_window_bits": 8,
        "no_context_takeover": False,
        "pooled": False,
    }


def test_writer_options() -> None:
    assert PerMessageDeflate(True, False, 9, 11).writer_options() == {
        "deflate": True,
        "max_window_bits": 11,
        "no_context_takeover": False,
        "level": 6,
        "mem_level": 8,
        "compress_threshold": DEFAULT_THRESHOLD,
        "pooled": False,
    }
    assert PerMessageDeflate(False, True, 15, 9, {"level": 1}).writer_options() == {
        "deflate": True,
        "max_window_bits": 9,
        "no_context_takeover": True,
        "level": 1,
        "mem_level": 8,
        "compress_threshold": DEFAULT_THRESHOLD,
        "pooled": False,
    }


def test_compress_threshold() -> None:
    # Below the threshold messages go out uncompressed (RSV1 clear); from it, compressed.
    writer = Writer(client=False, **PerMessageDeflate(False, False, 15, 15).writer_options())
    assert not writer.message(b"a" * (DEFAULT_THRESHOLD - 1))[0] & 0x40
    assert writer.message(b"a" * DEFAULT_THRESHOLD)[0] & 0x40
    ext = PerMessageDeflate(False, False, 15, 15, {"threshold": 0})
    assert Writer(client=False, **ext.writer_options()).message(b"a")[0] & 0x40
    ext = PerMessageDeflate(False, False, 15, 15, {"threshold": 10_000})
    assert not Writer(client=False, **ext.writer_options()).message(b"a" * 9_999)[0] & 0x40


def test_writer_options_with_8_bit_window_send_uncompressed() -> None:
    ext = PerMessageDeflate(False, True, 15, 8, {"level": 9})
    assert ext.writer_options() == {}
    frame = Writer(client=False, **ext.writer_options()).message(b"a" * 1000)
    assert not frame[0] & 0x40, "RSV1 must not be set"
    assert Reader(client=True, **PerMessageDeflate(True, False, 8, 15).reader_options()).feed(
        frame
    ) == [b"a" * 1000]


# Factories: constructors.


@pytest.mark.parametrize("bits", [None, 8, 9, 15])
def test_client_factory_accepts_window_bits(bits: int | None) -> None:
    factory = ClientPerMessageDeflateFactory(
        server_max_window_bits=bits, client_max_window_bits=bits
    )
    assert factory.server_max_window_bits == bits
    assert factory.client_max_window_bits == bits


def test_client_factory_accepts_bare_client_max_window_bits() -> None:
    factory = ClientPerMessageDeflateFactory(client_max_window_bits=True)
    assert factory.client_max_window_bits is True


def test_client_factory_defaults() -> None:
    factory = ClientPerMessageDeflateFactory()
    assert factory.name == "permessage-deflate"
    assert factory.server_no_context_takeover is False
    assert factory.client_no_context_takeover is False
    assert factory.server_max_window_bits is None
    assert factory.client_max_window_bits is None
    assert factory.compress_settings is None


@pytest.mark.parametrize("bits", [-1, 0, 7, 16, True, False])
def test_client_factory_rejects_server_max_window_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="server_max_window_bits must be between 8 and 15"):
        ClientPerMessageDeflateFactory(server_max_window_bits=bits)


@pytest.mark.parametrize("bits", [-1, 0, 7, 16, False])
def test_client_factory_rejects_client_max_window_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="client_max_window_bits must be between 8 and 15"):
        ClientPerMessageDeflateFactory(client_max_window_bits=bits)


@pytest.mark.parametrize("bits", [None, 8, 9, 15])
def test_server_factory_accepts_window_bits(bits: int | None) -> None:
    factory = ServerPerMessageDeflateFactory(
        server_max_window_bits=bits, client_max_window_bits=bits
    )
    assert factory.server_max_window_bits == bits
    assert factory.client_max_window_bits == bits


@pytest.mark.parametrize("bits", [-1, 0, 7, 16, True])
def test_server_factory_rejects_server_max_window_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="server_max_window_bits must be between 8 and 15"):
        ServerPerMessageDeflateFactory(server_max_window_bits=bits)


@pytest.mark.parametrize("bits", [-1, 0, 7, 16, True])
def test_server_factory_rejects_client_max_window_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="client_max_window_bits must be between 8 and 15"):
        ServerPerMessageDeflateFactory(client_max_window_bits=bits)


# Client: request parameters.

CLIENT_OPTIONS: list[dict[str, Any]] = [
    {
        "server_no_context_takeover": snct,
        "client_no_context_takeover": cnct,
        "server_max_window_bits": s_bits,
        "client_max_window_bits": c_bits,
    }
    for snct, cnct, s_bits, c_bits in itertools.product(
        [False, True], [False, True], [None, 8, 10, 15], [None, True, 8, 12, 15]
    )
]


@pytest.mark.parametrize("options", CLIENT_OPTIONS)
def test_get_request_params(options: dict[str, Any]) -> None:
    expected: list[ExtensionParameter] = []
    if options["server_no_context_takeover"]:
        expected.append(SNCT)
    if options["client_no_context_takeover"]:
        expected.append(CNCT)
    if options["server_max_window_bits"] is not None:
        expected.append(smwb(options["server_max_window_bits"]))
    if options["client_max_window_bits"] is True:
        expected.append(CMWB)
    elif options["client_max_window_bits"] is not None:
        expected.append(cmwb(options["client_max_window_bits"]))
    params = ClientPerMessageDeflateFactory(**options).get_request_params()
    assert params == expected
    # The offer survives the Sec-WebSocket-Extensions header.
    header = build_extension_list([("permessage-deflate", params)])
    assert parse_extension_list(header) == [("permessage-deflate", params)]


@pytest.mark.parametrize(
    ("options", "header"),
    [
        ({}, "permessage-deflate"),
        ({"client_max_window_bits": True}, "permessage-deflate; client_max_window_bits"),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 12,
                "client_max_window_bits": 10,
            },
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12; client_max_window_bits=10",
        ),
    ],
)
def test_request_header(options: dict[str, Any], header: str) -> None:
    factory = ClientPerMessageDeflateFactory(**options)
    assert build_extension_list([(factory.name, factory.get_request_params())]) == header


# Client: response parameters (RFC 7692 §7.1).

CLIENT_ACCEPTS: list[tuple[dict[str, Any], list[ExtensionParameter], Attrs]] = [
    ({}, [], (False, False, 15, 15)),
    # The server may reset its context, or ask the client to, without being asked.
    ({}, [SNCT], (True, False, 15, 15)),
    ({}, [CNCT], (False, True, 15, 15)),
    ({}, [SNCT, CNCT], (True, True, 15, 15)),
    # The client may reset its context even if the server did not ask.
    ({"client_no_context_takeover": True}, [], (False, True, 15, 15)),
    ({"client_no_context_takeover": True}, [CNCT], (False, True, 15, 15)),
    ({"server_no_context_takeover": True}, [SNCT], (True, False, 15, 15)),
    # The server may limit its own window without being asked.
    ({}, [smwb(10)], (False, False, 10, 15)),
    ({}, [smwb(8)], (False, False, 8, 15)),
    ({}, [smwb(15)], (False, False, 15, 15)),
    # server_max_window_bits asked: the same or a smaller value.
    ({"server_max_window_bits": 12}, [smwb(12)], (False, False, 12, 15)),
    ({"server_max_window_bits": 12}, [smwb(9)], (False, False, 9, 15)),
    ({"server_max_window_bits": 8}, [smwb(8)], (False, False, 8, 15)),
    # client_max_window_bits offered without a value: the server picks any value, or none.
    ({"client_max_window_bits": True}, [], (False, False, 15, 15)),
    ({"client_max_window_bits": True}, [cmwb(8)], (False, False, 15, 8)),
    ({"client_max_window_bits": True}, [cmwb(11)], (False, False, 15, 11)),
    ({"client_max_window_bits": True}, [cmwb(15)], (False, False, 15, 15)),
    # client_max_window_bits offered with a value: absent means the offered value.
    ({"client_max_window_bits": 12}, [], (False, False, 15, 12)),
    ({"client_max_window_bits": 12}, [cmwb(12)], (False, False, 15, 12)),
    ({"client_max_window_bits": 12}, [cmwb(9)], (False, False, 15, 9)),
    ({"client_max_window_bits": 8}, [], (False, False, 15, 8)),
    # Quoted values arrive unescaped, as plain strings.
    ({"server_max_window_bits": 10}, [("server_max_window_bits", "10")], (False, False, 10, 15)),
    # Everything at once, in another order than the client's.
    (
        {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 10,
            "client_max_window_bits": 11,
        },
        [cmwb(9), smwb(10), CNCT, SNCT],
        (True, True, 10, 9),
    ),
]


@pytest.mark.parametrize(("options", "params", "expected"), CLIENT_ACCEPTS)
def test_process_response_params(
    options: dict[str, Any], params: list[ExtensionParameter], expected: Attrs
) -> None:
    ext = ClientPerMessageDeflateFactory(**options).process_response_params(params, [])
    assert isinstance(ext, PerMessageDeflate)
    assert attrs(ext) == expected
    assert ext.compress_settings == {}


def test_process_response_params_passes_compress_settings() -> None:
    factory = ClientPerMessageDeflateFactory(compress_settings={"level": 2})
    ext = factory.process_response_params([], [])
    assert ext.compress_settings == {"level": 2}
    assert ext.writer_options()["level"] == 2


def test_process_response_params_ignores_other_accepted_extensions() -> None:
    ext = ClientPerMessageDeflateFactory().process_response_params([], [OtherExtension()])
    assert attrs(ext) == (False, False, 15, 15)


def test_process_response_params_rejects_duplicate_extension() -> None:
    accepted = [OtherExtension(), PerMessageDeflate(False, False, 15, 15)]
    with pytest.raises(NegotiationError, match="received duplicate permessage-deflate"):
        ClientPerMessageDeflateFactory().process_response_params([], accepted)


TRUE: dict[str, Any] = {"client_max_window_bits": True}
BAD_SERVER_WINDOW_BITS = ["7", "16", "0", "08", "010", "015", "100", "", "+9", " 9", "9 ", "1e1"]
BAD_SERVER_WINDOW_BITS.append("\uff11\uff10")  # fullwidth "10"

CLIENT_REJECTS: list[tuple[dict[str, Any], list[ExtensionParameter], type[Exception], str]] = [
    # Unknown parameters.
    ({}, [("foo", None)], InvalidParameterName, "invalid parameter name: foo"),
    ({}, [SNCT, ("foo", "1")], InvalidParameterName, "invalid parameter name: foo"),
    ({}, [("permessage-deflate", None)], InvalidParameterName, "permessage-deflate"),
    # Duplicate parameters.
    ({}, [SNCT, SNCT], DuplicateParameter, "duplicate parameter: server_no_context_takeover"),
    ({}, [CNCT, CNCT], DuplicateParameter, "duplicate parameter: client_no_context_takeover"),
    ({}, [smwb(10), smwb(10)], DuplicateParameter, "server_max_window_bits"),
    (TRUE, [cmwb(10), cmwb(11)], DuplicateParameter, "client_max_window_bits"),
    # Values where none is allowed.
    ({}, [("server_no_context_takeover", "1")], InvalidParameterValue, "server_no_context"),
    ({}, [("client_no_context_takeover", "")], InvalidParameterValue, "empty value"),
    # Missing values.
    ({}, [("server_max_window_bits", None)], InvalidParameterValue, "missing value"),
    (TRUE, [CMWB], InvalidParameterValue, "missing value for parameter client_max_window_bits"),
    ({}, [CMWB], InvalidParameterValue, "missing value for parameter client_max_window_bits"),
    # Values out of range or not in the grammar (leading zeros, signs, spaces, non-ASCII).
    *[
        ({}, [smwb(value)], InvalidParameterValue, "server_max_window_bits")
        for value in BAD_SERVER_WINDOW_BITS
    ],
    *[
        (TRUE, [cmwb(value)], InvalidParameterValue, "client_max_window_bits")
        for value in ["7", "16", "0", "09", "010", "", "-9", "x"]
    ],
    # server_no_context_takeover asked and not granted.
    (
        {"server_no_context_takeover": True},
        [],
        NegotiationError,
        "expected server_no_context_takeover",
    ),
    (
        {"server_no_context_takeover": True},
        [CNCT],
        NegotiationError,
        "expected server_no_context_takeover",
    ),
    # server_max_window_bits asked and missing or larger.
    ({"server_max_window_bits": 10}, [], NegotiationError, "expected server_max_window_bits"),
    (
        {"server_max_window_bits": 10},
        [smwb(11)],
        NegotiationError,
        "unsupported server_max_window_bits",
    ),
    (
        {"server_max_window_bits": 8},
        [smwb(15)],
        NegotiationError,
        "unsupported server_max_window_bits",
    ),
    # client_max_window_bits not offered, or larger than offered.
    ({}, [cmwb(10)], NegotiationError, "unexpected client_max_window_bits"),
    ({}, [cmwb(15)], NegotiationError, "unexpected client_max_window_bits"),
    (
        {"client_max_window_bits": 10},
        [cmwb(11)],
        NegotiationError,
        "unsupported client_max_window_bits",
    ),
    (
        {"client_max_window_bits": 8},
        [cmwb(15)],
        NegotiationError,
        "unsupported client_max_window_bits",
    ),
]


@pytest.mark.parametrize(("options", "params", "error", "message"), CLIENT_REJECTS)
def test_process_response_params_rejects(
    options: dict[str, Any],
    params: list[ExtensionParameter],
    error: type[Exception],
    message: str,
) -> None:
    factory = ClientPerMessageDeflateFactory(**options)
    with pytest.raises(error, match=message) as exc_info:
        factory.process_response_params(params, [])
    assert type(exc_info.value) is error


def test_parameter_errors_carry_name_and_value() -> None:
    factory = ClientPerMessageDeflateFactory()
    with pytest.raises(InvalidParameterValue) as value_info:
        factory.process_response_params([smwb("08")], [])
    assert (value_info.value.name, value_info.value.value) == ("server_max_window_bits", "08")
    with pytest.raises(InvalidParameterName) as name_info:
        factory.process_response_params([("bar", "1")], [])
    assert name_info.value.name == "bar"
    with pytest.raises(DuplicateParameter) as duplicate_info:
        factory.process_response_params([CNCT, CNCT], [])
    assert duplicate_info.value.name == "client_no_context_takeover"


# Server: request parameters (RFC 7692 §7.1).

SERVER_ACCEPTS: list[
    tuple[dict[str, Any], list[ExtensionParameter], list[ExtensionParameter], Attrs]
] = [
    ({}, [], [], (False, False, 15, 15)),
    # no_context_takeover: echoed when asked, forced when configured.
    ({}, [SNCT], [SNCT], (False, True, 15, 15)),
    ({}, [CNCT], [CNCT], (True, False, 15, 15)),
    ({"server_no_context_takeover": True}, [], [SNCT], (False, True, 15, 15)),
    ({"server_no_context_takeover": True}, [SNCT], [SNCT], (False, True, 15, 15)),
    ({"client_no_context_takeover": True}, [], [CNCT], (True, False, 15, 15)),
    ({"client_no_context_takeover": True}, [CNCT], [CNCT], (True, False, 15, 15)),
    (
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        [],
        [SNCT, CNCT],
        (True, True, 15, 15),
    ),
    # server_max_window_bits, not configured: the offer is accepted as is.
    ({}, [smwb(10)], [smwb(10)], (False, False, 15, 10)),
    ({}, [smwb(8)], [smwb(8)], (False, False, 15, 8)),
    ({}, [smwb(15)], [smwb(15)], (False, False, 15, 15)),
    # server_max_window_bits configured N: none → N, M > N → N, M <= N → M.
    ({"server_max_window_bits": 11}, [], [smwb(11)], (False, False, 15, 11)),
    ({"server_max_window_bits": 11}, [smwb(13)], [smwb(11)], (False, False, 15, 11)),
    ({"server_max_window_bits": 11}, [smwb(11)], [smwb(11)], (False, False, 15, 11)),
    ({"server_max_window_bits": 11}, [smwb(9)], [smwb(9)], (False, False, 15, 9)),
    ({"server_max_window_bits": 8}, [smwb(15)], [smwb(8)], (False, False, 15, 8)),
    # client_max_window_bits, not configured: absent or bare → not limited; M → echoed.
    ({}, [CMWB], [], (False, False, 15, 15)),
    ({}, [cmwb(10)], [cmwb(10)], (False, False, 10, 15)),
    ({}, [cmwb(8)], [cmwb(8)], (False, False, 8, 15)),
    # client_max_window_bits configured N: bare → N, M > N → N, M <= N → M.
    ({"client_max_window_bits": 11}, [CMWB], [cmwb(11)], (False, False, 11, 15)),
    ({"client_max_window_bits": 11}, [cmwb(13)], [cmwb(11)], (False, False, 11, 15)),
    ({"client_max_window_bits": 11}, [cmwb(11)], [cmwb(11)], (False, False, 11, 15)),
    ({"client_max_window_bits": 11}, [cmwb(9)], [cmwb(9)], (False, False, 9, 15)),
    ({"client_max_window_bits": 8}, [CMWB], [cmwb(8)], (False, False, 8, 15)),
    # Quoted values arrive unescaped.
    ({}, [("server_max_window_bits", "12")], [smwb(12)], (False, False, 15, 12)),
    # Everything: the response always lists parameters in the same order.
    (
        {"server_max_window_bits": 12, "client_max_window_bits": 10},
        [cmwb(14), smwb(9), CNCT, SNCT],
        [SNCT, CNCT, smwb(9), cmwb(10)],
        (True, True, 10, 9),
    ),
]


@pytest.mark.parametrize(("options", "params", "response", "expected"), SERVER_ACCEPTS)
def test_process_request_params(
    options: dict[str, Any],
    params: list[ExtensionParameter],
    response: list[ExtensionParameter],
    expected: Attrs,
) -> None:
    factory = ServerPerMessageDeflateFactory(**options)
    assert factory.name == "permessage-deflate"
    actual, ext = factory.process_request_params(params, [])
    assert actual == response
    assert isinstance(ext, PerMessageDeflate)
    assert attrs(ext) == expected
    assert ext.compress_settings == {}


def test_process_request_params_passes_compress_settings() -> None:
    factory = ServerPerMessageDeflateFactory(compress_settings={"level": 0})
    _, ext = factory.process_request_params([], [])
    assert ext.compress_settings == {"level": 0}
    assert ext.writer_options()["level"] == 0


def test_process_request_params_ignores_other_accepted_extensions() -> None:
    response, ext = ServerPerMessageDeflateFactory().process_request_params([], [OtherExtension()])
    assert response == []
    assert attrs(ext) == (False, False, 15, 15)


def test_process_request_params_skips_duplicate_extension() -> None:
    accepted = [PerMessageDeflate(False, False, 15, 15)]
    with pytest.raises(NegotiationError, match="skipped duplicate permessage-deflate"):
        ServerPerMessageDeflateFactory().process_request_params([], accepted)


SERVER_REJECTS: list[tuple[dict[str, Any], list[ExtensionParameter], type[Exception], str]] = [
    ({}, [("foo", None)], InvalidParameterName, "invalid parameter name: foo"),
    ({}, [("x", "1"), SNCT], InvalidParameterName, "invalid parameter name: x"),
    ({}, [SNCT, SNCT], DuplicateParameter, "server_no_context_takeover"),
    ({}, [CNCT, CNCT], DuplicateParameter, "client_no_context_takeover"),
    ({}, [smwb(9), smwb(10)], DuplicateParameter, "server_max_window_bits"),
    ({}, [CMWB, CMWB], DuplicateParameter, "client_max_window_bits"),
    ({}, [CMWB, cmwb(10)], DuplicateParameter, "client_max_window_bits"),
    ({}, [("server_no_context_takeover", "x")], InvalidParameterValue, "server_no_context"),
    ({}, [("client_no_context_takeover", "1")], InvalidParameterValue, "client_no_context"),
    ({}, [("server_max_window_bits", None)], InvalidParameterValue, "missing value"),
    *[
        ({}, [smwb(value)], InvalidParameterValue, "server_max_window_bits")
        for value in ["7", "16", "0", "09", "010", "", "abc"]
    ],
    *[
        ({}, [cmwb(value)], InvalidParameterValue, "client_max_window_bits")
        for value in ["7", "16", "0", "010", "", "15.0"]
    ],
    # RFC 7692 §7.1.2.2: the client's window may only be limited if it offered the parameter.
    ({"client_max_window_bits": 10}, [], NegotiationError, "required client_max_window_bits"),
    (
        {"client_max_window_bits": 10},
        [SNCT, smwb(10)],
        NegotiationError,
        "required client_max_window_bits",
    ),
]


@pytest.mark.parametrize(("options", "params", "error", "message"), SERVER_REJECTS)
def test_process_request_params_rejects(
    options: dict[str, Any],
    params: list[ExtensionParameter],
    error: type[Exception],
    message: str,
) -> None:
    factory = ServerPerMessageDeflateFactory(**options)
    with pytest.raises(error, match=message) as exc_info:
        factory.process_request_params(params, [])
    assert type(exc_info.value) is error


# Negotiation, then the Rust codec.


def negotiate(
    client_factory: ClientPerMessageDeflateFactory,
    server_factory: ServerPerMessageDeflateFactory,
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """Run a negotiation; return the client's and the server's extensions."""
    response, server_ext = server_factory.process_request_params(
        client_factory.get_request_params(), []
    )
    client_ext = client_factory.process_response_params(response, [])
    # Each side reads what the other writes.
    assert client_ext.local_no_context_takeover == server_ext.remote_no_context_takeover
    assert client_ext.remote_no_context_takeover == server_ext.local_no_context_takeover
    assert client_ext.local_max_window_bits == server_ext.remote_max_window_bits
    assert client_ext.remote_max_window_bits == server_ext.local_max_window_bits
    return client_ext, server_ext


def parse_frame(data: bytes) -> tuple[bool, bytes]:
    """Return RSV1 and the unmasked payload of a single final frame."""
    assert data[0] & 0x80, "FIN must be set"
    length = data[1] & 0x7F
    pos = 2
    if length == 126:
        length, pos = int.from_bytes(data[2:4], "big"), 4
    elif length == 127:
        length, pos = int.from_bytes(data[2:10], "big"), 10
    payload = data[pos:]
    if data[1] & 0x80:
        payload = apply_mask(payload[4:], payload[:4])
    assert len(payload) == length
    return bool(data[0] & 0x40), payload


class ZlibPeer:
    """Decode frames with Python's zlib, to check the writer independently of the reader."""

    def __init__(self, ext: PerMessageDeflate) -> None:
        # The receiver's view: what the sender negotiated to compress with.
        self.bits = ext.remote_max_window_bits
        self.no_context_takeover = ext.remote_no_context_takeover
        self.inflater = zlib.decompressobj(wbits=-max(self.bits, 9))

    def decode(self, frame: bytes) -> bytes:
        compressed, payload = parse_frame(frame)
        if not compressed:
            return payload
        assert self.bits > 8, "a peer limited to 8 bits must not receive compressed data"
        if self.no_context_takeover:
            self.inflater = zlib.decompressobj(wbits=-self.bits)
        data = self.inflater.decompress(payload + TAIL)
        assert not self.inflater.unconsumed_tail
        return data


_rng = random.Random(7692)
NOISE = bytes(_rng.getrandbits(8) for _ in range(3000))
MESSAGES: list[str | bytes] = [
    "",
    "Hello, world!",
    "Hello, world!",
    "é€😀" * 500,
    b"",
    b"\x00\xff" * 50,
    NOISE[:200],
    NOISE[:200],
    NOISE,
    NOISE,
    NOISE[:300] * 4,
    b"a" * 100_000,
    bytes(_rng.getrandbits(8) for _ in range(70_000)),
]


def encode(message: str | bytes) -> bytes:
    return message.encode() if isinstance(message, str) else message


def check_codec(client_ext: PerMessageDeflate, server_ext: PerMessageDeflate) -> None:
    """Send every message in both directions through the Rust writer and reader."""
    directions = [
        (client_ext, server_ext, True),  # client → server
        (server_ext, client_ext, False),  # server → client
    ]
    for sender, receiver, client in directions:
        writer = Writer(client=client, **sender.writer_options())
        reader = Reader(client=not client, max_size=None, **receiver.reader_options())
        fragmented_reader = Reader(client=not client, max_size=None, **receiver.reader_options())
        peer = ZlibPeer(receiver)
        compressed_sizes = []
        for message in MESSAGES:
            frame = writer.message(message)
            assert reader.feed(frame) == [message]
            assert peer.decode(frame) == encode(message)
            compressed, payload = parse_frame(frame)
            if sender.local_max_window_bits == 8:
                assert not compressed
            compressed_sizes.append(len(payload))
        # Fragmented messages, fed in small chunks.
        writer = Writer(client=client, **sender.writer_options())
        for message in MESSAGES[:10]:
            data = writer.message(message, fragment_size=100)
            events: list[object] = []
            for i in range(0, len(data), 777):
                events.extend(fragmented_reader.feed(data[i : i + 777]))
            assert events == [message]
        # A repeated short message costs less only with context takeover.
        if sender.local_max_window_bits > 8:
            first, second = compressed_sizes[6], compressed_sizes[7]
            if sender.local_no_context_takeover:
                assert second == first
            else:
                assert second < first


WINDOW_BITS = list(range(8, 16))


@pytest.mark.parametrize("bits", WINDOW_BITS)
@pytest.mark.parametrize("server_nct", [False, True])
@pytest.mark.parametrize("client_nct", [False, True])
def test_codec_with_window_bits_asked_by_client(
    bits: int, server_nct: bool, client_nct: bool
) -> None:
    client_factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
        server_max_window_bits=bits,
        client_max_window_bits=bits,
    )
    client_ext, server_ext = negotiate(client_factory, ServerPerMessageDeflateFactory())
    assert attrs(client_ext) == (server_nct, client_nct, bits, bits)
    assert attrs(server_ext) == (client_nct, server_nct, bits, bits)
    check_codec(client_ext, server_ext)


@pytest.mark.parametrize("bits", WINDOW_BITS)
@pytest.mark.parametrize("server_nct", [False, True])
@pytest.mark.parametrize("client_nct", [False, True])
def test_codec_with_window_bits_imposed_by_server(
    bits: int, server_nct: bool, client_nct: bool
) -> None:
    server_factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
        server_max_window_bits=bits,
        client_max_window_bits=bits,
        compress_settings={"level": 9},
    )
    client_factory = ClientPerMessageDeflateFactory(
        client_max_window_bits=True, compress_settings={"level": 1}
    )
    client_ext, server_ext = negotiate(client_factory, server_factory)
    assert attrs(client_ext) == (server_nct, client_nct, bits, bits)
    assert attrs(server_ext) == (client_nct, server_nct, bits, bits)
    check_codec(client_ext, server_ext)


@pytest.mark.parametrize(("client_bits", "server_bits"), [(8, 15), (15, 8), (9, 14), (12, 10)])
def test_codec_with_different_windows(client_bits: int, server_bits: int) -> None:
    client_ext, server_ext = negotiate(
        ClientPerMessageDeflateFactory(
            server_max_window_bits=server_bits, client_max_window_bits=True
        ),
        ServerPerMessageDeflateFactory(client_max_window_bits=client_bits),
    )
    assert client_ext.local_max_window_bits == client_bits
    assert client_ext.remote_max_window_bits == server_bits
    check_codec(client_ext, server_ext)


def test_writer_window_is_enforced_across_messages() -> None:
    """With a 9-bit window, a message may not refer to data 3000 bytes back."""
    client_ext, server_ext = negotiate(
        ClientPerMessageDeflateFactory(server_max_window_bits=9),
        ServerPerMessageDeflateFactory(),
    )
    writer = Writer(client=False, **server_ext.writer_options())
    inflater = zlib.decompressobj(wbits=-9)
    for _ in range(3):
        _, payload = parse_frame(writer.message(NOISE))
        assert inflater.decompress(payload + TAIL) == NOISE


# Every combination of the factories' options: whenever the server accepts an offer, the
# client accepts the answer, and the two extensions talk to each other.

SERVER_OPTIONS: list[dict[str, Any]] = [
    {
        "server_no_context_takeover": snct,
        "client_no_context_takeover": cnct,
        "server_max_window_bits": s_bits,
        "client_max_window_bits": c_bits,
    }
    for snct, cnct, s_bits, c_bits in itertools.product(
        [False, True], [False, True], [None, 8, 11], [None, 8, 9, 13]
    )
]


@pytest.mark.parametrize("client_options", CLIENT_OPTIONS)
def test_every_negotiation(client_options: dict[str, Any]) -> None:
    client_factory = ClientPerMessageDeflateFactory(**client_options)
    for server_options in SERVER_OPTIONS:
        server_factory = ServerPerMessageDeflateFactory(**server_options)
        if client_options["client_max_window_bits"] is None and (
            server_options["client_max_window_bits"] is not None
        ):
            with pytest.raises(NegotiationError):
                negotiate(client_factory, server_factory)
            continue
        client_ext, server_ext = negotiate(client_factory, server_factory)
        assert client_ext.remote_no_context_takeover == (
            client_options["server_no_context_takeover"]
            or server_options["server_no_context_takeover"]
        )
        assert client_ext.local_no_context_takeover == (
            client_options["client_no_context_takeover"]
            or server_options["client_no_context_takeover"]
        )
        server_limits = [
            bits
            for bits in (
                client_options["server_max_window_bits"],
                server_options["server_max_window_bits"],
            )
            if bits is not None
        ]
        assert client_ext.remote_max_window_bits == min(server_limits, default=15)
        client_limits = [
            bits
            for bits in (
                client_options["client_max_window_bits"],
                server_options["client_max_window_bits"],
            )
            if bits is not None and bits is not True
        ]
        assert client_ext.local_max_window_bits == min(client_limits, default=15)
        for sender, receiver, client in [
            (client_ext, server_ext, True),
            (server_ext, client_ext, False),
        ]:
            writer = Writer(client=client, **sender.writer_options())
            reader = Reader(client=not client, **receiver.reader_options())
            messages: list[str | bytes] = ["café" * 100, NOISE, NOISE]
            for message in messages:
                assert reader.feed(writer.message(message)) == [message]


# Handshake helpers: server.


def server_headers(*values: str) -> Headers:
    return Headers([("Sec-WebSocket-Extensions", value) for value in values])


def test_server_without_offers() -> None:
    factories = [ServerPerMessageDeflateFactory()]
    assert WebSocketServerProtocol.process_extensions(Headers(), factories) == (None, [])


@pytest.mark.parametrize("factories", [None, []])
def test_server_without_factories(factories: list[ServerExtensionFactory] | None) -> None:
    headers = server_headers("permessage-deflate")
    assert WebSocketServerProtocol.process_extensions(headers, factories) == (None, [])


def test_server_accepts_default_offer() -> None:
    headers = server_headers("permessage-deflate; client_max_window_bits")
    header, accepted = WebSocketServerProtocol.process_extensions(
        headers, [ServerPerMessageDeflateFactory()]
    )
    assert header == "permessage-deflate"
    assert [attrs(ext) for ext in accepted] == [(False, False, 15, 15)]


def test_server_first_acceptable_offer_wins() -> None:
    headers = server_headers(
        "permessage-deflate; foo, "
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10, "
        'permessage-deflate; server_max_window_bits="12"; client_max_window_bits, '
        "permessage-deflate"
    )
    header, accepted = WebSocketServerProtocol.process_extensions(
        headers, [ServerPerMessageDeflateFactory(client_max_window_bits=11)]
    )
    assert header == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=11"
    assert [attrs(ext) for ext in accepted] == [(False, False, 11, 12)]


def test_server_declines_unacceptable_offers() -> None:
    headers = server_headers(
        "permessage-deflate; foo", "permessage-deflate; client_max_window_bits=7"
    )
    result = WebSocketServerProtocol.process_extensions(headers, [ServerPerMessageDeflateFactory()])
    assert result == (None, [])


def test_server_declines_offer_without_client_max_window_bits_when_required() -> None:
    headers = server_headers("permessage-deflate; server_no_context_takeover")
    result = WebSocketServerProtocol.process_extensions(
        headers, [ServerPerMessageDeflateFactory(client_max_window_bits=10)]
    )
    assert result == (None, [])


def test_server_first_accepting_factory_wins() -> None:
    headers = server_headers("permessage-deflate")
    header, accepted = WebSocketServerProtocol.process_extensions(
        headers,
        [
            ServerPerMessageDeflateFactory(client_max_window_bits=10),
            ServerPerMessageDeflateFactory(server_max_window_bits=12),
            ServerPerMessageDeflateFactory(server_max_window_bits=9),
        ],
    )
    assert header == "permessage-deflate; server_max_window_bits=12"
    assert [attrs(ext) for ext in accepted] == [(False, False, 15, 12)]


def test_server_ignores_unknown_extensions() -> None:
    headers = server_headers("x-webkit-deflate-frame", "x-foo; bar=1, permessage-deflate")
    header, accepted = WebSocketServerProtocol.process_extensions(
        headers, [ServerPerMessageDeflateFactory()]
    )
    assert header == "permessage-deflate"
    assert len(accepted) == 1
    assert isinstance(accepted[0], PerMessageDeflate)


def test_server_with_several_extensions() -> None:
    headers = server_headers("x-other; foo=1, permessage-deflate; server_no_context_takeover")
    header, accepted = WebSocketServerProtocol.process_extensions(
        headers, [ServerPerMessageDeflateFactory(), OtherServerFactory()]
    )
    assert header == "x-other; foo=1, permessage-deflate; server_no_context_takeover"
    assert isinstance(accepted[0], OtherExtension)
    assert attrs(accepted[1]) == (False, True, 15, 15)


@pytest.mark.parametrize(
    "value",
    ["", "permessage-deflate;", "permessage-deflate; =1", "permessage-deflate; a=1=2", "é"],
)
def test_server_rejects_malformed_header(value: str) -> None:
    with pytest.raises(InvalidHeaderFormat):
        WebSocketServerProtocol.process_extensions(
            server_headers(value), [ServerPerMessageDeflateFactory()]
        )


# Handshake helpers: client.


def test_client_without_extensions_in_response() -> None:
    factories = [ClientPerMessageDeflateFactory()]
    assert WebSocketClientProtocol.process_extensions(Headers(), factories) == []
    assert WebSocketClientProtocol.process_extensions(Headers(), None) == []


@pytest.mark.parametrize("factories", [None, []])
def test_client_without_factories(factories: list[ClientExtensionFactory] | None) -> None:
    with pytest.raises(InvalidHandshake, match="no extensions supported") as exc_info:
        WebSocketClientProtocol.process_extensions(server_headers("permessage-deflate"), factories)
    assert type(exc_info.value) is InvalidHandshake


def test_client_accepts_response() -> None:
    headers = server_headers('permessage-deflate; server_max_window_bits="10"')
    accepted = WebSocketClientProtocol.process_extensions(
        headers, [ClientPerMessageDeflateFactory(server_max_window_bits=12)]
    )
    assert [attrs(ext) for ext in accepted] == [(False, False, 10, 15)]


def test_client_tries_every_factory() -> None:
    accepted = WebSocketClientProtocol.process_extensions(
        server_headers("permessage-deflate"),
        [
            OtherClientFactory(),
            ClientPerMessageDeflateFactory(server_no_context_takeover=True),
            ClientPerMessageDeflateFactory(client_no_context_takeover=True),
        ],
    )
    assert [attrs(ext) for ext in accepted] == [(False, True, 15, 15)]


@pytest.mark.parametrize(
    "value",
    [
        "x-foo",
        "permessage-deflate; foo",
        "permessage-deflate; client_max_window_bits=10",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; server_max_window_bits=16",
    ],
)
def test_client_rejects_response(value: str) -> None:
    with pytest.raises(NegotiationError, match="unsupported extension"):
        WebSocketClientProtocol.process_extensions(
            server_headers(value), [ClientPerMessageDeflateFactory()]
        )


def test_client_rejects_malformed_header() -> None:
    with pytest.raises(InvalidHeaderFormat):
        WebSocketClientProtocol.process_extensions(
            server_headers("permessage-deflate; ;"), [ClientPerMessageDeflateFactory()]
        )


def test_full_handshake_through_headers() -> None:
    client_factories: list[ClientExtensionFactory] = [
        OtherClientFactory(),
        ClientPerMessageDeflateFactory(client_max_window_bits=True, server_max_window_bits=13),
    ]
    request = build_extension_list([(f.name, f.get_request_params()) for f in client_factories])
    assert request == (
        "x-other; foo=1, permessage-deflate; server_max_window_bits=13; client_max_window_bits"
    )
    header, server_accepted = WebSocketServerProtocol.process_extensions(
        server_headers(request),
        [ServerPerMessageDeflateFactory(client_max_window_bits=9), OtherServerFactory()],
    )
    assert header == (
        "x-other; foo=1, permessage-deflate; server_max_window_bits=13; client_max_window_bits=9"
    )
    assert header is not None
    client_accepted = WebSocketClientProtocol.process_extensions(
        server_headers(header), client_factories
    )
    assert isinstance(client_accepted[0], OtherExtension)
    client_ext, server_ext = client_accepted[1], server_accepted[1]
    assert isinstance(client_ext, PerMessageDeflate)
    assert isinstance(server_ext, PerMessageDeflate)
    assert attrs(client_ext) == (False, False, 13, 9)
    assert attrs(server_ext) == (False, False, 9, 13)
    check_codec(client_ext, server_ext)


# compression="deflate" defaults.


def _client_factories(**kwargs: Any) -> list[ClientExtensionFactory] | None:
    extensions: list[ClientExtensionFactory] | None = Connect(
        "ws://localhost/", **kwargs
    )._factory.keywords["extensions"]
    return extensions


def _server_factories(**kwargs: Any) -> list[ServerExtensionFactory] | None:
    async def handler(websocket: object) -> None:  # pragma: no cover
        pass

    extensions: list[ServerExtensionFactory] | None = Serve(
        handler, "localhost", 0, **kwargs
    )._protocol_options["extensions"]
    return extensions


def test_default_compression_negotiates_15_bits_both_ways() -> None:
    client_factories = _client_factories()
    server_factories = _server_factories()
    assert client_factories is not None and server_factories is not None
    (client_factory,) = client_factories
    (server_factory,) = server_factories
    assert isinstance(client_factory, ClientPerMessageDeflateFactory)
    assert isinstance(server_factory, ServerPerMessageDeflateFactory)
    assert client_factory.get_request_params() == [CMWB]
    client_ext, server_ext = negotiate(client_factory, server_factory)
    assert attrs(client_ext) == attrs(server_ext) == (False, False, 15, 15)
    check_codec(client_ext, server_ext)


def test_compression_keeps_explicit_factory() -> None:
    client_factory = ClientPerMessageDeflateFactory(server_max_window_bits=10)
    assert _client_factories(extensions=[client_factory]) == [client_factory]
    server_factory = ServerPerMessageDeflateFactory(server_max_window_bits=10)
    assert _server_factories(extensions=[server_factory]) == [server_factory]


def test_compression_appends_to_other_factories() -> None:
    other = OtherClientFactory()
    factories = _client_factories(extensions=[other])
    assert factories is not None
    assert factories[0] is other
    assert isinstance(factories[1], ClientPerMessageDeflateFactory)


def test_compression_none() -> None:
    assert _client_factories(compression=None) is None
    assert _server_factories(compression=None) is None


def test_compression_unsupported() -> None:
    with pytest.raises(ValueError, match="unsupported compression: gzip"):
        _client_factories(compression="gzip")
    with pytest.raises(ValueError, match="unsupported compression: gzip"):
        _server_factories(compression="gzip")


# The lean setting: no zlib state between messages, bounded windows.


def test_lean_compression_negotiates_12_bits_and_pools() -> None:
    server_factories = _server_factories(compression="lean")
    assert server_factories is not None
    (server_factory,) = server_factories
    assert isinstance(server_factory, ServerPerMessageDeflateFactory)
    assert server_factory.lean
    assert server_factory.server_max_window_bits == LEAN_WINDOW_BITS == 12
    assert server_factory.client_max_window_bits == LEAN_WINDOW_BITS
    # The default client offer (as browsers send it) lets the server choose the client's
    # window.
    client_ext, server_ext = negotiate(
        ClientPerMessageDeflateFactory(client_max_window_bits=True), server_factory
    )
    assert attrs(client_ext) == attrs(server_ext) == (False, False, 12, 12)
    assert server_ext.lean and not client_ext.lean
    assert server_ext.reader_options()["pooled"] is True
    assert server_ext.writer_options()["pooled"] is True
    assert repr(server_ext).endswith("local_max_window_bits=12, lean=True)")
    check_codec(client_ext, server_ext)


def test_lean_server_answers_client_no_context_takeover_without_client_max_window_bits() -> None:
    # RFC 7692 §7.1.1.2: a server may always answer with client_no_context_takeover; the
    # lean server does so rather than decline an offer that does not let it bound the
    # client's window.
    factory = ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, lean=True
    )
    response, server_ext = factory.process_request_params([], [])
    assert response == [CNCT, smwb(12)]
    assert attrs(server_ext) == (True, False, 15, 12)
    client_ext, server_ext = negotiate(ClientPerMessageDeflateFactory(), factory)
    assert attrs(client_ext) == (False, True, 12, 15)
    check_codec(client_ext, server_ext)
    # A client that offers client_no_context_takeover itself keeps it, window bounded.
    client_ext, server_ext = negotiate(
        ClientPerMessageDeflateFactory(client_no_context_takeover=True, client_max_window_bits=9),
        factory,
    )
    assert attrs(server_ext) == (True, False, 9, 12)
    check_codec(client_ext, server_ext)
    # Without lean, the same offer is declined (the existing rule).
    with pytest.raises(NegotiationError, match="required client_max_window_bits"):
        ServerPerMessageDeflateFactory(client_max_window_bits=12).process_request_params([], [])


def test_compression_lean_keeps_explicit_factory() -> None:
    server_factory = ServerPerMessageDeflateFactory(server_max_window_bits=10)
    assert _server_factories(compression="lean", extensions=[server_factory]) == [server_factory]


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_lean_connection_holds_no_zlib_state_between_messages(no_context_takeover: bool) -> None:
    server_ext = PerMessageDeflate(no_context_takeover, no_context_takeover, 12, 12, lean=True)
    client_ext = PerMessageDeflate(no_context_takeover, no_context_takeover, 12, 12)
    server_writer = Writer(client=False, **server_ext.writer_options())
    server_reader = Reader(client=False, **server_ext.reader_options())
    client_writer = Writer(client=True, **client_ext.writer_options())
    client_reader = Reader(client=True, **client_ext.reader_options())
    sizes = []
    for i in range(3):
        message = f"update {i}: " + "the same keys, the same values " * 20
        frame = server_writer.message(message)
        sizes.append(len(frame))
        assert not server_writer.deflater_allocated
        assert client_reader.feed(frame) == [message]
        assert server_reader.feed(client_writer.message(message)) == [message]
        assert not server_reader.inflater_allocated
        # Nothing to free when idle: the states went back to the pool already, and the
        # 16 KiB buffer of the inflated message was not kept (only the small one of the
        # compressed input is).
        assert server_writer.compact() == 0
        assert server_reader.compact() < 4096
    # With context takeover the history still serves as context: the repeated text costs
    # less the second time.
    assert (sizes[1] < sizes[0]) is not no_context_takeover
