"""Logging: header and payload content never reaches logs above DEBUG."""

from __future__ import annotations

import logging

import pytest

import wsrs

from .utils import close_writer, open_raw, read_http_response, run_server, upgrade_request


SECRET = "s3cr3t-t0ken-value"


@pytest.mark.parametrize(
    "headers",
    [
        # An invalid key, then an unsupported version, each carrying the secret.
        [("Sec-WebSocket-Key", SECRET)],
        [("Sec-WebSocket-Version", SECRET)],
    ],
)
async def test_rejected_handshake_logs_no_header_content(
    caplog: pytest.LogCaptureFixture, headers: list[tuple[str, str]]
) -> None:
    caplog.set_level(logging.DEBUG, logger="wsrs")
    async with run_server() as uri:
        reader, writer = await open_raw(uri)
        request, _ = upgrade_request("localhost", "/", key="x" * 24)
        # Replace the default header with the hostile one.
        name, value = headers[0]
        lines = [
            line
            for line in request.decode().split("\r\n")
            if not line.startswith(f"{name}:") and line
        ]
        lines.append(f"{name}: {value}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, _, body = await read_http_response(reader)
        await close_writer(writer)
    assert status in (400, 426)
    above_debug = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    assert above_debug, "the rejection is logged"
    assert not any(SECRET in message for message in above_debug)
    # At DEBUG the details are available for troubleshooting.
    assert any(SECRET in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


async def test_messages_are_not_logged_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wsrs")
    async with run_server() as uri:
        async with wsrs.connect(uri) as ws:
            await ws.send(SECRET)
            assert await ws.recv() == SECRET
    assert not any(SECRET in r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG)
