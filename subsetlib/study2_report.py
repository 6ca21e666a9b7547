"""Study v2 in words, tables and colours for its pages: the library words the verdicts, the notebooks show them.
The claims table, and one sentence per question and dataset (the front page's answer: ``study2_answer``).
"""

import math

import pandas as pd

from subsetlib import verdicts
from subsetlib.studies import Design
from subsetlib.tables import fraction_text, significant
from subsetlib.verdicts import RULES, Rules


def arm_text(fraction: float) -> str:
    """'conventional' for the full set, else 'subset 1/8': how every v2 table names an arm."""
    return "conventional" if fraction >= 1 else f"subset {fraction_text(fraction)}"


CONVERGENCE_COLUMNS = {"arm": "arm", "Q": "Q", "seed": "seed", "budget": "B (epochs over its set)",
                       "loss": "loss at B", "loss_2x": "loss at 2B", "drop_pct": "lower at 2B (%)",
                       "verdict": "rule"}


# the drop to two decimals: 9.98 % passes a 10 % rule, and "10.0" would not say so
CONVERGENCE_DIGITS = {"Q": 2, "loss": 4, "loss_2x": 4, "drop_pct": 2}


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
    lines = []  # conventional first (its fraction is 1), then the subsets from the largest, as in the table
    for fraction, arm in sorted(pairs.groupby("fraction"), key=lambda group: -group[0]):
        seeds = arm.groupby("seed")["converged"].any()
        at = sorted({int(b) for b in arm.loc[arm["converged"], "budget"]})
        where = f" (at B = {', '.join(map(str, at))})" if at else ""
        lines.append(f"- **{arm_text(fraction)}**: {int(seeds.sum())} of {len(seeds)} seeds converged{where}.")
    return (f"Rule: a phase on budget B is converged when 2B lowers its loss by less than "
            f"{100 * d.rules.converge_rel:g} % or by less than {d.rules.converge_abs:g} nats; at most "
            f"{d.max_doublings} doublings, or {d.long_doublings} for a subset phase with Q ≥ {d.rules.q_high:g} whose "
            f"seed's conventional ladder converged (plan amendment of 2026-12-05).\n\n" + "\n".join(lines))


def width_text(model: str, p: int) -> str:
    """A width as a figure's key names it: 'cnn-simple (P = 23,946)'."""
    return f"{model} (P = {int(p):,})"


def _ratio_text(test: verdicts.Paired, with_n: bool = True) -> str:
    """A paired log ratio as a ratio with its interval, three significant digits kept: '1.00× [0.957, 1.04], n = 10'."""
    if test.n == 0:
        return "no converged pairs"
    if test.n == 1 or not math.isfinite(test.low):  # fewer than 3 pairs: each seed's ratio, never an interval
        each = test.values or (test.mean,)
        return (", ".join(f"{significant(math.exp(v))}×" for v in each)
                + (f" (per seed, n = {test.n})" if test.n > 1 else " (n = 1)"))
    return (f"{significant(math.exp(test.mean))}× [{significant(math.exp(test.low))}, "
            f"{significant(math.exp(test.high))}]" + (f", n = {test.n}" if with_n else ""))


PAIRED_METRICS = {"training loss": {"ratio_text": "loss ÷ reference", "excess_text": "excess loss (nats)",
                                    "loss_verdict": "verdict"},
                  "test accuracy": {"acc_text": "accuracy gap (points)", "acc_verdict": "verdict"}}
"""The paired verdicts' tables (questions 1 and 2), one per metric: each metric is judged on its own, and one table
of both is too wide for the page."""


def _paired_columns(table: pd.DataFrame, with_n: bool = True) -> pd.DataFrame:
    table = table.copy()
    table["excess_text"] = table["excess_nats"].map(lambda x: significant(x) if math.isfinite(x) else "–")
    table["ratio_text"] = table["loss"].map(lambda t: _ratio_text(t, with_n))
    table["acc_text"] = table["acc"].map(lambda t: t.text(100, "", 2, with_n) if t.n else "no converged pairs")
    return table


def closeness_table(by_arm: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, dict, dict]:
    """Question 1 per arm on one of ``PAIRED_METRICS``, for ``tables.table``: (rows, columns, digits). A width is
    named by its P (the figure's key names the model)."""
    table = _paired_columns(by_arm, with_n=False)  # the converged seeds have a column of their own
    table["P"] = table["P"].astype(int)
    table["subset"] = table["fraction"].map(fraction_text)
    table["converged"] = [f"{u} of {s}" for u, s in zip(table["usable"], table["seeds"], strict=True)]
    # an arm without converged pairs has no numbers: its seeds ("0 of 5") and verdict ("not converged") say why
    table.loc[table["usable"] == 0, ["ratio_text", "excess_text", "acc_text"]] = "–"
    columns = {"P": "P (width)", "subset": "subset", "Q": "Q", "converged": "converged seeds",
               **PAIRED_METRICS[metric]}
    return table, columns, {"Q": 2}


def equal_compute_table(by_arm: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, dict, dict]:
    """Question 2 per equal-compute arm on one of ``PAIRED_METRICS``, for ``tables.table``."""
    table = _paired_columns(by_arm, with_n=False)  # the seeds have a column of their own
    table["subset"] = table["fraction"].map(fraction_text)
    columns = {"subset": "subset", "Q": "Q", "flops_ratio": "training FLOPs ÷ conventional", "seeds": "seeds",
               **PAIRED_METRICS[metric]}
    return table, columns, {"Q": 2, "flops_ratio": 2}


def equal_steps_table(steps: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """The diagnostic at equal steps (``study2_analysis.equal_steps``), one row per subset arm, largest first: the
    full-set loss where its subset phase ended over the conventional run's after as many steps, mean over seeds."""
    table = steps.groupby("fraction", sort=False).agg(Q=("Q", "first"), steps=("steps", "first"),
                                                       ratio=("ratio", "mean"), seeds=("seed", "nunique"))
    table = table.reset_index().sort_values("fraction", ascending=False)
    table["subset"] = table["fraction"].map(fraction_text)
    columns = {"subset": "subset", "Q": "Q", "steps": "subset steps", "seeds": "seeds",
               "ratio": "full-set loss ÷ conventional at the same step (mean)"}
    return table, columns, {"Q": 2, "ratio": 2}


def target_text(metric: str, reference: str = "minimum", rules: Rules = RULES) -> str:
    """A cost-to-target table's target in words: 'training loss ≤ 1.1 × minimum'."""
    if metric == "test_acc":
        return f"test accuracy ≥ {reference} − {100 * rules.acc_margin:g} pt"
    return f"training loss ≤ {math.exp(rules.loss_margin):.2g} × {reference}"


def tenth_table(tenth: pd.DataFrame, reference: str = "minimum") -> tuple[pd.DataFrame, dict, dict]:
    """"A tenth or less" per arm and metric (``tenth_by_arm``'s rows, in its order), for ``tables.table``; targets
    at fixed gaps from ``reference``."""
    table = tenth.copy()
    table["arm"] = table["fraction"].map(arm_text)
    table["target"] = table["metric"].map(lambda m: target_text(m, reference))
    table["references"] = [f"{r} of {s}" for r, s in zip(table["references_converged"], table["seeds"], strict=True)]
    table["reached_text"] = [f"{r} of {s}" for r, s in zip(table["reached"], table["shown_seeds"], strict=True)]
    # an interval needs 3 pairs; with fewer, each seed's ratio
    table["interval"] = [f"[{significant(lo)}, {significant(hi)}]" if math.isfinite(lo) else
                         ", ".join(f"{significant(r)}×" for r in each) + " (per seed)" if len(each) > 1 else "–"
                         for lo, hi, each in zip(table["low"], table["high"], table["each"], strict=True)]
    columns = {"target": "target", "arm": "arm", "Q": "Q", "references": "seeds with a converged reference",
               "reached_text": "seeds that reached it",
               "ratio": "cost ÷ conventional (geometric mean)", "interval": "95 % interval (3 or more seeds)",
               "verdict": "verdict"}
    return table, columns, {"Q": 2, "ratio": 2}


def margins_text(rules: Rules = RULES) -> tuple[str, str]:
    """The equivalence margins in words, from the rules: ('10 %', '0.3 points')."""
    return f"{100 * (math.exp(rules.loss_margin) - 1):.2g} %", f"{100 * rules.acc_margin:g} points"


def _count(verdict_list: list[str], word: str) -> int:
    return sum(v == word for v in verdict_list)


def closeness_sentence(by_arm: pd.DataFrame, title: str, rules: Rules = RULES) -> str:
    """The answer to question 1 on one dataset, in words, from the verdicts."""
    high = by_arm[by_arm["Q"] >= rules.q_high]
    usable = high[high["usable"] > 0]
    if usable.empty:
        why = ""
        if len(high):  # which phases failed: the reference's seeds (once per width), the subset phases' (per arm)
            refs = high.drop_duplicates("model")
            why = (f" (the full-set run converged in {int(refs['reference_converged'].sum())} of "
                   f"{int(refs['seeds'].sum())} seeds, the subset phases with Q ≥ {rules.q_high:g} in "
                   f"{int(high['subset_converged'].sum())} of {int(high['seeds'].sum())})")
        return (f"On {title}, no subset arm with Q ≥ {rules.q_high:g} has both phases converged{why}, so how close "
                "its minimum is cannot be judged at this budget.")
    loss, acc = usable["loss_verdict"].tolist(), usable["acc_verdict"].tolist()
    n, (loss_margin, acc_margin) = len(usable), margins_text(rules)
    seeds = _span(usable["usable"], lambda x: str(int(x)))
    rests = (f"; it rests on {seeds} seed{'s' if seeds != '1' else ''} with both phases converged"
             + (f", fewer than the {rules.min_seeds} an interval needs" if usable["usable"].max() < rules.min_seeds
                else ""))
    return (f"On {title}, {n} subset arm{'s' if n != 1 else ''} with Q ≥ {rules.q_high:g} "
            f"ha{'ve' if n != 1 else 's'} both phases converged: in training loss {_count(loss, 'equal')} "
            f"within {loss_margin} of the full-set minimum, {_count(loss, 'worse')} "
            f"farther and the rest inconclusive (ratio {_span(usable['ratio'], lambda x: significant(x) + '×')}, "
            f"excess {_span(usable['excess_nats'], significant)} nats); in test accuracy {_count(acc, 'equal')} "
            f"within {acc_margin}, {_count(acc, 'worse')} worse and the rest inconclusive (gap "
            f"{_span(100 * usable['acc_gap'], '{:+.2f}'.format)} points){rests}.")


def _span(values: pd.Series, text) -> str:
    """'a to b', or 'a' where every value prints the same (``text``: a number in words)."""
    low, high = text(values.min()), text(values.max())
    return low if low == high else f"{low} to {high}"


def equal_compute_arm_text(arm: pd.Series) -> str:
    """One equal-compute arm's verdicts with their intervals, in words."""
    return (f"{arm_text(arm['fraction'])} (Q = {arm['Q']:.2g}): loss {arm['loss_verdict']} "
            f"({_interval_text(arm, 'loss_verdict')}), accuracy {arm['acc_verdict']} "
            f"({_interval_text(arm, 'acc_verdict')})")


def equal_compute_plain(by_arm: pd.DataFrame, title: str) -> str:
    """Question 2 on one dataset in one plain sentence, before the intervals: how many arms matched conventional
    training on each metric, at what compute, and the lowest Q that matched on both."""
    n = len(by_arm)
    loss, acc = int((by_arm["loss_verdict"] == "equal").sum()), int((by_arm["acc_verdict"] == "equal").sum())
    both = by_arm[(by_arm["loss_verdict"] == "equal") & (by_arm["acc_verdict"] == "equal")]
    flops = _span(by_arm["flops_ratio"], lambda x: f"{x:.2f}") if "flops_ratio" in by_arm else "about 1"
    lowest = f"; the smallest subset equal on both was Q = {both['Q'].min():.2g}" if len(both) else ""
    return (f"**On {title}, {loss} of {n} subset arms matched conventional training in training loss and {acc} of "
            f"{n} in test accuracy, at {flops}× its training FLOPs: equal compute, so no saving is shown{lowest}.**")


def equal_compute_sentence(by_arm: pd.DataFrame, title: str, d: Design) -> str:
    """The answer to question 2 on one dataset, in words: the plain sentence, then each arm with its intervals."""
    details = (f"On {title} at {d.epochs} epoch-equivalent{'s' if d.epochs != 1 else ''} of training (the "
               f"conventional arm's B), each equal-compute arm against conventional training of the same seed: "
               + "; ".join(equal_compute_arm_text(arm) for _, arm in by_arm.iterrows()) + ".")
    return f"{equal_compute_plain(by_arm, title)} {details}"


def q_or_fraction_sentence(qf: pd.DataFrame, widths_run: int) -> str:
    """Question 1 across widths in words: per metric, whether Q or the fraction decides (``q_or_fraction``)."""
    said = qf["verdict"].unique()
    if len(said) == 1:
        return f"Q or the fraction ({widths_run} widths run): {said[0]} on every metric."
    return (f"Q or the fraction ({widths_run} widths run): "
            + "; ".join(f"{r['metric']}: {r['verdict']}" for _, r in qf.iterrows()) + ".")


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
        lines.append(f"- subset {fraction_text(fraction)}: lowest full-set loss with {by_loss['model']} "
                     f"({by_loss['loss']:.4f}), best test accuracy with {by_acc['model']} "
                     f"({100 * by_acc['acc']:.2f} %), over {len(arm)} widths")
    return "On the same subset:\n\n" + "\n".join(sorted(lines, reverse=True))


def _cost_text(ratio: float, low: float = math.nan, high: float = math.nan, each: tuple = ()) -> str:
    """'0.53× [0.40, 0.70]', the per-seed ratios where there is no interval ('0.536×, 1.91× (per seed)'), or
    'not reached'."""
    if not math.isfinite(ratio):
        return "not reached"
    if not math.isfinite(low) and len(each) > 1:
        return ", ".join(f"{significant(r)}×" for r in each) + " (per seed)"
    return f"{ratio:.2f}×" + (f" [{significant(low)}, {significant(high)}]" if math.isfinite(low) else "")


CLAIMS_FIELDS = ("claim", "source", "dataset", "metric", "verdict", "numbers")
"""The claims table's columns: one row per claim, dataset and metric."""

CLAIMS_COLUMNS = {"claim_text": "claim (source)", "where": "dataset, metric", "verdict": "verdict",
                  "numbers": "numbers behind it"}
"""How the claims page shows them (``claims_view``): four columns, so that the numbers have room."""


def claims_view(table: pd.DataFrame) -> pd.DataFrame:
    """The claims table with each claim's source beside it and its dataset and metric in one cell."""
    return table.assign(claim_text=table["claim"] + " (" + table["source"] + ")",
                        where=table["dataset"] + ", " + table["metric"])


CLOSE_CLAIM = "The full-set minimum is close to its subsets' minima (arms with Q ≥ 3)"
Q_CLAIM = "A subset is representative once Q sufficiently exceeds 1 (close at Q ≥ 3, not at Q < 1)"


def closeness_claims(by_arm: pd.DataFrame, col: str, rules: Rules = RULES) -> list[tuple[str, str, str, str]]:
    """The two claims about minima on one metric (``col``: the arms' loss or accuracy verdict), as (claim, source,
    verdict, numbers): close at Q ≥ 3 needs an arm there that is *equal*; the Q threshold also needs no arm with
    Q < 1 that is."""
    high, low = by_arm[by_arm["Q"] >= rules.q_high], by_arm[by_arm["Q"] < 1]
    usable = high[high["usable"] > 0]
    if usable.empty:
        close_v = "not testable at this budget"
    elif (usable[col] == "equal").any():
        close_v = "reproduced"
    elif (usable[col] == "worse").all():
        close_v = "refuted"
    else:
        close_v = "inconclusive"
    low_equal = (low[col] == "equal").any()
    if close_v == "reproduced" and not low_equal:
        q_v = "reproduced"
    elif low_equal or close_v == "refuted":
        q_v = "refuted"
    else:
        q_v = close_v
    return [(CLOSE_CLAIM, "abstract", close_v, _arms_text(high, col) or "no arm with Q ≥ 3"),
            (Q_CLAIM, "abstract", q_v, f"Q ≥ 3: {close_v}; Q < 1: {_arms_text(low, col) or 'no arm'}")]


def _interval_text(arm: pd.Series, col: str) -> str:
    """The paired interval behind an arm's verdict on one metric (``col``: its loss or accuracy verdict)."""
    return _ratio_text(arm["loss"]) if col == "loss_verdict" else arm["acc"].text(100, " pt", 2)


def _arms_text(arms: pd.DataFrame, col: str) -> str:
    """Each arm with converged pairs: its verdict and the interval behind it; the arms without any, once per verdict
    ('not converged: 1/8 at P = 3,586 (Q 21), …')."""
    def where(r: pd.Series) -> str:
        return f"{fraction_text(r['fraction'])} at P = {int(r['P']):,} (Q {r['Q']:.2g})"

    usable = arms["usable"] > 0
    parts = [f"{where(r)}: {r[col]} ({_interval_text(r, col)})" for _, r in arms[usable].iterrows()]
    parts += [f"{verdict}: {', '.join(where(r) for _, r in group.iterrows())}"
              for verdict, group in arms[~usable].groupby(col, sort=False)]
    return "; ".join(parts)


EQUAL_CLAIM = "Results equal to conventional training (read at equal compute, not at a tenth)"


def equal_compute_verdict(arm_verdicts: list[str]) -> str:
    """The equal-compute claim over its arms: reproduced *at equal compute* if some arm is equal or better (a union
    of the arms' tests: the family and its adjustment are stated beside it, ``equal_compute_caveats``), refuted if
    every arm is worse, else inconclusive. The arms spend about the conventional arm's FLOPs, so "reproduced" here
    shows no saving: the verdict says so."""
    if any(v in ("equal", "better") for v in arm_verdicts):
        return "reproduced at equal compute (no saving shown)"
    if arm_verdicts and all(v == "worse" for v in arm_verdicts):
        return "refuted"
    return "inconclusive"


def margin_used(test: verdicts.Paired, margin: float) -> float:
    """How much of the equivalence margin an "equal" interval uses: its farther edge over the margin (1: on the
    edge). NaN without an interval."""
    return max(abs(test.low), abs(test.high)) / margin if math.isfinite(test.low) else math.nan


def equal_compute_caveats(eq: pd.DataFrame, col: str, family: pd.DataFrame, where: tuple[str, str],
                          rules: Rules = RULES) -> str:
    """What the equal-compute verdict on one dataset and metric rests on, in words: the FLOPs the arms spent (and the
    full set's share of them), whether an arm below Q = 1 is equal too (then the test does not separate Q; how close
    to the margin's edge it passed), the family the union of tests belongs to and what Holm's adjustment leaves, and
    (accuracy) the margin against conventional training's error, with the relative check. ``family`` is
    ``study2_analysis.equal_compute_family``; ``where``: this design's name and the metric in words."""
    metric = "loss" if col == "loss_verdict" else "acc"
    margin = rules.loss_margin if metric == "loss" else rules.acc_margin
    parts = [f"The arms spent {_span(eq['flops_ratio'], lambda x: f'{x:.2f}')}× the conventional arm's training FLOPs"
             + (f", {_span(100 * eq['full_set_share'], lambda x: f'{x:.0f}')} % of it on the full set"
                if "full_set_share" in eq and eq["full_set_share"].notna().any() else "")
             + ": at equal compute, so no arm can show a saving"]
    low_equal = eq[(eq["Q"] < 1) & (eq[col] == "equal")]
    for _, r in low_equal.iterrows():
        used = margin_used(r[metric], margin)
        edge = (f", {100 * (margin - max(abs(r[metric].low), abs(r[metric].high))):.3f} points inside it"
                if metric == "acc" else "")
        parts.append(f"{arm_text(r['fraction'])} at Q = {r['Q']:.2g} < 1 is equal too (its interval uses "
                     f"{100 * used:.0f} % of the margin{edge}): at equal compute the test does not separate Q")
    if len(family):
        here = family[(family["design"] == where[0]) & (family["metric"] == where[1])]
        parts.append(f"the claim's rule (reproduced if any arm is equal) is a union of tests, one family of "
                     f"{len(family)} equal-compute tests (every dataset, arm and metric): unadjusted "
                     f"{int((family['verdict'] == 'equal').sum())} of them are equal, "
                     f"{int(family['equal_after_holm'].sum())} after Holm's adjustment over the family; here "
                     f"{int(here['equal_after_holm'].sum())} of {len(here)} arms stay equal after it")
    if metric == "acc" and "reference_error" in eq:
        error = float(eq["reference_error"].mean())
        rel = eq["error_ratio"]
        parts.append(f"the {100 * margin:g}-point margin is {100 * margin / error:.0f} % of conventional training's "
                     f"test error here ({100 * error:.1f} %); with a relative margin instead (test error within "
                     f"±{100 * (math.exp(rules.loss_margin) - 1):.2g} % of conventional's; post hoc, our inference) "
                     f"{sum(t.verdict == 'equal' for t in rel)} of {len(rel)} arms are equal")
    return "; ".join(parts) + "."


def tenth_claim(arm_verdicts: list[str]) -> str:
    """"A tenth or less" over its arms: reproduced if some arm is; refuted only if every arm is; else not testable
    at this budget if some arm is, else inconclusive."""
    if "reproduced" in arm_verdicts:
        return "reproduced"
    if arm_verdicts and all(v == "refuted" for v in arm_verdicts):
        return "refuted"
    return "not testable at this budget" if "not testable at this budget" in arm_verdicts else "inconclusive"


def claims(analyses: dict[str, dict], titles: dict[str, str], family: pd.DataFrame | None = None) -> pd.DataFrame:
    """The claims table of study v2: one row per claim, dataset and metric, with the verdict its rule gives and the
    numbers behind it. ``analyses`` maps a dataset to ``analyse``'s result; ``family``, every equal-compute test
    with its Holm-adjusted p-value (``study2_analysis.equal_compute_family`` of the same analyses)."""
    rows, family = [], pd.DataFrame() if family is None else family

    def add(claim, source, dataset, metric, verdict, numbers):
        rows.append({"claim": claim, "source": source, "dataset": titles[dataset], "metric": metric,
                     "verdict": verdict, "numbers": numbers})

    for dataset, a in analyses.items():
        rules, by_arm = a["design"].rules, a["close_by_arm"]
        for metric, col in (("training loss", "loss_verdict"), ("test accuracy", "acc_verdict")):
            for row in closeness_claims(by_arm, col, rules):
                add(*row[:2], dataset, metric, *row[2:])
            eq = a["equal_by_arm"]
            add(EQUAL_CLAIM, "abstract", dataset, metric, equal_compute_verdict(eq[col].tolist()),
                "; ".join(f"{arm_text(r['fraction'])}: {r[col]} ({_interval_text(r, col)})" for _, r in eq.iterrows())
                + f". {equal_compute_caveats(eq, col, family, (dataset, metric), rules)}")
            tenth = a["tenth"][a["tenth"]["metric"] == ("train_loss" if metric == "training loss" else "test_acc")]
            add("Compute to conventional quality reduced to a tenth or less", "abstract", dataset, metric,
                tenth_claim(tenth["verdict"].tolist()),
                "; ".join(f"{arm_text(r['fraction'])}: {_cost_text(r['ratio'], r['low'], r['high'], r['each'])} "
                          f"({r['verdict']})"
                          for _, r in tenth.iterrows()))
        qf = a["q_or_fraction"]
        if a["design"].widths:
            for _, r in qf.iterrows():
                add("Q, not the fraction, decides how close a subset minimum is", "our inference", dataset,
                    r["metric"], r["verdict"], q_or_fraction_numbers(r))
            for _, r in a.get("q_or_fraction_steps", pd.DataFrame()).iterrows():
                add(Q_STEPS_CLAIM, "our inference", dataset, r["metric"], r["verdict"],
                    q_or_fraction_numbers(r, "subset phases") + f". {Q_STEPS_CAVEAT}")
        if len(a.get("memorisation_by_dataset", ())):
            claim, source, verdict, numbers = memorisation_claim(a["memorisation_by_dataset"].iloc[0])
            add(claim, source, dataset, "subset and full-set loss", verdict, numbers)
    return pd.DataFrame(rows)


Q_OR_FRACTION_COLUMNS = {"metric": "metric", "at_equal_q": "mismatch at equal Q",
                         "at_equal_fraction": "mismatch at equal fraction", "widths": "widths", "verdict": "verdict"}
Q_OR_FRACTION_DIGITS = {"at_equal_q": 3, "at_equal_fraction": 3}


def q_or_fraction_numbers(row: pd.Series, what: str = "converged pairs") -> str:
    """The numbers behind a Q-or-fraction verdict (a row of ``q_or_fraction``), or why there are none."""
    widths = int(row["widths"])
    if not widths:
        return f"no {what}"
    if not (math.isfinite(row["at_equal_q"]) and math.isfinite(row["at_equal_fraction"])):
        return f"the {widths} widths with {what} share no range of Q or of the fraction"
    return (f"mismatch at equal Q {row['at_equal_q']:.3g} vs at equal fraction {row['at_equal_fraction']:.3g} "
            f"({widths} widths with {what})")


Q_STEPS_CLAIM = "Q or the fraction, read at equal steps (not at minima)"
Q_STEPS_CAVEAT = ("Caveat: each subset phase where it ended, against the longest conventional run of its width and "
                  "seed after as many steps; neither needs to have converged, so this is not the plan's question 1")


def memorisation_text(by_dataset: pd.Series) -> str:
    """One dataset's memorisation in words (a row of ``study2_analysis.memorisation_by_dataset``)."""
    r = by_dataset
    if not r["memorised"]:
        return (f"no subset phase memorised its subset (none of {r['phases']} reached a subset loss of "
                f"{_sci(RULES.memorised_nats)} nats)")
    qs = ", ".join(f"{q:.2g}" for q in r["memorised_Q"])
    head = (f"{r['memorised']} of {r['phases']} subset phases memorised their subset (subset loss ≤ "
            f"{_sci(RULES.memorised_nats)} nats, at most {r['subset_loss_max']:.1e}) at Q = {qs}, leaving a "
            f"full-set loss of {_span(pd.Series([r['full_loss_low'], r['full_loss_high']]), significant)} nats")
    if r["stopped"] == "stopped":
        return f"{head}; from Q = {r['stopped_at_Q']:.2g} up (the next Q run) no subset was memorised"
    return f"{head}; memorised up to the largest Q run ({r['largest_Q_run']:.2g})"


def memorisation_claim(r: pd.Series) -> tuple[str, str, str, str]:
    """The memorisation finding as a claims row (claim, source, verdict, numbers), from a row of
    ``study2_analysis.memorisation_by_dataset``."""
    verdict = "memorised" if r["memorised"] else "not memorised"
    return ("A subset phase memorises its subset (finding)", "our inference", verdict, memorisation_text(r))


WIDTH_COLOURS = {"cnn-simple": "#1f4e9c", "cnn-simple-narrow": "#2a9d8f", "cnn-simple-w3": "#e76f51",
                 "cifar-cpu": "#1f4e9c", "cifar-cpu-narrow": "#2a9d8f", "cifar-cpu-w8": "#e76f51"}
"""One colour per width on every v2 page: the same colour for the same place in its family (widest, middle,
narrowest), whatever the dataset."""


def _sci(x: float) -> str:
    """A small threshold as prose writes it: '1e-6', not '1e-06'."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


CLAIM_GROUP_COLUMNS = {"where": "dataset, metric", "verdict": "verdict", "numbers": "numbers behind it"}
"""A claim's own table on the claims page (``claims_by_claim``): three columns, so that it fits a phone."""


def claims_by_claim(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The claims table split by claim, in its order: (the claim with its source, its rows). One table of four
    columns was wider than a phone's page."""
    view = claims_view(table)
    return [(claim, rows) for claim, rows in view.groupby("claim_text", sort=False)]
