"""Datasets held on the device as uint8 tensors: the whole training set lives in (GPU) memory once, and a batch is
an index into it (no DataLoader workers in the hot loop). Also which device, and its name for provenance."""

import os
import platform
from dataclasses import dataclass

import numpy as np
import torch

from subsetlib.errors import UserError
from subsetlib.registry import DatasetSpec, data_roots, dataset_spec


@dataclass
class Dataset:
    """A dataset on a device: uint8 images (N, C, H, W) and int64 labels."""

    spec: DatasetSpec
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    root: str  # where it was loaded from (provenance)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def device(self) -> torch.device:
        return self.x_train.device


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but no CUDA GPU is visible: use --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None


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


def load(name: str, root: str | os.PathLike | None = None, device: str | torch.device = "auto",
         verify: bool = True) -> Dataset:
    """Load a registered dataset from real files onto ``device`` as uint8 tensors."""
    spec = dataset_spec(name)
    device = resolve_device(device) if isinstance(device, str) else device
    roots = data_roots(root)
    folder = next((r / spec.folder for r in roots if (r / spec.folder).exists()), roots[0] / spec.folder)
    if name != "synthetic" and not folder.exists():
        looked = ", ".join(str(r / spec.folder) for r in roots)
        raise UserError(f"dataset {name!r} not found (looked in {looked}): {spec.how_to_get}")
    x_train, y_train, x_test, y_test = spec.load(folder, verify)
    if x_train.shape[1:] != spec.shape or y_train.max(initial=0) >= spec.num_classes:
        raise UserError(f"files in {folder} do not hold {name} (shape {x_train.shape[1:]}): download them again")

    def put(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, copy=True)).to(device)  # a private, writable copy

    return Dataset(spec, put(x_train), put(y_train), put(x_test), put(y_test), str(folder))
