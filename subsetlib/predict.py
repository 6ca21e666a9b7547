"""How far will a subset's minimum lie from the full set's, before the long training: the classical prediction,
estimated from a cheap pilot.

For a minimiser of K examples drawn from N, in the basin of the full-set minimum, the excess of the full-set
objective is about ½δᵀHδ with δ ≈ H⁻¹(ḡ_K − ḡ_N), whose covariance is H⁻¹ΣH⁻¹·(1 − K/N)/K (H the objective's
Hessian, Σ the covariance of the per-example gradients at the minimum). So the excess is a weighted sum of χ²₁
variables with weights μ_j·(1 − K/N)/(2K), μ_j the eigenvalues of H⁻¹Σ: its mean is tr(H⁻¹Σ)/(2K)·(1 − K/N), its
variance tr((H⁻¹Σ)²)·(1 − K/N)²/(2K²). ``excess`` gives the mean and a prediction interval (a scaled χ² with those
two moments, Satterthwaite's approximation), widened by the pilot's own uncertainty about tr(H⁻¹Σ).

``pilot`` estimates the two traces at a certified minimum on a sample of the data: exactly (the whole Hessian and
the per-example gradients) for P ≤ ``minimise.EXACT_HESSIAN_UP_TO``, else by Hutchinson probes with conjugate-gradient
solves on Hessian-vector products. Its cost is counted like any phase's.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from scipy.sparse.linalg import LinearOperator, cg

from subsetlib.errors import UserError, check_whole_number
from subsetlib.minimise import CERTIFICATE, EXACT_HESSIAN_UP_TO, Count, FlatModel, Objective, Problem, certify, minimise
from subsetlib.subsets import subset_of_size

CPU_PARAMETERS = 10_000  # above this a pilot belongs on a GPU (the certified study's GPU profile)


@dataclass(frozen=True)
class Pilot:
    """tr(H⁻¹Σ) (``effective_dimension``) with its standard error, tr((H⁻¹Σ)²), how they were estimated, on how many
    examples, whether the pilot's minimum was certified, and what the pilot cost."""

    effective_dimension: float
    standard_error: float
    second_moment: float
    method: str
    p: int
    examples: int
    certified: bool
    cost: Count


def _traces_exact(problem: Problem, theta: np.ndarray) -> tuple[float, float, float]:
    h = problem.hessian(theta)
    g = problem.per_example_gradients(theta)
    g = g - g.mean(axis=0)
    n = len(g)
    a = np.linalg.solve(h, g.T)  # H⁻¹ gᵢ, column by column
    per_example = np.einsum("ij,ji->i", g, a)  # gᵢᵀ H⁻¹ gᵢ
    d = float(per_example.sum() / (n - 1))
    se = float(per_example.std(ddof=1) * n / (n - 1) / math.sqrt(n))
    b = g @ a  # G H⁻¹ Gᵀ
    return d, se, float((b * b).sum() / (n - 1) ** 2)


def _traces_hutchinson(problem: Problem, theta: np.ndarray, probes: int, seed: int) -> tuple[float, float, float]:
    g = problem.per_example_gradients(theta)
    g = g - g.mean(axis=0)
    n, p = g.shape

    def sigma(v: np.ndarray) -> np.ndarray:
        return g.T @ (g @ v) / (n - 1)

    h = LinearOperator((p, p), matvec=lambda v: problem.hessp(theta, v.ravel()), dtype=np.float64)

    def solve(v: np.ndarray) -> np.ndarray:
        x, info = cg(h, v, rtol=1e-8, maxiter=10 * p)
        if info != 0:
            raise UserError("the pilot's Hessian solve did not converge: the pilot's minimum is not well posed; use "
                            "a larger λ (l2) or more pilot examples")
        return x

    rng = np.random.default_rng(seed)
    firsts, seconds = [], []
    for _ in range(probes):
        z = rng.choice([-1.0, 1.0], size=p)
        hz = solve(z)
        m_z = solve(sigma(z))  # H⁻¹Σz
        firsts.append(float(hz @ sigma(z)))  # zᵀ H⁻¹ Σ z (H symmetric)
        seconds.append(float(sigma(hz) @ m_z))  # (Mᵀz)·(Mz) = zᵀM²z
    return float(np.mean(firsts)), float(np.std(firsts, ddof=1) / math.sqrt(probes)), float(np.mean(seconds))


def pilot(net: FlatModel, x: torch.Tensor, y: torch.Tensor, objective: Objective, examples: int, seed: int = 0,
          max_calls: int = 20000, probes: int = 30) -> Pilot:
    """Minimise the objective on a stratified sample of ``examples`` of (x, y) from the net's initial weights, certify
    it, and estimate tr(H⁻¹Σ) and tr((H⁻¹Σ)²) there."""
    examples = check_whole_number(examples, "pilot examples", 2)
    if net.size > CPU_PARAMETERS:
        raise UserError(f"P = {net.size:,} is above {CPU_PARAMETERS:,}: a pilot takes hours on a CPU there; run it on "
                        "a GPU (the certified study's GPU profile: subsetlib/certified/design.py, mnist-gpu)")
    idx = subset_of_size(y, examples, seed)
    problem = Problem(net, x[idx], y[idx], objective)
    theta0 = net.initial().numpy()
    g0 = problem.gradient_norm(theta0)
    found = minimise(problem, theta0, CERTIFICATE.gradient * g0, max_calls)
    cert = certify(problem, found, g0)
    if net.size <= EXACT_HESSIAN_UP_TO:
        d, se, second = _traces_exact(problem, found.theta)
        method = "exact"
    else:
        d, se, second = _traces_hutchinson(problem, found.theta, probes, seed)
        method = f"Hutchinson, {probes} probes"
    return Pilot(d, se, second, method, net.size, examples, cert.certified, problem.count)


@dataclass(frozen=True)
class Excess:
    k: int
    mean: float
    low: float
    high: float


def excess(p: Pilot, k: int, n: int, level: float = 0.9) -> Excess:
    """The predicted excess of the full-set objective at a K-example subset's minimum (N examples in all): its mean
    and a ``level`` prediction interval (a scaled χ² with the distribution's two moments; the lower end uses
    tr(H⁻¹Σ) one standard error below the pilot's estimate, the upper end one above)."""
    k, n = check_whole_number(k, "K"), check_whole_number(n, "N")
    if k > n:
        raise UserError(f"K = {k} exceeds N = {n}: a subset is at most the whole set")
    shrink = (1 - k / n) / (2 * k)
    mean = p.effective_dimension * shrink

    def quantile(q: float, d: float) -> float:
        if d <= 0 or shrink == 0:
            return 0.0
        m, var = d * shrink, 2 * p.second_moment * shrink**2 * (d / p.effective_dimension) ** 2
        scale, dof = var / (2 * m), 2 * m * m / var
        return float(scale * stats.chi2.ppf(q, dof))

    tail = (1 - level) / 2
    return Excess(k, mean, quantile(tail, p.effective_dimension - p.standard_error),
                  quantile(1 - tail, p.effective_dimension + p.standard_error))


def smallest_k(p: Pilot, target: float, n: int) -> int:
    """The smallest K whose predicted mean excess is at most ``target``: K ≥ d·N / (2·target·N + d)."""
    if not target > 0:
        raise UserError(f"the target excess must be > 0 (got {target!r})")
    d = p.effective_dimension
    return max(1, min(n, math.ceil(d * n / (2 * target * n + d))))


def network_for(model: str, width: int, in_shape: tuple[int, ...], classes: int, seed: int) -> FlatModel:
    """The pilot's network: "mlp" (the certified study's tanh MLP of ``width`` on flat features), a registry model
    name, or an importable factory "package.module:function" called with (input shape, classes)."""
    torch.manual_seed(seed)
    if model == "mlp":
        from subsetlib.certified.runs import network

        return network(int(np.prod(in_shape)), width, classes, seed)
    if ":" in model:
        import importlib

        where, name = model.split(":", 1)
        try:
            factory = getattr(importlib.import_module(where), name)
        except (ImportError, AttributeError) as err:
            raise UserError(f"cannot import the model factory {model!r} ({err}): give package.module:function, "
                            "importable from the working folder") from None
        module = factory(tuple(in_shape), classes)
        if not isinstance(module, torch.nn.Module):
            raise UserError(f"{model} returned {type(module).__name__}, not a torch.nn.Module")
        return FlatModel(module)
    from subsetlib.models import build_model

    return FlatModel(build_model(model, tuple(in_shape), classes))


def inputs(dataset: str, train_size: int, pool: int, flat: bool) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A stratified part of ``train_size`` training examples of a registered dataset (seed 0), average-pooled by
    ``pool`` and standardised per feature, as float64 (flat vectors for the MLP, else images); and its name."""
    from subsetlib.certified.runs import features

    part, x, _ = features(dataset, train_size, pool)
    if not flat:
        c, h, w = part.spec.shape
        x = x.reshape(len(x), c, h // pool, w // pool)
    return x, part.y_train, f"{dataset}-{train_size}"


def trusted_from(results_dir: str, loss: str, l2: float) -> float | None:
    """Where the certified study's validation trusts the prediction for this objective: the smallest Q at which it
    holds, with no larger Q (any dataset or width) where it breaks down; NaN where no such Q exists; None where the
    study stored no runs of this objective (not validated)."""
    from subsetlib.certified import analysis, runs
    from subsetlib.certified.rules import trusted

    try:
        arms, _ = runs.load(results_dir)
    except UserError:
        return None
    table = analysis.prediction(arms)
    table = table[(table["loss"] == loss) & np.isclose(table["l2"], l2)]
    return trusted(table["q"].tolist(), table["verdict"].tolist()) if len(table) else None


PILOT_SHARE = 5  # a validation pilot uses N / 5 of the design's full set (500 of 2,500)


def run_pilots(design_name: str, results_dir: str, pilots_dir: str) -> list[str]:
    """For every group of a design stored in ``results_dir`` that has no pilot in ``pilots_dir`` yet: the pilot
    (a certified minimum on N/5 examples, seed's sample and weights) and its traces, stored with provenance."""
    from datetime import UTC, datetime

    from subsetlib import results
    from subsetlib.certified.design import design
    from subsetlib.certified.runs import features, load, network

    d = design(design_name)
    arms, _ = load(results_dir)
    scratch = arms[(arms["arm"] == "scratch") & (arms["full_set"] == d.full_name)]
    part, x, _ = features(d.dataset, d.train_size, d.pool)
    ran = []
    for _, group in scratch.iterrows():
        rid = f"{group['run_id']}-pilot"
        if results.has_run(pilots_dir, rid):
            continue
        started = datetime.now(UTC)
        net = network(x.shape[1], int(group["width"]), part.num_classes, int(group["seed"]))
        p = pilot(net, x, part.y_train, Objective(group["loss"], float(group["l2"])), d.train_size // PILOT_SHARE,
                  int(group["seed"]), d.max_calls)
        row = {"run_id": rid, "group_id": group["run_id"], "dataset": d.dataset, "full_set": d.full_name,
               "width": int(group["width"]), "loss": group["loss"], "l2": float(group["l2"]),
               "seed": int(group["seed"]), "pilot_examples": p.examples, "effective_dimension": p.effective_dimension,
               "standard_error": p.standard_error, "second_moment": p.second_moment, "method": p.method,
               "p": p.p, "certified": p.certified, **{f"pilot_{k}": v for k, v in p.cost.as_dict().items()}}
        results.save(results.RunResult([], row), part, pilots_dir, started)
        ran.append(rid)
    return ran


def validation(arms, pilots, level: float = 0.9):
    """Each certified subset arm's measured excess against its group's pilot prediction: the interval, whether it
    covers the measurement, and predicted ÷ measured."""
    import pandas as pd

    from subsetlib.certified.analysis import pairs

    table = pairs(arms)
    table = table[(table["arm"] == "subset") & table["both_certified"]]
    by_group = pilots.set_index("group_id")
    rows = []
    for _, arm in table.iterrows():
        if arm["run_id"] not in by_group.index:
            continue
        g = by_group.loc[arm["run_id"]]
        p = Pilot(g["effective_dimension"], g["standard_error"], g["second_moment"], g["method"], int(g["p"]),
                  int(g["pilot_examples"]), bool(g["certified"]), None)
        e = excess(p, int(arm["k"]), int(arm["n"]), level)
        rows.append({**{k: arm[k] for k in ("run_id", "dataset", "width", "p", "loss", "l2", "seed", "q", "k")},
                     "measured": arm["excess"], "predicted": e.mean, "low": e.low, "high": e.high,
                     "covered": bool(e.low <= arm["excess"] <= e.high),
                     "predicted_over_measured": e.mean / arm["excess"] if arm["excess"] > 0 else math.nan})
    return pd.DataFrame(rows)


COVERAGE_COLUMNS = {"dataset": "dataset", "objective": "objective", "p": "P", "arms": "arms",
                    "coverage": "covered by the 90 % interval", "median_ratio": "predicted ÷ measured (median)",
                    "lowest_q_covered": "smallest Q from which ≥ 80 % are covered"}


def coverage(valid, level: float = 0.9):
    """Per (dataset, objective, width): how often the pilot's interval covered the measured excess (nominal
    ``level``), the median predicted ÷ measured, and the smallest Q from which at least 80 % of arms were covered at
    every larger Q."""
    import pandas as pd

    from subsetlib.certified.analysis import objective_text
    from subsetlib.certified.rules import frontier

    rows = []
    for (dataset, loss, l2, p), g in valid.groupby(["dataset", "loss", "l2", "p"], sort=True):
        per_q = g.groupby("q")["covered"].mean()
        words = ["ok" if c >= 0.8 else "no" for c in per_q]
        rows.append({"dataset": dataset, "objective": objective_text(loss, l2), "p": int(p), "arms": len(g),
                     "coverage": float(g["covered"].mean()), "nominal": level,
                     "median_ratio": float(g["predicted_over_measured"].median()),
                     "lowest_q_covered": frontier(list(per_q.index), words, "ok")})
    return pd.DataFrame(rows, columns=[*COVERAGE_COLUMNS, "nominal"])


PILOT_COLUMNS = {"objective": "objective", "p": "P", "pilots": "pilots", "certified": "certified",
                 "examples": "examples", "evaluations": "evaluations (median)", "seconds": "seconds (median)",
                 "ratio": "tr(H⁻¹Σ) ÷ P (median)"}


def pilot_costs(pilots):
    """Per objective and width: how many pilots, how many certified, and their median cost and tr(H⁻¹Σ) ÷ P."""
    import pandas as pd

    from subsetlib.certified.analysis import objective_text

    rows = [{"objective": objective_text(loss, l2), "p": int(p), "pilots": len(g),
             "certified": int(g["certified"].sum()),
             "examples": int(g["pilot_examples"].iloc[0]), "evaluations": int(g["pilot_evaluations"].median()),
             "seconds": float(g["pilot_seconds"].median()), "ratio": float((g["effective_dimension"] / p).median())}
            for (loss, l2, p), g in pilots.groupby(["loss", "l2", "p"], sort=True)]
    return pd.DataFrame(rows, columns=list(PILOT_COLUMNS))
