"""User-facing errors: one sentence on what is wrong and what to do, no stack trace."""

import numpy as np


class CvaeError(Exception):
    """A problem with the user's input, explained in one line."""


def check_positive_int(value, name: str, *, allow_numpy: bool = True) -> int:
    """``value`` as an ``int`` if a whole number >= 1 (not a bool; not NumPy's unless ``allow_numpy``)."""
    kinds = (int, np.integer) if allow_numpy else int
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 1:
        raise CvaeError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
