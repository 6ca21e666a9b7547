"""Every verdict of the study at once, for the pages that gather them (its answer page, study v2's claims page)."""

import os

import pandas as pd

from subsetlib.certified import analysis, runs, words
from subsetlib.errors import UserError


def verdicts(results_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The stored arms and curves and each question's table: closeness, frontiers, Q or the fraction, the same
    minimum, costs (per seed and verdicts) and the prediction."""
    arms, curves = runs.load(results_dir)
    close = analysis.closeness(arms)
    per_seed = analysis.costs(arms, curves)
    return {"arms": arms, "curves": curves, "close": close, "fronts": analysis.frontiers(close),
            "governs": analysis.q_or_fraction(arms), "same": analysis.same_minimum(arms), "per_seed": per_seed,
            "costs": analysis.cost_verdicts(per_seed), "prediction": analysis.prediction(arms)}


def answer(v: dict[str, pd.DataFrame], bullets: bool = True) -> str:
    """The lead sentence (the front page's, ``bullets=False``), then one bullet per question."""
    return words.short_answer(v["fronts"], v["governs"], v["same"], v["costs"], v["prediction"], bullets)


def claims(v: dict[str, pd.DataFrame], designs: list[str], prefix: str = "", suffix: str = ".html") -> str:
    """The claims table in Markdown, its evidence linked from a page ``prefix`` away from the study's pages (a
    page's output links to .html, a Markdown chapter to .ipynb)."""
    table = words.claims(v["fronts"], v["governs"], v["same"], v["costs"], v["prediction"],
                         analysis.evidence_links(designs, prefix, suffix))
    return words.claims_markdown(table)


def claims_or_waiting(results_dir: str | os.PathLike, designs: list[str], prefix: str) -> str:
    """The claims table, or one sentence where none of the study's runs is stored in ``results_dir``."""
    try:
        return claims(verdicts(results_dir), designs, prefix)
    except UserError:
        return f"No run of the study at certified minima is stored in `{results_dir}` yet."


def of_design(design_name: str, results_dir: str | os.PathLike,
              make_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One design's stored arms and the curves; ``make_missing`` first runs what is not stored (CI's smoke pages,
    which start from an empty folder; the book's pages only load)."""
    if make_missing:
        runs.train_design(design_name, results_dir)
    arms, curves = runs.load(results_dir)
    return analysis.of_design(arms, design_name), curves
