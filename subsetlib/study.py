"""The pre-registered CPU study of the subset hypothesis: its plan, and the analysis that turns stored runs into tables.

Everything that decides a verdict is fixed here before the runs (and printed in the book's method chapter): the
targets are fixed gaps from the conventional plateau, never a spread over seeds; a subset phase counts as trained to
its plateau by a stated rule; costs include the whole subset phase. ``claims`` turns these tables into verdicts.

Tables are plain DataFrames with one row per run (or per run and target), so every figure and verdict can show each
seed as well as the mean.
"""

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from subsetlib.accounting import main_target, time_to_target
from subsetlib.errors import UserError
from subsetlib.present import dataset_title, fraction_text
from subsetlib.studies import StudyConfig, study_config


@dataclass(frozen=True)
class Plan:
    """The analysis plan, fixed before the runs."""

    acc_gaps: tuple[float, ...] = (0.001, 0.002, 0.005)  # test-accuracy targets: plateau − 0.1, 0.2, 0.5 points
    loss_factors: tuple[float, ...] = (1.1, 1.25, 1.5)  # training-loss targets: × the conventional lowest loss
    main_acc_gap: float = 0.002  # the target the cost verdicts use (−0.2 points) …
    main_loss_factor: float = 1.25  # … and its training-loss twin
    plateau_tail: float = 1 / 3  # the conventional plateau accuracy: mean test accuracy over the run's last third
    plateau_rel: float = 0.10  # a subset phase plateaued: its subset loss fell < 10 % over the phase's second half …
    plateau_abs: float = 0.01  # … or by < 0.01 nats
    close_loss: float = 1.5  # a subset minimum is "close": full-set training loss ≤ 1.5 × conventional lowest …
    close_acc: float = 0.005  # … and test accuracy at most 0.5 points below the conventional plateau
    q_high: float = 3.0  # "Q sufficiently exceeds unity": the claim is judged on arms with Q ≥ 3
    tenth: float = 0.10  # the abstract's "a tenth or less"


PLAN = Plan()


def epochs_for_steps(steps: int, k: int, batch_size: int) -> int:
    """Whole epochs over K examples that give at least ``steps`` optimizer steps: the subset phase is set in steps,
    so that every subset gets the same number of updates however small it is."""
    if steps <= 0 or k <= 0 or batch_size <= 0:
        raise UserError(f"steps, K and batch size must be > 0 (got {steps}, {k}, {batch_size})")
    return max(1, math.ceil(steps / math.ceil(k / batch_size)))


def equal_budget_stages(start_fraction: float, growth: float, pre_examples: int, final_epochs: int, n: int
                        ) -> list[int]:
    """Epochs per stage of a growing schedule f, g·f, …, 1 whose stages before the full set share ``pre_examples``
    equally, followed by ``final_epochs`` on the full set: the growing baseline on the same budget as a subset arm."""
    fractions = [start_fraction]
    while fractions[-1] < 1:
        fractions.append(min(1.0, fractions[-1] * growth))
    share = pre_examples / (len(fractions) - 1)
    return [max(1, round(share / (f * n))) for f in fractions[:-1]] + [final_epochs]


# ---------------------------------------------------------------------------------------------------------------------
# The conventional plateau and the targets


def _curve(curves: pd.DataFrame, run_id: str) -> pd.DataFrame:
    return curves[curves["run_id"] == run_id].sort_values("examples").reset_index(drop=True)


def conventional_plateau(runs: pd.DataFrame, curves: pd.DataFrame, plan: Plan = PLAN) -> dict:
    """The conventional arm's plateau, how it was found, and its per-seed values.

    Plateau accuracy: per seed, the mean test accuracy over the last third of the run's evaluations; the plateau is
    their mean over seeds. Lowest loss: per seed, the lowest full-set training loss after training began; mean over
    seeds. ``plateau_epoch``: the first evaluation at which the seed-mean test accuracy is within the smallest gap of
    the plateau. ``loss_drop_tail``: relative fall of the seed-mean training loss over the last third (small: the
    loss has flattened too).
    """
    conv = runs[runs["protocol"] == "conventional"]
    if conv.empty:
        raise UserError("no conventional runs in these results: every target is set from the conventional arm")
    per_seed = []
    for _, run in conv.iterrows():
        c = _curve(curves, run["run_id"])
        tail = c[c["examples"] >= c["examples"].max() * (1 - plan.plateau_tail)]
        per_seed.append({"seed": run["seed"], "run_id": run["run_id"], "plateau_acc": tail["test_acc"].mean(),
                         "lowest_loss": c.loc[c["examples"] > 0, "train_loss"].min()})
    per_seed = pd.DataFrame(per_seed)
    mean_curve = (curves[curves["run_id"].isin(conv["run_id"])].groupby("epoch_equivalents")[["test_acc", "train_loss"]]
                  .mean().sort_index())
    acc = per_seed["plateau_acc"].mean()
    near = mean_curve.index[mean_curve["test_acc"] >= acc - min(plan.acc_gaps)]
    tail = mean_curve[mean_curve.index >= mean_curve.index.max() * (1 - plan.plateau_tail)]["train_loss"]
    return {"acc": acc, "loss": per_seed["lowest_loss"].mean(), "per_seed": per_seed, "seeds": len(per_seed),
            "epochs": float(mean_curve.index.max()), "plateau_epoch": float(near[0]) if len(near) else math.nan,
            "loss_drop_tail": float(1 - tail.iloc[-1] / tail.iloc[0]) if len(tail) > 1 else math.nan}


def targets(plateau: dict, plan: Plan = PLAN) -> pd.DataFrame:
    """Targets at fixed gaps from the conventional plateau: accuracy (at least) and training loss (at most)."""
    rows = [{"metric": "test_acc", "target": plateau["acc"] - gap, "gap": gap,
             "label": f"test accuracy ≥ plateau − {100 * gap:g} pt", "main": gap == plan.main_acc_gap}
            for gap in plan.acc_gaps]
    rows += [{"metric": "train_loss", "target": plateau["loss"] * factor, "gap": factor,
              "label": f"training loss ≤ {factor:g} × lowest", "main": factor == plan.main_loss_factor}
             for factor in plan.loss_factors]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------------
# The hypothesis: where the subset phase leaves the model


def subset_minimum(runs: pd.DataFrame, curves: pd.DataFrame, plateau: dict, plan: Plan = PLAN) -> pd.DataFrame:
    """One row per subset run: at the end of its subset phase, the full-set training loss and test accuracy, their
    gaps to the conventional plateau, and whether the subset's own loss had plateaued (the plan's rule)."""
    rows = []
    for _, run in runs[runs["protocol"] == "subset"].iterrows():
        c = _curve(curves, run["run_id"])
        sub = c[c["phase"] == "subset"]
        if sub.empty:
            continue
        end = sub.iloc[-1]
        half = sub[sub["examples"] >= sub["examples"].min() + (end["examples"] - sub["examples"].min()) / 2]
        drop = half["subset_loss"].iloc[0] - end["subset_loss"]
        rel = drop / half["subset_loss"].iloc[0] if half["subset_loss"].iloc[0] > 0 else 0.0
        rows.append({
            "run_id": run["run_id"], "seed": run["seed"], "model": run["model"], "P": run["P"],
            "fraction": run["subset_fraction"], "K": run["subset_K"], "Q": run["subset_Q"],
            "subset_steps": end["steps"], "subset_epochs": run["subset_epochs"],
            "subset_loss": end["subset_loss"], "train_loss": end["train_loss"], "test_acc": end["test_acc"],
            "loss_ratio": end["train_loss"] / plateau["loss"], "acc_gap": end["test_acc"] - plateau["acc"],
            "plateaued": bool(drop < plan.plateau_abs or rel < plan.plateau_rel),
            "close": bool(end["train_loss"] <= plan.close_loss * plateau["loss"]
                          and end["test_acc"] >= plateau["acc"] - plan.close_acc),
        })
    return pd.DataFrame(rows)


MEMORISED_LOSS = 0.02  # a subset's own loss below this (under 1 % of ln 10, the loss at the start) means memorised


def arm_name(protocol: str, fraction: float | None = None) -> str:
    """'conventional' or 'subset 1/16': an arm as the study's figures name it in legends and in their CSVs."""
    return "conventional" if protocol == "conventional" else f"{protocol} {fraction_text(fraction)}"


def subset_phase_text(minima: pd.DataFrame) -> str:
    """The optimizer steps the subset phases ran, from the runs ('800 to 980 steps'): a subset trains whole epochs,
    so it can run past the study's planned steps."""
    steps = minima["subset_steps"]
    low, high = int(steps.min()), int(steps.max())
    return f"{low:,} steps" if low == high else f"{low:,} to {high:,} steps"


def subset_loss_text(minima: pd.DataFrame) -> str:
    """Where the subsets' own losses ended, from the runs: the seed-mean final subset loss of the smallest and the
    largest subset, and which arms were memorised (``MEMORISED_LOSS``), so a caption never says so unmeasured."""
    ends = minima.groupby("fraction")["subset_loss"].agg(["mean", "min"]).sort_index()
    small, large = ends.index[0], ends.index[-1]
    text = (f"the loss on the subset ended at {ends.loc[small, 'mean']:.2g} on {fraction_text(small)} and "
            f"{ends.loc[large, 'mean']:.2g} on {fraction_text(large)} (means over seeds; lowest seed "
            f"{ends['min'].min():.2g})")
    memorised = [fraction_text(f) for f in ends.index if ends.loc[f, "mean"] < MEMORISED_LOSS]
    return text + (f"; memorised (loss below {MEMORISED_LOSS:g}): {', '.join(memorised)}" if memorised
                   else f"; no subset was memorised (none ended below {MEMORISED_LOSS:g})")


# ---------------------------------------------------------------------------------------------------------------------
# Cost to reach conventional quality


def tenth_requirements(costs: pd.DataFrame, plateau: dict, plan: Plan = PLAN) -> pd.DataFrame:
    """Where "a tenth" can come from. Under a fixed-budget accounting (epochs × set size) an arm that costs B
    epoch-equivalents is "a tenth" of a conventional run given 10·B epochs, however early that run plateaued.
    Per arm (main accuracy target): the time-to-target ratio, the fixed budget B, the conventional budget that makes
    B a tenth, and how many times the conventional plateau epoch that is."""
    main = main_target(costs)
    main = main[main["protocol"] != "conventional"]
    rows = []
    for (protocol, fraction), arm in main.groupby(["protocol", "fraction"], sort=False):
        budget = arm["budget"].mean()
        rows.append({"protocol": protocol, "fraction": fraction, "Q": arm["Q"].iloc[0], "seeds": arm["seed"].nunique(),
                     "reached": int(arm["reached"].sum()), "ratio_mean": arm["examples_ratio"].mean(),
                     "ratio_best": arm["examples_ratio"].min(), "budget": budget, "pre_cost": arm["pre_cost"].mean(),
                     "conventional_for_tenth": budget / plan.tenth,
                     "times_plateau": budget / plan.tenth / plateau["plateau_epoch"]})
    return pd.DataFrame(rows)


def analyse(runs: pd.DataFrame, curves: pd.DataFrame, plan: Plan = PLAN) -> dict:
    """Everything the pages and the claims read from one dataset's arms: the conventional plateau, the targets, the
    subset minima, the cost to each target and where "a tenth" can come from."""
    plateau = conventional_plateau(runs, curves, plan)
    goals = targets(plateau, plan)
    costs = time_to_target(runs, curves, goals)
    return {"runs": runs, "curves": curves, "plateau": plateau, "goals": goals, "costs": costs,
            "minima": subset_minimum(runs, curves, plateau, plan), "tenth": tenth_requirements(costs, plateau, plan)}


def scale_of_runs(runs: pd.DataFrame) -> str:
    """The budget of a set of study runs in words, read from the runs themselves (seeds, model, epochs, steps)."""
    conventional, subset = runs[runs["protocol"] == "conventional"], runs[runs["protocol"] == "subset"]
    steps = sorted({sum(info["steps"] for info in json.loads(p).values() if info["fraction"] < 1)
                    for p in subset["phases"]})
    steps_text = f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}–{steps[-1]:,}"
    return (f"{runs['seed'].nunique()} seeds, {runs['model'].iloc[0]}"
            f"{' with augmentation' if runs['augment'].any() else ''}; conventional "
            f"{int(conventional['epochs'].max())} epochs; subsets {steps_text} steps + "
            f"{int(subset['finetune_epochs'].max())} fine-tuning epochs")


def q_or_fraction(minima: pd.DataFrame) -> dict:
    """Does Q or the fraction govern the subset minimum's gap? With two or more models of one family, compare the
    gap (log of the loss ratio, mean over seeds) between models at equal Q and at equal fraction, each interpolated
    in log space over the range both cover. A smaller mismatch at equal Q means Q governs."""
    arms = minima.groupby(["model", "fraction"], sort=False).agg(Q=("Q", "first"), gap=("loss_ratio", "mean"))
    arms["gap"] = np.log(arms["gap"])
    models = list(dict.fromkeys(arms.index.get_level_values("model")))
    if len(models) < 2:
        return {"testable": False, "why": "only one model width was run"}
    a, b = (arms.loc[m].reset_index().sort_values("fraction") for m in models[:2])

    def mismatch(x: str) -> float:
        lo, hi = max(a[x].min(), b[x].min()), min(a[x].max(), b[x].max())
        if not lo < hi:
            return math.nan
        grid = np.exp(np.linspace(np.log(lo), np.log(hi), 9))
        ga = np.interp(np.log(grid), np.log(a[x]), a["gap"])
        gb = np.interp(np.log(grid), np.log(b[x]), b["gap"])
        return float(np.mean(np.abs(ga - gb)))

    at_q, at_f = mismatch("Q"), mismatch("fraction")
    return {"testable": bool(np.isfinite(at_q) and np.isfinite(at_f)), "models": models[:2],
            "mismatch_at_equal_q": at_q, "mismatch_at_equal_fraction": at_f,
            "why": "" if np.isfinite(at_q) and np.isfinite(at_f) else "the two widths share no range of Q or fraction"}


# ---------------------------------------------------------------------------------------------------------------------
# The arms, run or loaded


def run_config(study: StudyConfig, dataset: str, model: str | None = None):
    """The ``protocols.RunConfig`` of ``study``'s runs on ``dataset`` with ``model`` (default: the study's model)."""
    from subsetlib import protocols

    return protocols.RunConfig(**study.run_fields(dataset, model))


def run_arms(ds, cfg, seeds, fractions, conventional_epochs: int, subset_steps: int | list[int], finetune_epochs: int,
             results_dir: str) -> list[str]:
    """Seed by seed, the conventional arm then one subset arm per fraction (and per subset-phase length when
    ``subset_steps`` is a list); stored runs are loaded, not retrained. Returns the run ids."""
    from subsetlib import protocols
    from subsetlib.subsets import subset_indices

    steps_list = list(subset_steps) if isinstance(subset_steps, list | tuple) else [subset_steps]
    run_ids = []
    for seed in seeds:
        run = protocols.conventional(ds, cfg, seed, conventional_epochs, results_dir=results_dir)
        run_ids.append(run.summary["run_id"])
        for f in fractions:
            k = len(subset_indices(ds.y_train, f, seed, cfg.stratified))
            for steps in steps_list:
                epochs = epochs_for_steps(steps, k, cfg.batch_size)
                run = protocols.subset_pretraining(ds, cfg, seed, epochs, finetune_epochs, fraction=f,
                                                   results_dir=results_dir)
                run_ids.append(run.summary["run_id"])
    return run_ids


def hypothesis_arms(ds, study: StudyConfig, results_dir: str, model: str | None = None) -> list[str]:
    """The hypothesis page's runs of ``study`` on ``ds`` (the conventional arm and every subset arm, every seed);
    with ``model`` the study's narrow model, the widths page's second width. Stored runs are loaded."""
    narrow = model is not None and model == study.narrow_model
    return run_arms(ds, run_config(study, ds.name, model), study.seeds,
                    study.narrow_fractions if narrow else study.fractions, study.conventional_epochs,
                    study.subset_steps, study.narrow_finetune_epochs if narrow else study.finetune_epochs,
                    results_dir)


def switch_arms(ds, study: StudyConfig, fraction: float, results_dir: str) -> list[str]:
    """The baselines page's switch points: the subset arm at ``fraction`` with each of ``study.switch_steps``
    subset-phase lengths, on ``study.switch_seeds`` (and their conventional runs)."""
    return run_arms(ds, run_config(study, ds.name), study.switch_seeds, [fraction], study.conventional_epochs,
                    list(study.switch_steps), study.finetune_epochs, results_dir)


def growing_arms(ds, study: StudyConfig, fraction: float, results_dir: str) -> tuple[list[str], list[int]]:
    """The growing baseline from ``fraction`` on the budget of the subset arm there (``equal_budget_stages``), every
    seed: its run ids and its epochs per stage."""
    from subsetlib import protocols
    from subsetlib.subsets import subset_indices

    cfg = run_config(study, ds.name)
    k = len(subset_indices(ds.y_train, fraction, study.seeds[0], cfg.stratified))
    pre_examples = epochs_for_steps(study.subset_steps, k, cfg.batch_size) * k
    stages = equal_budget_stages(fraction, study.growth, pre_examples, study.finetune_epochs, len(ds.y_train))
    ids = [protocols.growing(ds, cfg, seed, fraction, stages, study.growth, uniform=True,
                             results_dir=results_dir).summary["run_id"] for seed in study.seeds]
    return ids, stages


def best_fraction(costs: pd.DataFrame) -> float:
    """The subset fraction where subset pretraining did best at the main accuracy target (the plan's rule for where
    to run the baselines): most seeds reaching it, then the lowest mean examples ratio."""
    arms = main_target(costs, protocol="subset").groupby("fraction").agg(reached=("reached", "sum"),
                                                                         ratio=("examples_ratio", "mean"))
    return float(arms.sort_values(["reached", "ratio"], ascending=[False, True]).index[0])


def page(study_name: str, dataset: str, device: str) -> tuple[StudyConfig, object, str]:
    """What a page of the first study starts with: the threads, the study's configuration for ``dataset``, the
    dataset on the device, and its name in prose (with augmentation where the study augments)."""
    from subsetlib import data
    from subsetlib.train import set_threads

    set_threads()
    config = study_config(study_name, dataset)
    name = dataset_title(dataset) + (" with augmentation" if config.augment else "")
    return config, data.load(dataset, device=device), name
