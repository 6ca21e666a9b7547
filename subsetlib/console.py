"""Console noise never reaches a page: what counts as noise (warnings, log records, the C++ libraries' log lines,
tracebacks) and ``quiet``, a block that keeps it off the page and still passes a real error on. No torch.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

# Lines that tools print to the console and that a reader must never see on a page: Python warnings, log records
# (logging's and the C++ libraries' "LEVEL:date …" lines, e.g. torch's profiler), tracebacks.
CONSOLE_NOISE = re.compile(
    r"(\w*Warning\b|^\s*warnings\.warn|^(?:USDT|ERROR|WARNING|WARN|INFO|DEBUG|CRITICAL|[IWEF]\d{4})[:\s]"
    r"|^\S+\.py:\d+:|Traceback \(most recent call last\)|gpuGetDeviceCount|profiler_(?:start|stop))", re.M)


def console_noise(text: str) -> list[str]:
    """The lines of ``text`` (a page's stream output) that are console noise."""
    return [line for line in text.splitlines() if CONSOLE_NOISE.search(line)]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Run a block without console noise reaching the page: warnings are ignored, log records below ERROR are
    dropped, and the lines that C++ libraries write to the process's stderr (torch's profiler) are caught at the
    file descriptor; any caught line that is not noise is passed on, so a real error still shows."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved, level = os.dup(2), logging.root.manager.disable
        logging.disable(logging.WARNING)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            logging.disable(level)
            sink.seek(0)
            kept = [line for line in sink.read().decode(errors="replace").splitlines()
                    if line.strip() and not console_noise(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
