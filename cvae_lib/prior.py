"""The learned class-conditional prior p(z | y) = N(mu_y, I): two linear Dense layers map the one-hot
label to mu_y, any point of latent space; the covariance is fixed, so it only says *where* a class lives."""

from __future__ import annotations

import numpy as np

from .backend import keras, tf, tfd
from .config import ModelConfig


def make_prior_network(config: ModelConfig, init_radius: float = 0.0, seed: int = 0) -> keras.Model:
    """one-hot (num_classes,) -> mu_y (latent_dim,), Glorot-initialised (all means within about a unit),
    then spread on a circle of ``init_radius`` > 0 (:func:`spread_class_means`; :mod:`cvae_lib.train`)."""
    glorot = lambda i: keras.initializers.GlorotUniform(seed=seed + i)  # noqa: E731
    network = keras.Sequential([
        keras.layers.InputLayer(input_shape=(config.num_classes,)),
        keras.layers.Dense(2 * config.latent_dim, kernel_initializer=glorot(0), name="prior_hidden"),
        keras.layers.Dense(config.latent_dim, kernel_initializer=glorot(1), name="prior_mean"),
    ], name="prior_network")
    if init_radius > 0:
        spread_class_means(network, circle_means(config.num_classes, config.latent_dim, init_radius), seed)
    return network


def circle_means(num_classes: int, latent_dim: int, radius: float) -> np.ndarray:
    """Targets evenly spaced on a circle of ``radius`` in the first two dimensions, or on
    [-radius, radius] in a one-dimensional latent space (where cos alone would pair them)."""
    targets = np.zeros((num_classes, latent_dim), np.float32)
    if latent_dim == 1:
        targets[:, 0] = np.linspace(-radius, radius, num_classes)
        return targets
    angles = 2 * np.pi * np.arange(num_classes) / num_classes
    targets[:, 0] = radius * np.cos(angles)
    targets[:, 1] = radius * np.sin(angles)
    return targets


def spread_class_means(network: keras.Model, targets: np.ndarray, seed: int = 0) -> None:
    """Set the first layer so the network maps one-hot y exactly to ``targets[y]``: row y of
    W1 solves W2^T h = target_y, minimum-norm plus a small random part in the null space
    of W2^T, which keeps the hidden units distinct so gradients still move every weight."""
    hidden, mean = network.layers
    w2, b2 = mean.get_weights()
    solve = np.linalg.pinv(w2.T)  # (hidden, latent)
    rows = (targets - b2) @ solve.T
    null = np.eye(w2.shape[0]) - solve @ w2.T
    rng = np.random.default_rng(seed)
    rows += 0.1 * rng.standard_normal(rows.shape) @ null.T
    _, b1 = hidden.get_weights()
    hidden.set_weights([(rows - b1).astype(np.float32), b1])


def prior_distribution(class_means: tf.Tensor) -> tfd.Distribution:
    """N(mu_y, I) for a batch of class means (unit covariance: only the mean is learned)."""
    return tfd.MultivariateNormalDiag(loc=class_means, scale_diag=tf.ones_like(class_means))
