"""How every page shows a figure, so that it is legible in the book's column at 1280 px and at 390 px.

Figures are drawn at the column's width and shown at their natural size as SVG with a real ``<figcaption>`` under
them (``show``), with a second rendering, panels stacked, for phone-width columns. Colours belong to arms, not to the
position of a line in one plot, so 1/16 has the same colour on every page (``arm_color``); legends run in the book's
order. Every figure carries its sources under it (``sources``); a plotted arm outside the axes, or a caption whose
counts disagree with the plotted runs, is caught before a reader sees it. Tables: ``tables``.
"""

import base64
import html
import io
import math
import os
import re

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from subsetlib.notebook import smoke
from subsetlib.registry import DATASETS, dataset_title  # noqa: F401 (pages call present.dataset_title)
from subsetlib.sources import EXPERIMENT_PAGES, FRONT_PAGE, check_data, drawing_cell, source_html
from subsetlib.tables import fraction_text  # noqa: F401 (pages call present.fraction_text)

COLUMN_INCHES = 6.8  # 653 px: shown unscaled in the 660-px figure column of a 1280-px window


NARROW_INCHES = 3.4  # the phone rendering: 326 px, the figure column of a 390-px screen, so it is not shrunk


NARROW_BELOW_PX = 720  # windows narrower than this (phones) get it: their column would shrink the wide one


DPI = 100


FONT_PT = 11  # the SVG is shown at its natural size, so this is the size a reader sees (14.7 px)


SMALL_PT = 10  # tick labels and legends: 13.3 px, 83 % of the book's 16-px body text


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
        "font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT, "xtick.labelsize": SMALL_PT,
        "ytick.labelsize": SMALL_PT, "legend.fontsize": SMALL_PT, "legend.title_fontsize": SMALL_PT,
        "figure.titlesize": FONT_PT,
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


def log_axis(ax: Axes, which: str = "x", subs: tuple[float, ...] = (1.0, 2.0, 5.0)) -> None:
    """Log scale with plain tick labels (0.5, 1, 2, 5) instead of 1.1×10⁰-style labels on small ranges; ``subs=(1,)``
    labels only the powers of ten, for axes that span several."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


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


def show(fig: Figure, caption: str, data: pd.DataFrame | None = None, front_page: bool = False) -> str | None:
    """Display ``fig`` as an SVG at its natural size with ``caption`` under it as a ``<figcaption>``, then close it.

    The one way notebooks show a figure: the caption can say what the data are (scale, seeds), which a static
    cell-metadata caption cannot, and it is text a reader can select and search, not pixels in the image.
    ``data``, the tidy table of the plotted points (one row per point, with ``run_id``, ``seed`` and ``arm``), becomes
    the figure's CSV and its list of runs, from this same call, so the two cannot disagree.

    A plotted line or point set that lies wholly outside the axes' limits, or a caption whose count of seeds or runs
    disagrees with ``data``, raises ValueError in smoke and test runs; in a full run the caption says so instead, so
    that an hours-long grid still renders its page.

    With ``front_page``, also returns the same figure as HTML whose links work from the book's front page, for the
    claims page to write into the front page's generated answer (an HTML block in Markdown).
    """
    from IPython.display import HTML, display

    problems = hidden_artists(fig) + caption_problems(caption, data)
    if problems and (smoke() or "PYTEST_CURRENT_TEST" in os.environ):
        import matplotlib.pyplot as plt

        plt.close(fig)
        raise ValueError("figure defect: " + "; ".join(problems))
    if problems:
        caption += " [Check: " + "; ".join(problems) + ".]"
    source = drawing_cell()
    if data is not None:
        check_data(data)
    rendered = _render(fig)
    display(HTML(_figure_markup(rendered, caption, data, source, EXPERIMENT_PAGES)))
    return _figure_markup(rendered, caption, data, source, FRONT_PAGE) if front_page else None


def _text_px(fig: Figure) -> float:
    """The smallest text in ``fig``, in CSS pixels at the figure's natural size."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return round(min(sizes, default=FONT_PT) * 4 / 3, 1)


def _svg(fig: Figure) -> tuple[str, int, float]:
    """(base64 SVG, natural width in CSS pixels, smallest text in CSS pixels) of ``fig`` as it is now."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return base64.b64encode(buffer.getvalue().encode()).decode(), round(fig.get_figwidth() * 96), _text_px(fig)


def _narrow(fig: Figure) -> None:
    """Re-lay ``fig`` for a phone's column: panels of one row stacked in one column, ``NARROW_INCHES`` wide, every
    panel keeping its tick labels; the text keeps its size in points, so it is larger relative to the figure."""
    panels = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    width, height = fig.get_size_inches()
    rows = {ax.get_subplotspec().rowspan.start for ax in panels}
    if len(panels) > 1 and len(rows) == 1:
        grid = fig.add_gridspec(len(panels), 1)
        for i, ax in enumerate(sorted(panels, key=lambda a: a.get_subplotspec().colspan.start)):
            ax.set_subplotspec(grid[i])
            ax.tick_params(labelleft=True, labelbottom=True)
        height *= len(panels)  # each panel keeps its height: a long axis label still fits beside it
    for key in list(fig.legends):  # a key under the panels (``legend(below=True)``): one column fits the phone
        key.remove()
        title = key.get_title().get_text()
        fig.legend(key.legend_handles, [text.get_text() for text in key.get_texts()], loc="outside lower center",
                   title=title or None)
    fig.set_size_inches(NARROW_INCHES, height)


def figure_html(fig: Figure, caption: str, data: pd.DataFrame | None = None,
                source: tuple[str, int] | None = None) -> str:
    """The ``<figure>`` that ``show`` displays (separate so that it can be tested without IPython): the column-wide
    SVG, the narrow SVG for phone-width columns, the caption and, under it, the source line (``source_html``).

    The ``<img>`` carries the smallest text size of each rendering (``data-text-px``, ``data-narrow-text-px``) so that
    the book's browser check can measure the text a reader sees at any width."""
    if data is not None:
        check_data(data)
    return _figure_markup(_render(fig), caption, data, source, EXPERIMENT_PAGES)


def _render(fig: Figure) -> tuple[str, int, float, str, float]:
    """(wide SVG, its width in CSS pixels, its smallest text in pixels, narrow SVG, its smallest text); closes
    ``fig``."""
    import matplotlib.pyplot as plt

    wide, width, wide_px = _svg(fig)
    _narrow(fig)
    narrow, _, narrow_px = _svg(fig)
    plt.close(fig)
    return wide, width, wide_px, narrow, narrow_px


def _figure_markup(rendered: tuple[str, int, float, str, float], caption: str, data: pd.DataFrame | None,
                   source: tuple[str, int] | None, page: str) -> str:
    wide, width, wide_px, narrow, narrow_px = rendered
    text = html.escape(caption)
    return (f'<figure class="subsetlib-figure" style="margin:0 0 1em 0;max-width:100%"><picture>'
            f'<source media="(max-width: {NARROW_BELOW_PX}px)" srcset="data:image/svg+xml;base64,{narrow}">'
            f'<img src="data:image/svg+xml;base64,{wide}" alt="{text}" width="{width}" data-text-px="{wide_px}" '
            f'data-narrow-text-px="{narrow_px}" style="max-width:100%;height:auto"></picture>'
            f'<figcaption style="margin-top:0.3em">{text}{source_html(data, source, "figure", page)}</figcaption>'
            f'</figure>')


MIN_PANEL_SHARE = 0.45  # a panel narrower than this share of its figure leaves its data a sliver (long tick labels)


def wrap_label(text: str, width: int = 14) -> str:
    """A long category label on lines of at most about ``width`` characters, broken after " + " or at spaces
    ("fp32 + channels-last + torch.compile" on three lines), so that a bar chart's labels leave its bars room."""
    words = re.split(r"(?<=\+) |(?<=[^+]) (?!\+)", text)
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def count_axis(ax: Axes, which: str = "x", nbins: int = 4) -> None:
    """Plain counts on an axis: at most ``nbins`` ticks with thousands separators (2,500, not 2500), so that tick
    labels never run into one another in the phone rendering."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(ticker.MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))


def layout_problems(fig: Figure) -> list[str]:
    """What a reader would see cut or crowded in ``fig`` as it is now laid out: text (labels, ticks, legend, titles)
    past the figure's edge, tick labels of one axis running into each other, a panel narrower than
    ``MIN_PANEL_SHARE`` of the figure. Check the column-wide figure and its phone rendering (``_narrow``) alike."""
    from matplotlib.text import Text

    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    edge = fig.bbox
    problems = []

    def drawn_ticks(axis) -> list[Text]:  # a locator's ticks past the axis's limits are not drawn
        low, high = sorted(axis.get_view_interval())
        span = (high - low) * 1e-9
        return [t.label1 for t in axis.get_major_ticks()
                if t.label1.get_visible() and t.label1.get_text().strip() and low - span <= t.get_loc() <= high + span]

    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    texts = [t for t in fig.findobj(Text) if id(t) not in ticks]
    texts += [t for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for t in drawn_ticks(axis)]
    for text in texts:
        if not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < edge.x0 - 1 or box.x1 > edge.x1 + 1 or box.y0 < edge.y0 - 1 or box.y1 > edge.y1 + 1:
            problems.append(f"the text {text.get_text()!r} runs past the figure's edge")
    for number, ax in enumerate(fig.axes, start=1):
        if ax.get_subplotspec() is None:
            continue
        width = ax.get_position().width
        if width < MIN_PANEL_SHARE:
            problems.append(f"panel {number} is {width:.0%} of the figure's width (at least {MIN_PANEL_SHARE:.0%})")
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [(t.get_window_extent(renderer), t.get_text()) for t in drawn_ticks(axis)]  # in the axis's order
            for (a, name_a), (b, name_b) in zip(boxes, boxes[1:], strict=False):
                if a.overlaps(b) and min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1:
                    problems.append(f"the tick labels {name_a!r} and {name_b!r} of panel {number} overlap")
    return problems


def hidden_artists(fig: Figure) -> list[str]:
    """Lines and point sets with data none of which lies inside their axes' limits: an arm the reader is told about
    (in a legend or caption) but cannot see, e.g. after a y-range chosen for other arms."""
    from matplotlib.collections import PathCollection

    hidden = []
    for number, ax in enumerate(fig.axes, start=1):
        ax.get_xlim(), ax.get_ylim()  # settle autoscaling before the transforms are read
        to_axes = ax.transAxes.inverted()
        for artist in [*ax.lines, *(c for c in ax.collections if isinstance(c, PathCollection))]:
            if isinstance(artist, PathCollection):
                points, transform = artist.get_offsets(), artist.get_offset_transform()
            else:
                points, transform = artist.get_xydata(), artist.get_transform()
            points = np.asarray(points, dtype=float).reshape(-1, 2)
            points = points[np.isfinite(points).all(axis=1)]
            if not artist.get_visible() or len(points) == 0:
                continue
            where = to_axes.transform(transform.transform(points))
            inside = ((where >= -1e-6) & (where <= 1 + 1e-6)).all(axis=1)
            if not inside.any():
                label = artist.get_label()
                name = label if label and not label.startswith("_") else f"a line ({_colour(artist)})"
                hidden.append(f"{name} lies outside the axes' limits of panel {number}")
    return hidden


def _colour(artist) -> str:
    colour = artist.get_color() if hasattr(artist, "get_color") else artist.get_facecolor()
    colour = np.asarray(colour, dtype=float).reshape(-1)[:4] if not isinstance(colour, str) else colour
    return colour if isinstance(colour, str) else mpl.colors.to_hex(colour)


def runs_text(data: pd.DataFrame) -> str:
    """'35 runs (7 arms × 5 seeds)' from the plotted data: the words a caption should use for what it shows, so
    that they are counted, not typed. Arms with different numbers of seeds say so ('… 1 to 5 seeds per arm')."""
    check_data(data)
    runs = data.drop_duplicates("run_id")
    per_arm = runs.groupby("arm")["seed"].nunique()
    arms = len(per_arm)
    seeds = (f"{per_arm.iloc[0]} seed{'s' if per_arm.iloc[0] != 1 else ''}" if per_arm.nunique() == 1
             else f"{per_arm.min()} to {per_arm.max()} seeds per arm")
    return f"{len(runs)} run{'s' if len(runs) != 1 else ''} ({arms} arm{'s' if arms != 1 else ''} × {seeds})"


_COUNTS = re.compile(r"\b(\d+)\s+(seeds?|runs?)\b")


def caption_problems(caption: str, data: pd.DataFrame | None) -> list[str]:
    """Counts of seeds or runs in ``caption`` that ``data`` contradicts ('5 seeds' over the runs of 3 seeds). A
    count of seeds must match the number of seeds of some arm; a count of runs the number of runs."""
    if data is None:
        return []
    check_data(data)
    runs = data.drop_duplicates("run_id")
    seeds_per_arm = set(runs.groupby("arm")["seed"].nunique()) | {runs["seed"].nunique()}
    problems = []
    for number, what in _COUNTS.findall(caption):
        if what.startswith("seed") and int(number) not in seeds_per_arm:
            problems.append(f"the caption says {number} {what}, the data have {sorted(seeds_per_arm)}")
        if what.startswith("run") and int(number) != len(runs):
            problems.append(f"the caption says {number} {what}, the data have {len(runs)}")
    return problems


def legend_fractions(ax: Axes, fractions, **legend_kw) -> None:
    """The colour key of subset fractions, largest first, in their fixed colours: for plots whose colour is the
    subset fraction (lines of many seeds without labels, or points)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=arm_color("subset", f), marker="o", label=fraction_text(f))
               for f in sorted(set(fractions), reverse=True)]
    ax.legend(handles=handles, **{"ncol": 4, "title": "subset fraction", **legend_kw})


def _label_key(label: str) -> tuple[int, float]:
    """Sort key of a legend label: conventional first, then labels naming a fraction (1/2, 1/16) from the largest."""
    if label.startswith("conventional"):
        return (0, 0.0)
    found = re.search(r"\b1/(\d+)\b", label)
    return (1, -1 / int(found.group(1))) if found else (2, 0.0)


def legend(ax: Axes, below: bool = False, **legend_kw) -> None:
    """``ax.legend`` with its entries in the book's order (conventional, then subsets from the largest), whatever
    order the lines were drawn in; ``below``: under the panels, in two columns, for keys too long to sit on a panel."""
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: (_label_key(labels[i]), i))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    if below:
        ax.figure.legend(handles, labels, **{"loc": "outside lower center", "ncol": 2, **legend_kw})
    else:
        ax.legend(handles, labels, **legend_kw)
