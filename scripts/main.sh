#!/usr/bin/env bash
# The main job: set up, run the experiment profiles (default: the CPU study), build the book, say where it is.
#   bash scripts/main.sh                   # the CPU study: grids/study-cifar.yaml, then grids/study.yaml (whose
#                                          # claims page reads the CIFAR runs); their headers give the measured times
#   PROFILES=paper bash scripts/main.sh    # the paper budget (needs a GPU); several: PROFILES="speed beyond"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for profile in ${PROFILES:-study-cifar study}; do
  .venv/bin/python -m subsetlib batch "grids/${profile}.yaml"
done
.venv/bin/jupyter-book build -W -n --keep-going . >/dev/null
echo "The book: file://$(pwd)/_build/html/index.html"
