"""What every experiment notebook calls around its ``parameters`` cell.

A notebook starts with ``SMOKE = nb.begin(globals())``, then its cell tagged ``parameters``, then
``params = nb.end(globals())``. papermill only warns about parameters a notebook does not declare; ``end`` turns
that into an error, checks the injected values against the defaults' types, and shows the values actually used in
a provenance box (the book hides papermill's injected cell).
"""

import ast
import html
import os
import platform
import subprocess
from datetime import UTC, datetime

from subsetlib.data import REPO_ROOT
from subsetlib.errors import UserError

SMOKE_ENV = "SUBSETLIB_SMOKE"
_state: dict = {}


def smoke() -> bool:
    """True when CI asks for tiny sizes (``SUBSETLIB_SMOKE=1``)."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def begin(namespace: dict) -> bool:
    """Remember where the parameters cell starts; return the smoke flag for it to use."""
    _state["start"] = len(namespace.get("In", []))
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
    from subsetlib.data import dataset_spec
    from subsetlib.errors import check_seed
    from subsetlib.q import check_fraction

    return {"dataset": dataset_spec, "model": _check_model, "seed": check_seed, "fraction": check_fraction}


# parameters whose values name a registry entry or must pass a shared check; a list parameter is checked per item
CHECKED = {"dataset": "dataset", "datasets": "dataset", "model": "model", "model_names": "model", "seed": "seed",
           "seeds": "seed", "speedrun_seeds": "seed", "fraction": "fraction", "fractions": "fraction",
           "start_fraction": "fraction", "growing_start": "fraction"}


def check_parameter(name: str, value: object, default: object) -> None:
    """One parameter value against its default's type and, for the names in ``CHECKED``, against the registries:
    the same check whether the batch runner loads a grid or the notebook itself starts."""
    if not _type_ok(default, value):
        raise UserError(f"parameter {name} must be {type(default).__name__} like its default {default!r} "
                        f"(got {value!r})")
    if name in CHECKED:
        check = _registry_checks()[CHECKED[name]]
        for item in value if isinstance(value, list | tuple) else [value]:
            try:
                check(item)
            except UserError as err:
                raise UserError(f"parameter {name}: {err}") from None


def end(namespace: dict) -> dict:
    """Check injected parameters, show the provenance box and return the parameters as a dict.

    Raises UserError for a parameter the notebook does not declare or a value of the wrong type.
    """
    history = namespace.get("In", [])
    cells = history[_state.get("start", len(history)): -1] if history else []
    declared_sources = cells[:1]
    injected_sources = cells[1:]
    declared = {name for src in declared_sources for name in _assigned(src)}
    injected = {name for src in injected_sources for name in _assigned(src)}
    unknown = sorted(injected - declared)
    if unknown:
        raise UserError(f"unknown parameter(s) {', '.join(unknown)}: this notebook takes {', '.join(sorted(declared))}")
    params = {name: namespace[name] for name in sorted(declared)}
    defaults = parameter_defaults(declared_sources[0], namespace) if injected else {}
    for name in sorted(injected):
        check_parameter(name, params[name], defaults[name])
    _show_box(params, injected)
    return params


def _show_box(params: dict, injected: set[str]) -> None:
    from IPython.display import HTML, display

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    rows = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(repr(v))}</code>"
        f"{' (set by the run)' if k in injected else ''}</td></tr>" for k, v in params.items())
    scale = "smoke test (tiny sizes for CI)" if smoke() else params.get("scale", "ad hoc")
    display(HTML(
        f'<div class="admonition note"><p class="admonition-title">Provenance of this page</p>'
        f"<p>Scale: <b>{html.escape(str(scale))}</b>. Executed {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on "
        f"{html.escape(device)}, commit <code>{commit}</code>, torch {torch.__version__}, Python "
        f"{platform.python_version()}.</p><table>{rows}</table></div>"))
