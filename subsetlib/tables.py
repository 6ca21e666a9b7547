"""Tables for readers: only the columns a reader needs, under human headers with units, integers as integers,
sensible rounding, "not reached" spelled out, numbers that never break inside a value, text that wraps, and a
table that scrolls inside the column instead of widening the page; its sources and CSV under it (``sources``).
A "±" without a spread is refused. No torch.
"""

import html
import math
import numbers
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from subsetlib.sources import drawing_cell, source_html


def mean_std(mean: float, std: float, digits: int) -> str:
    """'98.9 ± 0.1' with non-breaking spaces (a table cell never wraps inside it); one seed, whose spread does not
    exist, is the value alone with 'n = 1'; a missing mean is ''."""
    if mean is None or pd.isna(mean):
        return ""
    if std is None or pd.isna(std):
        return f"{mean:.{digits}f}\u00a0(n\u00a0=\u00a01)"
    return f"{mean:.{digits}f}\u00a0±\u00a0{std:.{digits}f}"


def mean_std_column(means: pd.Series, stds: pd.Series, digits: int, scale: float = 1.0, missing: str = ""
                    ) -> list[str]:
    """``mean_std`` row by row, for a table column: values times ``scale`` (100 for percent), ``missing`` where
    there is no mean (e.g. "not reached")."""
    return [mean_std(scale * m, scale * s, digits) if pd.notna(m) else missing
            for m, s in zip(means, stds, strict=True)]


def fraction_text(fraction: float) -> str:
    """1/16 rather than 0.0625: the subset sizes of the paper are powers of two."""
    if fraction >= 1:
        return "full set"
    inverse = 1 / fraction
    return f"1/{round(inverse)}" if math.isclose(inverse, round(inverse), rel_tol=1e-6) else f"{fraction:.3g}"


def significant(value: float, figures: int = 3) -> str:
    """``value`` to ``figures`` significant figures, never in e-notation (3,260, not 3.26e+03; 0.000314)."""
    if value == 0:
        return "0"
    def decimals(x: float) -> int:
        return figures - 1 - math.floor(math.log10(abs(x)))

    rounded = round(value, decimals(value))  # 0.9996 rounds to 1.00, whose figures start one place earlier
    return f"{rounded:,.{max(0, decimals(rounded))}f}"


def _numbers(values: pd.Series) -> bool:
    """Whether a column holds numbers: a numeric dtype, or objects that are all real numbers (a pivot's leftovers)."""
    if values.dtype == bool:
        return False
    if pd.api.types.is_numeric_dtype(values):
        return True
    present_ = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return bool(present_) and all(isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in present_)


def _whole(values: pd.Series) -> bool:
    numbers_ = pd.to_numeric(values.dropna(), errors="coerce")
    if values.dtype == bool or numbers_.isna().any() or numbers_.empty:
        return False
    return bool(pd.api.types.is_integer_dtype(values) or (numbers_ == numbers_.round()).all())


def format_column(values: pd.Series, digits: int | None = None, missing: str = "not reached") -> list[str]:
    """Text for one column: a column of whole numbers as integers with thousands separators (even when ``digits`` is
    given: 2 and 16, not 2.000 and 16.000; and 315, not 315.0), other floats to ``digits`` decimals (default three
    significant figures), NaN as ``missing``, text and booleans as they are."""
    numeric = _numbers(values)
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
            out.append(significant(float(v)))
    return out


_NUMBER = r"[−+-]?\d[\d,]*(?:\.\d+)?(?:\s?[%×])?"


NUMBER_TEXT = re.compile(rf"{_NUMBER}(?:\s±\s{_NUMBER})?(?:\s\(n\s=\s\d+\))?")


NO_SPREAD = re.compile(r"±\s*(?:–|-|nan)?\s*(?:$|\()")


def is_number_text(text: str) -> bool:
    """Whether a cell's text is a number ('1,500', '98.9 ± 0.1', '3.9×', '1.02 (n = 1)'): right-aligned and never
    broken across lines."""
    return bool(NUMBER_TEXT.fullmatch(text.strip()))


TABLE_STYLES = [
    {"selector": "", "props": "font-size:0.85em;border-collapse:collapse;margin-bottom:0"},
    {"selector": "th", "props": "white-space:normal;vertical-align:bottom;text-align:right;padding:2px 6px;"
                                "border-bottom:1px solid #999;font-weight:600"},
    {"selector": "td", "props": "white-space:nowrap;text-align:right;padding:2px 6px"},
]


TEXT_COLUMN = "text-align:left;white-space:normal;min-width:6em"
# a text column whose cells are all this short ("1/4", "0 of 5", "not converged") keeps its natural width, unwrapped
SHORT_TEXT = 14
SHORT_TEXT_COLUMN = "text-align:left;white-space:nowrap"


COLUMN_PX = 653  # the book's content column at a 1280-px window (present.COLUMN_INCHES)


CHAR_PX = 0.55 * 0.85 * 16  # an average character of the tables' 0.85-em text (16-px body), digits included


CELL_PADDING_PX = 12  # TABLE_STYLES' 6 px each side


def width_px(styler: Styler) -> float:
    """About how wide a table from ``table`` must be, in CSS pixels: per column its longest number (never broken),
    its longest word of text or header (both wrap between words; a long text column keeps at least 6 em), and
    padding. A table wider than ``COLUMN_PX`` scrolls inside the column, hiding its right-hand columns from a reader
    at 1280 px: split it instead."""
    total = 0.0
    for header in styler.data.columns:
        cells = [str(c) for c in styler.data[header]]
        words = [w for c in [str(header), *cells] for w in re.split(r"[ \n]", c) if w]
        numbers_ = [c for c in cells if is_number_text(c)]
        longest = max([len(w) for w in words] + [len(c) for c in numbers_] + [0])
        text = [c for c in cells if not is_number_text(c)]
        floor = 0 if all(len(c) <= SHORT_TEXT for c in text) else 6 * 0.85 * 16 / CHAR_PX
        if text and all(len(c) <= SHORT_TEXT for c in text):
            longest = max(longest, max(len(c) for c in text))  # short text stays on one line
        total += max(longest, floor) * CHAR_PX + CELL_PADDING_PX
    return total


class Table(Styler):
    """A pandas Styler that renders inside a horizontally scrolling box (a wide table scrolls within the column,
    never cut off) with its sources under it (``source_html``: the CSV of its columns, the runs), and, given anchor
    ids, each body row with its id so that other pages can link to a row."""

    csv: pd.DataFrame | None = None
    source: tuple[str, int] | None = None
    row_ids: list[str] | None = None

    def to_html(self, *args, **kwargs):
        text = super().to_html(*args, **kwargs)
        if text is None:  # written to a buffer: as pandas does
            return None
        if self.row_ids is not None:
            head, tbody, body = text.partition("<tbody>")
            ids = iter(self.row_ids)
            text = head + tbody + re.sub(r"<tr>", lambda _: f'<tr id="{html.escape(next(ids))}">', body)
        return (f'<div class="subsetlib-table-box" style="max-width:100%;overflow-x:auto">{text}</div>'
                + source_html(self.csv, self.source, "table"))


NUMBER_TEXT = re.compile(r"[−+-]?\d[\d,]*(\.\d+)?\s?[%×]?(\s±\s[\d,.]+)?(\s\(n\s=\s\d+\))?")


def table(df: pd.DataFrame, columns: Mapping[str, str], *, digits: Mapping[str, int] | None = None,
          missing: str | Mapping[str, str] = "not reached", index: bool = False, anchors: str | None = None
          ) -> Table:
    """A table for readers: only ``columns`` (code name → header with unit), in that order, formatted by
    ``format_column``; ``missing`` may be one text or one per column. Number columns are right-aligned and never
    wrap inside a value, text columns are left-aligned and wrap. ``anchors`` names a column whose values become the
    rows' ids (``run-<value>``; the provenance page's rows, which figures link to).

    Returns a pandas Styler with its CSS inline, so that it looks the same in Jupyter and in the book, with the
    notebook cell and ``df`` (every column, unformatted) as a CSV link under it. A "±" without a spread is refused:
    one seed prints as the value alone with "n = 1" (``mean_std``).
    """
    unknown = [c for c in [*columns, *([anchors] if anchors else [])] if c not in df.columns]
    if unknown:
        raise KeyError(f"no column(s) {unknown} in the table (it has {list(df.columns)})")
    digits = dict(digits or {})
    shown = pd.DataFrame(index=df.index)
    styles = list(TABLE_STYLES)
    for i, (code, header) in enumerate(columns.items()):
        gap = missing.get(code, "not reached") if isinstance(missing, Mapping) else missing
        # a number written as text ('10.5× (n = 1)') never breaks inside: its spaces do not break
        cells = [c.replace(" ", "\u00a0") if NUMBER_TEXT.fullmatch(c) else c
                 for c in format_column(df[code], digits.get(code), gap)]
        spreadless = [c for c in cells if NO_SPREAD.search(c)]
        if spreadless:
            raise ValueError(f"column {code!r} has '{spreadless[0]}': a ± without a spread; format one seed with "
                             "tables.mean_std, which prints the value alone with n = 1")
        values = [c for c in cells if c not in (gap, "", "–")]
        if values and all(is_number_text(c) for c in values):
            cells = [c.replace(" ", "\u00a0") if is_number_text(c) else c for c in cells]
        else:
            short = all(len(c) <= SHORT_TEXT for c in cells)
            styles += ([{"selector": f".col{i}", "props": TEXT_COLUMN}] if not short else  # its header may wrap
                       [{"selector": f"td.col{i}", "props": SHORT_TEXT_COLUMN},
                        {"selector": f"th.col{i}", "props": "text-align:left"}])
        shown[header] = cells
    styler = Table(shown)
    styler.csv = df.reset_index(drop=True)  # every column behind the cells: the means and spreads as numbers
    styler.source = drawing_cell()
    styler.row_ids = None if anchors is None else [f"run-{v}" for v in df[anchors]]
    styler.set_table_styles(styles).set_table_attributes('class="subsetlib-table"')
    return styler if index else styler.hide(axis="index")
