"""Where a figure or table on a page came from, said under it: the notebook cell that made it (linked to the source
file), the commit, the runs it shows (each linked to its row on the provenance page) and its numbers as a CSV written
by the same call that shows it, so the two cannot disagree. No torch.
"""

import base64
import html
import json
import os
from functools import cache
from pathlib import Path

import pandas as pd

from subsetlib.notebook import NOTEBOOKS
from subsetlib.repo import REPO_ROOT, commit

EXPERIMENT_PAGES = "book/experiments/profile"  # where experiment pages sit in the built book (any profile)


FRONT_PAGE = "book"  # the folder of the front page, book/intro.md


PROVENANCE_PAGE = "book/experiments/study/99-provenance.html"


DATA_COLUMNS = ("run_id", "seed", "arm")  # what every row of a figure's CSV says about where it came from


def check_data(data: pd.DataFrame) -> None:
    missing = [c for c in DATA_COLUMNS if c not in data.columns]
    if missing:
        raise ValueError(f"a figure's data need the columns {list(DATA_COLUMNS)} (one row per plotted point); "
                         f"missing {missing}: add them before present.show")


@cache
def _notebook_cells(path: str) -> list[str]:
    cells = json.loads((NOTEBOOKS / path).read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]).strip() if c["cell_type"] == "code" else "" for c in cells]


def drawing_cell() -> tuple[str, int] | None:
    """(source notebook under ``notebooks/``, 1-based cell number) of the cell now running, found by its code among
    the source notebooks; None outside IPython or for code that no source notebook holds (an edited copy)."""
    try:
        from IPython import get_ipython

        code = get_ipython().user_ns["In"][-1].strip()
    except (ImportError, AttributeError, KeyError, IndexError):
        return None
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = _notebook_cells(path.name)
        if code and code in cells:
            return path.name, cells.index(code) + 1
    return None


def csv_link(data: pd.DataFrame, name: str) -> str:
    """A link that downloads ``data`` as ``name`` (CSV), with the CSV inside the link: the page carries its numbers,
    whatever folder the book is copied to."""
    payload = base64.b64encode(data.to_csv(index=False).encode()).decode()
    return f'<a class="subsetlib-csv" download="{html.escape(name)}" href="data:text/csv;base64,{payload}">CSV</a>'


def run_links(run_ids, page: str = EXPERIMENT_PAGES) -> str:
    """Each run id linked to its row on the provenance page (relative to ``page``'s folder), folded under a count."""
    ids = list(dict.fromkeys(str(r) for r in run_ids))
    target = os.path.relpath(PROVENANCE_PAGE, page)
    links = ", ".join(f'<a href="{target}#run-{html.escape(r)}"><code>{html.escape(r)}</code></a>' for r in ids)
    return f"<details><summary>{len(ids)} run{'s' if len(ids) != 1 else ''}</summary>{links}</details>"


def source_html(data: pd.DataFrame | None, source: tuple[str, int] | None, kind: str, page: str = EXPERIMENT_PAGES
                ) -> str:
    """The small line under a figure or table: the notebook cell that made it (linked to the source file in the
    repository, from the book as built there), the commit, the CSV of its numbers and the runs it shows (linked to
    the provenance page); links relative to ``page``, the folder of the page that shows it."""
    parts = []
    if source is not None:
        notebook, cell = source
        href = os.path.relpath(NOTEBOOKS / notebook, REPO_ROOT / "_build" / "html" / page)
        parts.append(f'<a href="{html.escape(href)}"><code>notebooks/{html.escape(notebook)}</code></a>, cell {cell}')
    parts.append(f"commit <code>{commit(10)}</code>")
    if data is not None:
        stem = f"{Path(source[0]).stem}-cell{source[1]}-" if source else ""
        parts.append(csv_link(data, f"{stem}{kind}.csv"))
    # a figure of measurements made in the page's own process has no stored runs: it names none, rather than "0 runs"
    ids = data["run_id"].dropna() if data is not None and "run_id" in data else pd.Series(dtype=object)
    runs = run_links(ids, page) if len(ids) else ""
    return (f'<div class="subsetlib-source">'
            f"Source: {' · '.join(parts)}{runs}</div>")
