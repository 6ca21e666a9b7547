"""What the study at certified minima runs, frozen in one place (book/plan-certified.md prints it).

A ``Design`` is one dataset's part of the study: a stratified part of its training set (the "full set" of every
table, named ``<dataset>-<N>``), inputs average-pooled to a few dozen features and standardised, one-hidden-layer
tanh networks (smooth, so the Hessian is defined everywhere) of several widths, the objectives with their λ, the Q grid
of the nested subsets, the Q values whose subset minimum is fine-tuned on the full set, the seeds, and the cap of
every phase in calls (function+gradient evaluations and Hessian-vector products, never seconds).
Changing a value here changes the run ids of that design.
"""

import math
import numbers
from dataclasses import dataclass

from subsetlib.errors import UserError, check_whole_number
from subsetlib.minimise import LOSSES, METHODS, Objective


@dataclass(frozen=True)
class Design:
    dataset: str
    train_size: int  # N: the stratified part that is "the full set" here
    pool: int  # average pooling of the images (28 → 7 at 4; 32 → 4 at 8)
    widths: tuple[int, ...]  # hidden units of the tanh MLP
    objectives: tuple[tuple[str, float], ...]  # (loss, λ)
    qs: tuple[float, ...]  # subsets at K = ⌈Q·P/M⌉, those below N
    finetune_qs: tuple[float, ...]  # subset minima that are fine-tuned on the full set
    seeds: tuple[int, ...]
    max_calls: int  # cap of every phase: function+gradient evaluations + Hessian-vector products
    method: str = "L-BFGS-B"

    def __post_init__(self) -> None:
        check_whole_number(self.train_size, "train_size", 10)
        check_whole_number(self.pool, "pool")
        check_whole_number(self.max_calls, "max_calls")
        for w in self.widths:
            check_whole_number(w, "width")
        for loss, l2 in self.objectives:
            Objective(loss, l2)
        for q in (*self.qs, *self.finetune_qs):
            if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0 < q < math.inf:
                raise UserError(f"every Q must be a number > 0 (got {q!r})")
        if not set(self.finetune_qs) <= set(self.qs):
            raise UserError(f"finetune_qs {self.finetune_qs} must be among qs {self.qs}")
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}: choose one of {', '.join(METHODS)}")
        if len(self.seeds) < 3:
            raise UserError(f"a design needs at least 3 seeds for its verdicts (got {len(self.seeds)})")

    @property
    def full_name(self) -> str:
        """The full set's name in every table: a part of the dataset, never the dataset itself."""
        return f"{self.dataset}-{self.train_size}"


def parameters(inputs: int, width: int, classes: int) -> int:
    """P of the tanh MLP inputs → width → classes (weights and biases)."""
    return inputs * width + width + width * classes + classes


def subset_size(q: float, p: int, classes: int) -> int:
    """K = ⌈Q·P/M⌉ (``q.min_subset_size``'s rule, spelled for floats of the grid)."""
    return math.ceil(q * p / classes - 1e-9)


QS = (0.5, 1, 2, 4, 8, 16, 32, 64, 128)
SEEDS = (0, 1, 2, 3, 4)
SMALL, LARGE = 1e-4, 1e-2  # λ: the small one keeps the objective close to the bare loss; the large one regularises
BOTH_LOSSES = tuple((loss, SMALL) for loss in LOSSES)

DESIGNS: dict[str, Design] = {
    "mnist": Design("mnist", 2500, 4, (2, 6, 18), (*BOTH_LOSSES, *((loss, LARGE) for loss in LOSSES)), QS,
                    (2, 8, 32), SEEDS, 20000),
    "fashion-mnist": Design("fashion-mnist", 2500, 4, (2, 6, 18), BOTH_LOSSES, QS, (2, 8, 32), SEEDS, 20000),
    "cifar10-jpeg": Design("cifar10-jpeg", 2500, 8, (2, 6, 18), BOTH_LOSSES, QS, (2, 8, 32), SEEDS, 20000),
    # CI's smoke size (SUBSETLIB_SMOKE=1): seconds, on the synthetic dataset
    "synthetic": Design("synthetic", 200, 4, (2, 3), (("squared", LARGE),), (1, 4), (4,), (0, 1, 2), 3000),
    # the same plan at GPU scale (not run for this book): the whole training sets, full-resolution inputs (pool 1),
    # wider nets; the certificate then uses Lanczos (P above minimise.EXACT_HESSIAN_UP_TO)
    "mnist-gpu": Design("mnist", 60000, 1, (8, 32, 128), (*BOTH_LOSSES, *((loss, LARGE) for loss in LOSSES)), QS,
                        (2, 8, 32), SEEDS, 200000, "trust-krylov"),
}


def design(name: str) -> Design:
    if name not in DESIGNS:
        raise UserError(f"unknown design {name!r}: choose one of {', '.join(DESIGNS)}")
    return DESIGNS[name]


def check_cell(name: str, width: int) -> Design:
    """A (design, width) cell of the grid, checked before anything runs."""
    d = design(name)
    if width not in d.widths:
        raise UserError(f"design {name!r} has widths {d.widths} (got {width!r})")
    return d
