"""``python -m wsrs``: the interactive client, run as a user would."""

from __future__ import annotations

import asyncio
import sys

import pytest

from wsrs.__main__ import main, printable
from wsrs.asyncio.server import ServerConnection, serve

from .test_connection import uri_of


async def greet_then_echo(connection: ServerConnection) -> None:
    await connection.send("welcome\x1b[2J")
    await connection.send(b"\x00\xff")
    while True:
        message = await connection.recv(decode=True)
        await connection.send("echo: " + message)


async def run_cli(*args: str, stdin: bytes) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsrs",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), 20)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_send_lines_and_print_messages() -> None:
    async with serve(greet_then_echo, "127.0.0.1", 0) as server:
        uri = uri_of(server)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wsrs",
            uri,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None and process.stdout is not None
        lines: list[str] = []
        for word in ["hello", "world"]:
            process.stdin.write(f"{word}\n".encode())
            await process.stdin.drain()
            while True:
                raw = await asyncio.wait_for(process.stdout.readline(), 20)
                assert raw, f"the client exited early after {lines!r}"
                if (line := raw.decode().rstrip("\n")) == f"< echo: {word}":
                    break
                lines.append(line)
        process.stdin.close()
        rest = (await asyncio.wait_for(process.stdout.read(), 20)).decode().splitlines()
        assert await process.wait() == 0
    assert lines[0] == f"Connected to {uri}."
    assert "< welcome\\x1b[2J" in lines
    assert "< (binary) 00ff" in lines
    assert rest == ["Connection closed: 1000."]


async def test_server_closing_ends_the_client() -> None:
    async def bye(connection: ServerConnection) -> None:
        await connection.close(1001, "going")

    async with serve(bye, "127.0.0.1", 0) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wsrs",
            uri_of(server),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 20)
    assert stdout.decode().splitlines()[-1] == "Connection closed: 1001 going."


async def test_connection_failure() -> None:
    status, _, err = await run_cli("ws://127.0.0.1:1/", stdin=b"")
    assert status == 1 and err.startswith("Failed to connect to ws://127.0.0.1:1/")


def test_printable_and_usage() -> None:
    assert printable("a\x00b\x7fc\u00e9") == "a\\x00b\\x7fc\u00e9"
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
