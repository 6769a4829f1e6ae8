"""The one pure-Python reference codec of the tests: RFC 6455 frames and close payloads.

Used by the differential tests of the Rust core and by the raw peers of the socket tests
(``tests/asyncio/utils.py`` builds on it). Deliberately naive: headers are built and parsed
field by field, and masking is a XOR with the key repeated, so that it is obviously right by
reading it against RFC 6455 §5.2, §5.3 and §5.5.1.
"""

from __future__ import annotations

import dataclasses
import struct


OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)
CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
OPCODES = DATA_OPCODES + CONTROL_OPCODES
RESERVED_OPCODES = tuple(op for op in range(16) if op not in OPCODES)


def mask(data: bytes, key: bytes) -> bytes:
    """Octet i of the result is octet i of ``data`` XOR octet i mod 4 of ``key`` (§5.3)."""
    assert len(key) == 4
    if not data:
        return b""
    # The key repeated to the length of the data, XORed as one big integer: the same as a
    # byte loop, fast enough for the megabytes some socket tests send.
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    masked = int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(data), "big")


def encode_header(
    opcode: int,
    length: int,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    key: bytes | None = None,
) -> bytes:
    """Encode a frame header with the minimal length form."""
    b0 = (fin << 7) | (rsv1 << 6) | (rsv2 << 5) | (rsv3 << 4) | opcode
    mask_bit = 0x80 if key is not None else 0
    if length < 126:
        head = bytes([b0, mask_bit | length])
    elif length < 1 << 16:
        head = bytes([b0, mask_bit | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([b0, mask_bit | 127]) + length.to_bytes(8, "big")
    if key is not None:
        assert len(key) == 4
        head += key
    return head


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    key: bytes | None = None,
) -> bytes:
    """Encode a whole frame: header, then the payload (masked when ``key`` is given)."""
    head = encode_header(opcode, len(payload), fin=fin, rsv1=rsv1, rsv2=rsv2, rsv3=rsv3, key=key)
    return head + (mask(payload, key) if key is not None else payload)


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a close frame: the code in network byte order, then the UTF-8 reason
    (§5.5.1)."""
    return struct.pack("!H", code) + reason.encode()


def parse_close(payload: bytes) -> tuple[int, str]:
    """Decode a close payload; an empty one means 1005, no status code (§7.1.5)."""
    if not payload:
        return 1005, ""
    (code,) = struct.unpack("!H", payload[:2])
    return code, payload[2:].decode()


@dataclasses.dataclass(frozen=True)
class Header:
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: int
    key: bytes | None
    length: int
    header_len: int


def parse_header(buf: bytes) -> Header | None:
    """Parse the header at the start of ``buf``; ``None`` when it is incomplete.

    No protocol rule is checked: this only decodes the fields.
    """
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    masked = bool(b1 & 0x80)
    len7 = b1 & 0x7F
    at = 2
    if len7 == 126:
        if len(buf) < at + 2:
            return None
        length = int.from_bytes(buf[at : at + 2], "big")
        at += 2
    elif len7 == 127:
        if len(buf) < at + 8:
            return None
        length = int.from_bytes(buf[at : at + 8], "big")
        at += 8
    else:
        length = len7
    key = None
    if masked:
        if len(buf) < at + 4:
            return None
        key = bytes(buf[at : at + 4])
        at += 4
    return Header(
        fin=bool(b0 & 0x80),
        rsv1=bool(b0 & 0x40),
        rsv2=bool(b0 & 0x20),
        rsv3=bool(b0 & 0x10),
        opcode=b0 & 0x0F,
        key=key,
        length=length,
        header_len=at,
    )
