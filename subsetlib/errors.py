"""The one exception type for mistakes a user can fix, and the checks of inputs that several layers take (the CLI,
the protocols and the grid loader call the same check, so a value is accepted or refused the same way everywhere).
No torch here: the grid loader and Dask workers import this module."""

import numbers

SEED_LIMIT = 2**63  # seeds are stored as int64


class UserError(ValueError):
    """Bad input with a one-line message that names the fix.

    The CLI prints it as a single line on stderr and exits with status 2; the Python API raises it as is.
    """

    def _render_traceback_(self) -> list[str]:
        """IPython (and so papermill) shows this instead of a traceback: the fix, on the first line."""
        return [f"UserError: {self}"]


def check_whole_number(value: object, name: str, minimum: int = 1) -> int:
    """A whole number >= minimum; numpy integers are fine, floats such as 2.5 or 2.0 and bools are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise UserError(f"{name} must be a whole number >= {minimum} (got {value!r})")
    return int(value)


def check_seed(seed: object) -> int:
    """A seed is a whole number with 0 <= seed < 2**63, so that it is stored as int64."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < SEED_LIMIT:
        raise UserError(f"seed must be a whole number from 0 to 2**63 - 1 (got {seed!r})")
    return int(seed)


def check_fraction(fraction: object) -> float:
    """A fraction of the training set: a number in (0, 1]; numpy floats are fine."""
    if not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
        raise UserError(f"fraction must lie in (0, 1] (got {fraction!r}): use e.g. 0.5, 0.25 or 1")
    return float(fraction)
