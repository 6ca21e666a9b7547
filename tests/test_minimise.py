"""The full-batch minimiser and its certificate, on problems whose answer is known."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from subsetlib.errors import UserError
from subsetlib.minimise import (
    CERTIFICATE,
    FlatModel,
    Minimum,
    Objective,
    Problem,
    certify,
    effective_dimension,
    minimise,
    spectrum_ends,
)


def _data(k: int = 60, d: int = 5, m: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, d, generator=g, dtype=torch.float64), torch.randint(0, m, (k,), generator=g)


def _mlp(d: int = 5, h: int = 4, m: int = 3, bias: bool = True, seed: int = 0) -> FlatModel:
    torch.manual_seed(seed)
    return FlatModel(nn.Sequential(nn.Linear(d, h, bias=bias), nn.Tanh(), nn.Linear(h, m, bias=bias)))


def test_a_linear_least_squares_minimum_is_found_and_certified():
    x, y = _data()
    torch.manual_seed(0)
    net = FlatModel(nn.Linear(5, 3))
    problem = Problem(net, x, y, Objective("squared", 1e-3))
    theta0 = net.initial().numpy()
    g0 = problem.gradient_norm(theta0)
    found = minimise(problem, theta0, 1e-8 * g0, 5000)
    cert = certify(problem, found, g0)
    # the closed form: ridge regression on [x, 1] with one-hot targets (mean loss ½‖·‖², penalty λ/2‖θ‖²)
    a = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1).numpy()
    t = np.eye(3)[y.numpy()]
    w = np.linalg.solve(a.T @ a / len(x) + 1e-3 * np.eye(6), a.T @ t / len(x))
    assert cert.certified and cert.relative_gradient <= CERTIFICATE.gradient
    assert np.allclose(found.theta[:15].reshape(3, 5), w[:5].T, atol=1e-6)
    assert cert.lambda_min > 0


def test_a_phase_stopped_on_its_budget_is_never_certified():
    x, y = _data()
    net = _mlp()
    problem = Problem(net, x, y, Objective("cross-entropy", 1e-4))
    theta0 = net.initial().numpy()
    found = minimise(problem, theta0, 1e-12, max_calls=5)
    assert found.on_budget and found.stopped == "on its budget"
    assert not certify(problem, found, problem.gradient_norm(theta0)).certified
    assert not CERTIFICATE.certified(0.0, 1.0, 2.0, on_budget=True)


def test_a_saddle_with_zero_gradient_is_not_certified():
    """At θ = 0 a bias-free tanh network has zero gradient, but the Hessian curves down: a saddle."""
    x, y = _data()
    net = _mlp(bias=False)
    problem = Problem(net, x, y, Objective("squared", 1e-6))
    zero = np.zeros(net.size)
    saddle = Minimum(zero, 0.0, "gradient below tolerance", False, 0, problem.count)
    cert = certify(problem, saddle, initial_gradient_norm=1.0)
    assert cert.gradient_norm < 1e-12
    assert cert.lambda_min < -CERTIFICATE.curvature * cert.lambda_max
    assert not cert.certified


def test_lanczos_agrees_with_the_exact_spectrum(monkeypatch):
    x, y = _data(k=80, d=6, m=3)
    net = _mlp(d=6, h=5, m=3)
    problem = Problem(net, x, y, Objective("cross-entropy", 1e-3))
    theta = net.initial().numpy()
    exact = spectrum_ends(problem, theta)
    monkeypatch.setattr("subsetlib.minimise.EXACT_HESSIAN_UP_TO", 1)
    lanczos = spectrum_ends(problem, theta)
    assert lanczos == pytest.approx(exact, rel=1e-6, abs=1e-8)
    assert problem.count.hvps == 0  # the certificate is a measurement, not training


def test_every_call_is_counted_with_its_examples():
    x, y = _data(k=40)
    net = _mlp()
    problem = Problem(net, x, y, Objective("squared", 0.0))
    theta = net.initial().numpy()
    problem.value_and_grad(theta)
    problem.hessp(theta, np.ones_like(theta))
    assert (problem.count.evaluations, problem.count.hvps, problem.count.examples) == (1, 1, 40 + 80)
    assert problem.count.flops > 0 and problem.count.seconds > 0


def test_the_two_methods_reach_the_same_convex_minimum():
    x, y = _data()
    torch.manual_seed(1)
    net = FlatModel(nn.Linear(5, 3))
    problem = Problem(net, x, y, Objective("cross-entropy", 1e-2))
    theta0 = net.initial().numpy()
    g0 = problem.gradient_norm(theta0)
    a = minimise(problem, theta0, 1e-8 * g0, 5000, "L-BFGS-B")
    b = minimise(problem, theta0, 1e-8 * g0, 5000, "trust-krylov")
    assert np.allclose(a.theta, b.theta, atol=1e-5)
    assert b.count.hvps > 0 and a.count.hvps == 0


def test_effective_dimension_of_a_well_specified_model_counts_its_parameters():
    """Data drawn from a logistic model and fitted by it: Σ ≈ H at the minimum, so tr(H⁻¹Σ) ≈ the identifiable
    parameters (a two-class softmax on 4 inputs has 10, of which 5 are identifiable; λ is tiny)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4000, 4, generator=g, dtype=torch.float64)
    w = torch.tensor([1.0, -0.5, 0.25, 0.0], dtype=torch.float64)
    y = (torch.rand(4000, generator=g, dtype=torch.float64) < torch.sigmoid(x @ w + 0.3)).long()
    torch.manual_seed(0)
    net = FlatModel(nn.Linear(4, 2))
    problem = Problem(net, x, y, Objective("cross-entropy", 1e-8))
    theta0 = net.initial().numpy()
    found = minimise(problem, theta0, 1e-9 * problem.gradient_norm(theta0), 5000)
    assert effective_dimension(problem, found.theta) == pytest.approx(5, rel=0.15)


@pytest.mark.parametrize(("kwargs", "fix"), [
    ({"loss": "hinge", "l2": 0.0}, "choose one of squared, cross-entropy"),
    ({"loss": "squared", "l2": -1.0}, "finite number >= 0"),
    ({"loss": "squared", "l2": math.inf}, "finite number >= 0"),
    ({"loss": "squared", "l2": "1e-4"}, "finite number >= 0"),
])
def test_bad_objectives_are_refused_in_one_line(kwargs, fix):
    with pytest.raises(UserError, match=fix):
        Objective(**kwargs)


def test_an_unknown_method_is_refused():
    x, y = _data()
    net = _mlp()
    with pytest.raises(UserError, match="choose one of"):
        minimise(Problem(net, x, y, Objective("squared", 0.0)), net.initial().numpy(), 1e-6, 10, "newton")
