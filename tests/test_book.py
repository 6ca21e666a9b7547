"""Check the built book as a reader would: every page's local links resolve, nothing is loaded from the network,
every page renders to something visible in a real browser, and MathJax (vendored, offline) typesets the math.

Needs the book built first (``jupyter-book build -W -n --keep-going .``); without ``_build/html/index.html`` the
checks of the built book skip. The browser checks need Chromium: without it they skip on a developer's machine but
fail when ``CI`` is set, so CI cannot pass them silently.
"""

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image, ImageStat

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static"}
SKIP_PAGES = {"genindex.html", "search.html"}
CHAPTERS = ("book/intro", "book/method", "book/reproduce", "book/limitations")
EXTERNAL = ("http:", "https:", "mailto:", "data:", "javascript:", "tel:")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--no-pings", "--disable-breakpad",
    # The page must not need the network; this also keeps the browser's own background requests on this machine.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars", "--window-size=1280,1600", "--virtual-time-budget=5000",
]


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
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


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


# ---------------------------------------------------------------------------------------------------------------------
# The built book

@pytest.fixture(scope="module")
def built() -> list[Path]:
    if not (HTML / "index.html").is_file():
        pytest.skip("the book is not built: run `.venv/bin/jupyter-book build -W -n --keep-going .` first")
    return book_pages()


def test_every_chapter_and_notebook_became_a_page(built):
    sources = [p for p in (ROOT / "book").rglob("*") if p.suffix in (".md", ".ipynb")
               and ".ipynb_checkpoints" not in p.parts]
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


@pytest.fixture(scope="module")
def rendered(built) -> dict[Path, tuple[Path, str, str]]:
    """Each page opened in headless Chromium once: (screenshot, DOM after scripts ran, browser log)."""
    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed but CI is set: add `apt-get install -y chromium` to .ci/run")
        pytest.skip("Chromium is not installed (apt-get install -y chromium); the rendering checks need it")
    SHOTS.mkdir(parents=True, exist_ok=True)

    def render(page: Path) -> tuple[Path, str, str]:
        png = SHOTS / (page_id(page).replace("/", "__").removesuffix(".html") + ".png")
        png.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", "--dump-dom",
                   page.as_uri()]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return png, done.stdout, done.stderr[-2000:]

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(built, pool.map(render, built), strict=True))


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
