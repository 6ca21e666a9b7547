"""The formatting helpers every page uses: tables a reader can read, figures that fit the column, fixed colours."""

import base64
import re

import numpy as np
import pandas as pd
import pytest

from subsetlib import present


def _cells(styler) -> list[list[str]]:
    html = styler.to_html()
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)[1:]]


def test_table_renders_integers_floats_and_missing_values_for_readers():
    df = pd.DataFrame({"K": [60000.0, 7500.0], "flops": [5934504960000.0, np.nan], "q": [25.0564002394610, 1.5],
                       "acc_sd": [np.nan, 0.0123], "secret": [1, 2]})
    styler = present.table(df, {"K": "K (examples)", "flops": "FLOPs", "q": "Q", "acc_sd": "std (pp)"},
                           digits={"acc_sd": 2}, missing={"flops": "not reached", "acc_sd": "–"})
    html = styler.to_html()
    assert "secret" not in html and "K (examples)" in html and "index" not in html.lower().split("<tbody")[1][:50]
    assert _cells(styler) == [["60,000", "5,934,504,960,000", "25.1", "–"], ["7,500", "not reached", "1.50", "0.01"]]
    assert "60000.0" not in html and "nan" not in html.lower().replace("nanoseconds", "")


def test_table_rejects_a_column_that_is_not_there():
    with pytest.raises(KeyError, match="budget"):
        present.table(pd.DataFrame({"a": [1]}), {"budget": "budget (epochs)"})


def test_table_keeps_text_and_three_significant_figures():
    assert present.format_column(pd.Series(["conventional", None])) == ["conventional", "not reached"]
    assert present.format_column(pd.Series([0.98765, 123.456, 0.0])) == ["0.988", "123", "0"]
    assert present.format_column(pd.Series([1.0, 2.5]), digits=1) == ["1.0", "2.5"]


def test_a_column_of_whole_numbers_prints_integers_even_with_digits():
    assert present.format_column(pd.Series([1.0, 2.0, 16.0]), digits=3) == ["1", "2", "16"]
    assert present.format_column(pd.Series([1.0, None]), digits=3) == ["1", "not reached"]


def test_mean_std_spells_out_one_seed():
    assert present.mean_std(98.876, 0.123, 1) == "98.9 ± 0.1"
    assert present.mean_std(98.876, np.nan, 1) == "98.9 ± –"
    assert present.mean_std(np.nan, np.nan, 1) == ""
    column = present.mean_std_column(pd.Series([0.98876, 0.5, np.nan]), pd.Series([0.00123, np.nan, np.nan]), 1,
                                     scale=100, missing="not reached")
    assert column == ["98.9 ± 0.1", "50.0 ± –", "not reached"]


def test_same_fraction_same_colour_and_fixed_arm_colours():
    assert present.arm_color("subset", 1 / 16) == present.arm_color("subset", 0.0625)
    assert present.arm_color("subset", 1 / 16) != present.arm_color("subset", 1 / 4)
    assert present.arm_color("conventional") == "#000000"
    assert present.arm_color("lbfgs-subset", 0.1) == present.arm_color("lbfgs-subset", 0.5)
    assert present.arm_color("growing", 1 / 8) != present.arm_color("subset", 1 / 8)
    assert present.arm_color("something-new") == present.OTHER
    assert present.arm_color("growing", 1 / 8, growth=2) != present.arm_color("growing", 1 / 8, growth=4)


def test_palette_orders_arms_conventional_first_then_larger_subsets():
    runs = pd.DataFrame({"arm": ["s16", "conv", "s2"], "protocol": ["subset", "conventional", "subset"],
                         "subset_fraction": [1 / 16, np.nan, 1 / 2]})
    pal = present.palette(runs)
    assert list(pal) == ["conv", "s2", "s16"] and pal["conv"] == "#000000"


def test_figure_is_column_wide_and_refuses_three_panels():
    fig, axes = present.figure(2)
    assert fig.get_figwidth() == present.COLUMN_INCHES and len(axes) == 2
    html = present.figure_html(fig, "Scale: quick <2 seeds>")
    assert "<figcaption" in html and "&lt;2 seeds&gt;" in html and 'width="672"' in html
    svg = base64.b64decode(re.search(r"base64,([^\"]+)", html).group(1)).decode()
    assert svg.startswith("<?xml") and "<svg" in svg
    with pytest.raises(ValueError, match="at most 2"):
        present.figure(3)


def test_log_axis_has_plain_tick_labels():
    fig, ax = present.figure()
    ax.plot([0.9, 1.3], [1, 2])
    present.log_axis(ax, "x")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and not any("10^" in t or "times" in t for t in labels), labels
    present.figure_html(fig, "closes the figure")


def test_fraction_and_dataset_names_for_readers():
    assert present.fraction_text(0.0625) == "1/16" and present.fraction_text(1.0) == "full set"
    assert present.dataset_title("mnist") == "MNIST"
    assert sorted(["fashion-mnist", "mnist", "cifar10-jpeg"], key=present.dataset_key) == [
        "mnist", "fashion-mnist", "cifar10-jpeg"]
