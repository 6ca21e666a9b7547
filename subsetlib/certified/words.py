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
    """'12 close, 3 not close, 2 inconclusive at 5 seeds' from a verdict column."""
    counts = table[column].value_counts()
    return ", ".join(f"{n} {word}" for word, n in counts.items())


def _range(values, fmt: str = "{:g}") -> str:
    values = sorted(v for v in values if v == v)
    if not values:
        return ""
    lo, hi = fmt.format(values[0]), fmt.format(values[-1])
    return lo if lo == hi else f"{lo}–{hi}"


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole}"


def short_answer(fronts: pd.DataFrame, governs: pd.DataFrame, same: pd.DataFrame, costs: pd.DataFrame,
                 prediction: pd.DataFrame) -> str:
    """The study's answer in a few plain sentences, every number counted from the tables (front page)."""
    from subsetlib.certified.rules import Verdict

    lines = len(fronts)
    reached = fronts[fronts["frontier_q"].notna()]
    close = (f"**A subset's minimum is close to the full set's from Q = {_range(reached['frontier_q'])}** "
             f"({_share(len(reached), lines)} dataset–objective–width lines; close means a full-set objective within "
             "5 % and a test accuracy within 10 % of the error)." if len(reached) else
             f"**No subset's minimum was close to the full set's** at any Q run ({lines} lines).")
    loss = governs[governs["metric"].str.startswith("log")]
    q_wins = int((loss["verdict"] == "Q governs").sum())
    f_wins = int((loss["verdict"] == "the fraction governs").sum())
    order = (f"Against the width, Q lined the closeness up in {_share(q_wins, len(loss))} objectives and the "
             f"fraction in {f_wins}.")
    seeds, found = int(same["pairs"].sum()), int(same["same"].sum())
    as_good = int((same["loss_verdict"] == Verdict.EQUAL).sum())
    tuned = (f"Fine-tuned on the full set, a subset minimum led back to its seed's own scratch minimum in "
             f"{_share(found, seeds)} seeds; {_share(as_good, len(same))} fine-tuned arms ended as good as from "
             "scratch.")
    tight = costs[costs["target"].str.startswith("1.01")]
    tenth = int((tight["verdict"] == Verdict.TENTH).sum())
    cheaper = int((tight["verdict"] == Verdict.SAVES).sum())
    dearer = int((tight["verdict"] == Verdict.COSTS_MORE).sum())
    cost = (f"**Reaching 1.01 × the full-set minimum through the subset cost a tenth or less of training from "
            f"scratch in {_share(tenth, len(tight))} arms**, cheaper in {cheaper} more and dearer in {dearer} "
            "(FLOPs, subset phase included).")
    holds = prediction[prediction["verdict"] == Verdict.HOLDS]
    pred = (f"The classical prediction tr(H⁻¹Σ)/(2K) of the excess held in {_share(len(holds), len(prediction))} "
            f"arms" + (f", at Q = {_range(holds['q'])}." if len(holds) else "."))
    return " ".join([close, order, tuned, cost, pred])


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
         "verdict": verdict_counts(costs[costs["target"].str.startswith("1.01")]), "evidence": pages["finetune"]},
        {"claim": "Excess ≈ tr(H⁻¹Σ)/(2K), i.e. M/(2Q) when tr(H⁻¹Σ) ≈ P (our inference)",
         "verdict": verdict_counts(prediction), "evidence": pages["prediction"]},
    ]
    return pd.DataFrame(rows)


def claims_markdown(table: pd.DataFrame) -> str:
    """The claims table as Markdown (the front page is Markdown): evidence as links relative to book/."""
    lines = ["| claim (source) | what the runs say | evidence |", "|---|---|---|"]
    lines += [f"| {r['claim']} | {r['verdict']} | {r['evidence']} |" for _, r in table.iterrows()]
    return "\n".join(lines)
