"""Convergence by budget doubling, on stored runs: each phase's ladder of budgets (B, 2B, 4B, …), whether a pair
passes the rule (``verdicts.converged``), and the minimum each ladder stands for. Pandas only; no training.
"""

import math

import pandas as pd

from subsetlib.studies import DESIGNS
from subsetlib.verdicts import RULES, Rules, converged


def _phase_ends(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per run: where its first phase ended (full-set training loss, test accuracy, subset loss) and where the run
    ended. For a conventional run both are its last evaluation."""
    last = curves.sort_values("examples").groupby(["run_id", "phase"], sort=False).tail(1)
    first_phase = last[last["phase"].isin(["full", "subset"])].set_index("run_id")
    out = runs.set_index("run_id").reindex(columns=[  # a column only some protocols have is NaN for the rest
        "protocol", "model", "seed", "subset_fraction", "subset_Q", "P", "epochs", "subset_epochs", "finetune_epochs",
        "final_train_loss", "final_test_acc", "total_flops", "epoch_equivalents"])
    for col in ("train_loss", "test_acc", "subset_loss", "flops", "examples"):
        out[f"phase_{col}"] = first_phase[col].reindex(out.index) if col in first_phase else math.nan
    return out.reset_index()


def ladders(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules = RULES, max_doublings: int | None = None,
            long_doublings: int | None = None) -> pd.DataFrame:
    """One row per budget-doubling pair (B, 2B) of one arm and seed: the loss the rule reads at each budget (the
    conventional run's training loss; a subset phase's loss on its subset) and whether the pair passes the rule.
    Arm ``fraction`` 1 is the conventional arm; budgets are epochs over the arm's own training set. ``planned`` is
    false for a pair beyond the design's cap of ``max_doublings`` pairs (a stored run the plan did not ask for: shown,
    never used for a minimum); a subset phase that question 1 judges (Q ≥ ``rules.q_high``, its seed's conventional
    ladder converged within its cap) has ``long_doublings`` pairs instead."""
    ends = _phase_ends(runs, curves)
    conv = ends[ends["protocol"] == "conventional"].assign(fraction=1.0, budget=lambda t: t["epochs"],
                                                           loss=lambda t: t["phase_train_loss"])
    sub = ends[ends["protocol"].isin(["subset", "subset-phase"])].assign(
        fraction=lambda t: t["subset_fraction"], budget=lambda t: t["subset_epochs"],
        loss=lambda t: t["phase_subset_loss"])
    rows = []
    for (model, fraction, seed), arm in pd.concat([conv, sub]).groupby(["model", "fraction", "seed"]):
        by_budget = arm.drop_duplicates("budget").set_index("budget").sort_index()
        for b in by_budget.index:
            if 2 * b in by_budget.index:
                low, high = by_budget.loc[b], by_budget.loc[2 * b]
                rows.append({"model": model, "fraction": fraction, "seed": seed, "Q": low["subset_Q"],
                             "P": low["P"], "budget": int(b), "loss": low["loss"], "loss_2x": high["loss"],
                             "drop": 1 - high["loss"] / low["loss"], "converged": converged(low["loss"], high["loss"],
                                                                                              rules),
                             "run_id": low["run_id"], "run_id_2x": high["run_id"], "first": by_budget.index.min()})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    if not max_doublings:
        return table.drop(columns="first").assign(planned=True)
    table["planned"] = table["budget"] <= table["first"] * 2 ** (max_doublings - 1)
    conventional = table[(table["fraction"] >= 1) & table["planned"] & table["converged"]]
    reference = set(zip(conventional["model"], conventional["seed"], strict=True))
    judged = [(m, s) in reference and f < 1 and q >= rules.q_high
              for m, s, f, q in zip(table["model"], table["seed"], table["fraction"], table["Q"], strict=True)]
    long_cap = table["first"] * 2 ** (max(long_doublings or 0, max_doublings) - 1)
    table["planned"] = table["planned"] | (pd.Series(judged, index=table.index) & (table["budget"] <= long_cap))
    return table.drop(columns="first")


def minima(runs: pd.DataFrame, curves: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per arm and seed of ``pairs`` (``ladders`` of these runs): its minimum, read at the longer run of its
    first converged planned pair (the lower loss of the two, so a gap to it is never flattered). An arm with no
    converged pair is marked ``converged = False`` and read at its longest planned run."""
    pairs = pairs[pairs["planned"]]
    ends = _phase_ends(runs, curves).set_index("run_id")
    rows = []
    for (model, fraction, seed), arm in pairs.groupby(["model", "fraction", "seed"]):
        ok = arm[arm["converged"]].sort_values("budget")
        pick = ok.iloc[0] if len(ok) else arm.sort_values("budget").iloc[-1]
        end = ends.loc[pick["run_id_2x"]]
        rows.append({"model": model, "fraction": fraction, "seed": seed, "Q": pick["Q"], "P": pick["P"],
                     "converged": bool(len(ok)), "budget": 2 * pick["budget"], "run_id": pick["run_id_2x"],
                     "train_loss": end["phase_train_loss"], "test_acc": end["phase_test_acc"],
                     "subset_loss": end["phase_subset_loss"]})
    return pd.DataFrame(rows)


def _caps(dataset: str) -> tuple[int | None, int | None]:
    """The design's two caps on a dataset's ladders (none for a dataset without a v2 design)."""
    design = DESIGNS.get(dataset)
    return (design.max_doublings, design.long_doublings) if design else (None, None)


def progress(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """While the grid runs: every budget-doubling pair stored so far, per dataset (no training, no verdicts). Only
    study v2's runs count (cosine schedule, its protocols), whatever else the folder holds."""
    schedule = runs["lr_schedule"] if "lr_schedule" in runs else pd.Series("constant", index=runs.index)
    runs = runs[(schedule == "cosine") & runs["protocol"].isin(["conventional", "subset", "subset-phase"])]
    frames = [ladders(r, curves[curves["run_id"].isin(r["run_id"])], rules, *_caps(dataset)).assign(dataset=dataset)
              for dataset, r in runs.groupby("dataset", sort=False)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ladder_points(pairs: pd.DataFrame, titles: dict[str, str]) -> pd.DataFrame:
    """The progress figure's points: per conventional budget-doubling pair of the plan stored so far (dataset, width,
    seed, budget B), by how much 2B lowered the training loss, with both runs it compares."""
    conv = pairs[pairs["planned"] & (pairs["fraction"] >= 1)]
    return pd.DataFrame({"run_id": conv["run_id"], "run_id_2x": conv["run_id_2x"], "seed": conv["seed"],
                         "arm": [f"{titles.get(d, d)}, {m}" for d, m in zip(conv["dataset"], conv["model"],
                                                                           strict=True)],
                         "budget": conv["budget"], "drop_pct": 100 * conv["drop"],
                         "converged": conv["converged"]}).reset_index(drop=True)
