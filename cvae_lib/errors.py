"""User-facing errors.

Everything a user can get wrong (bad data source, bad label, bad checkpoint, an
unwritable path) raises :class:`CvaeError` with one sentence that says what is wrong
and what to do. The CLI prints that sentence and exits non-zero instead of showing a
stack trace from deep inside TensorFlow.
"""


class CvaeError(Exception):
    """A problem with the user's input, explained in one line."""
