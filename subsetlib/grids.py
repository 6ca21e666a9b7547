"""Grid files: what a batch runs, read and checked in full before anything runs; no torch (Dask workers import it).

A grid file (YAML) names stages, each a notebook with fixed parameters and lists whose product forms its cells
(``grids/study.yaml`` is the real one)::

    profile: study                      # results go to results/<profile>/, notebooks to book/experiments/<profile>/
    scale: "CPU study: 5 seeds"         # injected as `scale`, shown on every page
    seeds: [0, 1, 2, 3, 4]              # injected as `seeds` where a notebook declares it
    stages:                             # all cells run in parallel, except that a stage with `wait: true`
      - notebook: notebooks/study.ipynb   # starts only when every earlier stage has finished
        output: "01-{n}-hypothesis-{dataset}.ipynb"  # {n}: the cell's place in the grid, so pages sort as listed
        title: "The subset hypothesis: {dataset}"  # the page's heading; a dataset is named by its title ("MNIST")
        parameters: {model: cnn-simple}
        grid: {dataset: [mnist, fashion-mnist]}
      - notebook: notebooks/claims.ipynb
        output: 09-claims.ipynb
        wait: true
        refresh: true                     # a page that only reads what is stored: rendered again on every call

Every value is checked where it enters, with the rules the notebook itself applies (``notebook.check_parameter``):
the grid's seeds and scale once, a stage's fixed parameters once, each value of its grid once.
"""

import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from subsetlib.errors import UserError, check_seed
from subsetlib.registry import DATASETS
from subsetlib.repo import REPO_ROOT

GRID_KEYS = {"profile", "scale", "seeds", "stages", "results", "output_dir", "description"}
STAGE_KEYS = {"notebook", "output", "title", "parameters", "grid", "wait", "refresh"}
EXAMPLE = "grids/study.yaml"  # the grid a message points to as an example
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a profile names one folder, never a path


@dataclass(frozen=True)
class Cell:
    wave: int  # cells of one wave run in parallel; a stage with `wait: true` starts a new wave
    notebook: str  # absolute path of the source notebook
    output: str  # absolute path of the executed notebook
    parameters: dict = field(hash=False)
    key: str = ""
    title: str | None = None  # replaces the notebook's first heading, so each page has its own
    refresh: bool = False  # runs on every call, done or not: it only reads what is stored, which may have changed


@dataclass(frozen=True)
class Grid:
    profile: str
    results: Path
    cells: list[Cell]

    def state_path(self, cell: Cell) -> Path:
        return self.results / "cells" / f"{cell.key}.json"


def _shown(key: str, value: object) -> object:
    """A parameter as a page title shows it: a dataset by its name in prose (Fashion-MNIST, not fashion-mnist), and
    study v2's design by its dataset's (``mnist-gpu``: "MNIST (GPU)")."""
    if key == "design" and isinstance(value, str) and value.removesuffix("-gpu") in DATASETS:
        return DATASETS[value.removesuffix("-gpu")].title + (" (GPU)" if value.endswith("-gpu") else "")
    return DATASETS[value].title if key == "dataset" and value in DATASETS else value


def _slug(key: str, value: object) -> str:
    if isinstance(value, bool):
        return key if value else f"no-{key}"
    return str(value).replace("/", "_").replace(" ", "")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys without a word; in a grid file that hides a mistake."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_parameters_cell(notebook: Path, shown: str) -> dict[str, object]:
    """The parameters a notebook declares and their defaults, as ``notebook.end`` will see them."""
    import nbformat

    from subsetlib import notebook as nb

    try:
        book = nbformat.read(notebook, as_version=4)
        cells = [c for c in book.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    except Exception as err:  # nbformat raises JSON, schema, encoding and key errors alike
        raise UserError(f"{shown} is not a Jupyter notebook ({type(err).__name__}): name an .ipynb file") from None
    return nb.parameter_defaults(cells[0].source if cells else "", {"SMOKE": nb.smoke(), "os": os})


def _read_spec(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"grid file {path} does not exist: pass a YAML grid file such as {EXAMPLE}")
    try:
        spec = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = where.line + 1 if where else "?"
        problem = getattr(err, "problem", None) or "see the line"
        raise UserError(f"grid file {path} is not valid YAML (line {line}): {problem}; fix it") from None
    if not isinstance(spec, dict) or not spec.get("stages") or not isinstance(spec["stages"], list):
        raise UserError(f"grid file {path} needs a mapping with a non-empty 'stages' list (see the format in "
                        f"{EXAMPLE})")
    unknown = sorted(set(spec) - GRID_KEYS)
    if unknown:
        raise UserError(f"unknown grid key(s) {', '.join(unknown)} in {path}: "
                        f"valid keys are {', '.join(sorted(GRID_KEYS))}")
    profile = str(spec.get("profile", path.stem))
    if not PLAIN_NAME.fullmatch(profile):
        raise UserError(f"profile {profile!r} in {path} must be a plain folder name such as 'study' (letters, "
                        "digits, '.', '_', '-'; no '/' or '..'): it names results/<profile>/ and "
                        "book/experiments/<profile>/")
    if "seeds" in spec and (not isinstance(spec["seeds"], list) or not spec["seeds"]):
        raise UserError(f"'seeds' in {path} must be a non-empty list such as [0, 1] (got {spec['seeds']!r})")
    for seed in spec.get("seeds", []):
        try:
            check_seed(seed)
        except UserError as err:
            raise UserError(f"'seeds' in {path}: {err}") from None
    return {**spec, "profile": profile}


def check_values(values: dict, declared: dict, notebook: str, where: str | None = None) -> None:
    """Each value against the notebook's parameters cell: declared, and passing the notebook's own check."""
    from subsetlib.notebook import check_parameter

    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise UserError(f"unknown parameter(s) {', '.join(unknown)} for {notebook}: "
                        f"it takes {', '.join(sorted(declared))}")
    for name, value in values.items():
        try:
            check_parameter(name, value, declared[name])
        except UserError as err:
            raise UserError(f"{err} ({where})" if where else str(err)) from None


def _read_stage(stage: object, where: str, base: Path) -> tuple[Path, dict, dict, dict]:
    """A stage's notebook, its declared parameters, its fixed parameters and its grid, each checked."""
    if not isinstance(stage, dict) or "notebook" not in stage:
        raise UserError(f"{where} needs a 'notebook' entry")
    bad = sorted(set(stage) - STAGE_KEYS)
    if bad:
        raise UserError(f"unknown key(s) {', '.join(bad)} in {where}: valid keys are {', '.join(sorted(STAGE_KEYS))}")
    for flag in ("wait", "refresh"):
        if not isinstance(stage.get(flag, False), bool):
            raise UserError(f"'{flag}' in {where} must be true or false (got {stage[flag]!r})")
    for key in ("parameters", "grid"):
        if not isinstance(stage.get(key) or {}, dict):
            raise UserError(f"'{key}' in {where} must be a mapping of parameter names to values")
    notebook = (base / str(stage["notebook"])).resolve()
    if not notebook.is_file():
        raise UserError(f"notebook {stage['notebook']} ({where}) does not exist")
    declared = read_parameters_cell(notebook, f"notebook {stage['notebook']} ({where})")
    grid = stage.get("grid") or {}
    if any(not isinstance(v, list) or not v for v in grid.values()):
        raise UserError(f"every 'grid' entry in {where} must be a non-empty list")
    fixed = dict(stage.get("parameters") or {})
    check_values(fixed, declared, stage["notebook"], where)
    for name, values in grid.items():
        for value in values:
            check_values({name: value}, declared, stage["notebook"], where)
    return notebook, declared, fixed, grid


def _output_and_title(stage: dict, where: str, notebook: Path, grid: dict, params: dict, n: int,
                      output_dir: Path) -> tuple[Path, str | None]:
    template = str(stage.get("output", f"{notebook.stem}-" + "-".join("{" + k + "}" for k in grid)))
    try:
        name = template.format(**{"n": n, **{k: _slug(k, v) for k, v in params.items()}})
        title = str(stage["title"]).format(**{k: _shown(k, v) for k, v in params.items()}) \
            if stage.get("title") else None
    except (KeyError, IndexError, ValueError) as err:
        raise UserError(f"output name {template!r} or title in {where} uses {err}, which is not a parameter") from None
    name = name if name.endswith(".ipynb") else name + ".ipynb"
    output = (output_dir / name).resolve()
    if not output.is_relative_to(output_dir) or output.name.startswith("."):
        raise UserError(f"output name {template!r} in {where} gives {output}, outside the output folder "
                        f"{output_dir}: use a plain file name")
    return output, title


def _folder(text: object, relative_to: Path, base: Path, what: str, where: str) -> Path:
    """A folder a grid names: an absolute path as written, or a relative one (to ``relative_to``) that stays inside
    the repository ``base``; one that climbs out of it is refused."""
    path = Path(str(text))
    resolved = (relative_to / path).resolve()
    if not path.is_absolute() and not resolved.is_relative_to(base.resolve()):
        raise UserError(f"{what} {text} in {where} leads out of the repository (to {resolved}): name a folder inside "
                        "it, or give an absolute path to write there")
    return resolved


def _check_folders(values: dict, notebook: Path, base: Path, where: str) -> None:
    """A stage's folder parameters (``*_dir``, ``*_dirs``; relative to the notebook's folder) stay in the repository;
    ``results_dir`` is the grid's ``results:``, never a stage's."""
    if "results_dir" in values:
        raise UserError(f"results_dir in {where} is set by the grid's 'results:' key: leave it out of the stage, and "
                        "set 'results:' at the top of the grid file instead")
    for name, value in values.items():
        if name.endswith(("_dir", "_dirs")):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    _folder(item, notebook.parent, base, f"parameter {name}", where)


def load_grid(path: str | os.PathLike, base: Path = REPO_ROOT) -> Grid:
    """Read and check a grid file, every cell's parameters included, before anything runs; every problem is one
    UserError naming the fix."""
    from subsetlib.notebook import check_page

    path = Path(path)
    spec = _read_spec(path)
    profile = spec["profile"]
    results = _folder(spec.get("results", f"results/{profile}"), base, base, "results:", str(path))
    output_dir = _folder(spec.get("output_dir", f"book/experiments/{profile}"), base, base, "output_dir:", str(path))
    checked = {"seeds"}  # a grid-level value is checked once: the seeds above, the scale by its first notebook
    cells, wave = [], 0
    for number, stage in enumerate(spec["stages"]):
        where = f"stage {number + 1} of {path}"
        notebook, declared, fixed, grid = _read_stage(stage, where, base)
        _check_folders({**fixed, **grid}, notebook, base, where)
        wave += bool(stage.get("wait")) and number > 0
        injected = {k: spec[k] for k in ("scale", "seeds") if spec.get(k) is not None and k in declared}
        check_values({k: v for k, v in injected.items() if k not in checked}, declared, stage["notebook"], where)
        checked |= set(injected)
        for n, combo in enumerate(itertools.product(*grid.values()) if grid else [()], start=1):
            params = {**injected, **fixed, **dict(zip(grid, combo, strict=True))}
            try:
                check_page(notebook, {**declared, **params})
            except UserError as err:
                raise UserError(f"{err} ({where})") from None
            if "results_dir" in declared:
                params["results_dir"] = os.path.relpath(results, notebook.parent)
            output, title = _output_and_title(stage, where, notebook, grid, params, n, output_dir)
            key_text = json.dumps({"notebook": stage["notebook"], "parameters": params}, sort_keys=True)
            key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
            cells.append(Cell(wave, str(notebook), str(output), params, key, title, bool(stage.get("refresh"))))
    outputs = [c.output for c in cells]
    if len(set(outputs)) != len(outputs):
        raise UserError(f"two cells of {path} would write the same notebook: make each stage's 'output' name use "
                        "every grid parameter")
    return Grid(profile, results, cells)
