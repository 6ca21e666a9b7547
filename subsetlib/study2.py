"""Study v2: the subset hypothesis judged at real minima. The design of each dataset's arms, fixed before the runs,
and the runs themselves (stored runs are loaded, never retrained).

Every phase that stands for a minimum is trained with a cosine-annealed learning rate and checked by budget
doubling (``verdicts.converged``): the conventional arm on B and 2B epochs, each subset phase on S and 2S steps.
Where a pair fails, the ladder goes on (4B, 8B, …, up to ``max_doublings``): the rule decides the budget, never the
other way round. Per width and seed, every subset phase starts from the same initial weights as its conventional run.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from subsetlib import verdicts
from subsetlib.verdicts import RULES, Rules, converged


@dataclass(frozen=True)
class Design:
    """One dataset's arms. ``model`` is the main width (it also gets the equal-compute arms: subset phase, then
    fine-tuning on the full set to a total of ``epochs`` epoch-equivalents); ``widths`` are other widths of the same
    family, run on ``width_seeds`` for the Q-or-fraction question."""

    dataset: str
    model: str = "cnn-simple"
    fractions: tuple[float, ...] = (1 / 4, 1 / 8, 1 / 32)  # the main width's subset arms
    widths: dict[str, tuple[float, ...]] = field(default_factory=dict)  # other widths → their subset fractions
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    width_seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 8  # conventional budget B (its check: 2B); also the equal-compute arms' total budget
    min_subset_steps: int = 500  # a subset phase: `epochs` epochs over its subset, but at least this many steps
    max_doublings: int = 3  # the ladder: pairs (B, 2B), (2B, 4B), (4B, 8B) at most
    augment: bool = False
    batch_size: int = 128
    eval_train_examples: int = 10_000  # the full-set training loss is measured on this fixed sample of the set
    rules: Rules = RULES

    def run_config(self, model: str):
        """The RunConfig of every run of this design at one width."""
        from subsetlib.protocols import RunConfig

        return RunConfig(dataset=self.dataset, model=model, batch_size=self.batch_size, augment=self.augment,
                         eval_every=1.0, eval_dense=3, eval_train_examples=self.eval_train_examples,
                         lr_schedule="cosine")

    def arms(self) -> list[tuple[str, tuple[float, ...], tuple[int, ...]]]:
        """(model, subset fractions, seeds) for every width, the main one first."""
        return [(self.model, self.fractions, self.seeds)] + [(m, f, self.width_seeds) for m, f in self.widths.items()]


DESIGNS: dict[str, Design] = {
    # MNIST's loss still fell 30-44 % from 4 to 8 epochs at widths 6 and 16 (sizing runs): the main width is 6, whose
    # ladder is affordable on 2 CPU cores; the width sweep runs on Fashion-MNIST, where the loss flattens sooner
    "mnist": Design("mnist", model="cnn-simple-narrow", fractions=(1 / 8, 1 / 32, 1 / 256),
                    widths={"cnn-simple-w3": (1 / 32, 1 / 128, 1 / 512, 1 / 2048)}),
    "fashion-mnist": Design("fashion-mnist", model="cnn-simple", fractions=(1 / 4, 1 / 8, 1 / 32),
                            widths={"cnn-simple-narrow": (1 / 8, 1 / 32, 1 / 128, 1 / 512),
                                    "cnn-simple-w3": (1 / 32, 1 / 128, 1 / 512, 1 / 2048)}),
    # seconds, for tests and SUBSETLIB_SMOKE
    "synthetic": Design("synthetic", fractions=(1 / 4,), widths={"cnn-simple-narrow": (1 / 4,)}, seeds=(0, 1),
                        width_seeds=(0,), epochs=1, min_subset_steps=4, max_doublings=1, batch_size=250,
                        eval_train_examples=300),
}


def design(dataset: str) -> Design:
    """The design for a dataset (the designs are keyed by dataset name)."""
    from subsetlib.errors import UserError

    if dataset not in DESIGNS:
        raise UserError(f"study v2 has no design for dataset {dataset!r}: choose one of {', '.join(DESIGNS)}")
    return DESIGNS[dataset]


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
        for _ in range(d.max_doublings + 1):
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
    out = runs.set_index("run_id")[["protocol", "model", "seed", "subset_fraction", "subset_Q", "P", "epochs",
                                    "subset_epochs", "finetune_epochs", "final_train_loss", "final_test_acc",
                                    "total_flops", "epoch_equivalents"]].copy()
    for col in ("train_loss", "test_acc", "subset_loss", "flops", "examples"):
        out[f"phase_{col}"] = first_phase[col].reindex(out.index) if col in first_phase else math.nan
    return out.reset_index()


def ladders(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """One row per budget-doubling pair (B, 2B) of one arm and seed: the loss the rule reads at each budget (the
    conventional run's training loss; a subset phase's loss on its subset) and whether the pair passes the rule.
    Arm ``fraction`` 1 is the conventional arm; budgets are epochs over the arm's own training set."""
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
                             "run_id": low["run_id"], "run_id_2x": high["run_id"]})
    return pd.DataFrame(rows)


def minima(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """One row per arm and seed: its minimum, read at the longer run of its first converged pair (the lower loss of
    the two, so a gap to it is never flattered). An arm with no converged pair is marked ``converged = False`` and
    read at its longest run."""
    pairs = ladders(runs, curves, rules)
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
    sub["ref_converged"] = ref["converged"].fillna(False).astype(bool).to_numpy()
    sub["loss_ratio"] = sub["train_loss"] / sub["ref_loss"]
    sub["excess_nats"] = sub["train_loss"] - sub["ref_loss"]
    sub["acc_gap"] = sub["test_acc"] - sub["ref_acc"]
    sub["both_converged"] = sub["converged"] & sub["ref_converged"]
    return sub


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
