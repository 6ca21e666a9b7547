"""The speed page's measurement: the machine's peak, the variants, a profiled quick-grid run, the resident loop
against a DataLoader and the CPU MNIST speed run, one after another in this process, each table written into
``<results_dir>/bench`` with the machine, the commit and the time the measurement started. The page shows what
``speed_page.load`` reads back, whether it was measured now or earlier (its parameter ``measure``)."""

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from subsetlib import bench_loader, bench_peak, console, data, protocols, results, speedrun
from subsetlib.speed_page import FILES


def measure(params: dict, out: Path) -> None:
    """Time everything the speed page shows, with the page's parameters ``params``, and store it in ``out``."""
    p = params
    out = Path(out)
    stamp = {**results.provenance(data.load(p["dataset"], device=p["device"])),
             "measured_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"}
    peak = bench_peak.peak_probe(p["device"], size=p["peak_size"])
    peak_table = pd.DataFrame([{"precision": k, "gflops": peak[k] / 1e9} for k in ("fp32", "bf16")])
    measured = {k: v for k, v in peak.items() if k not in ("fp32", "bf16")}
    results.atomic_write_parquet(peak_table.assign(**{**stamp, **measured}), out / FILES["peak"])

    # torch.compile only at the first batch size: its compilation is the slowest part of this page on a CPU
    per_batch = [bench_peak.loop_variants(p["dataset"], p["model"], b, max(1, p["variant_examples"] // b),
                                          [v for v in bench_peak.VARIANTS
                                           if not v.compile or (p["include_compile"] and i == 0)],
                                          device=p["device"], rounds=p["variant_rounds"], peak=peak)
                 for i, b in enumerate(p["variant_batch_sizes"])]
    results.atomic_write_parquet(pd.concat(per_batch, ignore_index=True).assign(**stamp), out / FILES["variants"])

    cfg = protocols.config_from(p, eval_train_examples=p["profile_eval_train_examples"])
    with console.quiet():  # the profiler's own log lines (USDT, device probes) are not for readers
        groups, ops, prof = bench_peak.profile_run(cfg, epochs=p["profile_epochs"], device=p["device"])
    results.atomic_write_parquet(groups.assign(**{**stamp, **{k: str(v) for k, v in prof.items()}}),
                                 out / FILES["profile"])
    results.atomic_write_parquet(ops.assign(**stamp), out / FILES["ops"])

    rows = [bench_loader.compare_loops(dataset=p["dataset"], model=p["model"], batch_size=b,
                                       steps=max(1, p["loop_examples"] // b), device=p["device"], workers=w,
                                       rounds=p["loop_rounds"])
            for b in p["loop_batch_sizes"] for w in p["loop_workers"]]
    loops = pd.DataFrame(rows).drop(columns=["resident_seconds_each", "dataloader_seconds_each"]).assign(**stamp)
    results.atomic_write_parquet(loops, out / FILES["loops"])

    run = speedrun.mnist_speedrun(seeds=p["speedrun_seeds"], device=p["device"], epochs=p["speedrun_epochs"],
                                  batch_size=p["speedrun_batch_size"], lr=p["speedrun_lr"], model=p["speedrun_model"],
                                  precision=p["speedrun_precision"], channels_last=p["speedrun_channels_last"],
                                  dataset=p["dataset"], peak=peak)
    results.atomic_write_parquet(run.assign(**stamp), out / FILES["speedrun"])
