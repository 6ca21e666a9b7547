"""The full-batch minimiser and its certificate: a minimum is certified, or it is not a minimum.

An ``Objective`` on fixed examples, in float64: the mean per-example loss (squared error on one-hot targets, or
cross-entropy) plus λ‖θ‖²/2, so that a minimum exists on any subset. ``minimise`` hands it to
``scipy.optimize.minimize`` (``trust-krylov`` by default: a trust region whose subproblems are solved with
Hessian-vector products; ``L-BFGS-B`` as the alternative); ``torch.func`` gives the gradient and the Hessian-vector
products. Every call is counted in the problem's ``Count``: function+gradient evaluations, Hessian-vector products
(line-search and rejected trial points included), the examples they processed (a Hessian-vector product as two),
their FLOPs (measured once per kind of call with torch's FlopCounterMode) and seconds. Phases are capped by that
count, never by wall time, so a run does not depend on the machine's load.

``certify`` measures the two things a minimum must show: the gradient norm, relative to the gradient at the seed's
initial weights on the same examples, and the Hessian's extreme eigenvalues (exact for small P, Lanczos on a
``LinearOperator`` of Hessian-vector products above that). ``CertificateRule`` is the one home of the rule.
"""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import optimize
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import nn
from torch.func import functional_call, grad, vjp, vmap
from torch.utils.flop_counter import FlopCounterMode

from subsetlib.errors import UserError

LOSSES = ("squared", "cross-entropy")
METHODS = ("trust-krylov", "L-BFGS-B")
EXACT_HESSIAN_UP_TO = 1200  # P at or below this: the Hessian is built whole and its spectrum is exact


@dataclass(frozen=True)
class Objective:
    """The mean per-example ``loss`` ("squared": ½‖f(x) − one-hot(y)‖², M equations an example; "cross-entropy")
    plus ``l2``·‖θ‖²/2."""

    loss: str
    l2: float

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if isinstance(self.l2, bool) or not isinstance(self.l2, int | float) or not 0 <= self.l2 < math.inf:
            raise UserError(f"l2 (λ) must be a finite number >= 0 (got {self.l2!r})")

    def per_example(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss == "squared":
            target = (y[..., None] == torch.arange(out.shape[-1], device=y.device)).to(out.dtype)  # one-hot
            return 0.5 * (out - target).square().sum(-1)
        return F.cross_entropy(out, y, reduction="none")


class FlatModel:
    """A module as a function of one flat float64 parameter vector: ``net(theta, x)``."""

    def __init__(self, module: nn.Module):
        self.module = module.double()
        self.names = [n for n, _ in module.named_parameters()]
        self.shapes = [p.shape for p in module.parameters()]
        self.sizes = [p.numel() for p in module.parameters()]

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def initial(self) -> torch.Tensor:
        """The module's own initial weights as one vector (seed torch before building the module)."""
        return torch.cat([p.detach().reshape(-1) for p in self.module.parameters()]).double()

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        parts = theta.split(self.sizes)
        params = {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}
        return functional_call(self.module, params, (x,))


@dataclass
class Count:
    """What a problem's calls cost: function+gradient evaluations, Hessian-vector products, the examples they
    processed (a Hessian-vector product counts twice), FLOPs and seconds."""

    evaluations: int = 0
    hvps: int = 0
    examples: int = 0
    flops: float = 0.0
    seconds: float = 0.0

    @property
    def calls(self) -> int:
        return self.evaluations + self.hvps

    def as_dict(self) -> dict:
        return asdict(self)


class Problem:
    """An objective on fixed examples ``x`` (float64, on the device) and labels ``y``, for scipy: numpy in, numpy
    out, every call counted."""

    def __init__(self, net: FlatModel, x: torch.Tensor, y: torch.Tensor, objective: Objective):
        if len(x) != len(y) or len(y) == 0:
            raise UserError(f"a problem needs as many labels as examples, at least one (got {len(x)}, {len(y)})")
        self.net, self.x, self.y, self.objective = net, x.double(), y, objective
        self.count = Count()
        self._flops: dict[str, float] = {}
        self._grad = grad(self.value)

    def data_loss(self, theta: torch.Tensor) -> torch.Tensor:
        return self.objective.per_example(self.net(theta, self.x), self.y).mean()

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        return self.data_loss(theta) + 0.5 * self.objective.l2 * theta.square().sum()

    def _measured(self, kind: str, call: Callable[[], torch.Tensor]) -> torch.Tensor:
        if kind not in self._flops:
            with FlopCounterMode(display=False) as counter:
                out = call()
            self._flops[kind] = float(counter.get_total_flops())
            return out
        return call()

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.from_numpy(np.asarray(theta, dtype=np.float64)).to(self.x.device)
        tic = time.perf_counter()
        g, v = self._measured("gradient", lambda: torch.func.grad_and_value(self.value)(t))
        self.count.seconds += time.perf_counter() - tic
        self.count.evaluations += 1
        self.count.examples += len(self.y)
        self.count.flops += self._flops["gradient"]
        return float(v), g.cpu().numpy()

    def hessp(self, theta: np.ndarray, vector: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.asarray(theta, dtype=np.float64)).to(self.x.device)
        v = torch.from_numpy(np.asarray(vector, dtype=np.float64)).to(self.x.device)
        tic = time.perf_counter()
        hv = self._measured("hvp", lambda: vjp(self._grad, t)[1](v)[0])  # reverse over reverse
        self.count.seconds += time.perf_counter() - tic
        self.count.hvps += 1
        self.count.examples += 2 * len(self.y)
        self.count.flops += self._flops["hvp"]
        return hv.cpu().numpy()

    def gradient_norm(self, theta: np.ndarray) -> float:
        """‖∇‖ at ``theta``, not counted (a measurement, not training)."""
        t = torch.from_numpy(np.asarray(theta, dtype=np.float64)).to(self.x.device)
        return float(torch.linalg.vector_norm(self._grad(t)))

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """The whole Hessian (P × P), not counted; for small P."""
        t = torch.from_numpy(np.asarray(theta, dtype=np.float64)).to(self.x.device)
        return torch.func.hessian(self.value)(t).cpu().numpy()

    def per_example_gradients(self, theta: np.ndarray) -> np.ndarray:
        """The data loss's gradient of each example (K × P), not counted."""
        t = torch.from_numpy(np.asarray(theta, dtype=np.float64)).to(self.x.device)

        def one(th: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            return self.objective.per_example(self.net(th, xi[None]), yi[None])[0]

        return vmap(grad(one), in_dims=(None, 0, 0))(t, self.x, self.y).cpu().numpy()


@dataclass
class Minimum:
    """What one minimisation did: where it ended, its objective there, why it stopped (``on_budget`` when the
    evaluation cap ended it), its iterations and cost, and ``trajectory``: one row per iteration with the objective and
    the cost so far (calls, examples, FLOPs, seconds)."""

    theta: np.ndarray
    value: float
    stopped: str
    on_budget: bool
    iterations: int
    count: Count
    trajectory: list[dict] = field(default_factory=list)


def minimise(problem: Problem, theta0: np.ndarray, gtol: float, max_calls: int,
             method: str = "L-BFGS-B") -> Minimum:
    """Minimise ``problem`` from ``theta0`` until ‖∇‖ ≤ ``gtol`` (absolute, the 2-norm) or ``max_calls``
    function+gradient evaluations and Hessian-vector products have been made (then ``on_budget``).

    L-BFGS-B stops on its largest gradient component, so it is asked for ``gtol``/√P there, which implies the
    2-norm bound only loosely: ``certify`` measures the 2-norm afterwards either way."""
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    start = Count(**problem.count.as_dict())
    trajectory: list[dict] = []
    capped = False

    def cost_so_far() -> dict:
        now = problem.count
        return {"calls": now.calls - start.calls, "examples": now.examples - start.examples,
                "flops": now.flops - start.flops, "seconds": now.seconds - start.seconds}

    def callback(intermediate_result: optimize.OptimizeResult) -> None:
        nonlocal capped
        trajectory.append({"iteration": len(trajectory) + 1, "value": float(intermediate_result.fun),
                           **cost_so_far()})
        if problem.count.calls - start.calls >= max_calls:
            capped = True
            raise StopIteration

    x0 = np.asarray(theta0, dtype=np.float64)
    if method == "trust-krylov":
        options = {"gtol": gtol, "maxiter": max_calls}
        res = optimize.minimize(problem.value_and_grad, x0, jac=True, hessp=problem.hessp, method=method,
                                callback=callback, options=options)
    else:
        options = {"gtol": gtol / math.sqrt(len(x0)), "ftol": 0.0, "maxfun": max_calls, "maxiter": max_calls,
                   "maxcor": 20}
        res = optimize.minimize(problem.value_and_grad, x0, jac=True, method=method, callback=callback,
                                options=options)
    on_budget = capped or (not res.success and problem.count.calls - start.calls >= max_calls)
    stopped = "on its budget" if on_budget else str(res.message)
    count = Count(**{k: v - getattr(start, k) for k, v in problem.count.as_dict().items()})
    return Minimum(np.asarray(res.x), float(res.fun), stopped, on_budget, len(trajectory), count, trajectory)


@dataclass(frozen=True)
class CertificateRule:
    """When a stopping point is a minimum: the gradient is small and no direction curves down."""

    gradient: float = 1e-6  # ‖∇L(θ)‖ ≤ 1e-6 · ‖∇L(θ₀)‖ (θ₀ the seed's initial weights, same examples)
    curvature: float = 1e-6  # λ_min(H) ≥ −1e-6 · λ_max(H)

    def certified(self, relative_gradient: float, lambda_min: float, lambda_max: float, on_budget: bool) -> bool:
        """A phase that stopped on its budget is never certified, whatever it measured."""
        return (not on_budget and math.isfinite(relative_gradient) and relative_gradient <= self.gradient
                and math.isfinite(lambda_min) and lambda_min >= -self.curvature * abs(lambda_max))


CERTIFICATE = CertificateRule()


@dataclass(frozen=True)
class Certificate:
    gradient_norm: float
    relative_gradient: float
    lambda_min: float
    lambda_max: float
    certified: bool


def spectrum_ends(problem: Problem, theta: np.ndarray, tol: float = 1e-9) -> tuple[float, float]:
    """(λ_min, λ_max) of the Hessian at ``theta``: exact for P ≤ ``EXACT_HESSIAN_UP_TO``, else Lanczos (``eigsh``)
    for λ_max, then for the largest eigenvalue of λ_max·I − H, which is λ_max − λ_min. Not counted as training."""
    p = len(theta)
    if p <= EXACT_HESSIAN_UP_TO:
        eig = np.linalg.eigvalsh(problem.hessian(theta))
        return float(eig[0]), float(eig[-1])
    saved = Count(**problem.count.as_dict())
    op = LinearOperator((p, p), matvec=lambda v: problem.hessp(theta, v.ravel()), dtype=np.float64)
    rng = np.random.default_rng(0)
    top = float(eigsh(op, k=1, which="LA", tol=tol, v0=rng.standard_normal(p), return_eigenvectors=False)[0])
    flipped = LinearOperator((p, p), matvec=lambda v: top * v.ravel() - problem.hessp(theta, v.ravel()),
                             dtype=np.float64)
    span = float(eigsh(flipped, k=1, which="LA", tol=tol, v0=rng.standard_normal(p), return_eigenvectors=False)[0])
    problem.count = saved
    return top - span, top


def certify(problem: Problem, found: Minimum, initial_gradient_norm: float,
            rule: CertificateRule = CERTIFICATE) -> Certificate:
    """Measure ``found``'s gradient norm (relative to ``initial_gradient_norm``) and Hessian spectrum, and apply the
    rule."""
    norm = problem.gradient_norm(found.theta)
    relative = norm / initial_gradient_norm if initial_gradient_norm > 0 else math.inf
    lam_min, lam_max = spectrum_ends(problem, found.theta)
    return Certificate(norm, relative, lam_min, lam_max, rule.certified(relative, lam_min, lam_max, found.on_budget))


def effective_dimension(problem: Problem, theta: np.ndarray) -> float:
    """tr(H⁻¹Σ) at a minimum: H the objective's Hessian, Σ the covariance of the per-example data-loss gradients.
    The classical excess of a K-example subset's minimiser over the full set's is tr(H⁻¹Σ)/(2K)·(1 − K/N)."""
    h = problem.hessian(theta)
    g = problem.per_example_gradients(theta)
    g = g - g.mean(axis=0)
    sigma = g.T @ g / (len(g) - 1)
    return float(np.trace(np.linalg.solve(h, sigma)))
