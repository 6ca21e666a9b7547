"""How every page shows figures and tables, so that they are legible in the book's column at 1280 px.

Figures are drawn at the column's width and shown at their natural size as SVG with a real ``<figcaption>`` under
them (``show``); tables keep only the columns a reader needs, under human headers with units, with integers as
integers and "not reached" spelled out (``table``). Colours belong to arms, not to the position of a line in one
plot, so 1/16 has the same colour on every page (``arm_color``).
"""

import base64
import html
import io
import math
from collections.abc import Mapping

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from subsetlib.registry import DATASETS

COLUMN_INCHES = 7.0
DPI = 100
FONT_PT = 10  # the SVG is shown at its natural size, so this is the size a reader sees
MAX_COLUMNS = 2

CONVENTIONAL = "#000000"
OTHER = "#8c8c8c"
LBFGS = "#6a3d9a"
_SUBSET_MAP = "viridis"
_GROWING_MAP = "Oranges"
_LOG2_RANGE = (-9.0, -1.0)  # fractions 1/512 ... 1/2
_ORDER = {"conventional": 0, "subset": 1, "lbfgs-subset": 2, "growing": 3}


def style() -> None:
    """Set matplotlib's defaults once for every figure in the book (idempotent)."""
    mpl.rcParams.update({
        "figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (COLUMN_INCHES, 3.2),
        "font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT, "xtick.labelsize": 9,
        "ytick.labelsize": 9, "legend.fontsize": 9, "legend.title_fontsize": 9, "figure.titlesize": FONT_PT,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "axes.formatter.min_exponent": 4, "axes.formatter.useoffset": False,
        "svg.fonttype": "path", "svg.hashsalt": "subsetlib",  # stable ids, so a re-rendered page only differs in data
        "figure.constrained_layout.use": True,
    })


def figure(ncols: int = 1, height: float = 3.2, **subplots_kw) -> tuple[Figure, Axes | np.ndarray]:
    """A figure as wide as the book's column with at most two panels side by side (more would shrink the text)."""
    if not 1 <= ncols <= MAX_COLUMNS:
        raise ValueError(f"at most {MAX_COLUMNS} panels side by side fit the column (got ncols={ncols}); "
                         "use more rows or more figures")
    import matplotlib.pyplot as plt

    style()
    return plt.subplots(1, ncols, figsize=(COLUMN_INCHES, height), **subplots_kw)


def log_axis(ax: Axes, which: str = "x") -> None:
    """Log scale with plain tick labels (0.5, 1, 2, 5) instead of 1.1×10⁰-style labels on small ranges."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def fraction_text(fraction: float) -> str:
    """1/16 rather than 0.0625: the subset sizes of the paper are powers of two."""
    if fraction >= 1:
        return "full set"
    inverse = 1 / fraction
    return f"1/{round(inverse)}" if math.isclose(inverse, round(inverse), rel_tol=1e-6) else f"{fraction:.3g}"


def dataset_title(name: str) -> str:
    """The dataset's name as it is written in prose and titles (MNIST, not mnist); the registry's title."""
    return DATASETS[name].title if name in DATASETS else name


def dataset_key(name: str) -> tuple[int, str]:
    """Sort key putting datasets in the book's order, the registry's (MNIST before Fashion-MNIST before CIFAR)."""
    order = list(DATASETS)
    return (order.index(name) if name in order else len(order), name)


def arm_color(protocol: str, fraction: float | None = None, growth: float | None = None) -> str:
    """One colour per arm on every page: conventional black, subsets by log2(fraction) on a fixed colormap
    (1/512 ... 1/2), growing schedules in oranges (darker for faster pacing ``growth``, else by fraction), L-BFGS
    subsets purple, anything else grey."""
    if protocol == "conventional":
        return CONVENTIONAL
    if protocol == "lbfgs-subset":
        return LBFGS
    if protocol not in ("subset", "growing"):
        return OTHER
    lo, hi = _LOG2_RANGE
    where = 0.5 if fraction is None or not fraction > 0 else (min(max(math.log2(fraction), lo), hi) - lo) / (hi - lo)
    if protocol == "subset":
        return mpl.colors.to_hex(mpl.colormaps[_SUBSET_MAP](0.05 + 0.8 * where))
    if growth is not None and growth > 1:
        where = 1 - min(math.log2(growth), 4.0) / 4  # pacing 2 ... 16
    return mpl.colors.to_hex(mpl.colormaps[_GROWING_MAP](0.9 - 0.45 * where))


def arm_key(protocol: str, fraction: float | None = None) -> tuple[int, float]:
    """Sort key for arms: conventional first, then each protocol from the largest subset to the smallest."""
    return (_ORDER.get(protocol, len(_ORDER)), -(0.0 if pd.isna(fraction) else fraction))


def palette(runs: pd.DataFrame, label: str = "arm") -> dict[str, str]:
    """``{arm label: colour}`` for seaborn's ``palette=``/``hue_order=``, from runs with ``protocol`` and
    ``subset_fraction`` columns; ordered by ``arm_key``."""
    arms = runs.drop_duplicates(label)
    nan = pd.Series(np.nan, index=arms.index)
    fractions = arms["subset_fraction"] if "subset_fraction" in arms else nan
    growths = arms["growth"] if "growth" in arms else nan
    keyed = sorted(zip(arms[label], arms["protocol"], fractions, growths, strict=True),
                   key=lambda a: (*arm_key(a[1], a[2]), 0 if pd.isna(a[3]) else a[3], a[0]))
    return {name: arm_color(protocol, fraction, None if pd.isna(growth) else growth)
            for name, protocol, fraction, growth in keyed}


def show(fig: Figure, caption: str) -> None:
    """Display ``fig`` as an SVG at its natural size with ``caption`` under it as a ``<figcaption>``, then close it.

    The one way notebooks show a figure: the caption can say what the data are (scale, seeds), which a static
    cell-metadata caption cannot, and it is text a reader can select and search, not pixels in the image.
    """
    from IPython.display import HTML, display

    display(HTML(figure_html(fig, caption)))


def figure_html(fig: Figure, caption: str) -> str:
    """The ``<figure>`` that ``show`` displays (separate so that it can be tested without IPython)."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = base64.b64encode(buffer.getvalue().encode()).decode()
    width = round(fig.get_figwidth() * 72 * 4 / 3)  # SVG points to CSS pixels
    text = html.escape(caption)
    return (f'<figure class="subsetlib-figure" style="margin:0 0 1em 0;max-width:100%">'
            f'<img src="data:image/svg+xml;base64,{svg}" alt="{text}" width="{width}" '
            f'style="max-width:100%;height:auto">'
            f'<figcaption style="font-size:0.9em;margin-top:0.3em">{text}</figcaption></figure>')


def mean_std(mean: float, std: float, digits: int) -> str:
    """'98.9 ± 0.1'; a std that does not exist (one seed) is '–', a missing mean is ''."""
    if mean is None or pd.isna(mean):
        return ""
    spread = "–" if std is None or pd.isna(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread}"


def mean_std_column(means: pd.Series, stds: pd.Series, digits: int, scale: float = 1.0, missing: str = ""
                    ) -> list[str]:
    """``mean_std`` row by row, for a table column: values times ``scale`` (100 for percent), ``missing`` where
    there is no mean (e.g. "not reached")."""
    return [mean_std(scale * m, scale * s, digits) if pd.notna(m) else missing
            for m, s in zip(means, stds, strict=True)]


def _significant(value: float, figures: int = 3) -> str:
    if value == 0:
        return "0"
    decimals = max(0, figures - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _whole(values: pd.Series) -> bool:
    numbers = pd.to_numeric(values.dropna(), errors="coerce")
    if values.dtype == bool or numbers.isna().any() or numbers.empty:
        return False
    return bool(pd.api.types.is_integer_dtype(values) or (numbers == numbers.round()).all())


def format_column(values: pd.Series, digits: int | None = None, missing: str = "not reached") -> list[str]:
    """Text for one column: a column of whole numbers as integers with thousands separators (even when ``digits`` is
    given: 2 and 16, not 2.000 and 16.000), other floats to ``digits`` decimals (default three significant figures),
    NaN as ``missing``, text and booleans as they are."""
    numeric = pd.api.types.is_numeric_dtype(values) and values.dtype != bool
    whole = numeric and _whole(values)  # a column of whole numbers prints as integers, whatever `digits` says
    out = []
    for v in values:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            out.append(missing)
        elif not numeric:
            out.append(str(v))
        elif whole:
            out.append(f"{int(round(v)):,}")
        elif digits is not None:
            out.append(f"{v:,.{digits}f}")
        else:
            out.append(_significant(float(v)))
    return out


TABLE_STYLES = [
    {"selector": "", "props": "font-size:0.85em;border-collapse:collapse;max-width:100%;margin-bottom:1em"},
    {"selector": "th", "props": "white-space:normal;vertical-align:bottom;text-align:right;padding:2px 6px;"
                                "border-bottom:1px solid #999;font-weight:600"},
    {"selector": "td", "props": "white-space:nowrap;text-align:right;padding:2px 6px"},
    {"selector": "td:first-child, th:first-child", "props": "text-align:left;white-space:normal"},
]


def table(df: pd.DataFrame, columns: Mapping[str, str], *, digits: Mapping[str, int] | None = None,
          missing: str | Mapping[str, str] = "not reached", index: bool = False):
    """A table for readers: only ``columns`` (code name → header with unit), in that order, formatted by
    ``format_column``; ``missing`` may be one text or one per column (e.g. ``{"acc_sd": "–"}`` for one seed).

    Returns a pandas Styler with its CSS inline, so that it looks the same in Jupyter and in the book.
    """
    unknown = [c for c in columns if c not in df.columns]
    if unknown:
        raise KeyError(f"no column(s) {unknown} in the table (it has {list(df.columns)})")
    digits = dict(digits or {})
    shown = pd.DataFrame(index=df.index)
    for code, header in columns.items():
        gap = missing.get(code, "not reached") if isinstance(missing, Mapping) else missing
        shown[header] = format_column(df[code], digits.get(code), gap)
    styler = shown.style.set_table_styles(TABLE_STYLES).set_table_attributes('class="subsetlib-table"')
    return styler if index else styler.hide(axis="index")


def legend_fractions(ax: Axes, fractions, **legend_kw) -> None:
    """A legend of subset fractions in their fixed colours, for plots that draw many seeds without labels."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=arm_color("subset", f), label=f"subset {fraction_text(f)}") for f in fractions]
    ax.legend(handles=handles, **{"ncol": 3, **legend_kw})
