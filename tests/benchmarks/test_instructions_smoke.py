"""Smoke test of ``benches/instructions.py``: its echo runs every workload, and the report is
the difference of two counts divided by the extra messages.

Valgrind itself is replaced by a stand-in on ``PATH`` that runs the command and reports a
count that grows by a known amount per message, so the arithmetic is checked exactly and
the test takes seconds, not the minutes a real callgrind run takes.
"""

from __future__ import annotations

import os
import pathlib
import re
import stat
import subprocess
import sys

import pytest

from . import BENCHES, run_bench


SCRIPT = BENCHES / "instructions.py"
FAKE_VALGRIND = """#!{python}
import os, subprocess, sys
args = [a for a in sys.argv[1:] if not a.startswith("--callgrind") and a != "--tool=callgrind"]
count = int(next(a for a in args if a.startswith("--count=")).split("=")[1])
done = subprocess.run(args)
# 1,000 for start-up, 7 per message: the report must read 7.
print(f"==1== Collected : {{1000 + 7 * count}}", file=sys.stderr)
sys.exit(done.returncode)
"""


# For --asgi: the server runs until SIGTERM, which the stand-in passes on before it reports.
FAKE_SERVER_VALGRIND = """#!{python}
import signal, subprocess, sys
args = [a for a in sys.argv[1:] if not a.startswith("--callgrind") and a != "--tool=callgrind"]
child = subprocess.Popen(args)
signal.signal(signal.SIGTERM, lambda *_: child.terminate())
child.wait()
print("==1== Collected : 1000", file=sys.stderr)
"""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_bench(SCRIPT, *args, env=env, timeout=120)


@pytest.mark.parametrize(
    "workload", ["rt-32B", "pipe-1KiB", "conc-1KiB", "deflate-dflt", "churn-64B"]
)
@pytest.mark.parametrize("lib", ["wsrs", "wsrs.asyncio"])
def test_child_echoes(lib: str, workload: str) -> None:
    done = run("--role=child", f"--libs={lib}", f"--workloads={workload}", "--count=200")
    assert done.returncode == 0, done.stderr


def test_report(tmp_path: pathlib.Path) -> None:
    fake = tmp_path / "valgrind"
    fake.write_text(FAKE_VALGRIND.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    done = run("--workloads=rt-32B,conc-1KiB", "--count=400", env=env)
    assert done.returncode == 0, done.stderr
    rows = {
        m[0]: m[1:]
        for m in re.findall(r"^\| (\S+) \| (\S+) \| (\S+) \| (\S+) \|$", done.stdout, re.M)
    }
    assert rows["rt-32B"] == ("7", "7", "1.000")
    assert rows["conc-1KiB"] == ("7", "7", "1.000")


def test_churn_not_with_asgi() -> None:
    done = run("--asgi=wsrs", "--workloads=churn-64B")
    assert done.returncode != 0
    assert "not with --asgi" in done.stderr


def test_unknown_workload() -> None:
    done = run("--workloads=rt-2B")
    assert done.returncode != 0
    assert "unknown workload 'rt-2B'" in done.stderr


def test_failure_is_reported(tmp_path: pathlib.Path) -> None:
    fake = tmp_path / "valgrind"
    fake.write_text("#!/bin/sh\necho 'valgrind: no such tool' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    done = run("--workloads=rt-32B", env=env)
    assert done.returncode != 0
    assert "wsrs rt-32B failed (status 1)" in done.stderr
    assert "valgrind: no such tool" in done.stderr


def test_asgi_report(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("uvicorn")
    fake = tmp_path / "valgrind"
    fake.write_text(FAKE_SERVER_VALGRIND.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    done = run("--asgi=wsrs", "--workloads=rt-32B,pipe-1KiB", "--count=50", env=env)
    assert done.returncode == 0, done.stderr
    assert "server instructions per round trip, loop asyncio, client wsrs" in done.stdout
    # The stand-in reports the same count however many messages: 0 per message.
    assert "| rt-32B | 0 |" in done.stdout
    assert "| pipe-1KiB | 0 |" in done.stdout


def test_client_messages() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import instructions
    finally:
        sys.path.remove(str(SCRIPT.parent))
    # Round trips: a tenth more per connection to warm up (at least one each).
    assert instructions.client_messages("rt-32B", 2_000) == 2_200
    assert instructions.client_messages("conc-1KiB", 2_000) == 200 * (10 + 1)
    # Pipelined: at least a window's worth of warm-up.
    assert instructions.client_messages("pipe-1KiB", 4_000) == 4_400
    assert instructions.client_messages("pipe-1KiB", 200) == 300
