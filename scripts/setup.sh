#!/usr/bin/env bash
# Set up .venv with everything subsetlib needs (idempotent: a second run only checks).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing requirements into .venv (torch is large: a few minutes the first time)"
  # pip warns about every local index folder that lacks a package; those warnings are noise here
  .venv/bin/pip install -q -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
  .venv/bin/pip install -q --no-deps -e . 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$stamp"
fi
