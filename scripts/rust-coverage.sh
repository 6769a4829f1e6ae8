#!/usr/bin/env bash
# Line coverage of the Rust core (src/ below lib.rs, without the PyO3 glue) by the Rust unit
# and property tests.
#
# rustc's own source-based coverage (-C instrument-coverage) plus llvm-profdata and llvm-cov
# of the same LLVM major version as rustc. They are taken from $LLVM_PROFDATA / $LLVM_COV if
# set, else from rustup's llvm-tools component if installed, else from Debian's llvm-NN
# package (installed with apt-get when missing). The build goes to target/coverage so that
# the normal build cache is left alone.
#
# Counted: every file under src/ except the PyO3 glue, which needs Python and is tested from
# Python (tests/): src/lib.rs (the module registration), src/py.rs and src/py/ (one module
# per exported class or concern). Pure-Rust logic the glue relies on lives in the counted
# modules (config.rs, reader.rs, writer.rs, ...) with unit tests beside it. Also without test
# code: a `#[cfg(test)] mod name { ... }` block (rustfmt puts its closing brace
# in column 0) and the file of a `#[cfg(test)] mod name;` declaration.
#
# Prints a per-file table and `Rust line coverage (src/ below lib.rs): NN.N %`; also writes
# target/coverage/lcov.info (every line, tests included) for editors.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3}"
COV_DIR="$ROOT/target/coverage"
PROF_DIR="$COV_DIR/profraw"

host=$(rustc -vV | sed -n 's/^host: //p')
llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')

# The LLVM tools: an indexed profile or coverage map from a newer LLVM is unreadable by an
# older one, so take rustc's major version or a newer one.
tool_major() { "$1" --version 2>/dev/null | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p' | head -1; }
find_tool() {  # $1 = profdata | cov; prints a path or nothing
    local name="llvm-$1" sysroot_bin candidate v
    sysroot_bin="$(rustc --print sysroot)/lib/rustlib/$host/bin"
    for candidate in "$sysroot_bin/$name" "$name-$llvm_major" "$name-$((llvm_major + 1))" \
            "$name-$((llvm_major + 2))" "$name"; do
        candidate=$(command -v "$candidate" 2>/dev/null) || continue
        v=$(tool_major "$candidate")
        if [[ -n "$v" && "$v" -ge "$llvm_major" ]]; then
            echo "$candidate"
            return
        fi
    done
}
LLVM_PROFDATA="${LLVM_PROFDATA:-$(find_tool profdata)}"
LLVM_COV="${LLVM_COV:-$(find_tool cov)}"
if [[ -z "$LLVM_PROFDATA" || -z "$LLVM_COV" ]]; then
    echo "== install llvm-$llvm_major (Debian package) for llvm-profdata and llvm-cov"
    SUDO=""
    [[ "$(id -u)" -eq 0 ]] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # Retried once: a mirror hiccup should not fail the whole run.
    for attempt in 1 2; do
        if $SUDO apt-get update -qq >/dev/null && \
           $SUDO apt-get install -y -qq --no-install-recommends "llvm-$llvm_major" >/dev/null; then
            break
        fi
        sleep 5
    done
    LLVM_PROFDATA=$(find_tool profdata)
    LLVM_COV=$(find_tool cov)
    if [[ -z "$LLVM_PROFDATA" || -z "$LLVM_COV" ]]; then
        echo "no llvm-profdata/llvm-cov of LLVM >= $llvm_major (rustc's); install llvm-$llvm_major" \
            "or rustup's llvm-tools, or set LLVM_PROFDATA and LLVM_COV" >&2
        exit 1
    fi
fi
echo "== rustc $(rustc -vV | sed -n 's/^release: //p') (LLVM $llvm_major)," \
    "$(basename "$LLVM_PROFDATA") and $(basename "$LLVM_COV") (LLVM $(tool_major "$LLVM_COV"))"

# --target: RUSTFLAGS then reach only the target's crates, not build scripts and proc macros,
# which would otherwise drop .profraw files wherever cargo runs them.
export CARGO_TARGET_DIR="$COV_DIR"
export RUSTFLAGS="${RUSTFLAGS:-} -C instrument-coverage"
cargo_test=(cargo test --lib --target "$host" --quiet)

echo "== build the instrumented unit-test binary (target/coverage)"
# Build scripts get their profile file here too, as a safety net.
LLVM_PROFILE_FILE="$COV_DIR/build-%p-%m.profraw" "${cargo_test[@]}" --no-run
binary=$("${cargo_test[@]}" --no-run --message-format=json \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[[ -x "$binary" ]] || { echo "no test binary found" >&2; exit 1; }
rm -f "$COV_DIR"/build-*.profraw

echo "== cargo test --lib (instrumented)"
rm -rf "$PROF_DIR" && mkdir -p "$PROF_DIR"
LLVM_PROFILE_FILE="$PROF_DIR/wsrs-%p-%m.profraw" "${cargo_test[@]}"

"$LLVM_PROFDATA" merge -sparse "$PROF_DIR"/*.profraw -o "$COV_DIR/wsrs.profdata"
"$LLVM_COV" export -format=lcov -instr-profile="$COV_DIR/wsrs.profdata" "$binary" \
    -ignore-filename-regex='/\.cargo/|/rustc/|/rustlib/' >"$COV_DIR/lcov.info"

echo "== Rust line coverage, without test code"
"$PYTHON" - "$ROOT" "$COV_DIR/lcov.info" <<'EOF'
import os
import re
import sys

root, lcov = sys.argv[1], sys.argv[2]
src = os.path.join(root, "src")

# Line -> execution count per source file, from the lcov export.
hits: dict[str, dict[int, int]] = {}
path = None
with open(lcov) as f:
    for line in f:
        if line.startswith("SF:"):
            path = os.path.realpath(line[3:].strip())
            hits.setdefault(path, {})
        elif line.startswith("DA:") and path:
            number, count = line[3:].split(",")[:2]
            hits[path][int(number)] = max(hits[path].get(int(number), 0), int(count))

# Test code: `#[cfg(test)] mod x { ... }` blocks and the files of `#[cfg(test)] mod x;`.
test_lines: dict[str, set[int]] = {}
test_files: set[str] = set()
for path in hits:
    if not os.path.isfile(path):
        continue
    lines = open(path, encoding="utf-8").read().split("\n")
    skip: set[int] = set()
    for i, text in enumerate(lines):
        if text.strip() != "#[cfg(test)]" or i + 1 >= len(lines):
            continue
        m = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*([;{])", lines[i + 1])
        if not m:
            continue
        if m.group(2) == ";":
            base = os.path.dirname(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            if stem not in ("lib", "main", "mod"):
                base = os.path.join(base, stem)
            test_files.add(os.path.join(base, m.group(1) + ".rs"))
            test_files.add(os.path.join(base, m.group(1), "mod.rs"))
        else:
            indent = len(lines[i]) - len(lines[i].lstrip())
            end = next((j for j in range(i + 1, len(lines)) if lines[j] == " " * indent + "}"),
                       len(lines) - 1)
            skip.update(range(i + 1, end + 2))  # 1-based, the attribute to the closing brace
    test_lines[path] = skip

rows = []
for path, counts in sorted(hits.items()):
    rel = os.path.relpath(path, root)
    # The PyO3 glue (see the header): lib.rs, py.rs and everything under src/py/.
    glue = rel in (os.path.join("src", "lib.rs"), os.path.join("src", "py.rs")) or \
        rel.startswith(os.path.join("src", "py") + os.sep)
    if not path.startswith(src + os.sep) or glue:
        continue
    if path in test_files:
        continue
    counted = {n: c for n, c in counts.items() if n not in test_lines.get(path, ())}
    missed = sorted(n for n, c in counted.items() if c == 0)
    rows.append((rel, len(counted), len(missed), missed))

def ranges(numbers: list[int]) -> str:
    out: list[str] = []
    for n in numbers:
        if out and int(out[-1].split("-")[-1]) == n - 1:
            out[-1] = out[-1].split("-")[0] + f"-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)

if not rows:
    sys.exit("no coverage data for src/")
width = max(len(r[0]) for r in rows + [("TOTAL",)])
print(f"{'File':<{width}}  {'Lines':>6}  {'Missed':>6}  {'Cover':>7}  Missed lines")
total = missed_total = 0
for rel, n, m, missed in rows:
    total, missed_total = total + n, missed_total + m
    cover = 100 * (n - m) / n if n else 100.0
    print(f"{rel:<{width}}  {n:>6}  {m:>6}  {cover:>6.1f}%  {ranges(missed)}".rstrip())
percent = 100 * (total - missed_total) / total
print(f"{'TOTAL':<{width}}  {total:>6}  {missed_total:>6}  {percent:>6.1f}%")
print()
print(f"Rust line coverage (src/ below lib.rs): {percent:.1f} %")
EOF
