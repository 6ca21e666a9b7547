"""Benchmarks: why subsetlib keeps the data on the device, how close its loop runs to the bare step and to the
machine's peak, where a run's time goes, and how fast the conventional MNIST baseline trains.

``compare_loops`` times subsetlib's device-resident loop (``train.train_one_epoch`` over ``data.load`` tensors) against
the textbook torchvision ``DataLoader`` loop with the same model, optimizer, batch size and number of steps, in one
process. ``peak_probe`` measures the attainable matmul FLOP/s; ``loop_variants`` times the bare step, the whole loop
and evaluation for each precision / memory format / compile variant side by side; ``profile_run`` shows where a
protocol run spends its time. ``mnist_speedrun`` trains a registry model on the full MNIST set once per seed and
records test accuracy, training seconds, FLOPs and the fraction of the peak those FLOPs reach. ``parity`` is the rule
that decides whether bf16 matches fp32.
"""

import gzip
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from subsetlib import protocols
from subsetlib.data import Dataset, device_name, load, resolve_device
from subsetlib.errors import UserError
from subsetlib.models import build_model
from subsetlib.registry import DatasetSpec
from subsetlib.train import (
    FlopMeter,
    Ledger,
    autocast,
    check_precision,
    evaluate,
    inputs,
    make_optimizer,
    prepare_model,
    train_one_epoch,
)

# ---------------------------------------------------------------------------------------------------------------------
# Shared bits


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that perf_counter brackets the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_average() -> float:
    """The 1-minute load average: recorded with every speed figure, since the machine may be shared."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise UserError(f"{name.replace('_', ' ')} must be > 0 (got {value})")


# ---------------------------------------------------------------------------------------------------------------------
# compare_loops: the DataLoader side

Transform = Callable[[Any], Any]  # a torchvision (PIL image -> tensor) transform


class ArrayImages(torch.utils.data.Dataset):
    """uint8 N×C×H×W arrays served one PIL image at a time, exactly as torchvision's MNIST/CIFAR classes serve theirs.

    Used where torchvision has no class for our layout (``synthetic``, ``cifar10-jpeg``): the per-item Python cost
    (PIL image, transform, collate) is paid as in a real DataLoader pipeline, but no file decoding is, so for a
    JPEG dataset the DataLoader side is, if anything, faster than a real ImageFolder pipeline.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, transform: Transform):
        self.images = np.ascontiguousarray(x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1))  # H×W(×C)
        self.labels = y
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def torchvision_transform(spec: DatasetSpec, augment: bool) -> Transform:
    """ToTensor + Normalize, preceded by the PIL twin of ``preprocess.augment`` when augmenting."""
    from torchvision import transforms as T

    size = spec.shape[1:]
    steps: list[Transform] = []
    if augment:
        steps = ([T.RandomCrop(size, padding=2)] if spec.augment == "translate"
                 else [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()])
    return T.Compose([*steps, T.ToTensor(), T.Normalize(spec.mean, spec.std)])


def torchvision_train_set(data: Dataset, transform: Transform) -> tuple[torch.utils.data.Dataset, str]:
    """The training split as torchvision's own dataset class reads it from the same files, and a word on how.

    torchvision's MNIST classes read the *decompressed* IDX files from ``<root>/<Class>/raw/``; where only the
    ``.gz`` files are there (the shared data folder is read-only), they are decompressed into a temporary root.
    Datasets torchvision cannot read from our layout are served by ``ArrayImages`` from the loaded uint8 arrays.
    """
    import torchvision.datasets

    if data.spec.torchvision is None:
        x, y = data.x_train.cpu().numpy(), data.y_train.cpu().numpy()
        return ArrayImages(x, y, transform), "PIL images from the loaded uint8 arrays (ArrayImages)"
    cls = getattr(torchvision.datasets, data.spec.torchvision)
    folder = Path(data.root)
    try:
        return cls(str(folder.parent), train=True, download=False, transform=transform), f"torchvision {cls.__name__}"
    except RuntimeError as err:
        if not issubclass(cls, torchvision.datasets.MNIST):
            raise UserError(f"torchvision.datasets.{cls.__name__} cannot read {folder} ({err})") from None
    with tempfile.TemporaryDirectory(prefix="subsetlib-bench-") as tmp:  # the class reads everything in __init__
        raw = Path(tmp) / cls.__name__ / "raw"
        raw.mkdir(parents=True)
        for gz in (folder / "raw").glob("*.gz"):
            with gzip.open(gz, "rb") as src, open(raw / gz.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        dataset = cls(tmp, train=True, download=False, transform=transform)
    return dataset, f"torchvision {cls.__name__} (.gz decompressed to a temp root)"


def endless(loader: torch.utils.data.DataLoader) -> Iterator:
    """Batches across epoch boundaries, the way a step-counted training loop consumes them."""
    while True:
        yield from loader


# ---------------------------------------------------------------------------------------------------------------------
# compare_loops


def fresh_model(name: str, data: Dataset, seed: int, precision: str = "fp32", channels_last: bool = False
                ) -> nn.Module:
    """The same initial weights for both loops: the seed is set right before building."""
    torch.manual_seed(seed)
    return prepare_model(build_model(name, data.spec.shape, data.num_classes).to(data.device), precision,
                         channels_last)


def resident_loop(data: Dataset, model: str | nn.Module, batch_size: int, augment: bool, seed: int,
                  precision: str = "fp32", channels_last: bool = False,
                  optimizer: torch.optim.Optimizer | None = None) -> Callable[[int], None]:
    """``run(n)``: n more steps of ``train_one_epoch`` on full batches, over as many passes as needed.

    Each pass trains on a random slice of whole batches of the training set, so the step count is exact. ``model``
    is a registry name, or a built (possibly compiled) model with its ``optimizer``.
    """
    net = fresh_model(model, data, seed, precision, channels_last) if isinstance(model, str) else model
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
            train_one_epoch(net, optimizer, data, idx, batch_size, generator, ledger, flops, augment_data=augment,
                            precision=precision, channels_last=channels_last)
            todo -= take
        assert ledger.steps == goal, (ledger.steps, goal)

    return run


def dataloader_loop(data: Dataset, model: str, batch_size: int, augment: bool, workers: int, seed: int,
                    precision: str = "fp32", channels_last: bool = False
                    ) -> tuple[Callable[[int], None], Callable[[], None], str]:
    """``run(n)``: n more steps of the textbook DataLoader loop (the model work of ``train_one_epoch``, no ledger);
    also ``close()``, which stops the workers, and where the dataset came from.

    Workers persist across epochs (the best-practice setting; otherwise each epoch pays their start-up again) and the
    warm-up steps come from the same iterator, so worker start-up is never timed.
    """
    net = fresh_model(model, data, seed, precision, channels_last)
    optimizer = make_optimizer(net, "adam", 1e-3)
    dataset, source = torchvision_train_set(data, torchvision_transform(data.spec, augment))
    cuda = data.device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers, pin_memory=cuda,
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed),
    )
    batches = endless(loader)

    def run(todo: int) -> None:
        net.train()
        for _ in range(todo):
            x, y = next(batches)
            x, y = x.to(data.device, non_blocking=cuda), y.to(data.device, non_blocking=cuda)
            x = x.double() if precision == "fp64" else x
            x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            with autocast(data.device, precision):
                loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run, batches.close, source  # closing the generator drops the iterator, which shuts its workers down


def timed(run: Callable[[int], None], steps: int, device: torch.device) -> float:
    """Wall seconds of ``run(steps)``, synchronized on both sides so queued GPU work is counted."""
    sync(device)
    start = time.perf_counter()
    run(steps)
    sync(device)
    return time.perf_counter() - start


def compare_loops(dataset: str = "mnist", model: str = "cnn-simple", batch_size: int = 128, steps: int = 200,
                  device: str = "auto", augment: bool = False, workers: int = 0, root: str | None = None,
                  warmup: int = 5, seed: int = 0, rounds: int = 1, precision: str = "fp32",
                  channels_last: bool = True) -> dict:
    """Training samples/s of subsetlib's device-resident loop and of a torchvision DataLoader loop, and their ratio.

    Both loops start from the same weights (``build_model`` under one seed), use Adam lr 1e-3 (``make_optimizer``),
    take ``steps`` optimizer steps on full batches of ``batch_size`` after ``warmup`` untimed steps, and are timed
    with perf_counter around a synchronized region. The DataLoader side is the textbook pipeline: a torchvision
    dataset class reading the same raw files (``ToTensor`` + ``Normalize``, plus ``RandomCrop`` / flip when
    ``augment``), ``shuffle=True``, ``num_workers=workers``, pinned memory on CUDA, each batch moved to the device.
    Datasets torchvision cannot read from our layout (``synthetic``, ``cifar10-jpeg``) are served as PIL images made
    from the same uint8 arrays (see ``ArrayImages``), so the per-item Python cost is still paid. Both loops use
    ``precision`` and ``channels_last`` the same way.

    On a shared machine, ``rounds`` > 1 times both loops again in alternating order (A B, B A, ...), each round
    continuing the same two training runs. Samples/s are then medians over rounds and the ratio is the median of the
    per-round ratios: the two loops of a round run back to back, so other jobs' load cancels out of their ratio.
    """
    _check_positive(batch_size=batch_size, steps=steps, rounds=rounds)
    check_precision(precision)
    if workers < 0 or warmup < 0:
        raise UserError(f"workers and warmup must be >= 0 (got {workers}, {warmup})")
    dev = resolve_device(device)
    data = load(dataset, root=root, device=dev)
    if batch_size > len(data.y_train):
        raise UserError(f"batch size {batch_size} exceeds the {len(data.y_train)} training examples of {dataset}")
    resident = resident_loop(data, model, batch_size, augment, seed, precision, channels_last)
    loader, close, source = dataloader_loop(data, model, batch_size, augment, workers, seed, precision, channels_last)
    seconds: dict[str, list[float]] = {"resident": [], "dataloader": []}
    loads = [load_average()]
    try:
        resident(warmup)
        loader(warmup)
        for r in range(rounds):
            for name in ("resident", "dataloader") if r % 2 == 0 else ("dataloader", "resident"):
                seconds[name].append(timed(resident if name == "resident" else loader, steps, dev))
        loads.append(load_average())
    finally:
        close()
    res_s, dl_s = float(np.median(seconds["resident"])), float(np.median(seconds["dataloader"]))
    samples = steps * batch_size
    import torchvision

    return {
        "dataset": dataset, "model": model, "device": device_name(dev), "batch_size": batch_size, "steps": steps,
        "warmup": warmup, "augment": augment, "workers": workers, "rounds": rounds, "dataloader_dataset": source,
        "precision": precision, "channels_last": channels_last, "load_avg": float(np.mean(loads)),
        "resident_seconds": res_s, "dataloader_seconds": dl_s,
        "resident_samples_per_s": samples / res_s, "dataloader_samples_per_s": samples / dl_s,
        "ratio": float(np.median(np.divide(seconds["dataloader"], seconds["resident"]))),  # resident ÷ DataLoader
        "resident_seconds_each": seconds["resident"], "dataloader_seconds_each": seconds["dataloader"],
        "threads": torch.get_num_threads(), "torch": torch.__version__, "torchvision": torchvision.__version__,
    }


def format_report(result: dict) -> str:
    """compare_loops' dict as a few aligned lines, ending with the ratio."""
    aug = ", augmented" if result.get("augment") else ""
    rounds = f" · median of {result['rounds']} rounds" if result.get("rounds", 1) > 1 else ""
    return "\n".join([
        f"{result['dataset']} · {result['model']} · batch {result['batch_size']} · {result['steps']} steps"
        f"{aug}{rounds} · {result['precision']}{', channels-last' if result['channels_last'] else ''}",
        f"device: {result['device']} · {result['threads']} threads · torch {result['torch']} · "
        f"load average {result['load_avg']:.2f}",
        f"resident loop    {result['resident_samples_per_s']:>12,.0f} samples/s",
        f"DataLoader loop  {result['dataloader_samples_per_s']:>12,.0f} samples/s   "
        f"(workers={result['workers']}, {result['dataloader_dataset']})",
        f"ratio: {result['ratio']:.2f}×",
    ])


# ---------------------------------------------------------------------------------------------------------------------
# The machine's peak

# Dense (no sparsity) peak FLOP/s from NVIDIA's data sheets; "fp32" is the non-tensor-core FP32 rate. The first key
# that is a substring of torch.cuda.get_device_name() wins, so the more specific names come first.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"bf16": 756e12, "fp32": 51.2e12},
    "H100 NVL": {"bf16": 835e12, "fp32": 60e12},
    "H200": {"bf16": 989e12, "fp32": 67e12},
    "H100": {"bf16": 989e12, "fp32": 67e12},  # SXM (its name is "NVIDIA H100 80GB HBM3")
    "A100": {"bf16": 312e12, "fp32": 19.5e12},
}


def peak_flops(device: torch.device, dtype: str) -> float:
    """The device's dense data-sheet peak for ``dtype`` ("bf16" or "fp32"), NaN on a CPU or an unlisted GPU."""
    if device.type != "cuda":
        return math.nan
    name = torch.cuda.get_device_name(device)
    return next((peaks[dtype] for key, peaks in PEAK_FLOPS.items() if key in name), math.nan)


def peak_probe(device: str = "auto", size: int = 2048, repeats: int = 5) -> dict:
    """Attainable FLOP/s of this machine: the best of ``repeats`` timed ``size``×``size`` matmuls in fp32 and bf16.

    A CPU has no data-sheet figure that holds under a given thread count and load, so the peak is measured the way
    the loops run: same process, same threads. Large square matmuls are what BLAS / oneDNN do best, so this is the
    ceiling a training loop can approach, not exceed (bf16 counts for bf16 autocast, fp32 for fp32 and fp64).
    """
    _check_positive(size=size, repeats=repeats)
    dev = resolve_device(device)
    out: dict[str, Any] = {"device": device_name(dev), "threads": torch.get_num_threads(), "size": size,
                           "load_avg": load_average()}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=dev, dtype=dtype)
        b = torch.randn(size, size, device=dev, dtype=dtype)
        best = math.inf
        for _ in range(repeats + 1):  # the first one warms up
            sync(dev)
            tic = time.perf_counter()
            torch.mm(a, b)
            sync(dev)
            best = min(best, time.perf_counter() - tic)
        out[name] = 2 * size**3 / best
    return out


# ---------------------------------------------------------------------------------------------------------------------
# loop_variants: bare step, whole loop and evaluation, per precision / memory format / compile


@dataclass(frozen=True)
class Variant:
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    @property
    def label(self) -> str:
        parts = [self.precision, "channels-last" if self.channels_last else "NCHW"]
        return " + ".join(parts + (["torch.compile"] if self.compile else []))


VARIANTS = (Variant("fp32", False), Variant("fp32", True), Variant("bf16", False), Variant("bf16", True),
            Variant("fp32", True, True))
"""The issue's table: fp32 NCHW, channels-last, bf16 NCHW, bf16 channels-last, and torch.compile (fp32, NHWC)."""


def _variant_runs(data: Dataset, model: str, batch_size: int, variant: Variant, seed: int, eval_batch: int
                  ) -> dict[str, Callable[[int], None]]:
    """The three timed things of one variant, on one model: ``bare(n)`` steps on one fixed batch, ``loop(n)`` steps
    of ``train_one_epoch``, ``evaluate(n)`` test-set passes of ``train.evaluate`` and ``forward(n)`` bare
    inference-mode forwards of an ``eval_batch`` batch."""
    net = fresh_model(model, data, seed, variant.precision, variant.channels_last)
    runner = torch.compile(net) if variant.compile else net
    optimizer = make_optimizer(net, "adam", 1e-3)
    how = {"precision": variant.precision, "channels_last": variant.channels_last}
    x = inputs(data.x_train[:batch_size], data, **how)
    y = data.y_train[:batch_size]
    x_eval = inputs(data.x_test[:eval_batch], data, **how)

    def bare(todo: int) -> None:
        runner.train()
        for _ in range(todo):
            with autocast(data.device, variant.precision):
                loss = F.cross_entropy(runner(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def test_passes(todo: int) -> None:
        for _ in range(todo):
            evaluate(runner, data, "test", batch_size=eval_batch, **how)

    @torch.inference_mode()
    def forward(todo: int) -> None:
        runner.eval()
        for _ in range(todo):
            with autocast(data.device, variant.precision):
                runner(x_eval).argmax(1)
        runner.train()

    loop = resident_loop(data, runner, batch_size, False, seed, optimizer=optimizer, **how)
    return {"bare": bare, "loop": loop, "evaluate": test_passes, "forward": forward}


def loop_variants(dataset: str = "mnist", model: str = "cnn-simple", batch_size: int = 128, steps: int = 100,
                  variants: Sequence[Variant] = VARIANTS, device: str = "auto", root: str | None = None,
                  warmup: int = 5, seed: int = 0, rounds: int = 3, eval_batch: int = 1000,
                  peak: dict | None = None) -> pd.DataFrame:
    """One row per variant: examples/s of the bare training step, of the whole loop and of evaluation, side by side.

    The bare step is forward + loss + backward + Adam step on one fixed, already-prepared batch: the ceiling for the
    loop, which adds batch making (index, normalize, memory format), the ledger and the FLOP meter. Evaluation is
    ``train.evaluate`` over the test set, against bare inference-mode forwards of batches of the same size. Every
    round times all variants back to back (in reversed order every other round) and each figure is a median over
    rounds, so load from other jobs hits all variants alike. ``peak`` (``peak_probe``'s dict) gives each loop's
    fraction of the attainable FLOP/s for its precision (bf16 for bf16 autocast, else fp32).
    """
    _check_positive(batch_size=batch_size, steps=steps, rounds=rounds, eval_batch=eval_batch)
    for v in variants:
        check_precision(v.precision)
    dev = resolve_device(device)
    data = load(dataset, root=root, device=dev)
    if batch_size > len(data.y_train):
        raise UserError(f"batch size {batch_size} exceeds the {len(data.y_train)} training examples of {dataset}")
    eval_batch = min(eval_batch, len(data.y_test))
    runs = {v: _variant_runs(data, model, batch_size, v, seed, eval_batch) for v in variants}
    passes = max(1, round(steps * batch_size / len(data.y_test) / 3))  # evaluation: about a third of training's work
    work = {"bare": steps, "loop": steps, "evaluate": passes,
            "forward": passes * math.ceil(len(data.y_test) / eval_batch)}
    examples = {"bare": steps * batch_size, "loop": steps * batch_size, "evaluate": passes * len(data.y_test),
                "forward": work["forward"] * eval_batch}
    compile_seconds = {}
    for v, run in runs.items():  # warm-up: compilation (train and eval graphs), oneDNN kernel selection, FLOP meter
        tic = time.perf_counter()
        for name in ("bare", "loop", "forward", "evaluate"):
            run[name](max(1, warmup) if name in ("bare", "loop") else 1)
        compile_seconds[v] = time.perf_counter() - tic
    seconds: dict[tuple[Variant, str], list[float]] = {(v, k): [] for v in variants for k in work}
    loads = []
    for r in range(rounds):
        loads.append(load_average())
        for v in variants if r % 2 == 0 else list(reversed(variants)):
            for name, count in work.items():
                seconds[v, name].append(timed(runs[v][name], count, dev))
    flops_per_step = FlopMeter(fresh_model(model, data, seed), data.spec.shape, data.num_classes)(batch_size)
    rows = []
    for v in variants:
        rate = {k: examples[k] / float(np.median(seconds[v, k])) for k in work}
        loop_flops = rate["loop"] / batch_size * flops_per_step
        ceiling = (peak or {}).get("bf16" if v.precision == "bf16" else "fp32", math.nan)
        rows.append({
            "variant": v.label, "precision": v.precision, "channels_last": v.channels_last, "compile": v.compile,
            "bare_step_ex_per_s": rate["bare"], "loop_ex_per_s": rate["loop"],
            "loop_over_bare": rate["loop"] / rate["bare"],
            "bare_forward_ex_per_s": rate["forward"], "evaluate_ex_per_s": rate["evaluate"],
            "evaluate_over_forward": rate["evaluate"] / rate["forward"],
            "loop_flop_per_s": loop_flops, "peak_flop_per_s": ceiling, "frac_peak": loop_flops / ceiling,
            "warmup_seconds": compile_seconds[v],
            "dataset": dataset, "model": model, "batch_size": batch_size, "steps": steps, "rounds": rounds,
            "flop_per_step": flops_per_step, "device": device_name(dev), "threads": torch.get_num_threads(),
            "load_avg": float(np.mean(loads)), "torch": torch.__version__,
        })
    return pd.DataFrame(rows)


def format_variants(table: pd.DataFrame) -> str:
    """loop_variants' table as aligned lines (for the CLI)."""
    lines = [f"{table['dataset'].iloc[0]} · {table['model'].iloc[0]} · batch {table['batch_size'].iloc[0]} · "
             f"{table['device'].iloc[0]} · {table['threads'].iloc[0]} threads · load average "
             f"{table['load_avg'].iloc[0]:.2f}",
             f"{'variant':<36}{'bare ex/s':>11}{'loop ex/s':>11}{'loop/bare':>10}{'eval ex/s':>11}{'GFLOP/s':>9}"
             f"{'of peak':>9}"]
    for _, r in table.iterrows():
        lines.append(f"{r['variant']:<36}{r['bare_step_ex_per_s']:>11,.0f}{r['loop_ex_per_s']:>11,.0f}"
                     f"{r['loop_over_bare']:>10.2f}{r['evaluate_ex_per_s']:>11,.0f}{r['loop_flop_per_s'] / 1e9:>9.1f}"
                     f"{r['frac_peak']:>9.1%}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# profile_run: where a protocol run's time goes

PROFILE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("evaluation", ("evaluate",)),
    ("optimizer step", ("Optimizer.step",)),
    ("zero_grad", ("Optimizer.zero_grad",)),
    ("backward", ("autograd::engine",)),
    ("batch making (index, normalize, layout)", ("aten::index", "aten::sub", "aten::div", "aten::to", "aten::_to_copy",
                                                 "aten::contiguous", "aten::clone", "aten::copy_", "aten::randperm",
                                                 "aten::split", "aten::float")),
    ("forward and loss", ("aten::conv", "aten::_conv", "aten::batch_norm", "aten::relu", "aten::max_pool",
                          "aten::linear", "aten::flatten", "aten::cross_entropy", "aten::log_softmax",
                          "aten::nll_loss", "aten::adaptive", "aten::addmm", "aten::view", "aten::reshape")),
)
"""Top-level profiler events by name prefix; the first group that matches wins, the rest is "other ops"."""


def _group(name: str) -> str:
    return next((group for group, prefixes in PROFILE_GROUPS if name.startswith(prefixes)), "other ops")


def profile_run(cfg: protocols.RunConfig, epochs: int = 1, seed: int = 0, device: str = "auto",
                root: str | None = None, top: int = 12) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A conventional run under ``torch.profiler``: where its wall time goes, by group and by operator.

    Returns (groups, ops, summary). Groups sum the top-level events' time (evaluation is labelled by wrapping
    ``protocols.evaluate`` for the run), and "Python between ops" is the wall time no top-level event covers (the
    loop itself, the ledger, setup). ops: the ``top`` operators by self time. summary: the run's ledger split
    (training, evaluation, the rest of the wall time). The profiler slows small ops, so shares matter, not seconds.
    """
    dev = resolve_device(device)
    data = load(cfg.dataset, root=root, device=dev)
    plain = protocols.evaluate

    def labelled(*args: Any, **kwargs: Any) -> tuple[float, float]:
        with torch.profiler.record_function("evaluate"):
            return plain(*args, **kwargs)

    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    tic = time.perf_counter()
    with mock.patch.object(protocols, "evaluate", labelled), torch.profiler.profile(activities=activities) as prof:
        run = protocols.conventional(data, cfg, seed, epochs)
    wall = time.perf_counter() - tic
    roots = [e for e in prof.events() if e.cpu_parent is None]
    by_group: dict[str, float] = {}
    for event in roots:
        by_group[_group(event.name)] = by_group.get(_group(event.name), 0.0) + event.cpu_time_total / 1e6
    by_group["Python between ops (loop, ledger, setup)"] = max(0.0, wall - sum(by_group.values()))
    groups = pd.DataFrame({"where": list(by_group), "seconds": list(by_group.values())})
    groups = groups.sort_values("seconds", ascending=False, ignore_index=True)
    groups["share"] = groups["seconds"] / wall
    averages = sorted(prof.key_averages(), key=lambda a: a.self_cpu_time_total, reverse=True)[:top]
    ops = pd.DataFrame([{"operator": a.key, "calls": a.count, "self_seconds": a.self_cpu_time_total / 1e6,
                         "share": a.self_cpu_time_total / 1e6 / wall} for a in averages])
    s = run.summary
    summary = {"wall_seconds": wall, "train_seconds": s["total_train_seconds"], "eval_seconds": s["total_eval_seconds"],
               "other_seconds": wall - s["total_train_seconds"] - s["total_eval_seconds"], "epochs": epochs,
               "evaluations": len(run.curve), "final_test_acc": s["final_test_acc"], "load_avg": load_average(),
               "threads": torch.get_num_threads(), "device": device_name(dev), **{f"cfg_{k}": v for k, v in
                                                                                  vars(cfg).items()}}
    return groups, ops, summary


# ---------------------------------------------------------------------------------------------------------------------
# parity: does bf16 match fp32?


def parity(reference: Sequence[float], candidate: Sequence[float]) -> dict:
    """Whether ``candidate`` matches ``reference`` within seed noise; both are per-seed values, paired by seed.

    Rule: the mean paired difference d̄ (candidate − reference) is within 2 standard errors of the paired
    difference (|d̄| ≤ 2·sd(d)/√n, a two-sided test at about 5 %), or within the reference's own seed-to-seed
    standard deviation (a difference no larger than what changing the seed does). Needs at least 2 pairs.
    """
    ref, cand = np.asarray(reference, dtype=float), np.asarray(candidate, dtype=float)
    if ref.shape != cand.shape or ref.ndim != 1 or len(ref) < 2:
        raise UserError(f"parity needs two equally long lists of ≥ 2 per-seed values (got {len(ref)} and {len(cand)})")
    diff = cand - ref
    n = len(diff)
    mean_diff, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(n))
    ref_std = float(ref.std(ddof=1))
    return {"n": n, "reference_mean": float(ref.mean()), "reference_std": ref_std,
            "candidate_mean": float(cand.mean()), "candidate_std": float(cand.std(ddof=1)),
            "mean_diff": mean_diff, "se_diff": se,
            "holds": bool(abs(mean_diff) <= 2 * se or abs(mean_diff) <= ref_std)}


# ---------------------------------------------------------------------------------------------------------------------
# mnist_speedrun


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int, warmup_frac: float) -> None:
    """torch's OneCycleLR (cosine warm-up to the optimizer's lr over ``warmup_frac`` of the steps, cosine decay to
    lr/1e4, Adam's beta1 cycled against it), stepped after every optimizer step.

    A step hook rather than a call in the loop, so ``train_one_epoch`` stays the one training loop; the lr is a Python
    float, so this adds no GPU synchronization.
    """
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"],
                                                   total_steps=total_steps, pct_start=warmup_frac)
    optimizer.register_step_post_hook(lambda *_: schedule.step() if schedule.last_epoch < total_steps else None)


def mnist_speedrun(seeds: Iterable[int] = range(10), device: str = "auto", epochs: int = 2, batch_size: int = 500,
                   root: str | None = None, *, model: str = "mnist-fast", optimizer: str = "adam", lr: float = 0.01,
                   warmup_frac: float = 0.2, precision: str | None = None, channels_last: bool = False,
                   compile: bool = False, dataset: str = "mnist", peak: dict | None = None) -> pd.DataFrame:
    """The conventional MNIST baseline: ``model`` on the full training set, once per seed, one row per seed.

    Recipe: Adam with a one-cycle lr schedule peaking at ``lr``, ``epochs`` passes in batches of ``batch_size``,
    data resident on the device, bf16 autocast on a GPU unless ``precision`` says otherwise. The timed region is
    ``train_one_epoch`` only (its CUDA-event / perf_counter stopwatch); a few untimed warm-up steps on every batch
    shape come first (CUDA context, cuDNN autotuning, compilation), test accuracy is measured after. FLOPs come
    from ``FlopMeter`` (measured once per batch shape). ``train_cpu_seconds`` is the process's CPU time over the same
    epochs: on a shared machine, divided by the threads, it says what the run would take with the cores to itself
    (an estimate; spinning threads count too). ``frac_peak`` divides the achieved rate by the peak for the
    precision: ``peak`` (``peak_probe``'s measured dict) if given, else the GPU's data sheet, else NaN.
    """
    _check_positive(epochs=epochs, batch_size=batch_size)
    dev = resolve_device(device)
    precision = check_precision(precision or ("bf16" if dev.type == "cuda" else "fp32"))
    data = load(dataset, root=root, device=dev)
    n = len(data.y_train)
    everything = torch.arange(n, device=dev)
    net = prepare_model(build_model(model, data.spec.shape, data.num_classes).to(dev), precision, channels_last)
    trained = torch.compile(net) if compile else net  # compiled once; each seed loads fresh weights into ``net``
    flops = FlopMeter(net, data.spec.shape, data.num_classes)
    kind = "bf16" if precision == "bf16" else "fp32"
    ceiling = peak[kind] if peak else peak_flops(dev, kind)
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    how = {"precision": precision, "channels_last": channels_last}
    try:
        # Untimed warm-up on both batch shapes an epoch produces (full and the last, partial one).
        warm_idx = everything[: 2 * batch_size + n % batch_size]
        warm_opt = make_optimizer(trained, optimizer, lr)
        train_one_epoch(trained, warm_opt, data, warm_idx, batch_size, torch.Generator(device=dev).manual_seed(0),
                        Ledger(), flops, **how)
        rows = []
        for seed in seeds:
            torch.manual_seed(seed)
            fresh = prepare_model(build_model(model, data.spec.shape, data.num_classes), precision, channels_last)
            net.load_state_dict(fresh.state_dict())
            opt = make_optimizer(trained, optimizer, lr)
            one_cycle(opt, epochs * math.ceil(n / batch_size), warmup_frac)
            generator = torch.Generator(device=dev).manual_seed(seed)
            ledger = Ledger()
            load_before, cpu_before = load_average(), time.process_time()
            for _ in range(epochs):
                train_one_epoch(trained, opt, data, everything, batch_size, generator, ledger, flops, **how)
            cpu_seconds = time.process_time() - cpu_before
            test_loss, test_acc = evaluate(trained, data, "test", **how)
            rate = ledger.flops / ledger.train_seconds
            rows.append({
                "seed": seed, "test_acc": test_acc, "test_loss": test_loss, "train_seconds": ledger.train_seconds,
                "train_cpu_seconds": cpu_seconds, "examples": ledger.examples, "steps": ledger.steps,
                "flops": ledger.flops, "flop_per_s": rate,
                "peak_flop_per_s": ceiling, "frac_peak": rate / ceiling, "device": device_name(dev), "dataset": dataset,
                "model": model, "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                "precision": precision, "channels_last": channels_last, "compile": compile,
                "threads": torch.get_num_threads(), "load_avg": (load_before + load_average()) / 2,
                "torch": torch.__version__,
            })
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return pd.DataFrame(rows)
