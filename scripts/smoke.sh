#!/usr/bin/env bash
# Smoke tests of an installed wsrs wheel: a fresh virtualenv, the wheel from dist/ (or the one
# given), and the part of tests/ that exercises the compiled core and both APIs, run from a
# copy of tests/ in a scratch directory so that `import wsrs` can only find the wheel.
#
#   bash scripts/smoke.sh            the wheel in dist/ that pip finds compatible with $PYTHON
#   bash scripts/smoke.sh WHEEL      this wheel
#
# Used by .ci/run after scripts/wheels.sh, and by each test job of the release workflow.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
SOURCE="$PWD"

# The compiled core (framing, masking, UTF-8, deflate), both front ends over real sockets
# (TCP, Unix, TLS), compression negotiation and broadcast: about 1,000 tests in 30 s.
SMOKE_TESTS=(
    tests/test_version.py
    tests/test_core.py
    tests/test_connection.py
    tests/extensions/test_permessage_deflate.py
    tests/asyncio/test_client.py
    tests/asyncio/test_server.py
    tests/new_api/test_connection.py
    tests/new_api/test_client.py
    tests/new_api/test_server.py
    tests/new_api/test_broadcast.py
)
# What those tests import besides wsrs (websockets is their peer in the interop tests).
SMOKE_REQUIREMENTS=(pytest pytest-asyncio pytest-timeout 'websockets>=14')

scratch="$(mktemp -d "${TMPDIR:-/tmp}/wsrs-smoke.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
"$PYTHON" -m venv "$scratch/venv"
if [ -x "$scratch/venv/bin/python" ]; then
    venv_python="$scratch/venv/bin/python"
else  # Windows
    venv_python="$scratch/venv/Scripts/python.exe"
fi

if [ $# -gt 0 ]; then
    "$venv_python" -m pip install -q "$1"
else
    "$venv_python" -m pip install -q --no-index --only-binary wsrs --find-links dist wsrs
fi
"$venv_python" -m pip install -q "${SMOKE_REQUIREMENTS[@]}"

# Only tests/ and the pytest settings travel: python/ is nowhere on the path.
mkdir "$scratch/run"
cp pyproject.toml "$scratch/run/"
cp -r tests "$scratch/run/"
cd "$scratch/run"

"$venv_python" - "$SOURCE" <<'PY'
import pathlib
import sys

import wsrs
import wsrs._core

source = pathlib.Path(sys.argv[1]).resolve()
for module in (wsrs, wsrs._core):
    path = pathlib.Path(module.__file__ or "").resolve()
    print(f"{module.__name__}: {path}")
    if path.is_relative_to(source):
        sys.exit(f"{module.__name__} was imported from the source tree, not the wheel")
print(f"wsrs {wsrs.__version__}")
PY

# Windows has no Unix sockets: the tests of unix_serve / unix_connect cannot run there.
SELECT=()
case "$(uname -s)" in MINGW* | MSYS* | CYGWIN*) SELECT=(-k "not unix") ;; esac

# The benchmark plugin is not installed here: the settings' addopts would ask for it.
"$venv_python" -m pytest -q -p no:cacheprovider -o addopts=-ra "${SELECT[@]}" "${SMOKE_TESTS[@]}"
