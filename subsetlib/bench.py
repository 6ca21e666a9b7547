"""Two benchmarks: why subsetlib keeps the data on the device, and how fast the conventional MNIST baseline trains.

``compare_loops`` times subsetlib's device-resident loop (``train.train_one_epoch`` over ``data.load`` tensors) against
the textbook torchvision ``DataLoader`` loop with the same model, optimizer, batch size and number of steps, in one
process. ``mnist_speedrun`` trains the registry model ``mnist-fast`` on the full MNIST set once per seed and records
test accuracy, training seconds, FLOPs and the fraction of the device's peak those FLOPs reach.
"""

import gzip
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from subsetlib.data import TORCHVISION_CLASSES, Dataset, DatasetSpec, load, resolve_device
from subsetlib.errors import UserError
from subsetlib.models import build_model
from subsetlib.train import FlopMeter, Ledger, check_precision, evaluate, make_optimizer, train_one_epoch

# ---------------------------------------------------------------------------------------------------------------------
# Shared bits


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that perf_counter brackets the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """The GPU's marketing name, or the CPU model and the cores this process may use (timings depend on both)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu ({model}, {cores} cores)"


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
    """ToTensor + Normalize, preceded by the PIL twin of ``data.augment`` when augmenting."""
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

    if data.name not in TORCHVISION_CLASSES:
        x, y = data.x_train.cpu().numpy(), data.y_train.cpu().numpy()
        return ArrayImages(x, y, transform), "PIL images from the loaded uint8 arrays (ArrayImages)"
    cls = getattr(torchvision.datasets, TORCHVISION_CLASSES[data.name])
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


def fresh_model(name: str, data: Dataset, seed: int) -> nn.Module:
    """The same initial weights for both loops: the seed is set right before building."""
    torch.manual_seed(seed)
    return build_model(name, data.spec.shape, data.num_classes).to(data.device)


def resident_loop(data: Dataset, model: str, batch_size: int, augment: bool, seed: int) -> Callable[[int], None]:
    """``run(n)``: n more steps of ``train_one_epoch`` on full batches, over as many passes as needed.

    Each pass trains on a random slice of whole batches of the training set, so the step count is exact.
    """
    net = fresh_model(model, data, seed)
    optimizer = make_optimizer(net, "adam", 1e-3)
    flops = FlopMeter(net, data.spec.shape, data.num_classes)  # measured on the first (warm-up) step, cached after
    generator = torch.Generator(device=data.device).manual_seed(seed)
    ledger = Ledger()
    n, per_pass = len(data.y_train), len(data.y_train) // batch_size

    def run(todo: int) -> None:
        goal = ledger.steps + todo
        while todo > 0:
            take = min(todo, per_pass)
            idx = torch.randperm(n, generator=generator, device=data.device)[: take * batch_size]
            train_one_epoch(net, optimizer, data, idx, batch_size, generator, ledger, flops, augment_data=augment)
            todo -= take
        assert ledger.steps == goal, (ledger.steps, goal)

    return run


def dataloader_loop(data: Dataset, model: str, batch_size: int, augment: bool, workers: int,
                    seed: int) -> tuple[Callable[[int], None], Callable[[], None], str]:
    """``run(n)``: n more steps of the textbook DataLoader loop (the model work of ``train_one_epoch``, no ledger);
    also ``close()``, which stops the workers, and where the dataset came from.

    Workers persist across epochs (the best-practice setting; otherwise each epoch pays their start-up again) and the
    warm-up steps come from the same iterator, so worker start-up is never timed.
    """
    net = fresh_model(model, data, seed)
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
                  warmup: int = 5, seed: int = 0, rounds: int = 1) -> dict:
    """Training samples/s of subsetlib's device-resident loop and of a torchvision DataLoader loop, and their ratio.

    Both loops start from the same weights (``build_model`` under one seed), use Adam lr 1e-3 (``make_optimizer``),
    take ``steps`` optimizer steps on full batches of ``batch_size`` after ``warmup`` untimed steps, and are timed
    with perf_counter around a synchronized region. The DataLoader side is the textbook pipeline: a torchvision
    dataset class reading the same raw files (``ToTensor`` + ``Normalize``, plus ``RandomCrop`` / flip when
    ``augment``), ``shuffle=True``, ``num_workers=workers``, pinned memory on CUDA, each batch moved to the device.
    Datasets torchvision cannot read from our layout (``synthetic``, ``cifar10-jpeg``) are served as PIL images made
    from the same uint8 arrays (see ``ArrayImages``), so the per-item Python cost is still paid.

    On a shared machine, ``rounds`` > 1 times both loops again in alternating order (A B, B A, ...), each round
    continuing the same two training runs. Samples/s are then medians over rounds and the ratio is the median of the
    per-round ratios: the two loops of a round run back to back, so other jobs' load cancels out of their ratio.
    """
    _check_positive(batch_size=batch_size, steps=steps, rounds=rounds)
    if workers < 0 or warmup < 0:
        raise UserError(f"workers and warmup must be >= 0 (got {workers}, {warmup})")
    dev = resolve_device(device)
    data = load(dataset, root=root, device=dev)
    if batch_size > len(data.y_train):
        raise UserError(f"batch size {batch_size} exceeds the {len(data.y_train)} training examples of {dataset}")
    resident = resident_loop(data, model, batch_size, augment, seed)
    loader, close, source = dataloader_loop(data, model, batch_size, augment, workers, seed)
    seconds: dict[str, list[float]] = {"resident": [], "dataloader": []}
    try:
        resident(warmup)
        loader(warmup)
        for r in range(rounds):
            for name in ("resident", "dataloader") if r % 2 == 0 else ("dataloader", "resident"):
                seconds[name].append(timed(resident if name == "resident" else loader, steps, dev))
    finally:
        close()
    res_s, dl_s = float(np.median(seconds["resident"])), float(np.median(seconds["dataloader"]))
    samples = steps * batch_size
    import torchvision

    return {
        "dataset": dataset, "model": model, "device": device_name(dev), "batch_size": batch_size, "steps": steps,
        "warmup": warmup, "augment": augment, "workers": workers, "rounds": rounds, "dataloader_dataset": source,
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
        f"{aug}{rounds}",
        f"device: {result['device']} · {result['threads']} threads · torch {result['torch']}",
        f"resident loop    {result['resident_samples_per_s']:>12,.0f} samples/s",
        f"DataLoader loop  {result['dataloader_samples_per_s']:>12,.0f} samples/s   "
        f"(workers={result['workers']}, {result['dataloader_dataset']})",
        f"ratio: {result['ratio']:.2f}×",
    ])


# ---------------------------------------------------------------------------------------------------------------------
# mnist_speedrun

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
    """The device's dense peak for ``dtype`` ("bf16" or "fp32"), NaN on a CPU or an unlisted GPU."""
    if device.type != "cuda":
        return math.nan
    name = torch.cuda.get_device_name(device)
    return next((peaks[dtype] for key, peaks in PEAK_FLOPS.items() if key in name), math.nan)


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int, warmup_frac: float) -> None:
    """Linear warm-up to the optimizer's lr, then linear decay to zero, stepped after every optimizer step.

    A step hook rather than a call in the loop, so ``train_one_epoch`` stays the one training loop; the lr is a Python
    float, so this adds no GPU synchronization.
    """
    warm = max(1, round(warmup_frac * total_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: min((k + 1) / warm, max(0.0, (total_steps - k) / max(1, total_steps - warm))))
    optimizer.register_step_post_hook(lambda *_: schedule.step())


def mnist_speedrun(seeds: Iterable[int] = range(10), device: str = "auto", epochs: int = 2, batch_size: int = 500,
                   root: str | None = None, *, optimizer: str = "adam", lr: float = 0.01, warmup_frac: float = 0.2,
                   precision: str | None = None, channels_last: bool = False, compile: bool = False,
                   dataset: str = "mnist") -> pd.DataFrame:
    """The conventional MNIST baseline: ``mnist-fast`` on the full training set, once per seed, one row per seed.

    Recipe: Adam with a one-cycle (linear up, linear down) lr schedule peaking at ``lr``, ``epochs`` passes in
    batches of ``batch_size``, data resident on the device, bf16 autocast on a GPU unless
    ``precision`` says otherwise. The timed
    region is ``train_one_epoch`` only (its CUDA-event / perf_counter stopwatch); a few untimed warm-up steps on every
    batch shape come first (CUDA context, cuDNN autotuning, compilation), test accuracy is measured after. FLOPs come
    from ``FlopMeter`` (measured once per batch shape); ``frac_peak`` divides the achieved rate by the device's dense
    bf16 or fp32 peak, NaN where the peak is unknown.
    """
    _check_positive(epochs=epochs, batch_size=batch_size)
    dev = resolve_device(device)
    precision = check_precision(precision or ("bf16" if dev.type == "cuda" else "fp32"))
    data = load(dataset, root=root, device=dev)
    n = len(data.y_train)
    everything = torch.arange(n, device=dev)
    net = build_model("mnist-fast", data.spec.shape, data.num_classes).to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    trained = torch.compile(net) if compile else net  # compiled once; each seed loads fresh weights into ``net``
    flops = FlopMeter(net, data.spec.shape, data.num_classes)
    peak = peak_flops(dev, "bf16" if precision == "bf16" else "fp32")
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        # Untimed warm-up on both batch shapes an epoch produces (full and the last, partial one).
        warm_idx = everything[: 2 * batch_size + n % batch_size]
        warm_opt = make_optimizer(trained, optimizer, lr)
        train_one_epoch(trained, warm_opt, data, warm_idx, batch_size, torch.Generator(device=dev).manual_seed(0),
                        Ledger(), flops, precision=precision, channels_last=channels_last)
        rows = []
        for seed in seeds:
            torch.manual_seed(seed)
            net.load_state_dict(build_model("mnist-fast", data.spec.shape, data.num_classes).state_dict())
            opt = make_optimizer(trained, optimizer, lr)
            one_cycle(opt, epochs * math.ceil(n / batch_size), warmup_frac)
            generator = torch.Generator(device=dev).manual_seed(seed)
            ledger = Ledger()
            for _ in range(epochs):
                train_one_epoch(trained, opt, data, everything, batch_size, generator, ledger, flops,
                                precision=precision, channels_last=channels_last)
            test_loss, test_acc = evaluate(trained, data, "test")
            rate = ledger.flops / ledger.train_seconds
            rows.append({
                "seed": seed, "test_acc": test_acc, "test_loss": test_loss, "train_seconds": ledger.train_seconds,
                "examples": ledger.examples, "steps": ledger.steps, "flops": ledger.flops, "flop_per_s": rate,
                "peak_flop_per_s": peak, "frac_peak": rate / peak, "device": device_name(dev), "dataset": dataset,
                "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr, "precision": precision,
                "channels_last": channels_last, "compile": compile, "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            })
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return pd.DataFrame(rows)
