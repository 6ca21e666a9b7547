"""The overdetermination ratio Q = K·M/P: how many scalar constraints the training set puts on each parameter.

K training examples, each with an output vector of length M (the number of classes), fit P trainable
parameters. The paper argues that a subset is representative of the full set when its Q sufficiently exceeds 1.
This module is the arithmetic only; ``planner`` applies it to a model and a dataset.
"""

import math

from torch import nn

from subsetlib.errors import UserError


def count_parameters(model: nn.Module) -> int:
    """P: the number of trainable parameters (frozen ones do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def overdetermination_ratio(k: int, m: int, p: int) -> float:
    """Q = K·M/P."""
    if k < 0 or m <= 0 or p <= 0:
        raise UserError(f"Q needs K >= 0, M > 0 and P > 0 (got K={k}, M={m}, P={p})")
    return k * m / p


def min_subset_size(p: int, m: int, target_q: float) -> int:
    """The smallest K with K·M/P >= target_q."""
    if not 0 < target_q < math.inf:  # also NaN, which compares false to everything
        raise UserError(f"target Q must be a number > 0 (got {target_q})")
    if m <= 0 or p <= 0:
        raise UserError(f"P and M must be > 0 (got P={p}, M={m})")
    return math.ceil(target_q * p / m - 1e-9)
