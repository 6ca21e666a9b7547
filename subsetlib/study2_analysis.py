"""Study v2's questions on stored runs: how close a subset's minimum lies to the full-set minimum (paired, per arm),
equal compute, the cost to a target and the "tenth", and whether Q or the fraction governs, on every metric.
Pandas only; the verdicts come from ``verdicts``.
"""

import json
import math

import numpy as np
import pandas as pd
from scipy import stats

from subsetlib import verdicts
from subsetlib.ladders import ladders, minima
from subsetlib.studies import Design
from subsetlib.study2_report import arm_text
from subsetlib.verdicts import RULES, Rules


def closeness(mins: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """Per subset phase and seed, its minimum against the conventional minimum of the same width and seed: the loss
    ratio, the excess loss (nats) and the test-accuracy gap. ``both_converged`` is what a verdict may use."""
    conv = mins[mins["fraction"] >= 1].set_index(["model", "seed"])
    sub = mins[mins["fraction"] < 1].copy()
    ref = conv.reindex(pd.MultiIndex.from_frame(sub[["model", "seed"]]))
    sub["ref_loss"], sub["ref_acc"] = ref["train_loss"].to_numpy(), ref["test_acc"].to_numpy()
    sub["ref_converged"] = ref["converged"].astype("boolean").fillna(False).astype(bool).to_numpy()
    sub["ref_run_id"] = ref["run_id"].to_numpy()
    sub["loss_ratio"] = sub["train_loss"] / sub["ref_loss"]
    sub["excess_nats"] = sub["train_loss"] - sub["ref_loss"]
    sub["acc_gap"] = sub["test_acc"] - sub["ref_acc"]
    sub["both_converged"] = sub["converged"] & sub["ref_converged"]
    return sub


def closeness_points(close: pd.DataFrame) -> pd.DataFrame:
    """The minima figure's points, one per subset minimum (width, fraction, seed): its run, the conventional minimum
    it is measured against (``ref_run_id``), its arm in words, Q, the excess loss in nats and the accuracy gap in
    points, and whether both phases converged (only those count towards the means the figure joins)."""
    points = close.assign(arm=[f"{model}, {arm_text(f)}" for model, f in zip(close["model"], close["fraction"],
                                                                             strict=True)],
                          acc_gap_points=100 * close["acc_gap"])
    return points[["run_id", "seed", "arm", "ref_run_id", "model", "P", "fraction", "Q", "excess_nats",
                   "acc_gap_points", "both_converged"]].reset_index(drop=True)


def paired_by_arm(table: pd.DataFrame, keys: list[str], arm_col: tuple[str, str], ref_col: tuple[str, str],
                  use: str | None, rules: Rules = RULES) -> pd.DataFrame:
    """Per arm (``keys``): the paired loss test (``arm_col[0]`` against ``ref_col[0]``) and accuracy test
    (``arm_col[1]`` against ``ref_col[1]``) over its seeds, on the rows where ``use`` is true (all rows if None)."""
    rows = []
    for key, arm in table.groupby(keys, sort=False):
        ok = arm[arm[use]] if use else arm
        loss = verdicts.loss_test(ok[arm_col[0]].tolist(), ok[ref_col[0]].tolist(), rules)
        acc = verdicts.accuracy_test(ok[arm_col[1]].tolist(), ok[ref_col[1]].tolist(), rules)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                     "seeds": arm["seed"].nunique(), "usable": len(ok), "loss": loss, "acc": acc,
                     "loss_verdict": loss.verdict if len(ok) else "not converged",
                     "acc_verdict": acc.verdict if len(ok) else "not converged",
                     "ratio": math.exp(loss.mean) if loss.n else math.nan,
                     "excess_nats": float((ok[arm_col[0]] - ok[ref_col[0]]).mean()) if len(ok) else math.nan,
                     "acc_gap": acc.mean})
    return pd.DataFrame(rows)


def closeness_by_arm(close: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """Per (width, fraction): the verdicts of question 1 on each metric, from the seeds where both phases
    converged."""
    by_arm = paired_by_arm(close, ["model", "P", "fraction", "Q"], ("train_loss", "test_acc"), ("ref_loss", "ref_acc"),
                           "both_converged", rules)
    # which phase failed, for the words: seeds whose subset phase / reference converged
    counts = close.groupby(["model", "fraction"])[["converged", "ref_converged"]].sum()
    index = pd.MultiIndex.from_frame(by_arm[["model", "fraction"]])
    by_arm["subset_converged"] = counts["converged"].reindex(index).to_numpy().astype(int)
    by_arm["reference_converged"] = counts["ref_converged"].reindex(index).to_numpy().astype(int)
    return by_arm.sort_values(["P", "fraction"], ascending=[False, False]).reset_index(drop=True)


def equal_compute(runs: pd.DataFrame, d: Design) -> pd.DataFrame:
    """Per equal-compute arm and seed: its final model against the conventional run of the same seed on budget B."""
    conv = runs[(runs["protocol"] == "conventional") & (runs["epochs"] == d.epochs) & (runs["model"] == d.model)]
    conv = conv.set_index("seed")
    arms = runs[(runs["protocol"] == "subset") & (runs["model"] == d.model)].copy()
    ref = conv.reindex(arms["seed"])
    arms["ref_loss"], arms["ref_acc"] = ref["final_train_loss"].to_numpy(), ref["final_test_acc"].to_numpy()
    arms["ref_flops"] = ref["total_flops"].to_numpy()
    arms["flops_ratio"] = arms["total_flops"] / arms["ref_flops"]
    arms["fraction"] = arms["subset_fraction"]
    return arms


def equal_compute_by_arm(arms: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """Per equal-compute arm: the paired verdicts of question 2 on each metric."""
    by_arm = paired_by_arm(arms, ["fraction", "subset_Q"], ("final_train_loss", "final_test_acc"),
                           ("ref_loss", "ref_acc"), None, rules)
    flops = arms.groupby("fraction")["flops_ratio"].mean()
    by_arm["flops_ratio"] = by_arm["fraction"].map(flops)
    # where the equal-compute arms spend their FLOPs: the share of the full set's (fine-tuning) phase
    full_share = arms.assign(share=[json.loads(p)["finetune"]["flops"] / t if "finetune" in json.loads(p) else math.nan
                                    for p, t in zip(arms["phases"], arms["total_flops"], strict=True)]
                             ) if "phases" in arms else arms.assign(share=math.nan)
    by_arm["full_set_share"] = by_arm["fraction"].map(full_share.groupby("fraction")["share"].mean())
    # a post-hoc check of the accuracy margin's scale: test error within ±10 % of conventional training's, paired
    rel = {f: verdicts.loss_test((1 - arm["final_test_acc"]).tolist(), (1 - arm["ref_acc"]).tolist(), rules)
           for f, arm in arms.groupby("fraction")}
    by_arm["error_ratio"] = by_arm["fraction"].map(rel)
    by_arm["reference_error"] = by_arm["fraction"].map(1 - arms.groupby("fraction")["ref_acc"].mean())
    return by_arm.rename(columns={"subset_Q": "Q"}).sort_values("fraction", ascending=False).reset_index(drop=True)


def compute_curves(runs: pd.DataFrame, curves: pd.DataFrame, d: Design) -> pd.DataFrame:
    """Tidy points for the equal-compute figure: per arm, seed and evaluation, cumulative training FLOPs (subset
    phase included), full-set training loss and test accuracy. Arms: the conventional runs on B and 2B and the
    equal-compute arms, all of the main width."""
    keep = runs[(runs["model"] == d.model) & ((runs["protocol"] == "subset") | (
        (runs["protocol"] == "conventional") & runs["epochs"].isin([d.epochs, 2 * d.epochs])))]
    pts = curves[curves["run_id"].isin(keep["run_id"]) & (curves["examples"] > 0)]
    meta = keep.set_index("run_id")
    pts = pts.assign(fraction=pts["run_id"].map(meta["subset_fraction"]),
                     budget=pts["run_id"].map(meta["epochs"]))
    pts["arm"] = [arm_text(f) + (f" ({int(b)} epochs)" if f >= 1 else "")
                  for f, b in zip(pts["fraction"], pts["budget"], strict=True)]
    return pts[["arm", "fraction", "run_id", "seed", "phase", "flops", "epoch_equivalents", "train_loss",
                "test_acc"]].sort_values(["fraction", "arm", "seed", "flops"], ascending=[False, True, True, True])


def cost_to_target(runs: pd.DataFrame, curves: pd.DataFrame, mins: pd.DataFrame, d: Design) -> pd.DataFrame:
    """Per equal-compute arm, seed and metric: training FLOPs to reach a fixed gap from that seed's conventional
    minimum (accuracy: ``acc_margin`` below it; loss: within 10 % above it), the subset phase included, and the
    ratio to the cheapest conventional run of the same seed to reach it (each conventional run is a whole annealed
    schedule, counted up to its first evaluation at the target)."""
    rules = d.rules
    ref = mins[(mins["fraction"] >= 1) & (mins["model"] == d.model)].set_index("seed")
    main = runs[runs["model"] == d.model]
    rows = []
    for metric, better in (("test_acc", max), ("train_loss", min)):
        for seed, seed_runs in main.groupby("seed"):
            if seed not in ref.index:
                continue
            goal = (ref.loc[seed, "test_acc"] - rules.acc_margin if metric == "test_acc"
                    else ref.loc[seed, "train_loss"] * math.exp(rules.loss_margin))
            costs = {}
            for _, run in seed_runs.iterrows():
                c = curves[(curves["run_id"] == run["run_id"]) & (curves["examples"] > 0)].sort_values("examples")
                hit = c[c[metric] >= goal] if better is max else c[c[metric] <= goal]
                costs[run["run_id"]] = float(hit["flops"].iloc[0]) if len(hit) else math.nan
            conv_ids = seed_runs.loc[seed_runs["protocol"] == "conventional", "run_id"]
            conv_cost = min((costs[r] for r in conv_ids if math.isfinite(costs[r])), default=math.nan)
            for _, run in seed_runs[seed_runs["protocol"] == "subset"].iterrows():
                phases = json.loads(run["phases"])
                rows.append({"metric": metric, "seed": seed, "fraction": run["subset_fraction"],
                             "Q": run["subset_Q"], "run_id": run["run_id"], "target": goal,
                             "reference_converged": bool(ref.loc[seed, "converged"]),
                             "cost": costs[run["run_id"]], "conventional_cost": conv_cost,
                             "ratio": costs[run["run_id"]] / conv_cost,
                             "finetune_flops": phases["finetune"]["flops"]})
    return pd.DataFrame(rows)


def tenth_by_arm(costs: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """Per arm and metric: seeds that reached the target, the paired ratio (geometric mean, 95 % interval over the
    seeds where both reached it) and the verdict on "a tenth or less". Targets sit at fixed gaps from a converged
    reference, so only seeds whose reference converged (``reference_converged``, where given) are judged; with none,
    the verdict is "not testable at this budget"."""
    rows = []
    for (metric, fraction), all_seeds in costs.groupby(["metric", "fraction"], sort=False):
        arm = all_seeds[all_seeds["reference_converged"]] if "reference_converged" in all_seeds else all_seeds
        shown = arm if len(arm) else all_seeds  # with no converged reference the ratios are shown, not judged
        both = shown[np.isfinite(shown["ratio"])]
        logs = np.log(both["ratio"].to_numpy())
        n = len(logs)
        if n >= rules.min_seeds:  # fewer pairs give no interval: their per-seed ratios (``each``) are shown
            half = float(stats.t.ppf(0.5 + rules.level / 2, n - 1) * logs.std(ddof=1) / math.sqrt(n))
            low, high = math.exp(logs.mean() - half), math.exp(logs.mean() + half)
        else:
            low = high = math.nan
        # refuted needs a fine-tuning phase long enough to have matched conventional training on its own
        long_enough = bool((arm["finetune_flops"] >= arm["conventional_cost"]).all())
        reached_none = not np.isfinite(arm["cost"]).any()
        if arm.empty:
            verdict = "not testable at this budget"  # no converged reference: no target a minimum stands behind
        elif reached_none and len(arm) >= rules.min_seeds:  # no ratio at all: the budget decides which way
            verdict = "refuted" if long_enough else "not testable at this budget"
        elif n < rules.min_seeds:
            verdict = f"inconclusive at {n} seed{'s' if n != 1 else ''}"
        elif high <= rules.tenth:
            verdict = "reproduced"
        elif low > rules.tenth and long_enough:
            verdict = "refuted"
        elif low > rules.tenth:
            verdict = "not testable at this budget"
        else:
            verdict = f"inconclusive at {n} seeds"
        rows.append({"metric": metric, "fraction": fraction, "Q": all_seeds["Q"].iloc[0],
                     "seeds": all_seeds["seed"].nunique(), "references_converged": arm["seed"].nunique(),
                     "reached": int(np.isfinite(shown["cost"]).sum()), "shown_seeds": shown["seed"].nunique(),
                     "conventional_reached": int(np.isfinite(arm["conventional_cost"]).sum()),
                     "ratio": math.exp(logs.mean()) if n else math.nan, "low": low, "high": high,
                     "each": tuple(float(r) for r in both.sort_values("seed")["ratio"]),
                     "long_enough": long_enough, "verdict": verdict})
    table = pd.DataFrame(rows)
    return table.sort_values(["metric", "fraction"], ascending=[True, False]).reset_index(drop=True) if rows else table


Q_OR_FRACTION_METRICS = {"log_ratio": "log of the loss ratio", "log_loss": "log of the full-set training loss",
                         "acc_gap": "test-accuracy gap"}


def q_or_fraction(close: pd.DataFrame) -> pd.DataFrame:
    """Per metric: the mismatch between widths (mean absolute difference of their arms' seed means, interpolated in
    log space over the range both cover, averaged over every pair of widths) at equal Q and at equal fraction, and
    which of the two governs by the plan's factor-of-two rule. Converged seeds only."""
    ok = close[close["both_converged"]].assign(log_ratio=lambda t: np.log(t["loss_ratio"]),
                                               log_loss=lambda t: np.log(t["train_loss"]))
    if ok.empty:
        return pd.DataFrame([{"metric": label, "at_equal_q": math.nan, "at_equal_fraction": math.nan, "widths": 0,
                              "verdict": "not testable at this budget (no converged pairs)"}
                             for label in Q_OR_FRACTION_METRICS.values()])
    arms = ok.groupby(["model", "fraction"]).agg(Q=("Q", "first"), **{m: (m, "mean") for m in Q_OR_FRACTION_METRICS})
    models = list(arms.index.get_level_values("model").unique())
    rows = []
    for metric, label in Q_OR_FRACTION_METRICS.items():
        at = {}
        for x in ("Q", "fraction"):
            gaps = []
            for i, a in enumerate(models):
                for b in models[i + 1:]:
                    gaps.append(_mismatch(arms.loc[a].reset_index(), arms.loc[b].reset_index(), x, metric))
            finite = [g for g in gaps if math.isfinite(g)]
            at[x] = float(np.mean(finite)) if finite else math.nan
        if not (math.isfinite(at["Q"]) and math.isfinite(at["fraction"])):
            verdict = "not testable (the widths share no range)"
        elif at["Q"] <= at["fraction"] / 2:
            verdict = "Q governs"
        elif at["fraction"] <= at["Q"] / 2:
            verdict = "the fraction governs"
        else:
            verdict = "neither"
        rows.append({"metric": label, "at_equal_q": at["Q"], "at_equal_fraction": at["fraction"],
                     "widths": len(models), "verdict": verdict})
    return pd.DataFrame(rows)


def _mismatch(a: pd.DataFrame, b: pd.DataFrame, x: str, metric: str) -> float:
    """Mean |a − b| of ``metric`` over 9 log-spaced points of ``x`` inside the range both widths cover."""
    lo, hi = max(a[x].min(), b[x].min()), min(a[x].max(), b[x].max())
    if not lo < hi:
        return math.nan
    grid = np.linspace(np.log(lo), np.log(hi), 9)
    a, b = a.sort_values(x), b.sort_values(x)
    return float(np.mean(np.abs(np.interp(grid, np.log(a[x]), a[metric]) - np.interp(grid, np.log(b[x]), b[metric]))))


def equal_steps(runs: pd.DataFrame, curves: pd.DataFrame, d: Design) -> pd.DataFrame:
    """Diagnostic: per equal-compute arm and seed, the full-set training loss where its subset phase ended, against
    the conventional B run of the same seed after the same number of optimizer steps (interpolated in log loss)."""
    rows = []
    main = runs[runs["model"] == d.model]
    for _, run in main[main["protocol"] == "subset"].iterrows():
        conv = main[(main["protocol"] == "conventional") & (main["seed"] == run["seed"]) &
                    (main["epochs"] == d.epochs)]
        if conv.empty:
            continue
        c = curves[curves["run_id"] == run["run_id"]]
        end = c[c["phase"] == "subset"].sort_values("steps").iloc[-1]
        ref = curves[(curves["run_id"] == conv["run_id"].iloc[0]) & (curves["steps"] > 0)].sort_values("steps")
        at = float(np.exp(np.interp(end["steps"], ref["steps"], np.log(ref["train_loss"]))))
        rows.append({"fraction": run["subset_fraction"], "Q": run["subset_Q"], "seed": run["seed"],
                     "steps": int(end["steps"]), "subset_end_loss": end["train_loss"], "conventional_loss": at,
                     "ratio": end["train_loss"] / at})
    return pd.DataFrame(rows)


def memorisation(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """One row per subset phase (a mini-batch or an L-BFGS one): the lowest loss it reached on its own subset, the
    full-set training loss at that evaluation, and whether it memorised its subset (``verdicts.memorised``)."""
    if "subset_loss" not in curves or runs.empty:
        return pd.DataFrame(columns=["dataset", "model", "fraction", "Q", "seed", "run_id", "subset_loss",
                                     "full_loss", "memorised"])
    meta = runs.set_index("run_id")
    pts = curves[(curves["phase"].isin(["subset", "lbfgs"])) & (curves["examples"] > 0)
                 & curves["run_id"].isin(runs["run_id"]) & np.isfinite(curves["subset_loss"])]
    best = pts.sort_values("subset_loss").groupby("run_id", sort=False).head(1)
    table = pd.DataFrame({"dataset": best["run_id"].map(meta["dataset"]).to_numpy(),
                          "model": best["run_id"].map(meta["model"]).to_numpy(),
                          "fraction": best["subset_fraction"].to_numpy(), "Q": best["subset_Q"].to_numpy(),
                          "seed": best["seed"].to_numpy(), "run_id": best["run_id"].to_numpy(),
                          "subset_loss": best["subset_loss"].to_numpy(), "full_loss": best["train_loss"].to_numpy()})
    table["memorised"] = [verdicts.memorised(x, rules) for x in table["subset_loss"]]
    return table.sort_values(["dataset", "Q", "seed"]).reset_index(drop=True)


def memorisation_by_dataset(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: the subset phases that memorised (their Qs, how many of how many, the full-set loss they left),
    and the Q at which its subsets stopped being memorised: the smallest Q run above every memorised one (NaN where
    none memorised, or where the largest Q run memorised too: ``stopped`` says which)."""
    rows = []
    for dataset, group in table.groupby("dataset", sort=False):
        mem = group[group["memorised"]]
        arms = group.groupby("Q")["memorised"].any()
        if mem.empty:
            stopped, at = "never memorised", math.nan
        elif arms.index.max() <= mem["Q"].max():
            stopped, at = "memorised up to the largest Q run", math.nan
        else:
            at = float(arms.index[arms.index > mem["Q"].max()].min())
            stopped = "stopped"
        rows.append({"dataset": dataset, "phases": len(group), "memorised": len(mem),
                     "memorised_Q": tuple(sorted({round(float(q), 2) for q in mem["Q"]})),
                     "subset_loss_max": float(mem["subset_loss"].max()) if len(mem) else math.nan,
                     "full_loss_low": float(mem["full_loss"].min()) if len(mem) else math.nan,
                     "full_loss_high": float(mem["full_loss"].max()) if len(mem) else math.nan,
                     "largest_Q_run": float(arms.index.max()), "stopped": stopped, "stopped_at_Q": at})
    return pd.DataFrame(rows)


def at_equal_steps(runs: pd.DataFrame, curves: pd.DataFrame, mins: pd.DataFrame) -> pd.DataFrame:
    """Question 1 read at equal optimizer steps rather than at minima (our inference; no convergence needed): per
    subset phase that stands for its arm and seed (``mins``), its full-set training loss and test accuracy where it
    ended, against the longest conventional run of the same width and seed after as many steps (log loss and
    accuracy interpolated). Columns as ``closeness`` gives them, every row usable (``both_converged`` true), so
    ``q_or_fraction`` and ``width_advice`` read it as they read minima."""
    conv = runs[runs["protocol"] == "conventional"]
    rows = []
    for _, m in mins[mins["fraction"] < 1].iterrows():
        ref = conv[(conv["model"] == m["model"]) & (conv["seed"] == m["seed"])]
        if ref.empty:
            continue
        longest = ref.sort_values("epochs").iloc[-1]
        c = curves[curves["run_id"] == m["run_id"]]
        end = c[c["phase"] == "subset"].sort_values("steps")
        r = curves[curves["run_id"] == longest["run_id"]].sort_values("steps")  # step 0 too: the initial weights
        if end.empty or r.empty:
            continue
        end = end.iloc[-1]
        loss = float(np.exp(np.interp(end["steps"], r["steps"], np.log(r["train_loss"]))))
        acc = float(np.interp(end["steps"], r["steps"], r["test_acc"]))
        rows.append({"model": m["model"], "P": m["P"], "fraction": m["fraction"], "Q": m["Q"], "seed": m["seed"],
                     "run_id": m["run_id"], "ref_run_id": longest["run_id"], "steps": int(end["steps"]),
                     "train_loss": end["train_loss"], "test_acc": end["test_acc"], "ref_loss": loss, "ref_acc": acc,
                     "loss_ratio": end["train_loss"] / loss, "acc_gap": end["test_acc"] - acc,
                     "both_converged": True})
    return pd.DataFrame(rows)


def equal_compute_family(analyses: dict[str, dict]) -> pd.DataFrame:
    """Every equal-compute test of study v2 as one family (datasets × arms × metrics): each test's unadjusted
    equivalence p-value, its Holm-adjusted p-value over the family, and whether it stays "equal" after adjustment
    (adjusted p ≤ (1 − level)/2, the level the paired interval's rule works at)."""
    rows = []
    for name, a in analyses.items():
        for _, arm in a["equal_by_arm"].iterrows():
            for metric, col in (("training loss", "loss"), ("test accuracy", "acc")):
                rows.append({"design": name, "dataset": a["design"].dataset, "fraction": arm["fraction"],
                             "Q": arm["Q"], "metric": metric, "verdict": arm[f"{col}_verdict"],
                             "p": arm[col].p})
    family = pd.DataFrame(rows)
    if family.empty:
        return family
    alpha = (1 - RULES.level) / 2
    family["p_holm"] = verdicts.holm(family["p"].tolist())
    family["equal_after_holm"] = (family["verdict"] == "equal") & (family["p_holm"] <= alpha)
    return family


def analyse(runs: pd.DataFrame, curves: pd.DataFrame, d: Design) -> dict:
    """Everything the v2 pages and claims read from one dataset's runs."""
    pairs = ladders(runs, curves, d.rules, d.max_doublings, d.long_doublings)
    mins = minima(runs, curves, pairs)
    close = closeness(mins, d.rules)
    equal = equal_compute(runs, d)
    costs = cost_to_target(runs, curves, mins, d)
    return {"design": d, "runs": runs, "curves": curves, "pairs": pairs,
            "minima": mins, "close": close, "close_by_arm": closeness_by_arm(close, d.rules), "equal": equal,
            "equal_by_arm": equal_compute_by_arm(equal, d.rules), "points": compute_curves(runs, curves, d),
            "equal_steps": equal_steps(runs, curves, d), "costs": costs, "tenth": tenth_by_arm(costs, d.rules),
            "q_or_fraction": q_or_fraction(close), **_at_equal_steps(runs, curves, mins),
            "memorisation": (memo := memorisation(runs, curves, d.rules)),
            "memorisation_by_dataset": memorisation_by_dataset(memo)}


def _at_equal_steps(runs: pd.DataFrame, curves: pd.DataFrame, mins: pd.DataFrame) -> dict:
    steps = at_equal_steps(runs, curves, mins)
    return {"at_equal_steps": steps, "q_or_fraction_steps": q_or_fraction(steps) if len(steps) else pd.DataFrame()}
