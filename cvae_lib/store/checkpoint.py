"""Checkpoints: a directory with ``config.json``, ``weights.npz`` (holding a copy of the
config that must match) and ``history.json``, each written atomically, the config last."""

import json
import zipfile
from pathlib import Path

import numpy as np

from .. import config as cfg
from ..baselines import MODEL_KINDS
from ..errors import CvaeError
from ..train import History
from .files import atomic_write, atomic_write_text, prepare_directory, read_json

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.npz"
HISTORY_FILE = "history.json"


def config_record(model, train_config=None, **extra) -> dict:
    """``config.json``'s record: the model's settings, and the schedule it was trained with."""
    return cfg.to_dict(model.config, train_config, kind=model.kind, **extra)


def save_checkpoint(
    model, directory, history=None, *, train_config=None, **extra
) -> Path:
    """Write the model's config (and ``train_config``, its schedule), weights and history."""
    directory = prepare_directory(directory)
    text = cfg.dumps(config_record(model, train_config, **extra))
    arrays = {"__config__": np.array(text)}
    for net_name, network in model.networks().items():
        for i, weight in enumerate(network.get_weights()):
            if not np.isfinite(weight).all():
                raise CvaeError(
                    f"refusing to save non-finite weights of the {net_name} to {directory}"
                )
            arrays[f"{net_name}/{i:03d}"] = weight
    atomic_write(directory / WEIGHTS_FILE, lambda f: np.savez(f, **arrays))
    if history is not None:
        atomic_write_text(directory / HISTORY_FILE, history.to_json())
    atomic_write_text(
        directory / CONFIG_FILE, text
    )  # last: its "complete" marks a finished run
    return directory


def read_config(directory) -> dict:
    """The checkpoint's config record, with clear errors for missing or foreign ones."""
    directory = Path(directory)
    if not directory.exists():
        raise CvaeError(
            f"no checkpoint at {directory}: train one with `python -m cvae_lib train --out {directory}`"
        )
    if not directory.is_dir():
        raise CvaeError(f"{directory} is not a checkpoint directory")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CvaeError(f"{directory} is not a cvae_lib checkpoint (no {CONFIG_FILE})")
    record = read_json(path)
    cfg.from_dict(record)  # validates the format
    return record


def read_settings(directory) -> tuple:
    """``(ModelConfig, TrainConfig or None)`` of the checkpoint in ``directory``."""
    return cfg.from_dict(read_config(directory))


def load_checkpoint(directory):
    """``(model, history)`` from ``directory``, the :class:`~cvae_lib.train.History` empty if none was saved."""
    directory = Path(directory)
    record = read_config(directory)
    model_config, train_config = cfg.from_dict(record)
    seed = 0 if train_config is None else train_config.seed
    kind = record.get("kind", "cvae")
    if kind not in MODEL_KINDS:
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
        raise CvaeError(
            f"{weights_path} is corrupt or not a cvae_lib checkpoint (no valid embedded config)"
        ) from None
    if stored_record != record:
        raise CvaeError(
            f"{directory}: {WEIGHTS_FILE} and {CONFIG_FILE} come from different runs"
        )
    model = MODEL_KINDS[kind](model_config, seed=seed)
    for net_name, network in model.networks().items():
        expected = network.get_weights()
        weights = [stored.get(f"{net_name}/{i:03d}") for i in range(len(expected))]
        if any(
            w is None or w.shape != e.shape or w.dtype.kind != "f"
            for w, e in zip(weights, expected)
        ):
            raise CvaeError(
                f"{weights_path} does not fit the {net_name} described in {CONFIG_FILE}"
            )
        network.set_weights(weights)
    history_path = directory / HISTORY_FILE
    if not history_path.is_file():
        return model, History()
    saved = read_json(history_path)
    if not isinstance(saved, dict) or not isinstance(saved.get("epochs", []), list):
        raise CvaeError(f'{history_path} is corrupt: expected {{"epochs": [...]}}')
    return model, History.from_dict(saved)
