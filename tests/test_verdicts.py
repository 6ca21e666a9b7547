"""Study v2's rules on hand-made numbers, including the cases that went the wrong way in the first study."""

import math

import pytest

from subsetlib.verdicts import RULES, accuracy_test, converged, loss_test, paired


@pytest.mark.parametrize("loss_b, loss_2b, expected", [
    (0.0200, 0.0185, True),  # 7.5 % lower at twice the budget: converged
    (0.0200, 0.0170, False),  # 15 % lower: not converged
    (0.0050, 0.0044, True),  # 12 % lower but only 0.0006 nats: converged (a loss near zero)
    (0.50, 0.30, False),  # the first study's conventional runs fell 55-71 % over their second half
    (0.30, 0.31, True),  # doubling made it worse: nothing left to gain
    (math.nan, 0.1, False),
])
def test_budget_doubling(loss_b, loss_2b, expected):
    assert converged(loss_b, loss_2b) is expected


def test_equal_needs_the_interval_inside_the_margin():
    assert paired([0.001, -0.001, 0.0005, 0.0, -0.0005], 0.003, True).verdict == "equal"
    # the same mean, spread wide: the interval crosses the margin, so no verdict
    assert paired([0.004, -0.004, 0.0025, 0.0, -0.0025], 0.003, True).verdict == "inconclusive at 5 seeds"


def test_worse_and_better_need_the_interval_wholly_outside():
    assert paired([-0.010, -0.011, -0.009, -0.010, -0.012], 0.003, True).verdict == "worse"
    assert paired([-0.010, -0.011, -0.009, -0.010, -0.012], 0.003, False).verdict == "better"
    assert paired([0.010, 0.011, 0.009], 0.003, True).verdict == "better"


def test_one_seed_missing_by_less_than_its_noise_is_not_a_verdict():
    """The first study refuted 'saves compute' on one seed that missed by 0.06 points: one pair decides nothing."""
    result = accuracy_test([0.9844], [0.9850])
    assert result.verdict == "inconclusive at 1 seed"
    assert result.text(100, " pt") == "-0.06 pt (n = 1)"


def test_too_few_seeds_is_inconclusive_even_when_tight():
    assert paired([0.0001, 0.0002], 0.003, True).verdict == "inconclusive at 2 seeds"
    assert RULES.min_seeds == 3


def test_loss_is_compared_as_a_paired_log_ratio():
    within = loss_test([0.0210, 0.0199, 0.0205, 0.0202, 0.0208], [0.020, 0.020, 0.020, 0.020, 0.020])
    assert within.verdict == "equal"
    twice = loss_test([0.040, 0.041, 0.039], [0.020, 0.021, 0.019])
    assert twice.verdict == "worse"
    assert twice.mean == pytest.approx(math.log(2), abs=0.01)


def test_pairs_are_per_seed_not_against_a_mean():
    """Seeds that differ a lot from each other but little from their own reference are equal."""
    arm = [0.980, 0.990, 0.985, 0.975, 0.995]
    reference = [a + 0.0005 for a in arm]
    assert accuracy_test(arm, reference).verdict == "equal"


def test_text_gives_the_interval():
    result = paired([0.1, 0.2, 0.3], 1.0, True)
    assert result.text(digits=1).startswith("+0.2 [")
    assert result.text(digits=1).endswith(", n = 3")
