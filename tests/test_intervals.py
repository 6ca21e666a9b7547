"""No interval from fewer than 3 pairs anywhere in the book: the pages as executed (``book/experiments``), the text
they generate for other pages (``book/generated``) and, where it is built, the HTML (``_build/html``).

An interval from two seeds (``1.01× [0.000314, 3,260]``, ratios 0.536 and 1.911) once stood on four pages; the
library now prints each seed's value instead (``verdicts.Paired.text``, ``study2_report``, ``lbfgs_study``).
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"[-+−]?[\d.,]+(?:e[-+]?\d+)?"
INTERVAL = rf"\[\s*{NUMBER}\s*,\s*{NUMBER}\s*\]"
FEW = [
    re.compile(rf"{INTERVAL}[^\[\];\n<]{{0,30}}\bn = [12]\b"),  # '… [a, b] pt, n = 2'
    re.compile(rf"{INTERVAL}\s*\((?:1|2) of \d+ seeds?\)"),  # '1.01× [a, b] (2 of 3 seeds)'
    # a table's row: its seeds column (converged or reached: 1 or 2 of n), then, in one of the next two cells, an
    # interval ('23.0× [13.8, 38.3]'; a tenth table puts the ratio in a cell of its own)
    re.compile(rf">(?:1|2) of \d+</td>(?:\s*<td[^>]*>[^<]*</td>)?\s*<td[^>]*>[^<\[]*{INTERVAL}"),
]


def few_pair_intervals(text: str) -> list[str]:
    return [m.group(0)[:120] for pattern in FEW for m in pattern.finditer(text)]


def texts() -> list[tuple[str, str]]:
    out = []
    for page in sorted((ROOT / "book" / "experiments").rglob("*.ipynb")):
        for cell in json.loads(page.read_text(encoding="utf-8"))["cells"]:
            for o in cell.get("outputs", []):
                for kind in ("text/markdown", "text/html", "text/plain"):
                    value = o.get("data", {}).get(kind, "")
                    out.append((str(page.relative_to(ROOT)), "".join(value) if isinstance(value, list) else value))
    out += [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in (ROOT / "book").rglob("*.md")]
    html = ROOT / "_build" / "html"
    out += [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in html.rglob("*.html")
            if html.is_dir() and "_static" not in p.parts]
    return out


def test_the_patterns_find_a_few_pair_interval_and_spare_a_real_one():
    assert few_pair_intervals("subset 1/8 first (Q = 15): 1.01× [0.000314, 3,260] (2 of 3 seeds), not testable")
    assert few_pair_intervals("accuracy equal (-0.10 [-0.26, +0.06] pt, n = 2)")
    assert few_pair_intervals("<td>2 of 3</td><td>1.01</td><td>[0.000314, 3,260]</td>")
    assert few_pair_intervals('<td class="x">2 of 3</td>\n <td class="y">23.0× [13.8, 38.3]</td>')
    assert not few_pair_intervals("<td>5 of 5</td><td>1.00× [0.993, 1.01]</td>")
    assert not few_pair_intervals("accuracy equal (-0.10 [-0.26, +0.06] pt, n = 10)")
    assert not few_pair_intervals("0.536×, 1.91× per seed (2 of 3 seeds)")


@pytest.mark.parametrize("where", ["book"])
def test_no_interval_from_fewer_than_three_pairs_anywhere_in_the_book(where):
    found = [f"{name}: {hit}" for name, text in texts() for hit in few_pair_intervals(text)]
    assert not found, "intervals from fewer than 3 pairs:\n" + "\n".join(sorted(set(found))[:40])
