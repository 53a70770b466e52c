"""A prior family outside the library, plugged in through its seam: N(mu_y, Sigma_y), a
learned covariance per class. The recipe search (``prior_recipes.py``) registers it as
``"full_gaussian"``; it did not beat the book's N(mu_y, I), so the library does not ship it."""

from __future__ import annotations

from cvae_lib.backend import keras, tf, tfb, tfd
from cvae_lib.config import ModelConfig
from cvae_lib.prior import Prior, UnitGaussianPrior, register_prior


class FullGaussianPrior(UnitGaussianPrior):
    """N(mu_y, Sigma_y): the unit family's means, and a learned scale per class, a lower-
    triangular L_y with positive diagonal (Sigma_y = L_y L_y^T) as the encoder's; a linear
    map of the one-hot label, zero at the start, gives L_y = I. The class term
    becomes a quadratic discriminant."""

    def __init__(self, config: ModelConfig, init_radius: float = 0.0, seed: int = 0):
        super().__init__(config, init_radius, seed)
        d = config.latent_dim
        self.scale_network = keras.Sequential(
            [
                keras.layers.InputLayer(input_shape=(config.num_classes,)),
                keras.layers.Dense(
                    d * (d + 1) // 2,
                    use_bias=False,
                    kernel_initializer="zeros",
                    name="prior_scale",
                ),
            ],
            name="prior_scale_network",
        )
        self.to_scale = tfb.FillScaleTriL(diag_bijector=tfb.Exp(), diag_shift=None)

    def networks(self) -> dict[str, keras.Model]:
        return {**super().networks(), "prior_scale_network": self.scale_network}

    def distribution(self, labels: tf.Tensor) -> tfd.Distribution:
        one_hot = tf.one_hot(tf.cast(labels, tf.int32), self.config.num_classes)
        return tfd.MultivariateNormalTriL(
            loc=self.network(one_hot),
            scale_tril=self.to_scale(self.scale_network(one_hot)),
        )

    def class_log_probs(self, z: tf.Tensor) -> tf.Tensor:
        return Prior.class_log_probs(self, z)


register_prior("full_gaussian", FullGaussianPrior)
