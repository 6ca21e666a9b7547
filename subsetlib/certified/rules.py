"""The rules of the study at certified minima, fixed before its runs (book/plan-certified.md prints them). No torch:
they work on plain numbers and tables and are unit-tested on hand-made ones.

Every verdict reads seeds *paired*: an arm against the scratch minimum of the same seed (same initial weights), and
only where both phases are certified (``minimise.CertificateRule``). A test is a pair of one-sided t-tests against a
margin (TOST); each family of tests is adjusted by Holm's step-down at α = 0.05, each direction on its own. Fewer
than ``min_pairs`` pairs never give an interval or a verdict other than "inconclusive at n seeds".
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


class Verdict:
    """The words a rule may say (one vocabulary for every table and sentence)."""

    CLOSE = "close"
    NOT_CLOSE = "not close"
    EQUAL = "as good as from scratch"
    BETTER = "better than from scratch"
    WORSE = "worse than from scratch"
    TENTH = "a tenth or less"
    SAVES = "cheaper"
    COSTS_MORE = "dearer"
    NOT_REACHED = "not reached"
    HOLDS = "holds"
    BREAKS = "breaks down"

    @staticmethod
    def inconclusive(n: int) -> str:
        return f"inconclusive at {n} seed{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class Rules:
    alpha: float = 0.05  # family-wise, Holm-adjusted, for each one-sided test
    min_pairs: int = 3
    close_loss: float = 1.05  # close: the subset minimum's full-set objective at most 1.05 × the scratch minimum's …
    close_error: float = 0.10  # … and its test accuracy at most 10 % of the scratch minimum's test error lower
    targets: tuple[float, ...] = (1.01, 1.10)  # cost to 1.01 × and 1.10 × the seed's scratch minimum (and the worst)
    tenth: float = 0.10  # the abstract's "a tenth or less"
    band: float = 2.0  # the prediction holds where measured ÷ predicted excess lies within [1/2, 2]
    same_point: float = 1e-3  # the same minimum: nearer the seed's scratch minimum than 1e-3 × the seeds' spread
    governs: float = 2.0  # Q (or the fraction) governs when its mismatch across widths is at most half the other's


RULES = Rules()


@dataclass(frozen=True)
class Test:
    """Per-seed values against a margin: their mean, the 95 % t-interval (n ≥ ``min_pairs`` only), and the one-sided
    p-values that the mean lies below ``low`` / above ``high`` (Holm adjusts them across a family)."""

    values: tuple[float, ...]
    mean: float
    low: float
    high: float
    p_above_low: float  # H1: mean > low
    p_below_high: float  # H1: mean < high
    p_below_low: float  # H1: mean < low
    p_above_high: float  # H1: mean > high

    @property
    def n(self) -> int:
        return len(self.values)


def test(values: Sequence[float], low: float, high: float, rules: Rules = RULES) -> Test:
    """One-sided t-tests of the mean of ``values`` against ``low`` and ``high`` (a non-finite value is dropped)."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n < rules.min_pairs:
        return Test(tuple(v), mean, math.nan, math.nan, 1.0, 1.0, 1.0, 1.0)
    se = float(v.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.975, n - 1) * se)
    dist = stats.t(n - 1)

    def p_greater(bound: float) -> float:  # H1: mean > bound
        if se == 0:
            return 0.0 if mean > bound else 1.0
        return float(dist.sf((mean - bound) / se))

    def p_less(bound: float) -> float:
        if se == 0:
            return 0.0 if mean < bound else 1.0
        return float(dist.cdf((mean - bound) / se))

    return Test(tuple(v), mean, mean - half, mean + half, p_greater(low), p_less(high), p_less(low),
                p_greater(high))


def holm(p_values: Sequence[float], alpha: float = RULES.alpha) -> list[bool]:
    """Holm's step-down: which of a family's hypotheses are rejected at family-wise ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def inside(tests: Sequence[Test], rules: Rules = RULES) -> list[bool]:
    """Equivalence across a family: both one-sided nulls (mean ≤ low, mean ≥ high) rejected after Holm."""
    lows = holm([t.p_above_low for t in tests], rules.alpha)
    highs = holm([t.p_below_high for t in tests], rules.alpha)
    return [a and b for a, b in zip(lows, highs, strict=True)]


def outside_above(tests: Sequence[Test], rules: Rules = RULES) -> list[bool]:
    return holm([t.p_above_high for t in tests], rules.alpha)


def outside_below(tests: Sequence[Test], rules: Rules = RULES) -> list[bool]:
    return holm([t.p_below_low for t in tests], rules.alpha)


def closeness(tests: Sequence[Test], rules: Rules = RULES) -> list[str]:
    """Per test of a family (values: log(subset minimum's full-set objective ÷ scratch minimum's) with low = −∞ and
    high = log 1.05; or test accuracy gap ÷ scratch test error with low = −0.10 and high = +∞): close, not close, or
    inconclusive. For the loss, "close" needs the mean below the margin; for accuracy, above it."""
    below, above = holm([t.p_below_high for t in tests], rules.alpha), holm([t.p_above_low for t in tests],
                                                                          rules.alpha)
    over, under = outside_above(tests, rules), outside_below(tests, rules)
    words = []
    for t, b, a, o, u in zip(tests, below, above, over, under, strict=True):
        if t.n < rules.min_pairs:
            words.append(Verdict.inconclusive(t.n))
        elif b and a:
            words.append(Verdict.CLOSE)
        elif o or u:
            words.append(Verdict.NOT_CLOSE)
        else:
            words.append(Verdict.inconclusive(t.n))
    return words


def loss_closeness(log_ratios: Sequence[float], rules: Rules = RULES) -> Test:
    return test(log_ratios, -math.inf, math.log(rules.close_loss), rules)


def accuracy_closeness(relative_gaps: Sequence[float], rules: Rules = RULES) -> Test:
    return test(relative_gaps, -rules.close_error, math.inf, rules)


def compared(tests: Sequence[Test], rules: Rules = RULES, higher_is_better: bool = False) -> list[str]:
    """Equivalence within ±margin (the test's low/high): as good as, better, worse, or inconclusive."""
    eq, over, under = inside(tests, rules), outside_above(tests, rules), outside_below(tests, rules)
    words = []
    for t, e, o, u in zip(tests, eq, over, under, strict=True):
        if t.n < rules.min_pairs:
            words.append(Verdict.inconclusive(t.n))
        elif e:
            words.append(Verdict.EQUAL)
        elif o:
            words.append(Verdict.BETTER if higher_is_better else Verdict.WORSE)
        elif u:
            words.append(Verdict.WORSE if higher_is_better else Verdict.BETTER)
        else:
            words.append(Verdict.inconclusive(t.n))
    return words


def cost(tests: Sequence[Test], not_reached: Sequence[int], rules: Rules = RULES) -> list[str]:
    """Per test of log(cost through the subset ÷ cost from scratch), with ``not_reached`` seeds whose fine-tuning never
    reached the target (no ratio): a tenth or less, cheaper, dearer, not reached, or inconclusive."""
    tenth = holm([t.p_below_high for t in tests], rules.alpha)  # high = log 0.1
    cheaper = holm([test(t.values, 0.0, 0.0, rules).p_below_high for t in tests], rules.alpha)
    dearer = holm([test(t.values, 0.0, 0.0, rules).p_above_low for t in tests], rules.alpha)
    words = []
    for t, missed, a, b, c in zip(tests, not_reached, tenth, cheaper, dearer, strict=True):
        if missed:
            words.append(f"{Verdict.NOT_REACHED} in {missed} of {missed + t.n} seeds")
        elif t.n < rules.min_pairs:
            words.append(Verdict.inconclusive(t.n))
        elif a:
            words.append(Verdict.TENTH)
        elif b:
            words.append(Verdict.SAVES)
        elif c:
            words.append(Verdict.COSTS_MORE)
        else:
            words.append(Verdict.inconclusive(t.n))
    return words


def cost_test(log_ratios: Sequence[float], rules: Rules = RULES) -> Test:
    return test(log_ratios, -math.inf, math.log(rules.tenth), rules)


def prediction(tests: Sequence[Test], rules: Rules = RULES) -> list[str]:
    """Per test of measured ÷ predicted excess (low = 1/band, high = band): holds, breaks down, or inconclusive."""
    eq, over, under = inside(tests, rules), outside_above(tests, rules), outside_below(tests, rules)
    return [Verdict.inconclusive(t.n) if t.n < rules.min_pairs else Verdict.HOLDS if e
            else Verdict.BREAKS if (o or u) else Verdict.inconclusive(t.n)
            for t, e, o, u in zip(tests, eq, over, under, strict=True)]


def prediction_test(ratios: Sequence[float], rules: Rules = RULES) -> Test:
    return test(ratios, 1 / rules.band, rules.band, rules)


def predicted_excess(effective_dimension: float, k: int, n: int) -> float:
    """The classical excess of a K-example subset's minimiser: tr(H⁻¹Σ)/(2K)·(1 − K/N)."""
    return effective_dimension / (2 * k) * (1 - k / n)


def frontier(qs: Sequence[float], words: Sequence[str], wanted: str = Verdict.CLOSE) -> float:
    """The smallest Q from which every larger Q on the grid is ``wanted`` ("close"; NaN when the largest is not)."""
    order = sorted(zip(qs, words, strict=True))
    found = math.nan
    for q, word in reversed(order):
        if word != wanted:
            break
        found = q
    return found


def trusted(qs: Sequence[float], words: Sequence[str]) -> float:
    """Where the prediction can be trusted, from its verdicts at every (dataset, width, Q) of one objective: the
    smallest Q at which it holds with no larger Q where it breaks down (NaN if none)."""
    broken = max((q for q, w in zip(qs, words, strict=True) if w == Verdict.BREAKS), default=0.0)
    holds = [q for q, w in zip(qs, words, strict=True) if w == Verdict.HOLDS and q > broken]
    return min(holds) if holds else math.nan


def same_minimum(distance: float, spread: float, rules: Rules = RULES) -> bool:
    """A fine-tuned minimum is the seed's scratch minimum when it lies within ``same_point`` × the seeds' spread
    (the median distance between different seeds' scratch minima)."""
    return math.isfinite(distance) and math.isfinite(spread) and distance <= rules.same_point * spread


def first_reaching(costs: Sequence[float], values: Sequence[float], target: float) -> float:
    """The cost at the first iteration whose objective is at or below ``target`` (NaN if none): the one
    cost-to-target rule of this study."""
    for c, v in zip(costs, values, strict=True):
        if v <= target:
            return float(c)
    return math.nan


def mismatch(curves: dict[object, tuple[Sequence[float], Sequence[float]]]) -> float:
    """Mean |difference| between every pair of curves (x, y), interpolated over 9 log-spaced x inside the range
    both cover; NaN when no pair overlaps."""
    keys = list(curves)
    gaps = []
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            (xa, ya), (xb, yb) = curves[a], curves[b]
            lo, hi = max(min(xa), min(xb)), min(max(xa), max(xb))
            if not lo < hi:
                continue
            grid = np.linspace(np.log(lo), np.log(hi), 9)
            gaps.append(float(np.mean(np.abs(np.interp(grid, np.log(xa), ya) - np.interp(grid, np.log(xb), yb)))))
    return float(np.mean(gaps)) if gaps else math.nan


def governs(at_q: float, at_fraction: float, rules: Rules = RULES) -> str:
    """Which of Q and the fraction lines up the widths, by the factor-``governs`` rule."""
    if not (math.isfinite(at_q) and math.isfinite(at_fraction)):
        return "not testable (the widths share no range)"
    if at_q * rules.governs <= at_fraction:
        return "Q governs"
    if at_fraction * rules.governs <= at_q:
        return "the fraction governs"
    return "neither governs"
