"""The learned class-conditional prior p(z | y) = N(mu_y, I).

A tiny network maps the one-hot label to the class mean: one-hot -> Dense(2*latent)
-> Dense(latent) = mu_y. Both layers are linear: the input is one-hot, so each class
already owns its own column of weights and mu_y can be any point of latent space.
The covariance is fixed to the identity, so the prior has one job: *where* each
class lives.
"""

from __future__ import annotations

import numpy as np

from .backend import keras, tf, tfd
from .config import ModelConfig


def make_prior_network(config: ModelConfig, init_radius: float = 0.0, seed: int = 0) -> keras.Model:
    """one-hot (num_classes,) -> mu_y (latent_dim,).

    With ``init_radius`` = 0 both layers start from Glorot initialisation, which puts
    all class means within about one unit of each other. With ``init_radius`` > 0 the
    first layer's weights are then set so that the class means start evenly spread on
    a circle of that radius in the first two latent dimensions (see
    :func:`spread_class_means` and :mod:`cvae_lib.train` for why).
    """
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
    """Targets evenly spaced on a circle of ``radius`` in the first two dimensions.

    A one-dimensional latent space has no circle (cos alone would give pairs of
    classes the same mean): there the targets are evenly spaced on [-radius, radius].
    """
    targets = np.zeros((num_classes, latent_dim), np.float32)
    if latent_dim == 1:
        targets[:, 0] = np.linspace(-radius, radius, num_classes)
        return targets
    angles = 2 * np.pi * np.arange(num_classes) / num_classes
    targets[:, 0] = radius * np.cos(angles)
    targets[:, 1] = radius * np.sin(angles)
    return targets


def spread_class_means(network: keras.Model, targets: np.ndarray, seed: int = 0) -> None:
    """Set the first layer so the network maps one-hot y exactly to ``targets[y]``.

    The second layer keeps its random weights W2 (hidden x latent). For class y the
    hidden activation is row y of W1, so row y must solve W2^T h = target_y. We take
    the minimum-norm solution plus a small random part in the null space of W2^T,
    which changes nothing at the output but keeps the hidden units distinct, so
    gradients can still move every weight.
    """
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
