"""Atomic file writes that honour the umask.

A writer killed at any point leaves the old file or the new one, never half of one: the content goes to a hidden
temporary file in the same folder, which is renamed into place. The temporary file is created with mode 0666
filtered by the umask (``tempfile.mkstemp`` would make it 0600), so results are as readable as any other file.
No torch here: Dask workers unpickling ``batch.execute_cell`` import this module without it.
"""

import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from subsetlib.errors import UserError


def temporary_path(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """Create an empty hidden file next to ``path`` (mode 0666 & ~umask) and return its name; the caller fills it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], suffix: str = ".tmp") -> None:
    """``write(tmp)`` fills a temporary file, which then replaces ``path`` in one rename (after an fsync). ``suffix``
    ends the temporary name, for writers that insist on one (papermill wants .ipynb)."""
    tmp = temporary_path(path, suffix)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def check_writable(folder: str | os.PathLike, what: str = "results directory",
                   fix: str = "choose a writable folder") -> Path:
    """Fail early, with one line, when files could not be written there (the folder is created)."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UserError(f"{what} {path} is not writable ({err.strerror}): {fix}") from None
    return path
