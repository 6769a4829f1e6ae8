#!/usr/bin/env bash
# Build the documentation site into docs/_build/html with Sphinx (furo theme): warnings are
# errors and every cross-reference must resolve (-W --keep-going -n). Installs what it needs:
# Sphinx and furo in a virtualenv of their own (docs/requirements.txt), the standard library's
# inventory from Debian's python3-doc, and the compiled core into python/wsrs if it is not
# built yet (autodoc imports wsrs from python/, never from an install).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${WSRS_DOCS_VENV:-/tmp/wsrs-docs-venv}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -e /usr/share/doc/python3/html/objects.inv ] && command -v apt-get >/dev/null; then
    echo "== python3-doc (the standard library's objects.inv for cross-references)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends python3-doc >/dev/null
fi

[ -x "$VENV/bin/sphinx-build" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q -r docs/requirements.txt

if ! compgen -G "python/wsrs/_core*.so" >/dev/null; then
    echo "== the compiled core into python/wsrs (cargo, release)"
    cargo build --release --locked --features extension-module --lib
    cp target/release/lib_core.so python/wsrs/_core.abi3.so
fi

rm -rf docs/_build
PYTHONPATH="$PWD/python" "$VENV/bin/sphinx-build" -q -n -W --keep-going -b html docs docs/_build/html
echo "docs/_build/html/index.html"
