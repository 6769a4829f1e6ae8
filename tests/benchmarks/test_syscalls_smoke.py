"""Smoke test of ``benches/syscalls.py``: a server and a client echo under ``strace``, and
the report is the difference of two summaries divided by the extra round trips.

strace is replaced by a stand-in on ``PATH`` that runs the command and writes a summary whose
counts grow by a known amount per round trip, so the arithmetic is checked exactly; one test
runs the real strace where it is installed and allowed to trace.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import stat
import subprocess
import sys

import pytest

from . import BENCHES, run_bench


SCRIPT = BENCHES / "syscalls.py"
# The client's stand-in knows its round trips (--count) and leaves them in a file for the
# server's, which the script stops after the client is done.
FAKE_STRACE = """#!{python}
import os, subprocess, sys
args = sys.argv[1:]
out = args[args.index("-o") + 1]
command = args[args.index("--") + 1:]
done = subprocess.run(command)
shared = os.environ["FAKE_STRACE_COUNT"]
row = "  0.00    0.000000           0 {{calls:>9}} {{errors:>9}} {{name}}\\n"
if any(a.startswith("--role=client") for a in command):
    count = int(next(a for a in command if a.startswith("--count=")).split("=")[1])
    with open(shared, "w") as f:
        f.write(str(count))
    calls = [("epoll_wait", 100 + 2 * count, ""), ("sendto", count, ""), ("recvfrom", count, "")]
else:
    with open(shared) as f:
        count = int(f.read())
    calls = [("epoll_wait", 200 + 3 * count, ""), ("recvfrom", count, "3"), ("sendmsg", count, "")]
with open(out, "w") as f:
    f.write("% time     seconds  usecs/call     calls    errors syscall\\n")
    f.write("------ ----------- ----------- --------- --------- ----------------\\n")
    for name, calls_, errors in calls + [("close", 20, "")]:
        f.write(row.format(calls=calls_, errors=errors, name=name))
    f.write("------ ----------- ----------- --------- --------- ----------------\\n")
    f.write(row.format(calls=sum(c for _, c, _ in calls) + 20, errors="", name="total"))
sys.exit(done.returncode)
"""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_bench(SCRIPT, *args, env=env, timeout=300)


def fake_strace(tmp_path: pathlib.Path, script: str) -> dict[str, str]:
    fake = tmp_path / "strace"
    fake.write_text(script)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return dict(
        os.environ,
        PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
        FAKE_STRACE_COUNT=str(tmp_path / "count"),
    )


def rows(report: str) -> dict[str, tuple[str, str]]:
    """The rows of the report's tables, by system call, without the header's rule."""
    found = re.findall(r"^\| (\S+) \| (\S+) \| (\S+) \|$", report, re.M)
    return {m[0]: (m[1], m[2]) for m in found if m[0] != "---"}


@pytest.mark.parametrize("lib", ["wsrs", "wsrs.asyncio"])
def test_report(tmp_path: pathlib.Path, lib: str) -> None:
    env = fake_strace(tmp_path, FAKE_STRACE.format(python=sys.executable))
    done = run(f"--libs={lib}", "--transports=native", "--count=20", env=env)
    assert done.returncode == 0, done.stderr
    assert f"round trip of rt-32B, {lib}, transport native, loop asyncio" in done.stdout
    assert rows(done.stdout) == {
        "epoll_wait": ("3.00", "2.00"),
        "recvfrom": ("1.00", "1.00"),
        "sendmsg": ("1.00", "0.00"),
        "sendto": ("0.00", "1.00"),
        "**total**": ("**5.00**", "**4.00**"),
    }


def test_churn_report(tmp_path: pathlib.Path) -> None:
    """Per connection: the client opens, echoes once and closes ``N`` then ``2 N`` times."""
    env = fake_strace(tmp_path, FAKE_STRACE.format(python=sys.executable))
    done = run("--libs=wsrs.asyncio", "--workload=churn-64B", "--count=10", env=env)
    assert done.returncode == 0, done.stderr
    for transport in ("asyncio", "native"):
        assert (
            f"per connection of churn-64B, wsrs.asyncio, transport {transport}, loop asyncio; "
            "strace -c -f, 10 and 20 connections" in done.stdout
        )
    assert rows(done.stdout)["**total**"] == ("**5.00**", "**4.00**")


def test_client_failure_is_reported(tmp_path: pathlib.Path) -> None:
    failing = FAKE_STRACE.replace(
        "done = subprocess.run(command)",
        "done = subprocess.run(command)\n"
        "if '--role=client' in command: sys.exit('strace: ptrace: not permitted')",
    )
    env = fake_strace(tmp_path, failing.format(python=sys.executable))
    done = run("--libs=wsrs", "--transports=asyncio", "--count=5", env=env)
    assert done.returncode != 0
    assert "wsrs client failed (status 1)" in done.stderr
    assert "ptrace: not permitted" in done.stderr


def test_server_failure_is_reported(tmp_path: pathlib.Path) -> None:
    env = fake_strace(tmp_path, "#!/bin/sh\nexit 1\n")
    done = run("--libs=wsrs", "--transports=asyncio", env=env)
    assert done.returncode != 0
    assert "wsrs server failed to start (got '')" in done.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [("--libs=ws", "unknown library 'ws'"), ("--transports=tls", "unknown transport 'tls'")],
)
def test_unknown_choices(option: str, message: str) -> None:
    done = run(option)
    assert done.returncode != 0
    assert message in done.stderr


def strace_can_trace() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-f", "-c", "-o", os.devnull, "--", "true"], check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not strace_can_trace(), reason="strace is missing or may not trace")
def test_real_strace() -> None:
    done = run("--libs=wsrs.asyncio", "--transports=native", "--count=20")
    assert done.returncode == 0, done.stderr
    server, client = rows(done.stdout)["**total**"]
    # A round trip costs each end at least a read, a write and a wake-up.
    assert float(server.strip("*")) >= 2.5
    assert float(client.strip("*")) >= 2.5
