#!/usr/bin/env bash
# Draw the speed page (book/experiments/speed/01-speed.ipynb) again from the measurement stored in
# results/speed/bench, timing nothing: the page runs with measure=False and says so at its top, naming the commit
# the tables were measured at. For a change to how the page shows its numbers, on a busy machine. To measure anew
# (on a quiet machine only): .venv/bin/python -m subsetlib batch grids/speed.yaml --again '01-speed*'
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH="$PWD" .venv/bin/python - <<'PY'
from pathlib import Path

import yaml

from subsetlib import batch, pages

grid = yaml.safe_load(Path("grids/speed.yaml").read_text(encoding="utf-8"))
stage = next(s for s in grid["stages"] if s["output"] == "01-speed.ipynb")
output = Path("book/experiments/speed/01-speed.ipynb").resolve()
params = {"scale": grid["scale"], **stage.get("parameters", {}), "results_dir": "../results/speed", "measure": False}
pages.execute(Path(stage["notebook"]).resolve(), output, params)
batch._finish_notebook(output, stage["title"])
print(f"drew {output.relative_to(Path.cwd())} from results/speed/bench (nothing timed)")
PY
