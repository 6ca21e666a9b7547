"""The front page's answer, as a list of short answers, one per study, in a fixed order: the study listed first in
``SLOTS`` leads. Each study's page writes its own short answer (a few plain sentences, one figure, one table) into
``<answer_dir>/answers/<slot>.md`` with ``write_answer``, which composes ``<answer_dir>/front.md`` again from every
answer there; ``book/intro.md`` includes that file. Display only: the words come from each study's library.

The study at certified minima plugs in here: its page calls ``write_answer(answer_dir, "certified-minima", text)``
and, being first in ``SLOTS``, its answer then stands above study v2's. No torch, no pandas.
"""

from dataclasses import dataclass
from pathlib import Path

from subsetlib.io import atomic_write_text


@dataclass(frozen=True)
class Slot:
    """A place on the front page for one study's short answer."""

    name: str  # the file's stem under answers/
    heading: str  # the heading the answer stands under


SLOTS: tuple[Slot, ...] = (
    Slot("certified-minima", "At certified minima"),  # leads once written (the study being built in main)
    Slot("study-v2", "Study v2's answer"),
)
"""The front page's answers, in the order a reader meets them."""

WAITING = ("**The answer.** No study's answer is stored yet: its page writes it once every one of its runs is "
           "stored.")


def slot(name: str) -> Slot:
    from subsetlib.errors import UserError

    for s in SLOTS:
        if s.name == name:
            return s
    raise UserError(f"no front-page slot {name!r}: choose one of {', '.join(s.name for s in SLOTS)}")


def compose(answer_dir: str | Path) -> str:
    """The front page's answer: every short answer stored under ``answers/``, in ``SLOTS``' order, each under its
    heading; the first one is the lead."""
    parts = []
    for s in SLOTS:
        path = Path(answer_dir, "answers", f"{s.name}.md")
        if path.is_file():
            parts.append(f"## {s.heading}\n\n{path.read_text().strip()}")
    return "\n\n".join(parts) if parts else WAITING


def write_answer(answer_dir: str | Path, name: str, text: str) -> Path:
    """Store one study's short answer in its slot and compose the front page's answer again; returns front.md."""
    slot(name)
    folder = Path(answer_dir, "answers")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{name}.md", text.strip() + "\n")
    front = Path(answer_dir, "front.md")
    atomic_write_text(front, compose(answer_dir) + "\n")
    return front
