#!/usr/bin/env bash
# Build wsrs's sdist and its Linux wheels into dist/, then check each wheel with
# `auditwheel show` and its file name (abi3 for CPython >= 3.11, the platform tag asked for).
#
#   bash scripts/wheels.sh            every Linux target whose Rust standard library is here
#   bash scripts/wheels.sh TARGET...  these targets only; a missing standard library fails
#   bash scripts/wheels.sh sdist      the sdist only
#
# This is the one place that holds the maturin arguments of the Linux wheels: `make wheels`,
# .ci/run and the Linux jobs of .github/workflows/release.yml all call it.
#
# Why `--zig`: zig links against the glibc 2.17 and musl 1.2 it ships, whatever the build
# machine has, so one Debian machine (glibc 2.36) makes manylinux_2_17 and musllinux_1_2
# wheels without a manylinux container (there is no Docker engine here) and for either
# architecture. auditwheel repair could only rename or vendor: it cannot make a library
# built against glibc 2.36 run on an older one. auditwheel is used here to check.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${WSRS_DIST:-dist}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

LINUX_TARGETS=(
    x86_64-unknown-linux-gnu
    aarch64-unknown-linux-gnu
    x86_64-unknown-linux-musl
    aarch64-unknown-linux-musl
)

# The maturin --compatibility and the wheel's platform tag for a Rust target.
compatibility() {
    case "$1" in
        *-linux-gnu) echo manylinux2014 ;;
        *-linux-musl) echo musllinux_1_2 ;;
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}
platform_tag() {
    local arch="${1%%-*}"
    case "$1" in
        *-linux-gnu) echo "manylinux_2_17_$arch" ;;
        *-linux-musl) echo "musllinux_1_2_$arch" ;;
    esac
}
have_std() { [ -d "$(rustc --print sysroot)/lib/rustlib/$1/lib" ]; }

explicit=0
if [ $# -gt 0 ]; then targets=("$@"); explicit=1; else targets=("${LINUX_TARGETS[@]}"); fi

echo "== tools: maturin, zig (ziglang), auditwheel; twine in a virtualenv of its own"
"$PYTHON" -m pip install -q 'maturin>=1.16,<2' 'ziglang>=0.15,<0.18' 'auditwheel>=6.1'
# twine's readme renderer needs a newer docutils than some system tools accept: keep it apart.
TWINE_VENV="${WSRS_TWINE_VENV:-/tmp/wsrs-twine-venv}"
[ -x "$TWINE_VENV/bin/twine" ] || "$PYTHON" -m venv "$TWINE_VENV"
"$TWINE_VENV/bin/pip" install -q 'twine>=6'
"$PYTHON" -m maturin --version
echo "zig $("$PYTHON" -m ziglang version)"

rm -rf "$OUT"
echo "== sdist"
"$PYTHON" -m maturin sdist --out "$OUT"
if [ "$*" = sdist ]; then
    "$TWINE_VENV/bin/twine" check --strict "$OUT"/*
    exit 0
fi

built=()
skipped=()
for target in "${targets[@]}"; do
    compat="$(compatibility "$target")"
    if ! have_std "$target"; then
        if [ "$explicit" = 1 ]; then
            echo "no Rust standard library for $target: rustup target add $target" >&2
            exit 1
        fi
        skipped+=("$target")
        continue
    fi
    echo "== wheel for $target ($compat)"
    "$PYTHON" -m maturin build --release --locked --zig --target "$target" \
        --compatibility "$compat" --out "$OUT"
    built+=("$target")
done

echo "== auditwheel show, file names and tags"
for target in "${built[@]}"; do
    tag="$(platform_tag "$target")"
    wheels=("$OUT"/wsrs-*-cp311-abi3-*"$tag"*.whl)
    if [ ! -e "${wheels[0]}" ]; then
        echo "no cp311-abi3 $tag wheel for $target in $OUT:" >&2
        ls "$OUT" >&2
        exit 1
    fi
    for wheel in "${wheels[@]}"; do
        report="$("$PYTHON" -m auditwheel show "$wheel")"
        echo "$report"
        # auditwheel wraps its lines: join them before looking for the tag.
        if ! tr '\n' ' ' <<<"$report" | grep -q "consistent with the following platform tag: \"$tag\""; then
            echo "auditwheel does not find $wheel consistent with $tag" >&2
            exit 1
        fi
    done
done

echo "== metadata and description as an index checks them (twine check --strict)"
"$TWINE_VENV/bin/twine" check --strict "$OUT"/*

echo "== built into $OUT/"
ls -l "$OUT"
for target in "${skipped[@]}"; do
    echo "SKIPPED $target: no Rust standard library for it on this machine (rustup target add $target)"
done
[ "${#built[@]}" -gt 0 ] || { echo "no wheel was built" >&2; exit 1; }
