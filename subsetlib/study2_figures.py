"""Study v2's figures: the two equal-compute figures, drawn once for the page that owns them and for the front
page's answer (the mini-batch arms of a design, ``equal_compute``; the second-order track, ``lbfgs_track``), the
conventional ladders so far (``ladder_progress``) and the subset minima against Q (``minima``). Each returns
(figure, caption, data) for ``present.show``; the caption's scale is the design's, so that its counts of seeds are
those of the data drawn.
"""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from subsetlib import present
from subsetlib.study2_analysis import closeness_points
from subsetlib.study2_report import WIDTH_COLOURS, width_text
from subsetlib.verdicts import RULES, Rules


def ladder_progress(points: pd.DataFrame, rules: Rules = RULES) -> tuple[Figure, str, pd.DataFrame]:
    """How much doubling each conventional budget still lowered the training loss (``ladders.ladder_points``): one
    point per seed and budget, one colour per dataset and width, the rule's line."""
    fig, ax = present.figure(1, height=3.0)
    for arm, line in points.groupby("arm", sort=False):
        ax.plot(line["budget"], line["drop_pct"], ls="none", marker="o", alpha=0.8, label=arm)
    rule = 100 * rules.converge_rel
    ax.axhline(rule, color="grey", ls="--", lw=1, label=f"rule: under {rule:g} % is converged")
    ax.set_ylim(min(0.0, points["drop_pct"].min()) - 2, max(rule, points["drop_pct"].max()) + 5)
    budgets = sorted(points["budget"].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [f"{b:g}" for b in budgets], minor=False)
    ax.minorticks_off()
    ax.set(xlabel="conventional budget B (epochs)", ylabel="training loss lower at 2B (%)")
    present.legend(ax, below=True)  # inside, the key covered the points of the longer budgets
    caption = ("How much doubling the conventional budget still lowered the training loss, one point per seed and "
               f"budget: {present.runs_text(points)}, the runs on B (each also compared with its run on 2B). Above the "
               "dashed line: not converged yet.")
    return fig, caption, points


def equal_compute(a: dict) -> tuple[Figure, str, pd.DataFrame]:
    """Full-set training loss and test accuracy against cumulative training FLOPs (subset phase included): the
    conventional runs on B and 2B and each equal-compute arm of the main width, mean and range over the seeds."""
    plan, title, pts = a["design"], a["title"], a["points"]
    fig, (ax_loss, ax_acc) = present.figure(ncols=2)
    for arm, curve in pts.groupby("arm", sort=False):
        fraction = curve["fraction"].iloc[0]
        colour = present.arm_color("conventional" if fraction >= 1 else "subset", fraction)
        style = "--" if fraction >= 1 and not arm.endswith(f"({plan.epochs} epochs)") else "-"
        stats = over_seeds(curve)
        x = stats.index / 1e12
        for ax, col, k in ((ax_loss, "train_loss", 1), (ax_acc, "test_acc", 100)):
            ax.plot(x, k * stats[(col, "mean")], color=colour, ls=style, lw=1.3, label=arm)
            ax.fill_between(x, k * stats[(col, "min")], k * stats[(col, "max")], color=colour, alpha=0.15, lw=0)
    ax_loss.set(xlabel="training compute (TFLOPs)", ylabel="full-set training loss")
    present.log_axis(ax_loss, "y")
    finals = 100 * pts.groupby("run_id")["test_acc"].last()
    ax_acc.set(xlabel="training compute (TFLOPs)", ylabel="test accuracy (%)",
               ylim=(finals.min() - 2, finals.max() + 0.5))
    present.legend(ax_loss)
    points = pts[["run_id", "seed", "arm", "phase", "flops", "train_loss", "test_acc"]]
    caption = (f"{title}, main width: full-set training loss (first panel) and test accuracy (second panel; below "
               f"it on a phone) against cumulative training FLOPs, mean and range over the seeds of "
               f"{present.runs_text(points)}. Black: conventional "
               f"(solid: {plan.epochs} epochs, dashed: longer runs of the ladder); colours: equal-compute arms by "
               f"subset fraction. Scale: {plan.scale_text(plan.model)}.")
    return fig, caption, points


def over_seeds(curve: pd.DataFrame, columns: tuple[str, ...] = ("train_loss", "test_acc")) -> pd.DataFrame:
    """Mean, min and max over the seeds at equal FLOPs: each seed's curve interpolated linearly onto every FLOPs value
    at which some seed was evaluated, within the range that every seed covers. Mini-batch seeds share their FLOPs
    values; L-BFGS seeds do not (their line searches differ), and a plain group-by would zigzag between them."""
    per_seed = [c.groupby("flops")[list(columns)].mean() for _, c in curve.groupby("seed")]
    low, high = max(s.index.min() for s in per_seed), min(s.index.max() for s in per_seed)
    grid = np.unique(np.concatenate([s.index.to_numpy() for s in per_seed]))
    grid = grid[(grid >= low) & (grid <= high)]
    stacked = pd.concat([pd.DataFrame({c: np.interp(grid, s.index, s[c]) for c in columns}, index=grid)
                         for s in per_seed])
    return stacked.groupby(level=0).agg(["mean", "min", "max"]).rename_axis("flops")


def lbfgs_track(a: dict) -> tuple[Figure, str, pd.DataFrame]:
    """The second-order track at equal FLOPs (every line-search evaluation counted): full-set L-BFGS, L-BFGS on a
    subset then on the full set, and Adam's runs, mean over the seeds."""
    pts = a["points"]
    fig, (ax_loss, ax_acc) = present.figure(ncols=2, height=4.2)
    adam_labelled = False
    for arm, curve in pts.groupby("arm", sort=False):
        protocol, fraction = curve["protocol"].iloc[0], curve["fraction"].iloc[0]
        # full-set training is black (L-BFGS solid, Adam dotted), as the conventional arm is on every page
        colour = present.arm_color("subset", fraction) if protocol == "lbfgs-subset-full" else present.CONVENTIONAL
        label = arm
        if protocol == "conventional":  # one legend entry for the ladder's runs
            label, adam_labelled = (None if adam_labelled else "Adam, each run of its ladder"), True
        mean = over_seeds(curve).xs("mean", axis=1, level=1)
        style = ":" if protocol == "conventional" else "-"
        ax_loss.plot(mean.index / 1e12, mean["train_loss"], color=colour, ls=style, lw=1.3)
        ax_acc.plot(mean.index / 1e12, 100 * mean["test_acc"], color=colour, ls=style, lw=1.3, label=label)
    ax_loss.set(xlabel="training compute (TFLOPs)", ylabel="full-set training loss")
    finals = 100 * pts.sort_values("flops").groupby("run_id")["test_acc"].last()
    ax_acc.set(xlabel="training compute (TFLOPs)", ylabel="test accuracy (%)",
               ylim=(finals.min() - 3, finals.max() + 0.5))
    for ax in (ax_loss, ax_acc):  # Adam's runs cost a small fraction of L-BFGS's: both on one log axis
        present.log_axis(ax, "x", subs=(1.0,))
    present.log_axis(ax_loss, "y")
    present.legend(ax_acc, below=True)
    points = pts[["run_id", "seed", "arm", "phase", "flops", "train_loss", "test_acc"]]
    d = a["design"]
    caption = (f"{d.title}, {d.model}: full-set training loss (first panel) and test accuracy (second panel; "
               f"below it on a phone) against training FLOPs, mean over the seeds of {present.runs_text(points)}"
               f" (each seed's curve interpolated to equal "
               f"FLOPs, drawn as far as every seed reached). Black solid: L-BFGS on the full set; colours: L-BFGS on a "
               f"subset first (by fraction); black dotted: Adam's runs (every run of its ladder). "
               f"Scale: {d.scale_text()}.")
    return fig, caption, points


def minima(a: dict, scale: str) -> tuple[Figure, str, pd.DataFrame]:
    """Question 1 against Q: each subset minimum's excess full-set loss and test-accuracy gap against the
    conventional minimum of the same width and seed; filled where both phases converged (their mean per Q joined
    by a line), hollow where one did not. One colour per width (``WIDTH_COLOURS``)."""
    plan, points = a["design"], closeness_points(a["close"])
    fig, (ax_loss, ax_acc) = present.figure(ncols=2)
    for (model, p), width in points.groupby(["model", "P"], sort=False):
        colour = WIDTH_COLOURS[model]
        ok, bad = width[width["both_converged"]], width[~width["both_converged"]]
        means = ok.groupby("Q")[["excess_nats", "acc_gap_points"]].mean()
        for ax, col in ((ax_loss, "excess_nats"), (ax_acc, "acc_gap_points")):
            ax.plot(means.index, means[col], color=colour, lw=1.2, label=width_text(model, p))
            ax.scatter(ok["Q"], ok[col], color=colour, s=14, zorder=3)
            ax.scatter(bad["Q"], bad[col], facecolor="white", edgecolor=colour, s=14, zorder=3)
    for ax in (ax_loss, ax_acc):
        present.log_axis(ax, "x")
        ax.axvline(1, color="grey", ls=":", lw=1)
        ax.axvline(plan.rules.q_high, color="grey", ls="--", lw=1)
        ax.axhline(0, color="black", lw=1)
        ax.set_xlabel("Q = K·M/P of the subset")
    ax_loss.set(ylabel="excess full-set loss (nats)")
    ax_acc.set(ylabel="accuracy gap (points)")
    present.legend(ax_loss, below=True)
    caption = (f"{a['title']}: the subset minimum against the conventional minimum of the same width and seed, "
               f"against Q; {present.runs_text(points)}. Filled: both phases converged; hollow: one did not. "
               f"Dotted: Q = 1; dashed: Q = {plan.rules.q_high:g}, from where the plan judges the claim. Colour: "
               f"width. Scale: {scale}.")
    return fig, caption, points
