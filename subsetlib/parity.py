"""Does bf16 autocast train as well as fp32, and which precision should be the default? ``parity`` is the rule on
per-seed values; ``parity_table`` applies it to a parity page's runs and is the table the page stores;
``default_precision`` reads those stored tables and the measured speed-up and decides."""

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from subsetlib.errors import UserError


def parity(reference: Sequence[float], candidate: Sequence[float]) -> dict:
    """Whether ``candidate`` matches ``reference`` within seed noise; both are per-seed values, paired by seed.

    Rule: the mean paired difference d̄ (candidate − reference) is within 2 standard errors of the paired
    difference (|d̄| ≤ 2·sd(d)/√n, a two-sided test at about 5 %), or within the reference's own seed-to-seed
    standard deviation (a difference no larger than what changing the seed does). Needs at least 2 pairs.
    """
    ref, cand = np.asarray(reference, dtype=float), np.asarray(candidate, dtype=float)
    if ref.shape != cand.shape or ref.ndim != 1 or len(ref) < 2:
        raise UserError(f"parity needs two equally long lists of ≥ 2 per-seed values (got {len(ref)} and {len(cand)})")
    diff = cand - ref
    n = len(diff)
    mean_diff, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(n))
    ref_std = float(ref.std(ddof=1))
    return {"n": n, "reference_mean": float(ref.mean()), "reference_std": ref_std,
            "candidate_mean": float(cand.mean()), "candidate_std": float(cand.std(ddof=1)),
            "mean_diff": mean_diff, "se_diff": se,
            "holds": bool(abs(mean_diff) <= 2 * se or abs(mean_diff) <= ref_std)}


PARITY_METRICS = {"final test accuracy (%)": ("final_test_acc", 100, 2),
                  "lowest full-set training loss": ("min_train_loss", 1, 4)}
"""What a parity page compares, per seed: label → (run summary column, display scale, decimals)."""


def parity_table(runs: pd.DataFrame, reference: str = "fp32", candidate: str = "bf16") -> pd.DataFrame:
    """``parity`` of ``candidate`` against ``reference`` on each of ``PARITY_METRICS``, from run summaries (one per
    precision and seed): one row per metric, with a boolean ``holds``. This is the table a parity page stores and
    ``default_precision`` reads back."""
    wide = runs.pivot(index="seed", columns="precision")
    rows = []
    for label, (column, scale, digits) in PARITY_METRICS.items():
        v = parity(wide[column][reference].tolist(), wide[column][candidate].tolist())
        rows.append({"metric": label, "reference": reference, "candidate": candidate, "scale": scale,
                     "digits": digits, **v})
    return pd.DataFrame(rows)


def holds(table: pd.DataFrame) -> bool:
    """Whether a stored parity table says parity holds on every measure."""
    if "holds" not in table:  # stored before this column: the same verdict as "yes" / "no"
        return bool((table["within seed noise"] == "yes").all())
    return bool(table["holds"].all())


def default_precision(parity_tables: list[pd.DataFrame], speedup: float) -> str:
    """The rule for the CPU default: bf16 only if it holds parity with fp32 on every measure of every stored parity
    table (at least one) and its whole loop is faster (``speedup`` > 1, bf16 over fp32 at the default batch size);
    else fp32."""
    return "bf16" if parity_tables and all(holds(t) for t in parity_tables) and speedup > 1 else "fp32"
