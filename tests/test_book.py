"""Check the built book as a reader would: every page's local links resolve, nothing is loaded from the network,
every page renders to something visible in a real browser, MathJax (vendored, offline) typesets the math, figures and
tables fit the content column at 1280 px and at 390 px, figure text is at least 80 % of the body text at both widths,
captions are in the body text's colour, no table cell breaks inside a number, figures are shown near their natural
size with a caption, the front page leads to the claims, and the subset planner of the Q planner page computes in the
browser. Over the executed pages: no console noise, no "±" without a spread, every figure and table with its CSV and
sources (the CSV's runs are rows of the provenance page), and every experiment page ends with its rerun box.

Needs the book built first (``jupyter-book build -W -n --keep-going .``); without ``_build/html/index.html`` the
checks of the built book skip. The browser checks need Chromium: without it they skip on a developer's machine but
fail when ``CI`` is set, so CI cannot pass them silently.
"""

import base64
import html as htmlmod
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest
from PIL import Image, ImageStat

import subsetlib.notebook as nb
from subsetlib import console, planner, present, registry, sources, tables

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static"}
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}  # pages Sphinx generates, not the book's
CHAPTERS = ("book/intro", "book/method", "book/reproduce", "book/limitations")
EXTERNAL = ("http:", "https:", "mailto:", "data:", "javascript:", "tel:")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--no-pings", "--disable-breakpad",
    # The page must not need the network; this also keeps the browser's own background requests on this machine.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars", "--virtual-time-budget=5000",
]
WIDE, NARROW = 1280, 390  # a laptop's window and a phone's (chromium-headless-shell: chromium's own minimum is 500)
MIN_TEXT_SHARE = 0.8  # figure text against the body text, as shown
CLAIMS = Path("book/experiments/study-v2/00-0-claims.html")  # the claims the front page answers from
MIN_FIGURE_SCALE = 0.6
PROBE_ID = "subsetlib-probe"
# Injected right after <head> of a copy of each page: records script errors, and after layout measures, inside the
# page's article, every visible img/svg/table against the column's content width, every subsetlib figure's shown
# against natural width, the caption of every figure and of every image (an image outside a <figure> has none), the
# links, and whether each subset planner filled its output. The result is written into a hidden <pre> that
# --dump-dom returns.
PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); });
  window.addEventListener('load', function () { setTimeout(function () {
    var article = document.querySelector('article') || document.querySelector('main') || document.body;
    var style = getComputedStyle(article), box = article.getBoundingClientRect();
    var column = box.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    var name = function (el) { return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.getAttribute('class') ? '.' + el.getAttribute('class').trim().split(/\\s+/).join('.') : ''); };
    var boxes = [], figures = [], captions = [], planners = [], wrapped = [], colours = [];
    var para = article.querySelector('p') || article;
    var body = {px: parseFloat(getComputedStyle(para).fontSize), colour: getComputedStyle(para).color};
    var scroller = function (el) {  // a table may be wider than the column inside a box that scrolls it
      for (var up = el.parentElement; up && up !== article; up = up.parentElement) {
        var x = getComputedStyle(up).overflowX;
        if (x === 'auto' || x === 'scroll') { return up; }
      }
      return el;
    };
    article.querySelectorAll('img, svg, table').forEach(function (el) {
      var r = (el.tagName === 'TABLE' ? scroller(el) : el).getBoundingClientRect();
      if (r.width > 0) { boxes.push({what: name(el), width: r.width}); }
    });
    article.querySelectorAll('figure.subsetlib-figure img').forEach(function (img) {
      var r = img.getBoundingClientRect(), wide = img.currentSrc === img.getAttribute('src');
      var px = parseFloat(wide ? img.getAttribute('data-text-px') : img.getAttribute('data-narrow-text-px'));
      if (r.width > 0) { figures.push({what: img.alt.slice(0, 60), shown: r.width, natural: img.naturalWidth,
                                       text_px: isNaN(px) ? null : px * r.width / img.naturalWidth}); }
    });
    article.querySelectorAll('figure figcaption').forEach(function (c) {
      colours.push({what: c.textContent.trim().slice(0, 60), colour: getComputedStyle(c).color});
    });
    var number = /^[\\u2212+-]?\\d[\\d,]*(\\.\\d+)?\\s?[%\\u00d7]?(\\s\\u00b1\\s[\\d,.]+)?(\\s\\(n\\s=\\s\\d+\\))?$/;
    article.querySelectorAll('td').forEach(function (td) {
      var text = td.textContent.trim();
      if (!number.test(text)) { return; }
      var tops = new Set(), walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) {  // the lines of the text itself, not the boxes of a <p> around it
        var range = document.createRange();
        range.selectNodeContents(walker.currentNode);
        Array.from(range.getClientRects()).forEach(function (r) { if (r.width > 0) { tops.add(Math.round(r.top)); } });
      }
      if (tops.size > 1) { wrapped.push(text); }
    });
    article.querySelectorAll('figure, img').forEach(function (el) {
      var figure = el.tagName === 'FIGURE' ? el : el.closest('figure');
      if (el.tagName === 'IMG' && figure) { return; }
      var caption = figure && figure.querySelector('figcaption');
      captions.push({what: el.tagName === 'IMG' ? 'img ' + el.getAttribute('src').slice(0, 60) : name(el),
                     text: caption ? caption.textContent.trim() : ''});
    });
    document.querySelectorAll('.subsetlib-planner').forEach(function (p) {
      planners.push({ready: p.getAttribute('data-ready') === 'yes',
                     K: (p.querySelector('[data-out="K"]') || {}).textContent || ''});
    });
    var pre = document.createElement('pre');
    pre.id = '__PROBE_ID__';
    pre.hidden = true;
    pre.textContent = JSON.stringify({column: column, boxes: boxes, figures: figures, captions: captions,
      planners: planners, errors: errors, body: body, wrapped: wrapped, colours: colours,
      links: Array.from(article.querySelectorAll('a[href]')).map(function (a) { return a.href; })});
    document.body.appendChild(pre);
  }, 500); });
})();
</script>""".replace("__PROBE_ID__", PROBE_ID)


# ---------------------------------------------------------------------------------------------------------------------
# Helpers (tested below on made-up input, so they are known to be able to fail)

class _Refs(HTMLParser):
    """Collects (tag, attribute, value, rel) for every href/src in a page."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "src"):
            if attrs.get(name):
                self.refs.append((tag, name, attrs[name].strip(), (attrs.get("rel") or "").lower()))


def references(html: str) -> list[tuple[str, str, str, str]]:
    parser = _Refs()
    parser.feed(html)
    return parser.refs


def broken_local_refs(page: Path, html: str) -> list[str]:
    """Local href/src values of ``page`` that do not point at an existing file."""
    broken = []
    for tag, attr, value, _ in references(html):
        if value.lower().startswith(EXTERNAL) or value.startswith("#"):
            continue
        if value.startswith("//"):
            broken.append(f"<{tag} {attr}={value!r}> is a network reference")
            continue
        path = unquote(urlsplit(value).path)
        if not path:
            continue
        target = (page.parent / path).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"<{tag} {attr}={value!r}> -> {target} does not exist")
    return broken


def network_loads(html: str) -> list[str]:
    """Scripts, stylesheets, images and frames that would be fetched from the network (plain links are fine)."""
    loads = []
    for tag, attr, value, rel in references(html):
        remote = value.lower().startswith(("http:", "https:", "//"))
        if remote and (tag in ("script", "img", "iframe", "audio", "video", "source", "embed")
                       or (tag == "link" and any(r in rel for r in ("stylesheet", "preload", "modulepreload")))):
            loads.append(f"<{tag} {attr}={value!r}>")
    return loads


def blank_reason(png: Path) -> str | None:
    """Why a screenshot counts as blank (None if it shows something): almost every pixel is the background colour,
    the pixel values hardly vary, or the article column (right of the sidebar) is empty."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        whole = _non_background(rgb)
        spread = max(ImageStat.Stat(rgb.convert("L")).stddev)
        w, h = rgb.size
        column = _non_background(rgb.crop((min(270, w // 4), min(120, h // 10), min(1000, w), h)))
    if whole < 0.01:
        return f"only {whole:.2%} of the pixels differ from the background colour"
    if spread < 5:
        return f"pixel standard deviation {spread:.1f} is too low"
    if column < 0.005:
        return f"the article column is empty ({column:.2%} of its pixels differ from the background)"
    return None


def _non_background(rgb: Image.Image) -> float:
    """Share of pixels that differ from the most common colour."""
    colors = rgb.getcolors(maxcolors=rgb.width * rgb.height)
    return 1 - max(c[0] for c in colors) / (rgb.width * rgb.height)


def chromium() -> str | None:
    """chromium-headless-shell where installed (it lays pages out at any width; chromium's headless mode at no less
    than 500 px), else chromium."""
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def probed(html: str) -> str:
    """The page with ``PROBE`` as the first thing in its <head>, so that it sees the errors of the page's scripts."""
    head = re.search(r"<head[^>]*>", html, re.I)
    at = head.end() if head else 0
    return html[:at] + PROBE + html[at:]


def probe_result(dom: str) -> dict | None:
    """What ``PROBE`` wrote into the dumped DOM (None if it did not run, e.g. on a page that redirects)."""
    found = re.search(rf'<pre id="{PROBE_ID}"[^>]*>(.*?)</pre>', dom, re.S)
    return json.loads(htmlmod.unescape(found.group(1))) if found else None


def layout_problems(probe: dict) -> list[str]:
    """What a reader would see wrong: a table or figure wider than the content column (cut off, or widening the page;
    a table scrolling inside a box within the column is fine), a figure shrunk below ``MIN_FIGURE_SCALE`` of its
    natural width, figure text below ``MIN_TEXT_SHARE`` of the body text as shown (or a figure that does not say its
    text size: drawn before present.show said it), a caption not in the body text's colour, a table cell broken inside
    a number, a figure without a caption, an error in a page script, a subset planner that did not compute."""
    column = probe["column"]
    body = probe.get("body") or {"px": 16.0, "colour": ""}
    problems = [f"{b['what']} is {b['width']:.0f} px wide, wider than the {column:.0f} px content column"
                for b in probe["boxes"] if b["width"] > column + 1]
    problems += [f"figure '{f['what']}' is shown at {f['shown']:.0f} of its {f['natural']} px "
                 f"({f['shown'] / f['natural']:.0%} < {MIN_FIGURE_SCALE:.0%})"
                 for f in probe["figures"] if f["natural"] and f["shown"] < MIN_FIGURE_SCALE * f["natural"]]
    problems += [f"figure '{f['what']}' does not say its text size (re-render its page with present.show)"
                 for f in probe["figures"] if f.get("text_px", 0) is None]
    problems += [f"figure '{f['what']}' shows its smallest text at {f['text_px']:.1f} px, under "
                 f"{MIN_TEXT_SHARE:.0%} of the {body['px']:.0f}-px body text"
                 for f in probe["figures"] if f.get("text_px") and f["text_px"] < MIN_TEXT_SHARE * body["px"] - 0.05]
    problems += [f"caption '{c['what']}' is {c['colour']}, not the body text's {body['colour']}"
                 for c in probe.get("colours", []) if body["colour"] and c["colour"] != body["colour"]]
    problems += [f"a table cell breaks inside the number '{w}'" for w in probe.get("wrapped", [])]
    problems += [f"{c['what']} has no caption (show figures with present.show(fig, caption))"
                 for c in probe["captions"] if not c["text"].strip()]
    # Jupyter Book 1.0.4 writes sphinx-thebe's configuration script twice into every page (thebe is off here), so
    # the second `const THEBE_JS_URL` always fails; that upstream duplicate is not a page's error.
    problems += [f"script error: {e}" for e in probe["errors"] if "THEBE_JS_URL" not in e]
    problems += ["the subset planner did not fill in its result" for p in probe["planners"]
                 if not p["ready"] or not p["K"].strip()]
    return problems


def redirect_target(page: Path, html: str) -> Path:
    """The page a reader lands on: ``index.html`` of a Jupyter Book is a meta refresh to the root chapter."""
    found = re.search(r'<meta[^>]+http-equiv="refresh"[^>]+url=([^"\s>]+)', html, re.I)
    return (page.parent / unquote(found.group(1))).resolve() if found else page.resolve()


def links_to(probe: dict, target: Path) -> bool:
    """Whether the article links to ``target`` (navigation sidebars do not count: every page has them)."""
    return any(urlsplit(link).scheme == "file" and Path(unquote(urlsplit(link).path)).resolve() == target.resolve()
               for link in probe["links"])


def book_pages() -> list[Path]:
    if not HTML.is_dir():
        return []
    pages = []
    for page in sorted(HTML.rglob("*.html")):
        rel = page.relative_to(HTML)
        if rel.parts[0] in SKIP_DIRS or str(rel) in SKIP_PAGES:
            continue
        pages.append(page)
    return pages


def page_id(page: Path) -> str:
    return str(page.relative_to(HTML))


# ---------------------------------------------------------------------------------------------------------------------
# The helpers can fail

def test_blank_detector_rejects_white_and_accepts_text(tmp_path):
    from PIL import ImageDraw

    white = tmp_path / "white.png"
    Image.new("RGB", (400, 300), "white").save(white)
    assert blank_reason(white) is not None

    page = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(page)
    for y in range(20, 280, 16):
        draw.rectangle([20, y, 380, y + 8], fill="black")
    page.save(tmp_path / "text.png")
    assert blank_reason(tmp_path / "text.png") is None

    sidebar_only = Image.new("RGB", (1280, 1600), "white")  # navigation drawn, article missing
    ImageDraw.Draw(sidebar_only).rectangle([0, 0, 250, 1600], fill="gray")
    sidebar_only.save(tmp_path / "sidebar.png")
    assert "article column" in (blank_reason(tmp_path / "sidebar.png") or "")


def test_link_checks_catch_broken_and_remote_references(tmp_path):
    (tmp_path / "ok.html").write_text("ok")
    html = ('<a href="ok.html#x">fine</a> <a href="missing.html">broken</a> <a href="https://example.org">link</a>'
            '<script src="https://cdn.example.org/x.js"></script> <img src="gone.png">'
            '<link rel="stylesheet" href="//cdn.example.org/x.css"> <a href="#top">anchor</a>')
    broken = broken_local_refs(tmp_path / "page.html", html)
    assert len(broken) == 3 and any("missing.html" in b for b in broken) and any("gone.png" in b for b in broken)
    assert network_loads(html) == ["<script src='https://cdn.example.org/x.js'>",
                                   "<link href='//cdn.example.org/x.css'>"]


def test_layout_checks_catch_wide_tables_small_figures_and_missing_captions():
    good = {"column": 700, "boxes": [{"what": "table", "width": 700.5}], "captions": [{"what": "figure", "text": "A"}],
            "figures": [{"what": "f", "shown": 672, "natural": 672}], "planners": [{"ready": True, "K": "3,750"}],
            "errors": [], "links": []}
    assert layout_problems(good) == []
    bad = {"column": 700, "boxes": [{"what": "table.x", "width": 1400}], "figures": [{"what": "f", "shown": 300,
           "natural": 672}], "captions": [{"what": "img ../_images/a.png", "text": " "}],
           "planners": [{"ready": False, "K": ""}], "errors": ["SyntaxError: x"], "links": []}
    problems = layout_problems(bad)
    assert len(problems) == 5 and "table.x is 1400 px" in problems[0] and "45%" in problems[1]
    assert "no caption" in problems[2] and "SyntaxError" in problems[3] and "planner" in problems[4]
    small = {**good, "body": {"px": 16, "colour": "rgb(0, 0, 0)"}, "wrapped": ["10.57 ± 0.78"],
             "figures": [{"what": "f", "shown": 672, "natural": 672, "text_px": 11.0},
                         {"what": "g", "shown": 672, "natural": 672, "text_px": None}],
             "colours": [{"what": "Fig", "colour": "rgb(72, 86, 107)"}]}
    problems = layout_problems(small)
    assert len(problems) == 4 and "does not say its text size" in problems[0] and "11.0 px" in problems[1]
    assert "rgb(72, 86, 107)" in problems[2] and "'10.57 ± 0.78'" in problems[3]


def test_front_page_redirect_and_article_links(tmp_path):
    index = tmp_path / "index.html"
    redirect = '<html><head><meta http-equiv="Refresh" content="0; url=book/intro.html" /></head></html>'
    assert redirect_target(index, redirect) == (tmp_path / "book" / "intro.html").resolve()
    assert redirect_target(index, "<html><body>no redirect</body></html>") == index.resolve()
    claims = tmp_path / "book" / CLAIMS.relative_to("book")
    probe = {"links": [(tmp_path / "book" / "method.html").as_uri() + "#q", "https://example.org/"]}
    assert not links_to(probe, claims)
    assert links_to({"links": [claims.as_uri() + "#verdicts"]}, claims)


def test_probe_measures_what_a_reader_sees(tmp_path):
    """The injected probe, on a hand-made page: a table too wide for the column, a figure squeezed to a third of its
    width, an image without a caption, a broken script; and a page with none of these."""
    browser = browser_or_skip()
    drawing = b"<svg xmlns='http://www.w3.org/2000/svg' width='600' height='100'/>"
    svg = "data:image/svg+xml;base64," + base64.b64encode(drawing).decode()
    figure = (f'<figure class="subsetlib-figure"><img src="{svg}" alt="fig" width="600" style="{{}}" '
              f'data-text-px="13.3" data-narrow-text-px="13.3"><figcaption style="{{}}">{{}}</figcaption></figure>')
    wrapping = '<table><tr><td style="width:2em;white-space:normal">10.57 ± 0.78</td></tr></table>'
    scrolled = '<div style="overflow-x:auto"><table style="width:900px"><tr><td><p>1.5</p></td></tr></table></div>'
    bad = (f'<html><head></head><body><article style="width:500px;padding:0 20px;font-size:16px">'
           f'<p>Body text.</p><table style="width:900px"><tr><td>x</td></tr></table>{wrapping}'
           f'{figure.format("width:150px", "color:#999", "A caption")}'
           f'<img src="{svg}"><script>var = ;</script></article></body></html>')
    good = (f'<html><head></head><body><article style="width:700px;font-size:16px"><p>Body text.</p>{scrolled}'
            f'{figure.format("max-width:100%", "", "Caption")}<a href="claims.html">claims</a></article></body></html>')
    results = {}
    for name, page in (("bad", bad), ("good", good)):
        (tmp_path / f"{name}.html").write_text(probed(page))
        dom, log = open_in_chromium(browser, tmp_path / f"{name}.html")
        results[name] = probe_result(dom)
        assert results[name] is not None, f"the probe did not run on the {name} page: {log}"
    problems = layout_problems(results["bad"])
    assert results["bad"]["column"] == 500
    assert any("table" in p and "900 px" in p for p in problems), problems
    assert any("25%" in p for p in problems) and any("no caption" in p for p in problems), problems
    assert any("script error" in p for p in problems), problems
    assert any("breaks inside the number '10.57 ± 0.78'" in p for p in problems), problems
    assert any("3.3 px, under 80%" in p for p in problems), problems  # 13.3 px shown at a quarter: 3.3 px
    assert any("caption 'A caption' is rgb(153, 153, 153)" in p for p in problems), problems
    assert layout_problems(results["good"]) == [], layout_problems(results["good"])
    assert links_to(results["good"], tmp_path / "claims.html")


def test_subset_planner_embeds_registry_numbers_and_loads_nothing():
    rows = planner.pairs(["cnn-simple"], ["mnist"])
    table = planner.q_table("cnn-simple", "mnist", [1])
    assert rows[0]["P"] == table["P"].iloc[0] and rows[0]["N"] == 60000 and rows[0]["M"] == 10
    assert rows[0]["flops_per_example"] > 2 * rows[0]["P"]  # forward and backward touch every weight
    page = planner.calculator_html(rows)
    data = re.search(r'<script type="application/json" id="subsetlib-planner-data">(.*?)</script>', page, re.S)
    assert json.loads(data.group(1)) == rows and network_loads(page) == [] and "src=" not in page
    with pytest.raises(ValueError, match="at least one"):
        planner.calculator_html([])


def test_subset_planner_computes_in_the_browser(tmp_path):
    """The calculator of the Q planner page, with real registry numbers: fraction and target Q give the K and Q that
    ``planner.q_table`` computes, an unreachable Q and a bad fraction are said so, and the cost is K/N epochs and
    K·FLOPs."""
    browser = browser_or_skip()
    rows = planner.pairs(["cnn-simple"], ["mnist", "cifar10"])
    drive = """<script>
    window.addEventListener('load', function () {
      var root = document.getElementById('subsetlib-planner'), seen = [];
      var set = function (name, value) { var el = root.querySelector('[name="' + name + '"]'); el.value = value;
        el.dispatchEvent(new Event('input', {bubbles: true})); };
      var read = function () { var r = {}; root.querySelectorAll('[data-out]').forEach(function (el) {
        r[el.getAttribute('data-out')] = el.textContent; }); return r; };
      seen.push(read());
      set('dataset', 'cifar10'); set('value', '0.25'); seen.push(read());
      set('dataset', 'mnist'); set('mode', 'q'); set('value', '2'); seen.push(read());
      set('value', '1000'); seen.push(read());
      set('mode', 'fraction'); set('value', '1.5'); seen.push(read());
      var pre = document.createElement('pre'); pre.id = 'result'; pre.textContent = JSON.stringify(seen);
      document.body.appendChild(pre);
    });
    </script>"""
    page = tmp_path / "planner.html"
    page.write_text(f"<html><head>{PROBE}</head><body>{planner.calculator_html(rows)}{drive}</body></html>")
    dom, log = open_in_chromium(browser, page)
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found, f"the planner page did not run: {log}"
    first, cifar, target, unreachable, bad = json.loads(htmlmod.unescape(found.group(1)))
    assert probe_result(dom)["errors"] == []
    mnist, cifar10 = rows
    number = lambda text: float(text.replace(",", ""))  # noqa: E731
    table = planner.q_table("cnn-simple", "mnist", [1 / 16], [2.0]).set_index("target_q", drop=False)
    k16, k_q2 = int(table["K"].iloc[0]), int(table["K"].iloc[1])
    assert number(first["K"]) == k16 and number(first["P"]) == mnist["P"] and first["problem"] == ""
    assert math.isclose(number(first["Q"]), table["Q"].iloc[0], rel_tol=5e-3)
    assert math.isclose(number(first["epochs"]), k16 / mnist["N"], rel_tol=5e-3)
    assert math.isclose(number(first["gflops"]), k16 * mnist["flops_per_example"] / 1e9, rel_tol=5e-3)
    assert number(cifar["K"]) == cifar10["N"] / 4 and number(cifar["P"]) == cifar10["P"]
    assert number(target["K"]) == k_q2 and number(target["Q"]) >= 2
    assert unreachable["K"] == "–" and "Not reachable" in unreachable["problem"]
    assert bad["K"] == "–" and "(0, 1]" in bad["problem"]


# ---------------------------------------------------------------------------------------------------------------------
# The built book

@pytest.fixture(scope="module")
def built() -> list[Path]:
    if not (HTML / "index.html").is_file():
        pytest.skip("the book is not built: run `.venv/bin/jupyter-book build -W -n --keep-going .` first")
    return book_pages()


def test_every_chapter_and_notebook_became_a_page(built):
    sources = [p for p in (ROOT / "book").rglob("*") if p.suffix in (".md", ".ipynb")
               and ".ipynb_checkpoints" not in p.parts
               and "generated" not in p.parts]  # book/generated/ holds text included into pages, not pages
    expected = set(CHAPTERS) | {str(p.relative_to(ROOT).with_suffix("")) for p in sources}
    missing = sorted(name for name in expected if not (HTML / f"{name}.html").is_file())
    assert not missing, (f"no page built for {missing}: the book is stale (rebuild it) or _toc.yml does not list "
                         "them (its globs must cover book/experiments/<profile>/)")


def test_local_links_resolve_and_nothing_loads_from_the_network(built):
    problems = []
    for page in built:
        html = page.read_text(encoding="utf-8")
        problems += [f"{page_id(page)}: {b}" for b in broken_local_refs(page, html)]
        problems += [f"{page_id(page)}: loads {r} from the network" for r in network_loads(html)]
    assert built, "no pages found under _build/html"
    assert not problems, "\n".join(problems)


def browser_or_skip() -> str:
    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed but CI is set: add `apt-get install -y chromium` to .ci/run")
        pytest.skip("Chromium is not installed (apt-get install -y chromium); the rendering checks need it")
    return browser


def open_in_chromium(browser: str, page: Path, png: Path | None = None, width: int = WIDE) -> tuple[str, str]:
    """(DOM after scripts ran, browser log) of ``page`` in a window ``width`` px wide, with a screenshot into ``png``
    if given."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        shot = [f"--screenshot={png}"] if png else []
        cmd = [browser, *CHROMIUM_FLAGS, f"--window-size={width},1600", f"--user-data-dir={profile}", *shot,
               "--dump-dom", page.as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return done.stdout, done.stderr[-2000:]


def render_pages(pages: list[Path], width: int) -> dict[Path, tuple[Path, str, str]]:
    """Each page opened in headless Chromium in a window ``width`` px wide, as a probed copy next to it (so that its
    relative links work): (screenshot, DOM after scripts ran, browser log)."""
    browser = browser_or_skip()
    if width < 500 and "headless-shell" not in Path(browser).name:
        message = f"{width}-px pages need chromium-headless-shell (chromium's headless window is at least 500 px)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    SHOTS.mkdir(parents=True, exist_ok=True)

    def render(page: Path) -> tuple[Path, str, str]:
        suffix = "" if width == WIDE else f"@{width}"
        png = SHOTS / (page_id(page).replace("/", "__").removesuffix(".html") + f"{suffix}.png")
        png.unlink(missing_ok=True)
        copy = page.with_name(f".probe{width}-{page.name}")
        copy.write_text(probed(page.read_text(encoding="utf-8")), encoding="utf-8")
        try:
            return png, *open_in_chromium(browser, copy, png, width)
        finally:
            copy.unlink()

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(pages, pool.map(render, pages), strict=True))


@pytest.fixture(scope="module")
def rendered(built) -> dict[Path, tuple[Path, str, str]]:
    return render_pages(built, WIDE)


@pytest.fixture(scope="module")
def rendered_narrow(built) -> dict[Path, tuple[Path, str, str]]:
    return render_pages(built, NARROW)


def test_every_page_renders_visibly(rendered):
    problems = []
    for page, (png, _, log) in rendered.items():
        if not png.is_file():
            problems.append(f"{page_id(page)}: Chromium wrote no screenshot ({log.strip()[-300:]})")
        elif reason := blank_reason(png):
            problems.append(f"{page_id(page)}: the screenshot {png} looks blank: {reason}")
    assert not problems, "\n".join(problems)


def test_math_is_typeset_offline(rendered):
    """Pages with math must come out of the vendored MathJax as typeset formulas, without TeX errors."""
    with_math = {p: v for p, v in rendered.items() if 'class="math' in p.read_text(encoding="utf-8")}
    assert HTML / "book" / "method.html" in with_math, "book/method.html should contain display math"
    problems = []
    for page, (_, dom, _) in with_math.items():
        if "<mjx-container" not in dom:
            problems.append(f"{page_id(page)}: MathJax did not typeset the math (is _static/mathjax there?)")
        if "<mjx-merror" in dom:
            problems.append(f"{page_id(page)}: MathJax reports a TeX error")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("width", [WIDE, NARROW])
def test_tables_and_figures_fit_the_column_and_figures_have_captions(width, request):
    """At a 1280-px and a 390-px window: nothing wider than the content column, figures at >= 60% of their natural
    width, captioned, in the body text's colour and with text >= 80 % of the body text, no number broken across lines,
    no script errors, subset planners filled in."""
    rendered = request.getfixturevalue("rendered" if width == WIDE else "rendered_narrow")
    problems, unprobed = [], []
    for page, (_, dom, log) in rendered.items():
        probe = probe_result(dom)
        if probe is None:
            if redirect_target(page, page.read_text(encoding="utf-8")) == page.resolve():
                unprobed.append(f"{page_id(page)}: the probe did not run ({log.strip()[-300:]})")
            continue
        problems += [f"{page_id(page)}: {p}" for p in layout_problems(probe)]
    assert not unprobed, "\n".join(unprobed)
    assert not problems, "\n".join(problems)


def test_front_page_links_to_the_claims(rendered):
    claims = HTML / CLAIMS
    if not claims.is_file():
        pytest.skip(f"{CLAIMS} is not built yet: the study's pages arrive with the study grid's results")
    front = redirect_target(HTML / "index.html", (HTML / "index.html").read_text(encoding="utf-8"))
    probe = probe_result(rendered[front][1]) if front in rendered else None
    assert probe is not None, f"the front page {front} was not rendered"
    assert links_to(probe, claims), f"the front page {front.relative_to(HTML)} does not link to {CLAIMS} in its text"


# ---------------------------------------------------------------------------------------------------------------------
# The executed pages (book/experiments/**.ipynb), read as the book renders them; no build needed

EXPERIMENTS = ROOT / "book" / "experiments"
PROVENANCE = EXPERIMENTS / "study" / "99-provenance.ipynb"


def executed_pages() -> list[Path]:
    return sorted(p for p in EXPERIMENTS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def outputs(notebook: dict) -> list[tuple[int, dict]]:
    """(cell number, output) of every output of an executed notebook (as JSON)."""
    return [(i, out) for i, cell in enumerate(notebook["cells"], start=1) for out in cell.get("outputs", [])]


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def noise_problems(notebook: dict) -> list[str]:
    """Console noise on a page: anything on stderr, and stdout lines that are warnings or log records."""
    problems = []
    for cell, out in outputs(notebook):
        if out.get("output_type") != "stream":
            continue
        text = _text(out.get("text"))
        stderr = out.get("name") == "stderr"
        lines = [ln for ln in text.splitlines() if ln.strip()] if stderr else console.console_noise(text)
        problems += [f"cell {cell}: {line.strip()[:120]}" for line in lines]
    return problems


def spreadless_problems(notebook: dict) -> list[str]:
    """'±' with no spread after it ('1.02 ± –'), in any text, table or markdown a page shows."""
    problems = []
    for cell, out in outputs(notebook):
        for text in [_text(v) for k, v in out.get("data", {}).items() if k in ("text/html", "text/markdown")]:
            for line in re.sub(r"<[^>]+>", "\n", htmlmod.unescape(text)).splitlines():
                if tables.NO_SPREAD.search(line):
                    problems.append(f"cell {cell}: '{line.strip()[:60]}'")
    return problems


def provenance_rows(notebook: dict) -> set[str]:
    """The run ids that have a row (an anchor ``run-<id>``) on the provenance page."""
    return {m for _, out in outputs(notebook) for m in re.findall(r'<tr id="run-([^"]+)"',
                                                                    _text(out.get("data", {}).get("text/html")))}


def source_problems(notebook: dict, known_runs: set[str]) -> list[str]:
    """Figures and tables without their source line or CSV, CSVs without a row per point with run id, seed and arm,
    and run ids that have no row on the provenance page."""
    problems = []
    for cell, out in outputs(notebook):
        page = _text(out.get("data", {}).get("text/html"))
        for kind, marker in (("figure", 'class="subsetlib-figure"'), ("table", 'class="subsetlib-table"')):
            if marker not in page:
                continue
            csvs = re.findall(r'<a class="subsetlib-csv"[^>]*href="data:text/csv;base64,([^"]+)"', page)
            if 'class="subsetlib-source"' not in page or not csvs:
                problems.append(f"cell {cell}: a {kind} without its source line and CSV (re-render the page)")
                continue
            if kind == "table":
                continue
            data = pd.read_csv(io.StringIO(base64.b64decode(csvs[0]).decode()))
            missing = [c for c in sources.DATA_COLUMNS if c not in data]
            if missing or data.empty:
                problems.append(f"cell {cell}: the figure's CSV lacks {missing or 'rows'}")
                continue
            linked = set(re.findall(r'99-provenance\.html#run-([^"]+)"', page))
            plotted = set(data["run_id"].dropna().astype(str))  # empty for a figure of computed values (no runs)
            if linked != plotted:
                problems.append(f"cell {cell}: the figure links {len(linked)} runs, its CSV has {len(plotted)}")
            unknown = sorted(plotted - known_runs)
            if unknown:
                problems.append(f"cell {cell}: runs {unknown[:3]} have no row on the provenance page")
    return problems


def test_page_checks_catch_noise_spreadless_values_and_missing_sources():
    data = pd.DataFrame({"run_id": ["r1", "r2"], "seed": [0, 1], "arm": ["conventional"] * 2, "y": [1.0, 2.0]})
    fig, ax = present.figure()
    ax.plot([0, 1], [1, 2])
    good_figure = present.figure_html(fig, "caption", data=data)
    fig, _ = present.figure()
    old_figure = present.figure_html(fig, "caption").replace('class="subsetlib-source"', "")
    notebook = {"cells": [{"outputs": [
        {"output_type": "stream", "name": "stderr", "text": ["USDT:2026 profiler_start\n"]},
        {"output_type": "stream", "name": "stdout", "text": "35 runs\n/tmp/x.py:2: FutureWarning: no\n"},
        {"output_type": "display_data", "data": {"text/html": "<td>1.02 ± –</td><td>98.9\u00a0±\u00a00.1</td>"}},
        {"output_type": "display_data", "data": {"text/html": good_figure}},
        {"output_type": "display_data", "data": {"text/html": old_figure}},
    ]}]}
    assert noise_problems(notebook) == ["cell 1: USDT:2026 profiler_start", "cell 1: /tmp/x.py:2: FutureWarning: no"]
    assert spreadless_problems(notebook) == ["cell 1: '1.02 ± –'"]
    problems = source_problems(notebook, {"r1"})
    assert problems == ["cell 1: runs ['r2'] have no row on the provenance page",
                        "cell 1: a figure without its source line and CSV (re-render the page)"], problems
    provenance = {"cells": [{"outputs": [{"output_type": "display_data", "data": {"text/html": tables.table(
        data, {"seed": "seed"}, anchors="run_id").to_html()}}]}]}
    assert provenance_rows(provenance) == {"r1", "r2"} and source_problems(notebook, {"r1", "r2"})[:-1] == []


def _pages_with(check) -> dict[str, list[str]]:
    found = {}
    for path in executed_pages():
        problems = check(json.loads(path.read_text(encoding="utf-8")))
        if problems:
            found[str(path.relative_to(ROOT))] = problems
    return found


def _report(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{page}: {'; '.join(problems[:4])}" for page, problems in found.items())


def test_no_page_shows_console_noise():
    """Warnings and log lines are for developers: wrap the noisy call in ``with console.quiet():``."""
    assert not (found := _pages_with(noise_problems)), _report(found)


def test_no_page_prints_plus_minus_without_a_spread():
    assert not (found := _pages_with(spreadless_problems)), _report(found)


def test_every_figure_and_table_carries_its_sources_and_csv():
    """Every figure's CSV has a row per point with run id, seed and arm, its links name the same runs, and each of
    those runs has a row on the provenance page."""
    if not PROVENANCE.is_file():
        pytest.skip("the provenance page has not been rendered yet")
    known = provenance_rows(json.loads(PROVENANCE.read_text(encoding="utf-8")))
    assert not (found := _pages_with(lambda nb: source_problems(nb, known))), _report(found)


def test_every_experiment_page_ends_with_its_rerun_box():
    def missing_footer(notebook: dict) -> list[str]:
        texts = [_text(out.get("data", {}).get("text/markdown")) for _, out in outputs(notebook)]
        return [] if any("Rerun this page" in t for t in texts) else ["no 'Rerun this page' box: end with nb.footer"]

    assert not (found := _pages_with(missing_footer)), _report(found)


def _parameter_defaults(notebook: Path) -> dict:
    cell = next(c for c in json.loads(notebook.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    return nb.parameter_defaults("".join(cell["source"]), {"SMOKE": False})


def test_the_calculator_offers_every_model_a_page_trains():
    """The Q planner's calculator lists the models of every grid and every notebook's default parameters (cifar-cpu
    on the CIFAR page, cnn-simple-narrow on the widths page), and computes their P as the runs build them."""
    from subsetlib.models import MODELS

    used = set()
    for grid in (ROOT / "grids").glob("*.yaml"):
        used |= set(re.findall(r"^\s*model:\s*([\w-]+)", grid.read_text(), re.M))
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        for value in _parameter_defaults(notebook).values():
            used |= {v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str) and v in MODELS}
    assert {"cifar-cpu", "cnn-simple-narrow"} <= used  # the grids and notebooks were read
    rows = planner.pairs(["cifar-cpu", "cnn-simple-narrow"], ["cifar10-jpeg"])
    assert [r["P"] for r in rows] == [planner.count_parameters(m, registry.dataset_spec("cifar10-jpeg"))
                                      for m in ("cifar-cpu", "cnn-simple-narrow")]
    offered = set(_parameter_defaults(ROOT / "notebooks" / "q_planner.ipynb")["model_names"])
    assert used <= offered, f"the calculator lacks {sorted(used - offered)}: add them to q_planner's model_names"


def test_no_source_notebook_shows_its_code_to_the_reader():
    """A page shows what the library computed, not the call: every code cell of a source notebook is the
    ``parameters`` cell or hides its input (``remove-input``, ``remove-cell``)."""
    shown = [f"{path.name}: {''.join(cell['source'])[:60]!r}"
             for path in sorted((ROOT / "notebooks").glob("*.ipynb"))
             for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
             if cell["cell_type"] == "code"
             and not {"parameters", "remove-input", "remove-cell"} & set(cell.get("metadata", {}).get("tags", []))]
    assert not shown, "\n".join(shown)
