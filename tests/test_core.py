"""The core by hand: Q on models small enough to count on paper, nested and stratified subsets, the ledger's exact
counts, the real MNIST and Fashion-MNIST files, a model that learns, and the CLI's Q table."""

import hashlib
import math
import subprocess

import numpy as np
import pytest
import torch
from conftest import PYTHON, REAL_DATA, ROOT, child_env, main_in_process, tiny_config
from torch import nn

from subsetlib import data, planner, protocols, registry, subsets
from subsetlib.errors import UserError
from subsetlib.models import build_model
from subsetlib.planner import q_table
from subsetlib.q import count_parameters, min_subset_size, overdetermination_ratio
from subsetlib.train import FlopMeter

pytestmark = pytest.mark.usefixtures("one_thread")

# ---------------------------------------------------------------------------------------------------------------------
# Q = K·M/P


def test_count_parameters_by_hand():
    assert count_parameters(nn.Linear(3, 2)) == 3 * 2 + 2
    conv = nn.Conv2d(1, 2, 3)  # 2 filters of 1×3×3 plus 2 biases
    assert count_parameters(conv) == 20
    conv.bias.requires_grad_(False)  # frozen parameters do not count
    assert count_parameters(conv) == 18
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) == 2 + (2 * 26 * 26 * 10 + 10)


def test_cnn_simple_has_the_parameters_counted_on_paper():
    # conv 1→16: 16·9+16; conv 16→32: 32·16·9+32; conv 32→64: 64·32·9+64; 28→26→13→11→5→3→1, so linear 64→10
    expected = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (64 * 32 * 9 + 64) + (64 * 10 + 10)
    assert expected == 23946
    assert count_parameters(build_model("cnn-simple", (1, 28, 28), 10)) == expected


def test_overdetermination_ratio_by_hand():
    assert overdetermination_ratio(600, 10, 200) == 30.0
    assert overdetermination_ratio(0, 10, 5) == 0.0
    assert overdetermination_ratio(60000, 10, 23946) == pytest.approx(25.0564)
    for k, m, p in ((-1, 10, 5), (10, 0, 5), (10, 10, 0)):
        with pytest.raises(UserError):
            overdetermination_ratio(k, m, p)


@pytest.mark.parametrize(("p", "m", "q", "k"), [
    (100, 10, 1.5, 15),     # exactly on the boundary: 15·10/100 = 1.5
    (100, 10, 1.51, 16),    # just above it
    (100, 10, 1.49, 15),    # just below it
    (7, 3, 1, 3),           # 3·3/7 = 1.29 >= 1 while 2·3/7 = 0.86 < 1
    (10, 7, 0.7, 1),        # 0.7·10/7 is 1.0000000000000002 in floating point: still K = 1
    (3, 10, 0.3, 1),        # 0.3·3/10 = 0.09: one example already suffices
    (23946, 10, 1.5, 3592),  # the paper's lowest target on cnn-simple: 1.5·23946/10 = 3591.9
])
def test_min_subset_size_boundaries(p, m, q, k):
    assert min_subset_size(p, m, q) == k
    assert k * m / p >= q - 1e-12
    assert (k - 1) * m / p < q


@pytest.mark.parametrize("q", [0, -1.5, math.nan, math.inf])
def test_min_subset_size_rejects_a_target_that_is_not_positive(q):
    with pytest.raises(UserError, match="target Q"):
        min_subset_size(100, 10, q)


def test_q_table_on_mnist():
    table = q_table("cnn-simple", "mnist", fractions=(1, 0.5), target_qs=(1.5, 30))
    assert table["P"].unique().tolist() == [23946]
    assert table["K"].tolist() == [60000, 30000, 3593, 71838]  # 3592 by Q alone; the stratified draw holds 3593
    assert table["Q"].tolist()[:2] == pytest.approx([600000 / 23946, 300000 / 23946])
    assert table["feasible"].tolist() == [True, True, True, False]  # Q = 30 needs more than MNIST's 60,000


def test_planning_leaves_the_global_random_state_alone(synthetic):
    """P, the Q table and the fraction for a target Q build the model on the meta device: no weights are drawn, so
    planning cannot change a run that seeds once and plans before building its model; P is still the real count."""
    state = torch.get_rng_state()
    p = planner.count_parameters("cnn-simple", registry.dataset_spec("mnist"))
    table = planner.q_table("resnet18-cifar", "cifar10", [1 / 2], [2.0])
    fraction = planner.subset_fraction("cnn-simple", synthetic, target_q=0.5)
    [pair] = planner.pairs(["cnn-simple"], ["mnist"])
    assert torch.equal(torch.get_rng_state(), state)
    assert pair["P"] == p and pair["flops_per_example"] == FlopMeter(build_model("cnn-simple", (1, 28, 28), 10),
                                                                     (1, 28, 28), 10)(1)
    assert p == count_parameters(build_model("cnn-simple", (1, 28, 28), 10)) == 23946
    assert table["P"].iloc[0] == count_parameters(build_model("resnet18-cifar", (3, 32, 32), 10))
    assert fraction == min_subset_size(p, 10, 0.5) / len(synthetic.y_train)
    with pytest.raises(UserError, match="does not accept inputs"):  # the shape check works on the meta device too
        planner.count_parameters("resnet18", registry.dataset_spec("mnist"))


# ---------------------------------------------------------------------------------------------------------------------
# Subsets

UNEVEN = torch.tensor(sum(([c] * n for c, n in enumerate([50, 75, 100, 125, 150, 33, 7, 1, 60, 99])), []))


@pytest.mark.parametrize("stratified", [True, False])
@pytest.mark.parametrize("seed", [0, 7])
def test_subsets_are_nested(stratified, seed):
    sets = {f: set(subsets.subset_indices(UNEVEN, f, seed, stratified).tolist()) for f in (1 / 8, 1 / 4, 1 / 2, 1)}
    assert sets[1 / 8] <= sets[1 / 4] <= sets[1 / 2] <= sets[1] == set(range(len(UNEVEN)))
    assert len(sets[1 / 8]) < len(sets[1 / 4]) < len(sets[1 / 2]) < len(sets[1])


@pytest.mark.parametrize("stratified", [True, False])
def test_subsets_are_reproducible_and_depend_on_the_seed(stratified):
    a = subsets.subset_indices(UNEVEN, 0.3, 3, stratified)
    assert torch.equal(a, subsets.subset_indices(UNEVEN, 0.3, 3, stratified))
    assert not torch.equal(a, subsets.subset_indices(UNEVEN, 0.3, 4, stratified))
    assert torch.equal(a, a.sort().values) and len(set(a.tolist())) == len(a)  # sorted, no repeats


@pytest.mark.parametrize("fraction", [0.5, 0.25, 0.1, 0.01])
def test_stratified_subsets_keep_class_proportions(fraction):
    sizes = torch.bincount(UNEVEN)
    chosen = torch.bincount(UNEVEN[subsets.subset_indices(UNEVEN, fraction, 0, stratified=True)], minlength=len(sizes))
    for n_c, k_c in zip(sizes.tolist(), chosen.tolist(), strict=True):
        assert abs(k_c - round(fraction * n_c)) <= 1, (n_c, k_c)
        assert k_c >= 1  # every class keeps at least one example
    uniform = subsets.subset_indices(UNEVEN, fraction, 0, stratified=False)
    assert len(uniform) == max(1, round(fraction * len(UNEVEN)))


def test_membership_hash_is_stable_and_order_free():
    indices = torch.tensor([5, 1, 3, 2])
    expected = hashlib.sha256(np.array([1, 2, 3, 5], dtype="<i8").tobytes()).hexdigest()[:16]
    assert subsets.membership_hash(indices) == expected
    assert subsets.membership_hash(torch.arange(10)) == "23c379d6c0f22ef6"  # fixed: stored results refer to it
    assert subsets.membership_hash(indices[torch.randperm(4)]) == expected
    assert subsets.membership_hash(indices.to(torch.int32)) == expected
    assert subsets.membership_hash(torch.tensor([1, 2, 3, 4])) != expected


# ---------------------------------------------------------------------------------------------------------------------
# The ledger counts exactly


@pytest.fixture(scope="module")
def subset_run(synthetic):
    """2 epochs on a quarter of the synthetic set (K = 500), then 1 on all 2000, batches of 300 (ragged ends)."""
    return protocols.subset_pretraining(synthetic, tiny_config(batch_size=300), 0, subset_epochs=2, finetune_epochs=1,
                                        fraction=0.25)


def flops_per_batch(synthetic, batch_size: int) -> float:
    torch.manual_seed(0)
    return FlopMeter(build_model("cnn-simple", synthetic.spec.shape, 10), synthetic.spec.shape, 10)(batch_size)


def test_ledger_counts_examples_and_steps_exactly(subset_run):
    s = subset_run.summary
    assert s["subset_K"] == 500 and s["K_full"] == 2000
    assert s["total_examples"] == 2 * 500 + 1 * 2000
    assert s["total_steps"] == 2 * math.ceil(500 / 300) + 1 * math.ceil(2000 / 300)
    assert s["epoch_equivalents"] == 3000 / 2000
    assert subset_run.curve[-1]["examples"] == s["total_examples"]
    assert s["total_train_seconds"] > 0 and s["total_eval_seconds"] > 0


def test_ledger_flops_are_the_sum_over_batch_shapes(synthetic, subset_run):
    f300, f200 = flops_per_batch(synthetic, 300), flops_per_batch(synthetic, 200)
    assert 0 < f200 < f300
    # subset epochs: 500 = 300 + 200, twice; the full epoch: 2000 = 6·300 + 200
    assert subset_run.summary["total_flops"] == 2 * (f300 + f200) + 6 * f300 + f200


@pytest.fixture(scope="module")
def conventional_run(synthetic):
    """One epoch over all 2000 examples in batches of 100: 20 steps of one batch shape."""
    return protocols.conventional(synthetic, tiny_config(batch_size=100, lr=3e-3), 0, epochs=1)


def test_ledger_flops_equal_steps_times_flops_per_batch(synthetic, conventional_run):
    s = conventional_run.summary
    assert s["total_examples"] == 2000 and s["total_steps"] == 20
    assert s["total_flops"] == 20 * flops_per_batch(synthetic, 100) > 0


def test_a_tiny_model_learns(conventional_run):
    first, last = conventional_run.curve[0], conventional_run.curve[-1]
    assert first["examples"] == 0 and last["examples"] == 2000  # evaluated before and after training
    assert last["test_loss"] < 0.8 * first["test_loss"]
    assert last["test_acc"] > 0.5  # ten classes: chance is 0.1


# ---------------------------------------------------------------------------------------------------------------------
# Real data

MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize(("name", "folder", "train_counts", "test_counts"), [
    ("mnist", "MNIST", MNIST_TRAIN, MNIST_TEST),
    ("fashion-mnist", "FashionMNIST", [6000] * 10, [1000] * 10),
])
def test_real_files_load_from_shared_data(monkeypatch, name, folder, train_counts, test_counts):
    if not (REAL_DATA / folder / "raw").is_dir():
        pytest.skip(f"{REAL_DATA / folder} is absent on this machine")
    monkeypatch.delenv("SUBSETLIB_DATA", raising=False)
    monkeypatch.chdir(ROOT)  # the default roots: ./data, then ../shared/data
    ds = data.load(name, device="cpu")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert torch.bincount(ds.y_train).tolist() == train_counts and sum(train_counts) == 60000
    assert torch.bincount(ds.y_test).tolist() == test_counts and sum(test_counts) == 10000
    assert (REAL_DATA / folder).resolve() == (ROOT / ds.root).resolve()
    assert 0 < ds.x_train.float().mean() < 255


# ---------------------------------------------------------------------------------------------------------------------
# The CLI's Q table

Q_ARGS = ["q", "--model", "cnn-simple", "--dataset", "mnist", "--fractions", "0.5", "--target-q", "1.5"]


def check_q_output(out: str) -> None:
    assert "P = 23,946" in out and "M = 10" in out and "K = 60,000" in out
    assert "K =    30,000" in out and f"Q = {300000 / 23946:10.3f}" in out
    assert "target Q 1.5" in out and "K =     3,593" in out


def test_cli_q_in_a_subprocess(tmp_path):
    done = subprocess.run([PYTHON, "-m", "subsetlib", *Q_ARGS], cwd=tmp_path, env=child_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    check_q_output(done.stdout)
    assert list(tmp_path.iterdir()) == []  # q only reads


def test_cli_q_in_process(capsys):
    rc, out, err = main_in_process(Q_ARGS, capsys)
    assert rc == 0, err
    check_q_output(out)


# ---------------------------------------------------------------------------------------------------------------------
# Precision, memory format and the evaluation schedule


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp64"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_every_precision_and_layout_trains_with_the_same_ledger(mini, precision, channels_last):
    cfg = tiny_config(dataset=mini.name, batch_size=100, precision=precision, channels_last=channels_last)
    run = protocols.subset_pretraining(mini, cfg, 0, subset_epochs=1, finetune_epochs=1, fraction=0.5)
    s = run.summary
    assert s["total_examples"] == 200 + 400 and s["total_steps"] == 2 + 4
    assert math.isfinite(s["final_test_loss"]) and s["precision"] == precision and s["channels_last"] == channels_last
    others = {protocols.run_id("subset", protocols.RunConfig(**{**cfg.__dict__, "precision": p}), 0)
              for p in ("fp32", "bf16", "fp64")}
    assert len(others) == 3  # precision is part of what defines a run


def test_config_from_notebook_parameters_keeps_the_run_id():
    """A notebook's parameters hold more than a RunConfig; config_from picks its fields, and a config built so has
    the run id of the same config written out by hand (the ids of stored runs depend on it)."""
    params = {"dataset": "synthetic", "model": "cnn-simple", "seeds": [0, 1], "batch_size": 64, "eval_dense": 3,
              "results_dir": "../results/adhoc", "scale": "ad hoc"}
    cfg = protocols.config_from(params, model="cnn-simple-narrow")
    by_hand = protocols.RunConfig(dataset="synthetic", model="cnn-simple-narrow", batch_size=64, eval_dense=3)
    assert cfg == by_hand
    assert protocols.run_id("conventional", cfg, 0, epochs=2) == protocols.run_id("conventional", by_hand, 0, epochs=2)


def test_fp64_trains_in_double_and_bf16_differs_from_fp32_only_by_rounding(mini):
    losses = {}
    for precision in ("fp32", "bf16", "fp64"):
        cfg = tiny_config(dataset=mini.name, batch_size=100, precision=precision)
        losses[precision] = protocols.conventional(mini, cfg, 0, epochs=1).summary["final_test_loss"]
    assert losses["fp32"] == pytest.approx(losses["fp64"], rel=1e-3)
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05) and losses["bf16"] != losses["fp32"]


def test_unknown_precision_is_a_user_error():
    with pytest.raises(UserError, match="precision"):
        tiny_config(precision="fp16")


def test_evaluation_points_are_dense_after_each_switch():
    assert protocols.eval_points(0, 1000, every=400, dense=0) == [400, 800]
    assert protocols.eval_points(0, 1000, every=400, dense=3) == [125, 250, 400, 500, 800]
    assert protocols.eval_points(1000, 800, every=400, dense=2) == [1200, 1400, 1600]
    cfg = tiny_config(dataset="synthetic", batch_size=100, eval_every=0.25, eval_dense=2, eval_train=True)
    run = protocols.conventional(data.load("synthetic", device="cpu"), cfg, 0, epochs=2)
    # 2 epochs of 2000: regular points every 500, dense ones at 1000 and 2000 (1/4 and 1/2 of the phase), the end
    assert [row["examples"] for row in run.curve] == [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000]
    first = [row for row in run.curve if row["examples"] > 0]
    assert run.summary["min_train_loss"] == min(row["train_loss"] for row in first)  # the initial loss is excluded
