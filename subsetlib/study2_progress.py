"""What the progress page shows while study v2's grids run, training nothing: the runs stored so far, the ladders,
the designs whose every run is stored (with their analyses), and the second-order track's state.
"""

from pathlib import Path

import pandas as pd

from subsetlib import ladders, lbfgs_study, results, study2_analysis, study2_answer, study2_figures, study2_report
from subsetlib.registry import dataset_title
from subsetlib.studies import design
from subsetlib.study2 import stored


def so_far(design_dirs: dict[str, str], track: str | None, track_dir: str, device: str = "auto") -> dict:
    """What the progress page shows while the grids run, training nothing: every stored run of the designs (each
    design's results folder in ``design_dirs``), the ladders so far, the analyses of the designs whose every run is
    stored (``complete``), the titles of the others (``pending``), and the second-order track's analysis once every
    run of it is stored (``track``, else None; meanwhile ``track_progress``: a bullet on its runs so far and its
    scale). ``track`` None: no second-order track."""
    folders = sorted({folder for folder in design_dirs.values() if Path(folder, "runs").is_dir()})
    runs = results.load(folders) if folders else pd.DataFrame(columns=["dataset"])
    curves = results.load(folders, "curves") if folders else pd.DataFrame()
    titles = {design(name).dataset: dataset_title(design(name).dataset) for name in design_dirs}
    complete = {}
    for name, folder in design_dirs.items():
        if design(name).dataset in set(runs["dataset"]) and (analysis := stored(name, folder, device)) is not None:
            complete[name] = analysis
    track_stored = bool(track) and Path(track_dir, "runs").is_dir()
    track_analysis = lbfgs_study.stored(track, track_dir, device) if track_stored else None
    track_progress = None
    if track_stored and track_analysis is None:  # some of its runs are in: what they say so far, and its scale
        plan = lbfgs_study.lbfgs_design(track)
        phases = lbfgs_study.phase_convergence(results.load(track_dir), plan.rules)
        if len(phases) and (phases["protocol"] == "lbfgs-full").any():  # the folder may hold other runs only
            track_progress = (lbfgs_study.progress_bullet(phases, plan), plan.scale_text())
    return {"runs": runs, "pairs": ladders.progress(runs, curves) if len(runs) else pd.DataFrame(),
            "titles": titles, "complete": complete,
            "pending": [titles[design(name).dataset] for name in design_dirs if name not in complete],
            "track": track_analysis, "track_progress": track_progress}


def claims_so_far(now: dict) -> pd.DataFrame:
    """The claims table of what is in (``so_far``'s designs whose every run is stored, and the second-order track
    once all its runs are): one row per claim, dataset and metric, with its verdict and the numbers behind it."""
    family = study2_analysis.equal_compute_family(now["complete"]) if now["complete"] else None
    tables = [study2_report.claims(now["complete"], now["titles"], family)] if now["complete"] else []
    tables += [lbfgs_study.claims(now["track"])] if now["track"] else []
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(study2_report.CLAIMS_FIELDS))


def front_figure(now: dict):
    """The front page's figure, from ``so_far``: the first design whose every run is stored, at equal compute; else
    the second-order track once all its runs are; else None (the page shows the ladders so far instead). Returns
    (figure, caption, data) for ``present.show``."""
    first = next(iter(now["complete"].values()), None)
    if first is not None:
        return study2_figures.equal_compute(first)
    return study2_figures.lbfgs_track(now["track"]) if now["track"] else None


def answer(now: dict, figure: str | None) -> str:
    """The front page's answer from ``so_far``, with ``figure`` (HTML) in it."""
    track = lbfgs_study.front_answer(now["track"]) if now["track"] else None
    return study2_answer.answer(now["runs"], now["pairs"], now["titles"], figure, now["complete"], track,
                                now["pending"], now["track_progress"])


FRONT_HEADERS = {"claim": "claim (source)", "verdict": "verdict (datasets and metrics)", "evidence": "evidence"}


def short_answer(now: dict) -> str:
    """Study v2's answer in a few plain sentences, from ``so_far``'s designs whose every run is stored."""
    family = study2_analysis.equal_compute_family(now["complete"]) if now["complete"] else None
    return study2_answer.short_answer(now["complete"], now["titles"], now["track"], family)


def front_answer(now: dict, figure: str | None) -> str:
    """Study v2's short answer for the front page's slot (``front_page.write_answer``): its plain sentences, then
    ``figure`` (HTML, on one line so that Markdown passes it through), then the claims table in three columns with
    the pages that hold each claim's evidence, and where the rest is."""
    text = short_answer(now)
    if now["pending"] or (now["track_progress"] is not None):
        waiting = [*now["pending"], *(["the second-order track"] if now["track_progress"] else [])]
        text += f" Not in yet: {', '.join(waiting)}."
    parts = [f"{text} *(Source: study v2's stored runs and its plan's rules.)*"]
    if figure:
        parts.append(figure.replace("\n", " "))
    claims = claims_so_far(now)
    if len(claims):
        parts.append(study2_answer.markdown_table(study2_answer.front_table(claims), FRONT_HEADERS))
    parts.append("Every claim per dataset and metric, with the numbers behind it: the "
                 "[claims page](experiments/study-v2/00-0-claims.ipynb); the answer question by question, and where "
                 "each run stands: [study v2 so far](experiments/study-v2/00-progress.ipynb).")
    return "\n\n".join(parts)
