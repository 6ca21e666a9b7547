"""The batch runner on an external Dask cluster: real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1,
started here and killed by PID. A runner killed mid-cell leaves its task running on the worker; the rerun must not
run that cell a second time. And a wrong address or a scheduler without workers ends in one line, nothing created."""

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import PYTHON, child_env, reap, wait_for, write_notebook

DASK = str(Path(PYTHON).parent / "dask")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """Start ``dask scheduler`` (and, on request, one ``dask worker --nthreads 1``) as real processes; every one of
    them and their descendants (Jupyter kernels) is killed by PID at teardown."""
    marker = uuid.uuid4().hex
    procs: list[subprocess.Popen] = []

    def start(workers: int) -> str:
        address = f"tcp://127.0.0.1:{free_port()}"
        log = (tmp_path / "cluster.log").open("a")
        procs.append(subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                       "--no-dashboard"], env=child_env(marker), stdout=log, stderr=log,
                                      cwd=tmp_path, start_new_session=True))
        for _ in range(workers):
            procs.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                           "--host", "127.0.0.1", "--no-dashboard"], env=child_env(marker),
                                          stdout=log, stderr=log, cwd=tmp_path, start_new_session=True))
        return address

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
    reap(marker)  # Jupyter kernels the worker started: waited for, then killed by PID


def grid_file(tmp_path: Path, body: str = "print(params)") -> Path:
    notebook = write_notebook(tmp_path / "nb.ipynb", body)
    spec = {"profile": "cluster", "results": str(tmp_path / "results"), "output_dir": str(tmp_path / "book"),
            "stages": [{"notebook": str(notebook), "output": "cell.ipynb"}]}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_batch(args: list[str], cwd: Path, timeout: float) -> tuple[int, str, str, float]:
    started = time.monotonic()
    proc = subprocess.run([PYTHON, "-m", "subsetlib", "batch", *args], cwd=cwd, env=child_env(), capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def one_error_line(err: str) -> str:
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("subsetlib: error: "), err
    return lines[0]


@pytest.mark.parametrize(("address", "expected"), [
    ("unreachable", "cannot reach a Dask scheduler at 'tcp://127.0.0.1:"),
    ("not a scheduler address", "cannot reach a Dask scheduler at 'not a scheduler address'"),
])
def test_bad_scheduler_address_ends_in_one_line_within_seconds(tmp_path, address, expected):
    grid = grid_file(tmp_path)
    if address == "unreachable":
        address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    before = sorted(tmp_path.rglob("*"))
    rc, out, err, seconds = run_batch([str(grid), "--scheduler", address], tmp_path, timeout=120)
    assert rc == 2 and out == ""
    assert expected in one_error_line(err)
    assert seconds < 5 + 30  # the connect timeout (5 s) plus starting Python and torch on two busy cores
    assert sorted(tmp_path.rglob("*")) == before  # no results or book folder


def test_scheduler_without_workers_says_so_after_the_stated_wait(tmp_path, cluster):
    address = cluster(workers=0)
    grid = grid_file(tmp_path)
    wait_for(lambda: "Scheduler at" in (tmp_path / "cluster.log").read_text(), 60, "the scheduler")
    before = sorted(p for p in tmp_path.rglob("*") if p.name != "cluster.log")
    rc, out, err, _ = run_batch([str(grid), "--scheduler", address, "--worker-wait", "2"], tmp_path, timeout=120)
    assert rc == 2 and out == ""
    assert f"no Dask worker has joined the scheduler at {address} within 2 s" in one_error_line(err)
    assert sorted(p for p in tmp_path.rglob("*") if p.name != "cluster.log") == before


def test_killed_runner_on_an_external_cluster_runs_each_cell_once(tmp_path, cluster):
    """The cell body logs each start to a marker file and then waits for a release file, so it is still running on
    the worker when the runner is killed and when the rerun submits the same cell."""
    address = cluster(workers=1)
    marker, release = tmp_path / "starts.txt", tmp_path / "release"
    body = (f"import os, pathlib, time\n"
            f"with open({str(marker)!r}, 'a') as fh:\n    fh.write(f'start {{os.getpid()}}\\n')\n"
            f"deadline = time.time() + 120\n"
            f"while not pathlib.Path({str(release)!r}).exists() and time.time() < deadline:\n    time.sleep(0.1)\n"
            f"with open({str(marker)!r}, 'a') as fh:\n    fh.write('end\\n')\n")
    grid = grid_file(tmp_path, body)
    first = subprocess.Popen([PYTHON, "-m", "subsetlib", "batch", str(grid), "--scheduler", address],
                             cwd=tmp_path, env=child_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: marker.is_file() and "start" in marker.read_text(), 120, "the cell to start")
    finally:
        os.kill(first.pid, signal.SIGKILL)  # the runner only; its task goes on running on the worker
        first.communicate()

    from distributed import Client

    with Client(address, timeout=10) as observer:
        def tasks() -> list[str]:
            return observer.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks])

        wait_for(lambda: not tasks(), 30, "the scheduler to forget the killed runner's task")
        rerun = subprocess.Popen([PYTHON, "-m", "subsetlib", "batch", str(grid), "--scheduler", address],
                                 cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, start_new_session=True)
        try:
            wait_for(lambda: any(k.startswith("cell-") for k in tasks()), 120, "the rerun to submit the cell")
            time.sleep(2)  # the rerun's task reaches the worker while the first is still running
            assert marker.read_text().count("start") == 1
            release.touch()
            out, err = rerun.communicate(timeout=120)
        finally:
            if rerun.poll() is None:
                os.kill(rerun.pid, signal.SIGKILL)
                rerun.communicate()
    assert rerun.returncode == 0, err[-3000:]
    assert marker.read_text().splitlines()[0].startswith("start") and marker.read_text().count("start") == 1
    assert marker.read_text().splitlines()[1:] == ["end"]
    assert "0 cells ran (0 failed), 1 skipped as already done" in out
    assert "waiting for cell cell.ipynb: a runner killed earlier left it running on the cluster" in err
    states = list((tmp_path / "results" / "cells").glob("*.json"))
    assert len(states) == 1 and '"status": "done"' in states[0].read_text()
    assert [p.name for p in (tmp_path / "book").iterdir()] == ["cell.ipynb"]  # one result, no partial copy
