"""bench: both loops run and are measured; the variants, the peak probe, the profile and the speed-run return sane
rows; the parity rule decides as stated. No speed thresholds: a shared CI box's timings are not a test."""

import math

import pandas as pd
import pytest
import torch

from subsetlib import bench_peak, protocols
from subsetlib.bench_loader import compare_loops, format_report
from subsetlib.bench_peak import Variant, ceiling, format_variants, loop_variants, peak_flops, peak_probe, profile_run
from subsetlib.cli import build_parser
from subsetlib.data import load
from subsetlib.errors import UserError
from subsetlib.models import build_model
from subsetlib.parity import default_precision, parity, parity_table
from subsetlib.registry import DATASETS, data_roots
from subsetlib.speedrun import mnist_speedrun, one_cycle
from subsetlib.train import FlopMeter, Ledger, evaluate, make_optimizer, resolve_numerics, train_one_epoch


def mnist_present() -> bool:
    return any((r / DATASETS["mnist"].folder / "raw" / "train-images-idx3-ubyte.gz").is_file() for r in data_roots())


def check_result(result: dict, steps: int) -> None:
    assert result["steps"] == steps
    assert result["resident_samples_per_s"] > 0 and result["dataloader_samples_per_s"] > 0
    per_round = [d / r for d, r in zip(result["dataloader_seconds_each"], result["resident_seconds_each"], strict=True)]
    assert result["ratio"] == pytest.approx(float(pd.Series(per_round).median()))  # resident ÷ DataLoader speed
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
    assert row["seed"] == 3 and 0 <= row["test_acc"] <= 1 and row["train_seconds"] > 0 and row["train_cpu_seconds"] > 0
    assert row["examples"] == 2000 and row["steps"] == 8 and row["flops"] > 0
    assert row["flop_per_s"] == pytest.approx(row["flops"] / row["train_seconds"])
    assert math.isnan(row["frac_peak"])  # no peak is known for a CPU


def test_one_cycle_rises_to_the_lr_then_falls_near_zero():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.01)
    one_cycle(opt, total_steps=10, warmup_frac=0.2)
    lrs = []
    for _ in range(11):  # one step past the schedule must not raise
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(1)
        opt.step()
    assert lrs[0] < lrs[1] and max(lrs) == pytest.approx(0.01) and lrs[9] < 0.01 / 1000


def test_a_bf16_loop_is_measured_against_the_faster_of_the_two_matmuls():
    """This machine's CPU has no fast bf16 path: its bf16 matmul ran at 0.3 GFLOP/s against 86 in fp32, while the
    bf16 loop reached 3 GFLOP/s; against the bf16 matmul alone the page showed loops at 1,000 % of their peak."""
    slow_bf16 = {"fp32": 86e9, "bf16": 0.3e9}
    assert ceiling(slow_bf16, "bf16") == ceiling(slow_bf16, "fp32") == ceiling(slow_bf16, "fp64") == 86e9
    assert ceiling({"fp32": 1e12, "bf16": 4e12}, "bf16") == 4e12


def test_peak_flops_is_nan_on_cpu():
    assert math.isnan(peak_flops(torch.device("cpu"), "bf16"))


def test_mnist_speedrun_other_model_measured_peak():
    df = mnist_speedrun(seeds=[0], device="cpu", epochs=1, batch_size=500, dataset="synthetic", model="mnist-cpu",
                        channels_last=True, peak={"fp32": 1e12, "bf16": 2e12})
    row = df.iloc[0]
    assert row["model"] == "mnist-cpu" and row["channels_last"] and row["peak_flop_per_s"] == 1e12
    assert row["frac_peak"] == pytest.approx(row["flop_per_s"] / 1e12) and row["load_avg"] >= 0


@pytest.mark.parametrize("precision,channels_last", [("bf16", False), ("fp32", True), ("bf16", True), ("fp64", True)])
def test_precision_and_memory_format_keep_shapes_ledgers_and_finite_losses(precision, channels_last):
    data = load("synthetic", device="cpu")
    ledgers, outputs = [], []
    variants = ({"precision": "fp32", "channels_last": False}, {"precision": precision, "channels_last": channels_last})
    for variant in variants:
        how = resolve_numerics(**variant)
        torch.manual_seed(0)
        net = how.model(build_model("cnn-simple", data.spec.shape, data.num_classes))
        assert next(net.parameters()).dtype == (torch.float64 if variant["precision"] == "fp64" else torch.float32)
        ledger = Ledger()
        train_one_epoch(net, make_optimizer(net), data, torch.arange(300), 128, torch.Generator().manual_seed(0),
                        ledger, FlopMeter(net, data.spec.shape, data.num_classes), how)
        loss, acc = evaluate(net, data, how, "test")
        assert math.isfinite(loss) and 0 <= acc <= 1
        ledgers.append((ledger.examples, ledger.steps, ledger.flops))
        outputs.append(net.eval()(torch.zeros(2, *data.spec.shape, dtype=next(net.parameters()).dtype)).shape)
    assert ledgers[0] == ledgers[1] and outputs[0] == outputs[1] == (2, data.num_classes)


def test_compare_loops_records_precision_and_memory_format():
    result = compare_loops("synthetic", batch_size=32, steps=2, warmup=1, device="cpu", precision="bf16",
                           channels_last=False)
    check_result(result, 2)
    assert result["precision"] == "bf16" and result["channels_last"] is False and result["load_avg"] >= 0
    assert "bf16" in format_report(result)
    with pytest.raises(UserError, match="precision"):
        compare_loops("synthetic", batch_size=32, steps=1, device="cpu", precision="fp16")


def test_peak_probe_is_the_best_matmul_rate(monkeypatch):
    """With a clock that advances 1 s per reading, every matmul takes 1 s: the peak is 2·size³ FLOP/s exactly."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(bench_peak.time, "perf_counter", lambda: float(next(ticks)))
    peak = peak_probe("cpu", size=64, repeats=2)
    assert peak["fp32"] == peak["bf16"] == 2 * 64**3 and peak["size"] == 64


def test_loop_variants_one_row_each_with_fraction_of_peak():
    variants = [Variant("fp32", False), Variant("bf16", True)]
    table = loop_variants("synthetic", batch_size=32, steps=2, variants=variants, device="cpu", warmup=1, rounds=2,
                          peak={"fp32": 1e12, "bf16": 4e12})
    assert list(table["variant"]) == ["fp32 + NCHW", "bf16 + channels-last"]
    for col in ("bare_step_ex_per_s", "loop_ex_per_s", "evaluate_ex_per_s", "bare_forward_ex_per_s"):
        assert (table[col] > 0).all()
    assert table["frac_peak"].tolist() == pytest.approx((table["loop_flop_per_s"] / [1e12, 4e12]).tolist())
    assert "bf16 + channels-last" in format_variants(table)
    assert Variant("fp32", True, True).label == "fp32 + channels-last + torch.compile"


def test_profile_run_splits_time_into_groups_with_evaluation():
    cfg = protocols.RunConfig(dataset="synthetic", eval_every=1.0, eval_train_examples=200)
    groups, ops, summary = profile_run(cfg, epochs=1, device="cpu", top=5)
    shares = dict(zip(groups["where"], groups["share"], strict=True))
    assert shares["evaluation"] > 0 and shares["backward"] > 0 and sum(shares.values()) <= 1.01
    assert len(ops) == 5 and summary["evaluations"] == 2
    assert summary["train_seconds"] + summary["eval_seconds"] <= summary["wall_seconds"]


def test_evaluate_labels_itself_for_the_profiler():
    data = load("synthetic", device="cpu")
    net = build_model("cnn-simple", data.spec.shape, data.num_classes)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        evaluate(net, data, resolve_numerics(), "test", torch.arange(10))
    assert "evaluate" in {e.name for e in prof.events() if e.cpu_parent is None}


def test_parity_rule():
    same = parity([0.90, 0.91, 0.92, 0.93], [0.905, 0.905, 0.925, 0.925])
    assert same["holds"] and same["n"] == 4 and same["mean_diff"] == pytest.approx(0.0)
    worse = parity([0.90, 0.91, 0.92, 0.93], [0.80, 0.81, 0.82, 0.83])
    assert not worse["holds"] and worse["mean_diff"] == pytest.approx(-0.1)
    with pytest.raises(UserError, match="parity"):
        parity([0.9], [0.9])
    with pytest.raises(UserError, match="parity"):
        parity([0.9, 0.8], [0.9])


def test_parity_table_and_the_default_precision_rule():
    runs = pd.DataFrame({"seed": [0, 1, 2] * 2, "precision": ["fp32"] * 3 + ["bf16"] * 3,
                         "final_test_acc": [0.90, 0.91, 0.92, 0.905, 0.905, 0.925],
                         "min_train_loss": [0.10, 0.11, 0.12, 0.30, 0.31, 0.32]})
    table = parity_table(runs)
    assert table["holds"].tolist() == [True, False]  # accuracy within noise, loss far worse
    assert default_precision([table], speedup=2.0) == "fp32"
    same = table.assign(holds=True)
    assert default_precision([same], speedup=2.0) == "bf16"
    assert default_precision([same], speedup=0.9) == "fp32"  # parity alone is not enough: it must be faster
    assert default_precision([], speedup=2.0) == "fp32"  # no parity page has run


def test_cli_takes_precision_and_memory_format():
    parser = build_parser()
    args = parser.parse_args(["bench", "--precision", "bf16", "--no-channels-last"])
    assert args.precision == "bf16" and args.channels_last is False and not args.variants
    args = parser.parse_args(["run", "--precision", "fp64"])
    assert args.precision == "fp64" and args.channels_last is True
