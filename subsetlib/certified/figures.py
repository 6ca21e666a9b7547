"""The study's figures. Each takes the tables ``analysis`` made (per-seed pairs, verdicts) and returns (figure,
caption, data) for ``present.show``; one colour per width on every page, filled markers where the rule said yes."""

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from subsetlib import present
from subsetlib.certified.analysis import objective_text
from subsetlib.certified.rules import RULES, Rules, Verdict

WIDTH_COLOURS = ("#e76f51", "#2a9d8f", "#1f4e9c", "#6a4c93")
"""Narrowest to widest: the same colour for the same place in the design on every page."""


def _colours(widths) -> dict[int, str]:
    """A width's colour by its place in its design (narrowest first), so that a width keeps its colour on every page
    whichever widths a figure shows."""
    from subsetlib.certified.design import DESIGNS

    places = {w: i for d in DESIGNS.values() for i, w in enumerate(sorted(d.widths))}
    return {w: WIDTH_COLOURS[places.get(w, i) % len(WIDTH_COLOURS)] for i, w in enumerate(sorted(widths))}


def _q_axis(ax, values) -> None:
    """Log base-2 axis whose ticks are the values drawn, written plainly (0.5, 1, 2, … 64)."""
    ticks = sorted(set(values))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()


def _legend(fig, axes) -> None:
    """One key under the panels with every width drawn in any of them."""
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    order = sorted(seen, key=lambda label: int(re.findall(r"\d[\d,]*", label)[-1].replace(",", "")))
    fig.legend([seen[k] for k in order], order, loc="outside lower center", ncol=min(3, len(order)))


def _points(pairs: pd.DataFrame) -> pd.DataFrame:
    data = pairs.copy()
    data["arm"] = [f"P = {p:,}, Q = {q:g}" for p, q in zip(data["p"], data["q"], strict=True)]
    return data


def _panels(n: int, height: float = 2.6) -> tuple[Figure, np.ndarray]:
    present.style()
    fig, axes = plt.subplots(n, 1, figsize=(present.COLUMN_INCHES, height * n + 0.6), squeeze=False, sharex=True)
    return fig, axes[:, 0]


def minima(pairs: pd.DataFrame, close: pd.DataFrame, x: str = "q", titles: dict[str, str] | None = None
           ) -> tuple[Figure, str, pd.DataFrame]:
    """The subset minimum's full-set objective ÷ the scratch minimum's (certified pairs), against Q (or the
    fraction K/N): one panel per objective (or, with ``titles``, per dataset: name → title), one colour per width,
    each seed a point, the seeds' mean a line; filled where question 1's rule said *close*."""
    ok = pairs[(pairs["arm"] == "subset") & pairs["both_certified"]]
    by = ["dataset"] if titles else ["loss", "l2"]
    panels = list(ok.groupby(by).groups)
    fig, axes = _panels(len(panels))
    colours = _colours(ok["width"].unique())
    for ax, key in zip(axes, panels, strict=True):
        key = key if isinstance(key, tuple) else (key,)
        chosen = np.logical_and.reduce([ok[c] == v for c, v in zip(by, key, strict=True)])
        part = ok[chosen]
        verdicts = close.set_index(["dataset", "loss", "l2", "width", "q"])["verdict"]
        for width, g in part.groupby("width"):
            c = colours[width]
            mean = g.groupby(x)["ratio"].mean()
            label = f"width {width}" if titles else f"P = {int(g['p'].iloc[0]):,}"  # P differs across datasets
            ax.plot(mean.index, mean.to_numpy(), color=c, lw=1.5, label=label)
            ax.scatter(g[x], g["ratio"], s=10, color=c, alpha=0.35, lw=0)
            for (dataset, loss, l2, q), r in g.groupby(["dataset", "loss", "l2", "q"]):
                filled = verdicts.get((dataset, loss, l2, width, q)) == Verdict.CLOSE
                ax.scatter(r[x].iloc[:1], [r["ratio"].mean()], s=36, color=c if filled else "white", edgecolor=c,
                           zorder=3)
        ax.axhline(RULES.close_loss, color="grey", ls="--", lw=1)
        if x == "q":
            _q_axis(ax, part[x])
        else:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(titles[key[0]] if titles else objective_text(*key), loc="left")
        ax.set_ylabel("full-set objective ÷ minimum")
    axes[-1].set_xlabel("Q = K·M/P" if x == "q" else "fraction of the full set K/N")
    _legend(fig, axes)
    caption = (f"The subset minima's full-set objective over the scratch minimum of the same seed, against "
               f"{'Q' if x == 'q' else 'the fraction K/N'}, one panel per {'dataset' if titles else 'objective'}: "
               f"{present.runs_text(_points(ok))}"
               f". Small points are seeds, lines their mean; a large filled point is an arm the rule calls close "
               f"(hollow: not close or inconclusive). Dashed: the margin, {RULES.close_loss:g}×.")
    columns = ["run_id", "seed", "arm", "dataset", "loss", "l2", "width", "p", "q", "k", "fraction", "ratio",
               "test_accuracy", "relative_gap"]
    return fig, caption, _points(ok)[columns]


def prediction(pairs: pd.DataFrame, rules: Rules = RULES) -> tuple[Figure, str, pd.DataFrame]:
    """Measured excess full-set objective of each certified subset minimum against the classical prediction
    tr(H⁻¹Σ)/(2K)·(1 − K/N): one colour per width, one panel per loss; the diagonal and the band [½, 2]."""
    ok = pairs[(pairs["arm"] == "subset") & pairs["both_certified"] & (pairs["excess"] > 0)]
    losses = sorted(ok["loss"].unique())
    fig, axes = _panels(len(losses), height=3.0)
    colours = _colours(ok["width"].unique())
    for ax, loss in zip(axes, losses, strict=True):
        part = ok[ok["loss"] == loss]
        for width, g in part.groupby("width"):
            ax.scatter(g["predicted"], g["excess"], s=12, color=colours[width], alpha=0.6, lw=0,
                       label=f"width {width}")
        lo = min(part["predicted"].min(), part["excess"].min())
        hi = max(part["predicted"].max(), part["excess"].max())
        line = np.geomspace(lo, hi, 10)
        ax.plot(line, line, color="black", lw=1)
        ax.fill_between(line, line / rules.band, line * rules.band, color="grey", alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title("squared error" if loss == "squared" else "cross-entropy", loc="left")
        ax.set_ylabel("measured excess")
    axes[-1].set_xlabel("predicted excess tr(H⁻¹Σ)/(2K)·(1 − K/N)")
    _legend(fig, axes)
    data = _points(ok)
    caption = (f"Measured against predicted excess of the subset minima's full-set objective, every dataset and λ: "
               f"{present.runs_text(data)}, one point each (certified pairs with a positive excess). The line is "
               f"equality, the band a factor of {rules.band:g} either way.")
    return fig, caption, data[["run_id", "seed", "arm", "dataset", "loss", "l2", "width", "p", "q", "k",
                               "excess", "predicted", "effective_dimension"]]


def cost(per_seed: pd.DataFrame, target: str) -> tuple[Figure, str, pd.DataFrame]:
    """FLOPs through the subset (its phase plus fine-tuning to ``target``) ÷ from scratch to the same target,
    against Q: one panel per objective, one colour per width; the lines at 1 and at a tenth."""
    ok = per_seed[per_seed["certified"] & (per_seed["target"] == target) & per_seed["flops_ratio"].notna()]
    objectives = list(ok.groupby(["loss", "l2"]).groups)
    fig, axes = _panels(max(1, len(objectives)))
    colours = _colours(ok["width"].unique())
    for ax, (loss, l2) in zip(axes, objectives, strict=True):
        part = ok[(ok["loss"] == loss) & (ok["l2"] == l2)]
        for width, g in part.groupby("width"):
            mean = np.exp(np.log(g["flops_ratio"]).groupby(g["q"]).mean())
            ax.plot(mean.index, mean.to_numpy(), color=colours[width], marker="o", ms=5,
                    label=f"P = {int(g['p'].iloc[0]):,}")
            ax.scatter(g["q"], g["flops_ratio"], s=10, color=colours[width], alpha=0.35, lw=0)
        for level, style in ((1.0, "-"), (RULES.tenth, "--")):
            ax.axhline(level, color="grey", ls=style, lw=1)
        _q_axis(ax, part["q"])
        ax.set_yscale("log")
        ax.set_title(objective_text(loss, l2), loc="left")
        ax.set_ylabel("FLOPs ÷ from scratch")
    axes[-1].set_xlabel("Q of the subset that was fine-tuned")
    if objectives:
        _legend(fig, axes)
    data = ok.assign(arm=[f"P = {p:,}, Q = {q:g}" for p, q in zip(ok["p"], ok["q"], strict=True)])
    caption = (f"What reaching {target} cost through the subset (its phase included) over from scratch, in FLOPs: "
               f"{present.runs_text(data)} that reached it; seeds as points, their geometric mean as the line. "
               "Solid: the same cost; dashed: a tenth.")
    return fig, caption, data[["run_id", "seed", "arm", "loss", "l2", "width", "p", "q", "target",
                               "flops_ratio", "examples_ratio", "seconds_ratio"]]
