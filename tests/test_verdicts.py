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


def test_lbfgs_tells_a_stall_from_a_minimum():
    """A quadratic's minimum is reached (gradient 0): converged. A loss whose gradient points uphill gives the line
    search no decrease, so the parameters stop moving with a large gradient: a stall, which must not be called
    converged (the first study's L-BFGS runs called both "converged")."""
    import torch

    from subsetlib.lbfgs import FullBatchLoss, minimize
    from subsetlib.train import Ledger

    class Uphill(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w):
            ctx.save_for_backward(w)
            return (w ** 2).sum()

        @staticmethod
        def backward(ctx, grad):
            (w,) = ctx.saved_tensors
            return -2 * w * grad

    class Scalar(torch.nn.Module):
        def __init__(self, start: float):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([start], dtype=torch.float64))

        def forward(self, x):
            return x * self.w

    x, y = torch.ones(4, 1, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)
    square = FullBatchLoss(Scalar(3.0), x, y, Ledger(), lambda k: 0.0, loss_sum=lambda o, t: ((o - t) ** 2).sum())
    assert minimize(square, 50).stopped.startswith("converged")
    model = Scalar(3.0)
    uphill = FullBatchLoss(model, x, y, Ledger(), lambda k: 0.0,
                           loss_sum=lambda o, t: Uphill.apply(model.w) + 0 * o.sum())
    assert minimize(uphill, 50).stopped.startswith("stalled")


def test_fewer_than_three_pairs_give_the_per_seed_values_never_an_interval():
    """Two seeds once printed '1.01× [0.000314, 3,260]': an interval from two pairs says nothing."""
    two = paired([0.01, -0.02], 0.003, True)
    assert math.isnan(two.low) and math.isnan(two.high)
    assert two.values == (0.01, -0.02)
    text = two.text(100, " pt")
    assert "[" not in text
    assert text == "+1.00, -2.00 pt (per seed, n = 2)"
    assert "[" in paired([0.01, -0.02, 0.0], 0.003, True).text(100, " pt")


def test_the_equivalence_p_value_agrees_with_the_interval_rule():
    """The 95 % interval lies inside the margin exactly when both one-sided tests reject at 2.5 %."""
    inside = paired([0.001, -0.001, 0.0005, 0.0, -0.0005], 0.003, True)
    crossing = paired([0.004, -0.004, 0.0025, 0.0, -0.0025], 0.003, True)
    assert inside.verdict == "equal" and inside.p < 0.025
    assert crossing.verdict.startswith("inconclusive") and crossing.p > 0.025


def test_holm_adjusts_step_down_and_keeps_the_order():
    from subsetlib.verdicts import holm

    adjusted = holm([0.01, 0.04, 0.03, math.nan])
    # three tests: 3 × 0.01, then max(0.03, 2 × 0.03), then max(0.06, 1 × 0.04); NaN is not a test
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # never below an earlier step's adjusted value


def test_memorised_means_the_subset_loss_is_practically_zero():
    from subsetlib.verdicts import memorised

    assert memorised(5.8e-8)
    assert not memorised(2.1e-4)
    assert not memorised(math.nan)


def test_every_lbfgs_fit_records_its_final_gradient_without_charging_the_ledger():
    """The second-order track's runs never recorded their final gradient (it was measured only when a step did not
    move): a fit that stops on its iteration budget must record it too, and the measurement is not training."""
    import torch

    from subsetlib.lbfgs import FullBatchLoss, minimize
    from subsetlib.train import Ledger

    model = torch.nn.Linear(2, 1).double()
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], dtype=torch.float64)
    y = torch.tensor([[1.0], [0.0], [2.0]], dtype=torch.float64)
    ledger = Ledger()
    closure = FullBatchLoss(model, x, y, ledger, lambda k: float(k), loss_sum=lambda o, t: ((o - t) ** 2).sum())
    fit = minimize(closure, 1)
    assert fit.stopped == "iterations"
    assert math.isfinite(fit.grad_max) and fit.grad_max > 0 and fit.grad_norm >= fit.grad_max
    assert ledger.examples == fit.examples and ledger.flops == fit.flops
