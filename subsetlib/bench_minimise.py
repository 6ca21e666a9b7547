"""How fast the full-batch minimiser's calls are on this machine, measured side by side in one process: the float64
function+gradient evaluation against the machine's measured float64 matmul peak, a Hessian-vector product against a
gradient, and L-BFGS-B against trust-krylov on one certified-study problem. A benchmark, not a test: the machine is
shared, so it reports ratios measured in one run."""

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from subsetlib.certified.design import check_cell, design
from subsetlib.certified.runs import features, network
from subsetlib.minimise import CERTIFICATE, Objective, Problem, certify, minimise


def _best(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    best = math.inf
    for _ in range(repeats):
        tic = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - tic)
    return best


def fp64_peak(size: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of the best of ``repeats`` float64 ``size``×``size`` matmuls, at this process's thread count."""
    a = torch.randn(size, size, dtype=torch.float64)
    b = torch.randn(size, size, dtype=torch.float64)
    return 2 * size**3 / _best(lambda: a @ b, repeats)


def _timed(problem: Problem, theta: np.ndarray, repeats: int) -> tuple[float, float]:
    """Best seconds of one evaluation and of one Hessian-vector product at ``theta``."""
    v = np.random.default_rng(0).standard_normal(len(theta))
    return _best(lambda: problem.value_and_grad(theta), repeats), _best(lambda: problem.hessp(theta, v), repeats)


def calls(design_name: str = "mnist", repeats: int = 20) -> list[dict]:
    """Per width of the design, on its full set at seed 0's initial weights (squared error, its first λ): the
    evaluation's and the Hessian-vector product's best time, FLOPs and FLOP/s, the share of the fp64 peak and the
    ratio of a Hessian-vector product to an evaluation."""
    d = design(design_name)
    part, x, _ = features(d.dataset, d.train_size, d.pool)
    peak = fp64_peak()
    rows = []
    for width in d.widths:
        net = network(x.shape[1], width, part.num_classes, 0)
        problem = Problem(net, x, part.y_train, Objective("squared", d.objectives[0][1]))
        theta = net.initial().numpy()
        evaluation, hvp = _timed(problem, theta, repeats)
        flops = problem._flops["gradient"]
        rows.append({"width": width, "p": net.size, "n": len(part.y_train), "evaluation_ms": 1e3 * evaluation,
                     "hvp_ms": 1e3 * hvp, "hvp_over_evaluation": hvp / evaluation, "gflops": flops / evaluation / 1e9,
                     "peak_gflops": peak / 1e9, "share_of_peak": flops / evaluation / peak})
    return rows


def methods(design_name: str = "mnist", width: int | None = None) -> list[dict]:
    """L-BFGS-B against trust-krylov from seed 0's initial weights on the design's full set (squared error, its
    first λ): calls, Hessian-vector products, seconds, the objective reached and the certificate."""
    d = design(design_name)
    width = width or d.widths[0]
    check_cell(design_name, width)
    part, x, _ = features(d.dataset, d.train_size, d.pool)
    rows = []
    for method in ("L-BFGS-B", "trust-krylov"):
        net = network(x.shape[1], width, part.num_classes, 0)
        problem = Problem(net, x, part.y_train, Objective("squared", d.objectives[0][1]))
        theta0 = net.initial().numpy()
        g0 = problem.gradient_norm(theta0)
        found = minimise(problem, theta0, CERTIFICATE.gradient * g0, d.max_calls, method)
        cert = certify(problem, found, g0)
        rows.append({"method": method, "p": net.size, "evaluations": found.count.evaluations,
                     "hvps": found.count.hvps, "seconds": found.count.seconds, "objective": found.value,
                     "relative_gradient": cert.relative_gradient, "certified": cert.certified})
    return rows
