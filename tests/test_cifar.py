"""CIFAR loaders: the official pickle formats on small files written here, cifar10-jpeg on small archives written
here (decoding, order, cache, bad input), and cifar10-jpeg on the real archive in ../shared/data when present."""

import io
import os
import pickle
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from subsetlib import data, formats, registry
from subsetlib.errors import UserError
from subsetlib.repo import REPO_ROOT

REAL_ROOT = REPO_ROOT.parent / "shared" / "data"
REAL_ARCHIVE = REAL_ROOT / "CIFAR10-JPEG" / "cifar10-jpeg.tar.gz"
CLASSES = formats.CIFAR10_CLASSES


@pytest.fixture(autouse=True)
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads or writes a cache outside its tmp folder, whatever the caller's environment holds."""
    monkeypatch.delenv("SUBSETLIB_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def one_line_naming(err: pytest.ExceptionInfo, *names: object) -> str:
    message = str(err.value)
    assert "\n" not in message
    for name in names:
        assert str(name) in message, f"{name} not named in: {message}"
    return message


# ---------------------------------------------------------------------------------------------------------------------
# Official CIFAR python batches (the format of cifar-10-batches-py and cifar-100-python)

def py2_str(raw: bytes) -> bytes:
    return b"U" + bytes([len(raw)]) + raw  # SHORT_BINSTRING: a Python 2 str


def write_batch(path: Path, flat: np.ndarray, labels: dict[str, np.ndarray]) -> None:
    """A batch byte for byte as the originals hold it: a Python 2 cPickle (protocol 2) of a dict with str keys,
    'data' an N×3072 uint8 numpy array (channel-major), the labels lists of ints. Python 2 str comes back as bytes
    only with encoding='bytes', so this catches a loader that decodes keys otherwise."""
    dtype = (b"cnumpy\ndtype\n" + py2_str(b"u1") + b"K\x00K\x01\x87R(K\x03" + py2_str(b"|")
             + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + py2_str(b"b") + b"\x87R(K\x01"
             + b"M" + struct.pack("<H", len(flat)) + b"M" + struct.pack("<H", 3072) + b"\x86" + dtype + b"\x89"
             + b"T" + struct.pack("<I", flat.nbytes) + np.ascontiguousarray(flat, np.uint8).tobytes() + b"tb")
    items = py2_str(b"batch_label") + py2_str(b"testing batch 1 of 1") + py2_str(b"data") + array
    for key, values in labels.items():
        items += py2_str(key.encode()) + b"](" + b"".join(b"K" + bytes([int(v)]) for v in values) + b"e"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x80\x02}(" + items + b"u.")


def test_batch_writer_matches_the_original_format(tmp_path: Path) -> None:
    flat = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    write_batch(tmp_path / "b", flat, {"labels": np.array([7, 3])})
    with pytest.raises(UnicodeDecodeError):  # as with the real files: Python 2 str, not loadable with the defaults
        pickle.loads((tmp_path / "b").read_bytes())
    batch = pickle.loads((tmp_path / "b").read_bytes(), encoding="bytes")
    assert batch[b"labels"] == [7, 3] and batch[b"data"].dtype == np.uint8 and np.array_equal(batch[b"data"], flat)


def write_cifar10(root: Path, n: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10)
    folder = root / "cifar-10-batches-py"
    flats, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        flat = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, size=n)
        if name == "data_batch_2":  # image 3: black but for one pixel, green channel, row 5, column 7
            flat[3] = 0
            flat[3, 1 * 1024 + 5 * 32 + 7] = 201
        write_batch(folder / name, flat, {"labels": y})
        flats.append(flat)
        labels.append(y)
    x_train = np.concatenate(flats[:5]).reshape(-1, 3, 32, 32)
    return x_train, np.concatenate(labels[:5]), flats[5].reshape(-1, 3, 32, 32), labels[5]


def test_cifar10_batches_load_in_order_with_channel_major_pixels(tmp_path: Path) -> None:
    x_train, y_train, x_test, y_test = write_cifar10(tmp_path)
    ds = data.load("cifar10", root=tmp_path, device="cpu", verify=False)  # files made here
    assert ds.x_train.shape == (100, 3, 32, 32) and ds.x_test.shape == (20, 3, 32, 32)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64 and ds.device.type == "cpu"
    assert torch.equal(ds.y_train, torch.from_numpy(y_train)) and torch.equal(ds.y_test, torch.from_numpy(y_test))
    assert torch.equal(ds.x_train, torch.from_numpy(x_train)) and torch.equal(ds.x_test, torch.from_numpy(x_test))
    marked = ds.x_train[20 + 3]  # batch 1 holds images 0-19, so image 3 of batch 2 is image 23
    assert torch.nonzero(marked).tolist() == [[1, 5, 7]] and int(marked[1, 5, 7]) == 201
    assert ds.root == str(tmp_path / "cifar-10-batches-py")


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(100)
    folder = tmp_path / "cifar-100-python"
    expected = {}
    for name, n in (("train", 30), ("test", 10)):
        flat = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, size=n)
        write_batch(folder / name, flat, {"fine_labels": fine, "coarse_labels": fine // 5})
        expected[name] = flat.reshape(-1, 3, 32, 32), fine
    ds = data.load("cifar100", root=tmp_path, device="cpu", verify=False)
    assert ds.num_classes == 100 and ds.x_train.shape == (30, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert torch.equal(ds.x_train, torch.from_numpy(expected["train"][0]))
    assert ds.y_train.tolist() == expected["train"][1].tolist() and ds.y_test.tolist() == expected["test"][1].tolist()


def corrupt(path: Path, kind: str) -> None:
    raw = path.read_bytes()
    path.write_bytes({
        "truncated": raw[: len(raw) // 2],
        "truncated-early": raw[:5],
        "empty": b"",
        "text": b"this is not a pickle\n" * 40,
        "random": np.random.default_rng(3).integers(0, 256, size=4096, dtype=np.uint8).tobytes(),
        "no-labels": pickle.dumps({b"data": np.zeros((20, 3072), np.uint8)}, protocol=2),
        "not-a-dict": pickle.dumps([1, 2, 3], protocol=2),
        "wrong-size": pickle.dumps({b"data": np.zeros((20, 3000), np.uint8), b"labels": [0] * 20}, protocol=2),
        "count-mismatch": pickle.dumps({b"data": np.zeros((20, 3072), np.uint8), b"labels": [0] * 19}, protocol=2),
    }[kind])


@pytest.mark.parametrize("kind", ["truncated", "truncated-early", "empty", "text", "random", "no-labels",
                                  "not-a-dict", "wrong-size", "count-mismatch"])
def test_bad_cifar_batch_names_the_file(tmp_path: Path, kind: str) -> None:
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    corrupt(bad, kind)
    with pytest.raises(UserError) as err:
        data.load("cifar10", root=tmp_path, device="cpu", verify=False)
    one_line_naming(err, bad)


def test_missing_cifar_files(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        data.load("cifar10", root=tmp_path, device="cpu")
    assert "not found (looked in" in one_line_naming(err, tmp_path / "cifar-10-batches-py")
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_5").unlink()
    with pytest.raises(UserError) as err:
        data.load("cifar10", root=tmp_path, device="cpu", verify=False)
    one_line_naming(err, tmp_path / "cifar-10-batches-py" / "data_batch_5")


def test_cifar_files_are_checked_against_torchvisions_md5(tmp_path: Path) -> None:
    import torchvision.datasets as tvd

    assert {**registry.CIFAR10_MD5, **registry.CIFAR10_TEST_MD5} == dict(tvd.CIFAR10.train_list + tvd.CIFAR10.test_list)
    assert ({**registry.CIFAR100_MD5, **registry.CIFAR100_TEST_MD5}
            == dict(tvd.CIFAR100.train_list + tvd.CIFAR100.test_list))
    write_cifar10(tmp_path)  # well-formed batches, but not the official files
    with pytest.raises(UserError) as err:
        data.load("cifar10", root=tmp_path, device="cpu")
    assert "checksum mismatch" in one_line_naming(err, tmp_path / "cifar-10-batches-py" / "data_batch_1", "md5")


# ---------------------------------------------------------------------------------------------------------------------
# cifar10-jpeg on small archives written here

def halves(split: str, label: int, k: int, salt: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Colours of an image's left and right halves: distinct per split, class, image and archive version."""
    left = (20 + 20 * label, 40 + 50 * k + salt, 230 if split == "train" else 30)
    return left, tuple(255 - c for c in left)


def jpeg(left: tuple[int, ...], right: tuple[int, ...], size: int = 32) -> bytes:
    img = np.empty((size, size, 3), np.uint8)
    img[:, : size // 2], img[:, size // 2:] = left, right
    out = io.BytesIO()
    Image.fromarray(img).save(out, format="JPEG", quality=95)
    return out.getvalue()


def decoded(blob: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(blob)).convert("RGB")).transpose(2, 0, 1)


def write_archive(path: Path, counts: dict[str, int] | None = None, salt: int = 0,
                  prefix: str = "") -> dict[str, list[tuple[int, bytes, tuple]]]:
    """A cifar10-jpeg-shaped tar.gz, members in shuffled order; returns per split (label, bytes, left colour) in the
    order the loader must give (class, then file name)."""
    counts = counts or {"train": 3, "test": 2}
    rng = np.random.default_rng(salt)
    members, expected = {}, {}
    for split, n in counts.items():
        rows = []
        for label, cls in enumerate(CLASSES):
            names = sorted(f"{v:04d}.jpg" for v in rng.choice(5000, size=n, replace=False))
            for k, name in enumerate(names):
                left, right = halves(split, label, k, salt)
                member = f"{split}/{cls}/{name}"
                members[member] = jpeg(left, right)
                rows.append((label, members[member], left))
        expected[split] = rows
    members["README.txt"] = b"not an image; the loader must skip it\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in rng.permutation(sorted(members)):
            info = tarfile.TarInfo(prefix + str(name))
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    return expected


def archive_at(root: Path) -> Path:
    return root / "CIFAR10-JPEG" / "cifar10-jpeg.tar.gz"


def load_jpeg(root: Path) -> data.Dataset:
    return data.load("cifar10-jpeg", root=root, device="cpu", verify=False)


def caches(folder: Path) -> list[str]:
    """Everything the loader may have left in a cache folder: caches and temp files."""
    return sorted(p.name for p in folder.glob("*") if p.name.startswith(("cifar10-jpeg-", ".cifar10-jpeg-")))


def check_against(ds: data.Dataset, expected: dict[str, list[tuple[int, bytes, tuple]]]) -> None:
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        rows = expected[split]
        assert x.shape == (len(rows), 3, 32, 32) and x.dtype == torch.uint8
        assert y.tolist() == [label for label, _, _ in rows]
        assert torch.equal(x, torch.from_numpy(np.stack([decoded(blob) for _, blob, _ in rows])))
        for img, (_, _, left) in zip(x, rows, strict=True):  # channel order and row/column layout, up to JPEG error
            assert np.abs(img[:, 28, 4].numpy().astype(int) - left).max() <= 10  # bottom row, left half
            assert np.abs(img[:, 4, 28].numpy().astype(int) - (255 - np.array(left))).max() <= 10  # top right


def test_jpeg_spec() -> None:
    spec = registry.dataset_spec("cifar10-jpeg")
    assert (spec.num_classes, spec.shape, spec.train_size, spec.test_size) == (10, (3, 32, 32), 50000, 10000)
    assert spec.augment == "crop-flip" and "JPEG" in spec.about and "not the official" in spec.about
    assert "CIFAR10-JPEG" in spec.how_to_get and spec.mean != registry.dataset_spec("cifar10").mean


def test_jpeg_archive_decodes_sorted_and_caches_next_to_it(tmp_path: Path) -> None:
    expected = write_archive(archive_at(tmp_path))
    ds = load_jpeg(tmp_path)
    check_against(ds, expected)
    assert ds.y_train.bincount().tolist() == [3] * 10 and ds.y_test.bincount().tolist() == [2] * 10
    digest = formats.file_digest(archive_at(tmp_path))
    assert caches(archive_at(tmp_path).parent) == [f"cifar10-jpeg-{digest[:16]}.npz"]


def test_jpeg_archive_below_a_leading_folder(tmp_path: Path) -> None:
    expected = write_archive(archive_at(tmp_path), prefix="cifar10/")
    check_against(load_jpeg(tmp_path), expected)


def test_jpeg_second_load_comes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBSETLIB_CACHE", str(tmp_path / "cache"))
    expected = write_archive(archive_at(tmp_path))
    first = load_jpeg(tmp_path)
    [cache] = (tmp_path / "cache").glob("cifar10-jpeg-*.npz")
    assert caches(archive_at(tmp_path).parent) == []  # $SUBSETLIB_CACHE wins over the archive's folder
    stamp = cache.stat().st_mtime_ns

    def no_decoding(*args: object, **kw: object) -> None:
        raise AssertionError("decoded again although a cache exists")

    monkeypatch.setattr(formats, "read_image_tar", no_decoding)
    second = load_jpeg(tmp_path)
    check_against(second, expected)
    assert torch.equal(first.x_train, second.x_train) and cache.stat().st_mtime_ns == stamp


def test_jpeg_changed_archive_is_decoded_afresh(tmp_path: Path) -> None:
    write_archive(archive_at(tmp_path), salt=0)
    old = load_jpeg(tmp_path)
    expected = write_archive(archive_at(tmp_path), salt=5)
    new = load_jpeg(tmp_path)
    check_against(new, expected)
    assert not torch.equal(old.x_train, new.x_train)
    assert len(caches(archive_at(tmp_path).parent)) == 2  # one per archive version, each named by its hash


def test_jpeg_cache_of_another_archive_is_not_served(tmp_path: Path) -> None:
    """The full hash stored inside the cache is checked, not only the 16 characters in its name."""
    write_archive(archive_at(tmp_path), salt=0)
    load_jpeg(tmp_path)
    [old_cache] = archive_at(tmp_path).parent.glob("cifar10-jpeg-*.npz")
    expected = write_archive(archive_at(tmp_path), salt=7)
    digest = formats.file_digest(archive_at(tmp_path))
    old_cache.rename(old_cache.with_name(f"cifar10-jpeg-{digest[:16]}.npz"))
    check_against(load_jpeg(tmp_path), expected)


def test_jpeg_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    expected = write_archive(archive_at(tmp_path))
    load_jpeg(tmp_path)
    [cache] = archive_at(tmp_path).parent.glob("cifar10-jpeg-*.npz")
    cache.write_bytes(cache.read_bytes()[:5000])
    check_against(load_jpeg(tmp_path), expected)
    assert cache.stat().st_size > 5000


def test_jpeg_cache_falls_back_to_home_for_a_read_only_folder(tmp_path: Path) -> None:
    write_archive(archive_at(tmp_path))
    folder = archive_at(tmp_path).parent
    folder.chmod(0o555)  # root could still write here; the loader must respect the mode bits
    try:
        load_jpeg(tmp_path)
        assert caches(folder) == []
        assert len(caches(tmp_path / "home" / ".cache" / "subsetlib")) == 1
    finally:
        folder.chmod(0o755)


def test_jpeg_unwritable_cache_warns_and_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SUBSETLIB_CACHE", str(tmp_path / "a-file" / "cache"))
    expected = write_archive(archive_at(tmp_path))
    with pytest.warns(UserWarning, match="cannot write the cache"):
        check_against(load_jpeg(tmp_path), expected)


def test_jpeg_interrupted_cache_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_archive(archive_at(tmp_path))

    def half_written(file: object, **arrays: object) -> None:
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(KeyboardInterrupt):
        load_jpeg(tmp_path)
    assert caches(archive_at(tmp_path).parent) == []


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_jpeg_corrupt_member_names_member_and_archive(tmp_path: Path, kind: str) -> None:
    member = "train/dog/4242.jpg"
    good = jpeg((1, 2, 3), (4, 5, 6))
    blob = {"garbage": b"\xff\xd8 not really a jpeg" * 10, "truncated": good[: len(good) // 2], "empty": b""}[kind]
    write_archive_with(archive_at(tmp_path), member, blob)
    with pytest.raises(UserError) as err:
        load_jpeg(tmp_path)
    one_line_naming(err, member, archive_at(tmp_path))
    assert caches(archive_at(tmp_path).parent) == []


def write_archive_with(path: Path, member: str, blob: bytes) -> None:
    """A good archive plus one extra member."""
    write_archive(path)
    with tarfile.open(path, "r:gz") as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar if info.isfile()]
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload))
        info = tarfile.TarInfo(member)
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))


def test_jpeg_wrong_image_size_names_member(tmp_path: Path) -> None:
    member = "test/ship/0007.jpg"
    write_archive_with(archive_at(tmp_path), member, jpeg((9, 9, 9), (200, 200, 200), size=28))
    with pytest.raises(UserError) as err:
        load_jpeg(tmp_path)
    assert "28×28" in one_line_naming(err, member, archive_at(tmp_path))
    assert caches(archive_at(tmp_path).parent) == []


@pytest.mark.parametrize("kind", ["truncated", "cut-short", "not-gzip", "empty", "bad-bytes"])
def test_jpeg_damaged_archive_names_the_archive(tmp_path: Path, kind: str) -> None:
    path = archive_at(tmp_path)
    write_archive(path)
    raw = path.read_bytes()
    damaged = {"truncated": raw[: len(raw) // 2], "cut-short": raw[:-20], "not-gzip": b"hello, not a tar\n" * 100,
               "empty": b"", "bad-bytes": raw[:200] + bytes(400) + raw[600:]}[kind]
    path.write_bytes(damaged)
    with pytest.raises(UserError) as err:
        load_jpeg(tmp_path)
    one_line_naming(err, path)
    assert caches(path.parent) == []


def test_jpeg_checksum_is_checked_when_verifying(tmp_path: Path) -> None:
    write_archive(archive_at(tmp_path))
    with pytest.raises(UserError) as err:
        data.load("cifar10-jpeg", root=tmp_path, device="cpu")
    assert "checksum mismatch" in one_line_naming(err, archive_at(tmp_path))
    assert caches(archive_at(tmp_path).parent) == []


def test_jpeg_archive_missing(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        load_jpeg(tmp_path)
    assert "not found (looked in" in one_line_naming(err, tmp_path / "CIFAR10-JPEG")
    (tmp_path / "CIFAR10-JPEG").mkdir()
    with pytest.raises(UserError) as err:
        load_jpeg(tmp_path)
    assert "missing data file" in one_line_naming(err, archive_at(tmp_path))


def test_jpeg_wrong_layout(tmp_path: Path) -> None:
    write_archive_with(archive_at(tmp_path), "train/unicorn/0001.jpg", jpeg((1, 1, 1), (2, 2, 2)))
    with pytest.raises(UserError) as err:
        load_jpeg(tmp_path)
    one_line_naming(err, "train/unicorn/", archive_at(tmp_path))
    write_archive(archive_at(tmp_path), counts={"train": 2})  # no test/ split at all
    with pytest.raises(UserError) as err:
        load_jpeg(tmp_path)
    one_line_naming(err, "test/airplane/", archive_at(tmp_path))


# ---------------------------------------------------------------------------------------------------------------------
# The real archive

@pytest.mark.skipif(not REAL_ARCHIVE.is_file(), reason=f"{REAL_ARCHIVE} is absent")
def test_real_cifar10_jpeg_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBSETLIB_CACHE", str(tmp_path / "cache"))  # the shared folder is read-only
    shared_before = sorted(os.listdir(REAL_ARCHIVE.parent))
    start = time.perf_counter()
    ds = data.load("cifar10-jpeg", root=REAL_ROOT, device="cpu", verify=True)
    decode_s = time.perf_counter() - start
    assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert ds.y_train.bincount().tolist() == [5000] * 10 and ds.y_test.bincount().tolist() == [1000] * 10
    assert ds.y_train.diff().min() >= 0  # sorted by class
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"cifar10-jpeg-{registry.CIFAR10_JPEG_SHA256[:16]}.npz"]

    for c in range(3):  # the spec's constants are this archive's statistics (exact, from a histogram per channel)
        counts = torch.bincount(ds.x_train[:, c].flatten(), minlength=256).double()
        values = torch.arange(256, dtype=torch.float64) / 255
        mean = float((counts * values).sum() / counts.sum())
        std = float(((counts * (values - mean) ** 2).sum() / counts.sum()).sqrt())
        assert abs(mean - ds.spec.mean[c]) < 1e-4 and abs(std - ds.spec.std[c]) < 1e-4, (c, mean, std)

    wanted = {"train/cat/0000.jpg": ds.x_train[3 * 5000], "test/truck/0999.jpg": ds.x_test[-1]}
    with tarfile.open(REAL_ARCHIVE, "r|gz") as tar:  # first and last file of a class land where sorting puts them
        for info in tar:
            if info.name in wanted:
                assert torch.equal(wanted.pop(info.name), torch.from_numpy(decoded(tar.extractfile(info).read())))
    assert not wanted

    monkeypatch.setattr(formats, "read_image_tar", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    start = time.perf_counter()
    cached = data.load("cifar10-jpeg", root=REAL_ROOT, device="cpu", verify=True)
    cached_s = time.perf_counter() - start
    assert torch.equal(cached.x_train, ds.x_train) and torch.equal(cached.y_test, ds.y_test)
    print(f"\ncifar10-jpeg: first load (hash + decode + cache write) {decode_s:.1f} s, cached load {cached_s:.2f} s")
    assert sorted(os.listdir(REAL_ARCHIVE.parent)) == shared_before  # nothing written next to the shared archive
