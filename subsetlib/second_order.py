"""Full-batch second-order pretraining: L-BFGS on a subset small enough to be one batch, then Adam on the full set.

The paper motivates subset pretraining by noting that mini-batch training does not combine well with second-order
methods, whose line searches and curvature estimates need the exact gradient of one fixed loss. A subset that fits
on the device as one batch has such a loss. ``lbfgs_subset_pretraining`` trains on it with ``torch.optim.LBFGS``
(strong-Wolfe line search), then fine-tunes on the full set with the ordinary Adam loop.

The cost is counted like every other arm's, with no discount: every evaluation of the full-batch loss and gradient
(each line-search trial included) adds K examples and the FLOPs of its forward and backward pass (measured per chunk
shape by ``train.FlopMeter``) to the ledger; ``steps`` counts ``optimizer.step`` calls, i.e. L-BFGS iterations.

The L-BFGS phase plugs into ``protocols.run_phases`` as a phase trainer, so the curve, the ledger, the summary and
storing work as for every other arm.
"""

import bisect
import json

import torch

from subsetlib.data import Dataset
from subsetlib.errors import UserError, check_fraction
from subsetlib.lbfgs import FullBatchLoss, check_settings, minimize
from subsetlib.planner import subset_fraction
from subsetlib.protocols import Phase, PhaseContext, PhaseTrainer, RunConfig, run_phases
from subsetlib.results import RunResult


def lbfgs_trainer(history_size: int = 20, max_line_search: int = 25, chunk_size: int = 4096,
                  tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9) -> PhaseTrainer:
    """A phase trainer running ``phase.length`` L-BFGS iterations (one ``optimizer.step`` each) on the phase's
    examples as one batch, without augmentation (a line search needs one fixed function).

    Stops early when an iteration leaves the parameters unchanged (L-BFGS met its tolerances or the line search
    found no decrease); the phase info says how many iterations ran and why it stopped.
    """
    check_settings(history_size, max_line_search)  # now, not when the phase starts

    def train(ctx: PhaseContext) -> dict:
        model, data, ledger = ctx.model, ctx.data, ctx.ledger
        model.train()
        model.to(memory_format=torch.contiguous_format)  # torch's L-BFGS flattens gradients with view(-1)
        idx = ctx.indices.to(data.device)
        # no bf16 autocast here: a line search compares losses to rounding error (fp64 stays fp64)
        x = ctx.numerics.inputs(data.x_train[idx], data).contiguous()
        y = data.y_train[idx]
        closure = FullBatchLoss(model, x, y, ledger, ctx.flops, chunk_size)
        seen = ledger.examples

        def after_step(seconds: float) -> None:
            nonlocal seen
            ledger.steps += 1
            ledger.train_seconds += seconds
            if bisect.bisect_right(ctx.eval_at, seen) < bisect.bisect_right(ctx.eval_at, ledger.examples):
                ctx.on_eval()
            seen = ledger.examples

        def objective() -> float:  # the phase's loss after each iteration (an evaluation the next step reuses)
            return float(closure.loss if closure.ended_here() else closure())

        fit = minimize(closure, ctx.phase.length, history_size, max_line_search, tolerance_grad, tolerance_change,
                       objective=objective, after_step=after_step)
        ctx.numerics.model(model)
        return {"lbfgs_iterations_done": fit.iterations, "closure_evaluations": fit.evaluations,
                "repeated_evaluations_reused": fit.repeats, "lbfgs_stopped": fit.stopped,
                "lbfgs_grad_max": fit.grad_max, "lbfgs_grad_norm": fit.grad_norm,
                "lbfgs_losses": json.dumps([loss for _, loss in fit.trajectory])}

    return train


def lbfgs_subset_pretraining(data: Dataset, cfg: RunConfig, seed: int, lbfgs_iterations: int,
                             finetune_epochs: int, fraction: float | None = None, target_q: float | None = None,
                             history_size: int = 20, chunk_size: int = 4096, results_dir: str | None = None
                             ) -> RunResult:
    """L-BFGS on one full batch (a subset, by fraction or target Q) for up to ``lbfgs_iterations`` iterations, then
    ``finetune_epochs`` epochs of ``cfg.optimizer`` (Adam) on the full set. Protocol name ``lbfgs-subset``.

    The summary carries run_phases' keys plus ``closure_evaluations``, ``lbfgs_iterations_done`` and
    ``lbfgs_stopped``.
    With ``results_dir`` a stored run is loaded instead of trained, and a new one is saved (as ``run_phases`` does).
    """
    if not isinstance(lbfgs_iterations, int) or lbfgs_iterations <= 0:
        raise UserError(f"lbfgs_iterations must be a positive whole number (got {lbfgs_iterations!r})")
    f = subset_fraction(cfg.model, data, fraction, target_q)
    phases = [Phase("lbfgs", check_fraction(f), lbfgs_iterations, unit="iterations"),
              Phase("finetune", 1.0, finetune_epochs)]
    arm_settings = {"fraction": f, "target_q": target_q, "lbfgs_iterations": lbfgs_iterations,
              "finetune_epochs": finetune_epochs, "history_size": history_size, "chunk_size": chunk_size}
    return run_phases(data, cfg, phases, seed, "lbfgs-subset", arm_settings, results_dir,
                      {"lbfgs": lbfgs_trainer(history_size, chunk_size=chunk_size)})
