"""The subset-minimum study on a ``tensor_tasks.TensorTask``: how far the minimum of a subset's loss lies from the
full-set minimum as the subset's Q = K·M/P varies, and whether starting from it saves work on the full set.

On a teacher task the true minimum is known (the teacher), which lets us measure directly what the paper can only
argue. Every fit is full-batch L-BFGS to (near) the minimum (``tensor_tasks.fit``).
"""

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import torch

from subsetlib import results
from subsetlib.errors import UserError
from subsetlib.lbfgs import Fit, flat
from subsetlib.planner import size_for_q
from subsetlib.protocols import run_id
from subsetlib.q import count_parameters, overdetermination_ratio
from subsetlib.results import RunResult
from subsetlib.tensor_tasks import TensorTask, aligned_distance, fit, loss_on, mlp


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


def check_sizes(inputs: int, hidden: int, outputs: int, k_train: int, target_qs: Sequence[float]) -> None:
    """Every target Q reachable with ``k_train`` examples of the teacher task ``mlp(inputs, hidden, outputs)``: the
    page's parameters checked together before its kernel starts (``subset_for_q`` applies the same rule)."""
    with torch.device("meta"):
        p = count_parameters(mlp(inputs, hidden, outputs))
    for target_q in target_qs:
        size_for_q(p, outputs, k_train, target_q, "the task", "lower it or enlarge k_train")


def subset_for_q(task: TensorTask, target_q: float, seed: int) -> torch.Tensor:
    """The first K = ⌈Q·P/M⌉ examples of a random order fixed by ``seed`` (nested across Q)."""
    n = len(task.y_train)
    k = size_for_q(task.count_parameters(), task.outputs, n, target_q, "the task", "lower it or enlarge k_train")
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
    p, m, n = task.count_parameters(), task.outputs, len(task.y_train)
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
