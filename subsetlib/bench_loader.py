"""Why subsetlib keeps the data on the device: its resident loop (``train.train_one_epoch`` over ``data.load``
tensors) against the textbook torchvision ``DataLoader`` loop, same model, optimizer, batch size and steps, in one
process (``compare_loops``; ``python -m subsetlib bench``)."""

import gzip
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from subsetlib.bench_timing import check_positive, fresh_model, load_average, resident_loop, timed
from subsetlib.data import Dataset, device_name, load, resolve_device
from subsetlib.errors import UserError
from subsetlib.registry import DatasetSpec
from subsetlib.train import Numerics, make_optimizer, resolve_numerics

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


def dataloader_loop(data: Dataset, model: str, batch_size: int, augment: bool, workers: int, seed: int,
                    how: Numerics) -> tuple[Callable[[int], None], Callable[[], None], str]:
    """``run(n)``: n more steps of the textbook DataLoader loop (the model work of ``train_one_epoch``, no ledger);
    also ``close()``, which stops the workers, and where the dataset came from.

    Workers persist across epochs (the best-practice setting; otherwise each epoch pays their start-up again) and the
    warm-up steps come from the same iterator, so worker start-up is never timed.
    """
    net = fresh_model(model, data, seed, how)
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
            x = x.to(how.dtype).contiguous(memory_format=how.memory_format)
            with how.autocast:
                loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run, batches.close, source  # closing the generator drops the iterator, which shuts its workers down


def compare_loops(dataset: str = "mnist", model: str = "cnn-simple", batch_size: int = 128, steps: int = 200,
                  device: str = "auto", augment: bool = False, workers: int = 0, root: str | None = None,
                  warmup: int = 5, seed: int = 0, rounds: int = 1, precision: str = "fp32",
                  channels_last: bool = True, progress: Callable[[str], None] | None = None) -> dict:
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
    ``progress`` gets one line after each timed loop.
    """
    check_positive(batch_size=batch_size, steps=steps, rounds=rounds)
    if workers < 0 or warmup < 0:
        raise UserError(f"workers and warmup must be >= 0 (got {workers}, {warmup})")
    dev = resolve_device(device)
    how = resolve_numerics(precision, channels_last, dev)
    data = load(dataset, root=root, device=dev)
    if batch_size > len(data.y_train):
        raise UserError(f"batch size {batch_size} exceeds the {len(data.y_train)} training examples of {dataset}")
    resident = resident_loop(data, model, batch_size, augment, seed, how)
    loader, close, source = dataloader_loop(data, model, batch_size, augment, workers, seed, how)
    seconds: dict[str, list[float]] = {"resident": [], "dataloader": []}
    loads = [load_average()]
    try:
        resident(warmup)
        loader(warmup)
        for r in range(rounds):
            for name in ("resident", "dataloader") if r % 2 == 0 else ("dataloader", "resident"):
                seconds[name].append(timed(resident if name == "resident" else loader, steps, dev))
                if progress is not None:
                    progress(f"round {r + 1} of {rounds}: the {name} loop took {seconds[name][-1]:.1f} s "
                             f"for {steps} steps")
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
