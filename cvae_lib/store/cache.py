"""Results kept on disk and reused (training runs, the judge, evaluation reports): each stored with its :func:`key`,
made from all it depends on, reused only if that key matches, and made under its directory's lock, so never twice."""

import json

from ..errors import CvaeError
from .files import locked

#: Bump when the stored layout of a cached result changes (each key holds the code's fingerprint).
CACHE_FORMAT = "cvae_lib-cache/3"  # 3: the loss settings moved from the training schedule into the model's config
#: What :func:`reuse_or_make` does with a result already stored in its directory.
IF_EXISTS = ("reuse", "refuse", "replace")


def key(code: str, **parts) -> dict:
    """The cache key of a result: the layout's format, the code's fingerprint and all else, as JSON values."""
    return json.loads(
        json.dumps(
            {"cache_format": CACHE_FORMAT, "code": code, **parts}, sort_keys=True
        )
    )


def matches(stored, wanted: dict) -> bool:
    """True if ``stored`` holds every entry of ``wanted``, recursively (it may hold more, like its hardware)."""
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            name in stored and matches(stored[name], value)
            for name, value in wanted.items()
        )
    return stored == wanted


def reuse_or_make(
    directory,
    wanted: dict,
    read,
    make,
    *,
    if_exists: str = "reuse",
    noun: str = "result",
):
    """``(result, reused)`` under ``directory``'s lock. ``read()``: ``None`` (nothing stored), ``(stored_key, load)``,
    or it raises :class:`~cvae_lib.errors.CvaeError` (damaged or foreign). A match of ``wanted`` is ``load()``-ed if
    ``if_exists="reuse"``; ``"refuse"`` fails if anything is stored; else ``make(reason)`` computes and stores it."""
    if if_exists not in IF_EXISTS:
        raise CvaeError(
            f"if_exists must be one of {', '.join(IF_EXISTS)}, got {if_exists!r}"
        )
    with locked(directory):
        try:
            found = read()
            same = found is not None and matches(found[0], wanted)
            if same and if_exists == "reuse":
                return found[1](), True
            reason = (
                None
                if found is None
                else (
                    "it was made from these settings, and replacing it was asked for"
                    if same
                    else "it was made from other settings, data or code"
                )
            )
            what = (
                f"a finished {noun} of these settings"
                if same
                else f"another {noun} (other settings, data or code)"
            )
        except CvaeError as err:
            found, reason, what = (
                True,
                str(err),
                f"another {noun} or other files ({err})",
            )
        if found is not None and if_exists == "refuse":
            raise CvaeError(
                f"{directory} already holds {what}; "
                "pass --overwrite (in Python, if_exists='replace') to replace it"
            )
        return make(reason), False
