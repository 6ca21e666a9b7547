"""The sentences of the study's pages, from its tables (no torch, no science: the verdicts are already there)."""

import pandas as pd


def certified_text(cell: pd.DataFrame) -> str:
    """How many of a cell's phases the certificate accepted, and what happened to the others."""
    if cell.empty:
        return "No run of this cell is stored yet."
    n, ok, capped = len(cell), int(cell["certified"].sum()), int(cell["on_budget"].sum())
    others = n - ok - capped
    text = f"**{ok} of {n} phases are certified minima.**"
    if capped:
        text += f" {capped} stopped on the call cap (not certified)."
    if others:
        text += (f" {others} stopped before the cap without passing the certificate (a gradient above the tolerance "
                 "or a direction of negative curvature): not minima, and no verdict reads them.")
    return text
