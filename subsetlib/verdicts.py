"""The rules of study v2 that turn paired runs into words: converged, equal, worse, inconclusive.

Two ideas, both fixed before the runs (the method chapter prints them):

- **Converged by budget doubling.** A phase trained with an annealed schedule on budget B is *converged* when the
  same phase on budget 2B (same seed, same schedule shape) lowers its training loss by less than ``rel`` of it, or by
  less than ``abs_nats`` (a loss near zero, as on a memorised subset). A run that fails is "not converged" and can
  carry no "close" or "equal" verdict.
- **Equal means a paired equivalence test.** Per seed, the difference between an arm and its reference (same seed,
  same initial weights); the 95 % t-interval of the mean difference. "equal" when the interval lies inside the
  margin, "worse" (or "better") when it lies wholly outside the margin on that side, otherwise "inconclusive at n
  seeds". Fewer than ``min_seeds`` pairs is always inconclusive, and carries no interval: its per-seed values are
  shown instead.
- **A family of tests is named, and adjusted.** ``holm`` adjusts the two one-sided tests' p-values
  (``equivalence_p``) of a family by Holm's step-down rule, so that a verdict "equal in at least one arm" (a union
  of tests) can be read at the family's level as well as test by test.
- **Memorised.** A subset phase whose loss on its own subset falls to ``memorised_nats`` or below has fit its
  subset exactly; its full-set loss then says how far that fit lies from the full set.

No torch: the rules work on plain numbers and tables, and are unit-tested on hand-made ones.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Rules:
    """Every threshold a v2 verdict uses."""

    converge_rel: float = 0.10  # doubling the budget lowers the training loss by less than 10 % …
    converge_abs: float = 0.001  # … or by less than 0.001 nats: converged
    level: float = 0.95  # the paired interval's confidence level
    min_seeds: int = 3  # fewer pairs than this: "inconclusive"
    loss_margin: float = math.log(1.10)  # equal in loss: the paired log ratio within ±log 1.1 (within 10 %)
    acc_margin: float = 0.003  # equal in test accuracy: the paired difference within ±0.3 points
    q_high: float = 3.0  # "Q sufficiently exceeds unity": judged on arms with Q ≥ 3
    tenth: float = 0.10  # the abstract's "a tenth or less"
    memorised_nats: float = 1e-6  # a subset phase whose subset loss falls to this or below has memorised its subset


RULES = Rules()


def converged(loss_b: float, loss_2b: float, rules: Rules = RULES) -> bool:
    """The budget-doubling rule for one pair of runs (B and 2B, same seed)."""
    if not (math.isfinite(loss_b) and math.isfinite(loss_2b)):
        return False
    drop = loss_b - loss_2b
    return drop < rules.converge_abs or drop < rules.converge_rel * loss_b


@dataclass(frozen=True)
class Paired:
    """A paired comparison: mean difference (arm − reference), its interval, the number of pairs and the verdict."""

    mean: float
    low: float
    high: float
    n: int
    verdict: str
    values: tuple[float, ...] = ()  # the per-seed differences behind it
    p: float = math.nan  # the equivalence test's p-value (the larger of the two one-sided tests'), unadjusted

    def text(self, scale: float = 1.0, unit: str = "", digits: int = 2, with_n: bool = True) -> str:
        """'+0.12 [−0.03, +0.27] pt, n = 5': the numbers behind the verdict, for tables (``with_n=False`` where a
        column of its own gives n). Fewer than ``RULES.min_seeds`` pairs give no interval: the per-seed values,
        '+0.12, −0.40 pt (per seed, n = 2)'."""
        if self.n == 0:
            return "no pairs"
        if self.n < RULES.min_seeds or not math.isfinite(self.low):
            each = self.values or (self.mean,)
            return (", ".join(f"{scale * v:+.{digits}f}" for v in each) + unit
                    + (f" (per seed, n = {self.n})" if self.n > 1 else " (n = 1)"))
        return (f"{scale * self.mean:+.{digits}f} [{scale * self.low:+.{digits}f}, {scale * self.high:+.{digits}f}]"
                f"{unit}" + (f", n = {self.n}" if with_n else ""))


def paired(differences: Sequence[float], margin: float, higher_is_better: bool, rules: Rules = RULES) -> Paired:
    """The equivalence test on per-seed differences (arm − reference) against a symmetric ``margin``.

    ``higher_is_better`` says which side of the margin is "worse" (accuracy: below; loss: above)."""
    d = np.asarray([x for x in differences if math.isfinite(x)], dtype=float)
    n = len(d)
    if n == 0:
        return Paired(math.nan, math.nan, math.nan, 0, "no pairs")
    mean = float(d.mean())
    values = tuple(float(x) for x in d)
    if n < 2:
        return Paired(mean, math.nan, math.nan, n, f"inconclusive at {n} seed", values)
    if n < rules.min_seeds:  # no interval from so few pairs
        return Paired(mean, math.nan, math.nan, n, f"inconclusive at {n} seeds", values)
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + rules.level / 2, n - 1) * sd / math.sqrt(n))
    low, high = mean - half, mean + half
    p = equivalence_p(mean, sd, n, margin)
    if -margin <= low and high <= margin:
        verdict = "equal"
    elif high < -margin:
        verdict = "worse" if higher_is_better else "better"
    elif low > margin:
        verdict = "better" if higher_is_better else "worse"
    else:
        verdict = f"inconclusive at {n} seeds"
    return Paired(mean, low, high, n, verdict, values, p)


def equivalence_p(mean: float, sd: float, n: int, margin: float) -> float:
    """The two one-sided t-tests of equivalence within ±``margin``: the larger of their p-values. The 95 % interval
    lies inside the margin exactly when this is below 0.025, so the paired rule is this test at that level."""
    if n < 2:
        return math.nan
    if sd == 0:
        return 0.0 if -margin < mean < margin else 1.0
    se = sd / math.sqrt(n)
    above = float(stats.t.sf((mean + margin) / se, n - 1))  # H0: mean ≤ −margin
    below = float(stats.t.cdf((mean - margin) / se, n - 1))  # H0: mean ≥ +margin
    return max(above, below)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family's p-values (NaN, a test that was not run, stays NaN and does not
    count towards the family). A test stays significant at level α when its adjusted p-value is ≤ α."""
    idx = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    m, adjusted, running = len(idx), [math.nan] * len(p_values), 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def memorised(subset_loss: float, rules: Rules = RULES) -> bool:
    """Whether a subset phase fit its own subset exactly: its loss there at ``memorised_nats`` or below."""
    return math.isfinite(subset_loss) and subset_loss <= rules.memorised_nats


def loss_test(arm_loss: Sequence[float], reference_loss: Sequence[float], rules: Rules = RULES) -> Paired:
    """Equal in training loss: per seed log(arm ÷ reference), within ±``loss_margin``."""
    ratios = [math.log(a / r) if a > 0 and r > 0 else math.nan for a, r in zip(arm_loss, reference_loss, strict=True)]
    return paired(ratios, rules.loss_margin, higher_is_better=False, rules=rules)


def accuracy_test(arm_acc: Sequence[float], reference_acc: Sequence[float], rules: Rules = RULES) -> Paired:
    """Equal in test accuracy: per seed arm − reference (fractions), within ±``acc_margin``."""
    return paired([a - r for a, r in zip(arm_acc, reference_acc, strict=True)], rules.acc_margin,
                  higher_is_better=True, rules=rules)
