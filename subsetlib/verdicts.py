"""The rules of study v2 that turn paired runs into words: converged, equal, worse, inconclusive.

Two ideas, both fixed before the runs (the method chapter prints them):

- **Converged by budget doubling.** A phase trained with an annealed schedule on budget B is *converged* when the
  same phase on budget 2B (same seed, same schedule shape) lowers its training loss by less than ``rel`` of it, or by
  less than ``abs_nats`` (a loss near zero, as on a memorised subset). A run that fails is "not converged" and can
  carry no "close" or "equal" verdict.
- **Equal means a paired equivalence test.** Per seed, the difference between an arm and its reference (same seed,
  same initial weights); the 95 % t-interval of the mean difference. "equal" when the interval lies inside the
  margin, "worse" (or "better") when it lies wholly outside the margin on that side, otherwise "inconclusive at n
  seeds". Fewer than ``min_seeds`` pairs is always inconclusive.

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

    def text(self, scale: float = 1.0, unit: str = "", digits: int = 2, with_n: bool = True) -> str:
        """'+0.12 [−0.03, +0.27] pt, n = 5': the numbers behind the verdict, for tables (``with_n=False`` where a
        column of its own gives n)."""
        if self.n == 0:
            return "no pairs"
        if self.n == 1:
            return f"{scale * self.mean:+.{digits}f}{unit}" + (" (n = 1)" if with_n else "")
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
    if n < 2:
        return Paired(mean, math.nan, math.nan, n, f"inconclusive at {n} seed")
    half = float(stats.t.ppf(0.5 + rules.level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    low, high = mean - half, mean + half
    if n < rules.min_seeds:
        verdict = f"inconclusive at {n} seeds"
    elif -margin <= low and high <= margin:
        verdict = "equal"
    elif high < -margin:
        verdict = "worse" if higher_is_better else "better"
    elif low > margin:
        verdict = "better" if higher_is_better else "worse"
    else:
        verdict = f"inconclusive at {n} seeds"
    return Paired(mean, low, high, n, verdict)


def loss_test(arm_loss: Sequence[float], reference_loss: Sequence[float], rules: Rules = RULES) -> Paired:
    """Equal in training loss: per seed log(arm ÷ reference), within ±``loss_margin``."""
    ratios = [math.log(a / r) if a > 0 and r > 0 else math.nan for a, r in zip(arm_loss, reference_loss, strict=True)]
    return paired(ratios, rules.loss_margin, higher_is_better=False, rules=rules)


def accuracy_test(arm_acc: Sequence[float], reference_acc: Sequence[float], rules: Rules = RULES) -> Paired:
    """Equal in test accuracy: per seed arm − reference (fractions), within ±``acc_margin``."""
    return paired([a - r for a, r in zip(arm_acc, reference_acc, strict=True)], rules.acc_margin,
                  higher_is_better=True, rules=rules)
