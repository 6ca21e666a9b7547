#!/usr/bin/env bash
# The tests: set up, lint, build the book from the committed notebooks, then unit tests, the book check and every
# source notebook at smoke size (pytest --nbval-lax). Exit status 0 only when tests ran and passed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The book test screenshots pages in headless Chromium; chromium-headless-shell lays them out at a phone's 390 px too
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromium-headless-shell >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium chromium-headless-shell >/dev/null) \
      || echo "could not install chromium"
  fi
fi
.venv/bin/ruff check .
.venv/bin/jupyter-book build -W -n --keep-going . >/dev/null
export SUBSETLIB_SMOKE=1 OMP_NUM_THREADS=1 TQDM_DISABLE=1
set +e
.venv/bin/python -m pytest -q -n 2 --dist loadfile tests notebooks --nbval-lax "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "no tests ran: that is a failure" >&2
  exit 1
fi
exit "$status"
