"""The README's main command, ``python -m wsrs.demo``, runs and says what it did."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs(transport_kind: str) -> None:
    # On both transports: the demo process inherits WSRS_TRANSPORT.
    result = subprocess.run(
        [sys.executable, "-m", "wsrs.demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("echo server listening on ws://127.0.0.1:")
    assert "text echoed:   'Hello, wsrs!'" in lines
    assert "binary echoed: b'\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07'" in lines
    assert "ping answered by a pong" in lines
    assert any(line.startswith("10000 round trips of 1024 bytes") for line in lines)
    assert lines[-1] == "closed with code 1000"
    assert result.stderr == ""
