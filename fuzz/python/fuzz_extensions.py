"""Fuzz the handshake header parsers of wsrs and permessage-deflate negotiation with atheris.

Input: bytes decoded as UTF-8 with ``surrogateescape``, so any input is a ``str`` (invalid
bytes become lone surrogates). Each parser gets the whole text as one header value, then the
text split on ``"\\n"`` as several header values.

Checks:

- the parsers raise nothing but ``InvalidHeaderFormat``;
- a parsed extension list rebuilt with ``build_extension_list`` parses to the same value, and
  a parsed subprotocol list rebuilt with ``build_subprotocol_list`` too;
- ``ServerPerMessageDeflateFactory.process_request_params`` on the parameters of each parsed
  extension raises nothing but ``NegotiationError`` (and subclasses), for a default factory
  and one with window limits; the response parameters it accepts can be built into a header.

Run: ``.venv/bin/python fuzz/python/fuzz_extensions.py fuzz/python/corpus/extensions``
(see ``fuzz/python/README.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

import atheris  # type: ignore[import-untyped]


with atheris.instrument_imports(include=["wsrs"]):
    from wsrs.exceptions import InvalidHeaderFormat, NegotiationError
    from wsrs.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    from wsrs.headers import (
        ExtensionHeader,
        build_extension_list,
        build_subprotocol_list,
        parse_connection,
        parse_extension_list,
        parse_subprotocol_list,
        parse_upgrade,
    )

_Item = TypeVar("_Item")

FACTORIES = [
    ServerPerMessageDeflateFactory(),
    ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, server_max_window_bits=10, client_max_window_bits=12
    ),
]


def check_extensions(extensions: list[ExtensionHeader]) -> None:
    rebuilt = build_extension_list(extensions)
    reparsed = parse_extension_list(rebuilt)
    if reparsed != extensions:
        raise AssertionError(f"round trip changed {extensions!r} into {reparsed!r}")
    for _, params in extensions:
        for factory in FACTORIES:
            try:
                response, _ = factory.process_request_params(params, [])
            except NegotiationError:
                continue
            build_extension_list([("permessage-deflate", response)])


def check_subprotocols(subprotocols: list[str]) -> None:
    reparsed = parse_subprotocol_list(build_subprotocol_list(subprotocols))
    if reparsed != subprotocols:
        raise AssertionError(f"round trip changed {subprotocols!r} into {reparsed!r}")


def run(
    parse: Callable[[str | Iterable[str]], list[_Item]],
    check: Callable[[list[_Item]], None] | None,
    values: str | list[str],
) -> None:
    try:
        parsed = parse(values)
    except InvalidHeaderFormat:
        return
    if check is not None:
        check(parsed)


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    for values in (text, text.split("\n")):
        run(parse_extension_list, check_extensions, values)
        run(parse_subprotocol_list, check_subprotocols, values)
        run(parse_connection, None, values)
        run(parse_upgrade, None, values)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
