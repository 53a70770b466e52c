"""User-facing errors.

Everything a user can get wrong (bad data source, bad label, bad checkpoint, an
unwritable path) raises :class:`CvaeError` with one sentence that says what is wrong
and what to do. The CLI prints that sentence and exits non-zero instead of showing a
stack trace from deep inside TensorFlow.
"""

import numpy as np


class CvaeError(Exception):
    """A problem with the user's input, explained in one line."""


def check_positive_int(value, name: str, *, allow_numpy: bool = True) -> int:
    """``value`` as an ``int`` if it is a whole number >= 1, else :class:`CvaeError`.

    Booleans are refused although Python counts them as integers (``per_class=True``
    is a mistake, not 1). ``allow_numpy=False`` refuses NumPy integers too, for
    settings that are written to JSON.
    """
    kinds = (int, np.integer) if allow_numpy else int
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 1:
        raise CvaeError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
