#!/usr/bin/env bash
# Lint the GitHub Actions workflows, which cannot run here: the GitHub workflow schema
# (check-jsonschema's copy, no network) and zizmor's offline audits (with .github/zizmor.yml);
# the shell of every `run:` step through shellcheck (Debian's), as actionlint would do; and
# actionlint itself where it is installed (neither Debian nor PyPI ships its binary).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${WSRS_LINT_VENV:-/tmp/wsrs-lint-venv}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

[ -x "$VENV/bin/zizmor" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q 'check-jsonschema>=0.33,<1' 'zizmor>=1.32,<2'
"$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$VENV/bin/zizmor" --offline --no-progress .github/workflows/
if ! command -v shellcheck >/dev/null && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
fi
# Each run: step as a script of its own; ${{ ... }} expressions become a plain word.
steps="$(mktemp -d)"
trap 'rm -rf "$steps"' EXIT
"$VENV/bin/python" - "$steps" .github/workflows/*.yml <<'PY'
import pathlib
import re
import sys

from ruamel.yaml import YAML

out = pathlib.Path(sys.argv[1])
for workflow in map(pathlib.Path, sys.argv[2:]):
    for job_name, job in YAML(typ="safe").load(workflow.read_text())["jobs"].items():
        for number, step in enumerate(job.get("steps", [])):
            if "run" in step and step.get("shell", "bash") == "bash":
                script = re.sub(r"\$\{\{.*?\}\}", "GHA_EXPRESSION", step["run"])
                name = f"{workflow.stem}-{job_name}-{number}.sh"
                (out / name).write_text("#!/usr/bin/env bash\n" + script)
PY
shellcheck "$steps"/*.sh
echo "shellcheck: $(find "$steps" -name '*.sh' | wc -l) run steps clean"
if command -v actionlint >/dev/null; then actionlint; else echo "actionlint: not installed, skipped"; fi
