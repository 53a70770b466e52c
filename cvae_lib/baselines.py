"""The two baselines the book compares against, both with the prior N(0, I), differing in where the label goes: nowhere
in training (:class:`UnconditionalVAE`) or into encoder and decoder (:class:`SohnCVAE`, Sohn et al., 2015)."""

import dataclasses

import numpy as np

from .backend import keras, tf, tfd
from .config import ModelConfig, TrainConfig
from .data import fixed_binarization
from .encoder import posterior_distribution
from .model import ConditionalVAE
from .prior import Prior, StandardNormalPrior, prior_distribution


def standard_train_config(settings: TrainConfig) -> TrainConfig:
    """``settings`` at the reference's rate, without warm-up or class-weight schedule:
    no class means to keep apart (with a warm-up the label-input CVAE diverged)."""
    return dataclasses.replace(
        settings, learning_rate=1e-3, warmup_fraction=0.0, class_weight_final=None
    )


def standard_model_config(config: ModelConfig) -> ModelConfig:
    """``config`` without the class term."""
    return dataclasses.replace(config, class_weight=0.0)


class _StandardNormalPrior(ConditionalVAE):
    """Shared by both baselines: the prior N(0, I) for every class, nothing for the prior optimiser."""

    def _make_prior(self) -> Prior:
        return StandardNormalPrior(self.config)


class UnconditionalVAE(_StandardNormalPrior):
    """A plain VAE; generates class y from N(mu_y, I), mu_y found after training."""

    kind = "vae"
    likelihood_of = "p(x)"  #: What its importance-weighted bound bounds: the label plays no part in training.

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # one-hot y -> mu_y: the kernel's rows, set by finish_training, saved with the other weights
        self.class_means_network = keras.Sequential(
            [
                keras.layers.InputLayer(input_shape=(self.config.num_classes,)),
                keras.layers.Dense(
                    self.config.latent_dim,
                    use_bias=False,
                    kernel_initializer="zeros",
                    trainable=False,
                    name="means",
                ),
            ],
            name="class_means",
        )

    def networks(self) -> dict[str, keras.Model]:
        return {**super().networks(), "class_means": self.class_means_network}

    def generation_prior(self, labels: tf.Tensor) -> tfd.Distribution:
        return prior_distribution(self.class_means_network(self.one_hot(labels)))

    def finish_training(self, digits) -> None:
        """mu_y = mean posterior mean of the training digits of class y."""
        self.class_means_network.set_weights(
            [self.encoded_class_means(digits.x_train, digits.y_train)]
        )

    def encoded_class_means(
        self, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000
    ) -> np.ndarray:
        """Per-class average of E[z | x] over ``images`` (binarised as in training)."""
        if self.config.binarize:
            images = fixed_binarization(images)
        means = np.concatenate(
            [
                np.asarray(
                    self.posterior(tf.constant(images[i : i + batch_size]), None).mean()
                )
                for i in range(0, len(images), batch_size)
            ]
        )
        class_means = np.zeros(
            (self.config.num_classes, self.config.latent_dim), np.float32
        )
        for c in range(self.config.num_classes):
            members = means[labels == c]
            if len(members):
                class_means[c] = members.mean(axis=0)
        return class_means


class SohnCVAE(_StandardNormalPrior):
    """Sohn et al.'s CVAE: the label enters encoder and decoder; prior N(0, I)."""

    kind = "sohn_cvae"
    label_inputs = True

    def posterior(self, images: tf.Tensor, labels: tf.Tensor) -> tfd.Distribution:
        """q(z | x, y): the one-hot label as extra channels of every pixel."""
        planes = tf.broadcast_to(
            self.one_hot(labels)[:, None, None, :],
            tf.concat([tf.shape(images)[:3], [self.config.num_classes]], 0),
        )
        return posterior_distribution(
            self.encoder(tf.concat([images, planes], -1)), self.config.latent_dim
        )

    def decode_logits(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """p(x | z, y): the one-hot label appended to z."""
        return self.decoder(tf.concat([z, self.one_hot(labels)], -1))


#: Model kinds that a checkpoint may hold, by the ``kind`` it records.
MODEL_KINDS = {cls.kind: cls for cls in (ConditionalVAE, UnconditionalVAE, SohnCVAE)}
