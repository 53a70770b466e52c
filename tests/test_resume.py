"""Training that survives interruption: resume, kill -9, divergence, a full disk, determinism.

The interrupted runs are real ``python -m cvae_lib train`` processes on a small
MNIST-format ``.npz`` (``--data PATH``): each stops itself at a chosen point (prints
``PAUSED`` and sleeps) and the test kills it with SIGKILL there. The resumed run must
end with exactly the weights of an uninterrupted run: training is deterministic on
one machine (same seed, data and code give the same bits), so the tolerance is zero.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from tiny_settings import TINY_MODEL, finished_run, library_environment, save_npz

from cvae_lib.cli import main
from cvae_lib.config import ModelConfig, TrainConfig
from cvae_lib.errors import CvaeError
from cvae_lib.model import ConditionalVAE
from cvae_lib.store import cache, checkpoint, runs
from cvae_lib.store.checkpoint import load_checkpoint
from cvae_lib.train import train

EPOCHS = 3
#: Keys of a history record that are wall-clock measurements, not results of training.
TIMING = ("seconds", "images_per_s")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, tiny_digits):
    """256 training and 100 test digits as an MNIST-format .npz (not the official file)."""
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    digits = tiny_digits.subset(256, 100)
    save_npz(path, digits)
    return path


def train_args(data_file, out):
    return [
        "train",
        "--data",
        data_file,
        "--epochs",
        EPOCHS,
        "--batch-size",
        64,
        "--latent-dim",
        2,
        "--out",
        out,
    ]


@pytest.fixture(scope="module", autouse=True)
def tiny_cli():
    """The command line trains the tests' tiny networks (base depth 2) in this module."""
    import cvae_lib.config

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cvae_lib.config, "ModelConfig", TinyModelConfig)
        yield


@dataclasses.dataclass(frozen=True)
class TinyModelConfig(ModelConfig):
    """The model config the command line builds here (``for_data`` included)."""

    base_depth: int = 2


@pytest.fixture(scope="module")
def uninterrupted(data_file, tmp_path_factory):
    """The run that the interrupted ones must reproduce, trained in one go. Like every run
    compared with it, it trains in a fresh process, as the command line does: settings
    that earlier tests left in this process cannot change its last bits."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code, _, stderr = run_driver("none", train_args(data_file, out))
    assert code == 0, stderr
    return out


def weights(directory):
    model, history = load_checkpoint(directory)
    return [
        w for network in model.networks().values() for w in network.get_weights()
    ], history


def assert_same_run(directory, reference):
    (got, history), (want, reference_history) = weights(directory), weights(reference)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)  # bit for bit

    def strip(h):
        return [{k: v for k, v in r.items() if k not in TIMING} for r in h.epochs]

    assert strip(history) == strip(reference_history)


# A training process that pauses at one point so that the test can kill it there.
DRIVER = r"""
import dataclasses, os, sys, time
import numpy as np
import cvae_lib.config


@dataclasses.dataclass(frozen=True)
class TinyModelConfig(cvae_lib.config.ModelConfig):  # as tiny_cli
    base_depth: int = 2


cvae_lib.config.ModelConfig = TinyModelConfig
import cvae_lib.store.checkpoint as checkpoint
import cvae_lib.train as train
from cvae_lib.cli import main

point = sys.argv[1]

def pause():
    print("PAUSED", flush=True)
    time.sleep(120)

real_dataset, real_savez = train.training_dataset, np.savez

def dataset(x, y, batch_size, seed, epoch=1):
    for i, batch in enumerate(real_dataset(x, y, batch_size, seed, epoch)):
        if epoch == 2 and i == 1:
            if point == "mid-epoch":
                pause()
            if point == "full-disk":
                import resource
                resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))
        yield batch

writes = []
def savez(handle, **arrays):
    writes.append(1)
    if point == "mid-weights-write" and len(writes) == 3:  # the claim, epoch 1, then epoch 2 (after its state)
        handle.write(b"PK\x03\x04 half of an archive")
        handle.flush()
        pause()
    return real_savez(handle, **arrays)

real_record = train.tf.train.CheckpointManager._record_state

def record_state(self):  # TensorFlow's data files of epoch 2 are written, its index not yet
    if point == "mid-state-write" and self._latest_checkpoint.endswith("ckpt-2"):
        pause()
    return real_record(self)

train.training_dataset, checkpoint.np.savez = dataset, savez
train.tf.train.CheckpointManager._record_state = record_state
sys.exit(main(sys.argv[2:]))
"""


def driver_command(point, args) -> list[str]:
    return [sys.executable, "-c", DRIVER, point, *map(str, args)]


def run_driver(point, args):
    """The driver to the end: ``"none"`` never pauses. Returns (exit code, stdout, stderr)."""
    done = subprocess.run(
        driver_command(point, args),
        env=library_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, done.stdout, done.stderr


def run_until_paused(point, args):
    """Start the driver; SIGKILL it once it reports that it reached ``point``."""
    process = subprocess.Popen(
        driver_command(point, args),
        env=library_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.strip() == "PAUSED":
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, "".join(lines), process.stderr.read()


@pytest.mark.parametrize("point", ["mid-epoch", "mid-state-write", "mid-weights-write"])
def test_kill_9_then_resume_equals_the_uninterrupted_run(
    point, data_file, uninterrupted, tmp_path
):
    out = tmp_path / "run"
    code, stdout, stderr = run_until_paused(point, train_args(data_file, out))
    assert code == -signal.SIGKILL, stderr
    assert "epoch 1/3" in stdout and "epoch 3/3" not in stdout
    # killed: never loads as finished, and no file is torn
    record = json.loads((out / "config.json").read_text())
    assert record["complete"] is False
    assert not finished_run(out, *_run_settings(data_file))
    load_checkpoint(out)  # the last whole checkpoint loads
    code, stdout, err = run_driver("none", train_args(data_file, out))
    assert code == 0, err
    resumed_at = (
        3 if point == "mid-weights-write" else 2
    )  # the state is saved before the weights
    assert f"resuming at epoch {resumed_at} of 3" in stdout
    assert stdout.count("resuming") == 1 and "epoch 1/3" not in stdout
    assert_same_run(out, uninterrupted)
    # the training state is gone once finished, and so is a write cut short by the kill
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock",
        "config.json",
        "history.json",
        "weights.npz",
    ]


def test_full_disk_while_saving_ends_in_one_line_and_keeps_the_last_checkpoint(
    data_file, uninterrupted, tmp_path
):
    """RLIMIT_FSIZE from epoch 2 on: every write of a file over 2,000 bytes fails (EFBIG)."""
    out = tmp_path / "run"
    code, stdout, stderr = run_until_paused("full-disk", train_args(data_file, out))
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith(
        "cvae_lib: error: cannot write"
    ), stderr
    assert "File too large" in stderr and "Traceback" not in stderr
    _, history = load_checkpoint(out)  # epoch 1's checkpoint is intact
    assert [r["epoch"] for r in history.epochs] == [1]
    code, stdout, err = run_driver("none", train_args(data_file, out))
    assert code == 0, err
    assert "resuming at epoch 2 of 3" in stdout
    assert_same_run(out, uninterrupted)


def test_finished_or_other_run_is_not_overwritten_without_the_flag(
    data_file, uninterrupted, tmp_path, capsys
):
    out = tmp_path / "run"
    import shutil

    shutil.copytree(uninterrupted, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, stdout, err = _main(capsys, *train_args(data_file, out))
    assert code == 2 and err.count("\n") == 1
    assert (
        "already holds a finished run" in err
        and "--overwrite" in err
        and "training on" not in stdout
    )
    code, _, err = _main(
        capsys, *train_args(data_file, out), "--seed", "1"
    )  # another run
    assert code == 2 and "another run" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, stdout, err = _main(
        capsys, *train_args(data_file, out), "--seed", "1", "--overwrite"
    )
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
    stray = tmp_path / "notes"
    stray.mkdir()
    (stray / "todo.txt").write_text("mine")
    code, _, err = _main(capsys, *train_args(data_file, stray))
    assert (
        code == 2
        and "other files" in err
        and (stray / "todo.txt").read_text() == "mine"
    )


def test_two_trainings_with_the_same_seed_match(tiny_digits):
    """Determinism: same seed, data and machine give the same weights and history, bit for bit."""
    digits = tiny_digits.subset(128, 50)
    results = []
    for _ in range(2):
        model = ConditionalVAE(TINY_MODEL, seed=3)
        settings = TrainConfig(epochs=2, batch_size=64, seed=3)
        history = train(model, digits, settings, progress="none")
        results.append(
            (
                [v.numpy() for v in model.trainable_variables],
                [
                    {k: v for k, v in r.items() if k not in TIMING}
                    for r in history.epochs
                ],
            )
        )
    (first, h1), (second, h2) = results
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2


def test_divergence_stops_with_one_line_and_keeps_the_last_good_checkpoint(
    tiny_digits, tmp_path, monkeypatch, capsys
):
    import cvae_lib.train as train_module

    real = train_module.make_train_step

    def poisoned(model, *args, **kwargs):
        step = real(model, *args, **kwargs)
        calls = []

        def nan_from_epoch_2(x, y, seed):
            calls.append(1)
            result = step(x, y, seed)
            if len(calls) > 2:  # two steps per epoch here
                model.decoder.trainable_variables[0].assign(
                    np.full(model.decoder.trainable_variables[0].shape, np.nan)
                )
            return result

        return nan_from_epoch_2

    monkeypatch.setattr(train_module, "make_train_step", poisoned)
    out = tmp_path / "run"
    settings = TrainConfig(epochs=3, batch_size=64)
    with pytest.raises(
        CvaeError, match="training diverged in epoch 2.*epoch 1's checkpoint is kept"
    ) as info:
        runs.train_or_load(
            tiny_digits.subset(128, 50),
            out,
            model_config=TINY_MODEL,
            train_config=settings,
            progress="none",
        )
    assert "\n" not in str(info.value)
    record = json.loads((out / "config.json").read_text())
    assert record["complete"] is False
    model, history = load_checkpoint(out)
    assert [r["epoch"] for r in history.epochs] == [1]
    assert all(
        np.isfinite(w).all()
        for net in model.networks().values()
        for w in net.get_weights()
    )
    assert not finished_run(out, tiny_digits.subset(128, 50), TINY_MODEL, settings)


def test_non_finite_weights_are_never_saved(tmp_path):
    bad = ConditionalVAE(TINY_MODEL)
    bad.decoder.trainable_variables[0].assign(
        np.full(bad.decoder.trainable_variables[0].shape, np.inf)
    )
    with pytest.raises(
        CvaeError, match="refusing to save non-finite weights of the decoder"
    ):
        checkpoint.save_checkpoint(bad, tmp_path / "run")
    assert not (tmp_path / "run" / "weights.npz").exists()


def _run_settings(data_file):
    from cvae_lib.data import load_digits

    return (
        load_digits(str(data_file)),
        TINY_MODEL,
        TrainConfig(epochs=EPOCHS, batch_size=64),
    )


def _main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_books_train_or_load_resumes_after_ctrl_c(
    tiny_digits, tmp_path, monkeypatch, capsys
):
    """profile_model goes through train_or_load: a Ctrl-C in epoch 2 loses only that epoch."""
    digits, settings = tiny_digits.subset(128, 50), TrainConfig(epochs=3, batch_size=64)
    arguments = dict(model_config=TINY_MODEL, train_config=settings, progress="lines")
    reference, _, reused = runs.train_or_load(
        digits, tmp_path / "reference", **arguments
    )
    assert not reused
    import cvae_lib.train as train_module

    real = train_module.training_dataset

    def interrupted_in_epoch_2(x, y, batch_size, seed, epoch=1):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(x, y, batch_size, seed, epoch)

    monkeypatch.setattr(train_module, "training_dataset", interrupted_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        runs.train_or_load(digits, tmp_path / "run", **arguments)
    monkeypatch.undo()
    capsys.readouterr()
    model, history, reused = runs.train_or_load(digits, tmp_path / "run", **arguments)
    assert not reused and "resuming at epoch 2 of 3" in capsys.readouterr().out
    assert_same_run(tmp_path / "run", tmp_path / "reference")
    # a run of other settings in the book's directory is replaced, with a line saying so
    _, _, reused = runs.train_or_load(
        digits,
        tmp_path / "run",
        **{**arguments, "progress": "none", "train_config": TrainConfig(epochs=1)},
    )
    err = capsys.readouterr().err
    assert (
        not reused
        and "holds another run (other settings, data or code) or other files; training again"
        in err
    )
    # a run stored in an older cache format says so, in the same one line
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(
        json.dumps({**record, "cache_format": "cvae_lib-cache/1"})
    )
    _, _, reused = runs.train_or_load(
        digits,
        tmp_path / "run",
        **{**arguments, "progress": "none", "train_config": TrainConfig(epochs=1)},
    )
    err = capsys.readouterr().err
    assert not reused and err.count("\n") == 1
    assert (
        "stored in cache format 'cvae_lib-cache/1', and this cvae_lib keeps runs in "
        f"{cache.CACHE_FORMAT!r}" in err
    )


def test_a_directory_left_by_a_kill_before_the_first_checkpoint_is_free(
    tmp_path, tiny_digits
):
    """Only the lock and a write cut short: nothing to refuse over. A claimed directory
    (config.json of this run, not complete) is resumed, never taken for another run."""
    wanted = runs.run_key(tiny_digits, TINY_MODEL, TrainConfig())
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").touch()
    (out / ".weights.npz.x1y2.tmp").write_bytes(b"PK half")
    assert runs.run_state(out, wanted) == "empty"
    (out / "config.json").write_text(
        json.dumps({**wanted, "complete": False})
    )  # the claim
    assert runs.run_state(out, wanted) == "unfinished"
    assert (
        runs.run_state(out, runs.run_key(tiny_digits, TINY_MODEL, TrainConfig(seed=5)))
        == "other"
    )
