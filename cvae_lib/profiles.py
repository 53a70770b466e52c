"""Run profiles: which data and how much training the book's chapters use.

The book trains one model (chapter 5) and every later chapter studies it. How big
that run is depends on the machine, so it is chosen by one environment variable,
``CVAE_PROFILE``:

``quick``
    The 4,000 offline training digits (:func:`cvae_lib.data.load_digits` with
    ``"sample"``) and the library's default :class:`~cvae_lib.config.TrainConfig` for
    :func:`cvae_lib.runs.default_epochs` epochs. Needs no network and runs on a
    laptop or CI CPU in minutes.
``full``
    The reference's full run: all 60,000 MNIST training digits, 15 epochs, batch 256,
    otherwise the default :class:`~cvae_lib.config.TrainConfig`. Meant for a GPU. The
    digits come from MNIST files on disk when ``profile_model(data=PATH)`` or
    ``CVAE_DATA=PATH`` names them (no network needed), else from Keras's download
    (``"keras"``; downloaded once and cached).
``auto`` (default)
    ``full`` when TensorFlow sees a GPU, else ``quick``. If full MNIST cannot be
    loaded (no network and no cached copy), ``auto`` falls back to ``quick`` with one
    line on stderr; an explicit ``full`` fails instead.

:func:`profile_model` is the one call the chapters make. It goes through
:func:`cvae_lib.runs.train_or_load` with the run directory ``<profile>-cvae`` (see
:func:`cvae_lib.runs.run_directory`), so the chapter that runs first trains and
writes the checkpoint, every later chapter (and a second execution, such as the book
build after the notebook tests) loads it, and nothing retrains unless the settings
or data changed. An interrupted training run resumes after its last finished epoch.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import data as data_lib, runs
from .backend import GPUS
from .config import TrainConfig
from .errors import CvaeError

PROFILE_ENV = "CVAE_PROFILE"
PROFILES = ("quick", "full", "auto")

#: Data source of each concrete profile (see :mod:`cvae_lib.data`).
PROFILE_DATA = {"quick": "sample", "full": "keras"}

#: The reference recipe's full run.
REFERENCE_EPOCHS = 15
REFERENCE_BATCH_SIZE = 256


def requested_profile(value: str | None = None) -> str:
    """The profile asked for: ``value``, else ``$CVAE_PROFILE``, else ``auto``; validated."""
    raw = value if value is not None else os.environ.get(PROFILE_ENV, "")
    name = raw.strip().lower() or "auto"
    if name not in PROFILES:
        raise CvaeError(f"{PROFILE_ENV}={raw!r} is not a run profile: choose one of {', '.join(PROFILES)}")
    return name


def resolve_profile(value: str | None = None, *, has_gpu: bool | None = None) -> str:
    """The concrete profile, ``quick`` or ``full``: ``auto`` becomes ``full`` on a GPU.

    ``has_gpu`` defaults to whether TensorFlow sees one (:data:`cvae_lib.backend.GPUS`);
    tests pass it explicitly so they need not import TensorFlow's device list.
    """
    name = requested_profile(value)
    if name != "auto":
        return name
    return "full" if (bool(GPUS) if has_gpu is None else has_gpu) else "quick"


def profile_data(profile: str, data: str | None = None) -> str:
    """The data source of a concrete profile: the offline sample for ``quick``; for ``full``,
    ``data`` or ``$CVAE_DATA`` when it names MNIST files on disk, else Keras's download."""
    if profile == "quick":
        return PROFILE_DATA["quick"]
    chosen = str(data or os.environ.get(data_lib.DATA_ENV, "")).strip()
    return chosen if chosen and chosen not in data_lib.SOURCES else PROFILE_DATA["full"]


def profile_train_config(profile: str, digits) -> TrainConfig:
    """Training settings of a concrete profile for these digits (see module docstring)."""
    if profile == "quick":
        return TrainConfig(epochs=runs.default_epochs(digits))
    if profile == "full":
        return dataclasses.replace(TrainConfig(), epochs=REFERENCE_EPOCHS, batch_size=REFERENCE_BATCH_SIZE)
    raise CvaeError(f"profile must be 'quick' or 'full' here, got {profile!r}")


def profile_directory(profile: str, root=None) -> Path:
    """Run directory of a concrete profile: ``<runs>/<profile>-cvae``."""
    if profile not in PROFILE_DATA:
        raise CvaeError(f"profile must be 'quick' or 'full' here, got {profile!r}")
    return runs.run_directory(f"{profile}-cvae", root)


def load_profile_digits(value: str | None = None, *, has_gpu: bool | None = None, loader=None,
                        data: str | None = None):
    """``(profile, digits)`` for the requested profile, with ``auto``'s fallback to quick.

    ``loader`` defaults to :func:`cvae_lib.data.load_digits`; tests substitute a fake.
    ``data``: MNIST files for the full profile (:func:`profile_data`).
    """
    loader = data_lib.load_digits if loader is None else loader
    requested = requested_profile(value)
    profile = resolve_profile(requested, has_gpu=has_gpu)
    try:
        return profile, loader(profile_data(profile, data))
    except CvaeError as err:
        if requested != "auto" or profile == "quick":
            raise
        print(f"cvae_lib: full profile unavailable ({err}); using the quick profile", file=sys.stderr)
        return "quick", loader(PROFILE_DATA["quick"])


@dataclass
class ProfileRun:
    """What :func:`profile_model` returns: the trained model and how it came to be."""

    model: object
    history: object
    digits: object
    profile: str
    directory: Path
    train_config: object
    reused: bool

    @property
    def training_seconds(self) -> float:
        """Seconds spent in training steps, summed over epochs (from the stored history)."""
        return float(sum(record["seconds"] for record in self.history.epochs))


def profile_model(value: str | None = None, *, root=None, progress: str = "bar",
                  data: str | None = None) -> ProfileRun:
    """Train the book's model for the selected profile, or load the finished run.

    ``value`` overrides ``$CVAE_PROFILE``; ``root`` overrides where runs are kept
    (``$CVAE_RUNS`` or ``_runs/``); ``data`` names MNIST files for the full profile.
    Training writes a checkpoint after every epoch and marks it complete at the end,
    so an interrupted run is resumed after its last finished epoch, never reused as
    finished; a second process waits for the first and then loads its run.
    """
    profile, digits = load_profile_digits(value, data=data)
    train_config = profile_train_config(profile, digits)
    directory = profile_directory(profile, root)
    model, history, reused = runs.train_or_load(digits, directory, train_config=train_config, progress=progress)
    return ProfileRun(model, history, digits, profile, directory, train_config, reused)
