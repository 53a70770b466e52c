"""The two recipes the book compares the conditional-prior VAE against. Both keep its
encoder, decoder and negative ELBO, have the prior N(0, I) (class means 0, no
``prior_variables``), are trained with :func:`standard_train_config`, and differ in
*where the label goes*:

- :class:`UnconditionalVAE` (``"vae"``): nowhere in training, so the ELBO bounds -log p(x);
  class y is generated from N(centre_y, I), centre_y the mean encoding of its training
  digits. Does a *learned* prior beat finding the classes afterwards?
- :class:`SohnCVAE` (``"sohn_cvae"``, Sohn, Lee and Yan, 2015): into the encoder (as extra
  channels) and the decoder (next to z); class y is decoded from z ~ N(0, I) *with* y, so
  z carries only the style and latent space has no class regions."""

from __future__ import annotations

import dataclasses

import numpy as np

from .backend import keras, tf, tfd
from .config import TrainConfig
from .decoder import make_decoder
from .encoder import make_encoder, posterior_distribution
from .model import ConditionalVAE
from .prior import prior_distribution
from .train import fixed_binarization

#: Their training settings: the reference's Adam learning rate, no warm-up, no class term.
STANDARD_TRAINING = {"learning_rate": 1e-3, "warmup_fraction": 0.0, "class_weight": 0.0}


def standard_train_config(settings: TrainConfig) -> TrainConfig:
    """``settings`` with :data:`STANDARD_TRAINING`: the book's warm-up and class term keep class
    means apart, which these models lack; with them Sohn's CVAE ignored z, then diverged."""
    return dataclasses.replace(settings, **STANDARD_TRAINING)


class _StandardNormalPrior(ConditionalVAE):
    """Shared by both variants: every class mean 0, so the inherited
    :meth:`ConditionalVAE.prior` is N(0, I), and nothing for the prior optimiser."""

    def class_means(self, labels: tf.Tensor) -> tf.Tensor:
        return tf.zeros(tf.stack([tf.shape(labels)[0], self.config.latent_dim]))

    @property
    def prior_variables(self):
        return []


class UnconditionalVAE(_StandardNormalPrior):
    """A plain VAE; generates class y from N(centre_y, I) found after training."""

    kind = "vae"
    #: What its importance-weighted bound bounds: the label plays no part in training.
    likelihood_of = "p(x)"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # one-hot y -> centre_y: the kernel's rows, set by finish_training, saved with the other weights
        centres = keras.layers.Dense(self.config.latent_dim, use_bias=False, kernel_initializer="zeros",
                                     trainable=False, name="centres")
        self.class_centres = keras.Sequential([keras.layers.InputLayer(input_shape=(self.config.num_classes,)),
                                               centres], name="class_centres")

    def networks(self) -> dict[str, keras.Model]:
        return {"encoder": self.encoder, "decoder": self.decoder, "class_centres": self.class_centres}

    def generation_prior(self, labels: tf.Tensor) -> tfd.Distribution:
        return prior_distribution(self.class_centres(self.one_hot(labels)))

    def finish_training(self, digits) -> None:
        """centre_y = mean posterior mean of the training digits of class y."""
        self.class_centres.set_weights([self.encoded_centres(digits.x_train, digits.y_train)])

    def encoded_centres(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Per-class average of E[z | x] over ``images`` (binarised as in training), (classes, latent)."""
        if self.train_config.binarize:
            images = fixed_binarization(images)
        means = np.concatenate([np.asarray(self.posterior(tf.constant(images[i:i + batch_size]), None).mean())
                                for i in range(0, len(images), batch_size)])
        centres = np.zeros((self.config.num_classes, self.config.latent_dim), np.float32)
        for c in range(self.config.num_classes):
            members = means[labels == c]
            if len(members):
                centres[c] = members.mean(axis=0)
        return centres


class SohnCVAE(_StandardNormalPrior):
    """Sohn et al.'s CVAE: the label enters encoder and decoder; prior N(0, I)."""

    kind = "sohn_cvae"

    def _make_encoder(self) -> keras.Model:
        return make_encoder(self.config, seed=self.train_config.seed, extra_inputs=self.config.num_classes)

    def _make_decoder(self) -> keras.Model:
        return make_decoder(self.config, seed=self.train_config.seed, extra_inputs=self.config.num_classes)

    def networks(self) -> dict[str, keras.Model]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def posterior(self, images: tf.Tensor, labels: tf.Tensor) -> tfd.Distribution:
        """q(z | x, y): the one-hot label as extra channels of every pixel."""
        one_hot = self.one_hot(labels)[:, None, None, :]
        planes = tf.broadcast_to(one_hot, tf.concat([tf.shape(images)[:3], [self.config.num_classes]], 0))
        return posterior_distribution(self.encoder(tf.concat([images, planes], -1)), self.config.latent_dim)

    def decode_logits(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """p(x | z, y): the one-hot label appended to z."""
        return self.decoder(tf.concat([z, self.one_hot(labels)], -1))


VARIANTS = (UnconditionalVAE, SohnCVAE)
