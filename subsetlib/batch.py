"""Run a grid of notebooks (``grids.load_grid``) with papermill on a Dask cluster, resumably.

Each cell's state lives in ``<results>/cells/<key>.json`` (key = hash of notebook and parameters), written
atomically after its notebook has been renamed into place: a rerun skips finished cells (except a stage's with
``refresh: true``, a page that only reads what is stored), and a runner killed at any
point leaves cells that are either finished or not started. Failed cells are recorded with their error and skipped
on rerun unless ``retry_failed``. The notebooks themselves skip runs already in the results store, so a cell that
was interrupted resumes at its first missing run.

Exactly once on any cluster: a task holds a lock named after its cell on the Dask scheduler while it runs, and
checks under it whether the cell's state changed since the runner looked. A runner killed mid-cell on an external
cluster leaves its task running on the worker; the rerun says that it waits for it, and its task for that cell waits
for the lock, then finds the cell done and only reports it.
"""

import contextlib
import fnmatch
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from subsetlib.errors import UserError
from subsetlib.grids import Cell, Grid, load_grid
from subsetlib.io import atomic_write, atomic_write_text, check_writable
from subsetlib.pages import execute
from subsetlib.repo import REPO_ROOT

CONNECT_SECONDS = 5  # an address that does not answer within this is reported as unreachable


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


def _lock_name(key: str) -> str:
    return f"subsetlib-cell-{key}"


def _cell_lease(key: str) -> contextlib.AbstractContextManager:
    """A lock on the Dask scheduler named after the cell, held while it runs. A runner killed mid-cell leaves its task
    running on an external worker; the rerun's task for the same cell waits here until that one has finished, and
    then finds the cell done. The scheduler gives the lease up only when its holder's worker is gone."""
    try:
        from distributed import Lock, get_worker

        get_worker()
    except (ImportError, ValueError):  # called outside a Dask worker: nothing else runs this cell
        return contextlib.nullcontext()
    return Lock(_lock_name(key))


def execute_cell(cell: Cell, state_path: str, threads: int | None = None, seen: int | None = None) -> dict:
    """Run one cell with papermill (kernel python3) and record its state, unless its state has changed since the
    runner saw it (``seen``, from ``_stamp``): then another task ran it meanwhile. Runs on a Dask worker, whose
    event loop would print a traceback when Ctrl-C closes the cluster under a held lease: that is not news."""
    logging.getLogger("tornado.application").setLevel(logging.CRITICAL)
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
        execute(cell.notebook, tmp, cell.parameters)
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


def quiet_resource_tracker() -> None:
    """After a runner is killed, multiprocessing's resource tracker (started by the local cluster's processes) cleans
    up after it and warns of "leaked semaphore objects": not news after a kill. The tracker is a fresh interpreter
    that inherits this environment, so the filter must be set before the first process starts."""
    quiet = "ignore:resource_tracker:UserWarning"
    if quiet not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), quiet]))


def renders_again(cell: Cell, again: str | None = None) -> bool:
    """Whether a done cell is rendered once more: its stage refreshes, or its output file name matches ``again``."""
    return cell.refresh or (again is not None and fnmatch.fnmatch(Path(cell.output).name, again))


def run_grid(path: str | os.PathLike, retry_failed: bool = False, scheduler: str | None = None,
             workers: int | None = None, progress: bool = True, worker_wait: float = 60.0,
             again: str | None = None) -> GridReport:
    """Run every unfinished cell of a grid on Dask, wave by wave; report what ran, what was skipped and what failed.

    With ``scheduler``, the address of a running Dask scheduler, it must answer within a few seconds and have a
    worker within ``worker_wait`` seconds; nothing is created before both are known. ``again``, a glob on the output
    file names, renders matching cells that are done once more: a cell's key is its parameters, so a change to its
    notebook or to the library leaves it done (its runs stay stored; the page is drawn again from them).
    """
    from distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

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
    todo = [c for c in grid.cells if status[c.key] in rerun or (status[c.key] == "done" and renders_again(c, again))]
    kept = [status[c.key] for c in grid.cells if c not in todo]
    report = GridReport([], skipped_done=kept.count("done"), skipped_failed=kept.count("failed"))
    quiet = bool(os.environ.get("CI") or os.environ.get("TQDM_DISABLE")) or not progress
    lines = not quiet and not sys.stderr.isatty()  # a log file or a pipe: plain lines, not a bar
    bar = tqdm(total=len(todo), desc=f"grid {grid.profile}", unit="cell", disable=quiet or lines or not todo)
    say = bar.write if not bar.disable else (lambda text: print(f"subsetlib: {text}", file=sys.stderr, flush=True)
                                             ) if lines else (lambda text: None)
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
                if not folder.is_relative_to(REPO_ROOT.resolve()):  # as the grid asked, but worth a word
                    print(f"subsetlib: writing to the {what} {folder}, outside the repository", file=sys.stderr)
        if todo and not scheduler:
            if gpus:
                os.environ["SUBSETLIB_WORKER_GPUS"] = gpus
            quiet_resource_tracker()
            # no more workers than the widest wave has cells, and the cores shared among them: a one-cell grid
            # gives its kernel every core instead of one
            widest = max(sum(c.wave == w for c in todo) for w in {c.wave for c in todo})
            n_local = min(workers or n, widest)
            threads = threads if gpus else max(1, (os.cpu_count() or 1) // n_local)
            with _sigint_ignored():  # Ctrl-C reaches the runner only, which closes the cluster: one line, not 11
                cluster = LocalCluster(n_workers=n_local, threads_per_worker=1, processes=True,
                                       dashboard_address=":0",  # any free port: two runners never collide
                                       silence_logs=logging.ERROR)
            client = Client(cluster)
        for wave in sorted({c.wave for c in todo}):
            cells = {c.key: c for c in todo if c.wave == wave}
            if scheduler:
                for name in _held_by_earlier_runner(cells.values()):
                    print(f"waiting for cell {name}: a runner killed earlier left it running on the cluster; it is "
                          "reported when that task ends", file=sys.stderr)
            futures = [client.submit(execute_cell, c, str(grid.state_path(c)), threads, _stamp(grid.state_path(c)),
                                     key=f"cell-{c.key}", pure=False) for c in cells.values()]
            running = {Path(c.output).stem for c in cells.values()}
            bar.set_postfix_str(_names(running))
            if lines:
                say(f"grid {grid.profile}: {len(cells)} cells started or queued ({', '.join(sorted(running))})")
            for future in as_completed(futures):
                state = future.result()
                running.discard(Path(state["output"]).stem)
                bar.set_postfix_str(_names(running))
                bar.update(1)
                if state.get("skipped"):  # another task (of a killed runner) finished it meanwhile
                    report.skipped_done += 1
                    continue
                report.ran += 1
                if lines:
                    say(f"grid {grid.profile}: {report.ran} of {len(todo)} cells finished: "
                        f"{Path(state['output']).name} {state['status']} after {state['seconds']:.0f} s")
                if state["status"] == "failed":
                    report.failed_now += 1
                    say(f"failed: {Path(state['output']).name}: {state['error']}")
    except KeyboardInterrupt:
        for name in ("distributed", "tornado"):  # workers stopped mid-task, and lock leases refreshed while closing,
            logging.getLogger(name).setLevel(logging.CRITICAL)  # would say so in tracebacks of their own
        raise
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


def _held_by_earlier_runner(cells) -> list[str]:
    """The cells whose lock a task is holding before this runner submitted anything: a killed runner's."""
    from distributed import Lock

    return [Path(c.output).name for c in cells if Lock(_lock_name(c.key)).locked()]


@contextlib.contextmanager
def _sigint_ignored():
    """Processes started inside inherit an ignored SIGINT (Python keeps it so), and Dask's workers ignore Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set a handler
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
