"""Model registry: small paper-like CNNs, a fast MNIST CNN, ResNet-18 for 32×32, and torchvision models by name.

Every builder takes the input shape (C, H, W) and the number of classes M, so P (and hence Q) follows from the
dataset. The paper does not list its exact architectures; these are documented stand-ins of the same family.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from subsetlib.errors import UserError


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def cnn_simple(in_shape: tuple[int, int, int], num_classes: int, width: int = 16) -> nn.Module:
    """Three unpadded 3×3 conv layers (width, 2·width, 4·width channels) with max pooling and one linear layer
    (23,946 parameters on MNIST at the default width 16).

    Small on purpose: with P ≈ 24k, MNIST's K·M = 600,000 gives Q ≈ 25 on the full set, so the paper's
    target Q values 1.5, 2 and 3 fall on subsets of a few thousand examples.
    """
    c, h, w = in_shape
    body = nn.Sequential(
        nn.Conv2d(c, width, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 4 * width, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    with torch.no_grad():
        features = body(torch.zeros(1, c, h, w)).shape[1]
    return nn.Sequential(body, nn.Linear(features, num_classes))


def vgg_small(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """A VGG-style CNN: three blocks of two 3×3 conv + BN + ReLU (32, 64, 128 channels) with 2×2 max pooling,
    global average pooling and a linear classifier (about 0.29M parameters)."""
    c = in_shape[0]
    return nn.Sequential(
        *_conv_bn(c, 32), *_conv_bn(32, 32), nn.MaxPool2d(2),
        *_conv_bn(32, 64), *_conv_bn(64, 64), nn.MaxPool2d(2),
        *_conv_bn(64, 128), *_conv_bn(128, 128), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )


def mnist_fast(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """A fast MNIST CNN in the style of the speed-run records: two conv blocks (24, 48 channels) with BN,
    pooling and a linear head. Meant for the seconds-to-99% benchmark on a GPU."""
    c = in_shape[0]
    return nn.Sequential(
        *_conv_bn(c, 24), nn.MaxPool2d(2),
        *_conv_bn(24, 48), *_conv_bn(48, 48), nn.MaxPool2d(2),
        *_conv_bn(48, 96), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(96, num_classes),
    )


def mnist_cpu(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The CPU speed-run CNN: three 3×3 conv + BN + ReLU blocks (16, 32, 64 channels), each halving the image by
    max pooling right away, and a linear head on the 3×3×64 map (29,178 parameters on MNIST).

    Pooling after every conv keeps the costly layers on small maps (about 11 MFLOP per example for forward and
    backward, a quarter of ``mnist-fast``), so two epochs fit in well under a minute on two CPU cores.
    """
    c, h, w = in_shape
    body = nn.Sequential(
        *_conv_bn(c, 16), nn.MaxPool2d(2),
        *_conv_bn(16, 32), nn.MaxPool2d(2),
        *_conv_bn(32, 64), nn.MaxPool2d(2), nn.Flatten(),
    )
    return nn.Sequential(body, nn.Linear(64 * (h // 8) * (w // 8), num_classes))


def cifar_cpu(in_shape: tuple[int, int, int], num_classes: int, width: int = 32) -> nn.Module:
    """The CPU CIFAR CNN: three 3×3 conv + BN + ReLU blocks (width, 2·width, 4·width channels), each followed by 2×2
    max pooling, and a linear head on the 4×4 map (113,962 parameters on CIFAR-10 at width 32).

    Sized so that P puts CIFAR's subsets on both sides of Q = 1 (Q ≈ 4.4 on the full set, 0.55 at 1/8) and an epoch
    of 50,000 examples costs 60 MFLOP each for forward and backward (FlopCounterMode), about 35 s on two CPU cores.
    """
    c, h, w = in_shape
    body = nn.Sequential(
        *_conv_bn(c, width), nn.MaxPool2d(2),
        *_conv_bn(width, 2 * width), nn.MaxPool2d(2),
        *_conv_bn(2 * width, 4 * width), nn.MaxPool2d(2), nn.Flatten(),
    )
    return nn.Sequential(body, nn.Linear(4 * width * (h // 8) * (w // 8), num_classes))


def resnet18_cifar(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 adapted to 32×32 inputs (3×3 stem, stride 1, no max pool): about 11.2M parameters."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_shape[0], 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[tuple[int, int, int], int], nn.Module]
    about: str


def cnn_simple_narrow(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """``cnn-simple`` at width 6 (3,586 parameters on MNIST, 6.7× fewer): the same family at another P, so that one
    Q falls on different fractions and the study can ask whether Q or the fraction governs a subset's quality."""
    return cnn_simple(in_shape, num_classes, width=6)


def cnn_simple_w3(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """``cnn-simple`` at width 3 (988 parameters on MNIST, 24× fewer than width 16): the narrow end of study v2's
    width sweep, where P spans more than 16×."""
    return cnn_simple(in_shape, num_classes, width=3)


MODELS: dict[str, ModelSpec] = {
    "cnn-simple": ModelSpec(cnn_simple, "3 conv + 1 linear, ~24k params on MNIST (the paper's 'simple CNN' stand-in)"),
    "cnn-simple-narrow": ModelSpec(cnn_simple_narrow, "cnn-simple at width 6, ~3.6k params on MNIST"),
    "cnn-simple-w3": ModelSpec(cnn_simple_w3, "cnn-simple at width 3, ~1k params on MNIST"),
    "vgg-small": ModelSpec(vgg_small, "VGG-style 6 conv + BN + linear, ~0.29M params"),
    "mnist-fast": ModelSpec(mnist_fast, "speed-run style MNIST CNN with BN, ~74k params"),
    "mnist-cpu": ModelSpec(mnist_cpu, "CPU speed-run MNIST CNN, 3 conv + BN with early pooling, ~29k params"),
    "cifar-cpu": ModelSpec(cifar_cpu, "CPU CIFAR CNN, 3 conv + BN (32, 64, 128 ch.) with pooling, ~114k params"),
    "resnet18-cifar": ModelSpec(resnet18_cifar, "ResNet-18 with a 3x3 stem for 32x32 inputs, ~11.2M params"),
}


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build a registry model, or any torchvision classification model by name (e.g. ``resnet18``)."""
    if name in MODELS:
        return MODELS[name].build(tuple(in_shape), num_classes)
    import torchvision.models

    if name in torchvision.models.list_models(module=torchvision.models):
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        _check_input_shape(model, name, in_shape, num_classes)
        return model
    raise UserError(
        f"unknown model {name!r}: choose one of {', '.join(model_names())} or a torchvision classification model name"
    )


def _check_input_shape(model: nn.Module, name: str, in_shape: tuple[int, int, int], num_classes: int) -> None:
    """torchvision models assume 3-channel inputs of a minimum size; say so in one line instead of a deep traceback."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *in_shape))
    except RuntimeError as err:
        raise UserError(
            f"model {name!r} does not accept inputs of shape {tuple(in_shape)}: pick a registry model "
            f"({', '.join(model_names())}) or a dataset with 3-channel images ({str(err).splitlines()[0][:80]})"
        ) from None
    model.train()
