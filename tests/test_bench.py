"""bench: both loops run and are measured; the speed-run returns sane rows. No speed thresholds: a shared CI box's
timings are not a test."""

import math

import pytest
import torch

from subsetlib.bench import compare_loops, format_report, mnist_speedrun, one_cycle, peak_flops
from subsetlib.data import DATASETS, data_roots
from subsetlib.errors import UserError


def mnist_present() -> bool:
    return any((r / DATASETS["mnist"].folder / "raw" / "train-images-idx3-ubyte.gz").is_file() for r in data_roots())


def check_result(result: dict, steps: int) -> None:
    assert result["steps"] == steps
    assert result["resident_samples_per_s"] > 0 and result["dataloader_samples_per_s"] > 0
    assert math.isfinite(result["ratio"]) and result["ratio"] > 0
    if result["rounds"] == 1:
        expected = result["resident_samples_per_s"] / result["dataloader_samples_per_s"]
        assert result["ratio"] == pytest.approx(expected)
    report = format_report(result)
    assert report.splitlines()[-1] == f"ratio: {result['ratio']:.2f}×"


def test_compare_loops_synthetic():
    result = compare_loops("synthetic", batch_size=32, steps=4, warmup=1, device="cpu")
    check_result(result, 4)
    assert "ArrayImages" in result["dataloader_dataset"]


def test_compare_loops_synthetic_augmented_with_a_worker():
    result = compare_loops("synthetic", batch_size=32, steps=3, warmup=1, device="cpu", augment=True, workers=1,
                           rounds=2)
    check_result(result, 3)
    assert result["workers"] == 1 and result["augment"] is True
    assert len(result["resident_seconds_each"]) == len(result["dataloader_seconds_each"]) == 2
    assert "median of 2 rounds" in format_report(result)


def test_compare_loops_more_steps_than_one_pass():
    """2000 synthetic examples hold 3 batches of 600: 4 steps need a second pass, still exactly 4 steps."""
    check_result(compare_loops("synthetic", batch_size=600, steps=4, warmup=0, device="cpu"), 4)


@pytest.mark.skipif(not mnist_present(), reason="MNIST files not in the default data roots")
def test_compare_loops_mnist_reads_through_torchvision():
    result = compare_loops("mnist", batch_size=64, steps=3, warmup=1, device="cpu")
    check_result(result, 3)
    assert "torchvision MNIST" in result["dataloader_dataset"]


def test_compare_loops_rejects_bad_input():
    with pytest.raises(UserError, match="batch size"):
        compare_loops("synthetic", batch_size=0, device="cpu")
    with pytest.raises(UserError, match="exceeds"):
        compare_loops("synthetic", batch_size=5000, steps=1, device="cpu")


def test_mnist_speedrun_one_seed_on_cpu():
    df = mnist_speedrun(seeds=[3], device="cpu", epochs=1, batch_size=250, dataset="synthetic")
    assert len(df) == 1
    row = df.iloc[0]
    assert row["seed"] == 3 and 0 <= row["test_acc"] <= 1 and row["train_seconds"] > 0
    assert row["examples"] == 2000 and row["steps"] == 8 and row["flops"] > 0
    assert row["flop_per_s"] == pytest.approx(row["flops"] / row["train_seconds"])
    assert math.isnan(row["frac_peak"])  # no peak is known for a CPU


def test_one_cycle_rises_then_falls_to_zero():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.01)
    one_cycle(opt, total_steps=10, warmup_frac=0.2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(1)
        opt.step()
    assert lrs[1] == pytest.approx(0.01) and lrs[0] < lrs[1] and lrs[-1] < lrs[2]
    assert opt.param_groups[0]["lr"] == 0.0


def test_peak_flops_is_nan_on_cpu():
    assert math.isnan(peak_flops(torch.device("cpu"), "bf16"))
