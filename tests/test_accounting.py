"""The one accounting, on hand-made curves: the cost at a target is the first crossing, and a cost ratio is divided
by the conventional run of the same seed (never by a mean over seeds)."""

import math

import pandas as pd
import pytest

from subsetlib import accounting
from subsetlib.present import fraction_text


def curve(run_id: str, examples: list[int], acc: list[float], loss: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"run_id": run_id, "examples": examples, "test_acc": acc, "train_loss": loss,
                         "flops": [10.0 * e for e in examples], "train_seconds": [e / 1000 for e in examples],
                         "epoch_equivalents": [e / 1000 for e in examples]})


CURVES = pd.concat([
    # targets (GOALS): test_acc >= 0.885, train_loss <= 0.214
    curve("c0", [0, 500, 1000, 1500, 2000], [0.1, 0.6, 0.87, 0.89, 0.89], [2.3, 0.8, 0.3, 0.21, 0.19]),
    curve("c1", [0, 500, 1000, 1500, 2000], [0.1, 0.7, 0.90, 0.91, 0.91], [2.3, 0.5, 0.21, 0.2, 0.21]),
    curve("s0", [0, 250, 500, 750, 1000, 1500], [0.1, 0.5, 0.88, 0.89, 0.91, 0.91], [2.3, 1.0, 0.5, 0.3, 0.2, 0.18]),
    curve("s1", [0, 250, 500, 750, 1000, 1500], [0.1, 0.2, 0.3, 0.4, 0.5, 0.5], [2.3, 2.0, 1.5, 1.2, 1.0, 0.9]),
], ignore_index=True)
RUNS = pd.DataFrame([
    {"run_id": "c0", "protocol": "conventional", "seed": 0, "epochs": 2, "subset_fraction": 1.0, "subset_Q": 25.0,
     "final_test_acc": 0.89, "min_train_loss": 0.19},
    {"run_id": "c1", "protocol": "conventional", "seed": 1, "epochs": 2, "subset_fraction": 1.0, "subset_Q": 25.0,
     "final_test_acc": 0.91, "min_train_loss": 0.21},
    {"run_id": "s0", "protocol": "subset", "seed": 0, "subset_fraction": 0.25, "subset_Q": 6.3, "subset_epochs": 2,
     "finetune_epochs": 1, "final_test_acc": 0.91, "min_train_loss": 0.18},
    {"run_id": "s1", "protocol": "subset", "seed": 1, "subset_fraction": 0.25, "subset_Q": 6.3, "subset_epochs": 2,
     "finetune_epochs": 1, "final_test_acc": 0.5, "min_train_loss": 0.9},
])


def test_cost_at_target_is_the_first_crossing():
    s0 = CURVES[CURVES["run_id"] == "s0"]
    assert accounting.cost_at_target(s0, "test_acc", 0.885) == {
        "examples": 750, "flops": 7500.0, "train_seconds": 0.75, "epoch_equivalents": 0.75}
    assert accounting.cost_at_target(s0, "train_loss", 0.25)["examples"] == 1000  # a loss must fall to the target
    assert accounting.cost_at_target(s0, "test_acc", 0.89)["examples"] == 750  # reaching it exactly counts
    shuffled = s0.sample(frac=1, random_state=1)
    assert accounting.cost_at_target(shuffled, "test_acc", 0.885)["examples"] == 750  # order of rows is irrelevant
    assert accounting.cost_at_target(s0, "test_acc", 0.95) is None
    assert accounting.cost_at_target(s0, "subset_acc", 0.5) is None  # a metric the curve lacks


GOALS = pd.DataFrame([{"metric": "test_acc", "target": 0.885, "label": "acc", "main": True},
                      {"metric": "train_loss", "target": 0.214, "label": "loss", "main": True}])


def test_time_to_target_reports_the_run_that_never_gets_there():
    table = accounting.time_to_target(RUNS, CURVES, GOALS).set_index(["run_id", "metric"])
    assert len(table) == 8  # every run, both metrics: nothing dropped
    expected = {("c0", "test_acc"): 1500, ("c1", "test_acc"): 1000, ("s0", "test_acc"): 750,
                ("c0", "train_loss"): 1500, ("c1", "train_loss"): 1000, ("s0", "train_loss"): 1000}
    for key, examples in expected.items():
        assert table.loc[key, "reached"], key
        assert table.loc[key, "examples"] == examples, key
        assert table.loc[key, "flops"] == 10 * examples, key
    for metric in ("test_acc", "train_loss"):
        never = table.loc[("s1", metric)]
        assert not never["reached"]
        assert math.isnan(never["examples"]) and math.isnan(never["examples_ratio"])


def test_a_cost_ratio_is_divided_by_the_conventional_run_of_the_same_seed():
    """s0 (seed 0) reached the accuracy target after 750 examples, c0 (seed 0) after 1,500, c1 (seed 1) after 1,000:
    the ratio is 750 / 1,500 = 0.5, not 750 / 1,250 (the seed mean) = 0.6."""
    table = accounting.time_to_target(RUNS, CURVES, GOALS).set_index(["run_id", "metric"])
    assert table.loc[("s0", "test_acc"), "examples_ratio"] == pytest.approx(750 / 1500)
    assert table.loc[("s0", "train_loss"), "flops_ratio"] == pytest.approx(1000 / 1500)
    assert table.loc[("c1", "test_acc"), "examples_ratio"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one conventional run per seed"):
        accounting.time_to_target(pd.concat([RUNS, RUNS.iloc[[0]].assign(run_id="c0b")]), CURVES, GOALS)


def test_by_arm_and_the_summary_count_seeds_and_reached():
    table = accounting.time_to_target(RUNS, CURVES, GOALS)
    arms = accounting.with_arms(RUNS).set_index("run_id")["arm"]
    summary = accounting.time_to_target_summary(table, arms).set_index(["metric", "arm"])
    assert set(summary.index.get_level_values("arm")) == {"conventional, 2 ep", "subset 1/4 (Q=6.3), 2+1 ep"}
    row = summary.loc[("test_acc", "subset 1/4 (Q=6.3), 2+1 ep")]
    assert row["seeds"] == 2 and row["reached"] == 1 and row["examples_ratio_mean"] == pytest.approx(0.5)
    assert "1 of 2 seeds" not in accounting.reference_note(summary.reset_index())  # conventional reached in both
    assert "2 of 2 seeds (test accuracy)" in accounting.reference_note(summary.reset_index())


def test_main_target_picks_the_plans_main_target():
    table = accounting.time_to_target(RUNS, CURVES, GOALS.assign(main=[True, False]))
    assert set(accounting.main_target(table)["metric"]) == {"test_acc"}
    assert set(accounting.main_target(table, protocol="subset")["run_id"]) == {"s0", "s1"}
    assert accounting.main_target(table, "train_loss").empty


def test_one_fraction_text():
    assert [fraction_text(f) for f in (0.5, 1 / 16, 0.3, 1.0)] == ["1/2", "1/16", "0.3", "full set"]
