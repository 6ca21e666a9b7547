"""Run a grid of notebooks with papermill on a Dask cluster, resumably.

A grid file (YAML) names stages, each a notebook with fixed parameters and lists whose product forms its cells::

    profile: quick                      # results go to results/<profile>/, notebooks to book/experiments/<profile>/
    scale: "quick: reduced budget, CPU"  # injected as `scale`, shown on every page
    seeds: [0, 1]                       # injected as `seeds` where a notebook declares it
    stages:                             # all cells run in parallel, except that a stage with `wait: true`
      - notebook: notebooks/subset_pretraining.ipynb   # starts only when every earlier stage has finished
        output: "02-{n}-subset-{dataset}-{augment}.ipynb"  # {n}: the cell's place in the grid, so pages sort as listed
        title: "Subset pretraining: {dataset}"  # the page's heading; a dataset is named by its title ("MNIST")
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

Exactly once on any cluster: a task holds a lock named after its cell on the Dask scheduler while it runs, and
checks under it whether the cell's state changed since the runner looked. A runner killed mid-cell on an external
cluster leaves its task running on the worker; the rerun's task for that cell waits for the lock, then finds the cell
done and only reports it.
"""

import contextlib
import hashlib
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from subsetlib.errors import UserError, check_seed
from subsetlib.io import atomic_write, atomic_write_text
from subsetlib.registry import DATASETS
from subsetlib.repo import REPO_ROOT

GRID_KEYS = {"profile", "scale", "seeds", "stages", "results", "output_dir", "description"}
STAGE_KEYS = {"notebook", "output", "title", "parameters", "grid", "wait"}
CONNECT_SECONDS = 5  # an address that does not answer within this is reported as unreachable


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


@dataclass
class GridReport:
    """What a batch did: every cell's recorded state, and how many cells ran now or were skipped."""

    states: list[dict]
    ran: int = 0
    failed_now: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0  # failed before and not retried

    @property
    def failed(self) -> list[dict]:
        return [s for s in self.states if s.get("status") == "failed"]


def _shown(key: str, value: object) -> object:
    """A parameter as a page title shows it: a dataset by its name in prose (Fashion-MNIST, not fashion-mnist)."""
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


def _read_parameters_cell(notebook: Path, shown: str) -> tuple[set[str], dict[str, object]]:
    """The parameters a notebook declares and their defaults, as ``notebook.end`` will see them."""
    import nbformat

    from subsetlib import notebook as nb

    try:
        book = nbformat.read(notebook, as_version=4)
        cells = [c for c in book.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    except Exception as err:  # nbformat raises JSON, schema, encoding and key errors alike
        raise UserError(f"{shown} is not a Jupyter notebook ({type(err).__name__}): name an .ipynb file") from None
    source = cells[0].source if cells else ""
    defaults = nb.parameter_defaults(source, {"SMOKE": nb.smoke(), "os": os})
    return set(defaults), defaults


def load_grid(path: str | os.PathLike, base: Path = REPO_ROOT) -> Grid:
    """Read and check a grid file, every cell's parameters included, before anything runs; every problem is one
    UserError naming the fix."""
    from subsetlib.notebook import check_parameter

    path = Path(path)
    if not path.is_file():
        raise UserError(f"grid file {path} does not exist: pass a YAML file such as grids/quick.yaml")
    try:
        spec = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = where.line + 1 if where else "?"
        problem = getattr(err, "problem", None) or "see the line"
        raise UserError(f"grid file {path} is not valid YAML (line {line}): {problem}; fix it") from None
    if not isinstance(spec, dict) or not spec.get("stages") or not isinstance(spec["stages"], list):
        raise UserError(f"grid file {path} needs a mapping with a non-empty 'stages' list (see grids/quick.yaml)")
    unknown = sorted(set(spec) - GRID_KEYS)
    if unknown:
        raise UserError(f"unknown grid key(s) {', '.join(unknown)} in {path}: "
                        f"valid keys are {', '.join(sorted(GRID_KEYS))}")
    if "seeds" in spec:
        if not isinstance(spec["seeds"], list) or not spec["seeds"]:
            raise UserError(f"'seeds' in {path} must be a non-empty list such as [0, 1] (got {spec['seeds']!r})")
        for seed in spec["seeds"]:
            try:
                check_seed(seed)
            except UserError as err:
                raise UserError(f"'seeds' in {path}: {err}") from None
    profile = str(spec.get("profile", path.stem))
    results = (base / spec.get("results", f"results/{profile}")).resolve()
    output_dir = (base / spec.get("output_dir", f"book/experiments/{profile}")).resolve()
    cells, wave = [], 0
    for number, stage in enumerate(spec["stages"]):
        where = f"stage {number + 1} of {path}"
        if not isinstance(stage, dict) or "notebook" not in stage:
            raise UserError(f"{where} needs a 'notebook' entry")
        bad = sorted(set(stage) - STAGE_KEYS)
        if bad:
            raise UserError(f"unknown key(s) {', '.join(bad)} in {where}: "
                            f"valid keys are {', '.join(sorted(STAGE_KEYS))}")
        if not isinstance(stage.get("wait", False), bool):
            raise UserError(f"'wait' in {where} must be true or false (got {stage['wait']!r})")
        for key in ("parameters", "grid"):
            if not isinstance(stage.get(key) or {}, dict):
                raise UserError(f"'{key}' in {where} must be a mapping of parameter names to values")
        wave += bool(stage.get("wait")) and number > 0
        notebook = (base / str(stage["notebook"])).resolve()
        if not notebook.is_file():
            raise UserError(f"notebook {stage['notebook']} ({where}) does not exist")
        declared, defaults = _read_parameters_cell(notebook, f"notebook {stage['notebook']} ({where})")
        grid = stage.get("grid") or {}
        if any(not isinstance(v, list) or not v for v in grid.values()):
            raise UserError(f"every 'grid' entry in {where} must be a non-empty list")
        fixed = dict(stage.get("parameters") or {})
        injected = {"results_dir": None, "scale": spec.get("scale"), "seeds": spec.get("seeds")}
        for n, combo in enumerate(itertools.product(*grid.values()) if grid else [()], start=1):
            values = dict(zip(grid, combo, strict=True))
            params = {**{k: v for k, v in injected.items() if v is not None and k in declared}, **fixed, **values}
            unknown = sorted(set(params) - declared)
            if unknown:
                raise UserError(f"unknown parameter(s) {', '.join(unknown)} for {stage['notebook']}: "
                                f"it takes {', '.join(sorted(declared))}")
            for name, value in params.items():
                try:
                    check_parameter(name, value, defaults[name])
                except UserError as err:
                    raise UserError(f"{err} ({where})") from None
            if "results_dir" in declared:
                params["results_dir"] = os.path.relpath(results, notebook.parent)
            template = str(stage.get("output", f"{notebook.stem}-" + "-".join("{" + k + "}" for k in grid)))
            try:
                name = template.format(**{"n": n, **{k: _slug(k, v) for k, v in params.items()}})
                title = str(stage["title"]).format(**{k: _shown(k, v) for k, v in params.items()}) \
                    if stage.get("title") else None
            except (KeyError, IndexError, ValueError) as err:
                raise UserError(f"output name {template!r} or title in {where} uses {err}, "
                                "which is not a parameter") from None
            name = name if name.endswith(".ipynb") else name + ".ipynb"
            output = (output_dir / name).resolve()
            if not output.is_relative_to(output_dir) or output.name.startswith("."):
                raise UserError(f"output name {template!r} in {where} gives {output}, outside the output folder "
                                f"{output_dir}: use a plain file name")
            key_text = json.dumps({"notebook": stage["notebook"], "parameters": params}, sort_keys=True)
            key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
            cells.append(Cell(wave, str(notebook), str(output), params, key, title))
    outputs = [c.output for c in cells]
    if len(set(outputs)) != len(outputs):
        raise UserError(f"two cells of {path} would write the same notebook: make each stage's 'output' name use "
                        "every grid parameter")
    return Grid(profile, results, cells)


def _status(state_path: Path, output: str) -> str | None:
    try:
        state = json.loads(state_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if state.get("status") == "done" and not Path(output).is_file():
        return None
    return state.get("status")


def cell_status(grid: Grid, cell: Cell) -> str | None:
    """'done', 'failed', or None (never finished)."""
    return _status(grid.state_path(cell), cell.output)


def _stamp(state_path: Path) -> int | None:
    """When a cell's state was last written (None: never): a task compares it to see whether another finished it."""
    try:
        return state_path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


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


def _cell_lease(key: str) -> contextlib.AbstractContextManager:
    """A lock on the Dask scheduler named after the cell, held while it runs. A runner killed mid-cell leaves its task
    running on an external worker; the rerun's task for the same cell waits here until that one has finished, and
    then finds the cell done. The scheduler gives the lease up only when its holder's worker is gone."""
    try:
        from distributed import Lock, get_worker

        get_worker()
    except (ImportError, ValueError):  # called outside a Dask worker: nothing else runs this cell
        return contextlib.nullcontext()
    return Lock(f"subsetlib-cell-{key}")


def execute_cell(cell: Cell, state_path: str, threads: int | None = None, seen: int | None = None) -> dict:
    """Run one cell with papermill (kernel python3) and record its state, unless its state has changed since the
    runner saw it (``seen``, from ``_stamp``): then another task ran it meanwhile. Runs on a Dask worker."""
    with _cell_lease(cell.key):
        if _stamp(Path(state_path)) != seen:
            return {**json.loads(Path(state_path).read_text()), "skipped": True}
        return _execute(cell, Path(state_path), threads)


def _kernel_environment(threads: int | None) -> None:
    """Set the environment the notebook's kernel inherits from this worker: its threads, its GPU, and not Dask's
    ``MALLOC_TRIM_THRESHOLD_``.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which makes glibc hand freed memory back to
    the OS after nearly every tensor; a kernel that inherits it trained cnn-simple 2-3x slower on the CPU (5.3k
    against 15.5k examples/s, fp32 channels-last, batch 128; measured 2026-11-26, see the speed page).
    """
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    env_threads = str(threads) if threads else os.environ.get("OMP_NUM_THREADS", "")
    if env_threads:
        os.environ["OMP_NUM_THREADS"] = env_threads
    try:
        from distributed import get_worker

        gpus = os.environ.get("SUBSETLIB_WORKER_GPUS")
        if gpus:  # one worker per GPU: worker i sees GPU i only
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus.split(",")[int(get_worker().name) % len(gpus.split(","))]
    except (ImportError, ValueError):
        pass


def _execute(cell: Cell, state_path: Path, threads: int | None) -> dict:
    import papermill

    _kernel_environment(threads)
    output = Path(cell.output)
    # A task killed mid-cell leaves its hidden partial notebook (it must not become a page) and, killed between
    # writing its state and renaming it into place, a hidden state file; this cell's lock is held, so both are stale.
    for target, suffix in ((output, ".ipynb"), (state_path, ".tmp")):
        for stale in target.parent.glob(f".{target.name}.*{suffix}") if target.parent.is_dir() else ():
            stale.unlink(missing_ok=True)
    started = time.time()
    state = {"key": cell.key, "notebook": cell.notebook, "output": cell.output, "parameters": cell.parameters}

    def run(tmp: Path) -> None:
        papermill.execute_notebook(cell.notebook, str(tmp), parameters=cell.parameters, kernel_name="python3",
                                   cwd=str(Path(cell.notebook).parent), progress_bar=False)
        _finish_notebook(tmp, cell.title)

    try:
        atomic_write(output, run, suffix=".ipynb")
        state.update(status="done")
    except Exception as err:  # a failed cell is recorded and the grid goes on
        state.update(status="failed", error=_one_line(err))
    state["seconds"] = time.time() - started
    atomic_write_text(state_path, json.dumps(state, indent=1, default=str))
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


def _connect(scheduler: str, worker_wait: float):
    """A client of an external scheduler that has at least one worker, or one UserError line."""
    import logging

    from distributed import Client

    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # its retries would print tracebacks of their own
    try:
        client = Client(scheduler, timeout=CONNECT_SECONDS)
    except Exception as err:  # distributed raises OSError, TimeoutError, ValueError or TypeError by address
        reason = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot reach a Dask scheduler at {scheduler!r} ({reason[:200]}): check --scheduler "
                        "(e.g. tcp://10.0.0.5:8786), or leave it out to start a local cluster") from None
    try:
        client.wait_for_workers(1, timeout=worker_wait)
    except TimeoutError:
        client.close()
        raise UserError(f"no Dask worker has joined the scheduler at {scheduler} within {worker_wait:g} s: start one "
                        f"with 'dask worker {scheduler}', or wait longer with --worker-wait") from None
    return client


def run_grid(path: str | os.PathLike, retry_failed: bool = False, scheduler: str | None = None,
             workers: int | None = None, progress: bool = True, worker_wait: float = 60.0) -> GridReport:
    """Run every unfinished cell of a grid on Dask, wave by wave; report what ran, what was skipped and what failed.

    With ``scheduler``, the address of a running Dask scheduler, it must answer within a few seconds and have a
    worker within ``worker_wait`` seconds; nothing is created before both are known.
    """
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
    status = {c.key: cell_status(grid, c) for c in grid.cells}  # each state file read once
    rerun = {None, "failed"} if retry_failed else {None}
    todo = [c for c in grid.cells if status[c.key] in rerun]
    report = GridReport([], skipped_done=sum(s == "done" for s in status.values()),
                        skipped_failed=sum(s == "failed" for s in status.values()) * (not retry_failed))
    bar = tqdm(total=len(todo), desc=f"grid {grid.profile}", unit="cell",
               disable=bool(os.environ.get("CI") or os.environ.get("TQDM_DISABLE")) or not progress or not todo)
    say = bar.write if not bar.disable else (lambda text: None)
    if report.skipped_done or report.skipped_failed:
        say(f"skipping {report.skipped_done} cells already done"
            + (f" and {report.skipped_failed} that failed before (--retry-failed reruns them)"
               if report.skipped_failed else ""))
    n, threads, gpus = default_workers()
    cluster = client = None
    try:
        if scheduler:  # checked even with nothing to do: a wrong address is worth knowing now
            client = _connect(scheduler, worker_wait)
        if todo:
            for folder, what, fix in folders:
                check_writable(folder, what, fix)
        if todo and not scheduler:
            if gpus:
                os.environ["SUBSETLIB_WORKER_GPUS"] = gpus
            # no more workers than the widest wave has cells, and the cores shared among them: a one-cell grid
            # gives its kernel every core instead of one
            widest = max(sum(c.wave == w for c in todo) for w in {c.wave for c in todo})
            n_local = min(workers or n, widest)
            threads = threads if gpus else max(1, (os.cpu_count() or 1) // n_local)
            cluster = LocalCluster(n_workers=n_local, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        for wave in sorted({c.wave for c in todo}):
            cells = {c.key: c for c in todo if c.wave == wave}
            futures = [client.submit(execute_cell, c, str(grid.state_path(c)), threads, _stamp(grid.state_path(c)),
                                     key=f"cell-{c.key}", pure=False) for c in cells.values()]
            running = {Path(c.output).stem for c in cells.values()}
            bar.set_postfix_str(_names(running))
            for future in as_completed(futures):
                state = future.result()
                running.discard(Path(state["output"]).stem)
                bar.set_postfix_str(_names(running))
                bar.update(1)
                if state.get("skipped"):  # another task (of a killed runner) finished it meanwhile
                    report.skipped_done += 1
                    continue
                report.ran += 1
                if state["status"] == "failed":
                    report.failed_now += 1
                    say(f"failed: {Path(state['output']).name}: {state['error']}")
    finally:
        bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    report.states = [json.loads(grid.state_path(c).read_text()) for c in grid.cells if grid.state_path(c).is_file()]
    return report


def _names(running: set[str], shown: int = 3) -> str:
    """The cells in progress (running or queued), for the progress bar."""
    names = sorted(running)
    more = f" +{len(names) - shown}" if len(names) > shown else ""
    return f"in progress: {', '.join(names[:shown])}{more}" if names else ""
