"""What happens to a batch on the device before the model sees it: scaling to the dataset's normalisation and
random shifts and flips. Batch-wise on the device, so no DataLoader workers sit in the hot loop (the airbench
recipe)."""

import functools

import torch

from subsetlib.registry import DatasetSpec


@functools.cache
def _moments(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Per-channel mean and std on the device, made once: a host-to-GPU copy per batch would stall the GPU queue."""
    return (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))


def normalize(x: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
    mean, std = _moments(spec.mean, spec.std, x.device)
    return (x.float() / 255 - mean) / std


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``pad`` pixels (zero fill): pad, then crop at a per-image random offset."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy, dx = (torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=generator.device)).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def augment(x: torch.Tensor, spec: DatasetSpec, generator: torch.Generator) -> torch.Tensor:
    """Batch-wise augmentation on the device: ±2 px translation for the MNIST family; pad-4 random crop and
    horizontal flip for CIFAR."""
    if spec.augment == "translate":
        return random_crop(x, 2, generator)
    x = random_crop(x, 4, generator)
    flip = (torch.rand(len(x), generator=generator, device=generator.device) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)
