"""From the study's stored arms to the tables its pages show: each question's per-seed pairs, its tests and the
rules' verdicts. Every function takes the frames ``runs.load`` returns and no torch."""

import math

import numpy as np
import pandas as pd

from subsetlib.certified import rules
from subsetlib.certified.design import design
from subsetlib.certified.rules import RULES, Rules, Test

FAMILY = ["dataset", "loss", "l2"]  # a family of tests: one objective of one dataset
GROUP = ["dataset", "width", "loss", "l2", "seed"]


def cell(arms: pd.DataFrame, design_name: str, width: int) -> pd.DataFrame:
    """The arms of one (design, width) cell."""
    d = design(design_name)
    if arms.empty:
        return arms
    return arms[(arms["full_set"] == d.full_name) & (arms["width"] == width)]


def of_design(arms: pd.DataFrame, design_name: str) -> pd.DataFrame:
    """The arms of one design (its full set), every width."""
    return arms[arms["full_set"] == design(design_name).full_name] if not arms.empty else arms


CLOSE_COLUMNS = {"p": "P", "q": "Q", "k": "K", "fraction": "fraction of the set", "pairs": "certified pairs",
                 "ratio": "full-set objective ÷ minimum", "loss_verdict": "loss", "gap_points": "accuracy gap ÷ error",
                 "accuracy_verdict": "accuracy", "verdict": "verdict"}
SAME_COLUMNS = {"p": "P", "q": "fine-tuned from Q", "pairs": "certified pairs", "same": "same minimum (seeds)",
                "excess": "objective − seed's minimum", "loss_verdict": "objective",
                "gap_points": "test accuracy gap (points)", "accuracy_verdict": "accuracy"}
COST_COLUMNS = {"p": "P", "q": "fine-tuned from Q", "target": "target", "pairs": "pairs",
                "flops_ratio": "FLOPs ÷ from scratch", "examples_ratio": "examples ÷ (geom. mean)",
                "seconds_ratio": "seconds ÷ (geom. mean)", "verdict": "verdict"}
PREDICTION_COLUMNS = {"dataset": "dataset", "p": "P", "q": "Q", "k": "K", "pairs": "pairs",
                      "measured": "measured excess", "predicted": "predicted", "ratio": "measured ÷ predicted",
                      "verdict": "verdict"}
GOVERNS_COLUMNS = {"metric": "metric", "at_equal_q": "mismatch at equal Q", "at_equal_fraction":
                   "mismatch at equal fraction", "verdict": "verdict"}


CERTIFICATE_COLUMNS = {"phase": "phase", "seeds": "seeds", "certified": "certified",
                       "on_cap": "on its cap", "worst_gradient": "largest relative gradient",
                       "worst_curvature": "lowest λ_min ÷ λ_max", "calls": "calls (median)"}


def objective_text(loss: str, l2: float) -> str:
    return f"{'squared error' if loss == 'squared' else 'cross-entropy'}, λ = {l2:g}"


def phase_text(arm: str, q: float) -> str:
    if arm == "scratch":
        return "full set from scratch"
    return f"{'subset' if arm == 'subset' else 'fine-tuned from'} Q = {q:g}"


def certificate_table(arms: pd.DataFrame) -> pd.DataFrame:
    """Per objective and phase: seeds, certified phases, phases on their cap, the worst gradient and curvature."""
    rows = []
    order = {"scratch": 0, "subset": 1, "finetune": 2}
    for (loss, l2, arm, q), g in arms.groupby(["loss", "l2", "arm", arms["q"].fillna(0)], sort=False):
        rows.append({"loss": loss, "l2": l2, "order": (order[arm], q), "objective": objective_text(loss, l2),
                     "phase": phase_text(arm, q), "seeds": len(g), "certified": int(g["certified"].sum()),
                     "on_cap": int(g["on_budget"].sum()), "worst_gradient": f"{g['relative_gradient'].max():.1e}",
                     "worst_curvature": f"{(g['lambda_min'] / g['lambda_max']).min():.1e}",
                     "calls": int(g["calls"].median())})
    if not rows:
        return pd.DataFrame(columns=list(CERTIFICATE_COLUMNS))
    return pd.DataFrame(rows).sort_values(["loss", "l2", "order"]).drop(columns="order").reset_index(drop=True)


def pairs(arms: pd.DataFrame) -> pd.DataFrame:
    """Every subset and fine-tuned arm beside the scratch minimum of its own group (same seed, same θ₀)."""
    scratch = arms[arms["arm"] == "scratch"].set_index("run_id")
    out = arms[arms["arm"] != "scratch"].copy()
    ref = scratch.loc[out["run_id"]]
    out["scratch_objective"] = ref["full_objective"].to_numpy()
    out["scratch_test_accuracy"] = ref["test_accuracy"].to_numpy()
    out["effective_dimension"] = ref["effective_dimension"].to_numpy()
    out["both_certified"] = out["certified"].astype(bool) & ref["certified"].astype(bool).to_numpy()
    out["fraction"] = out["k"] / out["n"]
    out["ratio"] = out["full_objective"] / out["scratch_objective"]
    out["excess"] = out["full_objective"] - out["scratch_objective"]
    out["accuracy_gap"] = out["test_accuracy"] - out["scratch_test_accuracy"]
    out["relative_gap"] = out["accuracy_gap"] / (1 - out["scratch_test_accuracy"])
    out["predicted"] = [rules.predicted_excess(e, k, n) for e, k, n in
                        zip(out["effective_dimension"], out["k"], out["n"], strict=True)]
    out["measured_over_predicted"] = out["excess"] / out["predicted"]
    return out


def _per_test(table: pd.DataFrame, keys: list[str], make) -> tuple[list, list[Test]]:
    labels, tests = [], []
    for key, g in table.groupby(keys, sort=True):
        ok = g[g["both_certified"]]
        labels.append((key, g))
        tests.append(make(ok))
    return labels, tests


def closeness(arms: pd.DataFrame, r: Rules = RULES) -> pd.DataFrame:
    """Question 1: per (dataset, objective, width, Q) the loss-ratio and accuracy tests with their Holm verdicts,
    and the arm's verdict (close only when both metrics are)."""
    sub = pairs(arms)
    sub = sub[sub["arm"] == "subset"]
    rows = []
    for fam, f in sub.groupby(FAMILY, sort=True):
        labels, loss_tests = _per_test(f, ["width", "q"], lambda ok: rules.loss_closeness(np.log(ok["ratio"]), r))
        _, acc_tests = _per_test(f, ["width", "q"], lambda ok: rules.accuracy_closeness(ok["relative_gap"], r))
        loss_words, acc_words = rules.closeness(loss_tests, r), rules.closeness(acc_tests, r)
        for ((width, q), g), lt, at, lw, aw in zip(labels, loss_tests, acc_tests, loss_words, acc_words, strict=True):
            both = (rules.Verdict.CLOSE if lw == aw == rules.Verdict.CLOSE
                    else rules.Verdict.NOT_CLOSE if rules.Verdict.NOT_CLOSE in (lw, aw)
                    else lw if lw != rules.Verdict.CLOSE else aw)
            rows.append({**dict(zip(FAMILY, fam, strict=True)), "width": width, "p": int(g["p"].iloc[0]), "q": q,
                         "k": int(g["k"].iloc[0]), "fraction": float(g["fraction"].iloc[0]), "seeds": len(g),
                         "pairs": lt.n, "ratio": _interval(lt, math.exp, "×"),
                         "loss_verdict": lw, "gap_points": _interval(at, signed=True), "accuracy_verdict": aw,
                         "verdict": both, "mean_excess": float(g["excess"].mean()),
                         "mean_full_objective": float(g["full_objective"].mean()),
                         "mean_test_accuracy": float(g["test_accuracy"].mean())})
    return pd.DataFrame(rows)


def _interval(t: Test, shown=lambda v: v, unit: str = "", signed: bool = False) -> str:
    """'1.02× [1.01, 1.04]' (the mean and its 95 % interval, each ``shown``), or the per-seed values below
    ``min_pairs``: never an interval from fewer than 3 pairs."""
    if t.n == 0:
        return "no certified pairs"

    def f(v: float) -> str:
        return f"{shown(v):+.3g}" if signed else f"{shown(v):.3g}"

    if not math.isfinite(t.low):
        return f"{', '.join(f(v) for v in t.values)} (per seed)"
    return f"{f(t.mean)}{unit} [{f(t.low)}, {f(t.high)}]"


def frontiers(close: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, objective, width): the smallest Q from which every larger Q of the grid is close."""
    rows = []
    for key, g in close.groupby([*FAMILY, "width"], sort=True):
        q = rules.frontier(g["q"].tolist(), g["verdict"].tolist())
        rows.append({**dict(zip([*FAMILY, "width"], key, strict=True)), "p": int(g["p"].iloc[0]), "frontier_q": q,
                     "frontier_fraction": float(g.loc[g["q"] == q, "fraction"].iloc[0]) if math.isfinite(q)
                     else math.nan})
    return pd.DataFrame(rows)


Q_OR_FRACTION = {"log_ratio": "log(full-set objective ÷ scratch minimum's)", "full_objective": "full-set objective",
                 "test_accuracy": "test accuracy"}


def q_or_fraction(arms: pd.DataFrame, r: Rules = RULES) -> pd.DataFrame:
    """Per (dataset, objective) and metric: the widths' mismatch at equal Q and at equal fraction, and which governs
    (certified pairs only, seed means)."""
    sub = pairs(arms)
    sub = sub[(sub["arm"] == "subset") & sub["both_certified"]].assign(log_ratio=lambda t: np.log(t["ratio"]))
    rows = []
    for fam, f in sub.groupby(FAMILY, sort=True):
        means = f.groupby(["width", "q"]).agg(fraction=("fraction", "first"),
                                              **{m: (m, "mean") for m in Q_OR_FRACTION}).reset_index()
        for metric, label in Q_OR_FRACTION.items():
            at = {x: rules.mismatch({w: (g[x].to_numpy(), g[metric].to_numpy())
                                     for w, g in means.sort_values(x).groupby("width")})
                  for x in ("q", "fraction")}
            rows.append({**dict(zip(FAMILY, fam, strict=True)), "metric": label, "at_equal_q": at["q"],
                         "at_equal_fraction": at["fraction"], "verdict": rules.governs(at["q"], at["fraction"], r)})
    return pd.DataFrame(rows)


def _spread(arms: pd.DataFrame) -> dict:
    """Per (dataset, width, objective): the median distance between different seeds' scratch minima."""
    out = {}
    scratch = arms[(arms["arm"] == "scratch") & arms["certified"].astype(bool)]
    for key, g in scratch.groupby(["dataset", "width", "loss", "l2"]):
        thetas = [np.asarray(t) for t in g["theta"]]
        d = [float(np.linalg.norm(a - b)) for i, a in enumerate(thetas) for b in thetas[i + 1:]]
        out[key] = float(np.median(d)) if d else math.nan
    return out


def same_minimum(arms: pd.DataFrame, r: Rules = RULES) -> pd.DataFrame:
    """Question 2: per fine-tuned arm, how many seeds found their scratch minimum again, and the objective and
    accuracy against the scratch minima with the seeds' range as the margin (Holm across the family)."""
    tuned = pairs(arms)
    tuned = tuned[tuned["arm"] == "finetune"]
    spread = _spread(arms)
    scratch = arms[(arms["arm"] == "scratch") & arms["certified"].astype(bool)]
    ranges = scratch.groupby(["dataset", "width", "loss", "l2"]).agg(
        loss_range=("full_objective", lambda v: v.max() - v.min()),
        acc_range=("test_accuracy", lambda v: v.max() - v.min()))
    rows = []
    for fam, f in tuned.groupby(FAMILY, sort=True):
        labels, loss_tests, acc_tests = [], [], []
        for (width, q), g in f.groupby(["width", "q"], sort=True):
            ok = g[g["both_certified"]]
            lr, ar = ranges.loc[(fam[0], width, fam[1], fam[2])] if (fam[0], width, fam[1], fam[2]) in ranges.index \
                else (math.nan, math.nan)
            labels.append((width, q, g, ok, spread.get((fam[0], width, fam[1], fam[2]), math.nan), lr, ar))
            loss_tests.append(rules.test(ok["excess"], -lr, lr, r))
            acc_tests.append(rules.test(ok["accuracy_gap"], -ar, ar, r))
        loss_words = rules.compared(loss_tests, r)
        acc_words = rules.compared(acc_tests, r, higher_is_better=True)
        for (width, q, g, ok, sp, lr, ar), lt, at, lw, aw in zip(labels, loss_tests, acc_tests, loss_words, acc_words,
                                                                strict=True):
            same = sum(rules.same_minimum(dist, sp, r) for dist in ok["distance_to_scratch"])
            rows.append({**dict(zip(FAMILY, fam, strict=True)), "width": width, "p": int(g["p"].iloc[0]), "q": q,
                         "seeds": len(g), "pairs": lt.n, "same": same, "spread": sp,
                         "median_distance": float(ok["distance_to_scratch"].median()) if len(ok) else math.nan,
                         "excess": _interval(lt, signed=True), "loss_range": lr, "loss_verdict": lw,
                         "gap_points": _interval(at, lambda v: 100 * v, signed=True),
                         "acc_range_points": 100 * ar, "accuracy_verdict": aw})
    return pd.DataFrame(rows)


COSTS = ("flops", "examples", "seconds")


def costs(arms: pd.DataFrame, curves: pd.DataFrame, r: Rules = RULES) -> pd.DataFrame:
    """Question 3, per seed: per fine-tuned arm and target, the cost through the subset (its subset phase plus
    fine-tuning until the target) and from scratch (until the same target), and their ratio, per cost unit."""
    scratch = arms[arms["arm"] == "scratch"].set_index("run_id")
    certified = scratch[scratch["certified"].astype(bool)]
    worst = certified.groupby(["dataset", "width", "loss", "l2"])["full_objective"].max()
    rows = []
    tuned = pairs(arms)
    for _, arm in tuned[tuned["arm"] == "finetune"].iterrows():
        rid, q = arm["run_id"], arm["q"]
        sub = arms[(arms["run_id"] == rid) & (arms["arm"] == "subset") & (arms["q"] == q)].iloc[0]
        ref = scratch.loc[rid]
        c = curves[curves["run_id"] == rid]
        fine, scr = c[(c["arm"] == "finetune") & (c["q"] == q)], c[c["arm"] == "scratch"]
        key = (arm["dataset"], arm["width"], arm["loss"], arm["l2"])
        targets = {f"{t:g} × its scratch minimum": t * ref["full_objective"] for t in r.targets}
        targets["the worst scratch minimum"] = worst.get(key, math.nan)
        for label, target in targets.items():
            row = {**{k: arm[k] for k in [*GROUP, "p", "q", "k", "run_id"]}, "target": label,
                   "certified": bool(arm["both_certified"] and sub["certified"])}
            for unit in COSTS:
                through = sub[unit] + rules.first_reaching(fine[unit], fine["value"], target)
                alone = rules.first_reaching(scr[unit], scr["value"], target)
                row[f"{unit}_through"], row[f"{unit}_scratch"] = through, alone
                row[f"{unit}_ratio"] = through / alone
            rows.append(row)
    return pd.DataFrame(rows)


def cost_verdicts(per_seed: pd.DataFrame, r: Rules = RULES) -> pd.DataFrame:
    """Question 3's verdicts: per (dataset, objective, width, Q, target) the FLOPs ratio's test, Holm across the
    family; "not reached" where a fine-tuning never reached the target in some seed."""
    rows = []
    ok = per_seed[per_seed["certified"]]
    for fam, f in ok.groupby(FAMILY, sort=True):
        labels, tests, missed = [], [], []
        for key, g in f.groupby(["width", "q", "target"], sort=True):
            ratios = g["flops_ratio"]
            labels.append((key, g))
            missed.append(int(ratios.isna().sum()))
            tests.append(rules.cost_test(np.log(ratios.dropna()), r))
        for ((width, q, target), g), t, m, word in zip(labels, tests, missed, rules.cost(tests, missed, r),
                                                      strict=True):
            rows.append({**dict(zip(FAMILY, fam, strict=True)), "width": width, "p": int(g["p"].iloc[0]), "q": q,
                         "target": target, "pairs": t.n, "not_reached": m, "flops_ratio": _interval(t, math.exp, "×"),
                         "examples_ratio": float(np.exp(np.log(g["examples_ratio"].dropna()).mean()))
                         if g["examples_ratio"].notna().any() else math.nan,
                         "seconds_ratio": float(np.exp(np.log(g["seconds_ratio"].dropna()).mean()))
                         if g["seconds_ratio"].notna().any() else math.nan, "verdict": word})
    return pd.DataFrame(rows)


def prediction(arms: pd.DataFrame, r: Rules = RULES) -> pd.DataFrame:
    """Question 4: per (dataset, objective, width, Q) measured ÷ predicted excess, tested against [1/band, band]."""
    sub = pairs(arms)
    sub = sub[sub["arm"] == "subset"]
    rows = []
    for fam, f in sub.groupby(FAMILY, sort=True):
        labels, tests = _per_test(f, ["width", "q"], lambda ok: rules.prediction_test(ok["measured_over_predicted"],
                                                                                     r))
        for ((width, q), g), t, word in zip(labels, tests, rules.prediction(tests, r), strict=True):
            rows.append({**dict(zip(FAMILY, fam, strict=True)), "width": width, "p": int(g["p"].iloc[0]), "q": q,
                         "k": int(g["k"].iloc[0]), "pairs": t.n, "measured": float(g["excess"].mean()),
                         "predicted": float(g["predicted"].mean()), "ratio": _interval(t), "verdict": word,
                         "effective_dimension": float(g["effective_dimension"].mean())})
    return pd.DataFrame(rows)


DIMENSION_COLUMNS = {"dataset": "dataset", "objective": "objective", "p": "P", "seeds": "certified minima",
                     "effective_dimension": "tr(H⁻¹Σ), mean", "ratio": "tr(H⁻¹Σ) ÷ P"}


def effective_dimensions(arms: pd.DataFrame) -> pd.DataFrame:
    """tr(H⁻¹Σ) at the certified scratch minima, per (dataset, objective, width), and its ratio to P."""
    scratch = arms[(arms["arm"] == "scratch") & arms["certified"].astype(bool)]
    rows = [{"dataset": d, "objective": objective_text(loss, l2), "p": int(p), "seeds": len(g),
             "effective_dimension": float(g["effective_dimension"].mean()),
             "ratio": float(g["effective_dimension"].mean() / p)}
            for (d, loss, l2, p), g in scratch.groupby(["dataset", "loss", "l2", "p"], sort=True)]
    return pd.DataFrame(rows, columns=list(DIMENSION_COLUMNS))


def main_pairs(arms: pd.DataFrame) -> pd.DataFrame:
    """The pairs of the objective every design has: squared error at the smallest λ run."""
    table = pairs(arms)
    squared = table[table["loss"] == "squared"]
    return squared[squared["l2"] == squared["l2"].min()]


PAGES = {"minima": "00-1-minima-{}", "finetune": "00-2-finetune-{}", "prediction": "00-3-prediction"}


def evidence_links(designs: list[str], prefix: str = "", suffix: str = ".html") -> dict[str, str]:
    """Markdown links to each question's pages (``prefix``: the path from the linking page to this study's pages;
    ``suffix``: ".html" from a page's output, which the book does not resolve, ".ipynb" from a Markdown chapter)."""
    from subsetlib.registry import dataset_title

    links = {key: ", ".join(f"[{dataset_title(d)}]({prefix}{page.format(d)}{suffix})" for d in designs)
             for key, page in PAGES.items() if "{}" in page}
    links["prediction"] = f"[all datasets]({prefix}{PAGES['prediction']}{suffix})"
    return links


SUMMARY_COLUMNS = {"dataset": "dataset", "phases": "phases", "certified": "certified minima",
                   "on_cap": "stopped on the cap", "other": "stopped, not certified"}


def certificate_summary(arms: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: phases run, certified, stopped on the call cap, stopped elsewhere without passing."""
    from subsetlib.registry import dataset_title

    rows = [{"dataset": dataset_title(d), "phases": len(g), "certified": int(g["certified"].sum()),
             "on_cap": int(g["on_budget"].sum()),
             "other": int(len(g) - g["certified"].sum() - g["on_budget"].sum())}
            for d, g in arms.groupby("dataset", sort=False)]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
