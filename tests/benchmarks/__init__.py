"""Smoke tests of the scripts in ``benches/``: they run, and their arithmetic is right."""

from __future__ import annotations

import pathlib
import subprocess
import sys


BENCHES = pathlib.Path(__file__).resolve().parents[2] / "benches"


def run_bench(
    script: pathlib.Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``args`` in a new interpreter; return what it did and printed."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
