"""The sentences of the study's pages, from its tables (no torch, no science: the verdicts are already there)."""

import pandas as pd


def certified_text(cell: pd.DataFrame) -> str:
    """How many of a cell's phases the certificate accepted, and what happened to the others."""
    if cell.empty:
        return "No run of this cell is stored yet."
    n, ok, capped = len(cell), int(cell["certified"].sum()), int(cell["on_budget"].sum())
    others = n - ok - capped
    text = f"**{ok} of {n} phases are certified minima.**"
    if capped:
        text += f" {capped} stopped on the call cap (not certified)."
    if others:
        text += (f" {others} stopped before the cap without passing the certificate (a gradient above the tolerance "
                 "or a direction of negative curvature): not minima, and no verdict reads them.")
    return text


def _p(p: float) -> str:
    return f"P = {int(p):,}"


def frontier_text(fronts: pd.DataFrame) -> str:
    """Per objective: from which Q (and fraction) each width's subset minima are close, or that none is."""
    from subsetlib.certified.analysis import objective_text
    from subsetlib.registry import dataset_title

    lines = []
    for (dataset, loss, l2), g in fronts.groupby(["dataset", "loss", "l2"], sort=False):
        parts = []
        for _, r in g.sort_values("p").iterrows():
            if r["frontier_q"] == r["frontier_q"]:  # not NaN
                parts.append(f"from Q = {r['frontier_q']:g} ({r['frontier_fraction']:.0%} of the set) at {_p(r['p'])}")
            else:
                parts.append(f"at no Q run at {_p(r['p'])}")
        lines.append(f"- *{dataset_title(dataset)}, {objective_text(loss, l2)}*: close {'; '.join(parts)}.")
    return "\n".join(lines)


def governs_text(table: pd.DataFrame) -> str:
    """Which of Q and the fraction lines the widths up, per objective and metric."""
    from subsetlib.certified.analysis import objective_text

    lines = []
    for (loss, l2), g in table.groupby(["loss", "l2"], sort=False):
        said = "; ".join(f"{r['metric']}: {r['verdict']} ({r['at_equal_q']:.3g} at equal Q, "
                         f"{r['at_equal_fraction']:.3g} at equal fraction)" for _, r in g.iterrows())
        lines.append(f"- *{objective_text(loss, l2)}*: {said}.")
    return "\n".join(lines)


def verdict_counts(table: pd.DataFrame, column: str = "verdict") -> str:
    """'12 close, 3 not close, 2 inconclusive' from a verdict column (the seed counts in 'inconclusive at 5 seeds'
    and 'not reached in 2 of 5 seeds' dropped, so that like verdicts count together)."""
    kinds = table[column].str.replace(r" (at|in) \d+( of \d+)? seeds?$", "", regex=True)
    return ", ".join(f"{n} {word}" for word, n in kinds.value_counts().items())


def _range(values, fmt: str = "{:g}") -> str:
    values = sorted(v for v in values if v == v)
    if not values:
        return ""
    lo, hi = fmt.format(values[0]), fmt.format(values[-1])
    return lo if lo == hi else f"{lo}–{hi}"


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole}"


def _per_l2(table: pd.DataFrame, count) -> str:
    """'at λ = 0.0001: …; at λ = 0.01: …' — ``count(part)`` for each λ's part of a table."""
    return "; ".join(f"at λ = {l2:g} {count(part)}" for l2, part in table.groupby("l2", sort=True))


def short_answer(fronts: pd.DataFrame, governs: pd.DataFrame, same: pd.DataFrame, costs: pd.DataFrame,
                 prediction: pd.DataFrame, bullets: bool = True) -> str:
    """The study's answer: one lead sentence (the front page's), then, with ``bullets``, a bullet per question; every
    number counted from the tables and split by λ where the verdicts differ with it."""
    from subsetlib.certified.rules import Verdict

    reached = fronts[fronts["frontier_q"].notna()]
    tight = costs[costs["target"].str.startswith("1.01")]
    worst = costs[costs["target"].str.startswith("the worst")]
    tenth = int((costs["verdict"] == Verdict.TENTH).sum())
    lead = ((f"**At certified minima, a subset's minimum came close to the full set's only for large subsets**, from "
             f"Q = {_range(reached['frontier_q'])} ({_range(reached['frontier_fraction'], '{:.0%}')} of the set), in "
             f"{_share(len(reached), len(fronts))} dataset–objective–width lines")
            if len(reached) else f"**At certified minima, no subset's minimum came close to the full set's** "
                                 f"({len(fronts)} dataset–objective–width lines)")
    lead += (f"; reaching the full-set minimum's level through a subset cost a tenth or less of training from scratch "
             f"in {_share(tenth, len(costs))} arm–target pairs.")
    if not bullets:
        return lead

    def close_lines(part: pd.DataFrame) -> str:
        ok = part[part["frontier_q"].notna()]
        return f"{_share(len(ok), len(part))} lines" + (f" (from Q = {_range(ok['frontier_q'])})" if len(ok) else "")

    def cost_counts(part: pd.DataFrame) -> str:
        said = part["verdict"]
        return (f"a tenth or less in {_share(int((said == Verdict.TENTH).sum()), len(part))}, cheaper in "
                f"{int((said == Verdict.SAVES).sum())}, dearer in {int((said == Verdict.COSTS_MORE).sum())}, "
                f"not reached in {int(said.str.startswith(Verdict.NOT_REACHED).sum())}")

    def holds(part: pd.DataFrame) -> str:
        ok = part[part["verdict"] == Verdict.HOLDS]
        return f"{_share(len(ok), len(part))} arms" + (f" (Q = {_range(ok['q'])})" if len(ok) else "")

    loss = governs[governs["metric"].str.startswith("log") & ~governs["verdict"].str.startswith("not testable")]
    lines = [
        f"- *Close* (full-set objective within 5 % of the minimum's, test accuracy within 10 % of its error): "
        f"{_per_l2(fronts, close_lines)}.",
        f"- *Q or the fraction* (which lines the widths up): Q in "
        f"{_share(int((loss['verdict'] == 'Q governs').sum()), len(loss))} objectives, the fraction in "
        f"{int((loss['verdict'] == 'the fraction governs').sum())}." if len(loss) else "",
        f"- *Fine-tuning* from a subset minimum found its seed's own scratch minimum in "
        f"{_share(int(same['same'].sum()), int(same['pairs'].sum()))} seeds; "
        f"{_share(int((same['loss_verdict'] == Verdict.EQUAL).sum()), len(same))} fine-tuned arms ended as good as "
        "from scratch.",
        f"- *Cost* through the subset, in FLOPs: to 1.01 × the seed's scratch minimum {_per_l2(tight, cost_counts)}; "
        f"to the worst scratch minimum {_per_l2(worst, cost_counts)}.",
        f"- *The classical prediction* tr(H⁻¹Σ)/(2K) held {_per_l2(prediction, holds)}.",
    ]
    return lead + "\n\n" + "\n".join(line for line in lines if line)


CLAIM_COLUMNS = {"claim": "claim (source)", "verdict": "what the runs say", "evidence": "evidence"}


def claims(fronts: pd.DataFrame, governs: pd.DataFrame, same: pd.DataFrame, costs: pd.DataFrame,
           prediction: pd.DataFrame, pages: dict[str, str]) -> pd.DataFrame:
    """Claim | verdict | evidence (a link to the page), one row per claim, verdicts counted from the tables."""
    reached = fronts[fronts["frontier_q"].notna()]
    rows = [
        {"claim": "The full set's minimum is close to its subsets' minima (abstract)",
         "verdict": (f"close from Q = {_range(reached['frontier_q'])} in {_share(len(reached), len(fronts))} lines"
                     if len(reached) else f"close at no Q run ({len(fronts)} lines)"),
         "evidence": pages["minima"]},
        {"claim": "A subset is representative once Q sufficiently exceeds 1 (abstract)",
         "verdict": verdict_counts(governs[governs["metric"].str.startswith("log")]), "evidence": pages["minima"]},
        {"claim": "Fine-tuning from the subset gives the result of conventional training (abstract)",
         "verdict": verdict_counts(same, "loss_verdict"), "evidence": pages["finetune"]},
        {"claim": "Compute reduced to a tenth or less (abstract)",
         "verdict": "to 1.01 × the seed's scratch minimum: "
                    + verdict_counts(costs[costs["target"].str.startswith("1.01")]), "evidence": pages["finetune"]},
        {"claim": "Excess ≈ tr(H⁻¹Σ)/(2K), i.e. M/(2Q) when tr(H⁻¹Σ) ≈ P (our inference)",
         "verdict": verdict_counts(prediction), "evidence": pages["prediction"]},
    ]
    return pd.DataFrame(rows)


def claims_markdown(table: pd.DataFrame) -> str:
    """The claims table as Markdown (the front page is Markdown): evidence as links relative to book/."""
    lines = ["| claim (source) | what the runs say | evidence |", "|---|---|---|"]
    lines += [f"| {r['claim']} | {r['verdict']} | {r['evidence']} |" for _, r in table.iterrows()]
    return "\n".join(lines)


def trust_text(coverage: pd.DataFrame, prediction: pd.DataFrame) -> str:
    """Where the prediction can be trusted, in one sentence per λ: the pilots' coverage against the nominal level,
    and the Q range where the study's rule says it holds with no breakdown above."""
    from subsetlib.certified.rules import trusted

    lines = []
    for l2, part in prediction.groupby("l2", sort=True):
        q = trusted(part["q"].tolist(), part["verdict"].tolist())
        cov = coverage[coverage["objective"].str.endswith(f"λ = {l2:g}")]
        covered = (f"the pilots' 90 % intervals covered {cov['coverage'].min():.0%}–{cov['coverage'].max():.0%} of "
                   "the measured excesses" if len(cov) else "no pilot is stored")
        where = f"trust it from Q = {q:g}" if q == q else "no Q range where it can be trusted"
        lines.append(f"- *λ = {l2:g}*: {where}; {covered}.")
    return "\n".join(lines)
