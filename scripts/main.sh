#!/usr/bin/env bash
# The main job: set up, run the experiment profiles (default: the study at certified minima, then study v2), build
# the book, say where it is.
#   bash scripts/main.sh                   # grids/certified.yaml (resumable; its header gives the time), its
#                                          # analysis pages (grids/certified-pages.yaml, which only read), then
#                                          # study v2: grids/study-v2.yaml, -cifar, -lbfgs (resumable; hours on
#                                          # two CPU cores), then its progress page and front page answer, and the
#                                          # provenance page, from what is stored. The first study: PROFILES="study-cifar
#                                          # study" (whose claims page reads the CIFAR runs); headers give the times
#   PROFILES=study-v2-gpu bash scripts/main.sh   # study v2 at GPU budgets (needs a GPU); several: PROFILES="speed beyond"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for profile in ${PROFILES:-certified certified-pages study-v2 study-v2-cifar study-v2-lbfgs study-v2-progress provenance}; do
  .venv/bin/python -m subsetlib batch "grids/${profile}.yaml"
done
.venv/bin/jupyter-book build -W -n --keep-going . >/dev/null
echo "The book: file://$(pwd)/_build/html/index.html"
