"""The front page's answer to study v2's three questions, in words, from the verdicts of what is stored: a paragraph
per question with a bullet per design, what is not in yet, and the conventional ladders so far.
"""

from dataclasses import dataclass

import pandas as pd

from subsetlib.studies import DESIGNS
from subsetlib.study2_report import arm_text, closeness_sentence, equal_compute_arm_text, q_or_fraction_sentence
from subsetlib.verdicts import RULES


def _span(values: pd.Series, unit: str, digits: int = 0) -> str:
    low, high = f"{values.min():.{digits}f}", f"{values.max():.{digits}f}"
    return f"{low}{unit}" if low == high else f"{low}–{high}{unit}"


def progress_bullets(pairs: pd.DataFrame, titles: dict[str, str], final: frozenset[str] = frozenset()) -> list[str]:
    """What the stored ladders say about the conventional arms, one Markdown bullet per dataset and width: the seeds
    that passed the rule, and how far the others' loss still fell at their last doubling. A dataset in ``final`` has
    every run stored, so its bullet no longer says "so far"."""
    conv = pairs[(pairs["fraction"] >= 1) & pairs["planned"]]
    bullets = []
    for (dataset, model), arm in conv.groupby(["dataset", "model"], sort=False):
        last = arm.sort_values("budget").groupby("seed").tail(1)
        done, open_ = last[last["converged"]], last[~last["converged"]]
        seeds = f"{len(last)} seed{'s' * (len(last) != 1)}"
        so_far, stored = ("", "") if dataset in final else (" so far", " stored")
        text = f"- {titles.get(dataset, dataset)}, {model}: {len(done)} of {seeds} converged{so_far}"
        if len(done):
            text += (f" (at {_span(done['budget'], '')} → {_span(2 * done['budget'], ' epochs')}, where the loss fell "
                     f"{_span(100 * done['drop'], ' %', 2)})")  # 9.98 %: "10 %" would seem to fail the rule
        if len(open_):
            text += (f"; at {'each other' if len(done) else 'each'} seed's last doubling{stored} (up to "
                     f"{int(open_['budget'].max())} → {2 * int(open_['budget'].max())} epochs) the training loss "
                     f"still fell {_span(100 * open_['drop'], ' %')}")
        bullets.append(text + ".")
    return bullets


def equal_compute_bullet(a: dict) -> str:
    """Question 2 on one design, as a Markdown bullet counted from its verdicts (how many equal-compute arms are
    equal to conventional training on each metric), with a nested bullet per arm."""
    eq, d = a["equal_by_arm"], a["design"]
    n = len(eq)

    def counted(col: str) -> str:
        words = eq[col].tolist()
        rest = [f"{sum(w == v for w in words)} {v}" for v in ("better", "worse") if v in words]
        return f"{sum(w == 'equal' for w in words)} of {n}" + (f" ({', '.join(rest)})" if rest else "")

    open_ = any(w.startswith("inconclusive") for col in ("loss_verdict", "acc_verdict") for w in eq[col])
    head = (f"- {a['title']}, at {d.epochs} epoch-equivalent{'s' if d.epochs != 1 else ''} of training (the "
            f"conventional arm's B), paired by seed{_stages(d)}: {counted('loss_verdict')} subset arms equal to "
            f"conventional "
            f"training in training loss and {counted('acc_verdict')} in test accuracy"
            f"{', the others inconclusive' * open_}:")
    return "\n".join([head] + [f"  - {equal_compute_arm_text(arm)}" for _, arm in eq.iterrows()]
                     + [f"  - *Ahead, and where it stops:* {where_equality_stops(eq)}."])


def where_equality_stops(eq: pd.DataFrame) -> str:
    """Whether any equal-compute arm is ahead (``better`` on a metric), and down to which subset, from the largest,
    every arm is at least equal (equal or better) on both metrics."""
    better = eq[(eq["loss_verdict"] == "better") | (eq["acc_verdict"] == "better")]
    ahead = (f"{', '.join(map(_arm, better.itertuples()))} ahead on at least one metric" if len(better) else
             "no arm is ahead (better) on either metric")
    word = "equal or better" if len(better) else "equal"
    order = eq.sort_values("fraction", ascending=False)
    held = (order["loss_verdict"].isin(["equal", "better"]) & order["acc_verdict"].isin(["equal", "better"])).tolist()
    k = held.index(False) if False in held else len(held)
    if k == len(order):
        return f"{ahead}; every arm is {word} on both metrics down to the smallest subset run, {_arm(order.iloc[-1])}"
    stop = order.iloc[k]
    why = f"loss {stop['loss_verdict']}, accuracy {stop['acc_verdict']}"
    if k == 0:
        return f"{ahead}; already the largest subset run, {_arm(stop)}, is not shown {word} on both metrics ({why})"
    return (f"{ahead}; every arm down to {_arm(order.iloc[k - 1])} is {word} on both metrics, {_arm(stop)} is not "
            f"({why})")


def _beyond_minima(a: dict) -> str:
    """What the stored runs say on question 1 beyond the plan's minima (our inference): memorisation, and Q or the
    fraction read at equal steps."""
    from subsetlib.study2_report import Q_STEPS_CAVEAT, memorisation_text

    text = ""
    if len(a.get("memorisation_by_dataset", ())):
        text += f" Memorisation (our inference): {memorisation_text(a['memorisation_by_dataset'].iloc[0])}."
    steps = a.get("q_or_fraction_steps")
    if a["design"].widths and steps is not None and len(steps):
        said = "; ".join(f"{r['metric']}: {r['verdict']} ({r['at_equal_q']:.2g} at equal Q against "
                         f"{r['at_equal_fraction']:.2g} at equal fraction)" for _, r in steps.iterrows())
        text += f" Read at equal steps instead (our inference): {said}. {Q_STEPS_CAVEAT}."
    return text


def _arm(arm) -> str:
    return f"{arm_text(arm.fraction)} (Q = {arm.Q:.2g})"


def _stages(d) -> str:
    """Where a design had a second stage of seeds for question 2, say so (plan amendment of 2026-12-05)."""
    if not d.equal_seeds:
        return ""
    return (f" ({len(d.seeds) + len(d.equal_seeds)} seeds; {len(d.equal_seeds)} of them a second stage, added "
            f"because {len(d.seeds)} seeds left intervals too wide)")


@dataclass(frozen=True)
class TrackAnswer:
    """The second-order track's answer for the front page (``lbfgs_study.front_answer``): how close its subset
    minima lie (question 1), what a subset saves (question 3), and its scale."""

    close: str
    saving: str
    scale: str


QUESTIONS = ("How close is a subset's minimum to the full-set minimum, against Q and width?",
             "At equal compute, is a subset arm ahead of conventional training, and where does that stop?",
             "With a full-batch second-order optimizer, how much compute does a subset save to reach its quality?")
"""The front page's three questions (the plan's), each answered from the verdicts of what is stored."""


def answer(runs: pd.DataFrame, pairs: pd.DataFrame, titles: dict[str, str], figure: str | None = None,
           complete: dict[str, dict] | None = None, track: TrackAnswer | None = None,
           pending: list[str] = (), track_progress: tuple[str, str] | None = None) -> str:
    """The front page's answer, from what is stored: the answers that are in, one paragraph per question with a
    bullet per design (``complete`` maps a design's name to its analysis, whose every run is stored; ``track`` is
    the second-order track's answer, once all its runs are), then what is not in yet (the titles in ``pending``, and
    the track while ``track_progress`` is given) and why, or, once every run is in, the rule it was judged by; then
    ``figure`` (HTML, kept on one line so that Markdown passes it through); then one bullet per dataset and width on
    the conventional ladders (and ``track_progress``'s bullet on the second-order track's runs so far); then a
    "Scale:" line. A design gets verdicts only when every one of its runs is stored."""
    complete = complete or {}
    conv = pairs[pairs["planned"] & (pairs["fraction"] >= 1)] if len(pairs) else pairs
    converged_seeds = int(conv.groupby(["dataset", "model", "seed"])["converged"].any().sum()) if len(conv) else 0
    passed = f"{converged_seeds} conventional run{'s' if converged_seeds != 1 else ''}"  # "… passed that rule"
    has = "have" if converged_seeds != 1 else "has"
    stands = ("no budget-doubling pair is stored yet" if pairs.empty else
              f"{len(runs)} of its runs are stored, and {passed} {has} passed that rule")
    rule = (f"Study v2 judges the paper's claims only where training has reached a minimum by a rule fixed before the "
            f"runs (doubling the budget lowers the loss by less than {100 * RULES.converge_rel:g} % or by less than "
            f"{RULES.converge_abs:g} nats)")
    withdrawn = ("The first study's verdicts are withdrawn: its phases had not reached the minima its claims are "
                 "about.")
    close = [f"- {closeness_sentence(a['close_by_arm'], a['title'])}"
             + (f" {q_or_fraction_sentence(a['q_or_fraction'], len(a['design'].arms()))}" if a["design"].widths
                else "") + _beyond_minima(a)
             for a in complete.values()]
    close += [f"- {track.close}"] if track else []
    equal = [equal_compute_bullet(a) for a in complete.values()]
    saving = [f"(Our inference: where a subset can really save compute.) {track.saving}"] if track else []
    parts = [f"**{question}**\n\n" + "\n".join(lines)
             for question, lines in zip(QUESTIONS, (close, equal, saving), strict=True) if lines]
    if not parts:
        parts.append(f"**At real minima, the answer is not in yet.** {rule}, and so far {stands}. {withdrawn}")
    elif waiting := [*pending, *(["the second-order track"] if track_progress else [])]:
        parts.append(f"**Not in yet: {', '.join(waiting)}.** {rule}; of the runs stored so far ({len(runs)}), "
                     f"{passed} {has} passed that rule. {withdrawn}")
    else:
        parts.append(f"**Every run is in.** {rule}; of the {len(runs)} runs, {passed} passed that rule (per width "
                     f"below). {withdrawn}")
    if figure:
        parts.append(figure.replace("\n", " "))
    final = frozenset(a["design"].dataset for a in complete.values())
    bullets = ((progress_bullets(pairs, titles, final) if len(pairs) else [])
               + ([track_progress[0]] if track_progress else []))
    if bullets:
        parts.append("\n".join(bullets))
    datasets = sorted(runs["dataset"].unique(), key=lambda name: list(DESIGNS).index(name) if name in DESIGNS else 99)
    scales = [DESIGNS[name].scale_text() for name in datasets if name in DESIGNS]
    scales += [track.scale] if track else [track_progress[1]] if track_progress else []
    if scales:
        parts.append("Scale: " + "; ".join(scales) + ".")
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------------
# The front page's short answer (``front_page`` puts it in study v2's slot): a few plain sentences, then one figure and
# one table of claims, each with the pages that hold its evidence.

EVIDENCE_PAGES = {
    "equal": [("MNIST", "experiments/study-v2/00-2-2-compute-mnist.ipynb"),
              ("Fashion-MNIST", "experiments/study-v2/00-2-1-compute-fashion-mnist.ipynb"),
              ("CIFAR-10 (JPEG)", "experiments/study-v2-cifar/00-2-3-compute-cifar10-jpeg.ipynb")],
    "tenth": [("compute pages", "experiments/study-v2/00-2-2-compute-mnist.ipynb"),
              ("L-BFGS", "experiments/study-v2-lbfgs/05-lbfgs-mnist.ipynb")],
    "close": [("MNIST", "experiments/study-v2/00-1-2-minima-mnist.ipynb"),
              ("Fashion-MNIST", "experiments/study-v2/00-1-1-minima-fashion-mnist.ipynb"),
              ("CIFAR-10 (JPEG)", "experiments/study-v2-cifar/00-1-3-minima-cifar10-jpeg.ipynb")],
    "claims": [("claims page", "experiments/study-v2/00-0-claims.ipynb")],
}
"""Where a front-page row's evidence is, relative to the front page (``book/``)."""

FRONT_ROWS = (  # (the claims table's claim starts with, what the front page calls it, its evidence)
    ("Results equal to conventional training", "Results equal to conventional training (abstract)", "equal"),
    ("Compute to", "Compute reduced to a tenth or less (abstract)", "tenth"),
    ("The full-set minimum is close", "Subset minima close to the full-set minimum, Q ≥ 3 (abstract)", "close"),
    ("A subset is representative", "A subset is representative once Q exceeds 1 (abstract)", "close"),
    ("A subset phase memorises", "Subset phases memorise their subset (finding; our inference)", "claims"),
    ("Q or the fraction, read at equal steps", "Q or the fraction, at equal steps (our inference)", "claims"),
)


def verdict_summary(rows: pd.DataFrame) -> str:
    """One claim's verdicts over datasets and metrics, most frequent first: 'reproduced …: 5 of 6; inconclusive:
    CIFAR-10 (JPEG), test accuracy' (where a verdict holds in one or two places, they are named)."""
    total, parts = len(rows), []
    one_metric = rows["metric"].nunique() == 1  # then the datasets alone say where
    groups = sorted(rows.groupby("verdict", sort=False), key=lambda g: -len(g[1]))
    for i, (verdict, group) in enumerate(groups):
        where = "; ".join(d if one_metric else f"{d}, {m}"
                          for d, m in zip(group["dataset"], group["metric"], strict=True))
        named = i > 0 and len(group) <= 2  # the most frequent verdict is counted, a rare one named
        parts.append(f"{verdict}: {where}" if named else f"{verdict}: {len(group)} of {total}")
    return "; ".join(parts)


def front_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The front page's table: claim | verdict | evidence (Markdown links), one row per claim of ``FRONT_ROWS``
    that the claims table holds."""
    rows = []
    for start, name, key in FRONT_ROWS:
        these = claims[claims["claim"].str.startswith(start)]
        if these.empty:
            continue
        links = ", ".join(f"[{label}]({path})" for label, path in EVIDENCE_PAGES[key])
        rows.append({"claim": name, "verdict": verdict_summary(these), "evidence": links})
    return pd.DataFrame(rows, columns=["claim", "verdict", "evidence"])


def markdown_table(table: pd.DataFrame, headers: dict[str, str]) -> str:
    """A small Markdown table (the front page's: its cells hold links, which ``tables.table`` would escape)."""
    head = "| " + " | ".join(headers.values()) + " |\n|" + "---|" * len(headers)
    body = ["| " + " | ".join(str(r[c]).replace("|", "/") for c in headers) + " |" for _, r in table.iterrows()]
    return "\n".join([head, *body])


def short_answer(complete: dict[str, dict], titles: dict[str, str], track: dict | None = None,
                 family: pd.DataFrame | None = None) -> str:
    """Study v2's answer in a few plain sentences (about 120 words), from the verdicts of ``complete`` (a design's
    name → its analysis): what holds and at what cost, whether equality marks a Q, what the minima question gave,
    memorisation, and (``family``: ``study2_analysis.equal_compute_family``) the multiplicity of the equal-compute
    tests."""
    from subsetlib.study2_report import tenth_claim

    if not complete:
        return "Study v2's answer is not in yet: no design has every run stored."
    names = [titles[a["design"].dataset] for a in complete.values()]

    def equal_on(col: str) -> list[str]:
        return [titles[a["design"].dataset] for a in complete.values()
                if (a["equal_by_arm"][col] == "equal").any()]

    loss_eq, acc_eq = equal_on("loss_verdict"), equal_on("acc_verdict")
    eq = pd.concat([a["equal_by_arm"] for a in complete.values()], ignore_index=True)
    acc_not = [n for n in names if n not in acc_eq]
    s1 = (f"At equal compute, training on a subset first matched conventional training in training loss on "
          f"{_count_of(loss_eq, names)} and in test accuracy on {_count_of(acc_eq, names)}"
          + (f" (not {_and(acc_not)})" if acc_not else "") + ".")
    s2 = f"They spent {eq['flops_ratio'].min():.2f}–{eq['flops_ratio'].max():.2f}× its FLOPs: no saving shown."
    tenth = [tenth_claim(a["tenth"][a["tenth"]["metric"] == m]["verdict"].tolist())
             for a in complete.values() for m in ("train_loss", "test_acc")]
    tenth += ([tenth_claim(track["tenth"][track["tenth"]["metric"] == m]["verdict"].tolist())
               for m in ("train_loss", "test_acc")] if track else [])
    s3 = ("The abstract's “a tenth or less” was not testable at this budget anywhere"
          + (", L-BFGS included." if track is not None else ".")
          if all(v == "not testable at this budget" for v in tenth) else
          f"The abstract's “a tenth or less”: {_tally(tenth)}.")
    both = eq[(eq["loss_verdict"] == "equal") & (eq["acc_verdict"] == "equal")]
    s4 = (f"Equality marks no Q threshold: arms down to Q = {both['Q'].min():.2g} were equal on both metrics."
          if len(both) and both["Q"].min() < 1 else "")
    close = [v for a in complete.values() for v in a["close_by_arm"][a["close_by_arm"]["Q"] >= RULES.q_high]
             ["loss_verdict"]]
    judged = sum(not (v == "not converged" or v.startswith("inconclusive")) for v in close)
    s5 = (f"How close a subset's minimum lies could not be judged (none of {len(close)} arms with Q ≥ "
          f"{RULES.q_high:g} was found close or far)" if judged == 0 else
          f"How close a subset's minimum lies was judged for {judged} of {len(close)} arms with Q ≥ {RULES.q_high:g}")
    tables = [a["memorisation"] for a in [*complete.values(), *([track] if track else [])] if "memorisation" in a]
    memo = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["memorised", "Q"])
    high = memo[memo["memorised"].astype(bool) & (memo["Q"] >= RULES.q_high)]
    if len(high):
        qs = ", ".join(f"{q:.2g}" for q in sorted(high["Q"].round(2).unique()))
        s5 += (f"; even at Q = {qs} ({'L-BFGS included' if track is not None else 'by Adam'}) subset phases "
               f"memorised their subset, leaving a full-set loss of {high['full_loss'].min():.0f}–"
               f"{high['full_loss'].max():.0f} nats")
    s6 = (f"Of the {len(family)} equal-compute tests, {int((family['verdict'] == 'equal').sum())} pass unadjusted "
          f"and {int(family['equal_after_holm'].sum())} after Holm's adjustment." if family is not None
          and len(family) else "")
    return " ".join(s for s in (s1, s2, s3, s4, s5 + ".", s6) if s)


def _count_of(these: list[str], of: list[str]) -> str:
    return f"all {len(of)} datasets" if len(these) == len(of) else _and(these) if these else "no dataset"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _tally(verdicts_: list[str]) -> str:
    counts = pd.Series(verdicts_).value_counts()
    return "; ".join(f"{v} ({n} of {len(verdicts_)})" for v, n in counts.items())
