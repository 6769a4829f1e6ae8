#!/usr/bin/env bash
# Run every test of wsrs: build the Rust extension into this Python, then the Rust unit
# tests and the Python test suite. Works on a fresh clone with Python >= 3.11, pip and a Rust
# toolchain; installs what it needs (maturin, pytest and the test peers) with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== build and install wsrs (maturin, release) with its test dependencies"
"$PYTHON" -m pip install -q -e '.[test]'

echo "== cargo test"
cargo test --quiet

echo "== pytest (with branch coverage of python/wsrs)"
# The whole suite keeps python/wsrs at 100 % of branches; below 99 % is a failure (a run of
# a subset, with arguments, is not held to it).
FAIL_UNDER=()
if [ $# -eq 0 ]; then FAIL_UNDER=(--cov-fail-under=99); fi
"$PYTHON" -m pytest -q --cov=wsrs --cov-branch --cov-report=term:skip-covered "${FAIL_UNDER[@]}" "$@"
