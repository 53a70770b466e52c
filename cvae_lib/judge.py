"""An independent digit classifier used as a judge of generated samples.

It is trained on the training split only, never on generated images, and never sees
the VAE. "Conditional accuracy" is the share of images generated for class y that
this judge labels y.
"""

from __future__ import annotations

import numpy as np

from .backend import keras, tf
from .data import Digits


def make_judge_network(seed: int = 0) -> keras.Model:
    """A small CNN (two conv blocks + dense), ~99% on full MNIST, ~97% on the offline digits."""
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=(28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu", kernel_initializer=init),
            keras.layers.Conv2D(32, 3, activation="relu", kernel_initializer=init),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu", kernel_initializer=init),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3, seed=seed),
            keras.layers.Dense(128, activation="relu", kernel_initializer=init),
            keras.layers.Dense(10, kernel_initializer=init),
        ],
        name="judge",
    )


def _augment(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random shifts of up to 2 pixels, so the judge does not rely on exact centring."""
    padded = tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]])
    return tf.image.stateless_random_crop(padded, tf.shape(images), seed=seed)


def train_judge(digits: Digits, *, epochs: int = 12, seed: int = 0, verbose: bool = False) -> keras.Model:
    """Train the judge on ``digits.x_train`` only; returns the Keras model (logits out)."""
    tf.random.set_seed(seed)
    judge = make_judge_network(seed)
    judge.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    n = len(digits.x_train)
    data = tf.data.Dataset.from_tensor_slices((digits.x_train, digits.y_train))
    data = data.shuffle(n, seed=seed).batch(128).enumerate()
    data = data.map(lambda i, xy: (_augment(xy[0], tf.stack([tf.cast(seed, tf.int64), i])), xy[1]))
    judge.fit(data.prefetch(tf.data.AUTOTUNE), epochs=epochs, verbose=2 if verbose else 0)
    return judge


def judge_labels(judge: keras.Model, images: np.ndarray) -> np.ndarray:
    """The judge's predicted digit for each image."""
    logits = judge.predict(np.asarray(images, np.float32).reshape(-1, 28, 28, 1), batch_size=1000, verbose=0)
    return np.argmax(logits, axis=-1)


def judge_accuracy(judge: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(judge_labels(judge, images) == np.asarray(labels)))
