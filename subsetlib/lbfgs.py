"""Full-batch L-BFGS: the one minimiser that both L-BFGS subset pretraining (``second_order``) and the
teacher-student study (``teacher``) use, so both count the same cost in the same way.

A line search and a curvature estimate need the exact gradient of one fixed loss, so the loss is the mean over fixed
examples (``FullBatchLoss``), and ``minimize`` runs ``torch.optim.LBFGS`` with a strong-Wolfe line search one
iteration per ``step``, so that what happens after each iteration (an evaluation, the objective for a log) can be
recorded. Every real evaluation of the loss and gradient (each line-search trial included) adds its examples and
FLOPs to a ledger; ``Fit`` says what one minimisation did and cost.
"""

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from subsetlib.errors import UserError
from subsetlib.train import Ledger, Stopwatch


def flat(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """The parameters as one detached vector (to compare or measure distances between points)."""
    return torch.cat([p.detach().reshape(-1) for p in params])


class FullBatchLoss:
    """The mean loss over fixed examples (cross-entropy unless ``loss_sum`` says otherwise; plus an optional
    ``penalty`` such as weight decay) as an L-BFGS closure, with its cost written into a ledger.

    Evaluated in chunks of at most ``chunk_size`` examples with gradient accumulation (the sum of per-chunk summed
    losses ÷ K, so the gradient is the exact full-batch one for models without batch norm; with batch norm each chunk
    normalises by its own statistics, a fixed function as the chunks are fixed). Each real evaluation adds K examples
    and the FLOPs of every chunk. ``torch.optim.LBFGS.step`` starts by evaluating the closure at the point where the
    previous step's line search ended; that repeat is answered from the last evaluation (same parameters, bit for
    bit) instead of being recomputed, and costs nothing, so ``evaluations`` is the number of forward+backward passes
    actually made over the examples.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ledger: Ledger,
                 flops: Callable[[int], float], chunk_size: int = 4096,
                 loss_sum: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 penalty: Callable[[], torch.Tensor] | None = None):
        if chunk_size <= 0:
            raise UserError(f"chunk_size must be > 0 (got {chunk_size})")
        self.model, self.x, self.y, self.ledger, self.flops = model, x, y, ledger, flops
        self.loss_sum = loss_sum or (lambda out, target: F.cross_entropy(out, target, reduction="sum"))
        self.penalty = penalty
        self.chunk_size = chunk_size
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.evaluations = 0
        self.repeats = 0
        self.at: torch.Tensor | None = None  # where the last real evaluation was made
        self._grads: list[torch.Tensor] = []
        self.loss: torch.Tensor | None = None

    def __call__(self) -> torch.Tensor:
        here = flat(self.params)
        if self.at is not None and torch.equal(here, self.at):
            for p, g in zip(self.params, self._grads, strict=True):
                p.grad = g.clone()
            self.repeats += 1
            return self.loss.clone()
        for p in self.params:
            p.grad = None
        k = len(self.y)
        total = torch.zeros((), device=self.x.device, dtype=self.x.dtype)
        for xc, yc in zip(self.x.split(self.chunk_size), self.y.split(self.chunk_size), strict=True):
            loss = self.loss_sum(self.model(xc), yc) / k
            loss.backward()
            total += loss.detach()
            self.ledger.flops += self.flops(len(yc))
        if self.penalty is not None:
            extra = self.penalty()
            extra.backward()
            total += extra.detach()
        self.ledger.examples += k
        self.evaluations += 1
        self.at = here
        self._grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in self.params]
        self.loss = total
        return total.clone()

    def ended_here(self) -> bool:
        """Whether the parameters are where the last real evaluation was made (so ``loss`` is the loss there)."""
        return self.at is not None and torch.equal(flat(self.params), self.at)


@dataclass
class Fit:
    """What one minimisation did and cost: the iterations and why it stopped, the real evaluations of the loss
    (and the repeats answered from the last one), the examples and FLOPs they processed, its wall-clock seconds, and
    ``trajectory``: (examples processed so far, objective) after each iteration, where an objective was given."""

    iterations: int = 0
    stopped: str = "iterations"
    evaluations: int = 0
    repeats: int = 0
    examples: int = 0
    flops: float = 0.0
    seconds: float = 0.0
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    grad_max: float = math.nan  # the gradient where it ended: largest component (torch's own test) …
    grad_norm: float = math.nan  # … and its Euclidean norm; measured however it stopped, not charged to the ledger


def stop_reason(closure: FullBatchLoss, tolerance_grad: float) -> str:
    """Why an iteration left the parameters where they were. L-BFGS also stops moving when its line search finds no
    decrease, which is a stall, not a minimum: only a gradient at or below ``tolerance_grad`` (largest component, as
    torch's own test) counts as converged."""
    if not closure.ended_here():
        closure()  # the gradient where the parameters are (the next step would reuse this evaluation)
    largest = max(float(g.abs().max()) for g in closure._grads) if closure._grads else math.nan
    if largest <= tolerance_grad:
        return f"converged (largest gradient component {largest:.1e} ≤ {tolerance_grad:.0e})"
    return f"stalled (no decrease found; largest gradient component {largest:.1e})"


def check_settings(history_size: int, max_line_search: int) -> None:
    if history_size <= 0 or max_line_search <= 0:
        raise UserError(f"history_size and max_line_search must be > 0 (got {history_size}, {max_line_search})")


def minimize(closure: FullBatchLoss, iterations: int, history_size: int = 20, max_line_search: int = 25,
             tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
             objective: Callable[[], float] | None = None,
             after_step: Callable[[float], None] | None = None) -> Fit:
    """Up to ``iterations`` L-BFGS iterations (one ``optimizer.step`` each) on ``closure``'s examples.

    After each iteration, ``objective()`` (if given) is logged in the trajectory, then ``after_step(seconds)`` (if
    given) is called with the seconds of device work the step took. Stops early when the loss is not finite or an
    iteration leaves the parameters unchanged; ``stop_reason`` then tells a minimum (gradient below tolerance) from a
    stall (the line search found no decrease).
    """
    check_settings(history_size, max_line_search)
    optimizer = torch.optim.LBFGS(closure.params, lr=1.0, max_iter=1, max_eval=1 + max_line_search,
                                  history_size=history_size, tolerance_grad=tolerance_grad,
                                  tolerance_change=tolerance_change, line_search_fn="strong_wolfe")
    ledger = closure.ledger
    start = Ledger(**ledger.as_dict())
    evaluations, repeats = closure.evaluations, closure.repeats
    watch = Stopwatch(closure.x.device)
    result = Fit()
    tic = time.perf_counter()
    for _ in range(iterations):
        before = flat(closure.params)
        watch.start()
        loss = optimizer.step(closure)
        seconds = watch.stop()
        result.iterations += 1
        if objective is not None:
            result.trajectory.append((ledger.examples - start.examples, objective()))
        if after_step is not None:
            after_step(seconds)
        if not math.isfinite(float(loss)):
            result.stopped = "non-finite loss"
            break
        if torch.equal(flat(closure.params), before):
            result.stopped = stop_reason(closure, tolerance_grad)
            break
    result.seconds = time.perf_counter() - tic
    result.evaluations, result.repeats = closure.evaluations - evaluations, closure.repeats - repeats
    result.examples, result.flops = ledger.examples - start.examples, ledger.flops - start.flops
    result.grad_max, result.grad_norm = final_gradient(closure)
    return result


def final_gradient(closure: FullBatchLoss) -> tuple[float, float]:
    """The gradient where the parameters ended (largest component, Euclidean norm), so that every fit records how
    far from a stationary point it stopped. Where the last evaluation was made elsewhere, one more is made; it is a
    measurement, not training, so the ledger and the evaluation count are left as they were."""
    if not closure.ended_here():
        examples, flops, evaluations = closure.ledger.examples, closure.ledger.flops, closure.evaluations
        closure()
        closure.ledger.examples, closure.ledger.flops, closure.evaluations = examples, flops, evaluations
    if not closure._grads:
        return math.nan, math.nan
    largest = max(float(g.abs().max()) for g in closure._grads)
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in closure._grads))
    return largest, norm
