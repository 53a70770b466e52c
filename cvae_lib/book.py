"""What the book runs: the run profile of ``$CVAE_PROFILE`` (``quick``: the offline digits,
``full``: all of MNIST, ``auto``: full on a GPU), the model it trains (:func:`profile_model`),
``$CVAE_EPOCHS`` to shorten it, and the evaluation settings and table."""

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data as data_lib
from .backend import GPUS
from .config import TrainConfig
from .errors import CvaeError
from .evaluate import DEFAULT_K, DEFAULT_PER_CLASS
from .store.files import run_directory
from .store.runs import train_or_load

PROFILE_ENV = "CVAE_PROFILE"
EPOCHS_ENV = "CVAE_EPOCHS"
PROFILES = ("quick", "full", "auto")

#: Data source of each concrete profile (see :mod:`cvae_lib.data`).
PROFILE_DATA = {"quick": "sample", "full": "keras"}


def requested_profile(value: str | None = None) -> str:
    """The profile asked for: ``value``, else ``$CVAE_PROFILE``, else ``auto``; validated."""
    raw = value if value is not None else os.environ.get(PROFILE_ENV, "")
    name = raw.strip().lower() or "auto"
    if name not in PROFILES:
        raise CvaeError(
            f"{PROFILE_ENV}={raw!r} is not a run profile: choose one of {', '.join(PROFILES)}"
        )
    return name


def resolve_profile(value: str | None = None, *, has_gpu: bool | None = None) -> str:
    """``quick`` or ``full``: ``auto`` becomes ``full`` if ``has_gpu`` (default: TensorFlow sees one)."""
    name = requested_profile(value)
    gpu = bool(GPUS) if has_gpu is None else has_gpu
    return name if name != "auto" else "full" if gpu else "quick"


def profile_data(profile: str, data: str | None = None) -> str:
    """The data source of a concrete profile: the offline sample for ``quick``; for ``full``,
    ``data`` or ``$CVAE_DATA`` when it names MNIST files on disk, else Keras's download."""
    if profile == "quick":
        return PROFILE_DATA["quick"]
    chosen = str(data or os.environ.get(data_lib.DATA_ENV, "")).strip()
    return chosen if chosen and chosen not in data_lib.SOURCES else PROFILE_DATA["full"]


def epochs_override(value: str | None = None) -> int | None:
    """The epochs ``value`` (default ``$CVAE_EPOCHS``) asks for, or None when unset or empty."""
    raw = value if value is not None else os.environ.get(EPOCHS_ENV, "")
    text = raw.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise CvaeError(
            f"{EPOCHS_ENV}={raw!r} is not a number of epochs: give a whole number >= 1, or unset it"
        )
    return int(text)


def profile_train_config(profile: str, digits) -> TrainConfig:
    """``TrainConfig.for_data`` of these digits, with ``$CVAE_EPOCHS`` epochs if set."""
    if profile not in PROFILE_DATA:
        raise CvaeError(f"profile must be 'quick' or 'full' here, got {profile!r}")
    config = TrainConfig.for_data(len(digits.x_train))
    epochs = epochs_override()
    return config if epochs is None else dataclasses.replace(config, epochs=epochs)


def shown_path(path) -> str:
    """``path`` as the book prints it, never the build machine's absolute path: under
    ``$CVAE_RUNS`` by that name, else relative to the repository, else its last part."""
    path = Path(path).resolve()
    bases = (
        (os.environ.get("CVAE_RUNS"), "$CVAE_RUNS/"),
        (Path(__file__).parents[1], ""),
    )
    for base, prefix in bases:
        if base and path.is_relative_to(Path(base).resolve()):
            return prefix + path.relative_to(Path(base).resolve()).as_posix()
    return path.name


def profile_directory(profile: str, root=None) -> Path:
    """Run directory of a concrete profile: ``<runs>/<profile>-cvae``."""
    if profile not in PROFILE_DATA:
        raise CvaeError(f"profile must be 'quick' or 'full' here, got {profile!r}")
    return run_directory(f"{profile}-cvae", root)


def load_profile_digits(
    value: str | None = None,
    *,
    has_gpu: bool | None = None,
    loader=None,
    data: str | None = None,
):
    """``(profile, digits)`` for the requested profile, with ``auto``'s fallback to quick;
    ``loader`` replaces :func:`cvae_lib.data.load_digits`, ``data`` as in :func:`profile_data`."""
    loader = data_lib.load_digits if loader is None else loader
    requested = requested_profile(value)
    profile = resolve_profile(requested, has_gpu=has_gpu)
    try:
        return profile, loader(profile_data(profile, data))
    except CvaeError as err:
        if requested != "auto" or profile == "quick":
            raise
        print(
            f"cvae_lib: full profile unavailable ({err}); using the quick profile",
            file=sys.stderr,
        )
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


def profile_model(
    value: str | None = None,
    *,
    root=None,
    progress: str = "bar",
    data: str | None = None,
) -> ProfileRun:
    """The book's model for profile ``value`` (default ``$CVAE_PROFILE``), trained or reused
    under ``root`` (default ``$CVAE_RUNS`` or ``_runs/``); ``data``: MNIST files for ``full``."""
    profile, digits = load_profile_digits(value, data=data)
    train_config = profile_train_config(profile, digits)
    directory = profile_directory(profile, root)
    model, history, reused = train_or_load(
        digits, directory, train_config=train_config, progress=progress
    )
    return ProfileRun(model, history, digits, profile, directory, train_config, reused)


def book_settings() -> dict:
    """The book's evaluation settings: the bound at k = 1000 on every test digit on a GPU, on
    a CPU at k = 100 on the first 200 (chapter 9: beyond k = 100 it moves by less than its
    standard error); seed 1, so the generated digits differ from chapter 6's (seed 0)."""
    return {
        "k": DEFAULT_K if GPUS else 100,
        "iw_digits": None if GPUS else 200,
        "per_class": DEFAULT_PER_CLASS,
        "seed": 1,
    }


def comparison_table(reports: dict) -> str:
    """A Markdown table of the headline numbers of several reports, one row per model."""
    header = (
        "| recipe | conditional accuracy | worst class | test −ELBO (recon + KL) | "
        "IW bound (k, digits) | ELBO on those digits | closest class means |"
    )
    lines = [header, "|" + "---|" * 7]
    for name, r in reports.items():
        worst = int(np.argmin(r["per_class_accuracy"]))
        lines.append(
            f"| {name} | {r['conditional_accuracy']:.1%} | {worst}: {r['per_class_accuracy'][worst]:.0%} | "
            f"{r['test_neg_elbo']:.1f} ({r['test_recon']:.1f} + {r['test_kl']:.1f}) | "
            f"{r['iw_bound']:.1f} on {r['iw_bound_of'].replace('|', '&#124;')} ({r['k']}, {r['iw_digits']}) | "
            f"{r['iw_neg_elbo']:.1f} | {r['min_separation']:.2f} σ |"
        )
    return "\n".join(lines)
