"""The prior seam: a new prior family is one class and one registration, and the model trains,
checkpoints, samples and measures with it, with no change anywhere else in the library."""

from __future__ import annotations

import numpy as np
import pytest

from cvae_lib import ConditionalVAE, CvaeError, ModelConfig, TrainConfig, train_or_load
from cvae_lib.backend import keras, tf, tfd
from cvae_lib.prior import (
    PRIOR_FAMILIES,
    Prior,
    circle_means,
    closest_pair,
    register_prior,
)
from cvae_lib.sampling import class_means, class_separation, sample_images
from cvae_lib.store.checkpoint import load_checkpoint


class ScaledGaussianPrior(Prior):
    """N(mu_y, s_y^2 I): class means fixed on a circle, one learned scale per class."""

    def __init__(self, config: ModelConfig, init_radius: float = 0.0, seed: int = 0):
        super().__init__(config)
        self.means = tf.constant(
            circle_means(config.num_classes, config.latent_dim, 3.0)
        )
        self.network = keras.Sequential(
            [
                keras.layers.InputLayer(input_shape=(config.num_classes,)),
                keras.layers.Dense(
                    1, use_bias=False, kernel_initializer="zeros", name="log_scale"
                ),
            ],
            name="scale_network",
        )

    def networks(self):
        return {"scale_network": self.network}

    def distribution(self, labels):
        labels = tf.cast(labels, tf.int32)
        loc = tf.gather(self.means, labels)
        scale = tf.exp(
            self.network(tf.one_hot(labels, self.config.num_classes))
        )  # (N, 1)
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale * tf.ones_like(loc))


@pytest.fixture
def scaled_gaussian(monkeypatch):
    """The family registered for one test (the registry is restored afterwards)."""
    monkeypatch.setattr("cvae_lib.prior.PRIOR_FAMILIES", dict(PRIOR_FAMILIES))
    register_prior("scaled_gaussian", ScaledGaussianPrior)
    return ModelConfig(base_depth=2, prior="scaled_gaussian")


def test_the_model_uses_the_registered_family(scaled_gaussian):
    model = ConditionalVAE(scaled_gaussian)
    labels = tf.constant([0, 3, 3, 9])
    prior = model.prior(labels)
    np.testing.assert_allclose(
        prior.mean().numpy(), circle_means(10, 2, 3.0)[[0, 3, 3, 9]], atol=1e-6
    )
    np.testing.assert_allclose(prior.stddev().numpy(), 1.0)  # log-scale starts at 0
    assert [v.name for v in model.prior_variables] == ["log_scale/kernel:0"]
    assert (
        "scale_network" in model.networks() and "prior_network" not in model.networks()
    )
    # the class term follows the family's log-density: -log p(y | z) is small for z at its own mean
    z = tf.constant(circle_means(10, 2, 3.0)[[3]])
    assert float(model.class_nll(z, tf.constant([3]))[0]) < float(
        model.class_nll(z, tf.constant([4]))[0]
    )


def test_it_trains_checkpoints_and_samples_without_other_changes(
    scaled_gaussian, tiny_digits, tmp_path
):
    digits = tiny_digits.subset(256, 64)
    settings = TrainConfig(
        epochs=2, batch_size=128, prior_learning_rate=0.05
    )  # epoch 2 trains the prior

    def train():
        return train_or_load(
            digits,
            tmp_path / "run",
            model_config=scaled_gaussian,
            train_config=settings,
            progress="none",
        )

    model, history, reused = train()
    assert not reused and len(history.epochs) == 2
    scales = model.prior(tf.range(10)).stddev().numpy()[:, 0]
    assert not np.allclose(scales, 1.0)  # the prior's own variable learned
    loaded, _ = load_checkpoint(tmp_path / "run")
    assert loaded.config.prior == "scaled_gaussian"
    np.testing.assert_allclose(
        loaded.prior(tf.range(10)).stddev().numpy()[:, 0], scales, rtol=1e-6
    )
    np.testing.assert_allclose(class_means(loaded), circle_means(10, 2, 3.0), atol=1e-6)
    # distances are in the family's own standard deviations
    i, j, distance = closest_pair(class_separation(loaded))
    assert distance == pytest.approx(
        2 * 3.0 * np.sin(np.pi / 10) / scales.mean(), rel=1e-4
    )
    assert sample_images(loaded, 2).shape == (10, 2, 28, 28)
    _, _, reused = train()  # the same settings again: the finished run is loaded
    assert reused


def test_an_unknown_family_is_one_clear_error():
    with pytest.raises(
        CvaeError,
        match="unknown prior family 'learned_covariance': known are "
        "standard_normal, unit_gaussian",
    ):
        ConditionalVAE(ModelConfig(base_depth=2, prior="learned_covariance"))
    with pytest.raises(CvaeError, match="subclass of cvae_lib.prior.Prior"):
        register_prior("not_a_prior", dict)
