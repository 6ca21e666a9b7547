"""The claims table: each claim, where it comes from, and a verdict computed by a rule fixed before the runs.

Sources: "abstract" (the paper's own words), "secondary summary" (what summaries of the paper report; its tables
could not be read) and "our inference". Verdicts: reproduced, partly, refuted, not testable at this budget, not run.
A verdict that the budget decides is "not testable at this budget", never "refuted". Each rule is a plain function
of the tables made by ``subsetlib.study`` and is unit-tested on hand-made tables.
"""

from dataclasses import dataclass

import pandas as pd

from subsetlib.accounting import main_target
from subsetlib.present import dataset_title
from subsetlib.studies import StudyConfig
from subsetlib.study import PLAN, Plan

REPRODUCED, PARTLY, REFUTED, NOT_TESTABLE, NOT_RUN = (
    "reproduced", "partly", "refuted", "not testable at this budget", "not run")


@dataclass(frozen=True)
class Verdict:
    verdict: str
    why: str  # the numbers behind it, in a sentence


def subset_minimum_close(minima: pd.DataFrame, plan: Plan = PLAN) -> Verdict:
    """"The loss minimum of the training set is close to the minima of its subsets" (abstract), judged on arms with
    Q ≥ plan.q_high whose subset phase plateaued in most seeds: close (the plan's bounds) in every seed of every such
    arm → reproduced; in some → partly; in none → refuted. No such arm → not testable."""
    high = minima[minima["Q"] >= plan.q_high]
    if high.empty:
        return Verdict(NOT_TESTABLE, f"no subset arm with Q ≥ {plan.q_high:g} was run")
    arms = high.groupby("fraction").agg(Q=("Q", "first"), plateaued=("plateaued", "mean"), close=("close", "mean"),
                                        ratio=("loss_ratio", "mean"), seeds=("seed", "nunique"))
    settled = arms[arms["plateaued"] > 0.5]
    if settled.empty:
        return Verdict(NOT_TESTABLE, f"no arm with Q ≥ {plan.q_high:g} plateaued on its subset in most seeds")
    text = "; ".join(f"Q={row.Q:.3g}: loss {row.ratio:.2f}× lowest, close in {round(row.close * row.seeds)}/"
                     f"{row.seeds} seeds" for row in settled.itertuples())
    if (settled["close"] == 1).all():
        return Verdict(REPRODUCED, text)
    if (settled["close"] > 0).any():
        return Verdict(PARTLY, text)
    return Verdict(REFUTED, text)


def q_threshold(minima: pd.DataFrame, plan: Plan = PLAN) -> Verdict:
    """"A subset is representative when Q sufficiently exceeds unity" (abstract): arms with Q < 1 are never close
    and the gap shrinks as Q grows (mean loss ratio falls from the smallest to the largest Q). Both → reproduced;
    one → partly; neither → refuted; no arms on both sides of Q = 1 → not testable."""
    arms = minima.groupby("fraction").agg(Q=("Q", "first"), close=("close", "mean"), ratio=("loss_ratio", "mean"))
    below, above = arms[arms["Q"] < 1], arms[arms["Q"] >= 1]
    if below.empty or above.empty:
        return Verdict(NOT_TESTABLE, "no subset arms on both sides of Q = 1")
    arms = arms.sort_values("Q")
    none_below = bool((below["close"] == 0).all())
    shrinks = bool(arms["ratio"].is_monotonic_decreasing)
    text = (f"Q < 1 arms close in {(below['close'] > 0).sum()}/{len(below)}; loss ratio "
            f"{arms['ratio'].iloc[0]:.2f}× at Q={arms['Q'].iloc[0]:.2g} to {arms['ratio'].iloc[-1]:.2f}× at "
            f"Q={arms['Q'].iloc[-1]:.3g}, {'falling' if shrinks else 'not falling'} steadily with Q")
    return Verdict(REPRODUCED if none_below and shrinks else PARTLY if none_below or shrinks else REFUTED, text)


def q_governs(comparison: dict) -> Verdict:
    """Q rather than the fraction governs the gap (our inference from the abstract's use of Q): across two widths
    of one model family, the gap mismatch at equal Q is below 0.8× that at equal fraction → reproduced; above
    1.25× → refuted; in between → partly (neither clearly)."""
    if not comparison.get("testable"):
        return Verdict(NOT_TESTABLE, comparison.get("why", "not enough widths"))
    at_q, at_f = comparison["mismatch_at_equal_q"], comparison["mismatch_at_equal_fraction"]
    text = f"mean |Δ log loss ratio| between widths: {at_q:.2f} at equal Q, {at_f:.2f} at equal fraction"
    if at_q < 0.8 * at_f:
        return Verdict(REPRODUCED, text)
    if at_q > 1.25 * at_f:
        return Verdict(REFUTED, text)
    return Verdict(PARTLY, text)


def _reached_every_seed(costs: pd.DataFrame, label: str) -> pd.DataFrame:
    arms = costs[(costs["protocol"] != "conventional") & (costs["label"] == label) & (costs["Q"] > 1)]
    return arms.groupby(["protocol", "fraction"]).agg(Q=("Q", "first"), reached=("reached", "all"),
                                                      seeds=("seed", "nunique"), ratio=("examples_ratio", "mean"))


def equal_results(costs: pd.DataFrame, goals: pd.DataFrame) -> Verdict:
    """"Results equal to conventional training" (abstract): some arm with Q > 1 reaches the main targets (accuracy
    and training loss) in every seed within its budget → reproduced; reaches the loosest accuracy target in every
    seed → partly; neither → refuted."""
    main = goals[goals["main"]]
    loosest = goals[goals["metric"] == "test_acc"].sort_values("target").iloc[0]["label"]
    both = None
    for label in main["label"]:
        ok = _reached_every_seed(costs, label)["reached"]
        both = ok if both is None else both & ok
    if both is not None and both.any():
        names = ", ".join(f"1/{round(1 / f)}" for _, f in both[both].index)
        return Verdict(REPRODUCED, f"subsets {names} reached both main targets in every seed")
    loose = _reached_every_seed(costs, loosest)
    if loose["reached"].any():
        return Verdict(PARTLY, f"only the loosest target ({loosest}) was reached in every seed, by "
                       f"{int(loose['reached'].sum())} of {len(loose)} arms with Q > 1")
    return Verdict(REFUTED, "no arm with Q > 1 reached even the loosest accuracy target in every seed")


def tenth_time_to_target(costs: pd.DataFrame, plan: Plan = PLAN) -> Verdict:
    """"Computing expense reduced to a tenth or less" (abstract), as cost to reach the main accuracy target: the
    best arm (reached in every seed) has a mean examples ratio ≤ 0.1 → reproduced. Otherwise, if even the cheapest
    arm's subset phase alone cost more than a tenth of the conventional cost, the design could not show a tenth →
    not testable at this budget; else refuted."""
    label = main_target(costs)["label"].iloc[0]
    arms = _reached_every_seed(costs, label)
    conv = costs[(costs["protocol"] == "conventional") & (costs["label"] == label)]["epoch_equivalents"].mean()
    pre = costs[(costs["protocol"] != "conventional") & (costs["label"] == label)]["pre_cost"].min()
    good = arms[arms["reached"]]
    if not good.empty and good["ratio"].min() <= plan.tenth:
        return Verdict(REPRODUCED, f"best mean ratio {good['ratio'].min():.2f}")
    best = f"best mean ratio {good['ratio'].min():.2f}" if not good.empty else "no arm reached it in every seed"
    if pre > plan.tenth * conv:
        return Verdict(NOT_TESTABLE, f"{best}; the shortest subset phase alone cost {pre:.2g} epoch-equivalents, "
                       f"more than a tenth of the conventional run's {conv:.2g}")
    return Verdict(REFUTED, best)


def any_saving(costs: pd.DataFrame) -> Verdict:
    """Subset pretraining saves compute at all (our inference, the weaker form of the abstract's claim): some arm
    reaches the main accuracy target in every seed at a mean examples ratio below 1 with every seed below 1 →
    reproduced; mean below 1 only → partly; else refuted."""
    main = main_target(costs)
    arms = main[main["protocol"] != "conventional"]
    per_arm = arms.groupby(["protocol", "fraction"]).agg(
        all_reached=("reached", "all"), mean=("examples_ratio", "mean"), worst=("examples_ratio", "max"))
    per_arm = per_arm[per_arm["all_reached"]]
    if per_arm.empty:
        return Verdict(REFUTED, "no arm reached the main accuracy target in every seed")
    best = per_arm.sort_values("mean").iloc[0]
    text = f"best arm: mean ratio {best['mean']:.2f}, worst seed {best['worst']:.2f}"
    if (per_arm["worst"] < 1).any():
        return Verdict(REPRODUCED, text)
    return Verdict(PARTLY if best["mean"] < 1 else REFUTED, text)


# ---------------------------------------------------------------------------------------------------------------------
# The table


def study_title(dataset: str, runs: pd.DataFrame) -> str:
    """A dataset as the claims name it: its title, and whether its runs augmented it."""
    return dataset_title(dataset) + (" with augmentation" if runs["augment"].any() else "")


def claims_table(per_dataset: dict[str, dict], budgets: dict[str, str], switch_costs: pd.DataFrame,
                 comparison: dict, study: StudyConfig, pages: dict[str, str]) -> pd.DataFrame:
    """The claims table: one row per claim (claim, source, verdict, the numbers behind it, budget, evidence).

    ``per_dataset``: ``study.analyse`` per dataset, the study's own datasets first (the first one also carries the
    switch points ``switch_costs`` and the widths ``comparison``); ``budgets``: each dataset's budget in words;
    ``pages``: the evidence pages by key (a dataset, "widths", "baselines"), linked as HTML (the table is HTML)."""
    first = study.datasets[0]
    rows = []

    def link(key: str, text: str) -> str:
        return f'<a href="{pages[key].replace(".ipynb", ".html")}">{text}</a>' if key in pages else text

    def add(claim: str, source: str, verdict: Verdict | str, budget: str, evidence: str, dataset: str = "",
            detail: str = "") -> None:
        v = verdict if isinstance(verdict, Verdict) else Verdict(verdict, "")
        rows.append({"claim": f"{claim} ({', '.join(filter(None, (dataset, detail)))})" if dataset else claim,
                     "question": claim, "dataset": dataset, "source": source, "verdict": v.verdict,
                     "numbers": v.why, "budget": budget, "evidence": evidence})

    def title(dataset: str) -> str:
        return study_title(dataset, per_dataset[dataset]["runs"])

    def each(claim: str, source: str, rule) -> None:
        for dataset, d in per_dataset.items():
            add(claim, source, rule(dataset, d), budgets[dataset], link(dataset, title(dataset)), title(dataset))

    cost_with_switch = pd.concat([per_dataset[first]["costs"], switch_costs[switch_costs["protocol"] == "subset"]])
    each("The full-set loss minimum is close to its subsets' minima", "abstract",
         lambda _, d: subset_minimum_close(d["minima"]))
    each("A subset is representative once Q sufficiently exceeds 1", "abstract", lambda _, d: q_threshold(d["minima"]))
    add("Q, not the fraction of the set, decides the gap", "our inference", q_governs(comparison),
        f"{len(study.seeds)} seeds, {study.model} and {study.narrow_model}", link("widths", "widths"),
        dataset_title(first), "two widths")
    each("Subset pretraining then fine-tuning equals conventional results", "abstract",
         lambda _, d: equal_results(d["costs"], d["goals"]))
    switches = f"switch points {min(study.switch_steps):,}–{max(study.switch_steps):,} steps"
    for dataset, d in per_dataset.items():
        here = dataset == first
        add("Compute reduced to a tenth or less, as cost to a target", "abstract",
            tenth_time_to_target(cost_with_switch if here else d["costs"]),
            budgets[dataset] + (f", {switches}" if here else ""),
            link(dataset, title(dataset)) + (", " + link("baselines", "switch points") if here else ""), title(dataset))
    each("Subset pretraining saves compute at all", "our inference", lambda _, d: any_saving(d["costs"]))

    def fixed_budget(_, d: dict) -> Verdict:
        need = d["tenth"]["conventional_for_tenth"].min() if len(d["tenth"]) else float("nan")
        return Verdict(NOT_TESTABLE, f"any arm is 'a tenth' once conventional runs ≥ {need:.0f} epochs, "
                       f"{need / d['plateau']['plateau_epoch']:.0f}× past its plateau epoch: the budget decides")

    each("Compute reduced to a tenth or less, as fixed budgets (epochs × set size)", "our inference", fixed_budget)
    near = per_dataset[first]["costs"].query("1.4 < Q < 3.5")
    qs = " and ".join(f"{q:.2g}" for q in sorted(near.loc[near["protocol"] != "conventional", "Q"].unique()))
    add(f"Subsets at target Q 1.5, 2 and 3 suffice on {dataset_title(first)}", "our inference",
        equal_results(near, per_dataset[first]["goals"]), f"{budgets[first]} (arms with Q {qs})",
        link(first, dataset_title(first)))
    add("Schedule of about 1,000 subset epochs + 100 fine-tuning epochs", "secondary summary", NOT_RUN,
        "this study sets the subset phase in steps", "")
    add("CIFAR-10 and CIFAR-100 (official files)", "abstract", NOT_RUN, "files not obtainable here", "")
    if not any(d["runs"]["augment"].any() for d in per_dataset.values()):
        add("With data augmentation", "abstract", NOT_RUN, "not in this study's grids", "")
    add("Larger models", "our inference", NOT_RUN, "CPU budget", "")
    return pd.DataFrame(rows)


def answer_sentences(table: pd.DataFrame) -> str:
    """The claims table in two plain sentences, from its verdicts: which claims the study refuted, and how the other
    verdicts fall, so the front page says yes or no before it shows a number."""
    def claims_with(verdict: str) -> list[str]:
        names = table.loc[table["verdict"] == verdict, "claim"].str.replace(r"\s*\([^)]*\)$", "", regex=True)
        return list(dict.fromkeys(names))

    refuted = claims_with(REFUTED)
    first = ("At this scale the first study refuted " + "; ".join(f"“{c}”" for c in refuted)
             + " (on at least one dataset)." if refuted else "At this scale the first study refuted none of the "
             "claims it tested.")
    counts = {label: int((table["verdict"] == verdict).sum()) for label, verdict in (
        ("reproduced", REPRODUCED), ("partly reproduced", PARTLY), ("refuted", REFUTED),
        ("not testable at its budget", NOT_TESTABLE), ("not run", NOT_RUN))}
    second = (f"Of its {len(table)} verdicts (one per claim and dataset), "
              + ", ".join(f"{n} {label}" for label, n in counts.items()) + ".")
    return f"{first} {second}"
