"""What every experiment notebook calls around its ``parameters`` cell.

A notebook starts with ``SMOKE = nb.begin(globals())``, then its cell tagged ``parameters``, then
``params = nb.end(globals())``. papermill only warns about parameters a notebook does not declare; ``end`` turns
that into an error, checks the injected values against the defaults' types, and shows the values actually used in
a provenance box (the book hides papermill's injected cell). ``footer`` ends every page: it names the commits the
shown runs were made at in that box and prints the command that regenerates the page.
"""

import ast
import html
import json
import math
import numbers
import os
import platform
import shlex
from datetime import UTC, datetime
from pathlib import Path

from subsetlib.errors import UserError, check_fraction, check_seed
from subsetlib.io import check_writable
from subsetlib.repo import REPO_ROOT, commit

SMOKE_ENV = "SUBSETLIB_SMOKE"
NOTEBOOKS = REPO_ROOT / "notebooks"
BOX_ID = "subsetlib-provenance"
RESULTS_DIR_FIX = "set the parameter results_dir to a writable folder (-p results_dir PATH)"
_state: dict = {}


def smoke() -> bool:
    """True when CI asks for tiny sizes (``SUBSETLIB_SMOKE=1``)."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def begin(namespace: dict) -> bool:
    """Remember where the parameters cell starts (and the names bound so far); return the smoke flag for it."""
    _state["start"] = len(namespace.get("In", []))
    _state["names"] = set(namespace)
    return smoke()


def _assigned(source: str) -> dict[str, object]:
    """Names assigned at the top level of a cell, with their literal value where there is one."""
    names: dict[str, object] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node.value
    return names


def _type_ok(default: object, value: object) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and (isinstance(default, float) or isinstance(value, int))
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))


def parameter_defaults(source: str, namespace: dict) -> dict[str, object]:
    """The default of every parameter a ``parameters`` cell assigns, evaluated in ``namespace`` (a default may be an
    expression such as ``1 if SMOKE else 10``: the notebook's own code). A default that cannot be evaluated there
    maps to None, so its type is not checked."""
    defaults = {}
    for name, node in _assigned(source).items():
        try:
            defaults[name] = eval(compile(ast.Expression(node), "<parameters>", "eval"), dict(namespace))
        except Exception:  # needs more of the notebook than the namespace holds
            defaults[name] = None
    return defaults


def _check_model(name: object) -> None:
    from subsetlib.models import MODELS

    if name in MODELS:
        return
    import torchvision.models

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise UserError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))} or a torchvision "
                        "classification model name")


def _registry_checks() -> dict[str, object]:
    from subsetlib.certified.design import design as minima_design
    from subsetlib.data import resolve_device
    from subsetlib.registry import dataset_spec
    from subsetlib.studies import design, study_config
    from subsetlib.train import check_precision

    return {"dataset": dataset_spec, "model": _check_model, "seed": check_seed, "fraction": check_fraction,
            "precision": check_precision, "study": study_config, "design": design, "device": resolve_device,
            "minima_design": minima_design}


def _number_rule(low: float, low_open: bool = True, whole: bool = False, high: float = math.inf):
    """A check for numbers in (low, high) (or [low, high) with ``low_open=False``), finite; whole ones if asked."""
    bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
    what = f"a whole number {bound}" if whole else f"a finite number {bound}"

    def check(value: object) -> None:
        ok = isinstance(value, numbers.Integral if whole else numbers.Real) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not (value > low if low_open else value >= low) or value > high:
            raise UserError(f"must be {what} (got {value!r})")
    return check


COUNT, COUNT_OR_ZERO = _number_rule(0, whole=True), _number_rule(0, low_open=False, whole=True)
RULES = {"dataset": "dataset", "model": "model", "seed": "seed", "fraction": "fraction", "precision": "precision",
         "study": "study", "design": "design", "device": "device", "minima_design": "minima_design",
         "count": COUNT, "count_or_zero": COUNT_OR_ZERO, "positive": _number_rule(0),
         "not_negative": _number_rule(0, low_open=False), "growth": _number_rule(1),
         "eval_dense": _number_rule(0, low_open=False, whole=True, high=20)}
# which rule a parameter's values follow, by name: a list (or a mapping's values) is checked per item, None is "not
# set"; any other number must be finite
CHECKED = {"dataset": "dataset", "datasets": "dataset", "model": "model", "models": "model", "model_names": "model",
           "narrow_model": "model", "speedrun_model": "model", "seed": "seed", "seeds": "seed",
           "speedrun_seeds": "seed", "switch_seeds": "seed", "fraction": "fraction", "fractions": "fraction",
           "narrow_fractions": "fraction", "start_fraction": "fraction", "precision": "precision",
           "precisions": "precision", "speedrun_precision": "precision", "threads": "count_or_zero",
           "loop_workers": "count_or_zero", "eval_dense": "eval_dense", "lr": "positive", "speedrun_lr": "positive",
           "eval_every": "positive", "target_qs": "positive", "tabular_qs": "positive", "target_fraction": "positive",
           "tabular_target_fraction": "positive", "noise_levels": "not_negative",
           "tabular_weight_decay": "not_negative", "growth": "growth", "growths": "growth",
           "k_train": "count", "k_test": "count", "inputs": "count", "hidden": "count", "outputs": "count",
           "tabular_hidden": "count", "study_name": "study",
           "design": "design", "designs": "design", "device": "device", "minima_design": "minima_design",
           "minima_designs": "minima_design"}
COUNT_SUFFIXES = ("epochs", "steps", "iterations", "size", "sizes", "examples", "rounds")  # subset_steps, batch_size


def _items(value: object) -> list:
    if isinstance(value, dict):
        return [item for v in value.values() for item in _items(v)]
    return [item for v in value for item in _items(v)] if isinstance(value, list | tuple) else [value]


def _rule(name: str):
    if name in CHECKED:
        rule = RULES[CHECKED[name]]
        return _registry_checks()[rule] if isinstance(rule, str) else rule
    return COUNT if name.endswith(COUNT_SUFFIXES) else None


def check_parameter(name: str, value: object, default: object) -> None:
    """One parameter value against its default's type and the library's rule for it (``CHECKED``, or a count by
    its name's ending): the same check whether the grid loader, the ``page`` command or the notebook itself asks."""
    if not _type_ok(default, value):
        raise UserError(f"parameter {name} must be {type(default).__name__} like its default {default!r} "
                        f"(got {value!r})")
    rule = _rule(name)
    for item in _items(value):
        if item is None:
            continue
        if isinstance(item, float) and not math.isfinite(item):
            raise UserError(f"parameter {name} must be a finite number (got {item!r})")
        if rule is not None:
            try:
                rule(item)
            except UserError as err:
                raise UserError(f"parameter {name}: {err}" if not str(err).startswith("must") else
                                f"parameter {name} {err}") from None


def check_page(notebook: str | os.PathLike, params: dict) -> None:
    """What a page's parameters must satisfy together (each value alone passed ``check_parameter``): checked with
    all of them, defaults included, before its kernel starts, by the grid loader and the ``page`` command alike."""
    if Path(notebook).stem == "beyond_teacher_student":
        from subsetlib.teacher import check_sizes

        check_sizes(params["inputs"], params["hidden"], params["outputs"], params["k_train"], params["target_qs"])
    if Path(notebook).stem.startswith("certified_"):
        from subsetlib.certified.design import check_cell

        name = params.get("minima_design")
        if isinstance(name, str) and isinstance(params.get("width"), int):
            check_cell(name, params["width"])


def end(namespace: dict) -> dict:
    """Check injected parameters, show the provenance box and return the parameters as a dict.

    Raises UserError for a parameter the notebook does not declare or a value of the wrong type.
    """
    history = namespace.get("In", [])
    cells = history[_state.get("start", len(history)): -1] if history else []
    declared_sources = cells[:1]
    injected_sources = cells[1:]
    declared = {name for src in declared_sources for name in _assigned(src)}
    if not cells:  # run without a history (nbval executes cells so): the names bound since begin, but its flag
        declared = {name for name in set(namespace) - _state.get("names", set(namespace))
                    if not name.startswith("_") and name != "SMOKE"}
    injected = {name for src in injected_sources for name in _assigned(src)}
    unknown = sorted(injected - declared)
    if unknown:
        raise UserError(f"unknown parameter(s) {', '.join(unknown)}: this notebook takes {', '.join(sorted(declared))}")
    params = {name: namespace[name] for name in sorted(declared)}
    defaults = parameter_defaults(declared_sources[0], namespace) if injected else {}
    for name in sorted(injected):
        check_parameter(name, params[name], defaults[name])
    _state.update(params=dict(params), injected=sorted(injected))
    if isinstance(params.get("results_dir"), str):  # relative to notebooks/, whatever the working directory
        params["results_dir"] = namespace["results_dir"] = str(results_path(params["results_dir"]))
        check_writable(params["results_dir"], fix=RESULTS_DIR_FIX)  # before any training, not after it
    _show_box(_state["params"], injected)
    return params


def results_path(results_dir: str) -> Path:
    """A relative ``results_dir`` is relative to the notebook's folder, where the batch runner (and papermill with
    ``--cwd``) starts its kernel. papermill started from the repository root without ``--cwd`` runs the kernel there
    instead; that case is mapped to ``notebooks/``, so an ad-hoc run stores its runs in the repository's ``results/``
    rather than beside the repository."""
    path = Path(results_dir)
    if path.is_absolute():
        return path
    base = NOTEBOOKS if Path.cwd().resolve() == REPO_ROOT.resolve() else Path.cwd()
    return (base / path).resolve()


BOX_CELL = "white-space:normal;overflow-wrap:anywhere;word-break:break-word"


def box_html(params: dict, injected: set[str] | list[str], run_commits: list[str] | None = None) -> str:
    """One line a reader can take in (scale, commits of the runs, device, when), the full parameters folded below."""
    import torch

    from subsetlib.data import device_name, resolve_device

    device = device_name(resolve_device("auto"))
    scale = "smoke test (tiny sizes for CI)" if smoke() else params.get("scale", "ad hoc")
    page_commit = commit(10)
    commits = sorted(set(run_commits or []))
    if not commits:
        made = f"commit <code>{page_commit}</code>"
    elif len(commits) == 1:
        made = f"runs made at commit <code>{commits[0]}</code>" + (
            "" if commits[0] == page_commit else f", page rendered at <code>{page_commit}</code>")
    else:
        made = (f"runs span {len(commits)} commits ({', '.join(f'<code>{c}</code>' for c in commits)}), "
                f"page rendered at <code>{page_commit}</code>")
    # a long value (a scale sentence, a list of seeds) wraps inside the column instead of widening the table past it
    rows = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td>"
        f'<td style="{BOX_CELL}"><code style="{BOX_CELL}">{html.escape(repr(v))}</code>'
        f"{' (set by the run)' if k in injected else ''}</td></tr>" for k, v in params.items())
    return (f'<div class="admonition note subsetlib-provenance"><p class="admonition-title">Provenance</p>'
            f"<p><b>{html.escape(str(scale))}</b> · {made} · {html.escape(device)} · "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>"
            f"<details><summary>All {len(params)} parameters, torch {torch.__version__}, Python "
            f"{platform.python_version()}</summary><table>{rows}</table></details></div>")


def _show_box(params: dict, injected: set[str]) -> None:
    from IPython.display import HTML, display

    display(HTML(box_html(params, injected)), display_id=BOX_ID)


PUBLISHING = ("answer_dir",)
"""Parameters through which a book grid writes into ``book/`` (the front page's answers). A rerun box never carries
the grid's value: it names ``ADHOC_GENERATED`` instead, and ``pages.prepare`` refuses any path into ``book/``."""
ADHOC_GENERATED = "results/adhoc/generated"  # from the repository root: where an ad-hoc rerun's answers go


def is_path_parameter(name: str) -> bool:
    """A parameter that names a folder (``results_dir``, ``cifar_results_dir``, ``results_dirs``, ``answer_dir``)."""
    return name.endswith(("_dir", "_dirs"))


def _box_parameters(params: dict, names: list[str]) -> list[tuple[str, object]]:
    """The parameters a rerun box prints: the injected ones, folders as the page reads them (relative to
    ``notebooks/``, for ``page`` as for papermill's ``--cwd notebooks``), less the grid's ``PUBLISHING`` folders,
    which it replaces by ``ADHOC_GENERATED``."""
    out = [(k, params[k]) for k in names if k not in PUBLISHING]
    return out + [(k, f"../{ADHOC_GENERATED}") for k in PUBLISHING if k in params]


def page_command(notebook: str, params: dict | None = None, injected: list[str] | None = None) -> str:
    """The ``page`` command, run from the repository root, that regenerates this page with its own parameters:
    text as it is, everything else as JSON (which the command reads as YAML). Folders are relative to
    ``notebooks/``, as ``page`` reads them; a folder into ``book/`` is never printed."""
    params = _state.get("params", {}) if params is None else params
    names = _state.get("injected", []) if injected is None else injected
    parts = [f".venv/bin/python -m subsetlib page notebooks/{Path(notebook).stem}.ipynb"]
    for key, value in _box_parameters(params, names):
        text = value if isinstance(value, str) else json.dumps(list(value) if isinstance(value, tuple) else value)
        parts.append(f"-p {key} {shlex.quote(text)}")
    return " \\\n    ".join(parts)


def rerun_command(notebook: str, params: dict | None = None, injected: list[str] | None = None) -> str:
    """The papermill command, run from the repository root, that regenerates this page with its own parameters.

    Strings go through ``-r`` (raw, so "1e-3" stays text), lists and mappings through one ``-y`` YAML mapping,
    numbers and booleans through ``-p``.
    """
    params = _state.get("params", {}) if params is None else params
    names = _state.get("injected", []) if injected is None else injected
    name = Path(notebook).stem
    parts = [f".venv/bin/papermill notebooks/{name}.ipynb results/adhoc/{name}.ipynb --cwd notebooks"]
    structured = {}
    for key, value in _box_parameters(params, names):  # the kernel runs in notebooks/
        if isinstance(value, list | tuple | dict):
            structured[key] = list(value) if isinstance(value, tuple) else value
        elif isinstance(value, str):
            parts.append(f"-r {key} {shlex.quote(value)}")
        else:
            parts.append(f"-p {key} {value!r}")
    if structured:
        parts.append(f"-y {shlex.quote(json.dumps(structured))}")
    return " \\\n    ".join(parts)


def batch_command(params: dict | None = None) -> str | None:
    """The batch command of the grid whose results this page shows (None for an ad-hoc run)."""
    params = _state.get("params", {}) if params is None else params
    profile = Path(str(params.get("results_dir", ""))).name
    grid = REPO_ROOT / "grids" / f"{profile}.yaml"
    return f".venv/bin/python -m subsetlib batch grids/{profile}.yaml" if grid.is_file() else None


def footer(notebook: str, runs=None, scale: str | None = None) -> None:
    """End a page: name the commits of ``runs`` (a DataFrame with ``git_commit``) in the provenance box, and show
    the commands that regenerate the page, ready to copy and change. ``scale`` replaces the grid's scale in the box,
    for a page whose runs come from several grids (the claims page: every dataset's budget)."""
    from IPython.display import HTML, Markdown, display, update_display

    if runs is not None and "git_commit" in runs and "params" in _state:
        commits = [str(c)[:10] for c in runs["git_commit"].dropna().unique()]
        params = _state["params"] if scale is None else {**_state["params"], "scale": scale}
        update_display(HTML(box_html(params, _state["injected"], commits)), display_id=BOX_ID)
    text = ["**Rerun this page.** From the repository root, after `bash scripts/setup.sh`; change any value to "
            "explore (a changed parameter is trained anew, stored runs are loaded). A relative folder is relative to "
            "`notebooks/`, as the page reads it, so everything stays inside the repository; nothing is written into "
            "`book/`. The `page` command checks the values before it starts and writes "
            "`results/adhoc/<page>.ipynb`:", "",
            "```bash", page_command(notebook), "```", "", "Or with plain papermill:", "",
            "```bash", "mkdir -p results/adhoc", rerun_command(notebook), "```"]
    batch = batch_command()
    if batch:
        text += ["", "Or the whole grid this page belongs to (cells already done are skipped):", "",
                 "```bash", batch, "```"]
    display(Markdown("\n".join(text)))
