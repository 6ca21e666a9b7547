"""The overdetermination ratio Q = K·M/P: how many scalar constraints the training set puts on each parameter.

K training examples, each with an output vector of length M (the number of classes), fit P trainable
parameters. The paper argues that a subset is representative of the full set when its Q sufficiently exceeds 1.
"""

import math
import numbers
from collections.abc import Sequence

import pandas as pd
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


def min_subset_size(p: int, m: int, q_target: float) -> int:
    """The smallest K with K·M/P >= q_target."""
    if not 0 < q_target < math.inf:  # also NaN, which compares false to everything
        raise UserError(f"target Q must be a number > 0 (got {q_target})")
    if m <= 0 or p <= 0:
        raise UserError(f"P and M must be > 0 (got P={p}, M={m})")
    return math.ceil(q_target * p / m - 1e-9)


def check_fraction(fraction: float) -> float:
    if not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:  # numpy floats too
        raise UserError(f"fraction must lie in (0, 1] (got {fraction!r}): use e.g. 0.5, 0.25 or 1")
    return float(fraction)


def q_table(
    model: str,
    dataset: str,
    fractions: Sequence[float] = (1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32),
    target_qs: Sequence[float] = (),
) -> pd.DataFrame:
    """One row per subset: K and Q for each fraction, plus the smallest subset reaching each target Q.

    Uses the dataset's registered size and shape only, so it needs no data files.
    """
    from subsetlib.data import dataset_spec
    from subsetlib.models import build_model

    spec = dataset_spec(dataset)
    p = count_parameters(build_model(model, spec.shape, spec.num_classes))
    m, n = spec.num_classes, spec.train_size
    rows = []
    for f in fractions:
        k = round(check_fraction(f) * n)
        rows.append({"fraction": f, "K": k, "Q": overdetermination_ratio(k, m, p), "target_Q": None})
    for q in target_qs:
        k = min_subset_size(p, m, q)
        rows.append({"fraction": k / n, "K": k, "Q": overdetermination_ratio(k, m, p), "target_Q": q})
    table = pd.DataFrame(rows).assign(model=model, dataset=dataset, P=p, M=m, K_full=n)
    table["feasible"] = table["K"] <= n
    return table[["model", "dataset", "P", "M", "K_full", "fraction", "K", "Q", "target_Q", "feasible"]]
