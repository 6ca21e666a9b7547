"""How the book shows things: column-width figures with captions under them, one colour per arm on every page, and
tables for readers (human headers, integers as integers, "not reached" spelled out)."""

import math

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML, display

COLUMN_INCHES = 7.0
DPI = 100
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                  "cifar10-jpeg": "CIFAR-10 as JPEG", "synthetic": "synthetic data"}


def dataset_title(name: str) -> str:
    return DATASET_TITLES.get(name, name)


def style() -> None:
    mpl.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 10, "axes.titlesize": 10,
                         "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9,
                         "axes.grid": True, "grid.alpha": 0.3})


def figure(ncols: int = 1, height: float = 3.2, **subplots_kw):
    """A figure as wide as the book's column, at most two panels side by side."""
    if not 1 <= ncols <= 2:
        raise ValueError(f"at most two panels side by side (got {ncols})")
    style()
    return plt.subplots(1, ncols, figsize=(COLUMN_INCHES, height), **subplots_kw)


def show(fig, caption: str) -> None:
    """Show the figure, then its caption under it."""
    display(fig)
    plt.close(fig)
    display(HTML(f'<p class="caption"><em>{caption}</em></p>'))


def fraction_text(f: float) -> str:
    if f >= 1:
        return "full set"
    inverse = 1 / f
    return f"1/{round(inverse)}" if abs(inverse - round(inverse)) < 1e-6 else f"{f:.3g}"


def arm_color(protocol: str, fraction: float | None = None) -> str:
    """One colour per arm on every page: conventional black; subsets by log2 of their fraction (1/512 … 1/2)."""
    if protocol == "conventional":
        return "#000000"
    if protocol == "subset" and fraction is not None and fraction < 1:
        position = (np.log2(fraction) + 9) / 8  # 1/512 → 0, 1/2 → 1
        return mpl.colors.to_hex(mpl.colormaps["viridis"](float(np.clip(position, 0, 1)) * 0.9))
    return {"growing": "#e6550d", "lbfgs-subset": "#756bb1"}.get(protocol, "#7f7f7f")


def legend_fractions(ax, fractions) -> None:
    handles = [mpl.lines.Line2D([], [], color=arm_color("subset", f), label=f"subset {fraction_text(f)}")
               for f in fractions]
    ax.legend(handles=handles, ncol=3, fontsize=9)


def mean_std(mean: float, std: float, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "not reached"
    return f"{mean:.{digits}f}" + ("" if std is None or math.isnan(std) else f" ± {std:.{digits}f}")


def table(df: pd.DataFrame, columns: dict[str, str], *, digits: dict[str, int] | None = None,
          missing: str = "not reached"):
    """Only ``columns`` (code name → header), integers as integers, NaN as ``missing``."""
    digits = digits or {}
    out = df[list(columns)].copy()
    for col in out:
        values = out[col]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            out[col] = values.fillna(missing).astype(str)
        elif col not in digits and np.all(np.mod(values.dropna().astype(float), 1) == 0):
            out[col] = [missing if pd.isna(v) else f"{int(v):,}" for v in values]
        else:
            d = digits.get(col, 3)
            out[col] = [missing if pd.isna(v) else f"{v:.{d}f}" for v in values]
    display(out.rename(columns=columns).style.hide(axis="index"))
