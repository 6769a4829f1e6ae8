"""Smoke test of ``benches/echo_compare.py --quick``: it runs and reports every workload.

Timings are never checked, only that every (library, workload) pair produced a result.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys


SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benches" / "echo_compare.py"
WORKLOADS = ["rt-64B", "rt-1KiB", "rt-64KiB", "rt-1MiB", "pipe-1KiB"]
LIBS = ["wsrs", "websockets"]


def test_echo_compare_quick(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    for workload in WORKLOADS:
        assert workload in rows, done.stdout
        assert rows[workload].rstrip().endswith("x"), rows[workload]  # wsrs/websockets ratio
    report = json.loads(out.read_text())
    measured = {(r["lib"], r["workload"]) for r in report["results"] if len(r["seconds"]) == 1}
    assert measured == {(lib, workload) for lib in LIBS for workload in WORKLOADS}
