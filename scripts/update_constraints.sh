#!/usr/bin/env bash
# Resolves requirements-dev.txt afresh in a new virtual environment and writes every
# version it got to constraints.txt; then run `bash .ci/run` to test what a newcomer gets.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r requirements-dev.txt
{
    echo "# Every version a fresh install gets, direct and transitive: used as pip's constraints file"
    echo "# (pip install -c constraints.txt ...) by README.md's install command and by .ci/run."
    echo "# Regenerate with scripts/update_constraints.sh, as README.md says."
    # The CPU wheel's local label (+cpu) is left out, so the pin also admits the same release elsewhere.
    "$venv/bin/python" -m pip freeze | sed -E 's/^(torch==[0-9.]+)\+cpu$/\1/'
} > constraints.txt
rm -rf "$(dirname "$venv")"
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pinned packages"
