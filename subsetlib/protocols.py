"""The experiment protocols: conventional training, subset pretraining, growing subsets and switch-point sweeps.

Every protocol is a list of phases (a subset fraction and a number of epochs over it) run by one function,
``run_phases``, so all arms share one training loop, one evaluation schedule and one ledger. Each returns a
``results.RunResult``: tidy evaluation rows (the learning curve with the cumulative ledger) and one summary row.
"""

import hashlib
import json
import math
import numbers
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

import torch
from torch import nn
from tqdm import tqdm

from subsetlib import results
from subsetlib.data import Dataset
from subsetlib.errors import UserError, check_fraction, check_seed, check_whole_number
from subsetlib.models import build_model
from subsetlib.planner import subset_fraction
from subsetlib.q import count_parameters, overdetermination_ratio
from subsetlib.results import RunResult
from subsetlib.subsets import membership_hash, subset_indices
from subsetlib.train import (
    FlopMeter,
    Ledger,
    Numerics,
    check_optimizer,
    check_precision,
    check_schedule,
    evaluate,
    lr_scheduler,
    make_optimizer,
    resolve_numerics,
    train_one_epoch,
)


@dataclass(frozen=True)
class RunConfig:
    """Everything that is the same for all arms of one comparison. Where the paper is silent we chose; see the book."""

    dataset: str = "mnist"
    model: str = "cnn-simple"
    optimizer: str = "adam"  # the paper: Adam, lr 1e-3
    lr: float = 1e-3
    batch_size: int = 128  # not stated in the paper
    augment: bool = False
    precision: str = "fp32"  # fp32 | bf16 (autocast, on the CPU too) | fp64: a scientific parameter, see the speed page
    channels_last: bool = True  # NHWC memory format for 4-D inputs: same arithmetic, faster convolutions
    eval_every: float = 1.0  # epoch-equivalents (full training set) between evaluations, the same for every arm
    eval_dense: int = 0  # also evaluate at 1/2, 1/4, … 1/2^eval_dense of each phase: dense just after every switch
    eval_train: bool = True  # also evaluate loss on the training set: the paper judges by its minimum
    eval_train_examples: int | None = None  # estimate that loss on a fixed random sample of this size (None: all)
    stratified: bool = True  # class-balanced subsets (the paper does not say how it drew them)
    reset_optimizer: bool = True  # fresh optimizer state when the training set changes
    lr_schedule: str = "constant"  # constant (the paper's Adam) | cosine: lr → 0 over each phase

    def __post_init__(self):
        check_whole_number(self.batch_size, "batch_size")
        check_optimizer(self.optimizer, self.lr)
        if (isinstance(self.eval_every, bool) or not isinstance(self.eval_every, numbers.Real)
                or not 0 < self.eval_every < math.inf):  # also NaN
            raise UserError(f"eval_every must be a finite number > 0 of epoch-equivalents (got {self.eval_every!r})")
        check_precision(self.precision)
        check_schedule(self.lr_schedule)
        if not isinstance(self.eval_dense, int) or not 0 <= self.eval_dense <= 20:
            raise UserError(f"eval_dense must be a whole number from 0 to 20 (got {self.eval_dense!r})")
        if self.eval_train_examples is not None:
            check_whole_number(self.eval_train_examples, "eval_train_examples (None: all)")


def config_from(params: Mapping, **overrides) -> RunConfig:
    """The RunConfig that a notebook's parameters describe: the RunConfig fields among ``params`` (the dict
    ``nb.end`` returns; its other parameters are not the config's), then ``overrides`` (e.g. ``dataset=ds.name`` for
    a reduced set, or the model of a loop). A field a notebook does not set keeps the default, so its run ids stay
    those of a config written out by hand. An override that is no RunConfig field is refused with the valid ones."""
    valid = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise UserError(f"unknown RunConfig field(s) {', '.join(unknown)}: valid ones are {', '.join(sorted(valid))}")
    return RunConfig(**{**{k: v for k, v in params.items() if k in valid}, **overrides})


PHASE_UNITS = ("epochs", "iterations")  # mini-batch epochs, or iterations of a full-batch trainer such as L-BFGS


@dataclass(frozen=True)
class Phase:
    """One stretch of training on one set of examples (a fraction of the training set). Its ``length`` is counted in
    its trainer's ``unit``: epochs for the mini-batch trainer, iterations for L-BFGS; the phase's stored info names
    the unit."""

    name: str
    fraction: float
    length: int
    uniform: bool = False  # draw this phase's subset without stratification (the random baseline)
    unit: str = "epochs"

    def __post_init__(self):
        if self.unit not in PHASE_UNITS:
            raise UserError(f"unknown unit {self.unit!r} of phase {self.name!r}: choose one of "
                            f"{', '.join(PHASE_UNITS)}")
        check_fraction(self.fraction)
        check_whole_number(self.length, f"{self.unit} of phase {self.name!r}")


ID_NEUTRAL = {"lr_schedule": "constant"}
"""RunConfig fields added after runs were stored, with the value those runs used: at that value a field stays out
of the run id, so every stored id stays valid."""


def run_id(protocol: str, cfg: RunConfig, seed: int, **arm_settings) -> str:
    """A stable id from everything that defines the run, so reruns replace rather than duplicate: the config, the seed
    and the arm's settings (a protocol's own parameters, e.g. its fraction and epochs; not a notebook's ``params``)."""
    config = {k: v for k, v in asdict(cfg).items() if k not in ID_NEUTRAL or v != ID_NEUTRAL[k]}
    key = json.dumps({"protocol": protocol, "cfg": config, "seed": seed, **arm_settings}, sort_keys=True,
                     default=str)
    return f"{protocol}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@dataclass
class PhaseContext:
    """What a phase trainer works with. It must add everything it spends to ``ledger`` (training time included) and
    call ``on_eval`` whenever ``ledger.examples`` crosses a value of ``eval_at``, with its stopwatch paused."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    data: Dataset
    indices: torch.Tensor  # the phase's training examples
    phase: Phase
    cfg: RunConfig
    generator: torch.Generator
    ledger: Ledger
    flops: FlopMeter
    numerics: Numerics  # the run's dtype, autocast and memory format, resolved once from cfg
    eval_at: list[int]  # sorted ledger example counts at which to evaluate
    on_eval: Callable[[], None]


PhaseTrainer = Callable[[PhaseContext], dict]
"""A phase trainer returns extra information about its phase (it lands in the phase's info and in the summary)."""


def epoch_trainer(ctx: PhaseContext) -> dict:
    """The default phase trainer: ``phase.length`` mini-batch epochs with the run's optimizer and lr schedule."""
    cfg = ctx.cfg
    steps = ctx.phase.length * math.ceil(len(ctx.indices) / cfg.batch_size)
    scheduler = lr_scheduler(ctx.optimizer, cfg.lr_schedule, steps)
    for _ in range(ctx.phase.length):
        train_one_epoch(ctx.model, ctx.optimizer, ctx.data, ctx.indices, cfg.batch_size, ctx.generator, ctx.ledger,
                        ctx.flops, ctx.numerics, augment_data=cfg.augment, eval_at=ctx.eval_at, on_eval=ctx.on_eval,
                        scheduler=scheduler)
    return {}


def eval_points(start: int, length: int, every: int, dense: int) -> list[int]:
    """Ledger example counts at which a phase of ``length`` examples starting at ``start`` is evaluated: every
    multiple of ``every`` inside it, and ``start + length/2^k`` for k = 1..dense (dense just after the switch)."""
    regular = range((start // every + 1) * every, start + length, every)
    halving = (start + length // 2**k for k in range(1, dense + 1) if length // 2**k > 0)
    return sorted(set(regular) | set(halving))


class NotStored(Exception):
    """A run that ``stored_runs_only`` asked for is not stored (yet)."""


_STORED_ONLY: ContextVar[bool] = ContextVar("stored_only", default=False)


@contextmanager
def stored_runs_only() -> Iterator[None]:
    """Inside, ``run_phases`` loads stored runs and raises ``NotStored`` instead of training: how a page that only
    reads (the progress page) replays a design's runs to learn whether all of them are in."""
    token = _STORED_ONLY.set(True)
    try:
        yield
    finally:
        _STORED_ONLY.reset(token)


_PROGRESS_LINES: ContextVar[bool] = ContextVar("progress_lines", default=False)


@contextmanager
def progress_lines() -> Iterator[None]:
    """Inside, every evaluation of a run prints one progress line on stderr: for a command whose stderr goes to a log
    file, where a bar does not show (the CLI asks for them; a notebook's pages never get them)."""
    token = _PROGRESS_LINES.set(True)
    try:
        yield
    finally:
        _PROGRESS_LINES.reset(token)


def run_phases(data: Dataset, cfg: RunConfig, phases: Sequence[Phase], seed: int, protocol: str,
               arm_settings: dict | None = None, results_dir: str | None = None,
               trainers: dict[str, PhaseTrainer] | None = None) -> RunResult:
    """Train one model through ``phases`` in order and record the curve and the per-phase ledger.

    Subsets are nested across phases for one seed (a larger fraction contains a smaller one). Evaluations happen
    at the start, every ``cfg.eval_every`` epoch-equivalents of training, and at the end of every phase.
    With ``results_dir``, a run already stored there is loaded instead of trained, and a new run is saved: this is
    what makes a rerun notebook resume. ``trainers`` maps a phase name to another way of training it (the default
    is ``epoch_trainer``); what a trainer returns lands in the phase's info and in the summary.
    """
    if not isinstance(data, Dataset):
        raise UserError(f"data must be a loaded Dataset, e.g. subsetlib.data.load('mnist') (got {type(data).__name__})")
    if not isinstance(cfg, RunConfig):
        raise UserError(f"cfg must be a RunConfig, e.g. RunConfig(dataset={data.name!r}) (got {type(cfg).__name__})")
    if cfg.dataset != data.name:
        raise UserError(f"config names dataset {cfg.dataset!r} but the loaded data is {data.name!r}")
    if not isinstance(phases, Sequence) or not phases or not all(isinstance(ph, Phase) for ph in phases):
        raise UserError(f"phases must be a non-empty list of Phase, e.g. [Phase('full', 1.0, 5)] (got {phases!r})")
    n = len(data.y_train)
    if cfg.batch_size > n and any(ph.name not in (trainers or {}) for ph in phases):  # mini-batch phases only
        raise UserError(f"batch size {cfg.batch_size} exceeds the {n} training examples of {data.name}: choose "
                        f"batch_size {n} or less")
    seed = check_seed(seed)
    rid = run_id(protocol, cfg, seed, **dict(arm_settings or {}))
    if results_dir is not None and results.has_run(results_dir, rid):
        stored = results.load_run(results_dir, rid)
        check_finite(stored.curve, cfg, f"stored in {results_dir}: delete its runs/ and curves/ files, then")
        return stored
    if _STORED_ONLY.get():
        raise NotStored(rid)
    run_started = datetime.now(UTC)
    result = _train_phases(data, cfg, phases, seed, protocol, dict(arm_settings or {}), rid, dict(trainers or {}))
    if results_dir is not None:
        results.save(result, data, results_dir, run_started)
    return result


def check_finite(curve: Sequence[Mapping], cfg: RunConfig, then: str = "nothing was stored;") -> None:
    """A run whose loss became non-finite (it diverged) is no result: stopped with one line naming the step and the
    fix, so it is never stored, and one stored before this check is never loaded as a result."""
    for row in curve:
        for name in ("test_loss", "train_loss"):
            if name in row and not math.isfinite(row[name]):
                raise UserError(f"run {row['run_id']} diverged: its {name.replace('_', ' ')} is {row[name]} at step "
                                f"{row['steps']:,} ({row['epoch_equivalents']:.3g} epoch-equivalents), {then} "
                                f"use a smaller learning rate than {cfg.lr:g}")


def _train_phases(data: Dataset, cfg: RunConfig, phases: Sequence[Phase], seed: int, protocol: str,
                  arm_settings: dict, rid: str, trainers: dict[str, PhaseTrainer]) -> RunResult:
    how = resolve_numerics(cfg.precision, cfg.channels_last, data.device)
    torch.manual_seed(seed)
    model = how.model(build_model(cfg.model, data.spec.shape, data.num_classes).to(data.device))
    p, m, n = count_parameters(model), data.num_classes, len(data.y_train)
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr)
    generator = torch.Generator(device=data.device).manual_seed(seed)
    flops = FlopMeter(model, data.spec.shape, m)
    total, every = Ledger(), max(1, round(cfg.eval_every * n))
    result = RunResult()
    # epoch-equivalents done, per evaluation: shown on a terminal only (not in notebooks, tests or CI)
    progress = tqdm(total=sum(ph.fraction * ph.length for ph in phases), desc=f"{protocol} seed {seed}",
                    unit="epoch", disable=None, leave=False, file=sys.stderr,
                    bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} {unit} [{elapsed}<{remaining}{postfix}]")
    started = time.time()
    phase_info: dict = {}
    extras: dict = {}

    def sample(indices: torch.Tensor) -> torch.Tensor:
        """The examples on which a training-set loss is measured: all, or a fixed random sample (same for all arms)."""
        cap = cfg.eval_train_examples
        if cap is None or cap >= len(indices):
            return indices
        return indices[torch.randperm(len(indices), generator=torch.Generator().manual_seed(0))[:cap]]

    train_probe = sample(torch.arange(n))

    def record(phase: Phase, phase_start: Ledger, indices: torch.Tensor) -> None:
        if result.curve and result.curve[-1]["examples"] == total.examples:
            return  # already evaluated at this point (a phase ended on an evaluation step)
        tic = time.perf_counter()
        test_loss, test_acc = evaluate(model, data, how, "test")
        row = {"run_id": rid, "protocol": protocol, "seed": seed, "phase": phase.name,
               "phase_fraction": phase.fraction, "phase_epoch": (total.examples - phase_start.examples) / len(indices),
               "test_loss": test_loss, "test_acc": test_acc}
        if cfg.eval_train:
            row["train_loss"], row["train_acc"] = evaluate(model, data, how, "train", train_probe)
        if phase.fraction < 1:
            row["subset_loss"], row["subset_acc"] = evaluate(model, data, how, "train", sample(indices))
        total.eval_seconds += time.perf_counter() - tic
        row.update(total.as_dict(), epoch_equivalents=total.examples / n)
        check_finite([row], cfg)
        result.curve.append(row)
        progress.set_postfix_str(f"phase {phase.name}", refresh=False)
        progress.update(total.examples / n - progress.n)
        if _PROGRESS_LINES.get():
            print(f"subsetlib: {protocol} seed {seed}: {total.examples / n:.2f} of {progress.total:.2f} "
                  f"epoch-equivalents (phase {phase.name}), test accuracy {test_acc:.1%}, "
                  f"{time.time() - started:.0f} s", file=sys.stderr, flush=True)

    previous = None
    for i, phase in enumerate(phases):
        indices = (torch.arange(n) if phase.fraction == 1 else
                   subset_indices(data.y_train, phase.fraction, seed, cfg.stratified and not phase.uniform))
        phase_start = Ledger(**total.as_dict())
        if i == 0:
            record(phase, phase_start, indices)
        elif cfg.reset_optimizer and phase.fraction != previous.fraction:
            optimizer = make_optimizer(model, cfg.optimizer, cfg.lr)
        k = len(indices)
        trainer = trainers.get(phase.name, epoch_trainer)
        at = eval_points(total.examples, k * phase.length, every, cfg.eval_dense)
        extra = trainer(PhaseContext(model, optimizer, data, indices, phase, cfg, generator, total, flops, how, at,
                                     lambda: record(phase, phase_start, indices)))  # noqa: B023 (runs in this loop)
        extras.update(extra)
        record(phase, phase_start, indices)
        spent = Ledger(**{f: getattr(total, f) - getattr(phase_start, f) for f in total.as_dict()})
        phase_info[phase.name] = {"K": k, "Q": overdetermination_ratio(k, m, p), "fraction": phase.fraction,
                                  phase.unit: phase.length, "membership": membership_hash(indices),
                                  **spent.as_dict(), **extra}
        previous = phase
    progress.close()

    first = phases[0]
    curve = result.curve
    result.summary = {
        "run_id": rid, "protocol": protocol, "seed": seed, **asdict(cfg), **arm_settings, "P": p, "M": m, "K_full": n,
        "subset_fraction": first.fraction, "subset_K": phase_info[first.name]["K"],
        "subset_Q": phase_info[first.name]["Q"], "subset_membership": phase_info[first.name]["membership"],
        "final_test_acc": curve[-1]["test_acc"], "final_test_loss": curve[-1]["test_loss"],
        "best_test_acc": max(r["test_acc"] for r in curve),
        "final_train_loss": curve[-1].get("train_loss", math.nan),
        # lowest over evaluations after some training: the evaluation before the first step is not a result
        "min_train_loss": min((r["train_loss"] for r in curve if "train_loss" in r and r["examples"] > 0),
                              default=math.nan),
        **{f"total_{key}": value for key, value in total.as_dict().items()},
        "epoch_equivalents": total.examples / n,
        "phases": json.dumps(phase_info),
        "wall_seconds": time.time() - started,
        **extras,
    }
    for row in curve:  # every curve row carries the subset's size and Q, so a plot never needs a join
        row.update(subset_fraction=first.fraction, subset_Q=result.summary["subset_Q"], P=p)
    return result


# ---------------------------------------------------------------------------------------------------------------------
# The arms


def conventional(data: Dataset, cfg: RunConfig, seed: int, epochs: int, results_dir: str | None = None
                 ) -> RunResult:
    """Train on the full training set for ``epochs`` epochs."""
    return run_phases(data, cfg, [Phase("full", 1.0, epochs)], seed, "conventional", {"epochs": epochs}, results_dir)


def subset_pretraining(data: Dataset, cfg: RunConfig, seed: int, subset_epochs: int, finetune_epochs: int,
                       fraction: float | None = None, target_q: float | None = None, results_dir: str | None = None
                       ) -> RunResult:
    """The paper's method: ``subset_epochs`` on a subset (by fraction or by target Q), then ``finetune_epochs`` on
    the full set."""
    f = subset_fraction(cfg.model, data, fraction, target_q)
    phases = [Phase("subset", check_fraction(f), subset_epochs), Phase("finetune", 1.0, finetune_epochs)]
    arm_settings = {"fraction": f, "target_q": target_q, "subset_epochs": subset_epochs,
                    "finetune_epochs": finetune_epochs}
    return run_phases(data, cfg, phases, seed, "subset", arm_settings, results_dir)


def subset_phase(data: Dataset, cfg: RunConfig, seed: int, subset_epochs: int, fraction: float,
                 results_dir: str | None = None) -> RunResult:
    """The subset phase alone, no fine-tuning: where training on a subset leaves the model (study v2's subset
    minima, and the budget-doubling check of a subset arm's phase). Same seed, same subset and same initial weights
    as ``subset_pretraining``'s subset phase."""
    f = check_fraction(fraction)
    return run_phases(data, cfg, [Phase("subset", f, subset_epochs)], seed, "subset-phase",
                      {"fraction": f, "subset_epochs": subset_epochs}, results_dir)


MAX_STAGES = 64  # a growth barely above 1 would otherwise build millions of stages


def growing_phases(start_fraction: float, growth: float, stage_epochs: int | Sequence[int], uniform: bool
                   ) -> list[Phase]:
    """f, growth·f, growth²·f, … capped at 1 (the last stage is the full set)."""
    check_fraction(start_fraction)
    if not isinstance(growth, int | float) or not 1 < growth < math.inf:  # also NaN
        raise UserError(f"growth must be a finite number > 1 (got {growth!r})")
    stages = math.ceil(math.log(1 / start_fraction) / math.log(growth)) + 1
    if stages > MAX_STAGES:
        raise UserError(f"growth {growth} from fraction {start_fraction} needs {stages} stages: use a growth of at "
                        f"least {math.exp(math.log(1 / start_fraction) / (MAX_STAGES - 1)):.4g}")
    fractions = [start_fraction]
    while fractions[-1] < 1:
        fractions.append(min(1.0, fractions[-1] * growth))
    epochs = [stage_epochs] * len(fractions) if isinstance(stage_epochs, int) else list(stage_epochs)
    if len(epochs) != len(fractions):
        raise UserError(f"stage_epochs lists {len(epochs)} stages but the schedule has {len(fractions)}: "
                        f"fractions {[round(f, 4) for f in fractions]}")
    return [Phase(f"stage{i}", f, e, uniform) for i, (f, e) in enumerate(zip(fractions, epochs, strict=True))]


def growing(data: Dataset, cfg: RunConfig, seed: int, start_fraction: float, stage_epochs: int | Sequence[int],
            growth: float = 2.0, uniform: bool = True, results_dir: str | None = None) -> RunResult:
    """Growing subsets f → growth·f → … → 1. With ``uniform=True`` (default) the subsets are drawn uniformly at random:
    the random-curriculum baseline of Wu et al. (ICLR 2021)."""
    phases = growing_phases(start_fraction, growth, stage_epochs, uniform)
    arm_settings = {"fraction": start_fraction, "growth": growth, "stage_epochs": json.dumps(
        [ph.length for ph in phases]), "uniform": uniform}
    return run_phases(data, cfg, phases, seed, "growing", arm_settings, results_dir)


def switch_point_sweep(data: Dataset, cfg: RunConfig, seed: int, fraction: float,
                       subset_epochs: Sequence[int], finetune_epochs: int, results_dir: str | None = None
                       ) -> list[RunResult]:
    """The subset arm with several subset-phase lengths E_s: where should one switch to the full set?"""
    return [subset_pretraining(data, cfg, seed, e, finetune_epochs, fraction=fraction, results_dir=results_dir)
            for e in subset_epochs]
