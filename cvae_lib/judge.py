"""An independent digit classifier that judges generated digits (:mod:`cvae_lib.evaluate`), trained on the training
split only, kept on disk by :func:`load_or_train_judge`; its test accuracy is the ceiling for conditional accuracy."""

import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import keras, tf
from .config import IMAGE_SHAPE
from .data import NUM_CLASSES, Digits, prefetched
from .errors import CvaeError, check_positive_int
from .store import cache
from .store.files import atomic_write, prepare_directory, run_directory
from .store.fingerprint import JUDGE_MODULES, code_fingerprint

JUDGE_FILE = "judge.npz"
DEFAULT_EPOCHS = 12
MAX_BLUR = 2.0  #: The strongest blur the judge trains on, in pixels.


def make_judge_network(seed: int = 0) -> keras.Model:
    """A small CNN (two conv blocks + dense), ~99% on full MNIST, ~97% on the offline digits."""
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=IMAGE_SHAPE),
            keras.layers.Conv2D(32, 3, activation="relu", kernel_initializer=init),
            keras.layers.Conv2D(32, 3, activation="relu", kernel_initializer=init),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu", kernel_initializer=init),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3, seed=seed),
            keras.layers.Dense(128, activation="relu", kernel_initializer=init),
            keras.layers.Dense(NUM_CLASSES, kernel_initializer=init),
        ],
        name="judge",
    )


def _augment(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The batch shifted by up to 2 pixels, and half its images blurred (a sandal blurred is no boot)."""
    shifted = tf.image.stateless_random_crop(
        tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]]), tf.shape(images), seed=seed
    )
    u = tf.random.stateless_uniform(tf.shape(images)[:1], seed=seed + 1)
    return blur(shifted, tf.where(u < 0.5, 2 * u * MAX_BLUR, 0.0))


def blur(images: tf.Tensor, sigma: tf.Tensor, radius: int = 4) -> tf.Tensor:
    """Images (N, H, W, 1), each blurred by a Gaussian of its own width ``sigma`` (N,) in pixels,
    0 for none, like a VAE decoder's mean images (tf.image and tf-keras 2 have no blur)."""
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)[:, None]
    weights = tf.nn.softmax(  # a kernel per image, used down the image, then across
        -0.5 * (offsets / (tf.cast(sigma, tf.float32) + 1e-3)) ** 2, axis=0
    )
    channels = tf.transpose(images, [3, 1, 2, 0])  # each image its own channel
    for kernel in (weights[:, None, :, None], weights[None, :, :, None]):
        channels = tf.nn.depthwise_conv2d(channels, kernel, [1, 1, 1, 1], "SAME")
    return tf.transpose(channels, [3, 1, 2, 0])


def train_judge(
    digits: Digits,
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    verbose: bool = False,
) -> keras.Model:
    """Train the judge on ``digits.x_train`` only; returns the Keras model (logits out)."""
    tf.random.set_seed(seed)
    judge = make_judge_network(seed)
    judge.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics=["accuracy"],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    data = tf.data.Dataset.from_tensor_slices((digits.x_train, digits.y_train))
    data = data.shuffle(len(digits.x_train), seed=seed).batch(128).enumerate()
    data = data.map(
        lambda i, xy: (_augment(xy[0], tf.stack([tf.cast(seed, tf.int64), i])), xy[1])
    )
    judge.fit(prefetched(data), epochs=epochs, verbose=2 if verbose else 0)
    return judge


@dataclass
class Judge:
    """A trained judge network with its test accuracy and what it was trained on."""

    network: keras.Model
    test_accuracy: float
    meta: dict

    def labels(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """The judge's digit for each image (N, 28, 28) or (N, 28, 28, 1), grey levels in [0, 1]."""
        images = np.asarray(images, np.float32).reshape(-1, *IMAGE_SHAPE)
        out = [
            np.argmax(
                self.network(images[i : i + batch_size], training=False).numpy(),
                axis=-1,
            )
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out).astype(np.int32) if out else np.zeros(0, np.int32)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.labels(images) == np.asarray(labels)))


def judge_directory(
    digits: Digits, seed: int = 0, epochs: int = DEFAULT_EPOCHS, root=None
) -> Path:
    """``<runs>/judge-<source>-<n_train>-s<seed>``, ``-e<epochs>`` for other than the
    default epochs, so a quick judge never replaces the book's."""
    suffix = "" if epochs == DEFAULT_EPOCHS else f"-e{epochs}"
    return run_directory(
        f"judge-{digits.source}-{len(digits.x_train)}-s{seed}{suffix}", root
    )


def save_judge(judge: Judge, directory) -> Path:
    """Weights and metadata in one ``judge.npz``, written atomically (never half a judge)."""
    path = prepare_directory(directory) / JUDGE_FILE
    arrays = {f"w{i:03d}": w for i, w in enumerate(judge.network.get_weights())}
    arrays["__meta__"] = np.array(
        json.dumps({**judge.meta, "test_accuracy": judge.test_accuracy}, sort_keys=True)
    )
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_judge(directory) -> Judge:
    """The judge saved in ``directory``; :class:`~cvae_lib.errors.CvaeError` if missing or corrupt."""
    path = Path(directory) / JUDGE_FILE
    if not path.is_file():
        raise CvaeError(f"no judge at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["__meta__"]))
            weights = [archive[f"w{i:03d}"] for i in range(len(archive.files) - 1)]
        test_accuracy = float(meta.pop("test_accuracy"))
    except (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
    ) as err:
        raise CvaeError(f"{path} is corrupt: {err}") from None
    network = make_judge_network()  # the initial weights are replaced below
    expected = network.get_weights()
    if (
        meta.get("cache_format") != cache.CACHE_FORMAT
        or len(weights) != len(expected)
        or any(w.shape != e.shape for w, e in zip(weights, expected))
    ):
        raise CvaeError(f"{path} was written by another version of the judge")
    network.set_weights(weights)
    return Judge(network, test_accuracy, meta)


def load_or_train_judge(
    digits: Digits,
    *,
    seed: int = 0,
    epochs: int = DEFAULT_EPOCHS,
    root=None,
    verbose: bool = False,
    stream=None,
) -> Judge:
    """The judge trained on ``digits.x_train``, scored on ``x_test``; reused if epochs, seed, code and digits match."""
    check_positive_int(epochs, "judge epochs")
    stream = stream or sys.stderr
    directory = judge_directory(digits, seed, epochs, root)
    wanted = cache.key(
        code_fingerprint(only=JUDGE_MODULES),
        source=digits.source,
        n_train=int(len(digits.x_train)),
        seed=int(seed),
        epochs=int(epochs),
        fingerprint=digits.subset(n_test=0).fingerprint[:16],  # the training split's
    )

    def read():
        judge = load_judge(directory) if (directory / JUDGE_FILE).exists() else None
        return None if judge is None else (judge.meta, lambda: judge)

    def make(reason):
        why = f"not reusing the judge in {directory}: {reason}; " if reason else ""
        print(
            f"cvae_lib: {why}training the judge on {len(digits.x_train):,} {digits.source!r} digits "
            f"({epochs} epochs; kept in {directory})",
            file=stream,
            flush=True,
        )
        judge = Judge(
            train_judge(digits, epochs=epochs, seed=seed, verbose=verbose),
            float("nan"),
            {**wanted, "n_test": int(len(digits.x_test))},
        )
        judge.test_accuracy = judge.accuracy(digits.x_test, digits.y_test)
        save_judge(judge, directory)
        return judge

    return cache.reuse_or_make(directory, wanted, read, make)[0]
