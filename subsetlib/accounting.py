"""The one accounting of what an arm costs, used by the study pages, the claims and the beyond pages alike.

* **Time to target**: the cumulative ledger (examples, FLOPs, training seconds, epoch-equivalents) at the first
  evaluation where a run reaches a target, and its ratio to the conventional run of the *same seed* (same initial
  weights and batches). The targets come from ``study.targets``: fixed gaps from the conventional plateau, never a
  spread over a few seeds. A run that never reaches a target is reported as such (NaN cost), never dropped.
* **Fixed budgets** (epochs × set size): every arm's whole budget in epoch-equivalents of the full set, its lowest
  full-set training loss and final test accuracy. The paper's own accounting is not known; this is one reading of it.
"""

import json
import math

import numpy as np
import pandas as pd

from subsetlib.errors import UserError
from subsetlib.present import fraction_text

COSTS = ("examples", "flops", "train_seconds", "epoch_equivalents")
ARM_KEYS = ("protocol", "subset_fraction", "target_q", "subset_epochs", "finetune_epochs", "epochs", "growth",
            "stage_epochs", "uniform", "lbfgs_iterations")
METRIC_WORDS = {"test_acc": "test accuracy", "train_loss": "training loss"}


def arm_label(run: pd.Series) -> str:
    """A short, readable name for an arm, the same on every page, e.g. 'subset 1/4 (Q=6.3), 20+5 ep'."""
    protocol = run["protocol"]
    if protocol == "conventional":
        return f"conventional, {int(run['epochs'])} ep"
    q = f"Q={run['subset_Q']:.3g}"
    if protocol == "growing":
        stages = json.loads(run["stage_epochs"]) if isinstance(run["stage_epochs"], str) else run["stage_epochs"]
        per_stage = f"{stages[0]} ep/stage" if len(set(stages)) == 1 else f"{stages} ep"
        drawn = "uniform" if bool(run.get("uniform")) else "stratified"
        return f"growing from {fraction_text(run['subset_fraction'])} ×{run['growth']:g}, {drawn} ({q}), {per_stage}"
    which = f"Q target {run['target_q']:g}" if pd.notna(run.get("target_q")) else fraction_text(run["subset_fraction"])
    if protocol == "lbfgs-subset":
        return f"L-BFGS subset {which} ({q}), {int(run['lbfgs_iterations'])} it + {int(run['finetune_epochs'])} ep"
    return f"{protocol} {which} ({q}), {int(run['subset_epochs'])}+{int(run['finetune_epochs'])} ep"


def with_arms(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with an ``arm`` column (``arm_label``); protocol-specific columns a table lacks count as missing."""
    runs = runs.copy()
    for key in ARM_KEYS:
        if key not in runs:
            runs[key] = np.nan
    runs["arm"] = runs.apply(arm_label, axis=1)
    return runs


# ---------------------------------------------------------------------------------------------------------------------
# Time to target


def cost_at_target(curve: pd.DataFrame, metric: str, target: float) -> dict | None:
    """The ledger at the first evaluation reaching ``target`` (accuracy: at least; loss: at most), else None."""
    curve = curve.sort_values("examples")
    if metric not in curve:
        return None
    reached = curve[metric] >= target if metric.endswith("acc") else curve[metric] <= target
    if not reached.any():
        return None
    return curve.loc[reached.idxmax(), list(COSTS)].to_dict()


def subset_phase_cost(run: pd.Series) -> float:
    """Epoch-equivalents the run spent before its first full-set phase (0 for the conventional arm)."""
    phases = json.loads(run["phases"]) if isinstance(run.get("phases"), str) else {}
    return sum(info["examples"] for info in phases.values() if info["fraction"] < 1) / run["K_full"]


def time_to_target(runs: pd.DataFrame, curves: pd.DataFrame, goals: pd.DataFrame) -> pd.DataFrame:
    """One row per run and target (``goals``: metric, target, label, main): the ledger at the first evaluation that
    reached it (a subset phase included) and, as ``<cost>_ratio``, its ratio to the conventional run of the same
    seed: never to a mean over seeds. NaN where the run, or that seed's conventional run, never reached it."""
    conventional = runs[runs["protocol"] == "conventional"]
    if conventional["seed"].duplicated().any():
        raise UserError("more than one conventional run per seed: a ratio needs the one conventional run of its seed")
    rows = []
    for _, run in runs.iterrows():
        curve = curves[curves["run_id"] == run["run_id"]]
        for _, goal in goals.iterrows():
            cost = cost_at_target(curve, goal["metric"], goal["target"])
            rows.append({"run_id": run["run_id"], "protocol": run["protocol"], "seed": run["seed"],
                         "fraction": run["subset_fraction"], "Q": run["subset_Q"], "label": goal["label"],
                         "metric": goal["metric"], "target": goal["target"], "main": goal["main"],
                         "reached": cost is not None, "budget": run.get("epoch_equivalents", math.nan),
                         "pre_cost": subset_phase_cost(run) if "phases" in run else math.nan,
                         **{k: (cost or {}).get(k, math.nan) for k in COSTS}})
    table = pd.DataFrame(rows)
    base = table[table["protocol"] == "conventional"].set_index(["seed", "label"])
    keys = pd.MultiIndex.from_frame(table[["seed", "label"]])
    # a target not reached, or a reference that cost nothing, gives NaN (no ratio), not a warning on the page
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in COSTS:
            table[f"{k}_ratio"] = table[k].to_numpy() / base[k].reindex(keys).to_numpy()
    return table


def main_target(costs: pd.DataFrame, metric: str = "test_acc", protocol: str | None = None) -> pd.DataFrame:
    """The rows of a ``time_to_target`` table at the plan's main target for ``metric`` (the one the cost verdicts
    use), optionally of one protocol only."""
    rows = costs["main"] & (costs["metric"] == metric)
    return costs[rows & (costs["protocol"] == protocol)] if protocol else costs[rows]


def by_arm(table: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """Mean and std over seeds of ``values`` for each arm (``keys``), in the table's order, with ``seeds`` (how many)
    and, for a ``time_to_target`` table, ``reached`` (in how many seeds the run reached the target)."""
    grouped = table.groupby(keys, sort=False)
    out = grouped[values].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["seeds"] = grouped["seed"].nunique()
    if "reached" in table:
        out["reached"] = grouped["reached"].sum().astype(int)
    return out.reset_index()


def time_to_target_summary(costs: pd.DataFrame, arms: pd.Series) -> pd.DataFrame:
    """Per main target and arm (``arms``: run id → arm label), the mean ± std over seeds of every cost ratio and how
    many seeds reached it, with the target in words and a ``reference`` column marking the conventional arm, whose
    ratios are 1 by definition."""
    main = costs[costs["main"]].assign(arm=costs["run_id"].map(arms))
    out = by_arm(main, ["metric", "arm"], [f"{k}_ratio" for k in COSTS])
    out["target"] = out["metric"].map(METRIC_WORDS)
    out["reference"] = out["arm"].str.startswith("conventional")
    return out


def reference_note(summary: pd.DataFrame) -> str:
    """The sentence that stands for the reference rows of a ``time_to_target_summary`` table."""
    rows = summary[summary["reference"]].itertuples()
    reached = ", ".join(f"{r.reached} of {r.seeds} seeds ({r.target})" for r in rows)
    return ("Ratios are to the conventional run of the same seed, the reference (1 by definition); it reached its own "
            f"targets in {reached}.")


# ---------------------------------------------------------------------------------------------------------------------
# Fixed budgets


def fixed_budgets(runs: pd.DataFrame) -> pd.DataFrame:
    """Fixed budgets (epochs × set size): each arm's fixed budget in epoch-equivalents, its lowest full-set training
    loss and final test accuracy (mean ± std over seeds), and its budget relative to the conventional arm's."""
    runs = with_arms(runs)
    grouped = runs.groupby("arm", sort=False)
    out = grouped.agg(
        protocol=("protocol", "first"), subset_Q=("subset_Q", "first"), seeds=("seed", "nunique"),
        budget_epoch_equivalents=("epoch_equivalents", "mean"),
        min_train_loss_mean=("min_train_loss", "mean"), min_train_loss_std=("min_train_loss", "std"),
        final_test_acc_mean=("final_test_acc", "mean"), final_test_acc_std=("final_test_acc", "std"),
        train_seconds_mean=("total_train_seconds", "mean"),
    ).reset_index()
    conv = out.loc[out["protocol"] == "conventional", "budget_epoch_equivalents"]
    out["budget_ratio"] = out["budget_epoch_equivalents"] / conv.mean() if len(conv) else math.nan
    return out
