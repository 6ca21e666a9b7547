"""The certified study's rules on hand-made numbers: each verdict can be reached, and each can fail."""

import math

import numpy as np
import pytest

from subsetlib.certified import rules
from subsetlib.certified.rules import Verdict


def test_holm_steps_down_and_stops_at_the_first_failure():
    assert rules.holm([0.01, 0.04, 0.03]) == [True, False, False]
    assert rules.holm([0.01, 0.02, 0.04]) == [True, True, True]
    assert rules.holm([0.2, 0.01]) == [False, True]


def test_fewer_than_three_pairs_give_no_interval_and_no_verdict():
    t = rules.loss_closeness([0.0, 0.001])
    assert t.n == 2 and math.isnan(t.low) and math.isnan(t.high)
    assert rules.closeness([t]) == [Verdict.inconclusive(2)]


@pytest.mark.parametrize(("ratios", "word"), [
    ([1.001, 1.002, 1.0, 1.003, 1.001], Verdict.CLOSE),
    ([1.5, 1.6, 1.55, 1.45, 1.52], Verdict.NOT_CLOSE),
    ([1.0, 1.2, 0.95, 1.1, 1.02], Verdict.inconclusive(5)),
])
def test_closeness_in_loss(ratios, word):
    assert rules.closeness([rules.loss_closeness(np.log(ratios))]) == [word]


def test_closeness_in_accuracy_reads_the_gap_against_a_relative_margin():
    close = rules.accuracy_closeness([-0.01, 0.0, -0.02, 0.01, -0.005])  # gaps ÷ scratch error
    far = rules.accuracy_closeness([-0.5, -0.45, -0.55, -0.5, -0.48])
    assert rules.closeness([close, far]) == [Verdict.CLOSE, Verdict.NOT_CLOSE]


def test_holm_can_turn_a_lone_pass_into_inconclusive_inside_a_family():
    borderline = rules.loss_closeness(np.log([1.03, 1.045, 1.02, 1.05, 1.035]))  # one-sided p = 0.03
    alone = rules.closeness([borderline])
    family = rules.closeness([borderline] * 12)
    assert alone == [Verdict.CLOSE]
    assert family[0] == Verdict.inconclusive(5)


@pytest.mark.parametrize(("ratios", "missed", "word"), [
    ([0.05, 0.04, 0.06, 0.05, 0.05], 0, Verdict.TENTH),
    ([0.5, 0.45, 0.55, 0.5, 0.52], 0, Verdict.SAVES),
    ([2.0, 2.2, 1.9, 2.1, 2.0], 0, Verdict.COSTS_MORE),
    ([0.05, 0.04, 0.06], 2, f"{Verdict.NOT_REACHED} in 2 of 5 seeds"),
])
def test_cost_verdicts(ratios, missed, word):
    assert rules.cost([rules.cost_test(np.log(ratios))], [missed]) == [word]


@pytest.mark.parametrize(("ratios", "word"), [
    ([1.0, 1.1, 0.9, 1.05, 0.95], Verdict.HOLDS),
    ([10.0, 12.0, 9.0, 11.0, 10.5], Verdict.BREAKS),
    ([0.1, 0.12, 0.09, 0.11, 0.1], Verdict.BREAKS),
    ([0.6, 3.0, 1.0, 2.5, 0.4], Verdict.inconclusive(5)),
])
def test_prediction_verdicts(ratios, word):
    assert rules.prediction([rules.prediction_test(ratios)]) == [word]


@pytest.mark.parametrize(("excess", "word"), [
    ([0.001, -0.001, 0.0005, 0.0, -0.0005], Verdict.EQUAL),
    ([0.2, 0.25, 0.22, 0.21, 0.19], Verdict.WORSE),
    ([-0.2, -0.25, -0.22, -0.21, -0.19], Verdict.BETTER),
])
def test_same_minimum_compares_against_the_seeds_range(excess, word):
    assert rules.compared([rules.test(excess, -0.05, 0.05)]) == [word]


def test_frontier_is_where_every_larger_q_is_close():
    assert rules.frontier([1, 2, 4, 8], [Verdict.NOT_CLOSE, Verdict.CLOSE, Verdict.CLOSE, Verdict.CLOSE]) == 2
    assert rules.frontier([8, 4, 2, 1], [Verdict.CLOSE, Verdict.inconclusive(5), Verdict.CLOSE, Verdict.CLOSE]) == 8
    assert math.isnan(rules.frontier([1, 2], [Verdict.CLOSE, Verdict.NOT_CLOSE]))


def test_same_point_is_relative_to_the_seeds_spread():
    assert rules.same_minimum(1e-4, 1.0)
    assert not rules.same_minimum(0.01, 1.0)
    assert not rules.same_minimum(math.nan, 1.0)


def test_first_reaching_and_predicted_excess():
    assert rules.first_reaching([1, 2, 3], [5.0, 2.0, 1.0], 2.0) == 2
    assert math.isnan(rules.first_reaching([1, 2], [5.0, 3.0], 2.0))
    assert rules.predicted_excess(100, 50, 100) == pytest.approx(100 / 100 * 0.5)


def test_q_or_fraction_rule():
    same_in_q = {130: ([1, 2, 4], [0.5, 0.2, 0.1]), 1090: ([1, 2, 4], [0.52, 0.21, 0.1])}
    assert rules.mismatch(same_in_q) == pytest.approx(0.01)
    assert rules.governs(0.01, 0.3) == "Q governs"
    assert rules.governs(0.3, 0.01) == "the fraction governs"
    assert rules.governs(0.2, 0.3) == "neither governs"
    assert rules.governs(math.nan, 0.3).startswith("not testable")


def test_the_prediction_is_trusted_above_its_last_breakdown():
    h, b, i = Verdict.HOLDS, Verdict.BREAKS, Verdict.inconclusive(5)
    assert rules.trusted([0.5, 1, 2, 4, 8], [b, i, h, h, i]) == 2
    assert rules.trusted([0.5, 1, 2, 4, 8], [h, h, b, h, h]) == 4
    assert math.isnan(rules.trusted([1, 2, 4], [h, h, b]))
    assert math.isnan(rules.trusted([1, 2], [i, i]))
