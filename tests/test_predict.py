"""The classical prediction of a subset minimiser's excess, checked where the answer is known: linear least squares,
whose objective is exactly quadratic, so the excess of every subset's minimiser has a closed form."""

import numpy as np
import pytest
import torch
from torch import nn

from subsetlib import predict
from subsetlib.errors import UserError
from subsetlib.minimise import FlatModel, Objective


def _least_squares_problem(n: int = 2000, d: int = 6, m: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, m, (n,), generator=g)
    return x, y


def _closed_form(x: np.ndarray, t: np.ndarray, l2: float) -> tuple[np.ndarray, callable]:
    """The minimiser of mean ½‖Wx + b − t‖² + λ/2‖(W, b)‖² on (x, t), and the full-set objective of any (W, b)."""
    a = np.hstack([x, np.ones((len(x), 1))])

    def fit(rows: np.ndarray) -> np.ndarray:
        k = len(rows)
        return np.linalg.solve(a[rows].T @ a[rows] / k + l2 * np.eye(a.shape[1]), a[rows].T @ t[rows] / k)

    def objective(w: np.ndarray) -> float:
        return float(0.5 * ((a @ w - t) ** 2).sum(1).mean() + 0.5 * l2 * (w**2).sum())

    return fit, objective


def test_the_predicted_excess_matches_the_closed_form_over_random_subsets():
    x, y = _least_squares_problem()
    l2, n, k = 1e-3, 2000, 200
    torch.manual_seed(0)
    net = FlatModel(nn.Linear(6, 3))
    pilot = predict.pilot(net, x, y, Objective("squared", l2), examples=n)  # the pilot on the whole set
    assert pilot.certified and pilot.method == "exact"
    fit, objective = _closed_form(x.numpy(), np.eye(3)[y.numpy()], l2)
    best = objective(fit(np.arange(n)))
    rng = np.random.default_rng(1)
    excess = np.array([objective(fit(rng.choice(n, k, replace=False))) - best for _ in range(400)])
    said = predict.excess(pilot, k, n, level=0.9)
    assert said.mean == pytest.approx(excess.mean(), rel=0.15)
    coverage = float(((excess >= said.low) & (excess <= said.high)).mean())
    assert 0.8 <= coverage <= 0.97


def test_a_wrong_effective_dimension_would_fail_the_check():
    """The same check with tr(H⁻¹Σ) halved misses the closed form: the test above can fail."""
    x, y = _least_squares_problem()
    torch.manual_seed(0)
    pilot = predict.pilot(FlatModel(nn.Linear(6, 3)), x, y, Objective("squared", 1e-3), examples=2000)
    fit, objective = _closed_form(x.numpy(), np.eye(3)[y.numpy()], 1e-3)
    best = objective(fit(np.arange(2000)))
    rng = np.random.default_rng(1)
    excess = np.mean([objective(fit(rng.choice(2000, 200, replace=False))) - best for _ in range(200)])
    halved = predict.Pilot(pilot.effective_dimension / 2, pilot.standard_error, pilot.second_moment / 4,
                           pilot.method, pilot.p, pilot.examples, True, pilot.cost)
    assert predict.excess(halved, 200, 2000).mean != pytest.approx(excess, rel=0.15)


def test_hutchinson_agrees_with_the_exact_traces(monkeypatch):
    x, y = _least_squares_problem(n=600)
    torch.manual_seed(0)
    exact = predict.pilot(FlatModel(nn.Linear(6, 3)), x, y, Objective("cross-entropy", 1e-3), examples=600)
    monkeypatch.setattr(predict, "EXACT_HESSIAN_UP_TO", 1)
    torch.manual_seed(0)
    probed = predict.pilot(FlatModel(nn.Linear(6, 3)), x, y, Objective("cross-entropy", 1e-3), examples=600,
                           probes=200)
    assert probed.method.startswith("Hutchinson")
    assert probed.effective_dimension == pytest.approx(exact.effective_dimension, abs=4 * probed.standard_error)


def test_smallest_k_inverts_the_mean():
    p = predict.Pilot(100.0, 1.0, 1000.0, "exact", 130, 500, True, None)
    k = predict.smallest_k(p, 0.01, 10_000)
    assert predict.excess(p, k, 10_000).mean <= 0.01 < predict.excess(p, k - 1, 10_000).mean


@pytest.mark.parametrize(("call", "fix"), [
    (lambda p: predict.excess(p, 0, 100), "K must be a whole number"),
    (lambda p: predict.excess(p, 200, 100), "exceeds N"),
    (lambda p: predict.smallest_k(p, 0.0, 100), "must be > 0"),
])
def test_bad_requests_are_refused_in_one_line(call, fix):
    with pytest.raises(UserError, match=fix):
        call(predict.Pilot(10.0, 1.0, 100.0, "exact", 50, 100, True, None))


def test_a_model_too_large_for_the_cpu_names_the_gpu_profile():
    x, y = _least_squares_problem(n=50, d=200)
    net = FlatModel(nn.Sequential(nn.Linear(200, 60), nn.Tanh(), nn.Linear(60, 3)))
    with pytest.raises(UserError, match="GPU profile"):
        predict.pilot(net, x, y, Objective("squared", 1e-3), examples=50)


def test_validation_counts_what_the_pilot_interval_covers():
    """Hand-made arms: three seeds whose measured excess is 0.05 at K = 100 of N = 1,000, against pilots that predict
    about 0.045 (covers) and one that predicts ten times more (does not)."""
    import pandas as pd

    arms, pilots = [], []
    for seed, d in ((0, 10.0), (1, 10.0), (2, 100.0)):
        common = {"run_id": f"g{seed}", "dataset": "mnist", "width": 2, "loss": "squared", "l2": 1e-4, "seed": seed,
                  "p": 130, "n": 1000}
        arms.append({**common, "arm": "scratch", "q": float("nan"), "k": 1000, "certified": True,
                     "full_objective": 1.0, "test_accuracy": 0.9, "effective_dimension": d})
        arms.append({**common, "arm": "subset", "q": 7.7, "k": 100, "certified": True, "full_objective": 1.05,
                     "test_accuracy": 0.9, "effective_dimension": float("nan")})
        pilots.append({"group_id": f"g{seed}", "effective_dimension": d, "standard_error": 0.5,
                       "second_moment": d * d / 4, "method": "exact", "p": 130, "pilot_examples": 200,
                       "certified": True})
    valid = predict.validation(pd.DataFrame(arms), pd.DataFrame(pilots))
    assert valid["covered"].tolist() == [True, True, False]
    summary = predict.coverage(valid)
    assert summary["coverage"].iloc[0] == pytest.approx(2 / 3)
    assert summary["arms"].iloc[0] == 3
