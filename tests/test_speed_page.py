"""The speed page from its stored measurement tables (results/speed/bench, nothing timed here): its answer comes from
the measured numbers, a rendering from stored tables says so, its figures fit the column and a phone, its tables fit
the column."""

import math
from pathlib import Path

import matplotlib
import pytest

from subsetlib import parity, present, speed_page, tables
from subsetlib.errors import UserError

matplotlib.use("Agg")
STORED = Path(__file__).resolve().parent.parent / "results" / "speed" / "bench"


@pytest.fixture(scope="module")
def m() -> speed_page.Measurements:
    if not (STORED / "variants.parquet").is_file():
        pytest.skip("no stored speed measurement in results/speed/bench")
    return speed_page.load(STORED)


def test_the_answer_comes_from_the_measured_numbers(m):
    text = speed_page.answer(m, default_batch=128)
    best = m.variants.loc[m.variants["loop_ex_per_s"].idxmax()]
    ratio = speed_page.speedup(m, 128)
    assert math.isfinite(ratio)  # both channels-last variants were measured at the default batch size
    assert f"**{best['variant']}**" in text and f"{best['loop_ex_per_s']:,.0f} examples" in text
    assert f"{ratio:.2f}×" in text and f"**{parity.default_precision(m.parity, ratio)}**" in text
    assert f"{m.loops['ratio'].iloc[0]:.1f}×" in text
    assert f"{m.speedrun['test_acc'].mean():.2%}" in text and f"over {len(m.speedrun)} seeds" in text
    assert "nan" not in text


def test_a_rendering_from_stored_tables_says_nothing_was_timed(m):
    stored, now = speed_page.measured_line(m, False), speed_page.measured_line(m, True)
    assert stored.startswith("Nothing was timed for this rendering (`measure=False`)")
    assert all(f"`{c}`" in stored for c in m.commits) and m.commits
    assert now.startswith("Measured for this rendering")


def test_no_stored_measurement_names_how_to_make_one(tmp_path):
    with pytest.raises(UserError, match="measure=True"):
        speed_page.load(tmp_path)


def test_a_measurement_without_the_operator_table_says_so(m, tmp_path):
    for name in ("peak", "variants", "profile", "loops", "speedrun"):
        getattr(m, name).to_parquet(tmp_path / speed_page.FILES[name])
    old = speed_page.load(tmp_path)
    assert old.ops is None and len(speed_page.profile_tables(old)) == 1
    assert "not stored" in speed_page.profile_text(old)


@pytest.mark.parametrize("draw", [speed_page.variants_figure, speed_page.loops_figure])
def test_speed_figures_fit_the_column_and_a_phone(m, draw):
    fig, points = draw(m)
    assert present.layout_problems(fig) == []
    present._narrow(fig)  # the phone rendering
    assert present.layout_problems(fig) == []
    assert fig.legends and fig.legends[0].get_title().get_text()  # the key keeps its title on a phone
    assert points["run_id"].isna().all()


def test_the_layout_check_catches_the_old_variant_chart(m):
    """The chart as it was: long labels beside the bars, four-digit ticks, the key on the panel; on a phone its
    panel was about 40 px wide and its ticks ran together ("02500")."""
    import seaborn as sns

    var = m.variants.assign(batch=m.variants["batch_size"].astype(str))
    fig, ax = present.figure(height=0.45 * var["variant"].nunique() + 1.2)
    sns.barplot(data=var, y="variant", x="loop_ex_per_s", hue="batch", ax=ax)
    ax.set(xlabel="training examples per second (whole loop)", ylabel="")
    present._narrow(fig)
    problems = present.layout_problems(fig)
    assert any("of the figure's width" in p for p in problems)
    assert any("runs past the figure's edge" in p for p in problems)


def test_speed_tables_fit_the_column(m):
    shown = [speed_page.peak_table(m), speed_page.training_table(m), speed_page.evaluation_table(m),
             *speed_page.profile_tables(m), speed_page.loops_table(m), speed_page.speedrun_table(m)]
    widths = {tuple(t.data.columns)[:3]: tables.width_px(t) for t in shown}
    assert all(w <= tables.COLUMN_PX for w in widths.values()), widths
    var = m.variants  # the old single variant table: eleven columns, scrolled past the column at 1280 px
    old = tables.table(var, {c: c.replace("_", " ") for c in [
        "variant", "batch_size", "bare_step_ex_per_s", "loop_ex_per_s", "loop_over_bare", "bare_forward_ex_per_s",
        "evaluate_ex_per_s", "evaluate_over_forward", "loop_flop_per_s", "frac_peak", "load_avg"]})
    assert tables.width_px(old) > tables.COLUMN_PX
