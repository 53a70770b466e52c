"""The training loop and training runs on disk (cvae_lib.train, cvae_lib.store.runs)."""

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from tiny_settings import TINY_MODEL, TINY_TRAIN, finished_run

from cvae_lib.backend import tf
from cvae_lib.config import ModelConfig, TrainConfig
from cvae_lib.data import fixed_binarization, load_digits
from cvae_lib.model import ConditionalVAE
from cvae_lib.prior import closest_pair
from cvae_lib.sampling import class_separation
from cvae_lib.store import files, runs
from cvae_lib.train import History, evaluate_elbo, train


@pytest.fixture(scope="module")
def one_epoch(tiny_digits):
    """A fresh tiny model trained one epoch on 256 digits, with everything it reported."""
    digits = tiny_digits.subset(256, 100)
    model = ConditionalVAE(TINY_MODEL, seed=1)
    before = [v.numpy().copy() for v in model.network_variables]
    stream, seen = io.StringIO(), []
    history = train(
        model,
        digits,
        TrainConfig(epochs=1, batch_size=64, seed=1),
        progress="lines",
        stream=stream,
        callback=lambda m, history: seen.append((m, dict(history.epochs[-1]))),
    )
    return model, digits, history, stream.getvalue(), seen, before


def test_train_records_one_entry_per_epoch(one_epoch):
    model, digits, history, _, _, before = one_epoch
    assert [r["epoch"] for r in history.epochs] == [1]
    record = history.epochs[0]
    for key in (
        "loss",
        "recon",
        "kl",
        "val_loss",
        "val_recon",
        "val_kl",
        "seconds",
        "images_per_s",
        "min_mean_distance",
    ):
        assert np.isfinite(record[key]), key
    assert record["loss"] == pytest.approx(record["recon"] + record["kl"])
    assert record["val_loss"] == pytest.approx(record["val_recon"] + record["val_kl"])
    assert record["kl"] > 0 and 100 < record["recon"] < 700
    assert "diverged" not in record
    # the encoder/decoder weights moved
    assert any(
        not np.array_equal(a, v.numpy())
        for a, v in zip(before, model.network_variables)
    )


def test_progress_lines_and_callback(one_epoch):
    model, _, history, text, seen, _ = one_epoch
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("epoch 1/1")
    assert "means >= " in lines[0] and lines[0].endswith(" img/s")
    assert f"{history.epochs[0]['val_loss']:.2f}" in lines[0]
    assert len(seen) == 1 and seen[0][0] is model and seen[0][1]["epoch"] == 1


def test_validation_loss_is_the_elbo_of_the_fixed_binarised_test_set(one_epoch):
    model, digits, history, _, _, _ = one_epoch
    val = evaluate_elbo(model, fixed_binarization(digits.x_test), digits.y_test)
    # the KL is exact, the reconstruction uses one sample: equal up to sampling noise
    assert val["kl"] == pytest.approx(history.epochs[0]["val_kl"], rel=1e-4)
    assert val["neg_elbo"] == pytest.approx(history.epochs[0]["val_loss"], rel=0.02)


def test_evaluate_elbo_averages_over_all_digits(tiny_model, tiny_digits):
    x = fixed_binarization(tiny_digits.x_test[:30])
    y = tiny_digits.y_test[:30]
    result = evaluate_elbo(tiny_model, x, y, seed=3)
    recon, kl = tiny_model.loss_terms(
        tf.constant(x), tf.constant(y), tf.constant([3, 0])
    )[:2]
    assert result["kl"] == pytest.approx(float(tf.reduce_mean(kl)), rel=1e-5)
    assert result["recon"] == pytest.approx(float(tf.reduce_mean(recon)), rel=1e-5)
    assert result["neg_elbo"] == pytest.approx(result["recon"] + result["kl"])


def test_fixed_binarization_is_binary_and_reproducible(tiny_digits):
    x = tiny_digits.x_test[:50]
    a, b = fixed_binarization(x), fixed_binarization(x)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 1.0} and a.dtype == np.float32
    assert np.all(a[x == 0] == 0) and np.all(a[x == 1] == 1)
    assert (
        abs(a.mean() - x.mean()) < 0.01
    )  # each pixel is 1 with probability = grey level
    assert not np.array_equal(fixed_binarization(x, seed=1), a)


def test_closest_pair_of_class_means(tiny_model):
    means = tiny_model.class_means(tf.range(10)).numpy()
    pairs = {
        (i, j): np.linalg.norm(means[i] - means[j])
        for i in range(10)
        for j in range(i + 1, 10)
    }
    i, j, distance = closest_pair(class_separation(tiny_model))
    assert distance == pytest.approx(min(pairs.values()), rel=1e-6) and pairs[
        i, j
    ] == pytest.approx(distance)


def test_progress_bar(tiny_digits):
    digits = tiny_digits.subset(64, 20)
    model = ConditionalVAE(TINY_MODEL)
    stream = io.StringIO()
    history = train(
        model,
        digits,
        TrainConfig(epochs=2, batch_size=64),
        progress="bar",
        stream=stream,
    )
    assert len(history.epochs) == 2
    out = stream.getvalue()
    assert out.count("\r") == 2 and "training: 2/2 epochs" in out and out.endswith("\n")
    assert "about 0 s left" in out.splitlines()[-1]


def test_history_series_and_json():
    history = History()
    history.epochs.append({"epoch": 1, "loss": 2.0})
    history.epochs.append({"epoch": 2, "loss": 1.0})
    np.testing.assert_array_equal(history.series("loss"), [2.0, 1.0])
    assert History.from_dict(json.loads(history.to_json())).epochs == history.epochs
    assert History.from_dict({}).epochs == []


# --- runs ------------------------------------------------------------------------------


def test_finished_run_is_reused_and_changed_settings_are_not(
    tiny_checkpoint_dir, tiny_digits
):
    assert finished_run(tiny_checkpoint_dir, tiny_digits, TINY_MODEL, TINY_TRAIN)
    model, history, reused = runs.train_or_load(
        tiny_digits,
        tiny_checkpoint_dir,
        model_config=TINY_MODEL,
        train_config=TINY_TRAIN,
    )
    assert reused and len(history.epochs) == TINY_TRAIN.epochs
    assert model.config == TINY_MODEL
    # anything different means training again
    assert not finished_run(
        tiny_checkpoint_dir, tiny_digits, ModelConfig(base_depth=3), TINY_TRAIN
    )
    assert not finished_run(
        tiny_checkpoint_dir,
        tiny_digits,
        TINY_MODEL,
        TrainConfig(epochs=2, batch_size=128, seed=1),
    )
    assert not finished_run(
        tiny_checkpoint_dir, tiny_digits.subset(500), TINY_MODEL, TINY_TRAIN
    )
    # the same source and counts, but another split of the digits
    other_split = load_digits("sample", seed=1).subset(
        len(tiny_digits.x_train), len(tiny_digits.x_test)
    )
    assert not finished_run(tiny_checkpoint_dir, other_split, TINY_MODEL, TINY_TRAIN)
    assert not finished_run(
        tiny_checkpoint_dir.parent / "missing", tiny_digits, TINY_MODEL, TINY_TRAIN
    )


def test_run_records_its_split_and_a_run_without_a_fingerprint_is_not_reused(
    copy_checkpoint, tiny_digits
):
    directory = copy_checkpoint()
    record = json.loads((directory / "config.json").read_text())
    assert record["data"]["seed"] == tiny_digits.seed == 0
    assert record["data"]["fingerprint"] == tiny_digits.fingerprint
    del record["data"]["fingerprint"]  # as written before fingerprints were recorded
    (directory / "config.json").write_text(json.dumps(record))
    assert not finished_run(directory, tiny_digits, TINY_MODEL, TINY_TRAIN)


def test_unfinished_run_is_not_reused(copy_checkpoint, tiny_digits):
    directory = copy_checkpoint()
    record = json.loads((directory / "config.json").read_text())
    record["complete"] = False
    (directory / "config.json").write_text(json.dumps(record))
    assert not finished_run(directory, tiny_digits, TINY_MODEL, TINY_TRAIN)


def test_run_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("CVAE_RUNS", str(tmp_path))
    assert files.run_directory("quick-cvae") == tmp_path / "quick-cvae"
    assert files.run_directory("x", root=tmp_path / "r") == tmp_path / "r" / "x"
    monkeypatch.delenv("CVAE_RUNS")
    assert (
        files.run_directory("x").name == "x"
        and files.run_directory("x").parent.name == "_runs"
    )


def test_the_cosine_schedule_warms_up_peaks_and_decays_to_zero():
    from cvae_lib.train import learning_rate_schedule

    config = TrainConfig(epochs=10, learning_rate=6e-3, lr_schedule="cosine")
    schedule = learning_rate_schedule(config, steps_per_epoch=20)  # 200 steps
    rate = [float(schedule(step)) for step in range(201)]
    assert rate[0] == 0.0 and rate[10] == pytest.approx(6e-3)  # 5%: the peak
    assert rate[5] == pytest.approx(3e-3)  # linear on the way up
    assert all(a >= b for a, b in zip(rate[10:], rate[11:]))  # falls from there
    assert rate[200] == pytest.approx(0.0, abs=1e-9)
    constant = TrainConfig(learning_rate=3e-3, lr_schedule="constant")
    assert learning_rate_schedule(constant, 20) == 3e-3


def test_training_applies_the_warmup_shape_and_the_class_weight_schedule(tiny_digits):
    """Read back from the model's own weights after each epoch, not from the settings."""
    digits = tiny_digits.subset(64, 20)
    config = TrainConfig(
        epochs=4,
        batch_size=64,
        warmup_fraction=0.5,
        warmup_shape="kl",
        class_weight_final=5.0,
    )
    model = ConditionalVAE(replace(TINY_MODEL, class_weight=20.0))
    history = train(model, digits, config, progress="none")
    assert history.series("kl_anneal").tolist() == [0.0, 0.5, 1.0, 1.0]
    assert history.series("recon_weight").tolist() == [1.0, 1.0, 1.0, 1.0]
    # constant through the warm-up, then linear to the final weight
    assert history.series("class_weight").tolist() == [20.0, 20.0, 20.0, 5.0]
