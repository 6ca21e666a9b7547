"""Every rerun box runs as printed: from the repository root, it writes only inside the repository (its runs under
``results/``, its page under ``results/adhoc/``) and changes no tracked file (never ``book/``).

The first box read ``-p results_dir ../results/study-v2`` against the shell's folder, wrote outside the repository and
retrained there; the progress page's box then rewrote the tracked front-page answer.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from subsetlib import notebook as nb
from subsetlib import pages
from subsetlib.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "book" / "experiments"
PAGE = ".venv/bin/python -m subsetlib page "


def printed_page_command(page: Path) -> str | None:
    """The ``page`` command of an executed page's rerun box, as a reader copies it (continuation lines joined)."""
    for cell in json.loads(page.read_text(encoding="utf-8"))["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get("text/markdown", "")
            text = "".join(text) if isinstance(text, list) else text
            if "Rerun this page" in text:
                block = text.split("```bash\n", 1)[1].split("```", 1)[0]
                return block.replace("\\\n", " ").strip()
    return None


BOXES = sorted(p for p in EXPERIMENTS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def folders(values: dict) -> list[Path]:
    out = []
    for name, value in values.items():
        if nb.is_path_parameter(name):
            out += [Path(v) for v in (value if isinstance(value, list) else [value]) if isinstance(v, str) and v]
    return out


@pytest.mark.parametrize("page", BOXES, ids=[str(p.relative_to(EXPERIMENTS)) for p in BOXES])
def test_every_printed_box_reads_its_folders_inside_the_repository_and_outside_book(page, monkeypatch):
    command = printed_page_command(page)
    assert command and command.startswith(PAGE), f"{page.name}: no page command in its rerun box"
    args = shlex.split(command[len(PAGE):])
    pairs = [(args[i + 1], args[i + 2]) for i in range(1, len(args), 3) if args[i] == "-p"]
    monkeypatch.chdir(ROOT)  # as printed: from the repository root
    notebook, target, values = pages.prepare(args[0], pairs)
    for folder in [*folders(values), target.parent]:
        assert folder.resolve().is_relative_to(ROOT), f"{page.name}: {folder} lies outside the repository"
        assert not folder.resolve().is_relative_to(ROOT / "book"), f"{page.name}: {folder} writes into book/"
    assert target.is_relative_to(ROOT / "results" / "adhoc")


def test_a_folder_into_book_is_refused_and_a_publishing_folder_goes_to_results_adhoc(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(UserError, match="never writes into the book"):
        pages.prepare("notebooks/study2_progress.ipynb", [("answer_dir", "../book/generated")])
    _, _, values = pages.prepare("notebooks/study2_progress.ipynb", [("results_dir", "../results/study-v2")])
    assert values["answer_dir"] == str(ROOT / nb.ADHOC_GENERATED)
    assert values["results_dir"] == str(ROOT / "results" / "study-v2")  # relative to notebooks/, as printed


def test_the_box_never_prints_the_grids_publishing_folder():
    params = {"answer_dir": "../book/generated", "results_dir": "../results/study-v2", "scale": "s"}
    for command in (nb.page_command("study2_progress", params, sorted(params)),
                    nb.rerun_command("study2_progress", params, sorted(params))):
        assert "book/" not in command and "../results/adhoc/generated" in command


def tracked_state() -> str:
    """Tracked files that differ from HEAD, and untracked files git does not ignore."""
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.skipif(not (EXPERIMENTS / "study-v2" / "00-progress.ipynb").is_file(), reason="no progress page")
def test_the_progress_pages_box_run_exactly_as_printed_changes_nothing_tracked_and_nothing_outside(tmp_path):
    """The box of the page that writes the front page's answer, run as printed from the repository root (it trains
    nothing: every run it reads is stored). Nothing tracked changes, and nothing appears beside the repository."""
    command = printed_page_command(EXPERIMENTS / "study-v2" / "00-progress.ipynb")
    outside = ROOT.parent / "results"
    before, existed = tracked_state(), outside.exists()
    if not (ROOT / ".venv" / "bin").is_dir():
        command = command.replace(".venv/bin/python", sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "SUBSETLIB_SMOKE"}  # smoke mode would train synthetic runs
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert tracked_state() == before
    assert outside.exists() == existed
    assert (ROOT / nb.ADHOC_GENERATED / "front.md").is_file()  # the answer went to results/adhoc/, not book/
