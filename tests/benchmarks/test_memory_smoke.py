"""Smoke test of ``benches/memory.py --quick``: it runs and reports a row per measurement.

Sizes are never checked, only that every (library, configuration) pair produced a figure.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys


SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benches" / "memory.py"
LIBS = ["wsrs", "websockets"]
CONFIGS = ["default"]  # what --quick measures


def test_memory_quick() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--idle", "0.2"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if "skipped:" in done.stdout:  # RLIMIT_NOFILE too low even for --quick
        return
    rows = {
        (fields[0], fields[1]): fields
        for fields in (line.split() for line in done.stdout.splitlines())
        if len(fields) >= 2 and fields[0] in CONFIGS and fields[1] in LIBS
    }
    assert set(rows) == {(config, lib) for config in CONFIGS for lib in LIBS}, done.stdout
    for fields in rows.values():
        float(fields[-4])  # KiB/conn
        float(fields[-3])  # 2nd half
        float(fields[-2])  # idle KiB/conn
        assert fields[-1].endswith("x"), fields  # wsrs/websockets ratio


def test_memory_quick_busy() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--busy", "0.1", "--idle", "0.2"]
        + ["--configs", "lean", "--libs", "wsrs"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if "skipped:" in done.stdout:
        return
    assert "busy KiB/conn" in done.stdout, done.stdout
    (row,) = [line.split() for line in done.stdout.splitlines() if line.startswith("lean ")]
    assert row[:2] == ["lean", "wsrs"] and "s:12,lean" in row, row


def test_memory_ratio() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--ratio", "--configs", "off", "lean", "small"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {
        (fields[0], fields[1]): float(fields[2])
        for fields in (line.split() for line in done.stdout.splitlines())
        if len(fields) == 5 and fields[1] in LIBS
    }
    # lean is wsrs only; compression saves bytes; equal windows compress alike.
    assert ("lean", "websockets") not in rows
    assert rows[("lean", "wsrs")] < rows[("off", "wsrs")] / 2
    assert abs(rows[("small", "wsrs")] - rows[("small", "websockets")]) < 10
