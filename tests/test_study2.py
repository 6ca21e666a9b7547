"""Study v2's analysis on hand-made runs: the rule decides "converged", only converged phases get "close" or
"equal", "refuted" needs a long enough fine-tuning phase, and Q-or-fraction is judged on every metric."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from subsetlib import (
    ladders,
    studies,
    study2,
    study2_analysis,
    study2_answer,
    study2_progress,
    study2_report,
    verdicts,
)

D = studies.Design("mnist", seeds=(0, 1, 2), epochs=4)


def minima_of(runs, curves):
    return ladders.minima(runs, curves, ladders.ladders(runs, curves))


def run(rid, protocol, seed, loss, acc, *, fraction=1.0, epochs=math.nan, subset_epochs=math.nan, subset_loss=None,
        model="cnn-simple", q=25.0, p=23946, flops=1e12, phases=None):
    """One run with a one- or two-phase curve: the first phase ends at (loss, acc) and, for a subset run, the
    subset loss ``subset_loss``."""
    summary = {"run_id": rid, "protocol": protocol, "model": model, "seed": seed, "subset_fraction": fraction,
               "subset_Q": q, "P": p, "epochs": epochs, "subset_epochs": subset_epochs, "finetune_epochs": math.nan,
               "final_train_loss": loss, "final_test_acc": acc, "total_flops": flops, "epoch_equivalents": 1.0,
               "phases": json.dumps(phases or {})}
    phase = "full" if fraction >= 1 else "subset"
    curve = [{"run_id": rid, "phase": phase, "examples": 0, "train_loss": 2.3, "test_acc": 0.1,
              "subset_loss": 2.3, "flops": 0.0},
             {"run_id": rid, "phase": phase, "examples": 100, "train_loss": loss, "test_acc": acc,
              "subset_loss": subset_loss if subset_loss is not None else math.nan, "flops": flops}]
    return summary, curve


def frames(*made):
    return pd.DataFrame([s for s, _ in made]), pd.DataFrame([row for _, c in made for row in c])


def test_the_minimum_is_read_at_the_first_converged_pair():
    runs, curves = frames(
        run("c4", "conventional", 0, 0.050, 0.980, epochs=4),
        run("c8", "conventional", 0, 0.030, 0.985, epochs=8),  # 40 % lower: 4 not converged
        run("c16", "conventional", 0, 0.028, 0.986, epochs=16),  # 6.7 % lower: 8 converged
        run("c32", "conventional", 0, 0.020, 0.987, epochs=32))
    pairs = ladders.ladders(runs, curves)
    assert pairs["converged"].tolist() == [False, True, False]
    mins = minima_of(runs, curves)
    assert mins.loc[0, "converged"]
    assert mins.loc[0, "run_id"] == "c16"  # the longer run of the first converged pair
    assert mins.loc[0, "train_loss"] == pytest.approx(0.028)


def test_a_phase_that_never_passes_is_not_converged():
    runs, curves = frames(run("c4", "conventional", 0, 0.050, 0.98, epochs=4),
                          run("c8", "conventional", 0, 0.030, 0.985, epochs=8))
    mins = minima_of(runs, curves)
    assert not mins.loc[0, "converged"]
    assert mins.loc[0, "run_id"] == "c8"


def test_subset_phases_are_judged_on_their_own_loss():
    """A memorised subset: its own loss halves (0.0008 → 0.0004) but by less than 0.001 nats: converged."""
    runs, curves = frames(
        run("s10", "subset", 0, 0.40, 0.90, fraction=1 / 512, subset_epochs=10, subset_loss=0.0008, q=0.05),
        run("s20", "subset-phase", 0, 0.41, 0.90, fraction=1 / 512, subset_epochs=20, subset_loss=0.0004, q=0.05))
    pairs = ladders.ladders(runs, curves)
    assert pairs["converged"].tolist() == [True]
    assert pairs.loc[0, "loss"] == pytest.approx(0.0008)


def closeness_case(converged_conventional: bool):
    """Three seeds: conventional minimum 0.020 / 98.5 %, a subset arm at 0.021 / 98.45 % (within both margins)."""
    made = []
    for seed in range(3):
        made += [run(f"c4-{seed}", "conventional", seed, 0.0205 if converged_conventional else 0.050, 0.985, epochs=4),
                 run(f"c8-{seed}", "conventional", seed, 0.020 + 0.0001 * seed, 0.985, epochs=8),
                 run(f"s-{seed}", "subset", seed, 0.019, 0.98, fraction=0.25, subset_epochs=8, subset_loss=0.01,
                     q=6.3),
                 run(f"s2-{seed}", "subset-phase", seed, 0.021 + 0.0001 * seed, 0.9845, fraction=0.25,
                     subset_epochs=16, subset_loss=0.0095, q=6.3)]
    return frames(*made)


def test_a_close_subset_minimum_is_equal_on_both_metrics():
    runs, curves = closeness_case(converged_conventional=True)
    arm = study2_analysis.closeness_by_arm(study2_analysis.closeness(minima_of(runs, curves))).iloc[0]
    assert (arm["loss_verdict"], arm["acc_verdict"]) == ("equal", "equal")
    assert arm["excess_nats"] == pytest.approx(0.001)


def test_a_closeness_answer_with_one_converged_arm_names_its_numbers_once():
    runs, curves = closeness_case(converged_conventional=True)
    by_arm = study2_analysis.closeness_by_arm(study2_analysis.closeness(minima_of(runs, curves)))
    sentence = study2_report.closeness_sentence(by_arm, "MNIST")
    assert sentence.startswith("On MNIST, 1 subset arm with Q ≥ 3 has both phases converged: in training loss 1 "
                               "within 10 % of the full-set minimum, 0 farther")
    assert "(ratio 1.05×, excess 0.00100 nats)" in sentence and " to " not in sentence  # one arm: one value
    wider = dataclasses.replace(verdicts.RULES, loss_margin=math.log(1.2), acc_margin=0.005)  # margins in words
    sentence = study2_report.closeness_sentence(by_arm, "MNIST", wider)
    assert "within 20 % of the full-set minimum" in sentence and "within 0.5 points" in sentence


def test_the_minima_figure_gets_a_point_per_subset_minimum_with_both_runs():
    runs, curves = closeness_case(converged_conventional=True)
    points = study2_analysis.closeness_points(study2_analysis.closeness(minima_of(runs, curves)))
    assert sorted(points["run_id"]) == ["s2-0", "s2-1", "s2-2"]  # the longer run of each subset phase's pair
    assert sorted(points["ref_run_id"]) == ["c8-0", "c8-1", "c8-2"]
    assert set(points["arm"]) == {"cnn-simple, subset 1/4"}
    assert points["acc_gap_points"].tolist() == pytest.approx([-0.05] * 3)
    assert points["both_converged"].all()


def test_the_minima_figure_draws_each_width_in_its_colour_and_says_what_it_shows():
    from matplotlib.colors import to_hex

    from subsetlib import study2_figures

    runs, curves = closeness_case(converged_conventional=True)
    close = study2_analysis.closeness(minima_of(runs, curves))
    fig, caption, points = study2_figures.minima({"design": D, "close": close, "title": "MNIST"}, "a scale")
    lines = [line for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert {to_hex(line.get_color()) for line in lines} == {study2_report.WIDTH_COLOURS["cnn-simple"]}
    assert caption.startswith("MNIST: the subset minimum") and caption.endswith("Scale: a scale.")
    assert "3 runs" in caption and len(points) == 3


def test_no_close_verdict_without_a_converged_reference():
    runs, curves = closeness_case(converged_conventional=False)
    arm = study2_analysis.closeness_by_arm(study2_analysis.closeness(minima_of(runs, curves))).iloc[0]
    assert arm["usable"] == 0
    assert (arm["loss_verdict"], arm["acc_verdict"]) == ("not converged", "not converged")


def costs(ratio: float, finetune_flops: float, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"metric": "test_acc", "seed": range(n), "fraction": 0.25, "Q": 6.3,
                         "cost": [ratio * 1e12 * (1 + 0.01 * s) for s in range(n)], "conventional_cost": 1e12,
                         "ratio": [ratio * (1 + 0.01 * s) for s in range(n)], "finetune_flops": finetune_flops})


def test_a_tenth_is_refuted_only_with_a_long_enough_fine_tuning():
    def verdict(table):
        return study2_analysis.tenth_by_arm(table).loc[0, "verdict"]

    assert verdict(costs(0.8, finetune_flops=2e12)) == "refuted"
    # the first study's case: the arm's fine-tuning was shorter than conventional training needs to reach the target
    assert verdict(costs(0.8, finetune_flops=0.5e12)) == "not testable at this budget"
    assert verdict(costs(0.05, finetune_flops=0.5e12)) == "reproduced"
    assert verdict(costs(0.05, finetune_flops=0.5e12, n=2)) == "inconclusive at 2 seeds"
    # no seed reached the target within its budget: the budget decides, never "inconclusive at 0 seeds"
    assert verdict(costs(0.05, finetune_flops=0.5e12).assign(reference_converged=False)) == (
        "not testable at this budget")  # the target's reference was no minimum
    unreached = costs(0.8, finetune_flops=0.5e12).assign(cost=math.nan, ratio=math.nan)
    assert verdict(unreached) == "not testable at this budget"
    assert verdict(unreached.assign(finetune_flops=2e12)) == "refuted"


def q_case(by: str) -> pd.DataFrame:
    """Two widths whose loss ratio depends on Q (``by="Q"``) or on the fraction alone, and whose accuracy gap
    depends on the other: one metric must not decide for all."""
    rows = []
    for model, p in (("wide", 24000), ("narrow", 3000)):
        for f in (1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64):
            q = 600000 * f / p
            x = q if by == "Q" else f * 100
            rows.append({"model": model, "fraction": f, "Q": q, "seed": 0, "both_converged": True,
                         "loss_ratio": 1 + 1 / x, "train_loss": 0.02 * (1 + 1 / x),
                         "acc_gap": -0.01 / (f * 100 if by == "Q" else q)})
    return pd.DataFrame(rows)


def test_q_or_fraction_is_judged_per_metric():
    by_metric = study2_analysis.q_or_fraction(q_case("Q")).set_index("metric")["verdict"]
    assert by_metric["log of the loss ratio"] == "Q governs"
    assert by_metric["test-accuracy gap"] == "the fraction governs"
    flipped = study2_analysis.q_or_fraction(q_case("fraction")).set_index("metric")["verdict"]
    assert flipped["log of the loss ratio"] == "the fraction governs"
    assert flipped["test-accuracy gap"] == "Q governs"


def test_the_q_or_fraction_sentence_says_a_shared_verdict_once_and_different_ones_per_metric():
    same = study2_analysis.q_or_fraction(q_case("Q").assign(both_converged=False))
    assert study2_report.q_or_fraction_sentence(same, 3) == (
        "Q or the fraction (3 widths run): not testable at this budget (no converged pairs) on every metric.")
    mixed = study2_report.q_or_fraction_sentence(study2_analysis.q_or_fraction(q_case("Q")), 2)
    assert "log of the loss ratio: Q governs" in mixed and "test-accuracy gap: the fraction governs" in mixed


def test_subset_phases_get_epochs_or_steps_whichever_is_more():
    assert study2.subset_epochs(D, 30000) == 4  # 4 epochs of 235 steps > 500 steps
    assert study2.subset_epochs(D, 1875) == math.ceil(500 / 15)  # 15 steps an epoch: 34 epochs ≥ 500 steps
    assert study2.finetune_epochs(D, 34, 1875, 60000) == 3  # 34 × 1875 / 60000 ≈ 1.06 epochs spent already
    assert np.isclose(study2.finetune_epochs(D, 4, 30000, 60000), 2)


def test_every_design_builds_a_valid_run_config():
    for name, d in studies.DESIGNS.items():
        assert d.run_config(d.model).lr_schedule == "cosine"
        assert studies.design(name) is d
        assert name in (d.dataset, f"{d.dataset}-gpu", "synthetic")


def test_the_gpu_mnist_design_meets_the_target_qs_its_comment_names():
    from subsetlib import planner, registry
    from subsetlib.q import overdetermination_ratio

    d, spec = studies.design("mnist-gpu"), registry.dataset_spec("mnist")
    p = planner.count_parameters(d.model, spec)
    qs = {f: overdetermination_ratio(round(f * spec.train_size), spec.num_classes, p) for f in d.fractions}
    assert [round(qs[f], 1) for f in (1 / 16, 1 / 8, 1 / 4)] == [1.6, 3.1, 6.3]


def test_pairs_beyond_the_plans_cap_are_shown_but_never_used():
    """Three doublings from 4 epochs: pairs (4, 8), (8, 16), (16, 32). A stored 64-epoch run (the first grid's
    ladder ran one pair too many) passes the rule against 32 but must not make the arm converged."""
    losses = {4: 0.10, 8: 0.07, 16: 0.05, 32: 0.035, 64: 0.034}
    runs, curves = frames(*(run(f"c{e}", "conventional", 0, loss, 0.98, epochs=e) for e, loss in losses.items()))
    pairs = ladders.ladders(runs, curves, max_doublings=3)
    assert pairs["planned"].tolist() == [True, True, True, False]
    assert pairs["converged"].tolist() == [False, False, False, True]
    mins = ladders.minima(runs, curves, pairs)
    assert not mins.loc[0, "converged"]
    assert mins.loc[0, "run_id"] == "c32"


@pytest.mark.parametrize(("conventional_converged", "q", "planned"), [
    (True, 19.0, [True] * 4),  # question 1 judges it: four pairs, beyond the ordinary cap of two
    (False, 19.0, [True, True, False, False]),  # no converged reference: the ordinary cap
    (True, 1.2, [True, True, False, False]),  # Q below 3: the ordinary cap
])
def test_a_subset_phase_that_question_1_judges_gets_the_longer_ladder(conventional_converged, q, planned):
    """Amendment of 2026-12-05: two pairs at most, four for a subset phase with Q ≥ 3 whose seed's conventional
    ladder converged within its cap."""
    conv_losses = {8: 0.50, 16: 0.48, 32: 0.47} if conventional_converged else {8: 0.50, 16: 0.40, 32: 0.30}
    made = [run(f"c{e}", "conventional", 0, loss, 0.9, epochs=e) for e, loss in conv_losses.items()]
    made += [run(f"s{e}", "subset-phase", 0, 1.0, 0.8, fraction=1 / 32, subset_epochs=e, subset_loss=loss, q=q)
             for e, loss in {34: 0.9, 68: 0.7, 136: 0.55, 272: 0.45, 544: 0.44}.items()]
    pairs = ladders.ladders(*frames(*made), max_doublings=2, long_doublings=4)
    subset = pairs[pairs["fraction"] < 1].sort_values("budget")
    assert subset["planned"].tolist() == planned
    mins = ladders.minima(*frames(*made), pairs).set_index("fraction")
    assert bool(mins.loc[1 / 32, "converged"]) == all(planned)  # 272 → 544 passes the rule only on the long ladder


def test_the_ladder_goes_on_for_a_judged_subset_phase_and_stops_at_the_long_cap(tmp_path, synthetic, monkeypatch):
    """The synthetic design: one pair at most, two for a judged subset phase. With a rule that no pair passes, the
    subset ladder stops at the ordinary cap; when the conventional pair passes and no subset pair does, it takes the
    long cap."""
    from subsetlib import results

    d = studies.design("synthetic")
    never = dataclasses.replace(d, rules=dataclasses.replace(d.rules, converge_rel=-1.0, converge_abs=-1.0))
    study2.run_width(synthetic, never, "cnn-simple-w3", (1 / 4,), 0, str(tmp_path / "never"))  # Q = 5.1
    assert sorted(results.load(tmp_path / "never")["subset_epochs"].dropna()) == [2, 4]
    calls = iter([True])  # the first pair the rule reads is the conventional one: it passes; no later pair does
    monkeypatch.setattr(study2, "converged", lambda low, high, rules: next(calls, False))
    study2.run_width(synthetic, d, "cnn-simple-w3", (1 / 4,), 0, str(tmp_path / "long"))
    subset = results.load(tmp_path / "long").dropna(subset=["subset_epochs"])
    assert (subset["subset_Q"] >= d.rules.q_high).all() and sorted(subset["subset_epochs"]) == [2, 4, 8]


def test_the_ladder_trains_no_pair_beyond_the_cap(tmp_path, synthetic):
    """The smoke design allows one doubling: conventional runs on 1 and 2 epochs, nothing longer."""
    from subsetlib import results

    d = studies.design("synthetic")
    study2.run_width(synthetic, d, "cnn-simple-narrow", (), 0, str(tmp_path))
    assert sorted(results.load(tmp_path)["epochs"]) == [1, 2]


def test_an_equal_compute_seed_trains_the_conventional_run_on_b_and_the_equal_compute_arms_only(tmp_path, synthetic):
    from subsetlib import results

    d = dataclasses.replace(studies.design("synthetic"), seeds=(0,), equal_seeds=(1,))
    ids = study2.run_design(synthetic, d, d.model, str(tmp_path))
    extra = results.load(tmp_path).set_index("run_id").loc[ids].query("seed == 1")
    assert sorted(extra["protocol"]) == ["conventional", "subset"] and extra["epochs"].dropna().tolist() == [d.epochs]
    assert set(study2_analysis.equal_compute(results.load(tmp_path), d)["seed"]) == {0, 1}  # both seeds are paired


def progress_case():
    """MNIST, one seed: 8 → 16 epochs lowered the loss 40 % (not converged), 16 → 32 by 5 % (converged)."""
    runs, curves = frames(run("c8", "conventional", 0, 0.050, 0.98, epochs=8, model="cnn-simple-narrow"),
                          run("c16", "conventional", 0, 0.030, 0.985, epochs=16, model="cnn-simple-narrow"),
                          run("c32", "conventional", 0, 0.0285, 0.986, epochs=32, model="cnn-simple-narrow"))
    runs = runs.assign(dataset="mnist", lr_schedule="cosine")
    return runs, ladders.progress(runs, curves)


def test_the_ladder_points_carry_both_runs_of_each_conventional_pair():
    _, pairs = progress_case()
    points = ladders.ladder_points(pairs, {"mnist": "MNIST"})
    assert points[["run_id", "run_id_2x"]].values.tolist() == [["c8", "c16"], ["c16", "c32"]]
    assert points["drop_pct"].tolist() == pytest.approx([40.0, 5.0])
    assert set(points["arm"]) == {"MNIST, cnn-simple-narrow"} and points["converged"].tolist() == [False, True]


def test_the_interim_answer_opens_in_words_then_figure_bullets_and_scale():
    runs, pairs = progress_case()
    answer = study2_answer.answer(runs, pairs, {"mnist": "MNIST"}, figure='<figure>\n<img src="x"></figure>')
    first, figure, bullets, scale = answer.split("\n\n")
    assert first.startswith("**At real minima, the answer is not in yet.**") and "3 of its runs" in first
    assert "1 conventional run has passed" in first
    assert figure == '<figure> <img src="x"></figure>'  # one line: Markdown passes an HTML block through whole
    assert bullets.startswith("- MNIST, cnn-simple-narrow: 1 of 1 seed converged")
    assert scale == "Scale: " + studies.DESIGNS["mnist"].scale_text() + "."
    assert "B = 8 epochs" in scale and "at most to 64 epochs" in scale and "5 seeds" in scale


def test_the_progress_bullet_names_converged_seeds_apart_from_those_still_falling():
    def pair(seed, budget, drop, converged):
        return {"dataset": "mnist", "model": "w3", "fraction": 1.0, "seed": seed, "budget": budget, "drop": drop,
                "converged": converged, "planned": True}

    pairs = pd.DataFrame([pair(0, 8, 0.12, False), pair(0, 16, 0.0998, True),
                          pair(1, 8, 0.30, False), pair(1, 16, 0.20, False), pair(1, 32, 0.41, False)])
    [bullet] = study2_answer.progress_bullets(pairs, {"mnist": "MNIST"})
    assert bullet == ("- MNIST, w3: 1 of 2 seeds converged so far (at 16 → 32 epochs, where the loss fell 9.98 %); "
                      "at each other seed's last doubling stored (up to 32 → 64 epochs) the training loss still "
                      "fell 41 %.")
    [one] = study2_answer.progress_bullets(pairs[pairs["seed"] == 1], {"mnist": "MNIST"})
    assert one.startswith("- MNIST, w3: 0 of 1 seed converged so far;")
    # once every run of the dataset is stored, its bullet is the final word: no "so far", no "stored"
    [final] = study2_answer.progress_bullets(pairs, {"mnist": "MNIST"}, final=frozenset({"mnist"}))
    assert final == bullet.replace(" so far", "").replace(" stored", "")


def test_the_interim_answer_without_pairs_says_none_is_stored():
    runs, _ = progress_case()
    answer = study2_answer.answer(runs.iloc[:1], pd.DataFrame(), {"mnist": "MNIST"})
    assert "no budget-doubling pair is stored yet" in answer.split("\n\n")[0]
    assert answer.split("\n\n")[-1].startswith("Scale: MNIST: cnn-simple-narrow, cnn-simple-w3, 5 seeds")


def lbfgs_case(subset_cost: float, finetune_flops: float, reference_losses: tuple = (1.0, 0.1005, 0.1002, 0.1)
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three seeds of the second-order track: full-set L-BFGS reaches its own result at 10 TFLOPs (converged, unless
    ``reference_losses`` still fall); the subset arm reaches it at ``subset_cost`` (per seed ±1 %); Adam never does."""
    runs, curves = [], []
    reference = {"flops": 10e12, "K": 1000, "Q": 10.0, "lbfgs_stopped": "iterations", "lbfgs_iterations_done": 4,
                 "lbfgs_losses": json.dumps(list(reference_losses))}
    for seed in range(3):
        for protocol, fraction, cost, phases in (
                ("lbfgs-full", 1.0, 10.0, {"lbfgs-full": reference}),
                ("lbfgs-subset-full", 0.125, subset_cost * (1 + 0.01 * seed),
                 {"lbfgs": {"flops": 1e12}, "lbfgs-full": {"flops": finetune_flops}}),
                ("conventional", 1.0, math.inf, {"full": {"flops": 5e12}})):
            rid = f"{protocol}-{seed}"
            runs.append({"run_id": rid, "protocol": protocol, "seed": seed, "subset_fraction": fraction,
                         "subset_Q": 15.0, "epochs": 8.0 if protocol == "conventional" else math.nan,
                         "final_train_loss": 0.1, "final_test_acc": 0.97, "phases": json.dumps(phases)})
            reach = cost if math.isfinite(cost) else 20.0
            for flops, hit in ((0.5 * reach, False), (reach, math.isfinite(cost))):
                curves.append({"run_id": rid, "examples": int(flops * 1e3), "flops": flops * 1e12,
                               "train_loss": 0.1 if hit else 1.0, "test_acc": 0.97 if hit else 0.5})
    return pd.DataFrame(runs), pd.DataFrame(curves)


def test_the_second_order_track_judges_its_subset_arms_by_the_tenths_rule():
    from subsetlib import lbfgs_study

    def verdicts(subset_cost, finetune_flops):
        costs = lbfgs_study.track_costs(*lbfgs_case(subset_cost, finetune_flops))
        tenth = lbfgs_study.tenth(costs)
        assert set(tenth["fraction"]) == {0.125}  # neither full-set L-BFGS nor Adam is an arm of the rule
        return set(tenth["verdict"])

    assert verdicts(0.5, finetune_flops=1e12) == {"reproduced"}  # 0.05× on both metrics
    assert verdicts(3.0, finetune_flops=20e12) == {"refuted"}  # 0.3×, with a full-set phase longer than the reference
    assert verdicts(3.0, finetune_flops=1e12) == {"not testable at this budget"}
    # a target from a reference that had not converged stands for no minimum: not testable, whatever the ratio
    costs = lbfgs_study.track_costs(*lbfgs_case(0.5, 1e12, reference_losses=(1.0, 0.5, 0.3, 0.1)))
    assert set(lbfgs_study.tenth(costs)["verdict"]) == {"not testable at this budget"}


def test_the_progress_page_learns_which_designs_are_complete_without_training(tmp_path, synthetic):
    from subsetlib import results

    assert study2.stored("synthetic", str(tmp_path), device="cpu") is None
    assert not (tmp_path / "runs").exists()  # asked, nothing trained
    d = studies.design("synthetic")
    study2.run_width(synthetic, d, d.model, d.fractions, 0, str(tmp_path))  # one seed of two
    before = len(results.load(tmp_path))
    assert study2.stored("synthetic", str(tmp_path), device="cpu") is None
    assert len(results.load(tmp_path)) == before
    for model, _, _ in d.arms():
        study2.run_design(synthetic, d, model, str(tmp_path))
    analysis = study2.stored("synthetic", str(tmp_path), device="cpu")
    assert analysis is not None and set(analysis["runs"]["seed"]) == {0, 1}
    now = study2_progress.so_far({"synthetic": str(tmp_path)}, None, str(tmp_path), device="cpu")
    assert (list(now["complete"]), now["pending"], now["track"]) == (["synthetic"], [], None)
    claims = study2_progress.claims_so_far(now)
    assert set(claims["dataset"]) == {now["titles"]["synthetic"]} and study2_report.CLOSE_CLAIM in set(claims["claim"])
    assert len(results.load(tmp_path)) == len(analysis["runs"])  # the claims are read, never trained
    view = study2_report.claims_view(claims)  # what the page shows: claim with its source, dataset with metric
    assert view.iloc[0]["claim_text"] == f"{claims.iloc[0]['claim']} ({claims.iloc[0]['source']})"
    assert view.iloc[0]["where"] == f"{now['titles']['synthetic']}, {claims.iloc[0]['metric']}"
    assert set(study2_report.CLAIMS_COLUMNS) <= set(view.columns)
    # a track folder that holds other runs only (the smoke pages share one): no track, no progress bullet
    with_track = study2_progress.so_far({"synthetic": str(tmp_path)}, "synthetic", str(tmp_path), device="cpu")
    assert (with_track["track"], with_track["track_progress"]) == (None, None)


def test_the_answer_opens_with_what_is_in_by_question_and_names_what_is_not():
    runs, pairs = progress_case()
    track = study2_answer.TrackAnswer("On the track, no arm is close.", "L-BFGS: 0.45× its FLOPs.", "track scale")
    answer = study2_answer.answer(runs, pairs, {"mnist": "MNIST"}, track=track, pending=["MNIST", "Fashion-MNIST"])
    q1, close, q3, saving, pending, bullets, scale = answer.split("\n\n")
    assert (q1, close) == (f"**{study2_answer.QUESTIONS[0]}**", "- On the track, no arm is close.")
    assert q3 == f"**{study2_answer.QUESTIONS[2]}**" and saving.endswith("0.45× its FLOPs.")
    assert study2_answer.QUESTIONS[1] not in answer  # no design is complete: question 2 has no answer yet
    assert pending.startswith("**Not in yet: MNIST, Fashion-MNIST.**") and "1 conventional run has passed" in pending
    assert scale.endswith("; track scale.")


def test_the_answer_says_every_run_is_in_only_when_nothing_waits():
    runs, pairs = progress_case()
    track = study2_answer.TrackAnswer("On the track, no arm is close.", "L-BFGS: 0.45× its FLOPs.", "track scale")
    done = study2_answer.answer(runs, pairs, {"mnist": "MNIST"}, track=track)
    assert "**Every run is in.**" in done and "of the 3 runs, 1 conventional run passed that rule" in done
    assert "Not in yet" not in done
    # the track still running: it is named as not in, though no design is pending
    waiting = study2_answer.answer(runs, pairs, {"mnist": "MNIST"}, track=track,
                                   track_progress=("- track bullet", "track scale"))
    assert "**Not in yet: the second-order track.**" in waiting and "Every run is in" not in waiting


def by_arm(*arms: tuple[float, str, int]) -> pd.DataFrame:
    """Arms of one width as (Q, loss verdict, seeds usable); a usable arm's paired log ratio is log 1.05 ± 0.02."""
    return pd.DataFrame([{"model": "m", "P": 1000, "fraction": q / 10, "Q": q, "usable": usable, "loss_verdict": v,
                          "loss": verdicts.Paired(math.log(1.05), math.log(1.03), math.log(1.07), usable, v)}
                         for q, v, usable in arms])


@pytest.mark.parametrize(("arms", "close", "threshold"), [
    # the first study's case: the gap fell as Q rose, but no arm was close: not a reproduction
    (((6.0, "worse", 5), (3.2, "worse", 5), (0.8, "worse", 5)), "refuted", "refuted"),
    (((6.0, "inconclusive at 5 seeds", 5), (0.8, "worse", 5)), "inconclusive", "inconclusive"),
    (((6.0, "equal", 5), (0.8, "worse", 5)), "reproduced", "reproduced"),
    (((6.0, "equal", 5), (0.8, "equal", 5)), "reproduced", "refuted"),  # close below Q = 1 too: Q is no threshold
    (((6.0, "not converged", 0), (0.8, "worse", 5)), "not testable at this budget", "not testable at this budget"),
])
def test_the_minima_claims_need_a_close_arm_at_high_q(arms, close, threshold):
    (_, _, close_v, _), (_, _, q_v, numbers) = study2_report.closeness_claims(by_arm(*arms), "loss_verdict")
    assert (close_v, q_v) == (close, threshold)
    assert numbers.startswith(f"Q ≥ 3: {close}; Q < 1: ")


def test_the_minima_claims_give_the_interval_behind_each_verdict_and_list_unconverged_arms_once():
    arms = by_arm((6.0, "inconclusive at 2 seeds", 2), (5.0, "not converged", 0), (4.0, "not converged", 0),
                  (0.8, "worse", 5))
    (_, _, _, high), (_, _, _, q_numbers) = study2_report.closeness_claims(arms, "loss_verdict")
    assert high == ("0.6 at P = 1,000 (Q 6): inconclusive at 2 seeds (1.05× [1.03, 1.07], n = 2); "
                    "not converged: 1/2 at P = 1,000 (Q 5), 0.4 at P = 1,000 (Q 4)")
    assert q_numbers.endswith("Q < 1: 0.08 at P = 1,000 (Q 0.8): worse (1.05× [1.03, 1.07], n = 5)")


def test_the_second_order_track_judges_closeness_only_where_both_lbfgs_phases_converged():
    from subsetlib import lbfgs_study

    def track(subset_losses: list[float]) -> pd.DataFrame:
        runs, curves = [], []
        for seed in range(3):
            full = {"lbfgs-full": {"K": 1000, "Q": 10.0, "lbfgs_stopped": "iterations", "lbfgs_iterations_done": 4,
                                   "lbfgs_losses": json.dumps([1.0, 0.1005, 0.1002, 0.1])}}
            sub = {"lbfgs": {"K": 100, "Q": 4.0, "lbfgs_stopped": "iterations", "lbfgs_iterations_done": 4,
                             "lbfgs_losses": json.dumps(subset_losses)}, "lbfgs-full": full["lbfgs-full"]}
            for rid, protocol, phases, end in ((f"f{seed}", "lbfgs-full", full, 0.1),
                                               (f"s{seed}", "lbfgs-subset-full", sub, 0.105 + 0.001 * seed)):
                runs.append({"run_id": rid, "protocol": protocol, "seed": seed, "model": "m", "P": 250,
                             "subset_fraction": 1.0 if protocol == "lbfgs-full" else 0.1, "subset_Q": 4.0,
                             "final_train_loss": 0.1, "final_test_acc": 0.97, "phases": json.dumps(phases)})
                first = "lbfgs" if protocol == "lbfgs-subset-full" else "lbfgs-full"
                curves.append({"run_id": rid, "phase": first, "examples": 10, "train_loss": end, "test_acc": 0.97})
        runs = pd.DataFrame(runs)
        phases = lbfgs_study.phase_convergence(runs)
        return study2_analysis.closeness_by_arm(lbfgs_study.closeness(runs, pd.DataFrame(curves), phases)).iloc[0]

    arm = track([1.0, 0.0102, 0.0101, 0.01])  # the subset phase converged (its second half: −2 %)
    assert arm["usable"] == 3 and arm["loss_verdict"] == "equal"  # 1.05× the full-set result, within 10 %
    arm = track([1.0, 0.5, 0.3, 0.1])  # still falling: not a minimum
    assert arm["usable"] == 0 and arm["loss_verdict"] == "not converged"


def test_a_closeness_answer_without_converged_pairs_says_which_phases_failed():
    runs, curves = closeness_case(converged_conventional=False)
    by_arm = study2_analysis.closeness_by_arm(study2_analysis.closeness(minima_of(runs, curves)))
    sentence = study2_report.closeness_sentence(by_arm, "MNIST")
    assert "the full-set run converged in 0 of" in sentence and "cannot be judged at this budget" in sentence
    converged, _, _ = study2_report.closeness_table(study2_analysis.closeness_by_arm(study2_analysis.closeness(
        minima_of(*closeness_case(converged_conventional=True)))), "training loss")
    assert converged.iloc[0]["ratio_text"] == "1.05× [1.05, 1.05]"  # n is in the converged-seeds column
    table, columns, _ = study2_report.closeness_table(by_arm, "test accuracy")
    assert list(columns.values())[-2:] == ["accuracy gap (points)", "verdict"]  # one metric per table
    row = table.iloc[0]
    assert (row["converged"], row["loss_verdict"]) == ("0 of 3", "not converged")
    assert {row[c] for c in ("ratio_text", "excess_text", "acc_text")} == {"–"}  # no numbers, and no "nan"


def test_the_answer_reports_the_second_order_tracks_runs_so_far():
    from subsetlib import lbfgs_study

    runs, _ = lbfgs_case(0.5, 1e12, reference_losses=(1.0, 0.13, 0.1, 0.0887))  # as seed 0 ran: 32 % lower
    plan = lbfgs_study.lbfgs_design("mnist")
    bullet = lbfgs_study.progress_bullet(lbfgs_study.phase_convergence(runs), plan)
    assert bullet.endswith("converged in 0 of 3 seeds stored so far; over the second half of its 400 iterations "
                           "the training loss still fell 32 %.")
    conv_runs, pairs = progress_case()
    answer = study2_answer.answer(conv_runs, pairs, {"mnist": "MNIST"}, track_progress=(bullet, plan.scale_text()))
    assert answer.split("\n\n")[-2].endswith(bullet) and answer.endswith(plan.scale_text() + ".")


def test_the_step_diagnostic_compares_at_equal_steps_not_at_the_runs_ends():
    """The first study's headline divided a subset phase's end by the conventional run's end (3.9× to 31×); at the
    same number of steps, the diagnostic reads the conventional curve there (interpolated in log loss)."""
    runs = pd.DataFrame([{"run_id": "c", "protocol": "conventional", "model": D.model, "seed": 0, "epochs": D.epochs,
                          "subset_fraction": 1.0, "subset_Q": 25.0},
                         {"run_id": "s", "protocol": "subset", "model": D.model, "seed": 0, "epochs": math.nan,
                          "subset_fraction": 0.25, "subset_Q": 6.0}])
    curves = pd.DataFrame([{"run_id": "c", "phase": "full", "steps": st, "train_loss": loss}
                           for st, loss in ((0, 2.3), (400, 0.4), (1200, 0.1), (1600, 0.08))] +
                          [{"run_id": "s", "phase": "subset", "steps": 800, "train_loss": 0.22},
                           {"run_id": "s", "phase": "finetune", "steps": 1600, "train_loss": 0.1}])
    row = study2_analysis.equal_steps(runs, curves, D).iloc[0]
    assert row["steps"] == 800 and row["conventional_loss"] == pytest.approx(0.2)  # halfway in log between 0.4, 0.1
    assert row["ratio"] == pytest.approx(1.1)  # not 0.22 / 0.08 = 2.75 at the conventional run's end


def test_every_fraction_is_its_own_arm_for_the_tenth():
    """The first study pooled arms of different lengths into one; here a cheap arm cannot carry a dear one."""
    table = pd.concat([costs(0.05, finetune_flops=0.5e12), costs(0.8, finetune_flops=2e12).assign(fraction=0.125)])
    verdicts = study2_analysis.tenth_by_arm(table).set_index("fraction")["verdict"]
    assert verdicts.to_dict() == {0.25: "reproduced", 0.125: "refuted"}


def test_q_or_fraction_without_converged_pairs_is_not_testable_at_this_budget():
    table = study2_analysis.q_or_fraction(q_case("Q").assign(both_converged=False))
    assert set(table["verdict"]) == {"not testable at this budget (no converged pairs)"}


def test_the_equal_compute_bullet_counts_its_verdicts_then_lists_each_arm():
    eq = pd.DataFrame({"fraction": [1 / 8, 1 / 32, 1 / 256], "Q": [21.0, 5.2, 0.65],
                       "loss": [verdicts.paired([0.0, 0.01, -0.01], 0.1, higher_is_better=False)] * 3,
                       "acc": [verdicts.paired([0.001, 0.0, -0.001], 0.003, higher_is_better=True)] * 3,
                       "loss_verdict": ["equal", "inconclusive at 5 seeds", "worse"],
                       "acc_verdict": ["inconclusive at 5 seeds"] * 3})
    head, *arms = study2_answer.equal_compute_bullet({"equal_by_arm": eq, "design": D, "title": "MNIST"}).split("\n")
    assert head == ("- MNIST, at 4 epoch-equivalents of training (the conventional arm's B), paired by seed: 1 of 3 "
                    "(1 worse) subset arms equal to conventional training in training loss and 0 of 3 in test "
                    "accuracy, the others inconclusive:")
    *arms, stops = arms
    assert [arm.split(":")[0] for arm in arms] == ["  - subset 1/8 (Q = 21)", "  - subset 1/32 (Q = 5.2)",
                                                   "  - subset 1/256 (Q = 0.65)"]
    assert stops == ("  - *Ahead, and where it stops:* no arm is ahead (better) on either metric; already the largest "
                     "subset run, subset 1/8 (Q = 21), is not shown equal on both metrics (loss equal, accuracy "
                     "inconclusive at 5 seeds).")
    assert "loss equal (1.00× [" in arms[0]  # three significant digits, trailing zeros kept
    staged = dataclasses.replace(D, equal_seeds=(3, 4))
    head = study2_answer.equal_compute_bullet({"equal_by_arm": eq, "design": staged, "title": "MNIST"})
    assert "paired by seed (5 seeds; 2 of them a second stage, added because 3 seeds left" in head


@pytest.mark.parametrize(("loss", "acc", "says"), [
    (["equal"] * 3, ["equal"] * 3, "no arm is ahead (better) on either metric; every arm is equal on both metrics "
                                   "down to the smallest subset run, subset 1/256 (Q = 0.65)"),
    (["equal", "equal", "inconclusive at 10 seeds"], ["equal", "equal", "worse"],
     "every arm down to subset 1/32 (Q = 5.2) is equal on both metrics, subset 1/256 (Q = 0.65) is not (loss "
     "inconclusive at 10 seeds, accuracy worse)"),
    (["better", "equal", "worse"], ["equal"] * 3, "subset 1/8 (Q = 21) ahead on at least one metric; every arm down to "
                                                  "subset 1/32 (Q = 5.2) is equal or better on both metrics"),
])
def test_the_equal_compute_answer_says_whether_an_arm_is_ahead_and_where_equality_stops(loss, acc, says):
    eq = pd.DataFrame({"fraction": [1 / 32, 1 / 8, 1 / 256], "Q": [5.2, 21.0, 0.65],  # any order: by fraction
                       "loss_verdict": [loss[1], loss[0], loss[2]], "acc_verdict": [acc[1], acc[0], acc[2]]})
    assert says in study2_answer.where_equality_stops(eq)


def test_the_equal_compute_tables_are_one_per_metric_with_n_in_its_own_column():
    eq = pd.DataFrame({"fraction": [1 / 8, 1 / 32], "Q": [21.0, 5.2], "flops_ratio": [1.0, 1.01], "seeds": [5, 5],
                       "excess_nats": [0.001, math.nan],
                       "loss": [verdicts.paired([0.0, 0.01, -0.01], 0.1, higher_is_better=False)] * 2,
                       "acc": [verdicts.paired([0.001, 0.0, -0.001], 0.003, higher_is_better=True)] * 2,
                       "loss_verdict": ["equal"] * 2, "acc_verdict": ["inconclusive at 3 seeds"] * 2})
    loss, loss_columns, _ = study2_report.equal_compute_table(eq, "training loss")
    acc, acc_columns, _ = study2_report.equal_compute_table(eq, "test accuracy")
    assert list(loss_columns.values())[-3:] == ["loss ÷ reference", "excess loss (nats)", "verdict"]
    assert list(acc_columns.values())[-2:] == ["accuracy gap (points)", "verdict"]
    assert loss["subset"].tolist() == ["1/8", "1/32"] and loss["excess_text"].tolist() == ["0.00100", "–"]
    assert not any("n =" in text for text in [*loss["ratio_text"], *acc["acc_text"]])  # the seeds column says it


def test_the_equal_steps_table_averages_over_seeds_per_arm_largest_subset_first():
    steps = pd.DataFrame({"fraction": [1 / 32, 1 / 32, 1 / 4, 1 / 4], "Q": [0.79] * 2 + [6.3] * 2,
                          "steps": [510] * 2 + [944] * 2, "seed": [0, 1, 0, 1], "ratio": [1.1, 1.2, 1.0, 1.2]})
    table, columns, _ = study2_report.equal_steps_table(steps)
    assert table["subset"].tolist() == ["1/4", "1/32"] and table["seeds"].tolist() == [2, 2]
    assert table["ratio"].tolist() == pytest.approx([1.1, 1.15])
    assert set(columns) <= set(table.columns)


def test_seeds_are_averaged_at_equal_flops_even_where_their_evaluations_differ():
    from subsetlib.study2_figures import over_seeds

    # two seeds evaluated at different FLOPs (as L-BFGS's line searches make them): loss 1 - 0.1 x and 1.1 - 0.1 x
    curve = pd.DataFrame([{"seed": 0, "flops": x, "train_loss": 1 - 0.1 * x, "test_acc": 0.5} for x in (0, 2, 4)]
                         + [{"seed": 1, "flops": x, "train_loss": 1.1 - 0.1 * x, "test_acc": 0.7}
                            for x in (0, 1, 3, 5)])
    stats = over_seeds(curve)
    assert list(stats.index) == [0, 1, 2, 3, 4]  # as far as both seeds reach
    assert np.allclose(stats[("train_loss", "mean")], [1.05 - 0.1 * x for x in range(5)])
    assert np.allclose(stats[("train_loss", "max")] - stats[("train_loss", "min")], 0.1)
    assert np.allclose(stats[("test_acc", "mean")], 0.6)


def test_the_tracks_phase_table_lists_full_set_lbfgs_first_then_each_arms_phases_in_order():
    from subsetlib import lbfgs_study

    rows = [{"protocol": "lbfgs-subset-full", "seed": s, "fraction": f, "phase": p, "converged": p == "lbfgs",
             "stopped": "converged (largest gradient component 8.3e-08 ≤ 1e-07)" if p == "lbfgs" else "iterations"}
            for f in (1 / 32, 1 / 8) for s in (1, 0) for p in ("lbfgs-full", "lbfgs")]
    rows += [{"protocol": "lbfgs-full", "seed": s, "fraction": 1.0, "phase": "lbfgs-full", "converged": False,
              "stopped": "stalled (no decrease found; largest gradient component 2.4e-07)"} for s in (1, 0)]
    table = lbfgs_study.phase_table(pd.DataFrame(rows))
    assert list(zip(table["arm"], table["seed"], table["on"], strict=True))[:5] == [
        ("L-BFGS, full set", 0, "full set"), ("L-BFGS, full set", 1, "full set"),
        ("subset 1/8 first", 0, "subset"), ("subset 1/8 first", 0, "full set"), ("subset 1/8 first", 1, "subset")]
    assert table["verdict"].iloc[2] == "converged" and table["verdict"].iloc[3] == "not converged"
    assert list(table["why"].iloc[:4]) == ["stall: no decrease found"] * 2 + ["gradient below tolerance",
                                                                              "iteration budget"]


def test_q_or_fraction_numbers_never_print_nan():
    """Fashion-MNIST's two widths with converged pairs shared no range: the claims table printed 'nan vs nan'."""
    row = pd.Series({"widths": 2, "at_equal_q": math.nan, "at_equal_fraction": math.nan})
    assert study2_report.q_or_fraction_numbers(row) == ("the 2 widths with converged pairs share no range of Q or "
                                                        "of the fraction")
    assert study2_report.q_or_fraction_numbers(pd.Series({**row, "widths": 0})) == "no converged pairs"
    row = pd.Series({"widths": 3, "at_equal_q": 0.31, "at_equal_fraction": 1.24})
    assert study2_report.q_or_fraction_numbers(row) == ("mismatch at equal Q 0.31 vs at equal fraction 1.24 (3 widths "
                                                        "with converged pairs)")


def test_every_width_of_every_design_has_its_own_colour():
    for d in studies.DESIGNS.values():
        widths = [model for model, _, _ in d.arms()]
        colours = [study2_report.WIDTH_COLOURS.get(model) for model in widths]
        assert None not in colours and len(set(colours)) == len(widths), (d.dataset, widths)


def test_without_a_complete_design_or_track_the_front_page_has_no_figure_of_its_own():
    assert study2_progress.front_figure({"complete": {}, "track": None}) is None  # the ladders so far stand in


def test_the_convergence_text_lists_conventional_then_subsets_from_the_largest():
    pairs = pd.DataFrame([{"fraction": f, "seed": 0, "budget": 8, "converged": f == 1.0}
                          for f in (1 / 128, 1.0, 1 / 8)])
    arms = [line.split("**")[1] for line in study2_report.convergence_text(pairs, D).splitlines() if "**" in line]
    assert arms == ["conventional", "subset 1/8", "subset 1/128"]


def test_the_tenth_gives_no_interval_from_two_seeds_but_each_seeds_ratio():
    """'1.01× [0.000314, 3,260]' came from two seeds (ratios 0.536 and 1.911): no interval from fewer than 3."""
    two = costs(0.5, finetune_flops=2e12, n=2)
    two.loc[1, ["cost", "ratio"]] = [1.911e12, 1.911]
    row = study2_analysis.tenth_by_arm(two).iloc[0]
    assert math.isnan(row["low"]) and math.isnan(row["high"])
    assert row["each"] == pytest.approx((0.5, 1.911))
    table, _, _ = study2_report.tenth_table(study2_analysis.tenth_by_arm(two))
    assert table["interval"].iloc[0] == "0.500×, 1.91× (per seed)"
    three = study2_analysis.tenth_by_arm(costs(0.5, finetune_flops=2e12, n=3)).iloc[0]
    assert math.isfinite(three["low"])


def eq_arms(acc_diffs: dict[float, list[float]], q: dict[float, float], loss_same: bool = True) -> pd.DataFrame:
    """Equal-compute arms by hand: per fraction, per seed the arm's accuracy minus the reference's (0.86)."""
    rows = []
    for f, diffs in acc_diffs.items():
        for seed, diff in enumerate(diffs):
            rows.append({"fraction": f, "subset_Q": q[f], "seed": seed, "final_train_loss": 0.30 + 0.001 * seed,
                         "ref_loss": 0.30 + 0.001 * seed if loss_same else 0.6, "final_test_acc": 0.86 + diff,
                         "ref_acc": 0.86, "flops_ratio": 1.01, "total_flops": 1.0,
                         "phases": json.dumps({"subset": {"flops": 0.2}, "finetune": {"flops": 0.8}})})
    return pd.DataFrame(rows)


def test_the_equal_compute_claim_says_equal_compute_no_saving_and_that_q_is_not_separated():
    arms = eq_arms({1 / 4: [0.001, -0.001, 0.0, 0.0005, -0.0005], 1 / 32: [0.0025, -0.0028, 0.0001, 0.002, -0.002]},
                   {1 / 4: 6.3, 1 / 32: 0.79})
    eq = study2_analysis.equal_compute_by_arm(arms)
    assert study2_report.equal_compute_verdict(eq["acc_verdict"].tolist()) == (
        "reproduced at equal compute (no saving shown)")
    assert study2_report.equal_compute_verdict(["worse", "worse"]) == "refuted"
    family = study2_analysis.equal_compute_family({"fashion-mnist": {"equal_by_arm": eq,
                                                                     "design": studies.design("fashion-mnist")}})
    text = study2_report.equal_compute_caveats(eq, "acc_verdict", family, ("fashion-mnist", "test accuracy"))
    assert "1.01× the conventional arm's training FLOPs, 80 % of it on the full set" in text
    assert eq[eq["Q"] < 1].iloc[0]["acc_verdict"] == "equal"  # a Q below 1 that passes: Q is not separated
    assert "Q = 0.79 < 1 is equal too" in text and "does not separate Q" in text
    assert f"one family of {len(family)} equal-compute tests" in text
    assert "the 0.3-point margin is 2 % of conventional training's test error here (14.0 %)" in text


def test_holm_over_the_family_can_take_back_an_equal_that_passed_alone():
    """An arm equal at its own 2.5 % level, but not once the family's other tests are counted."""
    arms = eq_arms({f: [0.0025, -0.0025, 0.0015, -0.0015, 0.0] for f in (1 / 4, 1 / 8, 1 / 32)},
                   {1 / 4: 6.3, 1 / 8: 3.1, 1 / 32: 0.79})
    eq = study2_analysis.equal_compute_by_arm(arms)
    family = study2_analysis.equal_compute_family({"x": {"equal_by_arm": eq, "design": D}})
    acc = family[family["metric"] == "test accuracy"]
    assert (acc["verdict"] == "equal").all() and not acc["equal_after_holm"].any()
    assert family[family["metric"] == "training loss"]["equal_after_holm"].all()  # identical losses: p = 0


def memo_runs():
    """Three subset phases: one fits its subset to 1e-8 nats at Q = 4.8, the others stay far from zero."""
    made = [run("s-a", "subset-phase", 0, 11.0, 0.5, fraction=1 / 128, q=4.8, subset_loss=1e-8),
            run("s-b", "subset-phase", 0, 0.6, 0.8, fraction=1 / 32, q=5.2, subset_loss=2e-4),
            run("s-c", "subset-phase", 0, 0.4, 0.85, fraction=1 / 8, q=21.0, subset_loss=0.04)]
    runs, curves = frames(*made)
    curves["subset_fraction"] = curves["run_id"].map(runs.set_index("run_id")["subset_fraction"])
    curves["subset_Q"] = curves["run_id"].map(runs.set_index("run_id")["subset_Q"])
    curves["seed"] = 0
    return runs.assign(dataset="fashion-mnist"), curves


def test_memorisation_names_the_q_where_subsets_stopped_being_memorised():
    runs, curves = memo_runs()
    table = study2_analysis.memorisation(runs, curves)
    assert table.set_index("run_id")["memorised"].to_dict() == {"s-a": True, "s-b": False, "s-c": False}
    row = study2_analysis.memorisation_by_dataset(table).iloc[0]
    assert row["stopped"] == "stopped" and row["stopped_at_Q"] == pytest.approx(5.2)
    text = study2_report.memorisation_text(row)
    assert text.startswith("1 of 3 subset phases memorised their subset (subset loss ≤ 1e-6 nats")
    assert "at Q = 4.8, leaving a full-set loss of 11.0 nats; from Q = 5.2 up" in text
    top = study2_analysis.memorisation_by_dataset(table.assign(memorised=True)).iloc[0]
    assert top["stopped"] == "memorised up to the largest Q run" and math.isnan(top["stopped_at_Q"])
    none = study2_analysis.memorisation_by_dataset(table.assign(memorised=False)).iloc[0]
    assert none["stopped"] == "never memorised"


def test_q_or_fraction_at_equal_steps_reads_each_subset_phase_against_the_longest_conventional_run():
    """A subset phase that ended after 50 steps is compared with the longest conventional run at step 50, not at
    its end, and needs no convergence."""
    runs = pd.DataFrame([{"run_id": "c8", "protocol": "conventional", "model": "w", "seed": 0, "epochs": 8},
                         {"run_id": "c16", "protocol": "conventional", "model": "w", "seed": 0, "epochs": 16}])
    curves = pd.DataFrame([{"run_id": "c16", "phase": "full", "steps": s, "train_loss": loss, "test_acc": a}
                           for s, loss, a in ((0, 2.0, 0.1), (100, 0.2, 0.9), (200, 0.1, 0.95))]
                          + [{"run_id": "c8", "phase": "full", "steps": 100, "train_loss": 5.0, "test_acc": 0.2}]
                          + [{"run_id": "s1", "phase": "subset", "steps": s, "train_loss": loss, "test_acc": a}
                             for s, loss, a in ((0, 2.0, 0.1), (50, 0.4, 0.7))])
    mins = pd.DataFrame([{"model": "w", "P": 10, "fraction": 0.25, "Q": 4.0, "seed": 0, "run_id": "s1",
                          "converged": False}])
    steps = study2_analysis.at_equal_steps(runs, curves, mins)
    row = steps.iloc[0]
    assert row["ref_run_id"] == "c16" and row["steps"] == 50
    assert row["ref_loss"] == pytest.approx(math.exp((math.log(2.0) + math.log(0.2)) / 2))
    assert row["acc_gap"] == pytest.approx(0.7 - 0.5) and bool(row["both_converged"])


def test_a_closeness_sentence_says_how_many_seeds_an_inconclusive_rests_on():
    by_arm = pd.DataFrame([{"model": "w3", "P": 988, "fraction": 1 / 128, "Q": 4.8, "seeds": 3, "usable": 2,
                            "loss_verdict": "inconclusive at 2 seeds", "acc_verdict": "inconclusive at 2 seeds",
                            "ratio": 23.0, "excess_nats": 10.6, "acc_gap": -0.1369, "subset_converged": 2,
                            "reference_converged": 3}])
    text = study2_report.closeness_sentence(by_arm, "Fashion-MNIST")
    assert "it rests on 2 seeds with both phases converged, fewer than the 3 an interval needs" in text


def test_the_front_page_lists_the_short_answers_in_slot_order_and_a_new_study_leads(tmp_path):
    """Study v2 writes its slot; once the study at certified minima writes its own, its answer stands first."""
    from subsetlib import front_page

    front = front_page.write_answer(tmp_path, "study-v2", "Study v2 says B.")
    assert front.read_text().startswith(f"## {front_page.slot('study-v2').heading}\n\nStudy v2 says B.")
    front_page.write_answer(tmp_path, "certified-minima", "At certified minima: A.")
    text = front.read_text()
    assert text.index("At certified minima: A.") < text.index("Study v2 says B.")
    assert front_page.SLOTS[0].name == "certified-minima"
    with pytest.raises(ValueError, match="no front-page slot"):
        front_page.write_answer(tmp_path, "nonsense", "x")
    assert front_page.compose(tmp_path / "empty") == front_page.WAITING


def test_the_front_tables_verdicts_name_where_a_rare_verdict_holds():
    claims = pd.DataFrame({"claim": ["Results equal to conventional training (x)"] * 3,
                           "dataset": ["MNIST", "Fashion-MNIST", "CIFAR-10 (JPEG)"],
                           "metric": ["test accuracy"] * 3,
                           "verdict": ["reproduced at equal compute (no saving shown)"] * 2 + ["inconclusive"]})
    row = study2_answer.front_table(claims).iloc[0]
    assert row["verdict"] == "reproduced at equal compute (no saving shown): 2 of 3; inconclusive: CIFAR-10 (JPEG)"
    assert "](experiments/study-v2/00-2-2-compute-mnist.ipynb)" in row["evidence"]


def test_the_planner_names_the_formulas_k_beside_a_rounded_subset_and_marks_unreachable_targets():
    from subsetlib import planner

    table = planner.q_table("cnn-simple", "fashion-mnist", (1,), (1.5,))
    row = table[table["target_q"].notna()].iloc[0]
    assert row["K_min"] == math.ceil(1.5 * row["P"] / row["M"] - 1e-9)
    text = planner.target_text(row)
    assert text.startswith(f"{int(row['K']):,}") and (row["K"] == row["K_min"] or "⌈Q·P/M⌉ =" in text)
    far = planner.q_table("resnet18-cifar", "cifar10", (1,), (3.0,))
    far = far[far["target_q"].notna()].iloc[0]
    assert not far["feasible"] and planner.target_text(far).startswith("not reachable (needs ")


def test_the_compute_page_opens_with_a_plain_sentence_before_the_intervals():
    eq = pd.DataFrame({"fraction": [1 / 4, 1 / 32], "Q": [6.3, 0.79], "flops_ratio": [1.0, 1.02],
                       "loss_verdict": ["equal", "equal"], "acc_verdict": ["equal", "inconclusive at 5 seeds"]})
    assert study2_report.equal_compute_plain(eq, "Fashion-MNIST") == (
        "**On Fashion-MNIST, 2 of 2 subset arms matched conventional training in training loss and 1 of 2 in test "
        "accuracy, at 1.00 to 1.02× its training FLOPs: equal compute, so no saving is shown; the smallest subset "
        "equal on both was Q = 6.3.**")


def test_the_claims_page_splits_its_table_by_claim_in_order():
    table = pd.DataFrame({"claim": ["A", "A", "B"], "source": ["abstract"] * 3, "dataset": ["MNIST", "CIFAR", "MNIST"],
                          "metric": ["loss"] * 3, "verdict": ["x", "y", "z"], "numbers": ["1", "2", "3"]})
    groups = study2_report.claims_by_claim(table)
    assert [claim for claim, _ in groups] == ["A (abstract)", "B (abstract)"]
    assert groups[0][1]["where"].tolist() == ["MNIST, loss", "CIFAR, loss"]
    assert len(study2_report.CLAIM_GROUP_COLUMNS) == 3
