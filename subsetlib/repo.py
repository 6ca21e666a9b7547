"""Where the code lives and which version of it runs: the repository root and its git commit.

No torch here: Dask workers unpickling ``batch.execute_cell`` import this module without it.
"""

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    """The output of ``git args`` in the repository, or "" where git or the repository is missing."""
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def commit(length: int | None = None) -> str:
    """The checked-out commit (its first ``length`` characters), or "unknown" outside a git checkout."""
    full = git("rev-parse", "HEAD")
    return full[:length] if full else "unknown"
