"""The study's analysis and the claims' verdict rules, on hand-made tables (each rule must be able to fail)."""

import json
import math

import pandas as pd
import pytest

from subsetlib import accounting, claims, study


def test_epochs_for_steps_gives_at_least_the_steps():
    assert study.epochs_for_steps(1500, 30000, 128) == 7  # 235 steps an epoch
    assert study.epochs_for_steps(1500, 469, 128) == 375  # 4 steps an epoch
    assert study.epochs_for_steps(10, 60000, 128) == 1


def test_equal_budget_stages_share_the_budget_before_the_full_set():
    epochs = study.equal_budget_stages(1 / 16, 2.0, 192_000, 4, 60_000)
    assert epochs == [13, 6, 3, 2, 4]
    spent = sum(e * f * 60_000 for e, f in zip(epochs[:-1], [1 / 16, 1 / 8, 1 / 4, 1 / 2], strict=True))
    assert abs(spent - 192_000) / 192_000 < 0.1


def _curve(run_id, phase, points):
    return [{"run_id": run_id, "phase": phase, "examples": e, "steps": e // 100, "flops": 10.0 * e,
             "train_seconds": e / 1000, "epoch_equivalents": e / 1000, "test_acc": a, "train_loss": loss,
             "subset_loss": s} for e, a, loss, s in points]


def _tables():
    """Two seeds; a conventional arm and one subset arm (fraction 1/4, Q 4) that reaches the targets sooner."""
    runs, curves = [], []
    for seed in (0, 1):
        conv, sub = f"conv{seed}", f"sub{seed}"
        runs.append({"run_id": conv, "protocol": "conventional", "seed": seed, "model": "m", "P": 10,
                     "subset_fraction": 1.0, "subset_K": 1000, "subset_Q": 10.0, "subset_epochs": math.nan,
                     "epoch_equivalents": 6.0, "K_full": 1000, "phases": json.dumps({"full": {"fraction": 1.0,
                                                                                              "examples": 6000}})})
        curves += _curve(conv, "full", [(0, 0.1, 2.3, math.nan), (1000, 0.90, 0.30, math.nan),
                                        (3000, 0.97, 0.12, math.nan), (6000, 0.98, 0.10, math.nan)])
        runs.append({"run_id": sub, "protocol": "subset", "seed": seed, "model": "m", "P": 10,
                     "subset_fraction": 0.25, "subset_K": 250, "subset_Q": 4.0, "subset_epochs": 4,
                     "epoch_equivalents": 3.0, "K_full": 1000,
                     "phases": json.dumps({"subset": {"fraction": 0.25, "examples": 1000},
                                           "finetune": {"fraction": 1.0, "examples": 2000}})})
        curves += _curve(sub, "subset", [(0, 0.1, 2.3, 2.3), (500, 0.95, 0.14, 0.05), (1000, 0.977, 0.13, 0.046)])
        curves += _curve(sub, "finetune", [(1500, 0.979, 0.105, math.nan), (3000, 0.981, 0.09, math.nan)])
    return pd.DataFrame(runs), pd.DataFrame(curves)


def test_plateau_targets_minima_and_costs():
    runs, curves = _tables()
    plateau = study.conventional_plateau(runs, curves)
    assert plateau["acc"] == pytest.approx(0.98) and plateau["loss"] == pytest.approx(0.10)
    assert plateau["plateau_epoch"] == pytest.approx(6.0)  # the first evaluation within 0.1 point of 98 %
    goals = study.targets(plateau)
    assert goals.loc[goals["main"], "target"].tolist() == pytest.approx([0.978, 0.125])
    minima = study.subset_minimum(runs, curves, plateau)
    assert minima["loss_ratio"].tolist() == pytest.approx([1.3, 1.3])
    assert minima["plateaued"].all() and minima["close"].all()
    costs = accounting.time_to_target(runs, curves, goals)
    main_acc = accounting.main_target(costs, protocol="subset")
    assert main_acc["examples"].tolist() == [1500, 1500]  # the whole subset phase is counted
    assert main_acc["examples_ratio"].tolist() == pytest.approx([0.25, 0.25])
    assert main_acc["pre_cost"].tolist() == pytest.approx([1.0, 1.0])
    tenth = study.tenth_requirements(costs, plateau)
    assert tenth["conventional_for_tenth"].tolist() == pytest.approx([30.0])


def test_verdicts_follow_their_rules():
    runs, curves = _tables()
    plateau = study.conventional_plateau(runs, curves)
    goals = study.targets(plateau)
    minima = study.subset_minimum(runs, curves, plateau)
    costs = accounting.time_to_target(runs, curves, goals)
    assert claims.subset_minimum_close(minima).verdict == claims.REPRODUCED
    far = minima.assign(close=[True, False])
    assert claims.subset_minimum_close(far).verdict == claims.PARTLY
    assert claims.subset_minimum_close(minima.assign(close=False)).verdict == claims.REFUTED
    assert claims.subset_minimum_close(minima.assign(Q=2.0)).verdict == claims.NOT_TESTABLE
    assert claims.q_threshold(minima).verdict == claims.NOT_TESTABLE  # nothing below Q = 1
    assert claims.equal_results(costs, goals).verdict == claims.REPRODUCED
    # a ratio of 0.25 with a subset phase of 1 epoch against 0.1 × 3 epochs of conventional: a tenth was impossible
    assert claims.tenth_time_to_target(costs).verdict == claims.NOT_TESTABLE
    cheap = costs.assign(pre_cost=0.1)
    assert claims.tenth_time_to_target(cheap).verdict == claims.REFUTED
    assert claims.tenth_time_to_target(cheap.assign(examples_ratio=0.05)).verdict == claims.REPRODUCED
    assert claims.any_saving(costs).verdict == claims.REPRODUCED
    assert claims.any_saving(costs.assign(reached=False)).verdict == claims.REFUTED


def test_q_threshold_and_q_governs():
    rows = [{"fraction": f, "Q": q, "close": c, "loss_ratio": r, "seed": 0}
            for f, q, c, r in [(0.5, 8.0, True, 1.1), (0.125, 2.0, True, 1.4), (1 / 32, 0.5, False, 3.0)]]
    minima = pd.DataFrame(rows)
    assert claims.q_threshold(minima).verdict == claims.REPRODUCED
    assert claims.q_threshold(minima.assign(close=True)).verdict == claims.PARTLY
    wide = minima.assign(model="wide")
    # the narrow model has Q 4× higher at each fraction; a gap that follows Q matches the wide model at equal Q
    narrow = pd.DataFrame([{"fraction": f, "Q": q, "close": True, "loss_ratio": r, "seed": 0, "model": "narrow"}
                           for f, q, r in [(1 / 8, 8.0, 1.1), (1 / 32, 2.0, 1.4), (1 / 128, 0.5, 3.0)]])
    follows_q = study.q_or_fraction(pd.concat([wide, narrow]))
    assert claims.q_governs(follows_q).verdict == claims.REPRODUCED
    # a gap that follows the fraction: the narrow model at each fraction matches the wide one at that fraction
    by_fraction = narrow.assign(fraction=[0.5, 0.125, 1 / 32], Q=[32.0, 8.0, 2.0])
    follows_f = study.q_or_fraction(pd.concat([wide, by_fraction]))
    assert claims.q_governs(follows_f).verdict == claims.REFUTED
    assert claims.q_governs(study.q_or_fraction(wide)).verdict == claims.NOT_TESTABLE


def _phases(subset_steps: int) -> str:
    return json.dumps({"subset": {"fraction": 0.5, "steps": subset_steps}, "finetune": {"fraction": 1.0, "steps": 100}})


def test_scale_of_runs_reads_the_runs():
    runs = pd.DataFrame([
        {"protocol": "conventional", "seed": 0, "model": "m", "augment": True, "epochs": 15, "finetune_epochs": None,
         "phases": json.dumps({"full": {"fraction": 1.0, "steps": 10}})},
        {"protocol": "subset", "seed": 0, "model": "m", "augment": True, "epochs": None, "finetune_epochs": 3,
         "phases": _phases(980)},
        {"protocol": "subset", "seed": 1, "model": "m", "augment": True, "epochs": None, "finetune_epochs": 3,
         "phases": _phases(1000)},
    ])
    assert study.scale_of_runs(runs) == ("2 seeds, m with augmentation; conventional 15 epochs; subsets 980–1,000 steps"
                                       " + 3 fine-tuning epochs")


def test_subset_phase_and_loss_texts_come_from_the_runs():
    minima = pd.DataFrame({"fraction": [0.5, 0.5, 1 / 16, 1 / 16], "subset_steps": [980, 980, 800, 800],
                           "subset_loss": [0.9, 1.0, 0.6, 0.64]})
    assert study.subset_phase_text(minima) == "800 to 980 steps"
    assert study.subset_phase_text(minima[minima["fraction"] == 0.5]) == "980 steps"
    text = study.subset_loss_text(minima)
    assert "0.62 on 1/16" in text and "0.95 on 1/2" in text and "no subset was memorised" in text
    memorised = study.subset_loss_text(minima.assign(subset_loss=[0.9, 1.0, 0.001, 0.003]))
    assert "memorised (loss below 0.02): 1/16" in memorised
    assert study.arm_name("conventional") == "conventional" and study.arm_name("subset", 1 / 16) == "subset 1/16"


def test_answer_sentences_say_the_verdicts_in_words():
    table = pd.DataFrame({"claim": ["Equal results (MNIST)", "Equal results (Fashion-MNIST)", "A tenth (MNIST)",
                                    "Larger models"],
                          "verdict": [claims.REFUTED, claims.REFUTED, claims.NOT_TESTABLE, claims.NOT_RUN]})
    text = claims.answer_sentences(table)
    assert text.startswith("At this scale the first study refuted “Equal results” (on at least one dataset).")
    assert "Of its 4 verdicts" in text and "2 refuted, 1 not testable at its budget, 1 not run" in text
    assert "refuted none" in claims.answer_sentences(table[table["verdict"] != claims.REFUTED])
