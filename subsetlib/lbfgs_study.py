"""Study v2's second-order track: where a subset can really save compute.

Mini-batch Adam pays per step whatever the size of the training set; a full-batch method pays K examples per
iteration, so a subset that stands in for the full set makes each iteration cheaper (our inference; the paper's cost
accounting is unknown). Per seed, from the same initial weights: full-batch L-BFGS on the full set
(``lbfgs-full``); full-batch L-BFGS on a subset, then on the full set (``lbfgs-subset-full``); and conventional Adam
with the cosine schedule and the budget-doubling ladder of ``study2`` on the same set, for the same axes.

The track's full set is a stratified part of MNIST (``mnist-12000-10000``) so that one full-batch evaluation costs
seconds on a CPU core; results on it are named so and never read as full-MNIST results.

An L-BFGS phase is converged when it stopped at a gradient below tolerance, or when its own second half lowered its
loss by less than the rule allows (L-BFGS is deterministic, so the first half of a run of 2I iterations *is* the
run of I iterations: budget doubling within one run).
"""

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from subsetlib.registry import dataset_title
from subsetlib.studies import Design
from subsetlib.study2_analysis import closeness_by_arm, memorisation, memorisation_by_dataset, tenth_by_arm
from subsetlib.study2_answer import TrackAnswer
from subsetlib.study2_report import (
    arm_text,
    closeness_claims,
    closeness_sentence,
    margins_text,
    memorisation_claim,
    tenth_claim,
)
from subsetlib.tables import significant
from subsetlib.verdicts import RULES, Rules, converged


@dataclass(frozen=True)
class LbfgsDesign:
    """The track's arms, fixed before its runs."""

    dataset: str = "mnist"
    train_size: int = 12_000
    test_size: int = 10_000
    model: str = "cnn-simple-w3"  # P = 988: Q = 121 on the 12,000 examples
    seeds: tuple[int, ...] = (0, 1, 2)
    fractions: tuple[float, ...] = (1 / 8, 1 / 32, 1 / 128, 1 / 512)  # Q = 15, 3.8, 0.95, 0.24
    full_iterations: int = 400  # L-BFGS on the full set from the initial weights (checked at 200)
    subset_iterations: int = 400  # L-BFGS on the subset (stops early at a minimum; checked at half)
    finetune_iterations: int = 200  # then L-BFGS on the full set
    adam_epochs: int = 8  # the Adam ladder starts here (study2's rule)
    history_size: int = 20
    eval_every: float = 5.0  # epoch-equivalents between evaluations (an L-BFGS iteration is one epoch-equivalent)
    rules: Rules = RULES

    def scale_text(self) -> str:
        """The track's budget in words, for the front page's "Scale:" line."""
        return (f"second-order track: {self.title} ({self.name}), {self.model}, {len(self.seeds)} seeds; "
                f"full-batch L-BFGS {self.full_iterations} iterations on the full set, or {self.subset_iterations} on "
                f"a subset then {self.finetune_iterations} on the full set; "
                f"Adam's ladder from {self.adam_epochs} epochs")

    @property
    def name(self) -> str:
        """The dataset name of the track's full set (``subsets.reduced`` names it so)."""
        return f"{self.dataset}-{self.train_size}-{self.test_size}"

    @property
    def title(self) -> str:
        """The track's full set as prose names it: 'MNIST, 12,000 training examples'."""
        return f"{dataset_title(self.dataset)}, {self.train_size:,} training examples"

    def adam(self) -> Design:
        """The Adam arm as a study2 design without subset arms: its conventional ladder only."""
        return Design(self.name, model=self.model, fractions=(), seeds=self.seeds, epochs=self.adam_epochs,
                      eval_train_examples=self.train_size)

    def run_config(self):
        from dataclasses import replace

        return replace(self.adam().run_config(self.model), eval_every=self.eval_every, channels_last=False)


LBFGS_DESIGNS: dict[str, LbfgsDesign] = {
    "mnist": LbfgsDesign(),
    "synthetic": LbfgsDesign("synthetic", train_size=400, test_size=100, model="cnn-simple-narrow", seeds=(0,),
                             fractions=(1 / 4,), full_iterations=8, subset_iterations=6, finetune_iterations=4,
                             adam_epochs=1, eval_every=2.0),
}


def lbfgs_design(dataset: str) -> LbfgsDesign:
    from subsetlib.errors import UserError

    if dataset not in LBFGS_DESIGNS:
        raise UserError(f"the L-BFGS track has no design for {dataset!r}: choose one of {', '.join(LBFGS_DESIGNS)}")
    return LBFGS_DESIGNS[dataset]


def load_data(d: LbfgsDesign, device: str = "auto"):
    from subsetlib.subsets import load_reduced

    return load_reduced(d.dataset, d.train_size, d.test_size, device=device)


def run_track(ds, d: LbfgsDesign, results_dir: str) -> list[str]:
    """Every arm of every seed, loaded or trained; returns the run ids."""
    from subsetlib.protocols import Phase, run_phases
    from subsetlib.second_order import lbfgs_trainer
    from subsetlib.study2 import run_width

    cfg, trainer = d.run_config(), lbfgs_trainer(d.history_size, chunk_size=d.train_size)
    trainers = {"lbfgs": trainer, "lbfgs-full": trainer}
    ids = []
    for seed in d.seeds:
        full = run_phases(ds, cfg, [Phase("lbfgs-full", 1.0, d.full_iterations, unit="iterations")], seed, "lbfgs-full",
                          {"lbfgs_iterations": d.full_iterations, "history_size": d.history_size}, results_dir,
                          trainers)
        ids.append(full.summary["run_id"])
        for f in d.fractions:
            phases = [Phase("lbfgs", f, d.subset_iterations, unit="iterations"),
                      Phase("lbfgs-full", 1.0, d.finetune_iterations, unit="iterations")]
            params = {"fraction": f, "lbfgs_iterations": d.subset_iterations,
                      "finetune_iterations": d.finetune_iterations, "history_size": d.history_size}
            ids.append(run_phases(ds, cfg, phases, seed, "lbfgs-subset-full", params, results_dir,
                                  trainers).summary["run_id"])
        ids += run_width(ds, d.adam(), d.model, (), seed, results_dir)
    return ids


def stored(name: str, results_dir: str, device: str = "auto") -> dict | None:
    """The track's analysis if every run of its design is stored, else None (trains nothing)."""
    from subsetlib import protocols, results

    d = lbfgs_design(name)
    try:
        with protocols.stored_runs_only():
            ids = run_track(load_data(d, device), d, results_dir)
    except protocols.NotStored:
        return None
    return analyse(*results.load_runs(results_dir, ids), d)


# ---------------------------------------------------------------------------------------------------------------------
# Analysis


def phase_convergence(runs: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """One row per L-BFGS phase: iterations run, why it stopped, its loss at half and at all of its iterations, and
    whether it converged by the track's rule."""
    rows = []
    for _, run in runs[runs["protocol"].str.startswith("lbfgs")].iterrows():
        for name, info in json.loads(run["phases"]).items():
            losses = json.loads(info.get("lbfgs_losses", "[]"))
            if not losses:
                continue
            half, end = losses[max(0, len(losses) // 2 - 1)], losses[-1]
            at_minimum = info["lbfgs_stopped"].startswith("converged")
            rows.append({"run_id": run["run_id"], "protocol": run["protocol"], "seed": run["seed"],
                         "fraction": run["subset_fraction"], "phase": name, "K": info["K"], "Q": info["Q"],
                         "iterations": info["lbfgs_iterations_done"], "stopped": info["lbfgs_stopped"],
                         "loss_half": half, "loss_end": end,
                         "converged": at_minimum or converged(half, end, rules)})
    return pd.DataFrame(rows)


def phase_table(phases: pd.DataFrame) -> pd.DataFrame:
    """``phase_convergence``'s rows for a reader: full-set L-BFGS first, then the subset arms from the largest, each
    seed's subset phase before its full-set phase, named in words."""
    # the names sort as a reader reads: "lbfgs-full" before "lbfgs-subset-full", phase "lbfgs" before "lbfgs-full"
    table = phases.sort_values(["protocol", "fraction", "seed", "phase"], ascending=[True, False, True, True])
    return table.assign(arm=[("L-BFGS, full set" if p == "lbfgs-full" else f"{arm_text(x)} first") for p, x in
                             zip(table["protocol"], table["fraction"], strict=True)],
                        on=[("subset" if p == "lbfgs" else "full set") for p in table["phase"]],
                        why=table["stopped"].map(_stop_text),
                        verdict=table["converged"].map({True: "converged", False: "not converged"}))


def _stop_text(stopped: str) -> str:
    """Why an L-BFGS phase stopped, in a few words (``lbfgs.minimize`` says it with the gradient's size)."""
    for start, words in (("converged", "gradient below tolerance"), ("stalled", "stall: no decrease found"),
                         ("iterations", "iteration budget")):
        if stopped.startswith(start):
            return words
    return stopped


def progress_bullet(phases: pd.DataFrame, d: LbfgsDesign) -> str:
    """While the track runs: one Markdown bullet on its full-set L-BFGS runs stored so far (converged or how much
    their loss still fell over their second half)."""
    full = phases[phases["protocol"] == "lbfgs-full"]
    drops = (100 * (1 - full["loss_end"] / full["loss_half"])).round().astype(int)
    fell = f"{drops.min()}" if drops.min() == drops.max() else f"{drops.min()}–{drops.max()}"
    return (f"- Second-order track ({d.title}, {d.model}): full-set L-BFGS converged in {int(full['converged'].sum())} "
            f"of {len(full)} seed{'s' if len(full) != 1 else ''} stored so far; over the second half of its "
            f"{d.full_iterations} iterations the training loss still fell {fell} %.")


def track_points(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Tidy points for the figure: per arm, seed and evaluation, cumulative training FLOPs, full-set training loss
    and test accuracy."""
    meta = runs.set_index("run_id")
    pts = curves[curves["run_id"].isin(runs["run_id"]) & (curves["examples"] > 0)].copy()
    protocol, fraction = pts["run_id"].map(meta["protocol"]), pts["run_id"].map(meta["subset_fraction"])
    epochs = pts["run_id"].map(meta["epochs"])
    pts["arm"] = [("Adam, " + f"{int(e)} epochs" if p == "conventional" else
                   "L-BFGS, full set" if p == "lbfgs-full" else f"L-BFGS, {arm_text(f)} then full set")
                  for p, f, e in zip(protocol, fraction, epochs, strict=True)]
    pts["protocol"], pts["fraction"] = protocol, fraction
    return pts[["arm", "protocol", "fraction", "run_id", "seed", "phase", "flops", "train_loss", "test_acc"]]


def track_costs(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """Per seed, arm and metric: FLOPs to reach the target set at a fixed gap from that seed's full-set L-BFGS
    result (loss within 10 % above it; accuracy at most 0.3 points below), and the ratio to what full-set L-BFGS
    itself paid to get there. Adam's runs are costed against the same target."""
    rows = []
    converged_ = phase_convergence(runs, rules).set_index(["run_id", "phase"])["converged"]
    for seed, seed_runs in runs.groupby("seed"):
        full = seed_runs[seed_runs["protocol"] == "lbfgs-full"]
        if full.empty:
            continue
        ref = full.iloc[0]
        for metric in ("train_loss", "test_acc"):
            goal = (ref["final_train_loss"] * math.exp(rules.loss_margin) if metric == "train_loss"
                    else ref["final_test_acc"] - rules.acc_margin)
            costs = {}
            for _, run in seed_runs.iterrows():
                c = curves[(curves["run_id"] == run["run_id"]) & (curves["examples"] > 0)].sort_values("examples")
                hit = c[c[metric] <= goal] if metric == "train_loss" else c[c[metric] >= goal]
                costs[run["run_id"]] = float(hit["flops"].iloc[0]) if len(hit) else math.nan
            for _, run in seed_runs.iterrows():
                phases = json.loads(run["phases"])
                rows.append({"seed": seed, "metric": metric, "protocol": run["protocol"],
                             "fraction": run["subset_fraction"], "Q": run["subset_Q"], "epochs": run["epochs"],
                             "run_id": run["run_id"], "target": goal, "cost": costs[run["run_id"]],
                             "reference_converged": bool(converged_.get((ref["run_id"], "lbfgs-full"), False)),
                             "conventional_cost": costs[ref["run_id"]],
                             "ratio": costs[run["run_id"]] / costs[ref["run_id"]],
                             # a subset arm's full-set phase: what "refuted" asks to be at least the reference's cost
                             "finetune_flops": phases.get("lbfgs-full", {}).get("flops", math.nan)
                             if run["protocol"] == "lbfgs-subset-full" else math.nan})
    return pd.DataFrame(rows)


def closeness(runs: pd.DataFrame, curves: pd.DataFrame, phases: pd.DataFrame) -> pd.DataFrame:
    """Question 1 on the track: per subset arm and seed, the full-set training loss and test accuracy where its
    L-BFGS subset phase ended, against full-set L-BFGS's result of the same seed. ``both_converged`` (the track's
    rule, on both phases) is what a verdict may use."""
    converged_ = phases.set_index(["run_id", "phase"])["converged"]
    full = runs[runs["protocol"] == "lbfgs-full"].set_index("seed")
    rows = []
    for _, run in runs[runs["protocol"] == "lbfgs-subset-full"].iterrows():
        if run["seed"] not in full.index:
            continue
        curve = curves[(curves["run_id"] == run["run_id"]) & (curves["phase"] == "lbfgs")]
        end, ref = curve.sort_values("examples").iloc[-1], full.loc[run["seed"]]
        rows.append({"model": run["model"], "P": run["P"], "fraction": run["subset_fraction"], "Q": run["subset_Q"],
                     "seed": run["seed"], "run_id": run["run_id"], "ref_run_id": ref["run_id"],
                     "train_loss": end["train_loss"], "test_acc": end["test_acc"],
                     "ref_loss": ref["final_train_loss"], "ref_acc": ref["final_test_acc"],
                     "converged": bool(converged_.get((run["run_id"], "lbfgs"), False)),
                     "ref_converged": bool(converged_.get((ref["run_id"], "lbfgs-full"), False))})
    close = pd.DataFrame(rows)
    return close.assign(both_converged=close["converged"] & close["ref_converged"]) if len(close) else close


def tenth(costs: pd.DataFrame, rules: Rules = RULES) -> pd.DataFrame:
    """The subset arms' cost ratios to full-set L-BFGS judged by the tenth's rule (``study2_analysis.tenth_by_arm``,
    full-set L-BFGS in the conventional arm's place): per arm and metric, the paired interval and the verdict."""
    return tenth_by_arm(costs[costs["protocol"] == "lbfgs-subset-full"], rules)


def cost_summary(costs: pd.DataFrame) -> pd.DataFrame:
    """Per arm and metric: seeds that reached the target and the geometric-mean cost ratio over those seeds (Adam:
    its cheapest run per seed)."""
    c = costs.copy()
    c["arm"] = [("Adam (cheapest run of its ladder)" if p == "conventional" else "L-BFGS, full set"
                 if p == "lbfgs-full" else f"L-BFGS, {arm_text(f)} then full set")
                for p, f in zip(c["protocol"], c["fraction"], strict=True)]
    best = c.groupby(["metric", "arm", "seed"], as_index=False)["ratio"].min()
    rows = []
    for (metric, arm), group in best.groupby(["metric", "arm"], sort=False):
        ok = group["ratio"][np.isfinite(group["ratio"])]
        rows.append({"metric": metric, "arm": arm, "seeds": len(group), "reached": len(ok),
                     "ratio": float(np.exp(np.log(ok).mean())) if len(ok) else math.nan})
    return pd.DataFrame(rows)


def analyse(runs: pd.DataFrame, curves: pd.DataFrame, d: LbfgsDesign) -> dict:
    costs = track_costs(runs, curves, d.rules)
    phases = phase_convergence(runs, d.rules)
    close = closeness(runs, curves, phases)
    return {"design": d, "runs": runs, "curves": curves, "phases": phases, "close": close,
            "close_by_arm": closeness_by_arm(close, d.rules), "points": track_points(runs, curves), "costs": costs,
            "summary": cost_summary(costs), "tenth": tenth(costs, d.rules),
            **_memorisation(runs, curves, d.rules)}


def _memorisation(runs: pd.DataFrame, curves: pd.DataFrame, rules: Rules) -> dict:
    memo = memorisation(runs, curves, rules)
    return {"memorisation": memo, "memorisation_by_dataset": memorisation_by_dataset(memo)}


def claims(a: dict) -> pd.DataFrame:
    """The track's rows of the claims table: the two claims about minima (question 1, on the track's converged L-BFGS
    phases) and "a tenth or less" (question 3), on each metric."""
    d, rows = a["design"], []
    for metric, col, key in (("training loss", "loss_verdict", "train_loss"), ("test accuracy", "acc_verdict",
                                                                               "test_acc")):
        for claim, source, verdict, numbers in closeness_claims(a["close_by_arm"], col, d.rules):
            rows.append({"claim": claim, "source": source, "metric": metric, "verdict": verdict, "numbers": numbers})
        arms = a["tenth"][a["tenth"]["metric"] == key]
        rows.append({"claim": "Compute to full-set L-BFGS quality reduced to a tenth or less",
                     "source": "abstract; the track is our inference",
                     "metric": metric, "verdict": tenth_claim(arms["verdict"].tolist()),
                     "numbers": "; ".join(f"{arm_text(r['fraction'])} first: {_ratio_text(r)}, {r['verdict']}"
                                          for _, r in arms.iterrows())})
    if len(a.get("memorisation_by_dataset", ())):
        claim, source, verdict, numbers = memorisation_claim(a["memorisation_by_dataset"].iloc[0])
        rows.append({"claim": claim, "source": source, "metric": "subset and full-set loss", "verdict": verdict,
                     "numbers": numbers})
    return pd.DataFrame(rows).assign(dataset=f"{d.title} (second-order track)")


def track_notes(a: dict) -> dict:
    """What the track's runs, as run, could and could not show, from the stored runs: per seed, the iteration at which
    full-set L-BFGS first came within the loss margin of its own final loss (against the subset arms' full-set
    iterations), whether the final gradient was recorded, the threads each run used, and when its first run started.
    ``sentences``: the same in words, for its page, the plan's amendments and the provenance page."""
    d, runs, rules = a["design"], a["runs"], a["design"].rules
    full = runs[runs["protocol"] == "lbfgs-full"]
    reach = []
    for _, run in full.iterrows():
        losses = np.asarray(json.loads(json.loads(run["phases"])["lbfgs-full"]["lbfgs_losses"]), dtype=float)
        hit = np.nonzero(losses <= math.exp(rules.loss_margin) * losses[-1])[0]
        reach.append(int(hit[0]) + 1 if len(hit) else math.nan)
    lbfgs_runs = runs[runs["protocol"].str.startswith("lbfgs")]
    phases = [info for p in lbfgs_runs["phases"] for info in json.loads(p).values() if "lbfgs_stopped" in info]
    with_grad = sum(math.isfinite(info.get("lbfgs_grad_max", math.nan)) for info in phases)
    threads = runs["threads"].value_counts().sort_index()
    first = full.sort_values("started").iloc[0] if len(full) else None
    notes = {"reach_iterations": reach, "finetune_iterations": d.finetune_iterations, "phases": len(phases),
             "grad_recorded": with_grad, "threads": {int(k): int(v) for k, v in threads.items()},
             "runs": len(runs),
             "first_started": None if first is None else str(first["started"])[:16].replace("T", " "),
             "first_seed": None if first is None else int(first["seed"])}
    span = f"{min(reach)}–{max(reach)}" if len(set(reach)) > 1 else f"{reach[0]}" if reach else "–"
    threads_text = ", ".join(f"{v} with {k} thread{'s' if k != 1 else ''}" for k, v in notes["threads"].items())
    sentences = [
        f"As run, the subset arms could not reach their targets: their full-set phase had "
        f"{d.finetune_iterations} L-BFGS iterations, while full-set L-BFGS came within "
        f"{100 * (math.exp(rules.loss_margin) - 1):.2g} % of its own final loss only at iteration {span} (of "
        f"{d.full_iterations}).",
        (f"The final gradient was recorded for {with_grad} of {len(phases)} L-BFGS phases"
         if with_grad else f"The final gradient was not recorded for any of its {len(phases)} L-BFGS phases")
        + " (before the fix, the library measured it only when a step did not move; it records it now, however a "
        "fit stops), so no phase can be called stationary by its gradient.",
        f"Threads: of its {len(runs)} runs, {threads_text}; wall-clock seconds are therefore not comparable "
        f"across all of them (FLOPs are).",
    ]
    if first is not None:
        sentences.append(f"Its first run (full-set L-BFGS, seed {notes['first_seed']}) started at "
                         f"{notes['first_started']} UTC (the stored start time).")
    notes["sentences"] = sentences
    return notes


def answer(a: dict) -> str:
    """The track's answer in words (its page): what a subset saves, then how close its subset minima lie."""
    close, saving = _answers(a)
    return f"{saving}\n\n{close}"


def front_answer(a: dict) -> TrackAnswer:
    """The track's answer for the front page, split by question, with its scale."""
    return TrackAnswer(*_answers(a), a["design"].scale_text())


def _answers(a: dict) -> tuple[str, str]:
    """Question 1 on the track (whether full-set L-BFGS converged; how close the subset minima lie) and question 3
    (per metric, each subset arm's cost to reach full-set L-BFGS's result: paired ratio, interval, verdict on "a
    tenth or less"; and Adam's)."""
    d, phases, summary = a["design"], a["phases"], a["summary"]
    full = phases[phases["protocol"] == "lbfgs-full"]
    close = closeness_sentence(a["close_by_arm"], f"{d.title}, with L-BFGS ({d.model})")
    bullets = []
    loss_margin, acc_margin = margins_text(d.rules)
    within = {"train_loss": f"its training loss (within {loss_margin})",
              "test_acc": f"its test accuracy (within {acc_margin})"}
    for metric, target in within.items():
        arms = a["tenth"][a["tenth"]["metric"] == metric]
        adam = summary[(summary["metric"] == metric) & (summary["arm"].str.startswith("Adam"))]
        texts = [f"{arm_text(r['fraction'])} first (Q = {r['Q']:.2g}): {_ratio_text(r)}, {r['verdict']}"
                 for _, r in arms.sort_values("fraction", ascending=False).iterrows()]
        texts += [f"Adam: {_ratio_text(r)}" for _, r in adam.iterrows()]
        bullets.append(f"- to {target}:\n" + "\n".join(f"  - {text}" for text in texts))
    saving = (f"On {d.title}, with {d.model}, full-batch L-BFGS on the full set converged by the track's rule in "
              f"{int(full['converged'].sum())} of {len(full)} seeds. FLOPs to reach its result, as a multiple of "
              f"what full-set L-BFGS paid, with the verdict on *a tenth or less*:\n\n" + "\n".join(bullets))
    return close, saving


def _ratio_text(row: pd.Series) -> str:
    """'0.453× [0.401, 0.512] (3 of 3 seeds)', or 'not reached (0 of 3 seeds)'."""
    reached = f"{row['reached']} of {row['seeds']} seeds"
    if not math.isfinite(row["ratio"]):
        return f"not reached ({reached})"
    low, high, each = row.get("low", math.nan), row.get("high", math.nan), row.get("each", ())
    if not math.isfinite(low) and isinstance(each, tuple) and len(each) > 1:  # under 3 seeds: no interval
        return f"{', '.join(significant(r) + '×' for r in each)} per seed ({reached})"
    interval = f" [{significant(low)}, {significant(high)}]" if math.isfinite(low) else ""  # as the mini-batch ratios
    return f"{significant(row['ratio'])}×{interval} ({reached})"
