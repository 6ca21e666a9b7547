"""The study at certified minima end to end at smoke size: what one stored group holds, that its parameters are
refused in one line before anything runs, and that the analysis reads what was stored."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from subsetlib.certified import analysis, runs
from subsetlib.certified.design import DESIGNS, Design, parameters, subset_size
from subsetlib.cli import main
from subsetlib.errors import UserError
from subsetlib.subsets import membership_hash, subset_of_size


@pytest.fixture(scope="module")
def stored(tmp_path_factory, one_thread):
    folder = tmp_path_factory.mktemp("certified")
    ran = runs.train("synthetic", 2, folder)
    return folder, ran


def test_a_group_stores_every_arm_with_its_certificate(stored):
    folder, ran = stored
    d = DESIGNS["synthetic"]
    assert len(ran) == len(d.seeds) * len(d.objectives)
    arms, curves = runs.load(folder)
    p = parameters(49, 2, 10)
    expected = {"scratch": 1, "subset": sum(subset_size(q, p, 10) < d.train_size for q in d.qs),
                "finetune": len(d.finetune_qs)}
    for _, group in arms.groupby("run_id"):
        assert group["arm"].value_counts().to_dict() == expected
    for column in ("gradient_norm", "relative_gradient", "lambda_min", "lambda_max", "certified", "on_budget"):
        assert arms[column].notna().all()
    assert arms["precision"].eq("fp64").all() and arms["p"].eq(p).all()
    assert set(curves["arm"]) == {"scratch", "finetune"}


def test_subsets_are_exactly_k_and_nested_by_seed(stored):
    folder, _ = stored
    arms, _ = runs.load(folder)
    part = runs.features("synthetic", DESIGNS["synthetic"].train_size, 4)[0]
    for _, arm in arms[arms["arm"] == "subset"].iterrows():
        idx = subset_of_size(part.y_train, int(arm["k"]), int(arm["seed"]))
        assert len(idx) == arm["k"] and membership_hash(idx) == arm["subset_hash"]
    small, large = (subset_of_size(part.y_train, k, 0) for k in (13, 52))
    assert set(small.tolist()) <= set(large.tolist())


def test_every_arm_of_a_seed_starts_from_the_same_weights():
    a, b = runs.network(49, 3, 10, 7), runs.network(49, 3, 10, 7)
    assert np.array_equal(a.initial().numpy(), b.initial().numpy())
    assert not np.array_equal(a.initial().numpy(), runs.network(49, 3, 10, 8).initial().numpy())


def test_a_stored_group_is_not_run_again(stored):
    folder, _ = stored
    assert runs.train("synthetic", 2, folder) == []


def test_the_analysis_reads_the_stored_groups(stored):
    folder, _ = stored
    arms, curves = runs.load(folder)
    close = analysis.closeness(arms)
    assert set(close["q"]) == {q for q in DESIGNS["synthetic"].qs}
    assert close["pairs"].le(len(DESIGNS["synthetic"].seeds)).all()
    per_seed = analysis.costs(arms, curves)
    reached = per_seed["flops_through"].dropna()
    assert len(reached) and (reached > 0).all()  # NaN: a fine-tuning that never reached that target
    prediction = analysis.prediction(arms)
    assert prediction["predicted"].gt(0).all()


def test_a_verdict_reads_only_certified_pairs():
    """A hand-made table: one seed's subset phase is not certified, so only two pairs remain (no interval)."""
    rows = []
    for seed in range(3):
        common = {"run_id": f"g{seed}", "dataset": "mnist", "width": 2, "loss": "squared", "l2": 1e-4, "seed": seed,
                  "p": 130, "n": 2500}
        rows.append({**common, "arm": "scratch", "q": math.nan, "k": 2500, "certified": True,
                     "full_objective": 1.0, "test_accuracy": 0.9, "effective_dimension": 100.0})
        rows.append({**common, "arm": "subset", "q": 8.0, "k": 104, "certified": seed != 0,
                     "full_objective": 1.01, "test_accuracy": 0.9, "effective_dimension": math.nan})
    close = analysis.closeness(pd.DataFrame(rows))
    assert close["pairs"].tolist() == [2]
    assert close["verdict"].tolist() == ["inconclusive at 2 seeds"]
    assert "per seed" in close["ratio"].iloc[0]


@pytest.mark.parametrize(("changes", "fix"), [
    ({"objectives": (("hinge", 1e-4),)}, "choose one of squared, cross-entropy"),
    ({"objectives": (("squared", -1.0),)}, "finite number >= 0"),
    ({"qs": (0.0, 1.0)}, "every Q must be a number > 0"),
    ({"finetune_qs": (3.0,)}, "must be among qs"),
    ({"seeds": (0, 1)}, "at least 3 seeds"),
    ({"method": "newton"}, "unknown method"),
    ({"max_calls": 0}, "max_calls must be a whole number"),
])
def test_bad_designs_are_refused_in_one_line(changes, fix):
    base = {field: getattr(DESIGNS["synthetic"], field) for field in Design.__dataclass_fields__}
    with pytest.raises(UserError, match=fix):
        Design(**{**base, **changes})


@pytest.mark.parametrize(("argv", "expected"), [
    (["page", "notebooks/certified_runs.ipynb", "-p", "minima_design", "nosuch"], "unknown design 'nosuch'"),
    (["page", "notebooks/certified_runs.ipynb", "-p", "minima_design", "mnist", "-p", "width", "7"],
     "design 'mnist' has widths (2, 6, 18) (got 7)"),
    (["page", "notebooks/certified_answer.ipynb", "-p", "minima_designs", "[mnist, x]"], "unknown design 'x'"),
    (["bench", "--minimiser", "--dataset", "nosuch"], "unknown design 'nosuch'"),
])
def test_bad_study_parameters_end_in_one_line_before_anything_runs(argv, expected, tmp_path, monkeypatch, capsys):
    from subsetlib.repo import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    before = sorted((REPO_ROOT / "results").rglob("*certified*"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
    assert sorted((REPO_ROOT / "results").rglob("*certified*")) == before


def test_stored_rows_are_plain_json_per_arm(stored):
    folder, ran = stored
    row = pd.read_parquet(folder / "runs" / f"{ran[0]}.parquet").iloc[0]
    arms = json.loads(row["arms"])
    assert {a["arm"] for a in arms} == {"scratch", "subset", "finetune"}
    assert len(arms[0]["theta"]) == row["p"]
