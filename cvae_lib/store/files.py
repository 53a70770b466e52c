"""Files never half-written: atomic writes, JSON records, locks, the runs' folder."""

import contextlib
import fcntl
import json
import os
import sys
import tempfile
from pathlib import Path

from ..errors import CvaeError

LOCK_FILE = ".lock"


def atomic_write(path: Path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    try:  # the permissions of the file it replaces, else 0666 minus umask (temp files get 0600)
        mode = path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        handle = tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        )
    except OSError as err:
        raise CvaeError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        if isinstance(err, OSError):
            raise CvaeError(f"cannot write {path}: {err.strerror or err}") from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def prepare_directory(directory) -> Path:
    """Create ``directory`` (and parents) or explain in one line why it cannot be."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CvaeError(f"{directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CvaeError(
            f"cannot create directory {directory}: {err.strerror or err}"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CvaeError(f"cannot write to directory {directory}: permission denied")
    return directory


def read_json(path: Path):
    """A stored JSON record, or :class:`~cvae_lib.errors.CvaeError` saying that ``path`` is corrupt."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: bad UTF-8 or bad JSON
        raise CvaeError(f"{path} is corrupt: {err}") from None


@contextlib.contextmanager
def locked(directory, stream=None):
    """Hold ``directory``'s lock (``flock`` on ``.lock``: released however the holder exits)
    for the ``with`` block, saying so if it must wait; yields the directory."""
    directory = prepare_directory(directory)
    with open(directory / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"cvae_lib: waiting for another process using {directory}",
                file=stream or sys.stderr,
                flush=True,
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield directory


def run_directory(name: str, root=None) -> Path:
    """Where the book keeps run ``name``: ``$CVAE_RUNS`` or ``_runs/`` at the repository root."""
    base = Path(
        root
        or os.environ.get("CVAE_RUNS")
        or Path(__file__).resolve().parents[2] / "_runs"
    )
    return base / name
