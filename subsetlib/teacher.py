"""Non-image tasks where K, M and P are set by hand: a teacher-student regression and a small real tabular set.

A fixed random teacher network labels random Gaussian inputs; a student of the same architecture can fit them
exactly, so the true minimum is known (the teacher, loss zero without label noise). That lets us measure directly
what the paper can only argue: how far the minimum of a subset's loss lies from the full-set minimum as the subset's
Q = K·M/P varies, and whether starting from it saves work on the full set.

These tasks are float tensors with a mean-squared-error or cross-entropy loss, which the image machinery
(``data.Dataset``: uint8 N×C×H×W images, cross-entropy, mini-batch Adam) does not hold; so this module keeps them
as a ``TensorTask``, fitted by full-batch L-BFGS (``lbfgs.minimize``; the objects are small, one batch is the whole
set). Its runs are stored with ``results.save`` like every other run (a ``TensorTask`` has the ``device`` and ``root``
that provenance reads).
"""

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import torch
import torch.nn.functional as F
from torch import nn

from subsetlib import results
from subsetlib.errors import UserError
from subsetlib.lbfgs import Fit, FullBatchLoss, flat, minimize
from subsetlib.planner import size_for_q
from subsetlib.protocols import run_id
from subsetlib.q import count_parameters, overdetermination_ratio
from subsetlib.results import RunResult
from subsetlib.train import FlopMeter, Ledger

DTYPE = torch.float64  # near a minimum, float32 rounding would hide the distances this module measures


@dataclass
class TensorTask:
    """Examples as float tensors plus their loss: ``mse`` (regression, M outputs) or ``ce`` (M classes)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor  # for a teacher task: the teacher's noise-free outputs (distance to the teacher function)
    loss: str
    outputs: int  # M
    hidden: int  # the student's hidden width, which sets P
    root: str  # where the examples came from (provenance)
    teacher: nn.Module | None = None

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @property
    def inputs(self) -> int:
        return self.x_train.shape[1]

    def student(self, seed: int) -> nn.Module:
        """A fresh student (one tanh hidden layer) initialised from ``seed``."""
        torch.manual_seed(seed)
        return mlp(self.inputs, self.hidden, self.outputs).to(self.device)

    @property
    def parameter_count(self) -> int:
        """P of the student (counted on the meta device: no weights drawn from the global random state)."""
        with torch.device("meta"):
            return count_parameters(mlp(self.inputs, self.hidden, self.outputs))


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """One tanh hidden layer: smooth, so L-BFGS can converge tightly; P = (inputs + 1)·hidden + (hidden + 1)·M."""
    if min(inputs, hidden, outputs) <= 0:
        raise UserError(f"inputs, hidden and outputs must be > 0 (got {inputs}, {hidden}, {outputs})")
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs)).to(DTYPE)


def teacher_task(inputs: int = 10, hidden: int = 20, outputs: int = 5, k_train: int = 4000, k_test: int = 2000,
                 noise: float = 0.0, seed: int = 0, gain: float = 2.0, device: str = "cpu") -> TensorTask:
    """A random teacher ``mlp(inputs, hidden, outputs)`` (weights N(0, gain²/fan_in), so that tanh is used in its
    non-linear range) labels N(0, I) inputs; ``noise`` adds Gaussian label noise of that std times the outputs' std
    to the training targets only. The test targets are the teacher's noise-free outputs."""
    if k_train <= 0 or k_test <= 0:
        raise UserError(f"k_train and k_test must be > 0 (got {k_train}, {k_test})")
    if noise < 0 or gain <= 0:
        raise UserError(f"noise must be >= 0 and gain > 0 (got {noise}, {gain})")
    gen = torch.Generator().manual_seed(10_000 + seed)
    teacher = mlp(inputs, hidden, outputs)
    with torch.no_grad():
        for layer in (teacher[0], teacher[2]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen, dtype=DTYPE) * gain
                               / math.sqrt(layer.in_features))
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen, dtype=DTYPE) * 0.1 * gain)
        x_train = torch.randn(k_train, inputs, generator=gen, dtype=DTYPE)
        x_test = torch.randn(k_test, inputs, generator=gen, dtype=DTYPE)
        y_train, y_test = teacher(x_train), teacher(x_test)
        if noise:
            y_train = y_train + noise * y_train.std() * torch.randn(y_train.shape, generator=gen, dtype=DTYPE)
    root = (f"teacher-student, made in memory: teacher mlp({inputs}, {hidden}, {outputs}), gain {gain}, "
            f"label noise {noise}, seed {seed}")
    name = f"teacher-{inputs}-{hidden}-{outputs}-noise{noise:g}"
    return TensorTask(name, x_train.to(device), y_train.to(device), x_test.to(device), y_test.to(device), "mse",
                      outputs, hidden, root, teacher.to(device))


TABULAR = {"breast-cancer": "load_breast_cancer", "wine": "load_wine"}


def tabular_task(name: str = "breast-cancer", hidden: int = 8, test_fraction: float = 0.25, seed: int = 0,
                 device: str = "cpu") -> TensorTask:
    """A real tabular classification set shipped inside scikit-learn's wheel (no download), standardised with the
    training split's mean and std. Needs ``scikit-learn``."""
    if name not in TABULAR:
        raise UserError(f"unknown tabular set {name!r}: choose one of {', '.join(TABULAR)}")
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must lie in (0, 1) (got {test_fraction})")
    try:
        import sklearn
        from sklearn import datasets
    except ImportError:
        raise UserError("the tabular sets come with scikit-learn: pip install 'scikit-learn>=1.5'") from None
    bunch = getattr(datasets, TABULAR[name])()
    x = torch.as_tensor(bunch.data, dtype=DTYPE)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-12)
    x = (x - mean) / std
    m = int(y.max()) + 1
    root = f"scikit-learn {sklearn.__version__} datasets.{TABULAR[name]}() (shipped in the package), split seed {seed}"
    return TensorTask(name, x[train].to(device), y[train].to(device), x[test].to(device), y[test].to(device), "ce",
                      m, hidden, root)


# ---------------------------------------------------------------------------------------------------------------------
# Full-batch fitting


def task_loss(task: TensorTask, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean loss: squared error summed over the M outputs (so it is K·M equations), or cross-entropy."""
    if task.loss == "mse":
        return ((output - target) ** 2).sum(1).mean()
    return F.cross_entropy(output, target)


def fit(model: nn.Module, task: TensorTask, x: torch.Tensor, y: torch.Tensor, max_iterations: int = 2000,
        weight_decay: float = 0.0, history_size: int = 50) -> Fit:
    """Train ``model`` to (near) the minimum of its full-batch loss on (x, y) with ``lbfgs.minimize``, logging the
    task's loss after every iteration (for cost-to-target). ``weight_decay`` adds (λ/2)·‖θ‖², which gives a
    classification loss on separable data a finite minimum; the logged objective is the loss without it."""
    if max_iterations <= 0:
        raise UserError(f"max_iterations must be > 0 (got {max_iterations})")
    per_eval = FlopMeter(model, (task.inputs,), task.outputs)(len(y))
    weights = list(model.parameters())
    if task.loss == "mse":
        def loss_sum(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return ((out - target) ** 2).sum()
    else:
        def loss_sum(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(out, target, reduction="sum")

    def penalty() -> torch.Tensor:
        return 0.5 * weight_decay * sum((p ** 2).sum() for p in weights)

    closure = FullBatchLoss(model, x, y, Ledger(), lambda k: per_eval, len(y) or 1, loss_sum,
                            penalty if weight_decay else None)

    def objective() -> float:
        if closure.ended_here() and not weight_decay:
            return float(closure.loss)  # the line search ended on its last evaluation: no need to recompute
        with torch.no_grad():
            return task_loss(task, model(x), y).item()

    threads = torch.get_num_threads()
    if task.device.type == "cpu":
        torch.set_num_threads(1)  # a problem this small runs several times faster on one thread than on two
    try:
        return minimize(closure, max_iterations, history_size, tolerance_grad=1e-10, tolerance_change=1e-14,
                        objective=objective)
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def loss_on(model: nn.Module, task: TensorTask, split: str = "train", indices: torch.Tensor | None = None
            ) -> tuple[float, float]:
    """(mean loss, accuracy) on a split or on ``indices`` of the training set; accuracy is NaN for regression."""
    x, y = (task.x_train, task.y_train) if split == "train" else (task.x_test, task.y_test)
    if indices is not None:
        x, y = x[indices], y[indices]
    out = model(x)
    acc = (out.argmax(1) == y).double().mean().item() if task.loss == "ce" else math.nan
    return task_loss(task, out, y).item(), acc


def aligned_distance(student: nn.Module, teacher: nn.Module) -> float:
    """‖θ_student − θ_teacher‖ / ‖θ_teacher‖ after undoing the symmetries of a one-hidden-layer tanh network: hidden
    units may be permuted, and flipping the sign of a unit's incoming weights, bias and outgoing weights leaves the
    function unchanged. Units are matched greedily (the closest pair first), which is exact when the student is
    close to the teacher and an upper bound otherwise."""
    def units(net: nn.Module) -> torch.Tensor:
        first, last = net[0], net[2]
        return torch.cat([first.weight, first.bias[:, None], last.weight.T], 1).detach()

    s, t = units(student), units(teacher)
    d_in = student[0].in_features + 1
    flipped = torch.cat([-s[:, :d_in], -s[:, d_in:]], 1)
    cost = torch.minimum(torch.cdist(s, t) ** 2, torch.cdist(flipped, t) ** 2)
    total, free_s, free_t = 0.0, set(range(len(s))), set(range(len(t)))
    for flat_index in cost.flatten().argsort().tolist():
        i, j = divmod(flat_index, len(t))
        if i in free_s and j in free_t:
            total += cost[i, j].item()
            free_s.discard(i)
            free_t.discard(j)
    total += ((student[2].bias - teacher[2].bias) ** 2).sum().item()
    return math.sqrt(total) / flat(teacher.parameters()).norm().item()


# ---------------------------------------------------------------------------------------------------------------------
# The study: subset minima against the full-set minimum, across Q


@dataclass(frozen=True)
class MinimumStudyConfig:
    """Everything shared by the runs of one subset-minimum study (it keys their run ids)."""

    task: str  # the task's name (teacher-… or a tabular set)
    root: str
    max_iterations: int = 2000
    weight_decay: float = 0.0
    history_size: int = 50
    continue_iterations: int = 2000  # full-set L-BFGS after the subset minimum (cost to reach the full minimum)
    target_fraction: float = 1e-3  # reached: loss <= L* + target_fraction · (L_init − L*)


def subset_for_q(task: TensorTask, target_q: float, seed: int) -> torch.Tensor:
    """The first K = ⌈Q·P/M⌉ examples of a random order fixed by ``seed`` (nested across Q)."""
    n = len(task.y_train)
    k = size_for_q(task.parameter_count, task.outputs, n, target_q, "the task", "lower it or enlarge k_train")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:k].to(task.device)


def first_reaching(trajectory: Sequence[tuple[int, float]], target: float, offset: int = 0) -> float:
    """Examples processed (plus ``offset``) when the objective first reached ``target``; NaN if never."""
    for examples, loss in trajectory:
        if loss <= target:
            return float(offset + examples)
    return math.nan


def study_run_id(cfg: MinimumStudyConfig, seed: int, target_q: float | None) -> str:
    return run_id("teacher-student" if cfg.task.startswith("teacher") else "tabular-subset", cfg, seed,
                  target_q=target_q)


def subset_minimum_study(task: TensorTask, cfg: MinimumStudyConfig, seed: int, target_qs: Sequence[float],
                         results_dir: str | None = None) -> list[RunResult]:
    """For one seed: fit the full set from the seed's initialisation (the full-set minimum θ*), then, from the same
    initialisation, each subset of target Q to its own minimum θ_Q; measure the full-set loss at θ_Q, ‖θ_Q − θ*‖,
    the distance to the teacher's function (test loss) and parameters, and the cost of continuing from θ_Q on the
    full set until it reaches the full-set minimum, against the cost from scratch. One RunResult per Q (the full
    set is the one with target_q None). With ``results_dir``, a seed whose runs are all stored is loaded, not rerun
    (its runs depend on one another through θ*, so a seed is redone whole), and new runs are saved."""
    if cfg.task != task.name or cfg.root != task.root:
        raise UserError(f"study config names task {cfg.task!r} but the task given is {task.name!r}")
    ids = [study_run_id(cfg, seed, q) for q in [None, *target_qs]]
    if results_dir is not None and all(results.has_run(results_dir, rid) for rid in ids):
        return [results.load_run(results_dir, rid) for rid in ids]
    started = datetime.now(UTC)
    p, m, n = task.parameter_count, task.outputs, len(task.y_train)
    full_model = task.student(seed)
    init_loss, _ = loss_on(full_model, task)
    full_fit = fit(full_model, task, task.x_train, task.y_train, cfg.max_iterations, cfg.weight_decay,
                           cfg.history_size)
    theta_full = flat(full_model.parameters())
    full_loss, _ = loss_on(full_model, task)
    target = full_loss + cfg.target_fraction * (init_loss - full_loss)
    scratch_cost = first_reaching(full_fit.trajectory, target)
    runs = []
    for q in [None, *target_qs]:
        if q is None:
            model, fitted, indices = full_model, full_fit, torch.arange(n, device=task.device)
            after = Fit()
        else:
            indices = subset_for_q(task, q, seed)
            model = task.student(seed)
            fitted = fit(model, task, task.x_train[indices], task.y_train[indices], cfg.max_iterations,
                                 cfg.weight_decay, cfg.history_size)
        k = len(indices)
        subset_loss, subset_acc = loss_on(model, task, "train", indices)
        full_at, full_acc = loss_on(model, task)
        test_loss, test_acc = loss_on(model, task, "test")
        theta = flat(model.parameters())
        row = {"protocol": "teacher-student" if task.teacher is not None else "tabular-subset", "seed": seed,
               "task": task.name, "loss": task.loss, "P": p, "M": m, "K": k, "K_full": n,
               "Q": overdetermination_ratio(k, m, p), "Q_full": overdetermination_ratio(n, m, p),
               "target_q": q, "subset_fraction": k / n,
               "subset_loss": subset_loss, "subset_acc": subset_acc,
               "full_loss_at_subset_min": full_at, "full_acc_at_subset_min": full_acc,
               "full_loss_at_full_min": full_loss, "excess_full_loss": full_at - full_loss,
               "test_loss": test_loss, "test_acc": test_acc,
               "param_distance_to_full_min": (theta - theta_full).norm().item() / theta_full.norm().item(),
               "param_distance_to_teacher": (aligned_distance(model, task.teacher) if task.teacher is not None
                                             else math.nan),
               "iterations": fitted.iterations, "evaluations": fitted.evaluations, "examples": fitted.examples,
               "flops": fitted.flops, "train_seconds": fitted.seconds, "stopped": fitted.stopped}
        if q is not None:  # the paper's question: does the subset minimum shorten the way to the full minimum?
            after = fit(model, task, task.x_train, task.y_train, cfg.continue_iterations, cfg.weight_decay,
                                cfg.history_size)
        row["cost_to_full_min_examples"] = (scratch_cost if q is None
                                            else first_reaching(after.trajectory, target, fitted.examples))
        row["cost_to_full_min_ratio"] = row["cost_to_full_min_examples"] / scratch_cost
        row["full_loss_after_continuing"] = after.trajectory[-1][1] if after.trajectory else full_loss
        rid = study_run_id(cfg, seed, q)
        curve = [{"run_id": rid, "protocol": row["protocol"], "seed": seed, "target_q": q, "Q": row["Q"],
                  "phase": "subset" if q is not None else "full", "iteration": i + 1, "examples": ex,
                  "objective": loss} for i, (ex, loss) in enumerate(fitted.trajectory)]
        curve += [{"run_id": rid, "protocol": row["protocol"], "seed": seed, "target_q": q, "Q": row["Q"],
                   "phase": "continue-full", "iteration": fitted.iterations + i + 1, "examples": fitted.examples + ex,
                   "objective": loss} for i, (ex, loss) in enumerate(after.trajectory)]
        runs.append(RunResult(curve, {"run_id": rid, **asdict(cfg), **row,
                                      "scratch_cost_examples": scratch_cost, "target_loss": target,
                                      "init_loss": init_loss, "config": json.dumps(asdict(cfg))}))
    if results_dir is not None:
        for run in runs:
            results.save(run, task, results_dir, started)
    return runs
