"""How close subsetlib's loop runs to the bare training step and to the machine's peak, and where a run's time goes:
``peak_probe`` (attainable matmul FLOP/s), ``loop_variants`` (bare step, whole loop and evaluation per precision,
memory format and compile variant) and ``profile_run`` (a protocol run under torch.profiler)."""

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from subsetlib import protocols
from subsetlib.bench_timing import check_positive, fresh_model, load_average, resident_loop, sync, timed
from subsetlib.data import Dataset, device_name, load, resolve_device
from subsetlib.errors import UserError
from subsetlib.train import FlopMeter, evaluate, make_optimizer, resolve_numerics

# Dense (no sparsity) peak FLOP/s from NVIDIA's data sheets; "fp32" is the non-tensor-core FP32 rate. The first key
# that is a substring of torch.cuda.get_device_name() wins, so the more specific names come first.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"bf16": 756e12, "fp32": 51.2e12},
    "H100 NVL": {"bf16": 835e12, "fp32": 60e12},
    "H200": {"bf16": 989e12, "fp32": 67e12},
    "H100": {"bf16": 989e12, "fp32": 67e12},  # SXM (its name is "NVIDIA H100 80GB HBM3")
    "A100": {"bf16": 312e12, "fp32": 19.5e12},
}


def peak_flops(device: torch.device, dtype: str) -> float:
    """The device's dense data-sheet peak for ``dtype`` ("bf16" or "fp32"), NaN on a CPU or an unlisted GPU."""
    if device.type != "cuda":
        return math.nan
    name = torch.cuda.get_device_name(device)
    return next((peaks[dtype] for key, peaks in PEAK_FLOPS.items() if key in name), math.nan)


def peak_probe(device: str = "auto", size: int = 2048, repeats: int = 5) -> dict:
    """Attainable FLOP/s of this machine: the best of ``repeats`` timed ``size``×``size`` matmuls in fp32 and bf16.

    A CPU has no data-sheet figure that holds under a given thread count and load, so the peak is measured the way
    the loops run: same process, same threads. Large square matmuls are what BLAS / oneDNN do best, so this is the
    ceiling a training loop can approach, not exceed (bf16 counts for bf16 autocast, fp32 for fp32 and fp64).
    """
    check_positive(size=size, repeats=repeats)
    dev = resolve_device(device)
    out: dict[str, Any] = {"device": device_name(dev), "threads": torch.get_num_threads(), "size": size,
                           "load_avg": load_average()}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=dev, dtype=dtype)
        b = torch.randn(size, size, device=dev, dtype=dtype)
        best = math.inf
        for _ in range(repeats + 1):  # the first one warms up
            sync(dev)
            tic = time.perf_counter()
            torch.mm(a, b)
            sync(dev)
            best = min(best, time.perf_counter() - tic)
        out[name] = 2 * size**3 / best
    return out


def ceiling(peak: dict, precision: str) -> float:
    """The attainable FLOP/s of a loop at ``precision`` from ``peak_probe``'s dict: the fp32 matmul's for fp32 and
    fp64, and for bf16 autocast the larger of the bf16 and fp32 matmuls' (on a CPU without fast bf16 arithmetic the
    bf16 matmul takes a slow path while oneDNN runs the loop's convolutions in fp32, so the bf16 figure alone would
    put the loop above its ceiling)."""
    return max(peak["bf16"], peak["fp32"]) if precision == "bf16" else peak["fp32"]


@dataclass(frozen=True)
class Variant:
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    @property
    def label(self) -> str:
        parts = [self.precision, "channels-last" if self.channels_last else "NCHW"]
        return " + ".join(parts + (["torch.compile"] if self.compile else []))


VARIANTS = (Variant("fp32", False), Variant("fp32", True), Variant("bf16", False), Variant("bf16", True),
            Variant("fp32", True, True))
"""The variants the speed page compares: fp32 and bf16, each NCHW and channels-last, and torch.compile (fp32, NHWC)."""


def _variant_runs(data: Dataset, model: str, batch_size: int, variant: Variant, seed: int, eval_batch: int
                  ) -> dict[str, Callable[[int], None]]:
    """The three timed things of one variant, on one model: ``bare(n)`` steps on one fixed batch, ``loop(n)`` steps
    of ``train_one_epoch``, ``evaluate(n)`` test-set passes of ``train.evaluate`` and ``forward(n)`` bare
    inference-mode forwards of an ``eval_batch`` batch."""
    how = resolve_numerics(variant.precision, variant.channels_last, data.device)
    net = fresh_model(model, data, seed, how)
    runner = torch.compile(net) if variant.compile else net
    optimizer = make_optimizer(net, "adam", 1e-3)
    x = how.inputs(data.x_train[:batch_size], data)
    y = data.y_train[:batch_size]
    x_eval = how.inputs(data.x_test[:eval_batch], data)

    def bare(todo: int) -> None:
        runner.train()
        for _ in range(todo):
            with how.autocast:
                loss = F.cross_entropy(runner(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def test_passes(todo: int) -> None:
        for _ in range(todo):
            evaluate(runner, data, how, "test", batch_size=eval_batch)

    @torch.inference_mode()
    def forward(todo: int) -> None:
        runner.eval()
        for _ in range(todo):
            with how.autocast:
                runner(x_eval).argmax(1)
        runner.train()

    loop = resident_loop(data, runner, batch_size, False, seed, how, optimizer=optimizer)
    return {"bare": bare, "loop": loop, "evaluate": test_passes, "forward": forward}


def loop_variants(dataset: str = "mnist", model: str = "cnn-simple", batch_size: int = 128, steps: int = 100,
                  variants: Sequence[Variant] = VARIANTS, device: str = "auto", root: str | None = None,
                  warmup: int = 5, seed: int = 0, rounds: int = 3, eval_batch: int = 1000,
                  peak: dict | None = None) -> pd.DataFrame:
    """One row per variant: examples/s of the bare training step, of the whole loop and of evaluation, side by side.

    The bare step is forward + loss + backward + Adam step on one fixed, already-prepared batch: the ceiling for the
    loop, which adds batch making (index, normalize, memory format), the ledger and the FLOP meter. Evaluation is
    ``train.evaluate`` over the test set, against bare inference-mode forwards of batches of the same size. Every
    round times all variants back to back (in reversed order every other round) and each figure is a median over
    rounds, so load from other jobs hits all variants alike. ``peak`` (``peak_probe``'s dict) gives each loop's
    fraction of the attainable FLOP/s for its precision (``ceiling``).
    """
    check_positive(batch_size=batch_size, steps=steps, rounds=rounds, eval_batch=eval_batch)
    dev = resolve_device(device)
    for v in variants:
        resolve_numerics(v.precision, v.channels_last, dev)  # every variant checked before any is timed
    data = load(dataset, root=root, device=dev)
    if batch_size > len(data.y_train):
        raise UserError(f"batch size {batch_size} exceeds the {len(data.y_train)} training examples of {dataset}")
    eval_batch = min(eval_batch, len(data.y_test))
    runs = {v: _variant_runs(data, model, batch_size, v, seed, eval_batch) for v in variants}
    passes = max(1, round(steps * batch_size / len(data.y_test) / 3))  # evaluation: about a third of training's work
    work = {"bare": steps, "loop": steps, "evaluate": passes,
            "forward": passes * math.ceil(len(data.y_test) / eval_batch)}
    examples = {"bare": steps * batch_size, "loop": steps * batch_size, "evaluate": passes * len(data.y_test),
                "forward": work["forward"] * eval_batch}
    compile_seconds = {}
    for v, run in runs.items():  # warm-up: compilation (train and eval graphs), oneDNN kernel selection, FLOP meter
        tic = time.perf_counter()
        for name in ("bare", "loop", "forward", "evaluate"):
            run[name](max(1, warmup) if name in ("bare", "loop") else 1)
        compile_seconds[v] = time.perf_counter() - tic
    seconds: dict[tuple[Variant, str], list[float]] = {(v, k): [] for v in variants for k in work}
    loads = []
    for r in range(rounds):
        loads.append(load_average())
        for v in variants if r % 2 == 0 else list(reversed(variants)):
            for name, count in work.items():
                seconds[v, name].append(timed(runs[v][name], count, dev))
    plain = fresh_model(model, data, seed, resolve_numerics(device=dev))
    flops_per_step = FlopMeter(plain, data.spec.shape, data.num_classes)(batch_size)
    rows = []
    for v in variants:
        rate = {k: examples[k] / float(np.median(seconds[v, k])) for k in work}
        loop_flops = rate["loop"] / batch_size * flops_per_step
        top = ceiling(peak, v.precision) if peak else math.nan
        rows.append({
            "variant": v.label, "precision": v.precision, "channels_last": v.channels_last, "compile": v.compile,
            "bare_step_ex_per_s": rate["bare"], "loop_ex_per_s": rate["loop"],
            "loop_over_bare": rate["loop"] / rate["bare"],
            "bare_forward_ex_per_s": rate["forward"], "evaluate_ex_per_s": rate["evaluate"],
            "evaluate_over_forward": rate["evaluate"] / rate["forward"],
            "loop_flop_per_s": loop_flops, "peak_flop_per_s": top, "frac_peak": loop_flops / top,
            "warmup_seconds": compile_seconds[v],
            "dataset": dataset, "model": model, "batch_size": batch_size, "steps": steps, "rounds": rounds,
            "flop_per_step": flops_per_step, "device": device_name(dev), "threads": torch.get_num_threads(),
            "load_avg": float(np.mean(loads)), "torch": torch.__version__,
        })
    return pd.DataFrame(rows)


def format_variants(table: pd.DataFrame) -> str:
    """loop_variants' table as aligned lines (for the CLI)."""
    lines = [f"{table['dataset'].iloc[0]} · {table['model'].iloc[0]} · batch {table['batch_size'].iloc[0]} · "
             f"{table['device'].iloc[0]} · {table['threads'].iloc[0]} threads · load average "
             f"{table['load_avg'].iloc[0]:.2f}",
             f"{'variant':<36}{'bare ex/s':>11}{'loop ex/s':>11}{'loop/bare':>10}{'eval ex/s':>11}{'GFLOP/s':>9}"
             f"{'of peak':>9}"]
    for _, r in table.iterrows():
        lines.append(f"{r['variant']:<36}{r['bare_step_ex_per_s']:>11,.0f}{r['loop_ex_per_s']:>11,.0f}"
                     f"{r['loop_over_bare']:>10.2f}{r['evaluate_ex_per_s']:>11,.0f}{r['loop_flop_per_s'] / 1e9:>9.1f}"
                     f"{r['frac_peak']:>9.1%}")
    return "\n".join(lines)




PROFILE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("evaluation", ("evaluate",)),
    ("optimizer step", ("Optimizer.step",)),
    ("zero_grad", ("Optimizer.zero_grad",)),
    ("backward", ("autograd::engine",)),
    ("batch making (index, normalize, layout)", ("aten::index", "aten::sub", "aten::div", "aten::to", "aten::_to_copy",
                                                 "aten::contiguous", "aten::clone", "aten::copy_", "aten::randperm",
                                                 "aten::split", "aten::float")),
    ("forward and loss", ("aten::conv", "aten::_conv", "aten::batch_norm", "aten::relu", "aten::max_pool",
                          "aten::linear", "aten::flatten", "aten::cross_entropy", "aten::log_softmax",
                          "aten::nll_loss", "aten::adaptive", "aten::addmm", "aten::view", "aten::reshape")),
)
"""Top-level profiler events by name prefix; the first group that matches wins, the rest is "other ops"."""


def _group(name: str) -> str:
    return next((group for group, prefixes in PROFILE_GROUPS if name.startswith(prefixes)), "other ops")


def profile_run(cfg: protocols.RunConfig, epochs: int = 1, seed: int = 0, device: str = "auto",
                root: str | None = None, top: int = 12) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A conventional run under ``torch.profiler``: where its wall time goes, by group and by operator.

    Returns (groups, ops, summary). Groups sum the top-level events' time (``train.evaluate`` labels itself), and
    "Python between ops" is the wall time no top-level event covers (the loop itself, the ledger, setup). ops: the
    ``top`` operators by self time. summary: the run's ledger split (training, evaluation, the rest of the wall
    time). The profiler slows small ops, so shares matter, not seconds.
    """
    dev = resolve_device(device)
    data = load(cfg.dataset, root=root, device=dev)
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    tic = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        run = protocols.conventional(data, cfg, seed, epochs)
    wall = time.perf_counter() - tic
    roots = [e for e in prof.events() if e.cpu_parent is None]
    by_group: dict[str, float] = {}
    for event in roots:
        by_group[_group(event.name)] = by_group.get(_group(event.name), 0.0) + event.cpu_time_total / 1e6
    by_group["Python between ops (loop, ledger, setup)"] = max(0.0, wall - sum(by_group.values()))
    groups = pd.DataFrame({"where": list(by_group), "seconds": list(by_group.values())})
    groups = groups.sort_values("seconds", ascending=False, ignore_index=True)
    groups["share"] = groups["seconds"] / wall
    averages = sorted(prof.key_averages(), key=lambda a: a.self_cpu_time_total, reverse=True)[:top]
    ops = pd.DataFrame([{"operator": a.key, "calls": a.count, "self_seconds": a.self_cpu_time_total / 1e6,
                         "share": a.self_cpu_time_total / 1e6 / wall} for a in averages])
    s = run.summary
    summary = {"wall_seconds": wall, "train_seconds": s["total_train_seconds"], "eval_seconds": s["total_eval_seconds"],
               "other_seconds": wall - s["total_train_seconds"] - s["total_eval_seconds"], "epochs": epochs,
               "evaluations": len(run.curve), "final_test_acc": s["final_test_acc"], "load_avg": load_average(),
               "threads": torch.get_num_threads(), "device": device_name(dev), **{f"cfg_{k}": v for k, v in
                                                                                  vars(cfg).items()}}
    return groups, ops, summary
