"""Results kept on disk and reused: training runs, the judge and evaluation reports. A result is
stored with its :func:`key`, made from all it depends on (settings, digits, the code that computes
it: :mod:`cvae_lib.code_fingerprint`), reused only if that key matches, and looked up and made
under its directory's lock (:func:`locked`), so never made twice."""

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
    """Hold ``directory``'s lock (``flock`` on ``.lock``, which the kernel releases however the
    holder exits) for the ``with`` block, saying so in one line if it must wait; yields the directory."""
    directory = prepare_directory(directory)
    with open(directory / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"cvae_lib: waiting for another process using {directory}", file=stream or sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield directory


def key(code: str, **parts) -> dict:
    """The cache key of a result: the layout's format, the code's fingerprint and all else, as JSON values."""
    return json.loads(json.dumps({"cache_format": CACHE_FORMAT, "code": code, **parts}, sort_keys=True))


def matches(stored, wanted: dict) -> bool:
    """True if ``stored`` holds every entry of ``wanted``, recursively (it may hold more, like its hardware)."""
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            name in stored and matches(stored[name], value) for name, value in wanted.items())
    return stored == wanted


def reuse_or_make(directory, wanted: dict, read, make):
    """``(result, reused)``, under ``directory``'s lock: ``read()`` gives ``None`` or ``(stored_key,
    result)`` (:class:`~cvae_lib.errors.CvaeError` if damaged), reused if the key matches ``wanted``;
    else ``make(reason)`` computes and stores it, ``reason`` saying why (``None``: nothing stored)."""
    with locked(directory):
        try:
            found = read()
            reason = None if found is None else "it was made from other settings, data or code"
            if found is not None and matches(found[0], wanted):
                return found[1], True
        except CvaeError as err:
            reason = str(err)
        return make(reason), False
