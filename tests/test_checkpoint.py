"""Checkpoints: exact round trip, atomic writes, and a clear error for every broken directory."""

import json
import os
import shutil
import stat
from dataclasses import replace

import numpy as np
import pytest
from tiny_settings import TINY_MODEL, TINY_TRAIN

from cvae_lib.backend import tf
from cvae_lib.config import ModelConfig, TrainConfig
from cvae_lib.errors import CvaeError
from cvae_lib.model import ConditionalVAE
from cvae_lib.store import checkpoint
from cvae_lib.store.checkpoint import load_checkpoint, read_settings, save_checkpoint
from cvae_lib.store.files import atomic_write, atomic_write_text
from cvae_lib.train import History


def outputs(model):
    """Everything a user sees of a model: class means, posterior, decoded images."""
    rng = np.random.default_rng(0)
    images = tf.constant((rng.random((4, 28, 28, 1)) < 0.3).astype(np.float32))
    labels = tf.constant([0, 3, 7, 9])
    q = model.posterior(images, labels)
    z = tf.constant(rng.normal(size=(4, model.config.latent_dim)), tf.float32)
    return {
        "class_means": model.class_means(tf.range(10)).numpy(),
        "posterior_mean": q.mean().numpy(),
        "posterior_scale": q.scale_tril.numpy(),
        "decoded": model.decode(z, labels).numpy(),
    }


def leftovers(directory):
    """Temporary files that an atomic write must never leave behind (the lock file stays)."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if (p.name.startswith(".") or p.suffix == ".tmp") and p.name != ".lock"
    )


def test_round_trip_gives_identical_outputs(tiny_model, tmp_path):
    save_checkpoint(tiny_model, tmp_path / "again")
    loaded, history = load_checkpoint(tmp_path / "again")
    assert type(loaded) is type(tiny_model)
    assert loaded.config == tiny_model.config
    before, after = outputs(tiny_model), outputs(loaded)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    # loading really set the weights: a fresh model of the same config differs
    fresh = outputs(ConditionalVAE(tiny_model.config))
    assert not np.allclose(fresh["decoded"], before["decoded"])
    assert history.epochs == []  # saved without a history
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == [
        "config.json",
        "weights.npz",
    ]


def test_trained_run_records_config_metadata_and_history(
    tiny_checkpoint_dir, tiny_digits
):
    record = json.loads((tiny_checkpoint_dir / "config.json").read_text())
    assert record["format"] == "cvae_lib/2" and record["kind"] == "cvae"
    assert record["complete"] is True
    assert record["data"]["source"] == "sample" and record["data"]["n_train"] == len(
        tiny_digits.x_train
    )
    assert (
        ModelConfig(**record["model"]) == TINY_MODEL
        and TrainConfig(**record["train"]) == TINY_TRAIN
    )
    _, history = load_checkpoint(tiny_checkpoint_dir)
    assert [r["epoch"] for r in history.epochs] == [1, 2]
    assert all(
        np.isfinite(history.series(key)).all()
        for key in ("loss", "recon", "kl", "val_loss")
    )
    np.testing.assert_allclose(
        history.series("loss"), history.series("recon") + history.series("kl")
    )
    assert leftovers(tiny_checkpoint_dir) == []


def test_history_round_trips(tiny_model, tmp_path):
    history = History(
        [
            {"epoch": 1, "loss": 3.5, "val_loss": 4.0},
            {"epoch": 2, "loss": 2.5, "val_loss": 3.0},
        ]
    )
    save_checkpoint(tiny_model, tmp_path, history)
    _, loaded = load_checkpoint(tmp_path)
    assert loaded.epochs == history.epochs
    np.testing.assert_array_equal(loaded.series("loss"), [3.5, 2.5])


# --- atomic writes ----------------------------------------------------------------------


def _crash_halfway(handle):
    handle.write(b"half of the data")
    raise RuntimeError("simulated crash")


def test_crash_mid_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="simulated crash"):
        atomic_write(target, _crash_halfway)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_crash_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old contents")
    with pytest.raises(RuntimeError):
        atomic_write(target, _crash_halfway)
    assert target.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    atomic_write_text(target, "new contents")
    assert target.read_text() == "new contents" and leftovers(tmp_path) == []


def test_written_files_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        assert (
            stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644
        )  # not the temp file's 0600
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.txt", "x")
        assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    finally:
        os.umask(umask)
    (tmp_path / "shared.txt").write_text("old")
    os.chmod(tmp_path / "shared.txt", 0o664)
    atomic_write_text(
        tmp_path / "shared.txt", "new"
    )  # a replaced file keeps its permissions
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o664


def test_os_error_mid_write_becomes_a_cvae_error(tmp_path):
    def disk_full(handle):
        handle.write(b"x")
        raise OSError(28, "No space left on device")

    with pytest.raises(CvaeError, match="cannot write .*No space left on device"):
        atomic_write(tmp_path / "out.bin", disk_full)
    assert list(tmp_path.iterdir()) == []


def test_write_into_missing_directory_raises(tmp_path):
    with pytest.raises(CvaeError, match="cannot write"):
        atomic_write_text(tmp_path / "missing" / "out.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_crash_while_saving_keeps_the_old_checkpoint(
    copy_checkpoint, tiny_model, monkeypatch
):
    directory = copy_checkpoint()
    files_before = {p.name: p.read_bytes() for p in directory.iterdir()}
    other = ConditionalVAE(TINY_MODEL, seed=9)

    def crashing_savez(handle, **arrays):
        handle.write(b"PK\x03\x04 partial zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "savez", crashing_savez)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(other, directory)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == files_before
    loaded, _ = load_checkpoint(directory)
    np.testing.assert_array_equal(
        outputs(loaded)["decoded"], outputs(tiny_model)["decoded"]
    )


def test_saving_over_a_checkpoint_replaces_it(copy_checkpoint):
    directory = copy_checkpoint()
    other = ConditionalVAE(replace(TINY_MODEL, kl_weighting="reference"), seed=9)
    save_checkpoint(other, directory, train_config=TrainConfig(seed=9))
    loaded, _ = load_checkpoint(directory)
    assert loaded.config.kl_weighting == "reference"
    assert read_settings(directory) == (other.config, TrainConfig(seed=9))
    np.testing.assert_array_equal(outputs(loaded)["decoded"], outputs(other)["decoded"])
    assert leftovers(directory) == []


def test_save_into_a_file_or_under_a_file_raises(tiny_model, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    with pytest.raises(CvaeError, match="exists and is not a directory"):
        save_checkpoint(tiny_model, a_file)
    with pytest.raises(CvaeError, match="cannot create directory"):
        save_checkpoint(tiny_model, a_file / "run")
    assert a_file.read_text() == "not a directory"


# --- broken checkpoints -----------------------------------------------------------------


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_bytes_in_the_middle(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))


def _rewrite_npz(path, edit):
    """Load the archive's arrays, let ``edit`` change the dict in place, write it back."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    edit(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _without_config_copy(path):
    _rewrite_npz(path, lambda arrays: arrays.pop("__config__"))


def _garbage_config_copy(path):
    _rewrite_npz(path, lambda arrays: arrays.update(__config__=np.array("{not json")))


def _missing_weight(path):
    _rewrite_npz(path, lambda arrays: arrays.pop("decoder/000"))


def _wrong_shape(path):
    _rewrite_npz(
        path,
        lambda arrays: arrays.update(
            {"encoder/000": np.zeros((3, 3, 1, 2), np.float32)}
        ),
    )


def _string_weights(path):
    def to_strings(arrays):
        arrays["prior_network/001"] = np.array(["a"] * arrays["prior_network/001"].size)

    _rewrite_npz(path, to_strings)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda p: p.write_bytes(b"\x00garbage" * 100), "weights.npz is corrupt"),
        (lambda p: p.write_bytes(b""), "weights.npz is corrupt"),
        (_truncate, "weights.npz is corrupt"),
        (_flip_bytes_in_the_middle, "weights.npz is corrupt"),
        (_without_config_copy, "weights.npz is corrupt"),
        (_garbage_config_copy, "weights.npz is corrupt"),
        (_missing_weight, "does not fit the decoder"),
        (_wrong_shape, "does not fit the encoder"),
        (_string_weights, "does not fit the prior_network"),
        (lambda p: p.unlink(), "weights.npz is missing"),
    ],
    ids=[
        "garbage",
        "empty",
        "truncated",
        "flipped-bytes",
        "no-config-copy",
        "garbage-config-copy",
        "missing-array",
        "wrong-shape",
        "string-array",
        "missing",
    ],
)
def test_damaged_weights_raise_cvae_error(copy_checkpoint, damage, match):
    directory = copy_checkpoint()
    damage(directory / "weights.npz")
    with pytest.raises(CvaeError, match=match):
        load_checkpoint(directory)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda p: p.unlink(), "not a cvae_lib checkpoint \\(no config.json\\)"),
        (
            lambda p: p.write_text(
                '{"architectures": ["BertModel"], "hidden_size": 768}'
            ),
            "not written by cvae_lib",
        ),
        (lambda p: p.write_text("[1, 2, 3]"), "not written by cvae_lib"),
        (
            lambda p: p.write_text('{"format": "cvae_lib/1", "model": {}'),
            "config.json is corrupt",
        ),
        (lambda p: p.write_bytes(b"\xff\xfe\x00"), "config.json is corrupt"),
    ],
    ids=["missing", "foreign", "not-a-record", "truncated-json", "binary"],
)
def test_damaged_config_raises_cvae_error(copy_checkpoint, damage, match):
    directory = copy_checkpoint()
    damage(directory / "config.json")
    with pytest.raises(CvaeError, match=match):
        load_checkpoint(directory)


def test_config_and_weights_from_different_runs_raise(copy_checkpoint, tmp_path):
    directory = copy_checkpoint()
    other_run = save_checkpoint(ConditionalVAE(TINY_MODEL, seed=4), tmp_path / "other")
    shutil.copy(other_run / "weights.npz", directory / "weights.npz")
    with pytest.raises(CvaeError, match="come from different runs"):
        load_checkpoint(directory)
    # also when the configs describe networks of the same shape but differ elsewhere
    directory2 = copy_checkpoint("second")
    record = json.loads((directory2 / "config.json").read_text())
    record["train"]["epochs"] = 99
    (directory2 / "config.json").write_text(json.dumps(record))
    with pytest.raises(CvaeError, match="come from different runs"):
        load_checkpoint(directory2)


def test_unknown_model_kind_raises(copy_checkpoint):
    directory = copy_checkpoint()
    record = json.loads((directory / "config.json").read_text())
    record["kind"] = "gan"
    (directory / "config.json").write_text(json.dumps(record))
    with pytest.raises(CvaeError, match="unknown kind 'gan'"):
        load_checkpoint(directory)


@pytest.mark.parametrize("text", ["{broken", "[1, 2]", '{"epochs": 3}'])
def test_corrupt_history_raises(copy_checkpoint, text):
    directory = copy_checkpoint()
    (directory / "history.json").write_text(text)
    with pytest.raises(CvaeError, match="history.json is corrupt"):
        load_checkpoint(directory)


def test_missing_directory_and_file_instead_of_directory(tmp_path):
    with pytest.raises(CvaeError, match="no checkpoint at .*missing.*train --out"):
        load_checkpoint(tmp_path / "missing")
    a_file = tmp_path / "weights.npz"
    a_file.write_bytes(b"PK")
    with pytest.raises(CvaeError, match="is not a checkpoint directory"):
        load_checkpoint(a_file)
    with pytest.raises(CvaeError, match="no config.json"):
        load_checkpoint(tmp_path)  # a directory, but not a checkpoint


def test_error_messages_are_one_line(copy_checkpoint):
    directory = copy_checkpoint()
    _truncate(directory / "weights.npz")
    with pytest.raises(CvaeError) as info:
        load_checkpoint(directory)
    assert "\n" not in str(info.value)
