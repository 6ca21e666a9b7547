"""Every shell command printed in README.md and the reproduce chapter works as printed, from the repository root.

Each command is run as printed where that is quick (``q``), at smoke size (papermill, with ``SUBSETLIB_SMOKE=1`` and
the synthetic data set), as a dry run (``batch``), or with ``--help`` / ``bash -n`` where a full run takes hours.
A printed command that no rule below covers fails the test, so a new command cannot be added unchecked.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "book/reproduce.md")
VENV_BIN = ROOT / ".venv" / "bin"


def shell_commands(markdown: str) -> list[str]:
    """The commands of the ```bash blocks: continuation lines joined, comments and blank lines dropped."""
    commands = []
    for block in re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", markdown, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def how_to_check(command: str) -> str | None:
    """The command line that checks ``command`` (None: no rule covers it)."""
    words = shlex.split(command)
    if words[:2] == ["bash", "scripts/main.sh"] or words[:2] == ["bash", "scripts/test.sh"]:
        return f"bash -n {words[1]}"  # hours of work: check that it exists and parses
    if words[0] == ".venv/bin/papermill":
        return command + " -p dataset synthetic"  # smoke size (SUBSETLIB_SMOKE=1), on synthetic data
    if words[:3] == ["mkdir", "-p", "results/adhoc"]:
        return command
    if words[0] == ".venv/bin/dask":
        return shlex.join(words[:2] + ["--help"])
    if words[:3] == [".venv/bin/python", "-m", "subsetlib"]:
        sub = words[3]
        if sub == "q":
            return command
        if sub == "page":  # smoke size on the synthetic data set
            dataset = words.index("dataset") if "dataset" in words else None
            return shlex.join(words[:dataset + 1] + ["synthetic"] + words[dataset + 2:] if dataset else
                              words + ["-p", "dataset", "synthetic"])
        if sub == "batch":
            return shlex.join([w for w in words if not w.startswith("--scheduler") and "HOST" not in w] + ["--dry-run"])
        if sub in ("run", "bench", "predict"):  # minutes of work: the command exists and parses its flags
            return shlex.join(words[:4] + ["--help"])
    return None


def test_extraction_and_rules_on_made_up_text():
    text = "```bash\n# comment\npapermill a.ipynb b.ipynb \\\n    -y \"seeds: [0, 1]\"  # why\n```\n```python\nx=1\n```"
    assert shell_commands(text) == ["papermill a.ipynb b.ipynb -y 'seeds: [0, 1]'"]
    assert how_to_check("python -m subsetlib q") is None  # bare names are not on PATH after the set-up
    assert how_to_check(".venv/bin/python -m subsetlib batch grids/x.yaml --scheduler tcp://HOST:8786") == (
        ".venv/bin/python -m subsetlib batch grids/x.yaml --dry-run")


PRINTED = [(doc, c) for doc in DOCS for c in shell_commands((ROOT / doc).read_text(encoding="utf-8"))]


def test_docs_print_commands():
    assert {doc for doc, _ in PRINTED} == set(DOCS)


@pytest.mark.parametrize(("doc", "command"), PRINTED, ids=[f"{d}:{c[:50]}" for d, c in PRINTED])
def test_printed_command_works(doc, command):
    check = how_to_check(command)
    assert check is not None, f"{doc}: no rule for `{command}` (commands run from the root with .venv/bin/ paths)"
    if not VENV_BIN.is_dir():  # a developer's worktree may share another checkout's environment
        check = check.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    env = {**os.environ, "SUBSETLIB_SMOKE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(check, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{doc}: `{command}` failed (checked as `{check}`):\n{done.stderr[-2000:]}"


def test_rerun_footer_command_is_accepted_by_papermill(tmp_path):
    """The command every page prints at its end parses, and papermill injects the lists as lists."""
    import nbformat

    from subsetlib import notebook as nb

    params = {"datasets": ["mnist"], "target_qs": [1.5, 4.0], "scale": "1e-3 as text", "results_dir": "../results/x"}
    command = nb.rerun_command("q_planner", params, sorted(params))
    assert "-y" in command and "-r scale '1e-3 as text'" in command and "python -m" not in command
    out = tmp_path / "out.ipynb"
    check = command.replace("results/adhoc/q_planner.ipynb", str(out)) + " --prepare-only"
    if not VENV_BIN.is_dir():
        check = check.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    done = subprocess.run(check, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    injected = next(c for c in nbformat.read(out, as_version=4).cells if "injected-parameters" in c.metadata.tags)
    assert "target_qs = [1.5, 4.0]" in injected.source and 'scale = "1e-3 as text"' in injected.source
