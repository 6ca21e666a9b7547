"""Run one page (a notebook) with papermill, its parameters checked before a kernel starts.

``python -m subsetlib page notebooks/study.ipynb -p dataset fashion-mnist -p seeds "[0, 1, 2]"`` checks each value
against the notebook's parameters cell and the library's rule for it (``grids.check_values``), reads a relative folder
(``results_dir``, ``*_dir``) relative to the notebook's folder as the page does, refuses a folder into ``book/``,
checks that ``results_dir`` is writable, runs the notebook in its own folder and writes the executed page to
``results/adhoc/<name>.ipynb``. A mistake, found before or inside the kernel, is one ``UserError`` line. The batch
runner executes its cells through ``execute`` too. No torch here: Dask workers import it.
"""

import os
from pathlib import Path

import yaml

from subsetlib.errors import UserError
from subsetlib.grids import check_values, read_parameters_cell
from subsetlib.io import check_writable
from subsetlib.notebook import check_page
from subsetlib.repo import REPO_ROOT

QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]  # not Jupyter's warning about unencrypted TCP on every start
RESULTS_DIR_FIX = "set the parameter results_dir to a writable folder (-p results_dir PATH)"


class PageFailed(Exception):
    """A page stopped on an error in its own code (not a user's mistake): one line, and where the traceback is."""


def execute(notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict) -> None:
    """papermill in the notebook's folder, with a quiet kernel."""
    import papermill

    papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                               cwd=str(Path(notebook).parent), progress_bar=False, extra_arguments=QUIET_KERNEL)


def parse_value(text: str, default: object) -> object:
    """A value as typed after ``-p NAME``: text where the default is text, else YAML (numbers, true/false, lists
    such as [0, 1], mappings), with papermill's reading of numbers (1e-3 is a number)."""
    if isinstance(default, str):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def find_notebook(name: str) -> Path:
    """A notebook by path, or by name in ``notebooks/`` (``study`` or ``study.ipynb``)."""
    for path in (Path(name), REPO_ROOT / "notebooks" / name, REPO_ROOT / "notebooks" / f"{name}.ipynb"):
        if path.is_file():
            return path.resolve()
    raise UserError(f"notebook {name} does not exist: name one in notebooks/, e.g. notebooks/study.ipynb")


def _resolved(value: object, base: Path) -> object:
    if isinstance(value, list | tuple):
        return [_resolved(v, base) for v in value]
    return str((base / value).resolve()) if isinstance(value, str) and value else value


def resolve_folders(values: dict, declared: dict, base: Path) -> dict:
    """Folders as every page and its rerun box read them: a relative folder is relative to the notebook's folder
    ``base`` (``notebooks/``), whatever the working folder, as for papermill's ``--cwd notebooks`` and the batch
    runner; so a box copied and run from the repository root stores its runs in the repository's ``results/``. A
    folder the page publishes into ``book/`` through (``PUBLISHING``) goes to ``results/adhoc/generated`` unless
    given; a folder inside ``book/`` is refused, so that an ad-hoc rerun never changes the book's tracked files."""
    from subsetlib.notebook import ADHOC_GENERATED, PUBLISHING, is_path_parameter

    values = {n: _resolved(v, base) if is_path_parameter(n) else v for n, v in values.items()}
    for n in PUBLISHING:
        if n in declared and n not in values:
            values[n] = str(REPO_ROOT / ADHOC_GENERATED)
    book = (REPO_ROOT / "book").resolve()
    for n, v in values.items():
        for path in (v if isinstance(v, list) else [v]) if is_path_parameter(n) else []:
            if isinstance(path, str) and path and Path(path).resolve().is_relative_to(book):
                raise UserError(f"parameter {n} points into book/ ({path}): an ad-hoc page never writes into the "
                                f"book; pass a folder under results/, e.g. -p {n} {ADHOC_GENERATED}")
    return values


def prepare(name: str, pairs: list[tuple[str, str]], output: str | None = None) -> tuple[Path, Path, dict]:
    """The notebook, the output path and the checked parameters; nothing is started or written but the folders."""
    notebook = find_notebook(name)
    declared = read_parameters_cell(notebook, f"notebook {name}")
    names = [n for n, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"parameter(s) {', '.join(twice)} given twice: give each once")
    unknown = sorted(set(names) - set(declared))
    if unknown:
        raise UserError(f"unknown parameter(s) {', '.join(unknown)} for {name}: it takes {', '.join(sorted(declared))}")
    values = {n: parse_value(text, declared[n]) for n, text in pairs}
    check_values(values, declared, name)
    check_page(notebook, {**declared, **values})
    values = resolve_folders(values, declared, notebook.parent)
    if isinstance(values.get("results_dir", declared.get("results_dir")), str):
        check_writable((notebook.parent / values.get("results_dir", declared["results_dir"])).resolve(),
                       fix=RESULTS_DIR_FIX)
    target = Path(output) if output else REPO_ROOT / "results" / "adhoc" / f"{notebook.stem}.ipynb"
    if target.suffix != ".ipynb":
        raise UserError(f"output {target} must end in .ipynb")
    check_writable(target.resolve().parent, "output folder", "pass another --output")
    return notebook, target.resolve(), values


def run_page(notebook: Path, target: Path, values: dict) -> None:
    """Execute what ``prepare`` checked. A UserError inside the kernel comes back as a UserError, any other error
    as PageFailed."""
    from papermill import PapermillExecutionError

    try:
        execute(notebook, target, values)
    except PapermillExecutionError as err:
        text = str(err.evalue).strip().splitlines()
        if err.ename == "UserError":
            raise UserError(text[-1] if text else "the page refused its parameters") from None
        raise PageFailed(f"{err.ename}: {text[-1] if text else ''} (the traceback is in {target})") from None
