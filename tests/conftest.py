"""Shared helpers: tiny synthetic runs, skeleton notebooks written into tmp folders, and child processes that are
started in their own process group, marked, and never left behind."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import torch

from subsetlib import data, protocols

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
REAL_DATA = ROOT.parent / "shared" / "data"
MARK = "SUBSETLIB_TEST_MARK"


def tiny_config(**changes) -> protocols.RunConfig:
    """Seconds, not minutes, on 2 CPU cores: the synthetic set, big batches, no evaluation between phase ends."""
    settings = {"dataset": "synthetic", "batch_size": 250, "eval_every": 100.0, "eval_train": False}
    return protocols.RunConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread while a module's tests train: on 2 shared cores, OpenMP threads that spin while waiting for
    each other cost ten times the work itself. Restored afterwards, so other modules keep their setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic() -> data.Dataset:
    return data.load("synthetic", device="cpu")


@pytest.fixture(scope="session")
def mini(synthetic) -> data.Dataset:
    """The first 400 training and 100 test examples of the synthetic set (40 and 10 per class): a fifth of the cost."""
    return data.Dataset(synthetic.spec, synthetic.x_train[:400], synthetic.y_train[:400], synthetic.x_test[:100],
                        synthetic.y_test[:100], synthetic.root)


# ---------------------------------------------------------------------------------------------------------------------
# Notebooks following the skeleton in docs/CONTRIBUTING.md

BEGIN = "import os\nimport subsetlib.notebook as nb\nSMOKE = nb.begin(globals())"
PARAMETERS = ('dataset = "synthetic"\nepochs = 1 if SMOKE else 2\nlr = 0.001\nseed = 0\n'
              'results_dir = "../results/adhoc"\nscale = "ad hoc"')
END = "params = nb.end(globals())"
SAVE_ONE_RUN = """\
import os
from subsetlib import data, protocols, results
print("MALLOC_TRIM_THRESHOLD_ =", os.environ.get("MALLOC_TRIM_THRESHOLD_"))
print("OMP_NUM_THREADS =", os.environ.get("OMP_NUM_THREADS"))
cfg = protocols.RunConfig(dataset=dataset, lr=lr, batch_size=500, eval_every=100.0, eval_train=False)
rid = protocols.run_id("conventional", cfg, seed, epochs=epochs)
if not results.has_run(results_dir, rid):
    ds = data.load(dataset, device="cpu")
    results.save(protocols.conventional(ds, cfg, seed, epochs), ds, results_dir)
print(rid)"""


def write_notebook(path: Path, body: str = "print(params)", parameters: str = PARAMETERS) -> Path:
    """begin / parameters / end, then ``body``: the skeleton every notebook of the book follows."""
    cells = [nbformat.v4.new_code_cell(BEGIN, metadata={"tags": ["remove-cell"]}),
             nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell(END, metadata={"tags": ["remove-input"]}),
             nbformat.v4.new_code_cell(body)]
    book = nbformat.v4.new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, path)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Child processes

def child_env(marker: str = "") -> dict:
    """The environment for a child: this checkout importable, one thread, no progress bars, and a marker that its
    descendants (Dask workers, Jupyter kernels) inherit, so the test can find every one of them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.pop("SUBSETLIB_SMOKE", None)
    env[MARK] = marker
    return env


def marked_pids(marker: str) -> list[int]:
    """Processes whose environment holds ``MARK=marker`` (every descendant of a child started with that marker)."""
    needle = f"{MARK}={marker}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def reap(marker: str, timeout: float = 20.0) -> list[int]:
    """Wait for every marked process to exit; SIGKILL (by pid) those still there after ``timeout`` and return them."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in marked_pids(marker) if _alive(pid)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


class Child:
    """``python -m subsetlib ...`` in a new session (its own process group), marked so that nothing it starts can
    outlive the test."""

    def __init__(self, args: list[str], cwd: Path):
        self.marker = uuid.uuid4().hex
        self.proc = subprocess.Popen([PYTHON, "-m", "subsetlib", *args], cwd=cwd, env=child_env(self.marker),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.communicate()

    def wait(self, timeout: float) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise
        return self.proc.returncode, out, err

    def close(self) -> list[int]:
        """Kill whatever is left of the group, then return the pids of descendants that outlived it."""
        if self.proc.poll() is None:
            self.kill_group()
        else:
            self.proc.communicate()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return reap(self.marker)


@pytest.fixture
def children():
    """Start children with ``children(args, cwd)``; at teardown every one is killed and none may linger."""
    started: list[Child] = []

    def start(args: list[str], cwd: Path) -> Child:
        started.append(Child(args, cwd))
        return started[-1]

    yield start
    lingering = [pid for child in started for pid in child.close()]
    assert not lingering, f"processes {lingering} outlived their killed parent"


def wait_for(condition, timeout: float, what: str, child: Child | None = None, poll: float = 0.02):
    """Poll ``condition`` until it returns something truthy; fail (naming ``what``) after ``timeout`` seconds or as
    soon as ``child`` has exited without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if child is not None and child.proc.poll() is not None:
            value = condition()
            if value:
                return value
            _, err = child.proc.communicate()
            pytest.fail(f"the child exited ({child.proc.returncode}) before {what}: {err[-2000:]}")
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def main_in_process(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``subsetlib.cli.main(argv)`` as a user would see it: exit status, stdout, stderr."""
    from subsetlib.cli import main

    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as stop:  # argparse exits by itself
        rc = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def files_under(path: Path) -> dict[str, int]:
    """Every file and folder under ``path`` with its modification time: to show that nothing changed."""
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


def one_error_line(err: str) -> str:
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, f"expected one line on stderr, got: {err}"
    assert lines[0].startswith("subsetlib: error: "), lines[0]
    assert "Traceback" not in err
    return lines[0]


def assert_refused_in_one_line(argv: list[str], folder: Path, capsys: pytest.CaptureFixture,
                               expected: list[str], absent: list[str] = ()) -> None:
    """The CLI refuses ``argv``: exit status 2, nothing on stdout, one error line holding every text of ``expected``
    and none of ``absent``, and nothing under ``folder`` written or touched."""
    before = files_under(folder)
    rc, out, err = main_in_process(argv, capsys)
    line = one_error_line(err)
    assert rc == 2 and out == ""
    for text in expected:
        assert text in line, f"{text!r} not in {line!r}"
    for text in absent:
        assert text not in line, f"{text!r} in {line!r}"
    assert files_under(folder) == before
