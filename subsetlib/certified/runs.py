"""The study's runs: ``train`` makes what is missing, ``load`` reads what is stored (two calls, no hidden mode).

One stored run is one *group*: a (design, width, objective, λ, seed). Every arm of a group starts from the same
initial weights θ₀ (the seed's):

- ``scratch``: the full set minimised from θ₀, certified, with tr(H⁻¹Σ) at its minimum;
- ``subset``: for each Q of the grid with K < N, the nested stratified subset of K examples minimised from θ₀ and
  certified on its own objective, then measured on the full set (objective, data loss, accuracy) and the test set;
- ``finetune``: for the design's fine-tuned Qs, the full set minimised from that subset's minimum, certified, and its
  distance to the scratch minimum.

``runs/<id>.parquet`` holds one row per arm (the certificate, the cost, the measurements); ``curves/<id>.parquet`` one
row per iteration of the scratch and fine-tuning phases (the objective and the cost so far), for costs to a target.
"""

import functools
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from subsetlib import results
from subsetlib.certified.design import Design, check_cell, subset_size
from subsetlib.data import Dataset
from subsetlib.data import load as load_data
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
)
from subsetlib.subsets import membership_hash, subset_of_size

PRECISION = "fp64"


@functools.cache
def features(dataset: str, train_size: int, pool: int) -> tuple[Dataset, torch.Tensor, torch.Tensor]:
    """The design's full set (a stratified part of N training examples, seed 0, under its own name) and the whole
    test set, as pooled, standardised float64 features: (part, x_train, x_test)."""
    data = load_data(dataset, device="cpu")
    idx = subset_of_size(data.y_train, train_size, 0)
    part = Dataset(data.spec, data.x_train[idx], data.y_train[idx], data.x_test, data.y_test,
                   f"{data.root} (stratified part: {train_size} training examples, seed 0; whole test set)")

    def pooled(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x.double() / 255, pool).flatten(1)

    x_train, x_test = pooled(part.x_train), pooled(part.x_test)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-3
    return part, (x_train - mean) / std, (x_test - mean) / std


def network(inputs: int, width: int, classes: int, seed: int) -> FlatModel:
    """The tanh MLP with the seed's initial weights (torch's default initialisation)."""
    torch.manual_seed(seed)
    return FlatModel(nn.Sequential(nn.Linear(inputs, width), nn.Tanh(), nn.Linear(width, classes)))


def group_id(d: Design, width: int, loss: str, l2: float, seed: int) -> str:
    settings = {"study": "certified", "full": d.full_name, "pool": d.pool, "width": width, "loss": loss, "l2": l2,
                "seed": seed, "qs": list(d.qs), "finetune_qs": list(d.finetune_qs), "max_calls": d.max_calls,
                "method": d.method, "gradient_tol": CERTIFICATE.gradient, "curvature_tol": CERTIFICATE.curvature}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return f"certified-{d.full_name}-w{width}-{loss}-l2{l2:g}-s{seed}-{digest}"


def _measure(net: FlatModel, theta: np.ndarray, objective: Objective, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Objective, data loss and accuracy of ``theta`` on examples (not counted: a measurement, not training)."""
    t = torch.from_numpy(theta)
    with torch.no_grad():
        out = net(t, x)
        data_loss = float(objective.per_example(out, y).mean())
        return {"objective": data_loss + 0.5 * objective.l2 * float(t.square().sum()), "data_loss": data_loss,
                "accuracy": float((out.argmax(1) == y).double().mean())}


def _phase_row(arm: str, q: float | None, k: int, found: Minimum, problem: Problem, g0: float) -> dict:
    cert = certify(problem, found, g0)
    return {"arm": arm, "q": q, "k": k, "stopped": found.stopped, "on_budget": found.on_budget,
            "iterations": found.iterations, "calls": found.count.calls, "evaluations": found.count.evaluations,
            "hvps": found.count.hvps, "examples": found.count.examples, "flops": found.count.flops,
            "seconds": found.count.seconds, "phase_objective": found.value,
            "gradient_norm": cert.gradient_norm,
            "relative_gradient": cert.relative_gradient, "lambda_min": cert.lambda_min,
            "lambda_max": cert.lambda_max, "certified": cert.certified,
            "param_norm": float(np.linalg.norm(found.theta))}


def run_group(d: Design, width: int, loss: str, l2: float, seed: int) -> results.RunResult:
    """Every arm of one group (see the module's docstring), in float64 on the CPU."""
    part, x, x_test = features(d.dataset, d.train_size, d.pool)
    y, y_test, classes = part.y_train, part.y_test, part.num_classes
    objective = Objective(loss, l2)
    net = network(x.shape[1], width, classes, seed)
    p = net.size
    theta0 = net.initial().numpy()
    full = Problem(net, x, y, objective)
    g0_full = full.gradient_norm(theta0)
    gtol = CERTIFICATE.gradient

    def measured(theta: np.ndarray) -> dict:
        on_full = _measure(net, theta, objective, x, y)
        on_test = _measure(net, theta, objective, x_test, y_test)
        return {"full_objective": on_full["objective"], "full_data_loss": on_full["data_loss"],
                "train_accuracy": on_full["accuracy"], "test_data_loss": on_test["data_loss"],
                "test_accuracy": on_test["accuracy"]}

    rows, curves = [], []
    scratch = minimise(full, theta0, gtol * g0_full, d.max_calls, d.method)
    row = _phase_row("scratch", None, len(y), scratch, full, g0_full)
    rows.append({**row, **measured(scratch.theta), "effective_dimension": effective_dimension(full, scratch.theta),
                 "distance_to_scratch": 0.0, "subset_hash": membership_hash(torch.arange(len(y))),
                 "theta": scratch.theta.tolist()})  # for the distances between seeds' minima
    curves += [{"arm": "scratch", "q": None, **r} for r in scratch.trajectory]
    for q in d.qs:
        k = subset_size(q, p, classes)
        if k >= len(y):
            continue
        idx = subset_of_size(y, k, seed)
        sub = Problem(net, x[idx], y[idx], objective)
        g0 = sub.gradient_norm(theta0)
        found = minimise(sub, theta0, gtol * g0, d.max_calls, d.method)
        rows.append({**_phase_row("subset", q, k, found, sub, g0), **measured(found.theta),
                     "distance_to_scratch": float(np.linalg.norm(found.theta - scratch.theta)),
                     "subset_hash": membership_hash(idx)})
        if q in d.finetune_qs:
            tuned = minimise(full, found.theta, gtol * g0_full, d.max_calls, d.method)
            rows.append({**_phase_row("finetune", q, len(y), tuned, full, g0_full), **measured(tuned.theta),
                         "distance_to_scratch": float(np.linalg.norm(tuned.theta - scratch.theta)),
                         "subset_hash": membership_hash(idx)})
            curves += [{"arm": "finetune", "q": q, **r} for r in tuned.trajectory]
    rid = group_id(d, width, loss, l2, seed)
    shared = {"run_id": rid, "study": "certified", "dataset": d.dataset, "full_set": d.full_name, "n": len(y),
              "pool": d.pool, "inputs": x.shape[1], "width": width, "p": p, "classes": classes, "loss": loss,
              "l2": l2, "seed": seed, "method": d.method, "max_calls": d.max_calls, "precision": PRECISION,
              "gradient_tol": gtol, "curvature_tol": CERTIFICATE.curvature,
              "initial_gradient_norm": g0_full}
    return results.RunResult([{**shared, **c} for c in curves], {**shared, "arms": json.dumps(rows)})


def stored_ids(d: Design, width: int) -> list[str]:
    return [group_id(d, width, loss, l2, s) for loss, l2 in d.objectives for s in d.seeds]


def train(design_name: str, width: int, results_dir: str | os.PathLike) -> list[str]:
    """Run and store every group of a (design, width) cell that is not stored yet; returns the ids it ran."""
    d = check_cell(design_name, width)
    torch.set_num_threads(int(os.environ.get("SUBSETLIB_THREADS", "1")))
    ran = []
    for loss, l2 in d.objectives:
        for seed in d.seeds:
            rid = group_id(d, width, loss, l2, seed)
            if results.has_run(results_dir, rid):
                continue
            started = datetime.now(UTC)
            result = run_group(d, width, loss, l2, seed)
            part = features(d.dataset, d.train_size, d.pool)[0]
            results.save(result, part, results_dir, started)
            ran.append(rid)
            print(f"stored {rid}", flush=True)
    return ran


def train_design(design_name: str, results_dir: str | os.PathLike) -> list[str]:
    """``train`` for every width of a design (nothing runs where every group is stored)."""
    from subsetlib.certified.design import design

    return [rid for width in design(design_name).widths for rid in train(design_name, width, results_dir)]


def load(results_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every stored arm (one row each, with its group's settings and provenance) and the iteration curves; a folder
    without any of the study's runs is a UserError naming the command that makes them."""
    groups = results.load(results_dir) if Path(results_dir, "runs").is_dir() else pd.DataFrame()
    if not groups.empty:
        groups = groups[groups["study"] == "certified"] if "study" in groups else groups.iloc[:0]
    if groups.empty:
        raise UserError(f"no run of the study at certified minima is stored in {results_dir}: make them with "
                        "python -m subsetlib batch grids/certified.yaml")
    arms = [{**g.drop("arms").to_dict(), **a} for _, g in groups.iterrows() for a in json.loads(g["arms"])]
    curves = results.load(results_dir, "curves")
    return pd.DataFrame(arms), curves[curves["run_id"].isin(groups["run_id"])]
