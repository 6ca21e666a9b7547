"""Which examples a subset holds: nested, reproducible subsets by fraction or size, their membership hash, and the
smaller stratified parts of a dataset that CPU-scale runs train on."""

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import torch

from subsetlib.data import Dataset, load
from subsetlib.errors import UserError, check_fraction, check_seed, check_whole_number


def check_labels(labels: object) -> torch.Tensor:
    """Class labels as a non-empty 1-D integer tensor on the CPU; anything else is a UserError naming the fix."""
    if not isinstance(labels, torch.Tensor):
        raise UserError(f"labels must be a torch tensor (got {type(labels).__name__}): pass torch.as_tensor(labels)")
    if labels.dim() != 1 or len(labels) == 0 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise UserError(f"labels must be a non-empty 1-D integer tensor (got shape {tuple(labels.shape)}, "
                        f"{labels.dtype})")
    return labels.detach().cpu()


def _taken(class_size: int, fraction: float) -> int:
    """How many of a class (or of the whole set, unstratified) a subset of ``fraction`` holds."""
    return max(1, round(fraction * class_size))


def drawn_size(class_sizes: Sequence[int], fraction: float) -> int:
    """K of the stratified subset of ``fraction`` of a set with these class sizes, without drawing it."""
    return sum(_taken(size, fraction) for size in class_sizes)


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
        return order[: _taken(len(labels), fraction)].sort().values
    chosen = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        order = members[torch.randperm(len(members), generator=gen)]
        chosen.append(order[: _taken(len(members), fraction)])
    return torch.cat(chosen).sort().values


def largest_remainders(class_sizes: Sequence[int], k: int) -> list[int]:
    """How many of each class a stratified subset of exactly K holds: floor(K·n_c/N) each, and one more for the
    classes with the largest remainders (ties to the earlier class), so every count is its quota rounded down or up."""
    n = sum(class_sizes)
    counts = [k * size // n for size in class_sizes]
    by_remainder = sorted(range(len(class_sizes)), key=lambda c: (-(k * class_sizes[c] % n), c))
    for c in by_remainder[: k - sum(counts)]:
        counts[c] += 1
    return counts


def subset_of_size(labels: torch.Tensor, k: int, seed: int, stratified: bool = True) -> torch.Tensor:
    """Indices of a reproducible subset of exactly K examples, sorted, for choosing subsets by size or target Q.

    The same random order per class (or, unstratified, of the whole set) as ``subset_indices`` for the seed, and a
    prefix of it: stratified, each class gets its share of K by largest remainders. So a larger K holds a smaller
    one wherever no class's share shrinks as K grows; largest remainders can take one example from a class as K grows
    by one (the Alabama paradox: 34 of MNIST's 60,000 sizes), and there the two subsets differ by that example.
    A K above the set's size is refused."""
    labels = check_labels(labels)
    k, seed = check_whole_number(k, "subset size K"), check_seed(seed)
    if k > len(labels):
        raise UserError(f"subset size K={k} exceeds the {len(labels)} examples of the set: choose K <= {len(labels)}")
    gen = torch.Generator().manual_seed(seed)
    if not stratified:
        return torch.randperm(len(labels), generator=gen)[:k].sort().values
    classes = torch.unique(labels).tolist()
    members = [torch.nonzero(labels == c).flatten() for c in classes]
    orders = [m[torch.randperm(len(m), generator=gen)] for m in members]  # drawn as subset_indices draws them
    counts = largest_remainders([len(m) for m in members], k)
    return torch.cat([order[:count] for order, count in zip(orders, counts, strict=True)]).sort().values


def membership_hash(indices: torch.Tensor) -> str:
    """A stable short hash of which examples a subset holds (order-free)."""
    data = indices.detach().cpu().to(torch.int64).sort().values.numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def reduced(data: Dataset, train_size: int, test_size: int, seed: int = 0) -> Dataset:
    """A stratified random part of a dataset under its own name (e.g. ``mnist-10000-2000``), so that results made on
    it can never be read as full-dataset results. For CPU-scale runs; the GPU grids use the full sets."""
    n_train, n_test = len(data.y_train), len(data.y_test)
    if not 0 < train_size <= n_train or not 0 < test_size <= n_test:
        raise UserError(f"{data.name} has {n_train} training and {n_test} test examples: choose train_size and "
                        f"test_size within those (got {train_size}, {test_size})")
    if train_size == n_train and test_size == n_test:
        return data
    # by fraction (round(fraction·n_c) per class), not by exact size: the parts stored runs were made on keep their
    # examples and names (10,000 of MNIST's training set is mnist-10001-2000)
    train = subset_indices(data.y_train, train_size / n_train, seed)
    test = subset_indices(data.y_test, test_size / n_test, seed)
    name = f"{data.name}-{len(train)}-{len(test)}"
    # a part is no longer what torchvision's class reads from the same files
    spec = replace(data.spec, name=name, train_size=len(train), test_size=len(test), torchvision=None,
                   train_class_sizes=tuple(torch.bincount(data.y_train[train].cpu()).tolist()))
    root = f"{data.root} (stratified part: {len(train)} train, {len(test)} test examples, seed {seed})"
    t, s = train.to(data.device), test.to(data.device)
    return Dataset(spec, data.x_train[t], data.y_train[t], data.x_test[s], data.y_test[s], root)


def load_reduced(name: str, train_size: int | None = None, test_size: int | None = None,
                 device: str = "auto") -> Dataset:
    """``data.load`` then ``reduced`` (None keeps a split whole)."""
    full = load(name, device=device)
    return reduced(full, train_size or len(full.y_train), test_size or len(full.y_test))
