"""Non-image tasks where K, M and P are set by hand, and their full-batch fitting: a teacher-student regression and a
small real tabular set.

A fixed random teacher network labels random Gaussian inputs; a student of the same architecture can fit them
exactly, so the true minimum is known (the teacher, loss zero without label noise). These tasks are float tensors
with a mean-squared-error or cross-entropy loss, which the image machinery (``data.Dataset``: uint8 N×C×H×W images,
cross-entropy, mini-batch Adam) does not hold; so they are ``TensorTask``s, fitted by full-batch L-BFGS
(``lbfgs.minimize``; the objects are small, one batch is the whole set). A ``TensorTask`` has the ``device`` and
``root`` that provenance reads, so its runs are stored with ``results.save`` like every other run.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from subsetlib.errors import UserError
from subsetlib.lbfgs import Fit, FullBatchLoss, flat, minimize
from subsetlib.q import count_parameters
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

    def count_parameters(self) -> int:
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
