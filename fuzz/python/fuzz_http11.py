"""Fuzz the HTTP/1.1 handshake parsers of wsrs with atheris.

Input: the first byte holds the flags (bit 0: ``eof``, bit 1: pass a ``bytearray`` instead of
``bytes``); the rest is the receive buffer, given to both ``parse_request`` and
``parse_response``.

Checks:

- the only exceptions are ``InvalidMessage`` and ``SecurityError``;
- the number of bytes consumed is between 1 and ``len(buf)``;
- a parsed request serializes, and the serialization parses back, whole, to an equal request.

Run: ``.venv/bin/python fuzz/python/fuzz_http11.py fuzz/python/corpus/http11``
(see ``fuzz/python/README.md``).
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]


with atheris.instrument_imports(include=["wsrs"]):
    from wsrs.exceptions import InvalidMessage, SecurityError
    from wsrs.http11 import parse_request, parse_response


def check_consumed(what: str, consumed: int, buf: bytes | bytearray) -> None:
    if not 0 < consumed <= len(buf):
        raise AssertionError(f"{what} consumed {consumed} bytes of a {len(buf)}-byte buffer")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    flags, payload = data[0], data[1:]
    eof = bool(flags & 1)
    buf: bytes | bytearray = bytearray(payload) if flags & 2 else payload

    try:
        parsed_request = parse_request(buf, eof=eof)
    except (InvalidMessage, SecurityError):
        parsed_request = None
    if parsed_request is not None:
        request, consumed = parsed_request
        check_consumed("parse_request", consumed, buf)
        serialized = request.serialize()
        reparsed = parse_request(serialized)
        if reparsed is None:
            raise AssertionError(f"serialized request is incomplete: {serialized!r}")
        request2, consumed2 = reparsed
        if consumed2 != len(serialized):
            raise AssertionError(f"re-parse consumed {consumed2} of {len(serialized)} bytes")
        if request2 != request:
            raise AssertionError(f"round trip changed the request: {request!r} -> {request2!r}")

    try:
        parsed_response = parse_response(buf, eof=eof)
    except (InvalidMessage, SecurityError):
        parsed_response = None
    if parsed_response is not None:
        check_consumed("parse_response", parsed_response[1], buf)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
