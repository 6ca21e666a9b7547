#!/usr/bin/env bash
# The main job: set up, run an experiment profile (default: study), build the book, say where it is.
#   bash scripts/main.sh            # the CPU study (2 cores; see grids/study.yaml for its measured time)
#   PROFILE=paper bash scripts/main.sh   # the paper budget (needs a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PROFILE=${PROFILE:-study}
.venv/bin/python -m subsetlib batch "grids/${PROFILE}.yaml"
.venv/bin/jupyter-book build -W -n --keep-going . >/dev/null
echo "The book: file://$(pwd)/_build/html/index.html"
