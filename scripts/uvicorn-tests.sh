#!/usr/bin/env bash
# Run uvicorn's own WebSocket tests (tests/protocols/test_websocket.py of uvicorn 0.54.0)
# with wsrs.uvicorn:WebSocketProtocol as the only WebSocket protocol, for every HTTP
# protocol the tests parametrize (h11, httptools, zttp). Usage: bash scripts/uvicorn-tests.sh
# [extra pytest arguments]. Needs network access for pip (the sdist and the test deps).
set -euo pipefail

PYTHON=${PYTHON:-python3}
UVICORN_VERSION=0.54.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# What test_websocket.py and tests/conftest.py import, uvicorn itself pinned.
$PYTHON -m pip install -q "uvicorn==$UVICORN_VERSION" httptools httpx2 websockets wsproto zttp \
    trustme cryptography a2wsgi pytest pytest-mock anyio
$PYTHON -m pip download -q --no-deps --no-binary :all: -d "$WORK" "uvicorn==$UVICORN_VERSION"
tar -xzf "$WORK/uvicorn-$UVICORN_VERSION.tar.gz" -C "$WORK"
SRC="$WORK/uvicorn-$UVICORN_VERSION"

$PYTHON - "$SRC" <<'PY'
import re
import sys
from pathlib import Path

src = Path(sys.argv[1])
# The ws_protocol_cls fixture: wsrs' protocol instead of wsproto and websockets-sansio.
conftest = src / "tests" / "conftest.py"
text = conftest.read_text()
text, count = re.subn(
    r"@pytest\.fixture\(\s*params=\[.*?\]\s*\)\s*(def ws_protocol_cls)",
    r'@pytest.fixture(params=["wsrs.uvicorn:WebSocketProtocol"])\n\1',
    text,
    flags=re.S,
)
assert count == 1, "ws_protocol_cls fixture not found"
conftest.write_text(text)
# Two keepalive tests assert that the protocol is one of uvicorn's classes before reading
# its ping_sent_at / ping_timer: let them accept wsrs' class too (nothing else changes).
tests = src / "tests" / "protocols" / "test_websocket.py"
text = tests.read_text()
old = "isinstance(protocol, (_WSProtocol, WebSocketsSansIOProtocol))"
assert text.count(old) == 2, "keepalive isinstance checks not found"
text = text.replace(old, "isinstance(protocol, (_WSProtocol, WebSocketsSansIOProtocol, WebSocketProtocol))")
text = text.replace(
    "from uvicorn.server import ServerState\n",
    "from uvicorn.server import ServerState\nfrom wsrs.uvicorn import WebSocketProtocol\n",
    1,
)
tests.write_text(text)
PY

cd "$SRC"
# uvicorn's addopts run pytest-xdist with 8 workers: run in one process instead.
PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}" $PYTHON -m pytest -o addopts="-rxXs" \
    -p no:cacheprovider -p no:asyncio tests/protocols/test_websocket.py "$@"
