"""The learned class-conditional prior p(z | y) = N(mu_y, I).

A tiny network maps the one-hot label to the class mean: one-hot -> Dense(2*latent)
-> Dense(latent) = mu_y. Both layers are linear: the input is one-hot, so each class
already owns its own column of weights and mu_y can be any point of latent space.
The covariance is fixed to the identity, so the prior has one job: *where* each
class lives.
"""

from __future__ import annotations

from .backend import keras, tf, tfd
from .config import ModelConfig


def make_prior_network(config: ModelConfig, init_spread: float = 1.0, seed: int = 0) -> keras.Model:
    """one-hot (num_classes,) -> mu_y (latent_dim,).

    ``init_spread`` scales the initial weights of the last layer, so that the class
    means start ``init_spread`` times further apart than Glorot initialisation puts
    them (see :mod:`cvae_lib.train` for why that matters).
    """
    glorot = keras.initializers.GlorotUniform(seed=seed)
    hidden = keras.layers.Dense(
        2 * config.latent_dim, kernel_initializer=glorot, name="prior_hidden"
    )
    out_init = keras.initializers.VarianceScaling(
        scale=float(init_spread) ** 2, mode="fan_avg", distribution="uniform", seed=seed + 1
    )
    mean = keras.layers.Dense(config.latent_dim, kernel_initializer=out_init, name="prior_mean")
    network = keras.Sequential(
        [keras.layers.InputLayer(input_shape=(config.num_classes,)), hidden, mean],
        name="prior_network",
    )
    return network


def prior_distribution(class_means: tf.Tensor) -> tfd.Distribution:
    """N(mu_y, I) for a batch of class means (unit covariance: only the mean is learned)."""
    return tfd.MultivariateNormalDiag(loc=class_means, scale_diag=tf.ones_like(class_means))
