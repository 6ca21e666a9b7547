"""Two accountings of what subset pretraining saves, side by side.

* **Fixed budgets** (epochs × set size): every arm gets a fixed epoch budget; cost is Σ epochs × set size (in
  epoch-equivalents of the full set); quality is the lowest full-set training loss the arm reached and its final
  test accuracy. The paper's own accounting is not known; this is one reading of it.
* **Time to target**: the cumulative ledger (examples, FLOPs, training seconds) at the first evaluation where an
  arm reaches a target at a fixed gap from the conventional arm: its mean final test accuracy minus ``acc_gap``
  (default 0.2 points), or its mean lowest training loss times ``loss_factor`` (default 1.25). Targets are never
  set from the spread over a few seeds. A run that never reaches the target is reported as such, never dropped.
  (``subsetlib.study`` sets its targets from the conventional plateau instead of the final evaluation.)
"""

import math

import numpy as np
import pandas as pd

from subsetlib.errors import UserError

COSTS = ("examples", "flops", "train_seconds", "epoch_equivalents")
ARM_KEYS = ("protocol", "subset_fraction", "target_q", "subset_epochs", "finetune_epochs", "epochs", "growth",
            "stage_epochs", "uniform", "lbfgs_iterations")


def _fraction_text(f: float) -> str:
    inverse = 1 / f
    return f"1/{round(inverse)}" if abs(inverse - round(inverse)) < 1e-6 and f < 1 else f"{f:.3g}"


def arm_label(run: pd.Series) -> str:
    """A short, readable name for an arm, e.g. 'subset 1/4 (Q=6.3), 20+5 ep'."""
    protocol = run["protocol"]
    if protocol == "conventional":
        return f"conventional, {int(run['epochs'])} ep"
    q = f"Q={run['subset_Q']:.3g}"
    if protocol == "growing":
        start = _fraction_text(run["subset_fraction"])
        drawn = "uniform" if run.get("uniform") in (True, 1) else "stratified"  # numpy bools compare equal
        return f"growing from {start} ({q}), x{run['growth']:g}, {run['stage_epochs']} ep, {drawn}"
    which = f"Q target {run['target_q']:g}" if pd.notna(run.get("target_q")) else _fraction_text(run["subset_fraction"])
    if protocol == "lbfgs-subset":
        return f"L-BFGS subset {which} ({q}), {int(run['lbfgs_iterations'])} it + {int(run['finetune_epochs'])} ep"
    return f"{protocol} {which} ({q}), {int(run['subset_epochs'])}+{int(run['finetune_epochs'])} ep"


def with_arms(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.copy()
    for key in ARM_KEYS:
        if key not in runs:
            runs[key] = np.nan
    runs["arm"] = runs.apply(arm_label, axis=1)
    return runs


def conventional_targets(runs: pd.DataFrame, acc_gap: float = 0.002, loss_factor: float = 1.25) -> dict:
    """Targets at fixed gaps from the conventional arm: mean final test accuracy − ``acc_gap``, and mean lowest
    full-set training loss × ``loss_factor``."""
    conv = runs[runs["protocol"] == "conventional"]
    if conv.empty:
        raise UserError("no conventional runs in these results: the targets come from the conventional arm")
    return {"test_acc": conv["final_test_acc"].mean() - acc_gap,
            "train_loss": conv["min_train_loss"].mean() * loss_factor,
            "acc_gap": acc_gap, "loss_factor": loss_factor, "conventional_seeds": len(conv)}


def cost_at_target(curve: pd.DataFrame, metric: str, target: float) -> dict | None:
    """The ledger at the first evaluation reaching ``target`` (accuracy: at least; loss: at most), else None."""
    curve = curve.sort_values("examples")
    if metric not in curve:
        return None
    reached = curve[metric] >= target if metric.endswith("acc") else curve[metric] <= target
    if not reached.any():
        return None
    return curve.loc[reached.idxmax(), list(COSTS)].to_dict()


def time_to_target(runs: pd.DataFrame, curves: pd.DataFrame, acc_gap: float = 0.002, loss_factor: float = 1.25
                   ) -> pd.DataFrame:
    """One row per run and metric: the cost to reach the conventional target and its ratio to the conventional arm's
    mean cost to reach the same target (NaN where a run never reached it)."""
    runs = with_arms(runs)
    targets = conventional_targets(runs, acc_gap, loss_factor)
    rows = []
    for _, run in runs.iterrows():
        curve = curves[curves["run_id"] == run["run_id"]]
        for metric in ("test_acc", "train_loss"):
            cost = cost_at_target(curve, metric, targets[metric])
            rows.append({"run_id": run["run_id"], "arm": run["arm"], "protocol": run["protocol"], "seed": run["seed"],
                         "subset_fraction": run["subset_fraction"], "subset_Q": run["subset_Q"], "metric": metric,
                         "target": targets[metric], "reached": cost is not None,
                         **{c: (cost or {}).get(c, math.nan) for c in COSTS}})
    table = pd.DataFrame(rows)
    conv = table[(table["protocol"] == "conventional") & table["reached"]].groupby("metric")[list(COSTS)].mean()
    for c in COSTS:
        table[f"{c}_ratio"] = table[c] / table["metric"].map(conv[c]) if not conv.empty else math.nan
    return table


def summarize(table: pd.DataFrame, by: tuple[str, ...] = ("metric", "arm")) -> pd.DataFrame:
    """Mean ± std over seeds of every cost ratio, with how many seeds reached the target."""
    ratio_cols = [c for c in table if c.endswith("_ratio")]
    grouped = table.groupby(list(by), sort=False)
    out = grouped[ratio_cols].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["reached"] = grouped["reached"].sum().astype(int)
    out["seeds"] = grouped["reached"].size()
    out["subset_Q"] = grouped["subset_Q"].first()
    return out.reset_index()


def time_to_target_summary(runs: pd.DataFrame, curves: pd.DataFrame, arms: pd.Series) -> pd.DataFrame:
    """``summarize`` of ``time_to_target`` per target and arm (``arms``: run id → arm label), with the target in
    words and a ``reference`` column marking the conventional arm, whose ratios are 1 by definition."""
    ttt = time_to_target(runs, curves)
    ttt["arm"] = ttt["run_id"].map(arms)
    out = summarize(ttt)
    out["target"] = out["metric"].map({"test_acc": "test accuracy", "train_loss": "training loss"})
    out["reference"] = out["arm"].str.startswith("conventional")
    return out


def reference_note(summary: pd.DataFrame) -> str:
    """The sentence that stands for the reference rows of a ``time_to_target_summary`` table."""
    rows = summary[summary["reference"]].itertuples()
    reached = ", ".join(f"{r.reached} of {r.seeds} seeds ({r.target})" for r in rows)
    return ("Ratios are to the conventional run of the same seed, the reference (1 by definition); it reached its own "
            f"targets in {reached}.")


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
