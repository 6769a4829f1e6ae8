#!/usr/bin/env bash
# The sdist in dist/ builds where there is only Python, pip and a Rust toolchain: pip fetches
# maturin (the build backend named in pyproject.toml) into an isolated build environment,
# compiles the extension from the unpacked sdist, and the result imports in a fresh venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

sdists=(dist/wsrs-*.tar.gz)
[ -e "${sdists[0]}" ] || { echo "no sdist in dist/: run scripts/wheels.sh first" >&2; exit 1; }
scratch="$(mktemp -d "${TMPDIR:-/tmp}/wsrs-sdist.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
"$PYTHON" -m venv "$scratch/venv"
# A target directory of its own: nothing compiled for the source tree is reused.
CARGO_TARGET_DIR="$scratch/target" "$scratch/venv/bin/pip" wheel -q --no-deps \
    -w "$scratch/wheel" "${sdists[0]}"
ls "$scratch/wheel"
"$scratch/venv/bin/pip" install -q "$scratch"/wheel/wsrs-*.whl
(cd "$scratch" && "$scratch/venv/bin/python" -c \
    "import wsrs, wsrs._core; print('built from', '${sdists[0]}:', wsrs.__version__, wsrs._core.__file__)")
