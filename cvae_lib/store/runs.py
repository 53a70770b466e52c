"""Training runs on disk: :func:`train_or_load` trains into a run directory, checkpointing
each epoch, resumes an unfinished run, and reuses, refuses or replaces a finished one through
:func:`cvae_lib.store.cache.reuse_or_make`, as the judge and the reports do."""

import platform
import shutil
import sys
from pathlib import Path

from ..backend import GPUS
from ..config import ModelConfig, TrainConfig, dumps, to_dict
from ..data import Digits
from ..errors import CvaeError
from ..model import ConditionalVAE
from ..progress import check_mode
from ..train import History, train
from . import cache, checkpoint
from .files import read_json
from .fingerprint import code_fingerprint

STATE_DIR = "training_state"


def run_metadata(digits: Digits) -> dict:
    """What a run was trained on, by which code and where, stored in its config.json."""
    return {
        "data": {
            "source": digits.source,
            "description": digits.description,
            "n_train": int(len(digits.x_train)),
            "n_test": int(len(digits.x_test)),
            "seed": int(digits.seed),
            "fingerprint": digits.fingerprint,
            **({"path": digits.path} if digits.path else {}),
        },
        "code": code_fingerprint(),
        "hardware": {
            "device": "GPU" if GPUS else "CPU",
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
        },
    }


def run_key(
    digits: Digits,
    model_config: ModelConfig,
    train_config: TrainConfig,
    model_class=ConditionalVAE,
) -> dict:
    """What a run is reused or resumed on: its settings, its digits' fingerprint and the training code."""
    return cache.key(
        code_fingerprint(),
        **to_dict(model_config, train_config, kind=model_class.kind),
        data={"source": digits.source, "fingerprint": digits.fingerprint},
    )


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


def _finished_run(out_dir: Path, wanted: dict):
    """``read`` of :func:`~cvae_lib.store.cache.reuse_or_make` for a run: ``None`` unless a
    finished run is there (an unfinished one of these settings is resumed), else its loader."""
    state = run_state(out_dir, wanted)
    if state == "finished":
        return wanted, lambda: checkpoint.load_checkpoint(out_dir)
    if state == "other":
        try:  # the raw record: an older format would not pass read_config
            stored = read_json(out_dir / checkpoint.CONFIG_FILE).get("cache_format")
        except (CvaeError, AttributeError):
            stored = None
        if stored and stored != cache.CACHE_FORMAT:
            raise CvaeError(
                f"it was stored in cache format {stored!r}, and this cvae_lib keeps runs in {cache.CACHE_FORMAT!r}"
            )
        raise CvaeError(
            "it holds another run (other settings, data or code) or other files"
        )
    return None


def train_or_load(
    digits: Digits,
    out_dir,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    model_class=ConditionalVAE,
    progress: str = "bar",
    if_exists: str = "reuse",
    announce: str | None = None,
    jit_compile: bool | None = None,
):
    """``(model, history, reused)`` for a run of these settings in ``out_dir``, under
    its lock. An unfinished run of the same settings, data and code is resumed; else
    ``if_exists`` says: ``"reuse"`` (a finished run loaded, anything else trained over,
    said on stderr), ``"refuse"`` (a one-line error) or ``"replace"``."""
    check_mode(progress)  # a misspelt mode fails before the output directory is made
    train_config = train_config or TrainConfig.for_data(len(digits.x_train))
    model_config = model_config or ModelConfig.for_data(digits)
    wanted = run_key(digits, model_config, train_config, model_class)
    out_dir = Path(out_dir)

    def make(reason):
        if reason is not None and if_exists == "reuse":
            print(
                f"cvae_lib: not reusing {out_dir}: {reason}; training again",
                file=sys.stderr,
                flush=True,
            )
        if announce:
            print(announce, flush=True)
        resume = reason is None and run_state(out_dir, wanted) == "unfinished"
        return _train_into(
            out_dir,
            digits,
            model_class(model_config, seed=train_config.seed),
            train_config,
            wanted,
            progress,
            resume=resume,
            jit_compile=jit_compile,
        )

    (model, history), reused = cache.reuse_or_make(
        out_dir,
        wanted,
        lambda: _finished_run(out_dir, wanted),
        make,
        if_exists=if_exists,
        noun="run",
    )
    return model, history, reused


def _train_into(
    out_dir: Path,
    digits,
    model,
    train_config,
    wanted: dict,
    progress,
    *,
    resume: bool,
    jit_compile,
):
    """Train (or resume) ``model`` into ``out_dir``, whose lock the caller holds; ``(model, history)``."""
    state_dir = out_dir / STATE_DIR
    for partial in out_dir.glob(".*.tmp"):  # left by a process killed mid-write
        partial.unlink(missing_ok=True)
    meta = {
        **run_metadata(digits),
        "cache_format": wanted["cache_format"],
        "train_config": train_config,
    }
    if not resume:  # a new run claims the directory (its config first) before epoch 1
        shutil.rmtree(state_dir, ignore_errors=True)
        checkpoint.atomic_write_text(
            out_dir / checkpoint.CONFIG_FILE,
            dumps(checkpoint.config_record(model, **meta, complete=False)),
        )
        checkpoint.save_checkpoint(model, out_dir, History(), **meta, complete=False)
    history = train(
        model,
        digits,
        train_config,
        progress=progress,
        callback=lambda model, history: checkpoint.save_checkpoint(
            model,
            out_dir,
            history,
            **meta,
            complete=len(history.epochs) == train_config.epochs,
        ),
        state_dir=state_dir,
        jit_compile=jit_compile,
    )
    shutil.rmtree(state_dir, ignore_errors=True)  # finished: nothing left to resume
    return model, history
