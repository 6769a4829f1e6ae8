"""Smoke test of ``benches/scale_idle.py --quick``: 2,000 connections on 2 workers.

Sizes and times are never checked, only that each compression setting produced a row of
figures, that every connection got the message published to all, and that no worker of
the run is left behind.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys


SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benches" / "scale_idle.py"
SETTINGS = ["none", "deflate"]  # what --quick measures by default
COLUMNS = 13  # setting, conns, workers, clients, then 9 figures


def workers_of_script() -> set[int]:
    """The wsrs workers started from the benchmark's app directory."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = pathlib.Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if b"WSRS_WORKER=" in environ and str(SCRIPT.parent).encode() in environ:
            found.add(int(entry))
    return found


def test_scale_idle_quick() -> None:
    before = workers_of_script()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert workers_of_script() <= before
    if "skipped:" in done.stdout:  # RLIMIT_NOFILE too low even for --quick
        return
    rows = {
        fields[0]: fields
        for fields in (line.split() for line in done.stdout.splitlines())
        if fields and fields[0] in SETTINGS
    }
    assert set(rows) == set(SETTINGS), done.stdout
    for fields in rows.values():
        assert len(fields) == COLUMNS, fields
        assert fields[1:4] == ["2000", "2", "2"], fields
        for figure in fields[4:]:
            float(figure)
