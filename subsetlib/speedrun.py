"""The conventional MNIST baseline trained fast (``mnist_speedrun``): a registry model on the full set once per seed,
with a one-cycle lr schedule, data resident on the device, timed by the training loop's own stopwatch."""

import math
import time
from collections.abc import Iterable

import pandas as pd
import torch

from subsetlib.bench_peak import ceiling, peak_flops
from subsetlib.bench_timing import check_positive, load_average
from subsetlib.data import device_name, load, resolve_device
from subsetlib.models import build_model
from subsetlib.train import FlopMeter, Ledger, evaluate, make_optimizer, resolve_numerics, train_one_epoch


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int, warmup_frac: float) -> None:
    """torch's OneCycleLR (cosine warm-up to the optimizer's lr over ``warmup_frac`` of the steps, cosine decay to
    lr/1e4, Adam's beta1 cycled against it), stepped after every optimizer step.

    A step hook rather than a call in the loop, so ``train_one_epoch`` stays the one training loop; the lr is a Python
    float, so this adds no GPU synchronization.
    """
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"],
                                                   total_steps=total_steps, pct_start=warmup_frac)
    optimizer.register_step_post_hook(lambda *_: schedule.step() if schedule.last_epoch < total_steps else None)


def mnist_speedrun(seeds: Iterable[int] = range(10), device: str = "auto", epochs: int = 2, batch_size: int = 500,
                   root: str | None = None, *, model: str = "mnist-fast", optimizer: str = "adam", lr: float = 0.01,
                   warmup_frac: float = 0.2, precision: str | None = None, channels_last: bool = False,
                   compile: bool = False, dataset: str = "mnist", peak: dict | None = None) -> pd.DataFrame:
    """The conventional MNIST baseline: ``model`` on the full training set, once per seed, one row per seed.

    Recipe: Adam with a one-cycle lr schedule peaking at ``lr``, ``epochs`` passes in batches of ``batch_size``,
    data resident on the device, bf16 autocast on a GPU unless ``precision`` says otherwise. The timed region is
    ``train_one_epoch`` only (its CUDA-event / perf_counter stopwatch); a few untimed warm-up steps on every batch
    shape come first (CUDA context, cuDNN autotuning, compilation), test accuracy is measured after. FLOPs come
    from ``FlopMeter`` (measured once per batch shape). ``train_cpu_seconds`` is the process's CPU time over the same
    epochs: on a shared machine, divided by the threads, it says what the run would take with the cores to itself
    (an estimate; spinning threads count too). ``frac_peak`` divides the achieved rate by the peak for the
    precision: ``peak`` (``peak_probe``'s measured dict) if given, else the GPU's data sheet, else NaN.
    """
    check_positive(epochs=epochs, batch_size=batch_size)
    dev = resolve_device(device)
    precision = precision or ("bf16" if dev.type == "cuda" else "fp32")
    how = resolve_numerics(precision, channels_last, dev)
    data = load(dataset, root=root, device=dev)
    n = len(data.y_train)
    everything = torch.arange(n, device=dev)
    net = how.model(build_model(model, data.spec.shape, data.num_classes).to(dev))
    trained = torch.compile(net) if compile else net  # compiled once; each seed loads fresh weights into ``net``
    flops = FlopMeter(net, data.spec.shape, data.num_classes)
    top = ceiling(peak, precision) if peak else peak_flops(dev, "bf16" if precision == "bf16" else "fp32")
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        # Untimed warm-up on both batch shapes an epoch produces (full and the last, partial one).
        warm_idx = everything[: 2 * batch_size + n % batch_size]
        warm_opt = make_optimizer(trained, optimizer, lr)
        train_one_epoch(trained, warm_opt, data, warm_idx, batch_size, torch.Generator(device=dev).manual_seed(0),
                        Ledger(), flops, how)
        rows = []
        for seed in seeds:
            torch.manual_seed(seed)
            fresh = how.model(build_model(model, data.spec.shape, data.num_classes))
            net.load_state_dict(fresh.state_dict())
            opt = make_optimizer(trained, optimizer, lr)
            one_cycle(opt, epochs * math.ceil(n / batch_size), warmup_frac)
            generator = torch.Generator(device=dev).manual_seed(seed)
            ledger = Ledger()
            load_before, cpu_before = load_average(), time.process_time()
            for _ in range(epochs):
                train_one_epoch(trained, opt, data, everything, batch_size, generator, ledger, flops, how)
            cpu_seconds = time.process_time() - cpu_before
            test_loss, test_acc = evaluate(trained, data, how, "test")
            rate = ledger.flops / ledger.train_seconds
            rows.append({
                "seed": seed, "test_acc": test_acc, "test_loss": test_loss, "train_seconds": ledger.train_seconds,
                "train_cpu_seconds": cpu_seconds, "examples": ledger.examples, "steps": ledger.steps,
                "flops": ledger.flops, "flop_per_s": rate,
                "peak_flop_per_s": top, "frac_peak": rate / top, "device": device_name(dev), "dataset": dataset,
                "model": model, "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                "precision": precision, "channels_last": channels_last, "compile": compile,
                "threads": torch.get_num_threads(), "load_avg": (load_before + load_average()) / 2,
                "torch": torch.__version__,
            })
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return pd.DataFrame(rows)
