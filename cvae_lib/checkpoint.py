"""Checkpoints: a directory with ``config.json``, ``weights.npz`` and ``history.json``, each written
under a temporary name and renamed into place. ``config.json`` comes last, so its ``complete`` flag
follows the final weights; ``weights.npz`` holds a copy of it that must match on load."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import config as cfg
from . import variants
from .errors import CvaeError
from .model import ConditionalVAE
from .train import History

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.npz"
HISTORY_FILE = "history.json"


def model_classes() -> dict:
    """Model kinds that a checkpoint may hold, by the ``kind`` it records."""
    return {cls.kind: cls for cls in (ConditionalVAE, *variants.VARIANTS)}


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
        handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
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
        try:
            os.unlink(handle.name)
        except OSError:
            pass
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
        raise CvaeError(f"cannot create directory {directory}: {err.strerror or err}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CvaeError(f"cannot write to directory {directory}: permission denied")
    return directory


def read_json(path: Path):
    """A stored JSON record, or :class:`~cvae_lib.errors.CvaeError` saying that ``path`` is corrupt."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: bad UTF-8 or bad JSON
        raise CvaeError(f"{path} is corrupt: {err}") from None


def config_record(model, **extra) -> dict:
    return cfg.to_dict(model.config, model.train_config, kind=model.kind, **extra)


def save_checkpoint(model, directory, history=None, **extra) -> Path:
    """Write the model's config, weights and (optionally) training history to ``directory``."""
    directory = prepare_directory(directory)
    text = cfg.dumps(config_record(model, **extra))
    arrays = {"__config__": np.array(text)}
    for net_name, network in model.networks().items():
        for i, weight in enumerate(network.get_weights()):
            if not np.isfinite(weight).all():
                raise CvaeError(f"refusing to save non-finite weights of the {net_name} to {directory}")
            arrays[f"{net_name}/{i:03d}"] = weight
    atomic_write(directory / WEIGHTS_FILE, lambda f: np.savez(f, **arrays))
    if history is not None:
        atomic_write_text(directory / HISTORY_FILE, history.to_json())
    atomic_write_text(directory / CONFIG_FILE, text)  # last: its "complete" marks a finished run
    return directory


def read_config(directory) -> dict:
    """The checkpoint's config record, with clear errors for missing or foreign ones."""
    directory = Path(directory)
    if not directory.exists():
        raise CvaeError(f"no checkpoint at {directory}: train one with `python -m cvae_lib train --out {directory}`")
    if not directory.is_dir():
        raise CvaeError(f"{directory} is not a checkpoint directory")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CvaeError(f"{directory} is not a cvae_lib checkpoint (no {CONFIG_FILE})")
    record = read_json(path)
    cfg.from_dict(record)  # validates the format
    return record


def load_checkpoint(directory):
    """``(model, history)`` from ``directory``, the :class:`~cvae_lib.train.History` empty if none was saved."""
    directory = Path(directory)
    record = read_config(directory)
    model_config, train_config = cfg.from_dict(record)
    kinds = model_classes()
    kind = record.get("kind", "cvae")
    if kind not in kinds:
        raise CvaeError(f"{directory} holds a model of unknown kind {kind!r}")
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CvaeError(f"{directory} is incomplete: {WEIGHTS_FILE} is missing")
    try:
        with np.load(weights_path, allow_pickle=False) as archive:
            stored = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CvaeError(f"{weights_path} is corrupt: {err}") from None
    try:
        stored_record = json.loads(str(stored.pop("__config__")))
    except (KeyError, ValueError):  # no copy of the config, or not JSON
        raise CvaeError(f"{weights_path} is corrupt or not a cvae_lib checkpoint (no valid embedded config)") from None
    if stored_record != record:
        raise CvaeError(f"{directory}: {WEIGHTS_FILE} and {CONFIG_FILE} come from different runs")
    model = kinds[kind](model_config, train_config)
    for net_name, network in model.networks().items():
        expected = network.get_weights()
        weights = [stored.get(f"{net_name}/{i:03d}") for i in range(len(expected))]
        if any(w is None or w.shape != e.shape or w.dtype.kind != "f" for w, e in zip(weights, expected)):
            raise CvaeError(f"{weights_path} does not fit the {net_name} described in {CONFIG_FILE}")
        network.set_weights(weights)
    history_path = directory / HISTORY_FILE
    if not history_path.is_file():
        return model, History()
    saved = read_json(history_path)
    if not isinstance(saved, dict) or not isinstance(saved.get("epochs", []), list):
        raise CvaeError(f"{history_path} is corrupt: expected {{\"epochs\": [...]}}")
    return model, History.from_dict(saved)
