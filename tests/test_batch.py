"""Experiments end to end at toy size: every protocol's ledger adds up over its phases, cost-to-target on curves
whose crossings are known, provenance survives a save and a load, and a grid of notebooks runs on a real Dask
cluster, including one whose runner is killed halfway and then resumed."""

import json
import math
import os
import re
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import SAVE_ONE_RUN, reap, tiny_config, wait_for, write_notebook

from subsetlib import batch, protocols, results, subsets

pytestmark = pytest.mark.usefixtures("one_thread")

# ---------------------------------------------------------------------------------------------------------------------
# Every protocol at toy size


BATCH = 80


@pytest.fixture(scope="module")
def arms(mini) -> dict[str, results.RunResult]:
    """Every protocol on 400 synthetic examples in batches of 80, so most epochs end on a smaller batch."""
    cfg = tiny_config(batch_size=BATCH)
    sweep = protocols.switch_point_sweep(mini, cfg, 0, fraction=0.25, subset_epochs=[1, 2], finetune_epochs=1)
    return {
        "conventional": protocols.conventional(mini, cfg, 0, epochs=1),
        "subset-q": protocols.subset_pretraining(mini, cfg, 0, 1, 1, target_q=0.05),
        "growing": protocols.growing(mini, cfg, 0, start_fraction=0.25, stage_epochs=1, growth=2.0),
        "sweep-1": sweep[0],
        "sweep-2": sweep[1],
    }


EXPECTED_PHASES = {  # (name, K, epochs) per phase
    "conventional": [("full", 400, 1)],
    "subset-q": [("subset", 120, 1), ("finetune", 400, 1)],  # Q 0.05 needs K = ceil(0.05·23946/10) = 120: 12/class
    "growing": [("stage0", 100, 1), ("stage1", 200, 1), ("stage2", 400, 1)],
    "sweep-1": [("subset", 100, 1), ("finetune", 400, 1)],
    "sweep-2": [("subset", 100, 2), ("finetune", 400, 1)],
}


@pytest.mark.parametrize("arm", sorted(EXPECTED_PHASES))
def test_each_protocol_ledger_is_the_sum_of_its_phases(arms, arm):
    s = arms[arm].summary
    phases = json.loads(s["phases"])
    assert [(name, p["K"], p["epochs"]) for name, p in phases.items()] == EXPECTED_PHASES[arm]
    for name, p in phases.items():
        assert p["examples"] == p["epochs"] * p["K"], name
        assert p["steps"] == p["epochs"] * math.ceil(p["K"] / BATCH), name
        assert p["Q"] == pytest.approx(p["K"] * 10 / s["P"])
    for key in ("examples", "steps", "flops"):
        assert s[f"total_{key}"] == sum(p[key] for p in phases.values()), key
    for key in ("train_seconds", "eval_seconds"):
        assert s[f"total_{key}"] == pytest.approx(sum(p[key] for p in phases.values())), key
    assert s["epoch_equivalents"] == s["total_examples"] / 400
    assert s["subset_K"] == EXPECTED_PHASES[arm][0][1]


@pytest.mark.parametrize("arm", sorted(EXPECTED_PHASES))
def test_each_protocol_curve_ends_at_the_ledger(arms, arm):
    run = arms[arm]
    curve = pd.DataFrame(run.curve)
    assert curve["examples"].is_monotonic_increasing and curve["examples"].is_unique
    assert curve["examples"].iloc[0] == 0
    last = curve.iloc[-1]
    for key in ("examples", "steps", "flops", "train_seconds"):
        assert last[key] == pytest.approx(run.summary[f"total_{key}"]), key
    assert list(dict.fromkeys(curve["phase"])) == [name for name, _, _ in EXPECTED_PHASES[arm]]
    assert (curve["run_id"] == run.summary["run_id"]).all()


def test_subset_memberships_are_the_nested_subsets_of_the_seed(arms, mini):
    phases = json.loads(arms["growing"].summary["phases"])
    for p in phases.values():  # growing draws uniformly at random (uniform=True by default)
        expected = subsets.subset_indices(mini.y_train, p["fraction"], 0, stratified=False)
        assert p["membership"] == subsets.membership_hash(expected)
    assert phases["stage2"]["membership"] == subsets.membership_hash(torch.arange(400))
    sweep = json.loads(arms["sweep-1"].summary["phases"])
    stratified = subsets.subset_indices(mini.y_train, 0.25, 0, stratified=True)
    assert sweep["subset"]["membership"] == subsets.membership_hash(stratified)
    assert arms["subset-q"].summary["subset_Q"] >= 0.05


def test_run_ids_tell_arms_apart(arms):
    ids = [run.summary["run_id"] for run in arms.values()]
    assert len(set(ids)) == len(ids)
    assert [arms[a].summary["protocol"] for a in sorted(arms)] == [
        "conventional", "growing", "subset", "subset", "subset"]  # a sweep is subset runs that differ in E_s


# ---------------------------------------------------------------------------------------------------------------------
# Provenance

PROVENANCE = ("git_commit", "git_dirty", "device", "threads", "torch_version", "cuda_version", "subsetlib_version",
              "python_version", "host", "data_root", "started", "ended")


def test_provenance_survives_save_and_load(arms, mini, tmp_path):
    started = datetime.now().astimezone()
    rid = results.save(arms["sweep-2"], mini, tmp_path / "res", started=started)
    runs, curves = results.load(tmp_path / "res"), results.load(tmp_path / "res", "curves")
    assert runs["run_id"].tolist() == [rid] and set(curves["run_id"]) == {rid}
    assert len(curves) == len(arms["sweep-2"].curve)
    for table in (runs, curves):
        for column in (*PROVENANCE, "run_id", "subset_membership" if table is runs else "subset_Q"):
            assert column in table, column
            assert table[column].notna().all() and (table[column].astype(str).str.len() > 0).all(), column
    row = runs.iloc[0]
    assert len(row["git_commit"]) == 40 or row["git_commit"] == "unknown"
    assert row["torch_version"] == torch.__version__ and row["device"].startswith("cpu")
    assert row["subset_membership"] == json.loads(row["phases"])["subset"]["membership"]
    assert datetime.fromisoformat(row["started"]) <= datetime.fromisoformat(row["ended"])


# ---------------------------------------------------------------------------------------------------------------------
# Grids of notebooks on a real Dask cluster

GRID_VALUES = {"seed": [0, 1], "lr": [0.001, 0.002]}


def write_grid(tmp_path: Path, grid: dict | None = None, **stage_keys) -> Path:
    notebook = write_notebook(tmp_path / "notebooks" / "one_run.ipynb", SAVE_ONE_RUN)
    spec = {"profile": "toy", "scale": "toy: tests", "results": str(tmp_path / "results"),
            "output_dir": str(tmp_path / "book"),
            "stages": [{"notebook": str(notebook), "output": "cell-{seed}-{lr}.ipynb", "parameters": {"epochs": 1},
                        "grid": grid or GRID_VALUES, **stage_keys}]}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def check_every_cell_once(tmp_path: Path) -> None:
    """Four cells: four 'done' states, four notebooks, four runs, nothing twice, nothing half-written."""
    states = [json.loads(p.read_text()) for p in (tmp_path / "results" / "cells").iterdir()]
    assert sorted(s["status"] for s in states) == ["done"] * 4, states
    assert len({s["key"] for s in states}) == 4
    names = sorted(p.name for p in (tmp_path / "book").iterdir())  # hidden partial notebooks included
    assert names == sorted(f"cell-{s}-{lr}.ipynb" for s in (0, 1) for lr in (0.001, 0.002)), names
    for path in (tmp_path / "book").iterdir():
        assert json.loads(path.read_text())["cells"], path
    for path in (tmp_path / "results").rglob("*"):
        if path.suffix == ".parquet":
            pd.read_parquet(path)
        assert not path.name.endswith(".tmp"), path
    runs = results.load(tmp_path / "results")
    assert len(runs) == 4 and runs["run_id"].is_unique
    assert sorted(zip(runs["seed"], runs["lr"], strict=True)) == [(s, lr) for s in (0, 1) for lr in (0.001, 0.002)]
    curves = results.load(tmp_path / "results", "curves")
    assert curves.groupby("run_id").size().tolist() == [2] * 4  # before and after the one epoch, once each


def test_grid_of_four_cells_on_a_local_cluster(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    grid = write_grid(tmp_path)
    report = batch.run_grid(grid, workers=2, progress=False)
    assert [s["status"] for s in report.states] == ["done"] * 4, report
    assert (report.ran, report.failed_now, report.skipped_done) == (4, 0, 0)
    check_every_cell_once(tmp_path)
    executed = json.loads((tmp_path / "book" / "cell-1-0.002.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0]["metadata"]["tags"]
    assert "lr = 0.002" in "".join(injected[0]["source"]) and "seed = 1" in "".join(injected[0]["source"])
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which slows CPU training 2-3x: the kernel must not have it
    printed = printed_by(tmp_path / "book" / "cell-1-0.002.ipynb")
    assert "MALLOC_TRIM_THRESHOLD_ = None" in printed, printed
    assert f"OMP_NUM_THREADS = {max(1, os.cpu_count() // 2)}" in printed, printed  # the cores shared by 2 workers
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    again = batch.run_grid(grid, workers=2, progress=False)
    assert [s["status"] for s in again.states] == ["done"] * 4
    assert (again.ran, again.skipped_done) == (0, 4)
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}  # a rerun touches nothing


def printed_by(notebook: Path) -> str:
    executed = json.loads(notebook.read_text())
    return "".join("".join(o.get("text", "")) for c in executed["cells"] if c["cell_type"] == "code"
                   for o in c["outputs"])


def test_a_one_cell_grid_gives_its_kernel_every_core(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = write_grid(tmp_path, {"seed": [0], "lr": [0.001]})
    report = batch.run_grid(grid, workers=2, progress=False)
    assert [s["status"] for s in report.states] == ["done"]
    assert f"OMP_NUM_THREADS = {os.cpu_count()}" in printed_by(tmp_path / "book" / "cell-0-0.001.ipynb")


def test_a_refresh_stage_renders_again_on_every_call(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = write_grid(tmp_path, {"seed": [0], "lr": [0.001]}, refresh=True)
    page = tmp_path / "book" / "cell-0-0.001.ipynb"
    assert batch.run_grid(grid, workers=1, progress=False).ran == 1
    first = page.stat().st_mtime_ns
    again = batch.run_grid(grid, workers=1, progress=False)
    assert (again.ran, again.skipped_done, again.states[0]["status"]) == (1, 0, "done")
    assert page.stat().st_mtime_ns > first  # rendered again: what is stored may have changed meanwhile


def test_again_renders_matching_done_cells_once_more_and_leaves_the_others(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = write_grid(tmp_path, {"seed": [0, 1], "lr": [0.001]})
    assert batch.run_grid(grid, workers=1, progress=False).ran == 2
    pages = {seed: tmp_path / "book" / f"cell-{seed}-0.001.ipynb" for seed in (0, 1)}
    first = {seed: page.stat().st_mtime_ns for seed, page in pages.items()}
    again = batch.run_grid(grid, workers=1, progress=False, again="cell-1-*")
    assert (again.ran, again.skipped_done) == (1, 1)
    assert pages[0].stat().st_mtime_ns == first[0] and pages[1].stat().st_mtime_ns > first[1]
    assert len(results.load(tmp_path / "results")) == 2  # drawn again from the stored run, not trained twice


def test_grid_runner_killed_halfway_resumes_exactly_once(tmp_path, children):
    grid = write_grid(tmp_path)
    cells = tmp_path / "results" / "cells"
    runner = children(["batch", str(grid), "--workers", "2"], tmp_path)
    wait_for(lambda: cells.is_dir() and any(p.suffix == ".json" for p in cells.iterdir()), 240,
             "the first cell's state file", runner)
    runner.kill_group()
    assert not reap(runner.marker), "Dask workers or Jupyter kernels outlived the killed runner"
    finished = [json.loads(p.read_text()) for p in cells.glob("*.json")]  # every state file that is there loads
    assert 1 <= len(finished) < 4, "the runner was not killed halfway"
    for path in (tmp_path / "results").rglob("*.parquet"):
        pd.read_parquet(path)
    for path in (tmp_path / "book").glob("cell-*.ipynb"):  # notebooks in place are whole (renamed into place)
        assert json.loads(path.read_text())["cells"], path
    assert len(results.load(tmp_path / "results")) < 4

    rerun = children(["batch", str(grid), "--workers", "2"], tmp_path)
    rc, out, err = rerun.wait(timeout=300)
    assert rc == 0, err[-3000:]
    ran, skipped = map(int, re.search(r"(\d) cells ran \(0 failed\), (\d) skipped as already done", out).groups())
    assert ran >= 1 and ran + skipped == 4 and skipped == len(finished), out
    check_every_cell_once(tmp_path)
