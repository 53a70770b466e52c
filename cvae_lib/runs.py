"""Training runs on disk: train and checkpoint, or reuse a finished run.

The CLI's ``train`` and the book's chapters share this: a run directory holds the
checkpoint, so a later chapter (or ``sample``/``grid``/``evaluate``) reloads it, and a
chapter that finds a finished run with the *same* settings, data and training code
(:mod:`cvae_lib.code_fingerprint`) reuses it instead of training again.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from . import checkpoint
from .code_fingerprint import code_fingerprint
from .config import ModelConfig, TrainConfig, to_dict
from .data import Digits
from .errors import CvaeError
from .model import ConditionalVAE
from .progress import check_mode
from .train import History, train


def default_epochs(digits: Digits) -> int:
    """15 epochs on full MNIST (the reference); more on the small offline set.

    The offline set has 4,000 training digits, 15 steps per epoch at batch 256: it
    needs more passes to take enough optimiser steps for the class means to settle.
    """
    return 15 if len(digits.x_train) >= 20_000 else 60


def run_metadata(digits: Digits) -> dict:
    """What a run was trained on, by which code and where, stored in its config.json."""
    from .backend import tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "data": {"source": digits.source, "description": digits.description,
                 "n_train": int(len(digits.x_train)), "n_test": int(len(digits.x_test)),
                 "seed": int(digits.seed), "fingerprint": digits.fingerprint},
        "code": code_fingerprint(),
        "hardware": {"device": "GPU" if gpus else "CPU", "machine": platform.machine(),
                     "processor": platform.processor() or platform.machine()},
    }


def train_run(digits: Digits, out_dir, *, model_config: ModelConfig = ModelConfig(),
              train_config: TrainConfig = TrainConfig(), model_class=ConditionalVAE,
              progress: str = "lines", **train_kwargs):
    """Train a fresh model, writing the checkpoint after every epoch; returns (model, history)."""
    check_mode(progress)  # a misspelt mode fails before the output directory is made
    out_dir = checkpoint.prepare_directory(out_dir)
    model = model_class(model_config, train_config)
    meta = run_metadata(digits)
    history_so_far = History()

    def save(model, record):
        history_so_far.append(record)
        checkpoint.save_checkpoint(model, out_dir, history_so_far, **meta,
                                   complete=record["epoch"] == train_config.epochs)

    history = train(model, digits, progress=progress, callback=save, **train_kwargs)
    return model, history


def matching_run(out_dir, digits: Digits, model_config: ModelConfig, train_config: TrainConfig,
                 model_class=ConditionalVAE) -> bool:
    """True if ``out_dir`` holds a finished run with exactly these settings, data and code.

    "The same data" is the same images and labels in the same order (the digits'
    fingerprint); "the same code" is the same training code, comments and docstrings
    aside (:func:`~cvae_lib.code_fingerprint.code_fingerprint`). A run written before
    either was recorded never matches.
    """
    try:
        record = checkpoint.read_config(out_dir)
    except CvaeError:
        return False
    wanted = to_dict(model_config, train_config, kind=model_class.kind)
    same_settings = all(record.get(key) == json.loads(json.dumps(value)) for key, value in wanted.items())
    data = record.get("data", {})
    same_data = data.get("source") == digits.source and data.get("fingerprint") == digits.fingerprint
    same_code = record.get("code") == code_fingerprint()
    return bool(same_settings and same_data and same_code and record.get("complete"))


def train_or_load(digits: Digits, out_dir, *, model_config: ModelConfig = ModelConfig(),
                  train_config: TrainConfig = TrainConfig(), model_class=ConditionalVAE,
                  progress: str = "bar", **train_kwargs):
    """Reuse the finished run in ``out_dir`` if its settings, data and code match, else train it.

    Returns ``(model, history, reused)``.
    """
    if matching_run(out_dir, digits, model_config, train_config, model_class):
        model, history = checkpoint.load_checkpoint(out_dir)
        return model, history, True
    model, history = train_run(digits, out_dir, model_config=model_config, train_config=train_config,
                               model_class=model_class, progress=progress, **train_kwargs)
    return model, history, False


def run_directory(name: str, root=None) -> Path:
    """Where the book keeps run ``name``: ``$CVAE_RUNS`` or ``_runs/`` at the repository root."""
    import os

    base = Path(root or os.environ.get("CVAE_RUNS") or Path(__file__).resolve().parent.parent / "_runs")
    return base / name
