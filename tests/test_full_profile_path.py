"""The full profile's code path on small local data: digits written as IDX files
(scripts/idx_files.py), read back through ``$CVAE_DATA``, and ``$CVAE_EPOCHS``, which CI uses to
run every chapter under ``CVAE_PROFILE=full`` in minutes (``.ci/run``). The epochs asked for
must be the epochs trained: read back from the run's files, not from the setting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cvae_lib import book
from cvae_lib.config import TrainConfig
from cvae_lib.data import load_digits
from cvae_lib.errors import CvaeError
from cvae_lib.pixel_models import baseline_report, class_templates, mean_image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from idx_files import main as idx_main  # noqa: E402
from idx_files import write_idx_files  # noqa: E402


@pytest.fixture
def idx_dir(tmp_path, sample_digits):
    return write_idx_files(sample_digits.subset(256, 100), tmp_path / "idx")


def test_written_idx_files_read_back_as_the_same_digits(idx_dir, sample_digits):
    written = sample_digits.subset(256, 100)
    loaded = load_digits(str(idx_dir))
    assert loaded.source == "file" and loaded.path == str(idx_dir)
    rng = np.random.default_rng(0)  # the loader shuffles each split with the split seed
    train_order, test_order = rng.permutation(256), rng.permutation(100)
    np.testing.assert_array_equal(loaded.x_train, written.x_train[train_order])
    np.testing.assert_array_equal(loaded.y_train, written.y_train[train_order])
    np.testing.assert_array_equal(loaded.x_test, written.x_test[test_order])
    np.testing.assert_array_equal(loaded.y_test, written.y_test[test_order])
    assert not list(idx_dir.glob(".*.tmp"))


def test_idx_command_reports_a_bad_folder_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert idx_main([str(blocker / "idx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cvae_lib: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("value", ["0", "-3", "two", "1.5"])
def test_a_bad_epochs_setting_is_a_one_line_error(monkeypatch, value):
    monkeypatch.setenv(book.EPOCHS_ENV, value)
    with pytest.raises(
        CvaeError, match=rf"CVAE_EPOCHS='{value}' is not a number of epochs"
    ):
        book.epochs_override()


def test_unset_or_empty_epochs_leave_the_profile_alone(monkeypatch, sample_digits):
    budget = TrainConfig.for_data(len(sample_digits.x_train))
    monkeypatch.delenv(book.EPOCHS_ENV, raising=False)
    assert book.profile_train_config("full", sample_digits) == budget
    monkeypatch.setenv(book.EPOCHS_ENV, " ")
    assert book.profile_train_config("quick", sample_digits) == budget
    monkeypatch.setenv(book.EPOCHS_ENV, "3")
    assert (
        book.profile_train_config("quick", sample_digits).epochs == 3 != budget.epochs
    )


def test_the_epochs_override_is_what_the_full_profile_trains(
    monkeypatch, tmp_path, idx_dir
):
    """CI's setting, end to end: the full profile on IDX files, two epochs instead of fifteen."""
    monkeypatch.setenv(book.PROFILE_ENV, "full")
    monkeypatch.setenv("CVAE_DATA", str(idx_dir))
    monkeypatch.setenv(book.EPOCHS_ENV, "2")
    monkeypatch.setenv("CVAE_RUNS", str(tmp_path / "runs"))
    run = book.profile_model(progress="none")
    assert run.profile == "full" and run.directory == tmp_path / "runs" / "full-cvae"
    history = json.loads((run.directory / "history.json").read_text())["epochs"]
    config = json.loads((run.directory / "config.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    assert config["train"]["epochs"] == 2 and config["complete"]
    # the rest is the full profile's budget rule for these digits
    budget = TrainConfig.for_data(int(config["data"]["n_train"]))
    assert config["train"]["batch_size"] == budget.batch_size
    assert config["data"]["source"] == "file" and config["data"]["path"] == str(idx_dir)


def test_pixel_models_are_exact_bernoulli_likelihoods(sample_digits):
    digits = sample_digits.subset(500, 100)
    templates, single = class_templates(digits), mean_image(digits)
    assert templates.probabilities.shape == (
        10,
        28,
        28,
        1,
    ) and single.probabilities.shape == (1, 28, 28, 1)
    assert 0 < templates.probabilities.min() and templates.probabilities.max() < 1
    # one class, by hand: add-0.5 smoothing of the grey levels as fractional counts
    sevens = digits.x_train[digits.y_train == 7]
    np.testing.assert_allclose(
        templates.probabilities[7], (sevens.sum(0) + 0.5) / (len(sevens) + 1), rtol=1e-6
    )
    x = (digits.x_test[:3] > 0.5).astype(np.float32)
    p = templates.probabilities[digits.y_test[:3]].astype(np.float64)
    by_hand = (x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(3, -1).sum(1)
    np.testing.assert_allclose(
        templates.log_likelihood(x, digits.y_test[:3]), by_hand, rtol=1e-9
    )
    # the label-free model ignores the labels
    np.testing.assert_array_equal(
        single.log_likelihood(x, [0, 0, 0]), single.log_likelihood(x, [5, 6, 7])
    )
    report = baseline_report(digits)
    assert report["digits"] == 100
    assert (
        report["class_templates"] < report["mean_image"]
    )  # the label is worth something
    assert 0.5 < report["template_accuracy"] <= 1


def test_ci_executes_every_chapter_on_the_full_profiles_path_before_the_build():
    """The step that catches a chapter breaking under ``CVAE_PROFILE=full`` (chapter 7 once
    did when no stored run had the profile's budget) stays in CI, on local data and its own runs."""
    script = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    lines = [
        line.strip() for line in script.splitlines() if not line.strip().startswith("#")
    ]
    step = next(
        i for i, line in enumerate(lines) if line.startswith("CVAE_PROFILE=full")
    )
    command = lines[step] + " " + lines[step + 1]
    for part in (
        'CVAE_DATA="$full_path/idx"',
        "CVAE_EPOCHS=",
        'CVAE_RUNS="$full_path/runs"',
        "--nbval-lax notebooks/",
    ):
        assert part in command, part
    assert any(
        'python scripts/idx_files.py "$full_path/idx"' in line for line in lines[:step]
    )
    tests = next(
        i
        for i, line in enumerate(lines)
        if line.startswith(".venv/bin/pytest -q --nbval-lax")
    )
    build = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("bash scripts/build_book.sh")
    )
    assert tests < step < build
