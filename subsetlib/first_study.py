"""The first study's claims, read from its stored runs, and what study v2 changed: each first-study verdict next to
study v2's on the same claim and dataset, with the reason the two rules differ. Its phases had not reached minima,
so its verdicts are withdrawn; this module keeps them comparable.
"""

from pathlib import Path

import pandas as pd

from subsetlib import accounting, claims, data, results, study
from subsetlib.studies import study_config
from subsetlib.study2_report import CLOSE_CLAIM, Q_CLAIM


def claims_of(study_name: str, results_dir: str, cifar_results_dir: str, pages: dict[str, str],
              device: str = "auto") -> dict:
    """The first study's claims table from its stored runs (a missing run would be trained: its grid stores them
    all), with what its claims page shows besides: the analyses per dataset, their budgets and every run read."""
    config = study_config(study_name)
    loaded = {dataset: data.load(dataset, device=device) for dataset in config.datasets}
    per_dataset = {dataset: study.analyse(*results.load_runs(results_dir,
                                                             study.hypothesis_arms(ds, config, results_dir)))
                   for dataset, ds in loaded.items()}
    budgets = dict.fromkeys(config.datasets, config.scale_text())
    if cifar_results_dir and (Path(cifar_results_dir) / "runs").is_dir():  # its own grid, grids/study-cifar.yaml
        cifar = study.analyse(results.load(cifar_results_dir), results.load(cifar_results_dir, "curves"))
        dataset = cifar["runs"]["dataset"].iloc[0]
        per_dataset[dataset], budgets[dataset] = cifar, study.scale_of_runs(cifar["runs"])
    # The switch points (on the first dataset) join the time-to-target verdicts: the shortest subset phase decides
    # whether "a tenth" was possible at all in this design.
    first = config.datasets[0]
    ds = loaded[first]
    best = study.best_fraction(per_dataset[first]["costs"])
    switch_runs, switch_curves = results.load_runs(results_dir, study.switch_arms(ds, config, best, results_dir))
    switch_costs = accounting.time_to_target(switch_runs, switch_curves, per_dataset[first]["goals"])
    widths = []
    for model in (config.model, config.narrow_model):
        r, c = results.load_runs(results_dir, study.hypothesis_arms(ds, config, results_dir, model))
        widths.append(study.subset_minimum(r, c, study.conventional_plateau(r, c)))
    comparison = study.q_or_fraction(pd.concat(widths, ignore_index=True))
    table = claims.claims_table(per_dataset, budgets, switch_costs, comparison, config, pages)
    runs = pd.concat([d["runs"] for d in per_dataset.values()] + [switch_runs], ignore_index=True)
    return {"table": table, "per_dataset": per_dataset, "budgets": budgets, "runs": runs}


# The first study's claim -> study v2's claim on the same question, and why a verdict can move between the two.
SAME_QUESTION = {
    "The full-set loss minimum is close to its subsets' minima": (
        CLOSE_CLAIM, "Study v2 calls an arm close only where its subset phase and its seed's conventional run both "
        "passed the convergence rule and the paired gap lies inside the margin; the first study read phases that "
        "had not reached a minimum."),
    "A subset is representative once Q sufficiently exceeds 1": (
        Q_CLAIM, "The first study's rule asked only that the loss ratio fall as Q rises, which under-trained arms "
        "pass; study v2 needs an arm with Q ≥ 3 that is close, and none with Q < 1."),
    "Q, not the fraction of the set, decides the gap": (
        "Q, not the fraction, decides how close a subset minimum is", "The first study read the loss ratio alone, "
        "on phases that had not converged; study v2 gives a verdict per metric, on converged pairs only."),
    "Subset pretraining then fine-tuning equals conventional results": (
        "Results equal to conventional training (equal compute)", "The first study asked whether arms reached "
        "accuracy targets set from conventional runs that had not converged, on fine-tuning budgets shorter than "
        "the conventional arm's own time to the target; study v2 pairs seeds at equal compute and calls two arms "
        "equal only when the interval of their difference lies inside the margin."),
    "Compute reduced to a tenth or less, as cost to a target": (
        "Compute to conventional quality reduced to a tenth or less", "Study v2 sets the target from converged "
        "conventional runs and calls an arm refuted only if its fine-tuning had at least the conventional arm's own "
        "time to the target; otherwise the budget decides."),
}
NOT_ASKED_AGAIN = {
    "Subset pretraining saves compute at all": "Not asked again: study v2 asks it at equal compute (the row on "
    "results equal to conventional training). The first study's 'refuted' was set by budgets shorter than the "
    "conventional arm's own time to the target.",
    "Compute reduced to a tenth or less, as fixed budgets (epochs × set size)": "Not asked again: study v2's "
    "fixed-budget comparison is the equal-compute one.",
    "Subsets at target Q 1.5, 2 and 3 suffice on MNIST": "Not asked again: an auto-generated summary's advice to "
    "its reader, not an experiment the paper reports; study v2's subsets span Q from below 1 to above 3.",
}
CHANGES_COLUMNS = {"claim": "claim (first study's words)", "first": "first study", "v2": "study v2",
                   "why": "why it changed"}


def _v2_verdict(rows: pd.DataFrame) -> str:
    """One verdict if every metric agrees, else each metric's: 'training loss: reproduced; test accuracy: …'."""
    if rows["verdict"].nunique() == 1:
        return rows["verdict"].iloc[0]
    return "; ".join(f"{m}: {v}" for m, v in zip(rows["metric"], rows["verdict"], strict=True))


def verdict_changes(first: pd.DataFrame, v2: pd.DataFrame, pending: list[str]) -> pd.DataFrame:
    """Each first-study verdict (``first``: ``claims.claims_table``) next to study v2's on the same question and
    dataset (``v2``: ``study2_progress.claims_so_far``; ``pending``: the titles of the datasets not in yet), its
    ``status`` (changed, stayed, not asked again, not in yet) and why it changed. A claim run in neither study
    stayed 'not run'."""
    rows = []
    for _, row in first.iterrows():
        claim, dataset = row["question"], row["dataset"].removesuffix(" with augmentation")
        note = " The first study ran it with augmentation, study v2 without." if dataset != row["dataset"] else ""
        if claim in SAME_QUESTION:
            v2_claim, why = SAME_QUESTION[claim]
            same = v2[(v2["claim"] == v2_claim) & (v2["dataset"] == dataset)]
            verdict = _v2_verdict(same) if len(same) else "not in yet" if dataset in pending else "not run"
        elif claim in NOT_ASKED_AGAIN:
            verdict, why = "not asked again", NOT_ASKED_AGAIN[claim]
        else:  # run in neither study
            verdict, why = claims.NOT_RUN, ""
        status = ("not in yet" if verdict == "not in yet" else "not asked again" if verdict == "not asked again"
                  else "stayed" if verdict.startswith(row["verdict"]) else "changed")  # '… (no converged pairs)'
        why = {"stayed": "the same verdict", "not in yet": "its runs are not all stored yet",
               "changed": why + note}.get(status, why)
        rows.append({"claim": row["claim"], "dataset": row["dataset"], "first": row["verdict"], "v2": verdict,
                     "status": status, "why": why})
    return pd.DataFrame(rows)


def changes_sentence(changes: pd.DataFrame) -> str:
    """How the first study's verdicts fared, in one sentence, counted from ``verdict_changes``."""
    n = changes["status"].value_counts()
    pending = (f"; {n['not in yet']} wait{'s' if n['not in yet'] == 1 else ''} for study v2's runs that are not all "
               "stored yet" if n.get("not in yet") else "")
    return (f"Of the first study's {len(changes)} verdicts, {n.get('changed', 0)} changed, {n.get('stayed', 0)} "
            f"stayed and {n.get('not asked again', 0)} are not asked again{pending}.")
