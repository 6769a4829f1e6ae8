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
