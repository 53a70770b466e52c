"""The reference recipe's training path, rebuilt for timing: Keras ``fit`` with TFP layers.

The reference trained its VAE the way TFP's layer tutorials do: the encoder ends in
``tfpl.MultivariateNormalTriL(latent, activity_regularizer=tfpl.KLDivergenceRegularizer(prior, weight=1.0))``,
the decoder in a sigmoid scored by Keras binary cross-entropy, and ``model.fit`` with
Adam runs it. A Keras activity regularizer sees only the layer's output, so it cannot
use a prior that depends on the label; for the class-conditional prior the model is a
functional Keras model taking ``[image, label]`` and :class:`ConditionalKL` adds the
same KL with ``add_loss``. Built here, on the library's own networks
(``make_encoder``, ``make_decoder`` with a plain ``Conv2D`` last layer,
``make_prior_network``):

* encoder -> ``tfpl.MultivariateNormalTriL(latent)``; z is its sample;
* :class:`ConditionalKL`: ``KLDivergenceRegularizer``'s default estimate,
  ``log q(z|x) - log N(z; mu_y, I)`` at that sample, weight 1.0, averaged over the batch;
* decoder -> sigmoid; loss: Keras ``binary_crossentropy`` summed over the pixels;
* ``tf.data``: shuffle, binarise each image in ``map``, batch, prefetch (as the
  reference did); ``model.fit(..., verbose=0)`` with Adam(1e-3).

``bench.py`` times it against the library.
"""

from __future__ import annotations

import time

from cvae_lib.backend import keras, tf, tfd, tfpl
from cvae_lib.config import ModelConfig
from cvae_lib.decoder import make_decoder
from cvae_lib.encoder import make_encoder
from cvae_lib.prior import make_prior_network


class ConditionalKL(keras.layers.Layer):
    """Adds KL(q(z|x) || N(mu_y, I)) as a model loss and passes the sample z on."""

    def __init__(self, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight

    def call(self, inputs):
        posterior, class_means = inputs
        z = tf.convert_to_tensor(posterior)  # the sample the decoder sees
        prior = tfd.MultivariateNormalDiag(
            loc=class_means, scale_diag=tf.ones_like(class_means)
        )
        kl = posterior.log_prob(z) - prior.log_prob(z)
        self.add_loss(self.weight * tf.reduce_mean(kl))
        return z


def pixel_binary_crossentropy(images, probabilities):
    """Keras binary cross-entropy summed over the pixels: nats per image."""
    return tf.reduce_sum(
        keras.losses.binary_crossentropy(images, probabilities), axis=[1, 2]
    )


def build_reference_model(
    config: ModelConfig = ModelConfig(), learning_rate: float = 1e-3, seed: int = 0
) -> keras.Model:
    """The compiled functional Keras model ``[image, label] -> p(x|z)``'s pixel means."""
    image = keras.Input(config.image_shape, name="image")
    label = keras.Input((), dtype=tf.int32, name="label")
    one_hot = keras.layers.Lambda(
        lambda y: tf.one_hot(y, config.num_classes), name="one_hot"
    )(label)
    class_means = make_prior_network(config, seed=seed)(one_hot)
    params = make_encoder(config, seed=seed)(image)
    posterior = tfpl.MultivariateNormalTriL(config.latent_dim, name="posterior")(params)
    z = ConditionalKL(weight=1.0, name="kl")([posterior, class_means])
    logits = plain_decoder(config, seed)(z)
    pixels = keras.layers.Activation("sigmoid", name="pixels")(logits)
    model = keras.Model([image, label], pixels, name="reference_cvae")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss=pixel_binary_crossentropy
    )
    return model


def plain_decoder(config: ModelConfig, seed: int = 0) -> keras.Model:
    """The library's decoder with Keras's own ``Conv2D`` as its last layer (same weights),
    as the reference had it, instead of :class:`~cvae_lib.decoder.PixelLogits`."""
    decoder = make_decoder(config, seed=seed)
    last = decoder.layers[-1]
    plain = keras.layers.Conv2D.from_config(last.get_config())
    network = keras.Sequential(
        [keras.layers.InputLayer(input_shape=decoder.input_shape[1:])]
        + decoder.layers[:-1]
        + [plain],
        name="decoder",
    )
    plain.set_weights(last.get_weights())
    return network


def reference_dataset(x, y, batch_size: int, seed: int = 0):
    """((binarised image, label), binarised image) batches, binarised per image in ``map``."""

    def binarize(image, label):
        # seeded: the library's training turns on op determinism, which refuses unseeded random ops
        sample = tf.cast(
            tf.random.uniform(tf.shape(image), seed=seed) < image, tf.float32
        )
        return (sample, label), sample

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
    dataset = dataset.map(binarize, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


class _EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch of ``fit``, from its first batch's start to its end."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


class ReferenceTrainer:
    """Runs the reference ``fit`` one epoch at a time and reports how long each took."""

    def __init__(
        self,
        x,
        y,
        batch_size: int = 256,
        config: ModelConfig = ModelConfig(),
        seed: int = 0,
    ):
        self.model = build_reference_model(config, seed=seed)
        self.dataset = reference_dataset(x, y, batch_size, seed)
        self.images_per_epoch = (len(x) // batch_size) * batch_size
        self.losses = []

    def epoch(self) -> tuple[int, float]:
        """Train one epoch; (images, seconds)."""
        timer = _EpochTimer()
        history = self.model.fit(self.dataset, epochs=1, verbose=0, callbacks=[timer])
        self.losses.append(float(history.history["loss"][-1]))
        return self.images_per_epoch, timer.seconds[-1]
