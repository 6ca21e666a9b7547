"""How the benchmarks time things: synchronized wall time, the load average recorded with every speed figure, and
subsetlib's own device-resident loop as a step-counted runner (``resident_loop``) that the loop comparison, the
variants and the speed run all time."""

import math
import os
import time
from collections.abc import Callable

import torch
from torch import nn

from subsetlib.data import Dataset
from subsetlib.errors import UserError
from subsetlib.models import build_model
from subsetlib.train import FlopMeter, Ledger, Numerics, make_optimizer, train_one_epoch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that perf_counter brackets the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_average() -> float:
    """The 1-minute load average: recorded with every speed figure, since the machine may be shared."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan




def check_positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise UserError(f"{name.replace('_', ' ')} must be > 0 (got {value})")


def timed(run: Callable[[int], None], steps: int, device: torch.device) -> float:
    """Wall seconds of ``run(steps)``, synchronized on both sides so queued GPU work is counted."""
    sync(device)
    start = time.perf_counter()
    run(steps)
    sync(device)
    return time.perf_counter() - start


def fresh_model(name: str, data: Dataset, seed: int, how: Numerics) -> nn.Module:
    """The same initial weights for every loop timed against another: the seed is set right before building."""
    torch.manual_seed(seed)
    return how.model(build_model(name, data.spec.shape, data.num_classes).to(data.device))


def resident_loop(data: Dataset, model: str | nn.Module, batch_size: int, augment: bool, seed: int, how: Numerics,
                  optimizer: torch.optim.Optimizer | None = None) -> Callable[[int], None]:
    """``run(n)``: n more steps of ``train_one_epoch`` on full batches, over as many passes as needed.

    Each pass trains on a random slice of whole batches of the training set, so the step count is exact. ``model``
    is a registry name, or a built (possibly compiled) model with its ``optimizer``.
    """
    net = fresh_model(model, data, seed, how) if isinstance(model, str) else model
    optimizer = optimizer or make_optimizer(net, "adam", 1e-3)
    flops = FlopMeter(getattr(net, "_orig_mod", net), data.spec.shape, data.num_classes)  # cached after 1st step
    generator = torch.Generator(device=data.device).manual_seed(seed)
    ledger = Ledger()
    n, per_pass = len(data.y_train), len(data.y_train) // batch_size

    def run(todo: int) -> None:
        goal = ledger.steps + todo
        while todo > 0:
            take = min(todo, per_pass)
            idx = torch.randperm(n, generator=generator, device=data.device)[: take * batch_size]
            train_one_epoch(net, optimizer, data, idx, batch_size, generator, ledger, flops, how, augment_data=augment)
            todo -= take
        assert ledger.steps == goal, (ledger.steps, goal)

    return run
