"""Run a grid of notebooks with papermill on a Dask cluster, resumably.

A grid file (YAML) names stages, each a notebook with fixed parameters and lists whose product forms its cells::

    profile: quick                      # results go to results/<profile>/, notebooks to book/experiments/<profile>/
    scale: "quick: reduced budget, CPU"  # injected as `scale`, shown on every page
    seeds: [0, 1]                       # injected as `seeds` where a notebook declares it
    stages:                             # all cells run in parallel, except that a stage with `wait: true`
      - notebook: notebooks/subset_pretraining.ipynb   # starts only when every earlier stage has finished
        output: "02-subset-{dataset}-{augment}.ipynb"
        title: "Subset pretraining: {dataset}"  # the page's heading
        parameters: {model: cnn-simple}
        grid: {dataset: [mnist, fashion-mnist], augment: [false, true]}
      - notebook: notebooks/summary.ipynb
        output: 09-summary.ipynb
        wait: true

Each cell's state lives in ``<results>/cells/<key>.json`` (key = hash of notebook and parameters), written
atomically after its notebook has been renamed into place: a rerun skips finished cells, and a runner killed at any
point leaves cells that are either finished or not started. Failed cells are recorded with their error and skipped
on rerun unless ``retry_failed``. The notebooks themselves skip runs already in the results store, so a cell that
was interrupted resumes at its first missing run.
"""

import hashlib
import itertools
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from subsetlib.errors import UserError

# As in subsetlib.data, but not imported from there: a Dask worker unpickling execute_cell then needs no torch.
REPO_ROOT = Path(__file__).resolve().parent.parent

GRID_KEYS = {"profile", "scale", "seeds", "stages", "results", "output_dir", "description"}
STAGE_KEYS = {"notebook", "output", "title", "parameters", "grid", "wait"}


@dataclass(frozen=True)
class Cell:
    wave: int  # cells of one wave run in parallel; a stage with `wait: true` starts a new wave
    notebook: str  # absolute path of the source notebook
    output: str  # absolute path of the executed notebook
    parameters: dict = field(hash=False)
    key: str = ""
    title: str | None = None  # replaces the notebook's first heading, so each page has its own


@dataclass(frozen=True)
class Grid:
    profile: str
    results: Path
    cells: list[Cell]

    def state_path(self, cell: Cell) -> Path:
        return self.results / "cells" / f"{cell.key}.json"


def _slug(key: str, value: object) -> str:
    if isinstance(value, bool):
        return key if value else f"no-{key}"
    return str(value).replace("/", "_").replace(" ", "")


def _declared_parameters(notebook: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def load_grid(path: str | os.PathLike, base: Path = REPO_ROOT) -> Grid:
    """Read and check a grid file; every problem is one UserError naming the fix."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"grid file {path} does not exist: pass a YAML file such as grids/quick.yaml")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = where.line + 1 if where else "?"
        raise UserError(f"grid file {path} is not valid YAML (line {line}): fix it") from None
    if not isinstance(spec, dict) or not spec.get("stages"):
        raise UserError(f"grid file {path} needs a mapping with a non-empty 'stages' list (see grids/quick.yaml)")
    unknown = sorted(set(spec) - GRID_KEYS)
    if unknown:
        raise UserError(f"unknown grid key(s) {', '.join(unknown)} in {path}: "
                        f"valid keys are {', '.join(sorted(GRID_KEYS))}")
    profile = str(spec.get("profile", path.stem))
    results = (base / spec.get("results", f"results/{profile}")).resolve()
    output_dir = (base / spec.get("output_dir", f"book/experiments/{profile}")).resolve()
    cells, wave = [], 0
    for number, stage in enumerate(spec["stages"]):
        if not isinstance(stage, dict) or "notebook" not in stage:
            raise UserError(f"stage {number + 1} in {path} needs a 'notebook' entry")
        bad = sorted(set(stage) - STAGE_KEYS)
        if bad:
            raise UserError(f"unknown key(s) {', '.join(bad)} in stage {number + 1} of {path}: "
                            f"valid keys are {', '.join(sorted(STAGE_KEYS))}")
        wave += bool(stage.get("wait")) and number > 0
        notebook = (base / stage["notebook"]).resolve()
        if not notebook.is_file():
            raise UserError(f"notebook {stage['notebook']} (stage {number + 1} of {path}) does not exist")
        declared = _declared_parameters(notebook)
        grid = stage.get("grid") or {}
        if any(not isinstance(v, list) or not v for v in grid.values()):
            raise UserError(f"every 'grid' entry in stage {number + 1} of {path} must be a non-empty list")
        fixed = dict(stage.get("parameters") or {})
        injected = {"results_dir": None, "scale": spec.get("scale"), "seeds": spec.get("seeds")}
        for combo in itertools.product(*grid.values()) if grid else [()]:
            values = dict(zip(grid, combo, strict=True))
            params = {**{k: v for k, v in injected.items() if v is not None and k in declared}, **fixed, **values}
            unknown = sorted(set(params) - declared)
            if unknown:
                raise UserError(f"unknown parameter(s) {', '.join(unknown)} for {stage['notebook']}: "
                                f"it takes {', '.join(sorted(declared))}")
            if "results_dir" in declared:
                params["results_dir"] = os.path.relpath(results, notebook.parent)
            template = stage.get("output", f"{notebook.stem}-" + "-".join("{" + k + "}" for k in grid))
            try:
                name = template.format(**{k: _slug(k, v) for k, v in params.items()})
                title = stage["title"].format(**params) if stage.get("title") else None
            except KeyError as err:
                raise UserError(f"output name {template!r} in stage {number + 1} uses {err}, "
                                "which is not a parameter") from None
            name = name if name.endswith(".ipynb") else name + ".ipynb"
            key_text = json.dumps({"notebook": stage["notebook"], "parameters": params}, sort_keys=True)
            key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
            cells.append(Cell(wave, str(notebook), str(output_dir / name), params, key, title))
    outputs = [c.output for c in cells]
    if len(set(outputs)) != len(outputs):
        raise UserError(f"two cells of {path} would write the same notebook: make each stage's 'output' name use "
                        "every grid parameter")
    return Grid(profile, results, cells)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def cell_status(grid: Grid, cell: Cell) -> str | None:
    """'done', 'failed', or None (never finished)."""
    try:
        state = json.loads(grid.state_path(cell).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if state.get("status") == "done" and not Path(cell.output).is_file():
        return None
    return state.get("status")


def _finish_notebook(output: Path, title: str | None) -> None:
    """Ready an executed notebook for the book: its own title, and the parameters shown in the provenance box
    instead of papermill's injected cell and the defaults."""
    import nbformat

    nb = nbformat.read(output, as_version=4)
    heading = next((c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# ")), None)
    if title and heading is not None:
        heading.source = "\n".join([f"# {title}", *heading.source.splitlines()[1:]])
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("injected-parameters" in tags or "parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, output)


def execute_cell(cell: Cell, state_path: str, threads: int | None = None) -> dict:
    """Run one cell with papermill (kernel python3) and record its state. Runs on a Dask worker."""
    import papermill

    env_threads = str(threads) if threads else os.environ.get("OMP_NUM_THREADS", "")
    if env_threads:
        os.environ["OMP_NUM_THREADS"] = env_threads  # the kernel inherits it
    try:
        from distributed import get_worker

        gpus = os.environ.get("SUBSETLIB_WORKER_GPUS")
        if gpus:  # one worker per GPU: worker i sees GPU i only
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus.split(",")[int(get_worker().name) % len(gpus.split(","))]
    except (ImportError, ValueError):
        pass
    output = Path(cell.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.stem}.", suffix=".ipynb")
    os.close(fd)
    started = time.time()
    state = {"key": cell.key, "notebook": cell.notebook, "output": cell.output, "parameters": cell.parameters}
    try:
        papermill.execute_notebook(cell.notebook, tmp, parameters=cell.parameters, kernel_name="python3",
                                   cwd=str(Path(cell.notebook).parent), progress_bar=False)
        _finish_notebook(Path(tmp), cell.title)
        os.replace(tmp, output)
        state.update(status="done")
    except Exception as err:  # a failed cell is recorded and the grid goes on
        state.update(status="failed", error=_one_line(err))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    state["seconds"] = time.time() - started
    _atomic_write_text(Path(state_path), json.dumps(state, indent=1, default=str))
    return state


def _one_line(err: Exception) -> str:
    """papermill's error text holds the whole traceback; keep the exception's own line."""
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    return f"{ename}: {str(evalue).strip().splitlines()[-1] if str(evalue).strip() else ''}"


def default_workers() -> tuple[int, int, str | None]:
    """(workers, threads per worker, GPU list): one worker per GPU, else one per core."""
    try:
        import torch

        gpus = torch.cuda.device_count()
    except ImportError:
        gpus = 0
    if gpus:
        return gpus, max(1, (os.cpu_count() or 1) // gpus), ",".join(str(i) for i in range(gpus))
    return os.cpu_count() or 1, 1, None


def run_grid(path: str | os.PathLike, retry_failed: bool = False, scheduler: str | None = None,
             workers: int | None = None, progress: bool = True) -> list[dict]:
    """Run every unfinished cell of a grid on Dask, wave by wave. Returns the state of every cell."""
    from distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    from subsetlib.results import check_writable

    grid = load_grid(path)
    folders = [(grid.results, "results directory", f"set 'results:' in {path} to a writable folder")]
    folders += [(folder, "output directory", f"set 'output_dir:' in {path} to a writable folder")
                for folder in sorted({Path(c.output).parent for c in grid.cells})]
    for folder, what, fix in folders:  # all checked before any is created: a bad grid leaves nothing behind
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(f"{what} {folder} cannot be created ({existing} is not a writable folder): {fix}")
    for folder, what, fix in folders:
        check_writable(folder, what, fix)
    rerun = {None, "failed"} if retry_failed else {None}
    todo = [c for c in grid.cells if cell_status(grid, c) in rerun]  # each state file read once
    if not todo:
        return [json.loads(grid.state_path(c).read_text()) for c in grid.cells]
    for cell in todo:  # a runner killed mid-cell leaves its hidden partial notebook; it must not become a page
        output = Path(cell.output)
        if output.parent.is_dir():
            for stale in output.parent.iterdir():
                if stale.name.startswith(f".{output.stem}.") and stale.name.endswith(".ipynb"):
                    stale.unlink(missing_ok=True)
    n, threads, gpus = default_workers()
    n = workers or n
    if gpus:
        os.environ["SUBSETLIB_WORKER_GPUS"] = gpus
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    bar = tqdm(total=len(todo), desc=f"grid {grid.profile}", unit="cell",
               disable=bool(os.environ.get("CI") or os.environ.get("TQDM_DISABLE")) or not progress)
    try:
        for wave in sorted({c.wave for c in todo}):
            futures = [client.submit(execute_cell, c, str(grid.state_path(c)), threads, key=f"cell-{c.key}", pure=False)
                       for c in todo if c.wave == wave]
            for future in as_completed(futures):
                state = future.result()
                bar.update(1)
                if state["status"] == "failed":
                    bar.write(f"failed: {Path(state['output']).name}: {state['error']}")
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return [json.loads(grid.state_path(c).read_text()) for c in grid.cells if grid.state_path(c).is_file()]
