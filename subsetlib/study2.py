"""Study v2: the subset hypothesis judged at real minima. The design of each dataset's arms, fixed before the runs,
and the runs themselves (stored runs are loaded, never retrained).

Every phase that stands for a minimum is trained with a cosine-annealed learning rate and checked by budget
doubling (``verdicts.converged``): the conventional arm on B and 2B epochs, each subset phase on S and 2S steps.
Where a pair fails, the ladder goes on (4B, 8B, …, up to ``max_doublings``): the rule decides the budget, never the
other way round. Per width and seed, every subset phase starts from the same initial weights as its conventional run.
"""

import json
import math

import numpy as np
import pandas as pd
from scipy import stats

from subsetlib import verdicts
from subsetlib.studies import DESIGNS, Design, design
from subsetlib.verdicts import RULES, Rules, converged


def subset_epochs(d: Design, k: int) -> int:
    """Epochs over a subset of K examples for its first rung: ``d.epochs`` epochs, but at least
    ``d.min_subset_steps`` optimizer steps (a tiny subset needs steps, a large one needs epochs)."""
    return max(d.epochs, math.ceil(d.min_subset_steps / math.ceil(k / d.batch_size)))


def finetune_epochs(d: Design, subset_epochs_: int, k: int, n: int) -> int:
    """Fine-tuning epochs that bring the arm's total to the conventional budget (at least one)."""
    return max(1, round(d.epochs - subset_epochs_ * k / n))


def _end_of(result, phase: str) -> dict:
    """The last evaluation of ``phase`` in a run's curve."""
    return [row for row in result.curve if row["phase"] == phase][-1]


def run_width(ds, d: Design, model: str, fractions: tuple[float, ...], seed: int, results_dir: str) -> list[str]:
    """One width and seed: the conventional ladder, then each fraction's subset-phase ladder (the main width's
    first rung is the equal-compute arm, whose subset phase is that rung). Returns the run ids, loaded or trained."""
    from subsetlib import protocols
    from subsetlib.subsets import subset_indices

    cfg = d.run_config(model)
    ids: list[str] = []

    def ladder(first: int, train, loss) -> None:
        budget = first
        for _ in range(d.max_doublings):  # pairs (B, 2B) … (2^(n-1)·B, 2^n·B): the plan's cap
            low, high = train(budget), train(2 * budget)
            ids.extend(r.summary["run_id"] for r in (low, high) if r.summary["run_id"] not in ids)
            if converged(loss(low), loss(high), d.rules):
                return
            budget *= 2

    ladder(d.epochs, lambda e: protocols.conventional(ds, cfg, seed, e, results_dir=results_dir),
           lambda r: r.summary["final_train_loss"])
    n = len(ds.y_train)
    for f in fractions:
        k = len(subset_indices(ds.y_train, f, seed, cfg.stratified))
        first = subset_epochs(d, k)

        def train(epochs: int, f: float = f, first: int = first, k: int = k):
            if model == d.model and epochs == first:  # the equal-compute arm carries the first rung
                return protocols.subset_pretraining(ds, cfg, seed, epochs, finetune_epochs(d, epochs, k, n),
                                                    fraction=f, results_dir=results_dir)
            return protocols.subset_phase(ds, cfg, seed, epochs, f, results_dir=results_dir)

        ladder(first, train, lambda r: _end_of(r, "subset")["subset_loss"])
    return ids


def run_design(ds, d: Design, model: str, results_dir: str) -> list[str]:
    """Every seed of one width of a design (the cells of the study v2 grid are widths)."""
    arms = {m: (f, s) for m, f, s in d.arms()}
    if model not in arms:
        from subsetlib.errors import UserError

        raise UserError(f"study v2's {d.dataset} design has no width {model!r}: choose one of {', '.join(arms)}")
    fractions, seeds = arms[model]
    return [rid for seed in seeds for rid in run_width(ds, d, model, fractions, seed, results_dir)]


# ---------------------------------------------------------------------------------------------------------------------
# Analysis: pandas only, on the stored runs and curves


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


def ladders(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules = RULES, max_doublings: int | None = None
            ) -> pd.DataFrame:
    """One row per budget-doubling pair (B, 2B) of one arm and seed: the loss the rule reads at each budget (the
    conventional run's training loss; a subset phase's loss on its subset) and whether the pair passes the rule.
    Arm ``fraction`` 1 is the conventional arm; budgets are epochs over the arm's own training set. ``planned`` is
    false for a pair beyond the design's cap of ``max_doublings`` pairs (a stored run the plan did not ask for: shown,
    never used for a minimum)."""
    ends = _phase_ends(runs, curves)
    conv = ends[ends["protocol"] == "conventional"].assign(fraction=1.0, budget=lambda t: t["epochs"],
                                                           loss=lambda t: t["phase_train_loss"])
    sub = ends[ends["protocol"].isin(["subset", "subset-phase"])].assign(
        fraction=lambda t: t["subset_fraction"], budget=lambda t: t["subset_epochs"],
        loss=lambda t: t["phase_subset_loss"])
    rows = []
    for (model, fraction, seed), arm in pd.concat([conv, sub]).groupby(["model", "fraction", "seed"]):
        by_budget = arm.drop_duplicates("budget").set_index("budget").sort_index()
        cap = by_budget.index.min() * 2 ** (max_doublings - 1) if max_doublings else math.inf
        for b in by_budget.index:
            if 2 * b in by_budget.index:
                low, high = by_budget.loc[b], by_budget.loc[2 * b]
                rows.append({"model": model, "fraction": fraction, "seed": seed, "Q": low["subset_Q"],
                             "P": low["P"], "budget": int(b), "loss": low["loss"], "loss_2x": high["loss"],
                             "drop": 1 - high["loss"] / low["loss"], "converged": converged(low["loss"], high["loss"],
                                                                                              rules),
                             "run_id": low["run_id"], "run_id_2x": high["run_id"], "planned": bool(b <= cap)})
    return pd.DataFrame(rows)


def minima(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules = RULES, max_doublings: int | None = None
           ) -> pd.DataFrame:
    """One row per arm and seed: its minimum, read at the longer run of its first converged pair (the lower loss of
    the two, so a gap to it is never flattered). An arm with no converged pair is marked ``converged = False`` and
    read at its longest run."""
    pairs = ladders(runs, curves, rules, max_doublings)
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


def arm_text(fraction: float) -> str:
    """'conventional' for the full set, else 'subset 1/8': how every v2 table names an arm."""
    if fraction >= 1:
        return "conventional"
    inverse = 1 / fraction
    return f"subset 1/{round(inverse)}" if abs(inverse - round(inverse)) < 1e-9 else f"subset {fraction:.3g}"


CONVERGENCE_COLUMNS = {"arm": "arm", "Q": "Q", "seed": "seed", "budget": "B (epochs over its set)",
                       "loss": "loss at B", "loss_2x": "loss at 2B", "drop_pct": "lower at 2B (%)",
                       "verdict": "rule"}
CONVERGENCE_DIGITS = {"Q": 2, "loss": 4, "loss_2x": 4, "drop_pct": 1}


def convergence_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Every doubling pair, in arm order (conventional first, then by falling fraction), for the runs page."""
    table = pairs.sort_values(["fraction", "seed", "budget"], ascending=[False, True, True]).copy()
    table["arm"] = table["fraction"].map(arm_text)
    table["drop_pct"] = 100 * table["drop"]
    table["verdict"] = table["converged"].map({True: "converged", False: "not converged"})
    if "planned" in table:
        table.loc[~table["planned"], "verdict"] += " (beyond the plan's cap: not used)"
    return table


def convergence_text(pairs: pd.DataFrame, d: Design) -> str:
    """One sentence per arm: how many seeds converged at which budgets."""
    lines = []
    for fraction, arm in pairs.groupby("fraction", sort=False):
        seeds = arm.groupby("seed")["converged"].any()
        at = sorted({int(b) for b in arm.loc[arm["converged"], "budget"]})
        where = f" (at B = {', '.join(map(str, at))})" if at else ""
        lines.append(f"- **{arm_text(fraction)}**: {int(seeds.sum())} of {len(seeds)} seeds converged{where}.")
    order = sorted(lines, key=lambda line: not line.startswith("- **conventional"))
    return (f"Rule: a phase on budget B is converged when 2B lowers its loss by less than "
            f"{100 * d.rules.converge_rel:g} % or by less than {d.rules.converge_abs:g} nats; at most "
            f"{d.max_doublings} doublings.\n\n" + "\n".join(order))


# ---------------------------------------------------------------------------------------------------------------------
# Question 1: how close is the subset minimum to the full-set minimum?


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
    return by_arm.sort_values(["P", "fraction"], ascending=[False, False]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------------
# Question 2: at equal compute


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
                             "cost": costs[run["run_id"]], "conventional_cost": conv_cost,
                             "ratio": costs[run["run_id"]] / conv_cost,
                             "finetune_flops": phases["finetune"]["flops"]})
    return pd.DataFrame(rows)


def tenth_by_arm(costs: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """Per arm and metric: seeds that reached the target, the paired ratio (geometric mean, 95 % interval over the
    seeds where both reached it) and the verdict on "a tenth or less"."""
    rows = []
    for (metric, fraction), arm in costs.groupby(["metric", "fraction"], sort=False):
        both = arm[np.isfinite(arm["ratio"])]
        logs = np.log(both["ratio"].to_numpy())
        n = len(logs)
        if n >= 2:
            half = float(stats.t.ppf(0.5 + rules.level / 2, n - 1) * logs.std(ddof=1) / math.sqrt(n))
            low, high = math.exp(logs.mean() - half), math.exp(logs.mean() + half)
        else:
            low = high = math.nan
        # refuted needs a fine-tuning phase long enough to have matched conventional training on its own
        long_enough = bool((arm["finetune_flops"] >= arm["conventional_cost"]).all())
        if n < rules.min_seeds:
            verdict = f"inconclusive at {n} seed{'s' if n != 1 else ''}"
        elif high <= rules.tenth:
            verdict = "reproduced"
        elif low > rules.tenth and long_enough:
            verdict = "refuted"
        elif low > rules.tenth:
            verdict = "not testable at this budget"
        else:
            verdict = f"inconclusive at {n} seeds"
        rows.append({"metric": metric, "fraction": fraction, "Q": arm["Q"].iloc[0], "seeds": arm["seed"].nunique(),
                     "reached": int(np.isfinite(arm["cost"]).sum()),
                     "conventional_reached": int(np.isfinite(arm["conventional_cost"]).sum()),
                     "ratio": math.exp(logs.mean()) if n else math.nan, "low": low, "high": high,
                     "long_enough": long_enough, "verdict": verdict})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------------
# Q or the fraction, on every metric


Q_OR_FRACTION_METRICS = {"log_ratio": "log of the loss ratio", "log_loss": "log of the full-set training loss",
                         "acc_gap": "test-accuracy gap"}


def q_or_fraction(close: pd.DataFrame) -> pd.DataFrame:
    """Per metric: the mismatch between widths (mean absolute difference of their arms' seed means, interpolated in
    log space over the range both cover, averaged over every pair of widths) at equal Q and at equal fraction, and
    which of the two governs by the plan's factor-of-two rule. Converged seeds only."""
    ok = close[close["both_converged"]].assign(log_ratio=lambda t: np.log(t["loss_ratio"]),
                                               log_loss=lambda t: np.log(t["train_loss"]))
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


def analyse(runs: pd.DataFrame, curves: pd.DataFrame, d: Design) -> dict:
    """Everything the v2 pages and claims read from one dataset's runs."""
    mins = minima(runs, curves, d.rules, d.max_doublings)
    close = closeness(mins, d.rules)
    equal = equal_compute(runs, d)
    costs = cost_to_target(runs, curves, mins, d)
    return {"design": d, "runs": runs, "curves": curves, "pairs": ladders(runs, curves, d.rules, d.max_doublings),
            "minima": mins, "close": close, "close_by_arm": closeness_by_arm(close, d.rules), "equal": equal,
            "equal_by_arm": equal_compute_by_arm(equal, d.rules), "points": compute_curves(runs, curves, d),
            "equal_steps": equal_steps(runs, curves, d), "costs": costs, "tenth": tenth_by_arm(costs, d.rules),
            "q_or_fraction": q_or_fraction(close)}


def load(ds, d: Design, results_dir: str) -> dict:
    """The analysis of a dataset's design from its stored runs (the runs pages trained them; a missing run is
    trained here, so the page also works on its own)."""
    from subsetlib import results

    ids = [rid for model, _, _ in d.arms() for rid in run_design(ds, d, model, results_dir)]
    return analyse(*results.load_runs(results_dir, ids), d)


# ---------------------------------------------------------------------------------------------------------------------
# Tables and sentences for the pages (the library words the verdicts; the notebooks show them)


def width_text(model: str, p: int) -> str:
    return f"{model} (P = {int(p):,})"


def _ratio_text(test: verdicts.Paired) -> str:
    """A paired log ratio as a ratio with its interval: '1.52× [1.40, 1.66], n = 5'."""
    if test.n == 0:
        return "no converged pairs"
    if test.n == 1 or not math.isfinite(test.low):
        return f"{math.exp(test.mean):.3g}× (n = {test.n})"
    return f"{math.exp(test.mean):.3g}× [{math.exp(test.low):.3g}, {math.exp(test.high):.3g}], n = {test.n}"


PAIRED_COLUMNS = {"ratio_text": "full-set loss ÷ reference", "excess_nats": "excess loss (nats)",
                  "loss_verdict": "loss verdict", "acc_text": "test accuracy − reference (points)",
                  "acc_verdict": "accuracy verdict"}


def _paired_columns(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["ratio_text"] = table["loss"].map(_ratio_text)
    table["acc_text"] = table["acc"].map(lambda t: t.text(100, "", 2) if t.n else "no converged pairs")
    return table


def closeness_table(by_arm: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """Question 1 per arm, for ``present.table``: (rows, columns, digits)."""
    table = _paired_columns(by_arm)
    table["width"] = [width_text(m, p) for m, p in zip(table["model"], table["P"], strict=True)]
    table["arm"] = table["fraction"].map(arm_text)
    table["converged"] = [f"{u} of {s}" for u, s in zip(table["usable"], table["seeds"], strict=True)]
    columns = {"width": "width", "arm": "subset", "Q": "Q", "converged": "seeds with both phases converged",
               **PAIRED_COLUMNS}
    return table, columns, {"Q": 2, "excess_nats": 4}


def equal_compute_table(by_arm: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """Question 2 per equal-compute arm, for ``present.table``."""
    table = _paired_columns(by_arm)
    table["arm"] = table["fraction"].map(arm_text)
    columns = {"arm": "arm", "Q": "Q of the subset", "flops_ratio": "training FLOPs ÷ conventional",
               "seeds": "seeds", **PAIRED_COLUMNS}
    return table, columns, {"Q": 2, "flops_ratio": 2, "excess_nats": 4}


def tenth_table(tenth: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """"A tenth or less" per arm and metric, for ``present.table``."""
    table = tenth.copy()
    table["arm"] = table["fraction"].map(arm_text)
    table["target"] = table["metric"].map({"test_acc": "test accuracy ≥ minimum − 0.3 pt",
                                           "train_loss": "training loss ≤ 1.1 × minimum"})
    table["reached_text"] = [f"{r} of {s}" for r, s in zip(table["reached"], table["seeds"], strict=True)]
    table["interval"] = [f"[{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else "–"
                         for lo, hi in zip(table["low"], table["high"], strict=True)]
    columns = {"target": "target", "arm": "arm", "Q": "Q", "reached_text": "seeds that reached it",
               "ratio": "cost ÷ conventional (geometric mean)", "interval": "95 % interval", "verdict": "verdict"}
    return table, columns, {"Q": 2, "ratio": 2}


def _count(verdict_list: list[str], word: str) -> int:
    return sum(v == word for v in verdict_list)


def closeness_sentence(by_arm: pd.DataFrame, title: str, rules: Rules = RULES) -> str:
    """The answer to question 1 on one dataset, in words, from the verdicts."""
    high = by_arm[by_arm["Q"] >= rules.q_high]
    usable = high[high["usable"] > 0]
    if usable.empty:
        return (f"On {title}, no subset arm with Q ≥ {rules.q_high:g} has both phases converged, so how close its "
                "minimum is cannot be judged at this budget.")
    loss, acc = usable["loss_verdict"].tolist(), usable["acc_verdict"].tolist()
    return (f"On {title}, of {len(usable)} subset arms with Q ≥ {rules.q_high:g} and converged phases, "
            f"{_count(loss, 'equal')} sit within 10 % of the full-set minimum in training loss "
            f"({_count(loss, 'worse')} are farther, the rest inconclusive; ratios "
            f"{usable['ratio'].min():.2f}× to {usable['ratio'].max():.2f}×, excess "
            f"{usable['excess_nats'].min():.3f} to {usable['excess_nats'].max():.3f} nats), and "
            f"{_count(acc, 'equal')} within 0.3 points in test accuracy ({_count(acc, 'worse')} worse; gaps "
            f"{100 * usable['acc_gap'].min():+.2f} to {100 * usable['acc_gap'].max():+.2f} points).")


def equal_compute_sentence(by_arm: pd.DataFrame, title: str, d: Design) -> str:
    """The answer to question 2 on one dataset, in words."""
    parts = []
    for _, arm in by_arm.iterrows():
        parts.append(f"{arm_text(arm['fraction'])} (Q = {arm['Q']:.2g}): loss {arm['loss_verdict']} "
                     f"({_ratio_text(arm['loss'])}), accuracy {arm['acc_verdict']} "
                     f"({arm['acc'].text(100, ' pt', 2)})")
    return (f"On {title} at {d.epochs} epoch-equivalents of training (the conventional arm's B), each "
            f"equal-compute arm against conventional training of the same seed: " + "; ".join(parts) + ".")


def width_advice(close: pd.DataFrame) -> str:
    """For a practitioner: on the same subset, which width gave the better model at the subset minimum? Counted
    over the fractions that several widths share (seed means, converged seeds)."""
    ok = close[close["both_converged"]]
    arms = ok.groupby(["fraction", "model", "P"], as_index=False).agg(loss=("train_loss", "mean"),
                                                                       acc=("test_acc", "mean"))
    shared = arms.groupby("fraction").filter(lambda t: len(t) > 1)
    if shared.empty:
        return "No subset fraction was run (and converged) at more than one width, so widths cannot be compared."
    lines = []
    for fraction, arm in shared.groupby("fraction", sort=False):
        by_loss, by_acc = arm.sort_values("loss").iloc[0], arm.sort_values("acc").iloc[-1]
        lines.append(f"- subset {arm_text(fraction)[7:]}: lowest full-set loss with {by_loss['model']} "
                     f"({by_loss['loss']:.4f}), best test accuracy with {by_acc['model']} "
                     f"({100 * by_acc['acc']:.2f} %), over {len(arm)} widths")
    return "On the same subset:\n\n" + "\n".join(sorted(lines, reverse=True))


def _cost_text(ratio: float) -> str:
    return f"{ratio:.2f}×" if math.isfinite(ratio) else "not reached"


def claims(analyses: dict[str, dict], titles: dict[str, str]) -> pd.DataFrame:
    """The claims table of study v2: one row per claim, dataset and metric, with the verdict its rule gives and the
    numbers behind it. ``analyses`` maps a dataset to ``analyse``'s result."""
    rows = []

    def add(claim, source, dataset, metric, verdict, numbers):
        rows.append({"claim": claim, "source": source, "dataset": titles[dataset], "metric": metric,
                     "verdict": verdict, "numbers": numbers})

    for dataset, a in analyses.items():
        rules, by_arm = a["design"].rules, a["close_by_arm"]
        high, low = by_arm[by_arm["Q"] >= rules.q_high], by_arm[by_arm["Q"] < 1]
        for metric, col in (("training loss", "loss_verdict"), ("test accuracy", "acc_verdict")):
            usable = high[high["usable"] > 0]
            if usable.empty:
                close_v = "not testable at this budget"
            elif (usable[col] == "equal").any():
                close_v = "reproduced"
            elif (usable[col] == "worse").all():
                close_v = "refuted"
            else:
                close_v = "inconclusive"
            numbers = "; ".join(f"{width_text(r['model'], r['P'])} {arm_text(r['fraction'])} (Q {r['Q']:.2g}): "
                                f"{r[col]}" for _, r in high.iterrows())
            add("The full-set minimum is close to its subsets' minima (arms with Q ≥ 3)", "abstract", dataset,
                metric, close_v, numbers or "no arm with Q ≥ 3")
            low_equal = (low[col] == "equal").any()
            if close_v == "reproduced" and not low_equal:
                q_v = "reproduced"
            elif low_equal or close_v == "refuted":
                q_v = "refuted"
            else:
                q_v = close_v
            low_text = "; ".join(f"{arm_text(r['fraction'])} at {r['model']} (Q {r['Q']:.2g}): {r[col]}"
                                 for _, r in low.iterrows())
            add("A subset is representative once Q sufficiently exceeds 1 (close at Q ≥ 3, not at Q < 1)",
                "abstract", dataset, metric, q_v, f"Q ≥ 3: {close_v}; Q < 1: {low_text or 'no arm'}")
            eq = a["equal_by_arm"]
            eq_col = eq[col]
            equal_v = ("reproduced" if eq_col.isin(["equal", "better"]).any() else
                       "refuted" if len(eq_col) and (eq_col == "worse").all() else "inconclusive")
            add("Results equal to conventional training (equal compute)", "abstract", dataset, metric, equal_v,
                "; ".join(f"{arm_text(r['fraction'])}: {r[col]}" for _, r in eq.iterrows()))
            tenth = a["tenth"][a["tenth"]["metric"] == ("train_loss" if metric == "training loss" else "test_acc")]
            verdicts_ = tenth["verdict"].tolist()
            tenth_v = ("reproduced" if "reproduced" in verdicts_ else
                       "refuted" if verdicts_ and all(v == "refuted" for v in verdicts_) else
                       "not testable at this budget" if any(v == "not testable at this budget" for v in verdicts_)
                       else "inconclusive")
            add("Compute to conventional quality reduced to a tenth or less", "abstract", dataset, metric, tenth_v,
                "; ".join(f"{arm_text(r['fraction'])}: {_cost_text(r['ratio'])} ({r['verdict']})"
                          for _, r in tenth.iterrows()))
        qf = a["q_or_fraction"]
        if a["design"].widths:
            for _, r in qf.iterrows():
                add("Q, not the fraction, decides how close a subset minimum is", "our inference", dataset,
                    r["metric"], r["verdict"], f"mismatch at equal Q {r['at_equal_q']:.3g} vs at equal fraction "
                    f"{r['at_equal_fraction']:.3g} ({r['widths']} widths)")
    return pd.DataFrame(rows)


WIDTH_COLOURS = {"cnn-simple": "#1f4e9c", "cnn-simple-narrow": "#2a9d8f", "cnn-simple-w3": "#e76f51"}
"""One colour per width on every v2 page."""


def progress(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """While the grid runs: every budget-doubling pair stored so far, per dataset (no training, no verdicts). Only
    study v2's runs count (cosine schedule, its protocols), whatever else the folder holds."""
    schedule = runs["lr_schedule"] if "lr_schedule" in runs else pd.Series("constant", index=runs.index)
    runs = runs[(schedule == "cosine") & runs["protocol"].isin(["conventional", "subset", "subset-phase"])]
    frames = [ladders(r, curves[curves["run_id"].isin(r["run_id"])], rules,
                      DESIGNS[dataset].max_doublings if dataset in DESIGNS else None).assign(dataset=dataset)
              for dataset, r in runs.groupby("dataset", sort=False)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def progress_bullets(pairs: pd.DataFrame, titles: dict[str, str]) -> list[str]:
    """What the stored ladders say so far about the conventional arms, one Markdown bullet per dataset and width."""
    conv = pairs[pairs["fraction"] >= 1]
    bullets = []
    for (dataset, model), arm in conv.groupby(["dataset", "model"], sort=False):
        last = arm[arm["planned"]].sort_values("budget").groupby("seed").tail(1)
        low, high = round(100 * last["drop"].min()), round(100 * last["drop"].max())
        bullets.append(f"- {titles.get(dataset, dataset)}, {model}: "
                       f"{int(arm.groupby('seed')['converged'].any().sum())} of {arm['seed'].nunique()} seeds "
                       f"converged so far; at each seed's last doubling stored (up to {int(last['budget'].max())} → "
                       f"{2 * int(last['budget'].max())} epochs) the training loss still fell "
                       f"{low if low == high else f'{low}–{high}'} %.")
    return bullets


def budget_text(d: Design) -> str:
    """A design's budget in words, for the "Scale:" line: widths and seeds, the first budgets and the ladder's cap."""
    from subsetlib.present import dataset_title

    widths = "".join(f", {m}" for m in d.widths)
    others = f" ({len(d.width_seeds)} seeds at the other widths)" if d.widths else ""
    return (f"{dataset_title(d.dataset)}: {d.model}{widths}, {len(d.seeds)} seeds{others}; conventional from "
            f"B = {d.epochs} epochs, subsets from B epochs (at least {d.min_subset_steps} steps), doubled until "
            f"converged, at most to {d.epochs * 2 ** d.max_doublings} epochs")


def ladder_points(pairs: pd.DataFrame, titles: dict[str, str]) -> pd.DataFrame:
    """The progress figure's points: per conventional budget-doubling pair of the plan stored so far (dataset, width,
    seed, budget B), by how much 2B lowered the training loss, with both runs it compares."""
    conv = pairs[pairs["planned"] & (pairs["fraction"] >= 1)]
    return pd.DataFrame({"run_id": conv["run_id"], "run_id_2x": conv["run_id_2x"], "seed": conv["seed"],
                         "arm": [f"{titles.get(d, d)}, {m}" for d, m in zip(conv["dataset"], conv["model"],
                                                                           strict=True)],
                         "budget": conv["budget"], "drop_pct": 100 * conv["drop"],
                         "converged": conv["converged"]}).reset_index(drop=True)


def interim_answer(runs: pd.DataFrame, pairs: pd.DataFrame, titles: dict[str, str], figure: str | None = None
                   ) -> str:
    """The front page's answer while study v2 runs: first, in plain words, that the answer is not in yet, why, and
    what stands so far; then ``figure`` (HTML, kept on one line so that Markdown passes it through); then one bullet
    per dataset and width; then a "Scale:" line with every stored dataset's budget. No claim has a v2 verdict until
    every run of a design is stored (the claims page gives the verdicts then)."""
    conv = pairs[pairs["planned"] & (pairs["fraction"] >= 1)] if len(pairs) else pairs
    converged_seeds = int(conv.groupby(["dataset", "model", "seed"])["converged"].any().sum()) if len(conv) else 0
    stands = ("no budget-doubling pair is stored yet" if pairs.empty else
              f"{len(runs)} of its runs are stored, and {converged_seeds} conventional run"
              f"{'s' if converged_seeds != 1 else ''} ha{'ve' if converged_seeds != 1 else 's'} passed that rule")
    parts = [f"**At real minima, the answer is not in yet.** Study v2 judges the paper's claims only where training "
             f"has reached a minimum by a rule fixed before the runs (doubling the budget lowers the loss by less than "
             f"{100 * RULES.converge_rel:g} %), and so far {stands}. The first study's verdicts are withdrawn: its "
             "phases had not reached the minima its claims are about."]
    if figure:
        parts.append(figure.replace("\n", " "))
    bullets = progress_bullets(pairs, titles) if len(pairs) else []
    if bullets:
        parts.append("\n".join(bullets))
    datasets = sorted(runs["dataset"].unique(), key=lambda name: list(DESIGNS).index(name) if name in DESIGNS else 99)
    scales = [budget_text(DESIGNS[name]) for name in datasets if name in DESIGNS]
    if scales:
        parts.append("Scale: " + "; ".join(scales) + ".")
    return "\n\n".join(parts)


def page(name: str, device: str, results_dir: str) -> dict:
    """What an analysis page of study v2 starts with: the threads, the design called ``name``, its analysis from the
    stored runs, and its dataset's title."""
    from subsetlib import data
    from subsetlib.present import dataset_title
    from subsetlib.train import set_threads

    set_threads()
    d = design(name)
    return {**load(data.load(d.dataset, device=device), d, results_dir), "title": dataset_title(d.dataset)}
