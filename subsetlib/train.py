"""One training loop over device-resident tensors, and the ledger of what it cost.

Cost is what the paper's claim is about, so it is counted, not estimated: every optimizer step adds its examples,
one step, its FLOPs (forward + backward, measured once per batch shape with torch's FlopCounterMode) and its wall
time (CUDA events on a GPU, perf_counter on a CPU). Evaluation time is kept apart and never counts as training.
"""

import bisect
import contextlib
import copy
import math
import numbers
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from subsetlib.data import Dataset
from subsetlib.errors import UserError
from subsetlib.preprocess import augment, normalize


@dataclass
class Ledger:
    """What training has cost so far. Epoch-equivalents = examples ÷ full training-set size."""

    examples: int = 0
    steps: int = 0
    flops: float = 0.0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0

    def __add__(self, other: "Ledger") -> "Ledger":
        return Ledger(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict:
        return asdict(self)


class Stopwatch:
    """Seconds of device work between start() and stop(): CUDA events on a GPU (no sync per step), else perf_counter."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        if self.cuda:
            self._begin = torch.cuda.Event(enable_timing=True)
            self._begin.record()
        else:
            self._begin = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            end.synchronize()
            return self._begin.elapsed_time(end) / 1000
        return time.perf_counter() - self._begin


class FlopMeter:
    """FLOPs of one training step (forward + loss + backward) per batch shape, measured once on a copy of the model."""

    def __init__(self, model: nn.Module, example_shape: tuple[int, ...], num_classes: int):
        self.model, self.example_shape, self.num_classes = model, tuple(example_shape), num_classes
        self.cache: dict[int, float] = {}

    def __call__(self, batch_size: int) -> float:
        if batch_size not in self.cache:
            probe = copy.deepcopy(self.model).train()
            device = next(probe.parameters()).device
            x = torch.randn(batch_size, *self.example_shape, device=device, dtype=next(probe.parameters()).dtype)
            y = torch.randint(0, self.num_classes, (batch_size,), device=device)
            with FlopCounterMode(display=False) as counter:
                F.cross_entropy(probe(x), y).backward()
            self.cache[batch_size] = float(counter.get_total_flops())
        return self.cache[batch_size]


OPTIMIZERS = ("adam", "adamw", "sgd")


def check_optimizer(name: str, lr: float) -> None:
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < math.inf:  # also NaN
        raise UserError(f"learning rate must be a finite number > 0 (got {lr!r})")
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")


def make_optimizer(model: nn.Module, name: str = "adam", lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam with lr 1e-3 is what a secondary summary of the paper reports (the paper's own tables could not be
    read); SGD uses Nesterov momentum 0.9."""
    check_optimizer(name, lr)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)


SCHEDULES = ("constant", "cosine")


def check_schedule(name: str) -> str:
    if name not in SCHEDULES:
        raise UserError(f"unknown lr schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
    return name


def lr_scheduler(optimizer: torch.optim.Optimizer, name: str, steps: int
                 ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per phase: none for ``constant``; for ``cosine`` the lr falls from its value to 0 over the phase's ``steps``
    (our choice: the lr's noise dies out by the phase's end; whether the phase then sits at a minimum is for the
    budget-doubling rule of ``verdicts`` to say, not for the schedule)."""
    if check_schedule(name) == "constant":
        return None
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))


PRECISIONS = ("fp32", "bf16", "fp64")
"""fp32: plain single precision. bf16: bfloat16 autocast (fp32 master weights and optimizer state) on the CPU as on a
GPU. fp64: double precision throughout, which the paper's authors compared with single precision in earlier work."""


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


@dataclass(frozen=True)
class Numerics:
    """How a run does its arithmetic, resolved once at the top (as nanoGPT builds its dtype and autocast context):
    the dtype of parameters and inputs, the autocast context of forward passes and the memory format of the model and
    its 4-D inputs. Made by ``resolve_numerics`` from RunConfig's ``precision`` and ``channels_last``, the run's
    recorded fields; nothing below reads those strings again."""

    precision: str
    dtype: torch.dtype  # float64 for fp64, else float32 (bf16 autocast keeps fp32 weights)
    autocast: AbstractContextManager  # bf16 autocast on the run's device, else a no-op; reusable, not nestable
    memory_format: torch.memory_format  # channels_last (NHWC: faster convolutions) or contiguous_format

    @property
    def channels_last(self) -> bool:
        return self.memory_format == torch.channels_last

    def model(self, model: nn.Module) -> nn.Module:
        """The model in this dtype and memory format (in place, as ``nn.Module.to`` works)."""
        return model.to(dtype=self.dtype).to(memory_format=self.memory_format)

    def inputs(self, x: torch.Tensor, data: Dataset) -> torch.Tensor:
        """A uint8 batch as the model's input: normalized, in this dtype, in this memory format if 4-D."""
        x = normalize(x, data.spec).to(self.dtype)
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x


def resolve_numerics(precision: str = "fp32", channels_last: bool = False, device: torch.device | str = "cpu"
                     ) -> Numerics:
    """The one place a precision name becomes a dtype, an autocast context and a memory format."""
    device = torch.device(device)
    check_precision(precision)
    return Numerics(precision, torch.float64 if precision == "fp64" else torch.float32,
                    torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision == "bf16"
                    else contextlib.nullcontext(),
                    torch.channels_last if channels_last else torch.contiguous_format)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Dataset,
    indices: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    ledger: Ledger,
    flops: FlopMeter,
    numerics: Numerics,
    *,
    augment_data: bool = False,
    eval_at: Sequence[int] = (),
    on_eval: Callable[[], None] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """One pass over ``indices`` of the training set in random order, the last batch possibly smaller.

    ``on_eval`` (an evaluation, say) runs each time the ledger's example count crosses a value of the sorted
    ``eval_at``; the stopwatch pauses around it so that evaluation never counts as training time.
    """
    if batch_size <= 0:
        raise UserError(f"batch size must be > 0 (got {batch_size})")
    model.train()
    device = data.device
    order = indices.to(device)[torch.randperm(len(indices), generator=generator, device=generator.device).to(device)]
    watch = Stopwatch(device)
    watch.start()
    for batch in order.split(batch_size):
        x = data.x_train[batch]
        if augment_data:
            x = augment(x, data.spec, generator)
        with numerics.autocast:
            loss = F.cross_entropy(model(numerics.inputs(x, data)), data.y_train[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        before = ledger.examples
        ledger.examples += len(batch)
        ledger.steps += 1
        ledger.flops += flops(len(batch))
        if on_eval is not None and bisect.bisect_right(eval_at, before) < bisect.bisect_right(eval_at, ledger.examples):
            ledger.train_seconds += watch.stop()
            on_eval()
            watch.start()
    ledger.train_seconds += watch.stop()


@torch.inference_mode()
def evaluate(model: nn.Module, data: Dataset, numerics: Numerics, split: str = "test",
             indices: torch.Tensor | None = None, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy (a fraction) on a split, or on ``indices`` of the training set. Labelled
    "evaluate" for torch.profiler, so a profile tells evaluation from training."""
    with torch.profiler.record_function("evaluate"):
        return _evaluate(model, data, numerics, split, indices, batch_size)


def _evaluate(model: nn.Module, data: Dataset, numerics: Numerics, split: str, indices: torch.Tensor | None,
              batch_size: int) -> tuple[float, float]:
    model.eval()
    x_all, y_all = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    if indices is not None:
        idx = indices.to(data.device)
        x_all, y_all = x_all[idx], y_all[idx]
    total_loss = torch.zeros((), device=data.device, dtype=torch.float64)
    correct = torch.zeros((), device=data.device, dtype=torch.int64)
    for x, y in zip(x_all.split(batch_size), y_all.split(batch_size), strict=True):
        with numerics.autocast:
            logits = model(numerics.inputs(x, data))
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train()
    return total_loss.item() / len(y_all), correct.item() / len(y_all)  # one device sync per evaluation


def set_threads() -> None:
    """Use the cores this process may use (one Dask worker per core sets OMP_NUM_THREADS=1 itself)."""
    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
