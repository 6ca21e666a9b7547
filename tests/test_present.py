"""The formatting helpers every page uses: tables a reader can read, figures that fit the column, fixed colours."""

import base64
import io
import os
import re

import numpy as np
import pandas as pd
import pytest

from subsetlib import console, notebook, present, sources, tables


def _cells(styler) -> list[list[str]]:
    html = styler.to_html()
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)[1:]]


def test_table_renders_integers_floats_and_missing_values_for_readers():
    df = pd.DataFrame({"K": [60000.0, 7500.0], "flops": [5934504960000.0, np.nan], "q": [25.0564002394610, 1.5],
                       "acc_sd": [np.nan, 0.0123], "secret": [1, 2]})
    styler = tables.table(df, {"K": "K (examples)", "flops": "FLOPs", "q": "Q", "acc_sd": "std (pp)"},
                           digits={"acc_sd": 2}, missing={"flops": "not reached", "acc_sd": "–"})
    html = styler.to_html()
    assert "secret" not in html and "K (examples)" in html and "index" not in html.lower().split("<tbody")[1][:50]
    assert _cells(styler) == [["60,000", "5,934,504,960,000", "25.1", "–"], ["7,500", "not reached", "1.50", "0.01"]]
    assert "60000.0" not in html and "nan" not in html.lower().replace("nanoseconds", "")


def test_table_rejects_a_column_that_is_not_there():
    with pytest.raises(KeyError, match="budget"):
        tables.table(pd.DataFrame({"a": [1]}), {"budget": "budget (epochs)"})


def test_table_keeps_text_and_three_significant_figures():
    assert tables.format_column(pd.Series(["conventional", None])) == ["conventional", "not reached"]
    assert tables.format_column(pd.Series([0.98765, 123.456, 0.0])) == ["0.988", "123", "0"]
    assert tables.format_column(pd.Series([1.0, 2.5]), digits=1) == ["1.0", "2.5"]


def test_significant_figures_never_use_e_notation():
    """An interval from two seeds spans decades ('[0.000314, 3.26e+03]' was printed on the front page)."""
    assert [tables.significant(x) for x in (3256.4, 0.000314159, 1.0, 21.04)] == ["3,260", "0.000314", "1.00", "21.0"]
    assert [tables.significant(x) for x in (0.99962, 999.6)] == ["1.00", "1,000"]  # rounding up adds a digit


def test_a_column_of_whole_numbers_prints_integers_even_with_digits():
    assert tables.format_column(pd.Series([1.0, 2.0, 16.0]), digits=3) == ["1", "2", "16"]
    assert tables.format_column(pd.Series([1.0, None]), digits=3) == ["1", "not reached"]


def test_mean_std_spells_out_one_seed():
    nbsp = "\u00a0"
    assert tables.mean_std(98.876, 0.123, 1) == f"98.9{nbsp}±{nbsp}0.1"  # never broken across lines
    assert tables.mean_std(98.876, np.nan, 1) == f"98.9{nbsp}(n{nbsp}={nbsp}1)"  # one seed: no "± –"
    assert tables.mean_std(np.nan, np.nan, 1) == ""
    column = tables.mean_std_column(pd.Series([0.98876, 0.5, np.nan]), pd.Series([0.00123, np.nan, np.nan]), 1,
                                     scale=100, missing="not reached")
    assert [c.replace(nbsp, " ") for c in column] == ["98.9 ± 0.1", "50.0 (n = 1)", "not reached"]


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
    assert "<figcaption" in html and "&lt;2 seeds&gt;" in html and 'width="653"' in html
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


# ---------------------------------------------------------------------------------------------------------------------
# Sources, data and defects a reader would see (issue 21)

def _runs_data(seeds=(0, 1, 2), arms=("conventional", "subset 1/4")) -> pd.DataFrame:
    rows = [{"run_id": f"{arm[:4]}-{seed}", "seed": seed, "arm": arm, "x": x, "y": 0.5 + 0.1 * x + seed}
            for arm in arms for seed in seeds for x in range(3)]
    return pd.DataFrame(rows)


def _decoded(html: str, what: str) -> str:
    found = re.search(re.escape(what) + r';base64,([^"]+)"', html)
    return base64.b64decode(found.group(1)).decode()


def test_figure_carries_its_csv_runs_source_and_commit():
    data = _runs_data()
    fig, ax = present.figure()
    for (arm, _), d in data.groupby(["arm", "seed"]):
        ax.plot(d["x"], d["y"], color=present.arm_color("conventional" if arm == "conventional" else "subset", 0.25))
    html = present.figure_html(fig, "caption", data=data, source=("study.ipynb", 9))
    shipped = pd.read_csv(io.StringIO(_decoded(html, "data:text/csv")))
    pd.testing.assert_frame_equal(shipped, data)  # the exact rows plotted, one per point
    assert set(re.findall(r'href="\.\./study/99-provenance\.html#run-([^"]+)"', html)) == set(data["run_id"])
    assert '<a href="../../../../../notebooks/study.ipynb"' in html and "cell 9" in html
    assert sources.commit(10) in html and 'download="study-cell9-figure.csv"' in html
    with pytest.raises(ValueError, match="run_id"):
        present.figure_html(present.figure()[0], "no run ids", data=data.drop(columns="run_id"))


def test_figure_has_a_narrow_rendering_with_legible_text():
    fig, axes = present.figure(2)
    for ax in axes:
        ax.plot([1, 2], [1, 2])
    html = present.figure_html(fig, "two panels")
    wide_px = float(re.search(r'data-text-px="([\d.]+)"', html).group(1))
    narrow_px = float(re.search(r'data-narrow-text-px="([\d.]+)"', html).group(1))
    assert wide_px >= 0.8 * 16 and narrow_px >= 0.8 * 16  # the book's body text is 16 px
    narrow = base64.b64decode(re.search(r'srcset="data:image/svg\+xml;base64,([^"]+)"', html).group(1)).decode()
    width, height = (float(v) for v in re.search(r'<svg[^>]*width="([\d.]+)pt" height="([\d.]+)pt"', narrow).groups())
    assert width == pytest.approx(present.NARROW_INCHES * 72) and height > width  # the two panels stacked



def test_a_key_under_the_panels_fits_the_phone_width():
    fig, axes = present.figure(2)
    for i in range(6):
        axes[1].plot([1, 2], [i, i + 1], label=f"L-BFGS, subset 1/{2 ** (i + 1)} then full set")
    present.legend(axes[1], below=True)
    present._narrow(fig)
    fig.canvas.draw()
    (key,), box = fig.legends, fig.bbox
    extent = key.get_window_extent()
    assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0  # the whole key is on the figure

def test_a_line_outside_the_axes_limits_is_a_defect(monkeypatch):
    fig, ax = present.figure()
    ax.plot([0, 1], [75.0, 75.5], label="conventional")
    ax.plot([0, 1], [60.0, 61.0], label="subset 1/4")
    ax.set_ylim(74, 76.5)
    assert present.hidden_artists(fig) == ["subset 1/4 lies outside the axes' limits of panel 1"]
    ax.set_ylim(59, 76.5)
    assert present.hidden_artists(fig) == []
    ax.set_ylim(74, 76.5)
    monkeypatch.setenv("SUBSETLIB_SMOKE", "1")
    with pytest.raises(ValueError, match="subset 1/4 lies outside"):
        present.show(fig, "a figure hiding an arm")


def test_caption_counts_are_checked_against_the_data():
    data = _runs_data(seeds=(0, 1, 2))
    assert present.runs_text(data) == "6 runs (2 arms × 3 seeds)"
    assert present.caption_problems(f"Means over 3 seeds; {present.runs_text(data)}.", data) == []
    problems = present.caption_problems("Means over 5 seeds.", data)
    assert problems == ["the caption says 5 seeds, the data have [3]"]
    uneven = data[~((data["arm"] == "subset 1/4") & (data["seed"] > 0))]
    assert present.runs_text(uneven) == "4 runs (2 arms × 1 to 3 seeds per arm)"


def test_table_cells_never_break_inside_numbers_and_text_is_left_aligned():
    df = pd.DataFrame({"claim": ["a long claim in words", "b"], "ratio": ["10.57 ± 0.78", "1.02 (n = 1)"],
                       "steps": [315.0, 12.0], "mixed": pd.Series([315.0, 2.0], dtype=object)})
    styler = tables.table(df, {"claim": "claim", "ratio": "ratio", "steps": "steps", "mixed": "mixed"})
    cells = _cells(styler)
    assert cells[0][1] == "10.57\u00a0±\u00a00.78" and cells[0][2] == "315" and cells[0][3] == "315"
    html = styler.to_html()
    text_rule = re.search(r"\.col0 \{([^}]*)\}", html).group(1)
    assert "text-align: left" in text_rule and "white-space: normal" in text_rule
    assert not re.search(r"\.col[123] \{", html)  # number columns keep the right-aligned, nowrap td rule
    assert 'class="subsetlib-table-box" style="max-width:100%;overflow-x:auto"' in html


def test_a_short_text_column_keeps_its_natural_width_and_its_header_wraps():
    df = pd.DataFrame({"subset": ["1/4", "1/128"], "seeds": ["0 of 5", "2 of 3"],
                       "verdict": ["inconclusive at 2 seeds", "-"]})
    html = tables.table(df, {"subset": "subset", "seeds": "converged seeds", "verdict": "verdict"}).to_html()
    for i in (0, 1):  # short cells never wrap, and no minimum width pads them
        assert "white-space: nowrap" in re.search(rf"td\.col{i} \{{([^}}]*)\}}", html).group(1)
        assert "text-align: left" in re.search(rf"th\.col{i} \{{([^}}]*)\}}", html).group(1)
    assert "min-width: 6em" in re.search(r"\.col2 \{([^}]*)\}", html).group(1)  # a long verdict may wrap


def test_a_plus_minus_without_spread_is_refused():
    with pytest.raises(ValueError, match="without a spread"):
        tables.table(pd.DataFrame({"acc": ["1.02 ± –", "0.98 ± 0.01"]}), {"acc": "accuracy"})
    assert tables.is_number_text("98.9\u00a0±\u00a00.1") and not tables.is_number_text("subset 1/2")


def test_table_carries_its_csv_and_row_anchors():
    df = pd.DataFrame({"run_id": ["ab12", "cd34"], "seed": [0, 1], "acc": [0.98, 0.97]})
    html = tables.table(df, {"seed": "seed", "acc": "accuracy"}, anchors="run_id").to_html()
    assert re.findall(r'<tr id="([^"]+)">', html) == ["run-ab12", "run-cd34"]
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(_decoded(html, "data:text/csv"))), df)


def test_legends_run_in_fraction_order():
    fig, ax = present.figure()
    for label in ["subset 1/2", "subset 1/128", "conventional", "subset 1/32", "subset 1/4"]:
        ax.plot([0, 1], [0, 1], label=label)
    present.legend(ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "conventional", "subset 1/2", "subset 1/4", "subset 1/32", "subset 1/128"]
    present.legend_fractions(ax, [1 / 32, 1 / 2, 1 / 128, 1 / 4])
    key = ax.get_legend()
    assert key.get_title().get_text() == "subset fraction"
    assert [t.get_text() for t in key.get_texts()] == ["1/2", "1/4", "1/32", "1/128"]
    present.figure_html(fig, "closes the figure")


def test_console_noise_is_recognised_and_silenced(capfd):
    noise = ("USDT:2026-11-26 01:14:16 7134:7134 SyncActivityProfilerHandler.cpp:39] profiler_start\n"
             "ERROR:2026-11-26 01:14:23 7134:7134 DeviceProperties.cpp:56] gpuGetDeviceCount failed with code 35\n"
             "/tmp/ipykernel_20251/1600319677.py:2: FutureWarning: Downcasting object dtype arrays is deprecated\n")
    assert len(console.console_noise(noise)) == 3
    assert console.console_noise("35 runs: 5 seeds × (6 subset arms + conventional), 79 min of training") == []
    with console.quiet():
        import warnings

        warnings.warn("deprecated", FutureWarning, stacklevel=1)
        os.write(2, noise.encode())  # as a C++ library writes it, below Python
        os.write(2, b"a real problem\n")
    err = capfd.readouterr().err
    assert "profiler_start" not in err and "FutureWarning" not in err and "a real problem" in err


def test_the_front_page_copy_of_a_figure_links_from_the_front_page(capsys):
    data = _runs_data(seeds=(0,))
    fig, ax = present.figure()
    ax.plot(data["x"], data["y"])
    front = present.show(fig, "The answer figure.", data=data, front_page=True)
    shown = capsys.readouterr().out  # outside a notebook, IPython prints what it would display
    assert "HTML object" in shown
    assert 'href="experiments/study/99-provenance.html#run-conv-0"' in front
    assert pd.read_csv(io.StringIO(_decoded(front, "data:text/csv"))).equals(data)


def test_layout_check_catches_crowded_ticks_and_text_past_the_edge():
    fig, ax = present.figure()
    ax.plot([0, 12500], [0, 1])
    ax.set_xticks(range(0, 12501, 500))  # 26 four- and five-digit labels across one column
    assert any("overlap" in p for p in present.layout_problems(fig))
    present.count_axis(ax, "x")
    assert present.layout_problems(fig) == []
    ax.set_ylabel("a label far longer than the figure is tall, which constrained layout cannot place " * 2)
    assert any("runs past the figure's edge" in p for p in present.layout_problems(fig))


def test_wrap_label_breaks_after_plus_signs_and_spaces():
    assert present.wrap_label("fp32 + channels-last + torch.compile") == "fp32 +\nchannels-last +\ntorch.compile"
    assert present.wrap_label("bf16 + NCHW") == "bf16 + NCHW"


def test_a_figure_of_no_stored_runs_names_no_runs():
    measured = pd.DataFrame({"run_id": [float("nan")] * 2, "seed": [float("nan")] * 2, "arm": ["a", "b"]})
    line = sources.source_html(measured, ("speed.ipynb", 5), "figure")
    assert "0 runs" not in line and "<details>" not in line and "CSV" in line
    stored = measured.assign(run_id=["r1", "r2"])
    assert "<summary>2 runs</summary>" in sources.source_html(stored, ("speed.ipynb", 5), "figure")


def test_provenance_box_values_wrap_inside_the_column():
    box = notebook.box_html({"scale": "speed: CPU speed measurements, " * 4, "seeds": list(range(10))}, {"scale"})
    assert box.count(notebook.BOX_CELL) == 4  # each value's cell and its code
