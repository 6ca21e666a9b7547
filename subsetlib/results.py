"""Tidy results with provenance: one Parquet file per run and table, written atomically.

Layout under a results directory::

    curves/<run_id>.parquet   one row per evaluation (the learning curve with the cumulative ledger)
    runs/<run_id>.parquet     one summary row per run, written last: a run without it is not complete

One file per run means concurrent writers never touch the same file, and a rerun of the same run id replaces its
files instead of adding rows. Each write goes to a temporary file that is renamed into place, so a killed writer
leaves either the old file or the new one, never half of one.
"""

import os
import platform
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch

import subsetlib
from subsetlib.data import Dataset, device_name
from subsetlib.errors import UserError
from subsetlib.io import atomic_write, check_writable
from subsetlib.repo import commit, git

TABLES = ("runs", "curves")


@dataclass
class RunResult:
    """One run as it is stored: tidy evaluation rows (the learning curve with the cumulative ledger) and one summary
    row."""

    curve: list[dict] = field(default_factory=list)  # one row per evaluation
    summary: dict = field(default_factory=dict)  # one row per run


def provenance(data: Dataset) -> dict:
    """Where and with what a run was made: code version, device, library versions, data location."""
    return {
        "git_commit": commit(),
        # dirty: a tracked file changed, or code that git does not know yet; outputs (results/, the book's executed
        # pages) do not count, or every run of a grid would be dirty from the runs stored before it
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results",
                              ":(exclude)book/experiments", ":(exclude)book/generated")
                          or git("status", "--porcelain", "--untracked-files=all", "--", "subsetlib", "notebooks")),
        "device": device_name(data.device),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "none",
        "subsetlib_version": subsetlib.__version__,
        "python_version": platform.python_version(),
        "host": platform.node(),
        "data_root": data.root,
    }


def atomic_write_parquet(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def save(result: RunResult, data: Dataset, results_dir: str | os.PathLike, started: datetime | None = None) -> str:
    """Store one run: the curve first, then the summary that marks it complete. Returns the run id."""
    root = check_writable(results_dir)
    ended = datetime.now(UTC)
    stamp = {**provenance(data), "started": (started or ended).isoformat(), "ended": ended.isoformat()}
    rid = result.summary["run_id"]
    curve = pd.DataFrame(result.curve).assign(**stamp)
    summary = pd.DataFrame([{**result.summary, **stamp}])
    atomic_write_parquet(curve, root / "curves" / f"{rid}.parquet")
    atomic_write_parquet(summary, root / "runs" / f"{rid}.parquet")
    return rid


def _readable(path: Path) -> bool:
    try:
        pd.read_parquet(path)
    except Exception:  # pyarrow raises several types for a damaged file
        return False
    return True


def has_run(results_dir: str | os.PathLike, rid: str) -> bool:
    """Whether a complete, readable run is stored. A damaged file of the run is named in a warning and moved aside
    (to ``<name>.damaged``, kept for inspection, never overwritten), so the run is made again."""
    root = Path(results_dir)
    if not (root / "runs" / f"{rid}.parquet").is_file():
        return False
    damaged = [p for p in (root / t / f"{rid}.parquet" for t in TABLES) if p.is_file() and not _readable(p)]
    for path in damaged:
        kept = path.with_name(f"{path.name}.damaged")
        if kept.exists():
            kept = path.with_name(f"{path.name}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}.damaged")
        try:
            os.replace(path, kept)
        except FileNotFoundError:  # another reader of the same store moved it a moment ago
            continue
        warnings.warn(f"unreadable results file {path} moved to {kept.name}; the run is made again", stacklevel=2)
    return not damaged and (root / "curves" / f"{rid}.parquet").is_file()


def load_run(results_dir: str | os.PathLike, rid: str) -> RunResult:
    """The stored curve rows and summary of one complete run."""
    root = Path(results_dir)
    curve = pd.read_parquet(root / "curves" / f"{rid}.parquet").to_dict("records")
    summary = pd.read_parquet(root / "runs" / f"{rid}.parquet").iloc[0].to_dict()
    return RunResult(curve, summary)


def load_runs(results_dir: str | os.PathLike, run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and curves of these run ids (a notebook's own runs among all stored there)."""
    runs, curves = load(results_dir), load(results_dir, "curves")
    return runs[runs["run_id"].isin(run_ids)], curves[curves["run_id"].isin(run_ids)]


def load(results_dir: str | os.PathLike | list, table: str = "runs") -> pd.DataFrame:
    """All complete runs under one or more results directories as one DataFrame.

    A file that cannot be read is named in a warning and skipped; the others still load. Curve rows of runs
    without a summary (a run killed while saving) are left out.
    """
    if table not in TABLES:
        raise UserError(f"unknown results table {table!r}: choose one of {', '.join(TABLES)}")
    dirs = [Path(d) for d in (results_dir if isinstance(results_dir, list) else [results_dir])]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise UserError(f"results directory {', '.join(missing)} does not exist: check the path (runs are stored "
                        "under results/<profile>)")
    frames = []
    for d in dirs:
        complete = {p.stem for p in (d / "runs").glob("*.parquet")}
        for path in sorted((d / table).glob("*.parquet")):
            if path.stem not in complete:
                continue
            try:
                frame = pd.read_parquet(path)
            except Exception as err:  # pyarrow raises several types for a damaged file
                warnings.warn(f"skipping unreadable results file {path} ({type(err).__name__}); delete or rerun it",
                              stacklevel=2)
                continue
            if not frame.empty:
                frames.append(frame.assign(results_dir=str(d)))
    if not frames:
        return pd.DataFrame()
    with warnings.catch_warnings():  # runs without a subset phase have all-NaN subset columns; that is fine
        warnings.simplefilter("ignore", FutureWarning)
        return pd.concat(frames, ignore_index=True)
