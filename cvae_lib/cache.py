"""Results kept on disk and reused: training runs, the judge and evaluation reports.

One mechanism serves all three. A result is stored with its key, made by
:func:`key` from what it depends on (settings, digits, the code that computes it:
:mod:`cvae_lib.code_fingerprint`), and reused only when the stored key equals the
key wanted now. Every file is written atomically (:func:`cvae_lib.checkpoint.atomic_write`),
and a result is looked up and made while holding its directory's lock
(:func:`locked`), so two processes (two terminals, a notebook and the command line,
``pytest -n 2``) never make the same result twice or tear a file: the second waits,
then finds the first one's result.
"""

from __future__ import annotations

import fcntl
import json
import sys
from contextlib import contextmanager

from .checkpoint import prepare_directory
from .errors import CvaeError

#: Bump when the stored layout of any cached result changes. A change to what is
#: computed needs no bump: every key holds the fingerprint of the code that computes it.
CACHE_FORMAT = "cvae_lib-cache/1"
LOCK_FILE = ".lock"


@contextmanager
def locked(directory, stream=None):
    """Hold ``directory``'s lock (created if needed) for the ``with`` block; yields the directory.

    ``fcntl.flock`` on ``<directory>/.lock``: the kernel releases it when the holder
    exits for any reason, ``kill -9`` included, so a crash never leaves a stale lock.
    A process that finds it taken says so in one line and waits.
    """
    directory = prepare_directory(directory)
    with open(directory / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"cvae_lib: waiting for another process using {directory}", file=stream or sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield directory


def key(code: str, **parts) -> dict:
    """The cache key of a result: the layout's format, the fingerprint of the code that
    computes it, and everything else it depends on, as plain JSON values."""
    return json.loads(json.dumps({"cache_format": CACHE_FORMAT, "code": code, **parts}, sort_keys=True))


def matches(stored, wanted: dict) -> bool:
    """True if ``stored`` holds every entry of ``wanted`` (dictionaries compared the same
    way, so a stored record may carry more, such as the hardware it ran on)."""
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            name in stored and matches(stored[name], value) for name, value in wanted.items())
    return stored == wanted


def reuse_or_make(directory, wanted: dict, read, make):
    """``(result, reused)``: the stored result if its key matches ``wanted``, else ``make``'s.

    ``read()`` returns ``None`` if nothing is stored, else ``(stored_key, result)``, and
    raises :class:`~cvae_lib.errors.CvaeError` if what is stored is damaged. ``make(reason)`` computes the
    result and stores it with ``wanted``; ``reason`` is ``None`` when nothing was
    stored, else one line saying why the stored result is not reused. Both run under
    ``directory``'s lock.
    """
    with locked(directory):
        try:
            found = read()
            reason = None if found is None else "it was made from other settings, data or code"
            if found is not None and matches(found[0], wanted):
                return found[1], True
        except CvaeError as err:
            reason = str(err)
        return make(reason), False
