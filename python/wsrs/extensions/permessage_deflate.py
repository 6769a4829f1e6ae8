"""The permessage-deflate extension (RFC 7692).

The negotiation happens here; compression itself runs in the Rust core, configured by
:class:`PerMessageDeflate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
)
from ..headers import ExtensionParameter
from .base import ClientExtensionFactory, Extension, ServerExtensionFactory


__all__ = [
    "ClientPerMessageDeflateFactory",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
]

NAME = "permessage-deflate"

_WINDOW_BITS = re.compile(r"[1-9][0-9]?")  # RFC 7692 §7.1.2.1: 1*DIGIT, no leading zero

DEFAULT_THRESHOLD = 128
"""Messages shorter than this many bytes are sent uncompressed by default.

Measured with zlib-rs at level 6, context takeover, JSON-like text (``/tmp/thresh.py`` in the
notes of the change that set it): compressing costs 6 µs for 8 bytes, 10 µs for 64 and 16 µs
for 128, against 0.15 µs to frame the message uncompressed, and saves at most 52 bytes below
64 bytes and 84 bytes at 128, while a message that small fits in one TCP segment either way.
Set ``compress_settings={"threshold": 0}`` to compress every message, as websockets does.
"""

LEAN_WINDOW_BITS = 12
"""The window size (in bits) of ``compression="lean"``, in both directions when the client
lets the server choose its window (see :class:`ServerPerMessageDeflateFactory`).

A lean connection keeps the last window of data of each direction between messages, so
this bounds what it holds: 4 KiB a direction. Measured on a stream of JSON updates of
400 B to 1.8 KiB (``python benches/memory.py --ratio``), 12-bit windows send 20 % more bytes
than 15-bit ones and 35 % fewer than no context takeover; websockets negotiates 12 bits by
default too.
"""


class PerMessageDeflate(Extension):
    """A negotiated permessage-deflate extension.

    Args:
        remote_no_context_takeover: The peer resets its compressor after each message.
        local_no_context_takeover: This side resets its compressor after each message.
        remote_max_window_bits: Window size (8-15) the peer compresses with.
        local_max_window_bits: Window size (8-15) this side compresses with.
        compress_settings: ``{"level": 0-9, "memLevel": 1-9, "threshold": bytes}``: the
            zlib compression level (default 6) and memory level (default 8, as zlib's
            ``compressobj``), and the size below which messages are sent uncompressed
            (default :data:`DEFAULT_THRESHOLD`).
        lean: Keep no zlib state between messages: each message takes a compressor or
            decompressor from a pool of the thread and gives it back when it ends. With
            context takeover the state is rebuilt from the last window of data (which the
            connection keeps, at most ``2 ** max_window_bits`` bytes a direction) at the
            start of every message; without it, no state is kept between messages anyway.
            Not negotiated: the peer sees the same stream either way.
    """

    name = NAME

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_settings: Mapping[str, Any] | None = None,
        *,
        lean: bool = False,
    ) -> None:
        if not 8 <= remote_max_window_bits <= 15:
            raise ValueError("remote_max_window_bits must be between 8 and 15")
        if not 8 <= local_max_window_bits <= 15:
            raise ValueError("local_max_window_bits must be between 8 and 15")
        _check_compress_settings(compress_settings)
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.compress_settings = dict(compress_settings or {})
        self.lean = lean

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits}"
            + (", lean=True)" if self.lean else ")")
        )

    def reader_options(self) -> dict[str, Any]:
        """Configure the reader to inflate what the peer compressed."""
        return {
            "deflate": True,
            "max_window_bits": self.remote_max_window_bits,
            "no_context_takeover": self.remote_no_context_takeover,
            "pooled": self.lean,
        }

    def writer_options(self) -> dict[str, Any]:
        """Configure the writer to compress with the negotiated parameters.

        zlib cannot compress raw DEFLATE with a 256-byte window; when this side must
        compress with ``max_window_bits=8``, it sends every message uncompressed, which RFC
        7692 §6 allows message by message.
        """
        if self.local_max_window_bits == 8:
            return {}
        return {
            "deflate": True,
            "max_window_bits": self.local_max_window_bits,
            "no_context_takeover": self.local_no_context_takeover,
            "level": self.compress_settings.get("level", 6),
            "mem_level": self.compress_settings.get("memLevel", 8),
            "compress_threshold": self.compress_settings.get("threshold", DEFAULT_THRESHOLD),
            "pooled": self.lean,
        }


def _check_compress_settings(compress_settings: Mapping[str, Any] | None) -> None:
    if compress_settings is None:
        return
    if "wbits" in compress_settings:
        raise ValueError("compress_settings must not include wbits, set max_window_bits instead")
    unknown = set(compress_settings) - {"level", "memLevel", "threshold"}
    if unknown:
        raise ValueError(f"unsupported compress_settings: {', '.join(sorted(unknown))}")
    level = compress_settings.get("level", 6)
    # The Rust core takes 0-9 only (no zlib -1 "default" level); bool is not a level.
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
        raise ValueError("compress_settings level must be an integer between 0 and 9")
    mem_level = compress_settings.get("memLevel", 8)
    if isinstance(mem_level, bool) or not isinstance(mem_level, int) or not 1 <= mem_level <= 9:
        raise ValueError("compress_settings memLevel must be an integer between 1 and 9")
    threshold = compress_settings.get("threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ValueError("compress_settings threshold must be a non-negative integer")


def _check_window_bits(name: str, value: int | None) -> None:
    if value is not None and not 8 <= value <= 15:
        raise ValueError(f"{name} must be between 8 and 15")


def _parse_params(
    params: Sequence[ExtensionParameter], *, is_server: bool
) -> tuple[bool, bool, int | None, int | bool | None]:
    """Parse permessage-deflate parameters (RFC 7692 §7.1).

    Returns:
        ``server_no_context_takeover``, ``client_no_context_takeover``,
        ``server_max_window_bits`` and ``client_max_window_bits`` (``True`` when a client
        offers it without a value).
    """
    server_nct = client_nct = False
    server_mwb: int | None = None
    client_mwb: int | bool | None = None
    seen: set[str] = set()
    for name, value in params:
        # RFC 7692 §7: "A server MUST decline an extension negotiation offer [...] if the
        # negotiation offer contains multiple extension parameters with the same name."
        if name in seen:
            raise DuplicateParameter(name)
        seen.add(name)
        if name == "server_no_context_takeover":
            if value is not None:
                raise InvalidParameterValue(name, value)
            server_nct = True
        elif name == "client_no_context_takeover":
            if value is not None:
                raise InvalidParameterValue(name, value)
            client_nct = True
        elif name == "server_max_window_bits":
            server_mwb = _window_bits(name, value)
        elif name == "client_max_window_bits":
            # RFC 7692 §7.1.2.2: a client may offer it without a value; a server's response
            # must have one.
            client_mwb = True if value is None and is_server else _window_bits(name, value)
        else:
            raise InvalidParameterName(name)
    return server_nct, client_nct, server_mwb, client_mwb


def _window_bits(name: str, value: str | None) -> int:
    if value is None or not _WINDOW_BITS.fullmatch(value) or not 8 <= int(value) <= 15:
        raise InvalidParameterValue(name, value)
    return int(value)


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """Offer permessage-deflate from a client.

    Args:
        server_no_context_takeover: Ask the server to reset its compressor per message.
        client_no_context_takeover: Announce that the client resets its compressor.
        server_max_window_bits: Ask the server to use at most this window (8-15).
        client_max_window_bits: ``True`` to let the server choose the client's window
            (as browsers do), or at most this window (8-15).
        compress_settings: ``{"level": 0-9, "memLevel": 1-9, "threshold": bytes}`` (see
            :class:`PerMessageDeflate`).
    """

    name = NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | bool | None = None,
        compress_settings: Mapping[str, Any] | None = None,
    ) -> None:
        _check_window_bits("server_max_window_bits", server_max_window_bits)
        if client_max_window_bits is not True:
            # 0 and False are out of range too, not "absent" (as in websockets).
            _check_window_bits("client_max_window_bits", client_max_window_bits)
        _check_compress_settings(compress_settings)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = compress_settings

    def get_request_params(self) -> list[ExtensionParameter]:
        """Build the offer."""
        params: list[ExtensionParameter] = []
        if self.server_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            params.append(("server_max_window_bits", str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            params.append(("client_max_window_bits", None))
        elif self.client_max_window_bits is not None:
            params.append(("client_max_window_bits", str(self.client_max_window_bits)))
        return params

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> PerMessageDeflate:
        """Check the server's answer (RFC 7692 §7.1) and build the extension.

        Raises:
            NegotiationError: When the answer breaks RFC 7692 or does not match the offer.
        """
        if any(ext.name == NAME for ext in accepted_extensions):
            raise NegotiationError("received duplicate permessage-deflate")
        server_nct, client_nct, server_mwb, client_mwb = _parse_params(params, is_server=False)

        if self.server_no_context_takeover and not server_nct:
            raise NegotiationError("expected server_no_context_takeover")
        # The client may reset its compressor even if the server did not ask.
        client_nct = client_nct or self.client_no_context_takeover

        if self.server_max_window_bits is not None:
            if server_mwb is None:
                raise NegotiationError("expected server_max_window_bits")
            if server_mwb > self.server_max_window_bits:
                raise NegotiationError("unsupported server_max_window_bits")

        if self.client_max_window_bits is None:
            if client_mwb is not None:
                raise NegotiationError("unexpected client_max_window_bits")
        elif self.client_max_window_bits is not True:
            if client_mwb is None:
                client_mwb = self.client_max_window_bits
            elif isinstance(client_mwb, int) and client_mwb > self.client_max_window_bits:
                raise NegotiationError("unsupported client_max_window_bits")

        return PerMessageDeflate(
            server_nct,
            client_nct,
            server_mwb or 15,
            int(client_mwb or 15),
            self.compress_settings,
        )


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """Accept permessage-deflate on a server.

    Args:
        server_no_context_takeover: Reset the server's compressor after each message.
        client_no_context_takeover: Require the client to reset its compressor.
        server_max_window_bits: Compress with at most this window (8-15).
        client_max_window_bits: Require the client to compress with at most this window;
            offers that don't allow it are declined (with ``lean``, answered with
            ``client_no_context_takeover`` instead).
        compress_settings: ``{"level": 0-9, "memLevel": 1-9, "threshold": bytes}`` (see
            :class:`PerMessageDeflate`).
        lean: Keep no zlib state between messages on the connections (see
            :class:`PerMessageDeflate`), so that a connection holds at most its windows of
            history. An offer that does not let the server bound the client's window (no
            ``client_max_window_bits``) is then accepted with
            ``client_no_context_takeover``, which RFC 7692 lets a server answer with
            always, rather than declined: nothing of the client's stream is kept between
            messages. ``compression="lean"`` is this with :data:`LEAN_WINDOW_BITS`-bit
            windows in both directions.
    """

    name = NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | None = None,
        compress_settings: Mapping[str, Any] | None = None,
        *,
        lean: bool = False,
    ) -> None:
        _check_window_bits("server_max_window_bits", server_max_window_bits)
        _check_window_bits("client_max_window_bits", client_max_window_bits)
        _check_compress_settings(compress_settings)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = compress_settings
        self.lean = lean

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        """Answer one offer (RFC 7692 §7.1).

        Raises:
            NegotiationError: When this offer is not acceptable (the server then declines
                it and may accept another).
        """
        if any(ext.name == NAME for ext in accepted_extensions):
            raise NegotiationError("skipped duplicate permessage-deflate")
        server_nct, client_nct, server_mwb, client_mwb = _parse_params(params, is_server=True)

        server_nct = server_nct or self.server_no_context_takeover
        client_nct = client_nct or self.client_no_context_takeover

        if self.server_max_window_bits is not None:
            if server_mwb is None or server_mwb > self.server_max_window_bits:
                server_mwb = self.server_max_window_bits

        if self.client_max_window_bits is None:
            # "client_max_window_bits" without a value only says the client can take one.
            if client_mwb is True:
                client_mwb = None
        elif client_mwb is None:
            # RFC 7692 §7.1.2.2: without the parameter in the offer, the server must not
            # limit the client's window.
            if not self.lean:
                raise NegotiationError("required client_max_window_bits")
            # §7.1.1.2: "A server MAY include the "client_no_context_takeover" extension
            # parameter in an extension negotiation response even if the extension
            # negotiation offer being accepted by the response didn't include the
            # parameter." The client's window is then unbounded but never kept.
            client_nct = True
        elif client_mwb is True or client_mwb > self.client_max_window_bits:
            client_mwb = self.client_max_window_bits

        response: list[ExtensionParameter] = []
        if server_nct:
            response.append(("server_no_context_takeover", None))
        if client_nct:
            response.append(("client_no_context_takeover", None))
        if server_mwb is not None:
            response.append(("server_max_window_bits", str(server_mwb)))
        if client_mwb is not None:
            response.append(("client_max_window_bits", str(client_mwb)))

        extension = PerMessageDeflate(
            client_nct,
            server_nct,
            int(client_mwb or 15),
            server_mwb or 15,
            self.compress_settings,
            lean=self.lean,
        )
        return response, extension
