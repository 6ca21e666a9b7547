"""The third reliability round (issue 22), as a new user probes it: inputs that got through before, the ``page``
command and plain papermill, what the runner says while a user waits, and one K for a target Q. Each case names what
the old code did wrong."""

import json
import math
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import papermill
import pytest
import torch
import yaml
from conftest import (
    PYTHON,
    REAL_DATA,
    Child,
    assert_refused_in_one_line,
    child_env,
    files_under,
    main_in_process,
    one_error_line,
    wait_for,
    write_notebook,
)

from subsetlib import data, grids, planner, registry, subsets
from subsetlib.repo import REPO_ROOT

pytestmark = pytest.mark.usefixtures("one_thread")
SYN = ["--dataset", "synthetic", "--device", "cpu"]


def probe_cases(tmp: Path) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """argv, texts the one error line must hold, texts it must not hold."""
    notebook = str(tmp / "nb.ipynb")
    grid = str(tmp / "grid.yaml")
    return {
        # 1. accepted before: trained 5 epochs to a NaN loss and stored the run
        "run lr inf": (["run", *SYN, "--lr", "inf"], ["learning rate must be a finite number > 0 (got inf)"], []),
        "run eval every inf": (["run", *SYN, "--eval-every", "inf"], ["eval_every must be a finite number > 0"], []),
        # 6. argparse took --epoch for --epochs, and a negative wait
        "abbreviated flag": (["run", *SYN, "--epoch", "1"], ["unrecognized arguments: --epoch 1"], []),
        "abbreviated batch flag": (["batch", grid, "--dry"], ["unrecognized arguments: --dry"], []),
        "worker wait negative": (["batch", grid, "--worker-wait", "-5"],
                                 ["argument --worker-wait: must be a finite number of seconds >= 0 (got -5)"], []),
        "worker wait inf": (["batch", grid, "--worker-wait", "inf"], ["argument --worker-wait"], []),
        # 8. hints that pointed to things that do not exist or are refused
        "growing without fraction": (["run", *SYN, "--protocol", "growing"], ["protocol growing needs --fraction"],
                                     ["--target-q"]),
        "bench workers negative": (["bench", *SYN, "--workers", "-1"], ["argument --workers: must be >= 0 (got -1)"],
                                   ["warmup"]),
        "missing grid file": (["batch", "grids/none.yaml"], ["grid file grids/none.yaml does not exist",
                                                               grids.EXAMPLE], ["quick.yaml"]),
        "empty grid file": (["batch", str(tmp / "empty.yaml")], ["needs a mapping with a non-empty 'stages' list",
                                                                  grids.EXAMPLE], ["quick.yaml"]),
        # 4. papermill parameters, now through the page command: one line before a kernel starts
        "page seeds as text": (["page", notebook, "-p", "seed", "zero"],
                               ["parameter seed must be int like its default 0 (got 'zero')"], []),
        "page unknown parameter": (["page", notebook, "-p", "epoch", "3"],
                                   ["unknown parameter(s) epoch for", "it takes dataset, epochs, lr"], []),
        "page negative epochs": (["page", notebook, "-p", "epochs", "-3"],
                                 ["parameter epochs must be a whole number > 0 (got -3)"], []),
        "page unknown dataset": (["page", notebook, "-p", "dataset", "mnsit"],
                                 ["parameter dataset: unknown dataset 'mnsit'"], []),
        "page scalar for a list": (["page", str(tmp / "lists.ipynb"), "-p", "seeds", "0"],
                                   ["parameter seeds must be list like its default [0, 1] (got 0)"], []),
        "page float step count": (["page", str(tmp / "lists.ipynb"), "-p", "subset_steps", "20.5"],
                                  ["parameter subset_steps must be int like its default 20 (got 20.5)"], []),
        "page lr inf": (["page", notebook, "-p", "lr", "inf"], ["parameter lr must be a finite number (got inf)"], []),
        "page results dir unwritable": (["page", notebook, "-p", "results_dir", "notes.txt/res"],
                                        ["is not writable", "set the parameter results_dir to a writable folder"],
                                        ["--results"]),
        "page missing notebook": (["page", "notebooks/nothere.ipynb"], ["notebook notebooks/nothere.ipynb does not "
                                                                        "exist"], []),
    }


@pytest.fixture
def probe_folder(tmp_path, monkeypatch) -> Path:
    write_notebook(tmp_path / "nb.ipynb", body="open('body-ran.txt', 'w').write('it ran')")
    write_notebook(tmp_path / "lists.ipynb", parameters='seeds = [0, 1]\nsubset_steps = 20\nresults_dir = "res"')
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump({"stages": [{"notebook": str(tmp_path / "nb.ipynb")}]}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", sorted(probe_cases(Path("."))))
def test_probe_cli_mistakes_end_in_one_line_and_write_nothing(case, probe_folder, capsys):
    argv, expected, absent = probe_cases(probe_folder)[case]
    assert_refused_in_one_line(argv, probe_folder, capsys, expected, absent)


def test_probe_hints_name_grid_files_that_exist():
    assert (REPO_ROOT / grids.EXAMPLE).is_file()


# ---------------------------------------------------------------------------------------------------------------------
# Grid files: stage parameters and paths checked up front (2, 3), each value once


@pytest.mark.parametrize(("change", "expected"), [
    ({"parameters": {"epochs": -3}}, "parameter epochs must be a whole number > 0 (got -3) (stage 1 of"),
    ({"parameters": {"lr": float("inf")}}, "parameter lr must be a finite number (got inf) (stage 1 of"),
    ({"grid": {"lr": [0.001, float("nan")]}}, "parameter lr must be a finite number (got nan)"),
    ({"profile": "../../etc"}, "profile '../../etc' in"),
    ({"profile": "a/b"}, "must be a plain folder name"),
])
def test_probe_grid_values_are_checked_before_anything_runs(change, expected, tmp_path, monkeypatch, capsys):
    notebook = write_notebook(tmp_path / "nb.ipynb")
    stage = {"notebook": str(notebook), "output": "cell-{seed}.ipynb", "grid": {"seed": [0]}}
    spec = {"profile": "probe", "stages": [stage]}
    if "profile" in change:
        spec["profile"] = change["profile"]  # no results/output_dir: the profile makes both paths
    else:
        spec.update(results=str(tmp_path / "results"), output_dir=str(tmp_path / "book"))
        stage.update({k: v if k != "grid" else {**stage["grid"], **v} for k, v in change.items()})
        if "grid" in change:
            stage["output"] = "cell-{seed}-{lr}.ipynb"
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path)
    outside = sorted(REPO_ROOT.parent.glob("etc")) + sorted(REPO_ROOT.glob("etc"))
    rc, out, err = main_in_process(["batch", str(path)], capsys)
    assert rc == 2 and out == ""
    assert expected in one_error_line(err)
    assert files_under(tmp_path) == before
    assert sorted(REPO_ROOT.parent.glob("etc")) + sorted(REPO_ROOT.glob("etc")) == outside


def test_probe_each_grid_value_is_checked_once(tmp_path, monkeypatch):
    """A seed used to be checked five times between the grid and a stored row; the grid loader checks each value
    once: the grid's seeds, a stage's fixed parameters, each value of its grid (not once per cell)."""
    from subsetlib import notebook as nb

    notebook = write_notebook(tmp_path / "nb.ipynb", parameters="seeds = [0]\nlr = 0.001\nepochs = 1\nscale = ''")
    stage = {"notebook": str(notebook), "output": "cell-{lr}-{epochs}.ipynb", "parameters": {"scale": "x"},
             "grid": {"lr": [0.1, 0.01, 0.001], "epochs": [1, 2]}}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"profile": "once", "seeds": [0, 1], "results": str(tmp_path / "r"),
                                    "output_dir": str(tmp_path / "b"),
                                    "stages": [stage, {**stage, "output": "again-{lr}-{epochs}.ipynb"}]}))
    checked = []
    real = nb.check_parameter

    def spy(name, value, default):
        checked.append((name, repr(value)))
        return real(name, value, default)

    monkeypatch.setattr(nb, "check_parameter", spy)
    grid = grids.load_grid(path)
    assert len(grid.cells) == 12
    # per stage: its fixed scale once, each lr and each epochs value once; the seeds once for the grid (check_seed),
    # where each of the 12 cells used to check all four again
    assert Counter(name for name, _ in checked) == {"lr": 6, "epochs": 4, "scale": 2}


# ---------------------------------------------------------------------------------------------------------------------
# Papermill (4): plain papermill ends with the error's own line; results_dir checked before training


@pytest.mark.parametrize(("parameters", "expected"), [
    ({"epochs": -3}, "parameter epochs must be a whole number > 0 (got -3)"),
    ({"lr": math.inf}, "parameter lr must be a finite number (got inf)"),
    ({"results_dir": "notes.txt/res"}, "is not writable (Not a directory): set the parameter results_dir to a "
                                       "writable folder"),
])
def test_probe_papermill_refuses_before_the_body_runs(tmp_path, parameters, expected):
    (tmp_path / "notes.txt").write_text("a file\n")
    notebook = write_notebook(tmp_path / "nb.ipynb", body="open('body-ran.txt', 'w').write('it ran')")
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), parameters=parameters,
                                   kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    assert caught.value.ename == "UserError" and expected in caught.value.evalue
    assert not (tmp_path / "body-ran.txt").exists()


def test_probe_plain_papermill_ends_with_the_error_line(tmp_path):
    notebook = write_notebook(tmp_path / "nb.ipynb")
    done = subprocess.run([str(Path(PYTHON).parent / "papermill"), str(notebook), str(tmp_path / "out.ipynb"),
                           "-p", "epochs", "-3"], cwd=tmp_path, env=child_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines[-1] == "UserError: parameter epochs must be a whole number > 0 (got -3)", lines[-5:]


# ---------------------------------------------------------------------------------------------------------------------
# The page command: runs a page, quietly; a mistake found in the kernel is one line too


def test_probe_page_runs_a_notebook_quietly(tmp_path, monkeypatch, capfd):
    from subsetlib.cli import main

    notebook = write_notebook(tmp_path / "nb.ipynb", parameters=f'epochs = 1\nscale = "ad hoc"\n'
                              f'results_dir = {str(tmp_path / "res")!r}', body="print('epochs', epochs)")
    out = tmp_path / "out" / "page.ipynb"
    monkeypatch.chdir(tmp_path)
    assert main(["page", str(notebook), "-p", "epochs", "3", "-p", "scale", "1e-3", "-o", str(out)]) == 0
    _, err = capfd.readouterr()
    assert "Kernel is running over TCP" not in err and "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"subsetlib: wrote {out}"
    text = out.read_text()
    assert "epochs 3" in text and 'scale = \\"1e-3\\"' in text  # text stays text where the default is text
    assert main(["page", str(notebook), "-p", "epochs", "2", "-p", "results_dir", "notes/x", "-o", str(out)]) == 0
    assert (tmp_path / "notes" / "x").is_dir()  # results_dir on the command line: relative to the working folder


def test_probe_page_reports_a_user_error_raised_in_the_kernel_as_one_line(tmp_path, capsys):
    notebook = write_notebook(tmp_path / "nb.ipynb", parameters=f'epochs = 1\nresults_dir = {str(tmp_path)!r}',
                              body="from subsetlib.errors import UserError\nraise UserError('the body says no')")
    rc, out, err = main_in_process(["page", str(notebook), "-o", str(tmp_path / "out.ipynb")], capsys)
    assert rc == 2 and out == ""
    assert one_error_line(err.split("\n", 1)[1]) == "subsetlib: error: the body says no"


# ---------------------------------------------------------------------------------------------------------------------
# Quiet, honest output (9)


def test_probe_run_says_trained_then_loaded_and_prints_strict_json(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")  # no progress lines: stderr holds what was done, once per seed
    argv = ["run", *SYN, "--epochs", "1", "--batch-size", "500", "--eval-every", "100", "--results", "res"]

    def strict(text: str) -> dict:
        return json.loads(text, parse_constant=lambda word: pytest.fail(f"{word} is not JSON"))

    rc, out, err = main_in_process(argv, capsys)
    assert rc == 0, err
    summary = strict(out)
    stored = f"res/runs/{summary['run_id']}.parquet"
    assert (tmp_path / stored).is_file()
    assert err.strip() == f"subsetlib: seed 0: trained: {stored}"
    rc, again, err = main_in_process(argv, capsys)
    assert rc == 0 and strict(again) == summary
    assert err.strip() == f"subsetlib: seed 0: loaded (stored before, nothing trained): {stored}"


def test_probe_dry_run_marks_the_cells_that_are_done(tmp_path, capsys):
    notebook = write_notebook(tmp_path / "nb.ipynb")
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"profile": "dry", "results": str(tmp_path / "r"), "output_dir": str(tmp_path / "b"),
                                    "stages": [{"notebook": str(notebook), "output": "cell-{seed}.ipynb",
                                                "grid": {"seed": [0, 1, 2]}}]}))
    grid = grids.load_grid(path)
    done, failed = grid.cells[0], grid.cells[2]
    for cell, status in ((done, "done"), (failed, "failed")):
        grid.state_path(cell).parent.mkdir(parents=True, exist_ok=True)
        grid.state_path(cell).write_text(json.dumps({"status": status}))
    Path(done.output).parent.mkdir(parents=True)
    Path(done.output).write_text("{}")
    rc, out, _ = main_in_process(["batch", str(path), "--dry-run"], capsys)
    assert rc == 0
    assert [line.split("]")[0] + "]" for line in out.splitlines()] == ["wave 1: [done]", "wave 1: [to do]",
                                                                        "wave 1: [failed]"]


def test_probe_bench_says_what_it_times(monkeypatch, capsys):
    from subsetlib import bench_loader

    monkeypatch.setattr(bench_loader, "compare_loops", lambda **kw: {"stopped": "here"})  # the timing is bench's
    monkeypatch.setattr(bench_loader, "format_report", lambda result: "report")
    rc, out, err = main_in_process(["bench", *SYN, "--steps", "7"], capsys)
    assert rc == 0 and out == "report\n"
    assert "timing the GPU-resident loop, then a DataLoader loop, 7 steps each" in err


def test_probe_ctrl_c_on_a_local_cluster_ends_in_one_line(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    body = (f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\n"
            f"while not pathlib.Path({str(release)!r}).exists():\n    time.sleep(0.1)")
    notebook = write_notebook(tmp_path / "nb.ipynb", body=body)
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"profile": "ctrl-c", "results": str(tmp_path / "r"),
                                    "output_dir": str(tmp_path / "b"), "stages": [{"notebook": str(notebook)}]}))
    child = Child(["batch", str(grid), "--workers", "1"], tmp_path)
    try:
        wait_for(started.is_file, 240, "the cell to start", child)
        os.killpg(child.proc.pid, signal.SIGINT)  # what a terminal sends to its foreground group
        # a local cluster's shutdown took over 120 s at load 5 (CI beside a grid): wait longer, check the same things
        rc, out, err = child.wait(timeout=400)
    finally:
        release.touch()
        lingering = child.close()
    assert rc == 130, err
    said = [line for line in err.strip().splitlines() if not line.startswith("subsetlib: writing to ")]  # tmp paths
    assert said == ["subsetlib: interrupted; rerun the same command to resume"], err
    assert not lingering


# ---------------------------------------------------------------------------------------------------------------------
# One K for a target Q (7): q, run, the planner and the calculator agree with the subset a run draws


@pytest.mark.parametrize("target", [0.1, 0.25, 0.5, 0.75, 0.8])
def test_probe_target_q_gives_the_k_a_run_trains_on_synthetic(target, synthetic):
    table = planner.q_table("cnn-simple", "synthetic", [], [target])
    fraction = planner.subset_fraction("cnn-simple", synthetic, target_q=target)
    drawn = subsets.subset_indices(synthetic.y_train, fraction, seed=0)
    assert fraction == table["fraction"].iloc[0]
    assert len(drawn) == table["K"].iloc[0] and table["Q"].iloc[0] >= target


@pytest.fixture(scope="module")
def mnist_labels() -> torch.Tensor:
    if not (REAL_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"the MNIST files are not in {REAL_DATA}")
    return data.load("mnist", root=REAL_DATA, device="cpu").y_train


def test_probe_mnist_class_sizes_are_those_of_its_label_file(mnist_labels):
    assert registry.dataset_spec("mnist").class_sizes() == tuple(torch.bincount(mnist_labels).tolist())


@pytest.mark.parametrize("target", [0.5, 1.5, 2.0, 3.0, 5.0, 12.5])
def test_probe_target_q_gives_the_k_a_run_trains_on_mnist(target, mnist_labels, capsys):
    """q --target-q 3 said K = 7,184 while run trained on 7,183 (per-class rounding of 7184/60000)."""
    table = planner.q_table("cnn-simple", "mnist", [], [target])
    drawn = subsets.subset_indices(mnist_labels, table["fraction"].iloc[0], seed=0)
    assert len(drawn) == table["K"].iloc[0] and table["Q"].iloc[0] >= target
    rc, out, _ = main_in_process(["q", "--dataset", "mnist", "--fractions", "1", "--target-q", str(target)], capsys)
    assert rc == 0 and f"K = {len(drawn):>9,}" in out.splitlines()[-1]
    if target == 3.0:
        assert len(drawn) == 7184
