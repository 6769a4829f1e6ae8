"""Smoke test of ``benches/echo_compare.py --quick``: it runs and reports every workload.

Timings are never checked, only that every (library, workload) pair that the library supports
produced a result. Peers that are not installed are skipped by the benchmark with a note.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys


SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benches" / "echo_compare.py"
WORKLOADS = [
    "rt-32B",
    "rt-1KiB",
    "rt-64KiB",
    "rt-1MiB",
    "pipe-1KiB",
    "pipe-1MiB",
    "conc-1KiB",
    "churn-64B",
    "deflate-dflt",
    "deflate-L6",
]
DEFLATE = {"deflate-dflt", "deflate-L6"}
NO_DEFLATE = {"picows", "raw"}
# Library name in the benchmark -> module it needs.
LIBS = {
    "wsrs": "wsrs",
    "wsrs-native": "wsrs",
    "wsrs.asyncio": "wsrs.asyncio.server",
    "websockets": "websockets",
    "aiohttp": "aiohttp",
    "picows": "picows",
    "picows.websockets": "picows.websockets",
    "raw": "asyncio",
}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def test_echo_compare_quick(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        # About 60 s on a busy 2-core machine (7 rows, 10 workloads), under the test's 120 s.
        timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    libs = [lib for lib, module in LIBS.items() if installed(module)]
    assert report["libs"] == libs
    for lib in set(LIBS) - set(libs):
        assert f"note: skipped {lib}: " in done.stdout
        assert "pip install" in report["info"]["skipped"][lib]
    expected = {
        (lib, w) for lib in libs for w in WORKLOADS if not (lib in NO_DEFLATE and w in DEFLATE)
    }
    measured = {(r["lib"], r["workload"]) for r in report["results"] if len(r["seconds"]) == 1}
    assert measured == expected
    assert all(r["error"] is None for r in report["results"])
    # Four tables (msg/s, MB/s, ratio to wsrs, ratio to raw), a row per workload in each.
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    for workload in WORKLOADS:
        found = [row for row in rows if row[0] == workload]
        assert len(found) == (4 if "raw" in libs else 3), done.stdout
        ratios = found[2]  # ratio to wsrs: wsrs itself is 1.00x
        assert ratios[1] == "1.00x", ratios
        for lib, cell in zip(libs, ratios[1:], strict=True):
            if (lib, workload) in expected:
                assert cell.endswith("x"), (lib, workload, cell)
            else:
                assert cell == "-", (lib, workload, cell)
