"""Training runs on disk, for the CLI's ``train`` and the chapters: train into a run
directory and checkpoint, resume an unfinished run, or reuse a finished one with the same
settings, data and training code (:mod:`cvae_lib.code_fingerprint`)."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path

from . import cache, checkpoint
from .backend import GPUS
from .code_fingerprint import code_fingerprint
from .config import ModelConfig, TrainConfig, dumps, to_dict
from .data import Digits
from .errors import CvaeError
from .model import ConditionalVAE
from .progress import check_mode
from .train import TrainingState, train

STATE_DIR = "training_state"


def _is_full_mnist(digits: Digits) -> bool:
    """Full MNIST (or most of it) rather than the small offline set."""
    return len(digits.x_train) >= 20_000


def default_epochs(digits: Digits) -> int:
    """15 epochs on full MNIST (the reference); 20 on the small offline set, which at
    :func:`default_batch_size` is 620 steps, enough for the class means to settle."""
    return 15 if _is_full_mnist(digits) else 20


def default_batch_size(digits: Digits) -> int:
    """256 on full MNIST (the reference); 128 on the small offline set, whose 4,000
    digits would give only 15 steps per epoch at 256: twice the steps per image seen."""
    return 256 if _is_full_mnist(digits) else 128


def run_metadata(digits: Digits) -> dict:
    """What a run was trained on, by which code and where, stored in its config.json."""
    return {
        "data": {"source": digits.source, "description": digits.description,
                 "n_train": int(len(digits.x_train)), "n_test": int(len(digits.x_test)),
                 "seed": int(digits.seed), "fingerprint": digits.fingerprint,
                 **({"path": digits.path} if digits.path else {})},
        "code": code_fingerprint(),
        "hardware": {"device": "GPU" if GPUS else "CPU", "machine": platform.machine(),
                     "processor": platform.processor() or platform.machine()},
    }


def run_key(digits: Digits, model_config: ModelConfig, train_config: TrainConfig, model_class=ConditionalVAE) -> dict:
    """What a run is reused or resumed on: its settings, its digits' fingerprint and the training code."""
    return cache.key(code_fingerprint(), **to_dict(model_config, train_config, kind=model_class.kind),
                     data={"source": digits.source, "fingerprint": digits.fingerprint})


def run_state(out_dir, wanted: dict) -> str:
    """``"empty"``, ``"finished"`` or ``"unfinished"`` (a run with the ``wanted`` key), or
    ``"other"``: another run, or files that are not a run."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir() or all(p.name.startswith(".") for p in out_dir.iterdir()):
        return "empty"  # nothing, or only the lock and a write cut short
    try:
        record = checkpoint.read_config(out_dir)
    except CvaeError:
        return "other"
    if not cache.matches(record, wanted):
        return "other"
    return "finished" if record.get("complete") else "unfinished"


def train_run(digits: Digits, out_dir, *, model_config: ModelConfig = ModelConfig(),
              train_config: TrainConfig = TrainConfig(), model_class=ConditionalVAE,
              progress: str = "lines", overwrite: bool = False, announce: str | None = None, **train_kwargs):
    """``(model, history)`` trained into ``out_dir``, resuming an unfinished run of the same
    settings there; a finished run, another run or other files are replaced only with
    ``overwrite``. ``announce`` is printed once the directory is known to be free."""
    check_mode(progress)  # a misspelt mode fails before the output directory is made
    wanted = run_key(digits, model_config, train_config, model_class)
    with cache.locked(out_dir) as out_dir:
        found = run_state(out_dir, wanted)
        if found in ("finished", "other") and not overwrite:
            what = ("a finished run of these settings" if found == "finished"
                    else "another run (other settings, data or code) or other files")
            raise CvaeError(f"{out_dir} already holds {what}; pass --overwrite to replace it")
        if announce:
            print(announce, flush=True)
        return _train(digits, out_dir, wanted, model_config, train_config, model_class, progress,
                      resume=found == "unfinished", **train_kwargs)


def _train(digits, out_dir: Path, wanted: dict, model_config, train_config, model_class, progress, *,
           resume: bool, **train_kwargs):
    """Train (or resume) into ``out_dir``, whose lock the caller holds."""
    state_dir = out_dir / STATE_DIR
    if not resume:
        shutil.rmtree(state_dir, ignore_errors=True)
    for partial in out_dir.glob(".*.tmp"):  # left by a process killed mid-write; we hold the lock
        partial.unlink(missing_ok=True)
    model = model_class(model_config, train_config)
    meta = {**run_metadata(digits), "cache_format": wanted["cache_format"]}
    history_so_far = TrainingState.saved_history(state_dir)
    if not resume:  # claim the directory for this run (its config first) before the first epoch
        checkpoint.atomic_write_text(out_dir / checkpoint.CONFIG_FILE,
                                     dumps(checkpoint.config_record(model, **meta, complete=False)))
        checkpoint.save_checkpoint(model, out_dir, history_so_far, **meta, complete=False)

    def save(model, record):
        if not history_so_far.epochs or history_so_far.epochs[-1]["epoch"] != record["epoch"]:
            history_so_far.append(record)
        checkpoint.save_checkpoint(model, out_dir, history_so_far, **meta,
                                   complete=record["epoch"] == train_config.epochs)

    history = train(model, digits, progress=progress, callback=save, state_dir=state_dir, **train_kwargs)
    shutil.rmtree(state_dir, ignore_errors=True)  # finished: nothing left to resume
    return model, history


def matching_run(out_dir, digits: Digits, model_config: ModelConfig, train_config: TrainConfig,
                 model_class=ConditionalVAE) -> bool:
    """True if ``out_dir`` holds a finished run with exactly these settings, data and code (:func:`run_key`)."""
    return run_state(out_dir, run_key(digits, model_config, train_config, model_class)) == "finished"


def train_or_load(digits: Digits, out_dir, *, model_config: ModelConfig = ModelConfig(),
                  train_config: TrainConfig = TrainConfig(), model_class=ConditionalVAE,
                  progress: str = "bar", **train_kwargs):
    """``(model, history, reused)``: the finished run in ``out_dir`` if its settings, data and
    code match, resumed if unfinished, else trained (replacing a stale run, with a line on
    stderr). Under the directory's lock: a second process waits, then reuses the run."""
    check_mode(progress)
    wanted = run_key(digits, model_config, train_config, model_class)
    with cache.locked(out_dir) as out_dir:
        found = run_state(out_dir, wanted)
        if found == "finished":
            return (*checkpoint.load_checkpoint(out_dir), True)
        if found == "other":
            print(f"cvae_lib: {out_dir} holds a run of other settings, data or code; training again",
                  file=sys.stderr, flush=True)
        return (*_train(digits, out_dir, wanted, model_config, train_config, model_class, progress,
                        resume=found == "unfinished", **train_kwargs), False)


def run_directory(name: str, root=None) -> Path:
    """Where the book keeps run ``name``: ``$CVAE_RUNS`` or ``_runs/`` at the repository root."""
    base = Path(root or os.environ.get("CVAE_RUNS") or Path(__file__).resolve().parent.parent / "_runs")
    return base / name
