"""The overdetermination ratio Q = K·M/P: how many scalar constraints the training set puts on each parameter.

K training examples, each with an output vector of length M (the number of classes), fit P trainable
parameters. The paper argues that a subset is representative of the full set when its Q sufficiently exceeds 1.
This module is the arithmetic only; ``planner`` applies it to a model and a dataset.
"""

import math
import numbers

from torch import nn

from subsetlib.errors import UserError, check_whole_number


def count_parameters(model: nn.Module) -> int:
    """P: the number of trainable parameters (frozen ones do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def overdetermination_ratio(k: int, m: int, p: int) -> float:
    """Q = K·M/P."""
    return check_whole_number(k, "K", 0) * check_whole_number(m, "M") / check_whole_number(p, "P")


def min_subset_size(p: int, m: int, target_q: float) -> int:
    """The smallest K with K·M/P >= target_q."""
    if isinstance(target_q, bool) or not isinstance(target_q, numbers.Real) or not 0 < target_q < math.inf:  # NaN
        raise UserError(f"target Q must be a number > 0, e.g. 1.5 or 3 (got {target_q!r})")
    return math.ceil(target_q * check_whole_number(p, "P") / check_whole_number(m, "M") - 1e-9)
