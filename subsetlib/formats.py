"""Reading the datasets' files: MNIST's IDX files, CIFAR's python batches, and archives of image files (decoded once
into a cache), each checked against its checksum where one is known. No torch here: arrays come out as numpy.
"""

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from subsetlib.errors import UserError
from subsetlib.io import atomic_write

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_test, y_test; x is N×C×H×W uint8


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in blocks (an archive may not fit in memory twice)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def check_file(path: Path, digest: str | None, verify: bool, how_to_get: str, algorithm: str = "sha256") -> Path:
    """A data file must exist and, where its checksum is known, match it."""
    if not path.is_file():
        raise UserError(f"missing data file {path}: {how_to_get}")
    if verify and digest is not None and file_digest(path, algorithm) != digest:
        raise checksum_mismatch(path, algorithm)
    return path


def checksum_mismatch(path: Path, algorithm: str) -> UserError:
    return UserError(f"checksum mismatch for {path}: the file is corrupt or not the expected release ({algorithm} "
                     "differs); get it again")


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


def cifar_loader(train_files: dict[str, str], test_files: dict[str, str], label_key: str,
                 how_to_get: str) -> Callable[[Path, bool], Arrays]:
    """Loader for the official python batches; ``*_files`` map each file to its MD5, the digest torchvision checks."""
    def load(folder: Path, verify: bool) -> Arrays:
        parts = {}
        for split, files in (("train", train_files), ("test", test_files)):
            batches = [read_cifar_batch(check_file(folder / name, digest, verify, how_to_get, "md5"), label_key)
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
        digest = file_digest(path)  # hashed once: it is both the integrity check and the cache key
        if verify and sha256 is not None and digest != sha256:
            raise checksum_mismatch(path, "sha256")
        cache = cache_dir(folder) / f"{stem}-{digest[:16]}.npz"
        arrays = _read_cache(cache, digest)
        if arrays is None:
            arrays = read_image_tar(path, classes)
            _write_cache(cache, arrays, digest)
        return arrays

    return load


