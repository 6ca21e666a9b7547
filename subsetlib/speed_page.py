"""The speed page drawn from its measurement tables: its answer, tables and figures. No torch: the measuring is
``bench_page.measure``, which writes the tables this module reads (``load``), so the page can show a measurement made
now or, with its parameter ``measure=False``, the one stored earlier, saying which (``measured_line``)."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from subsetlib import parity, present, tables
from subsetlib.errors import UserError

FILES = {"peak": "peak.parquet", "variants": "variants.parquet", "profile": "profile.parquet",
         "ops": "profile_ops.parquet", "loops": "loops.parquet", "speedrun": "mnist_speedrun.parquet"}
OPTIONAL = ("ops",)  # the operator table was first stored on 2026-12-07: earlier measurements lack it
REFERENCE, CANDIDATE = "fp32 + channels-last", "bf16 + channels-last"  # the variants the default precision compares
TIME_TARGET_S, ACCURACY_TARGET = 30.0, 0.99  # the CPU speed run's targets (issue 11)


@dataclass
class Measurements:
    """The speed page's stored tables (``FILES``), the parity pages' verdicts and the folder they came from."""

    peak: pd.DataFrame
    variants: pd.DataFrame
    profile: pd.DataFrame
    ops: pd.DataFrame | None
    loops: pd.DataFrame
    speedrun: pd.DataFrame
    parity: list[pd.DataFrame]
    folder: Path

    @property
    def where(self) -> str:
        """'cpu (AMD EPYC, 2 cores), 2 threads, torch 2.14.1': the machine the peak was measured on."""
        row = self.peak.iloc[0]
        return f"{row['device']}, {row['threads']} threads, torch {row['torch_version']}"

    @property
    def commits(self) -> list[str]:
        frames = [self.peak, self.variants, self.profile, self.loops, self.speedrun]
        return sorted({str(c)[:10] for f in frames if "git_commit" in f for c in f["git_commit"].dropna()})

    @property
    def measured_at(self) -> str | None:
        """When the measurement started (UTC), where it was stored (tables written since 2026-12-07)."""
        return str(self.peak["measured_at"].iloc[0]) if "measured_at" in self.peak else None


def load(folder: str | Path) -> Measurements:
    """The tables a measuring rendering of the speed page wrote into ``folder`` (``<results_dir>/bench``)."""
    folder = Path(folder)
    missing = [name for key, name in FILES.items() if key not in OPTIONAL and not (folder / name).is_file()]
    if missing:
        raise UserError(f"no stored speed measurement in {folder} (missing {', '.join(missing)}): render the page "
                        "with measure=True (the default) on a quiet machine first")
    read = {key: pd.read_parquet(folder / name) if (folder / name).is_file() else None for key, name in FILES.items()}
    verdicts = [pd.read_parquet(p) for p in sorted(folder.glob("parity-*.parquet"))]
    return Measurements(**read, parity=verdicts, folder=folder)


def measured_line(m: Measurements, measured_now: bool) -> str:
    """Says whether this rendering timed anything: a page drawn again from stored tables must not pass for new."""
    when = f" on {m.measured_at}" if m.measured_at else ""
    commits = ", ".join(f"`{c}`" for c in m.commits)
    if measured_now:
        return f"Measured for this rendering{when}, at commit {commits}, on {m.where}."
    return (f"Nothing was timed for this rendering (`measure=False`): every number below is the measurement stored "
            f"in `{m.folder.name}/` by a run at commit {commits}{when}, on {m.where}, shown as it was measured.")


def speedup(m: Measurements, batch_size: int) -> float:
    """Whole-loop speed of bf16 + channels-last over fp32 + channels-last at ``batch_size`` (nan if not measured)."""
    fast = m.variants.set_index(["batch_size", "variant"])["loop_ex_per_s"]
    try:
        return float(fast[batch_size, CANDIDATE] / fast[batch_size, REFERENCE])
    except KeyError:
        return float("nan")


def answer(m: Measurements, default_batch: int) -> str:
    """The page's answer in plain sentences, from the measured numbers: the fastest loop and its share of the peak,
    the default precision and why, the resident loop against a DataLoader, and the speed run against its targets."""
    var = m.variants
    best = var.loc[var["loop_ex_per_s"].idxmax()]
    ratio = speedup(m, default_batch)
    choice = parity.default_precision(m.parity, ratio)
    loop = m.loops.iloc[0]
    acc, sec = m.speedrun["test_acc"], m.speedrun["train_seconds"]
    return (
        f"On this machine ({m.where}) training is fastest as **{best['variant']}**: {best['loop_ex_per_s']:,.0f} "
        f"examples per second through the whole training loop at batch {best['batch_size']}, "
        f"{best['frac_peak']:.0%} of the measured peak. bf16 autocast trains at {ratio:.2f}× the speed of fp32 at "
        f"batch {default_batch}, so the default precision is **{choice}**. Keeping the data on the device trains "
        f"{loop['ratio']:.1f}× as fast as a DataLoader loop (batch {loop['batch_size']}). The CPU MNIST speed run "
        f"reaches {acc.mean():.2%} mean test accuracy over {_count(len(m.speedrun), 'seed')} with "
        f"{sec.mean():.0f} s of training per run: the accuracy target (≥ {ACCURACY_TARGET:.0%}) is "
        f"{'met' if acc.mean() >= ACCURACY_TARGET else 'not met'}, the time target (≤ {TIME_TARGET_S:.0f} s every "
        f"run) {'met' if sec.max() <= TIME_TARGET_S else 'not met'}, at a load average of "
        f"{m.speedrun['load_avg'].mean():.1f} on {m.speedrun['threads'].iloc[0]} threads.")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def peak_table(m: Measurements) -> tables.Table:
    return tables.table(m.peak, {"precision": "precision", "gflops": "peak GFLOP/s"}, digits={"gflops": 1})


def peak_line(m: Measurements) -> str:
    row = m.peak.iloc[0]
    return f"Matmul {row['size']:.0f}×{row['size']:.0f}, {m.where}, load average {row['load_avg']:.1f}."


def training_table(m: Measurements) -> tables.Table:
    """The training half of the variant comparison (the evaluation half is ``evaluation_table``): one table of
    eleven columns scrolled past the column at 1280 px."""
    var = m.variants
    return tables.table(
        var.assign(loop_gflops=var["loop_flop_per_s"] / 1e9, peak_pct=100 * var["frac_peak"]),
        {"variant": "variant", "batch_size": "batch", "bare_step_ex_per_s": "bare step (ex/s)",
         "loop_ex_per_s": "whole loop (ex/s)", "loop_over_bare": "loop ÷ bare", "loop_gflops": "loop GFLOP/s",
         "peak_pct": "of peak (%)"},
        digits={"bare_step_ex_per_s": 0, "loop_ex_per_s": 0, "loop_over_bare": 2, "loop_gflops": 1, "peak_pct": 1})


def evaluation_table(m: Measurements) -> tables.Table:
    return tables.table(
        m.variants,
        {"variant": "variant", "batch_size": "batch", "bare_forward_ex_per_s": "bare forward (ex/s)",
         "evaluate_ex_per_s": "evaluate (ex/s)", "evaluate_over_forward": "evaluate ÷ forward",
         "load_avg": "load average"},
        digits={"bare_forward_ex_per_s": 0, "evaluate_ex_per_s": 0, "evaluate_over_forward": 2, "load_avg": 1})


def _bars(data: pd.DataFrame, y: str, x: str, hue: str, hue_title: str, xlabel: str):
    """Horizontal bars that fit the column and a phone: category labels wrapped, at most four x ticks with
    thousands separators, the colour key under the panel with its title."""
    import seaborn as sns

    data = data.assign(**{y: data[y].map(present.wrap_label)})
    lines = data[y].str.count("\n").max() + 1
    fig, ax = present.figure(height=data[y].nunique() * (0.25 + 0.18 * lines) + 1.6)
    sns.barplot(data=data, y=y, x=x, hue=hue, ax=ax)
    ax.set(xlabel=xlabel, ylabel="")
    present.count_axis(ax, "x")
    ax.get_legend().remove()
    present.legend(ax, below=True, title=hue_title)
    return fig


def variants_figure(m: Measurements):
    """(figure, plotted points) of the whole loop's speed per variant and batch size."""
    var = m.variants
    fig = _bars(var.assign(batch=var["batch_size"].astype(str)), "variant", "loop_ex_per_s", "batch", "batch size",
                "examples per second")
    points = var.assign(run_id=float("nan"), seed=float("nan"),  # measured in the page's process: no stored runs
                        arm=var["variant"] + ", batch " + var["batch_size"].astype(str))[
        ["run_id", "seed", "arm", "variant", "batch_size", "loop_ex_per_s"]]
    return fig, points


def variants_caption(m: Measurements) -> str:
    var = m.variants
    row = var.iloc[0]
    return (f"Whole-loop training speed per variant and batch size ({row['dataset']}, {row['model']}; median of "
            f"{var['rounds'].iloc[0]} rounds run back to back). {m.where}, load average {var['load_avg'].mean():.1f}.")


def variants_text(m: Measurements) -> str:
    var = m.variants
    best = var.loc[var["loop_ex_per_s"].idxmax()]
    first = var[var["batch_size"] == var["batch_size"].iloc[0]]
    return (
        f"Fastest loop: **{best['variant']}** at batch {best['batch_size']}, {best['loop_ex_per_s']:,.0f} examples/s, "
        f"{best['loop_flop_per_s'] / 1e9:.1f} GFLOP/s = {best['frac_peak']:.1%} of the measured peak. The whole loop "
        f"runs at {var['loop_over_bare'].min():.2f}–{var['loop_over_bare'].max():.2f} of the bare step across variants "
        f"(target ≥ 0.80); evaluation at {var['evaluate_over_forward'].min():.2f}–"
        f"{var['evaluate_over_forward'].max():.2f} of bare forwards. Warm-up (including compilation) is untimed: "
        f"{', '.join(f'{r.variant} {r.warmup_seconds:.0f} s' for r in first.itertuples())} at batch "
        f"{first['batch_size'].iloc[0]}.")


def profile_tables(m: Measurements) -> list[tables.Table]:
    groups = m.profile
    out = [tables.table(groups.assign(pct=100 * groups["share"]),
                        {"where": "where", "seconds": "seconds", "pct": "share of wall time (%)"},
                        digits={"seconds": 2, "pct": 1})]
    if m.ops is not None:
        out.append(tables.table(m.ops.assign(pct=100 * m.ops["share"]),
                                {"operator": "operator (by self time)", "calls": "calls",
                                 "self_seconds": "self seconds", "pct": "share of wall time (%)"},
                                digits={"self_seconds": 2, "pct": 1}))
    return out


def profile_text(m: Measurements) -> str:
    p = m.profile.iloc[0]
    text = (f"The run's own ledger: {float(p['train_seconds']):.1f} s training, {float(p['eval_seconds']):.1f} s "
            f"evaluation ({_count(int(float(p['evaluations'])), 'evaluation')}), {float(p['other_seconds']):.1f} s "
            f"other, of {float(p['wall_seconds']):.1f} s wall ({_count(int(float(p['epochs'])), 'epoch')}, "
            f"{m.where}, load average {float(p['load_avg']):.1f}).")
    if m.ops is None:
        text += (" The per-operator table was not stored with this measurement (tables stored before 2026-12-07 "
                 "lack it); a rendering that measures shows it.")
    return text


def loops_table(m: Measurements) -> tables.Table:
    return tables.table(m.loops, {"batch_size": "batch", "workers": "DataLoader workers",
                                  "resident_samples_per_s": "resident (ex/s)",
                                  "dataloader_samples_per_s": "DataLoader (ex/s)",
                                  "ratio": "resident ÷ DataLoader", "load_avg": "load average"},
                        digits={"resident_samples_per_s": 0, "dataloader_samples_per_s": 0, "ratio": 2,
                                "load_avg": 1})


def loops_figure(m: Measurements):
    """(figure, plotted points) of the device-resident loop against the DataLoader loop."""
    long = m.loops.melt(id_vars=["batch_size", "workers"],
                        value_vars=["resident_samples_per_s", "dataloader_samples_per_s"], var_name="loop",
                        value_name="samples/s")
    long["loop"] = long["loop"].map({"resident_samples_per_s": "device-resident",
                                     "dataloader_samples_per_s": "DataLoader"})
    long["setting"] = "batch " + long["batch_size"].astype(str) + ", workers " + long["workers"].astype(str)
    fig = _bars(long, "setting", "samples/s", "loop", "loop", "examples per second")
    points = long.assign(run_id=float("nan"), seed=float("nan"), arm=long["loop"])[  # measured: no stored runs
        ["run_id", "seed", "arm", "setting", "samples/s"]]
    return fig, points


def loops_caption(m: Measurements) -> str:
    row = m.loops.iloc[0]
    return (f"The device-resident loop against a DataLoader loop ({row['dataset']}, {row['model']}, same steps and "
            f"weights; median of {row['rounds']} rounds). {m.where}, load average {m.loops['load_avg'].mean():.1f}.")


def speedrun_table(m: Measurements) -> tables.Table:
    run = m.speedrun
    return tables.table(
        run.assign(acc_pct=100 * run["test_acc"], gflops=run["flop_per_s"] / 1e9, peak_pct=100 * run["frac_peak"]),
        {"seed": "seed", "acc_pct": "test accuracy (%)", "train_seconds": "training (s)", "steps": "steps",
         "train_cpu_seconds": "training (CPU-s)", "gflops": "GFLOP/s", "peak_pct": "of peak (%)",
         "load_avg": "load average"},
        digits={"acc_pct": 2, "train_seconds": 1, "train_cpu_seconds": 1, "gflops": 1, "peak_pct": 1,
                "load_avg": 1})


def speedrun_text(m: Measurements) -> str:
    run = m.speedrun
    row = run.iloc[0]
    acc, sec, threads = run["test_acc"], run["train_seconds"], run["threads"].iloc[0]
    spread = f" ± {acc.std(ddof=1):.2%}" if len(run) > 1 else " (n = 1)"
    cpu = run["train_cpu_seconds"].mean()
    return (
        f"Mean test accuracy **{acc.mean():.2%}**{spread} (min {acc.min():.2%}), training seconds per run: mean "
        f"**{sec.mean():.1f} s**, max {sec.max():.1f} s, over {_count(len(run), 'seed')} ({row['dataset']}, "
        f"{row['model']}, {_count(row['epochs'], 'epoch')}, batch {row['batch_size']}, {row['precision']}"
        f"{', channels-last' if row['channels_last'] else ''}). Accuracy target (≥ {ACCURACY_TARGET:.1%} mean) "
        f"{'met' if acc.mean() >= ACCURACY_TARGET else 'not met'}; time target (≤ {TIME_TARGET_S:.0f} s every run) "
        f"{'met' if sec.max() <= TIME_TARGET_S else 'not met'}, at a mean load average of "
        f"{run['load_avg'].mean():.1f} on {threads} threads. The process used {cpu:.1f} CPU-seconds of training per "
        f"run on average, i.e. about {cpu / threads:.1f} s on {threads} unshared cores (an estimate, not a "
        f"measurement of wall time).")


def precision_text(m: Measurements, default_precision: str, default_batch: int) -> str:
    """The default-precision rule applied to the parity pages' verdicts and the variant table's speed-up."""
    ratios = {b: speedup(m, b) for b in sorted(m.variants["batch_size"].unique())}
    choice = parity.default_precision(m.parity, ratios.get(default_batch, float("nan")))
    verdicts = (", ".join(f"{present.dataset_title(v['dataset'].iloc[0])}: {'holds' if parity.holds(v) else 'fails'}"
                          for v in m.parity) or "no parity page has run")
    return (f"Parity: {verdicts}. Whole-loop speed of {CANDIDATE} over {REFERENCE}: "
            + ", ".join(f"{s:.2f}× at batch {b}" for b, s in ratios.items())
            + f". By the rule, the default is **{choice}**; the library's default is {default_precision} at batch "
            f"{default_batch}{'' if choice == default_precision else ', which does not follow the rule here'}. "
            "bf16 stays one flag away (`--precision bf16`), for a machine and batch size where it is faster.")
