"""The decoder p(x | z): the reference transposed-convolution stack -> Bernoulli pixel logits. It never
sees the label: all it knows of the class is in z, so the prior has to keep the classes apart."""

from __future__ import annotations

from .backend import keras, tf, tfd
from .config import ModelConfig
from .fast_conv import PixelLogits


def make_decoder(config: ModelConfig, seed: int = 0, extra_inputs: int = 0) -> keras.Model:
    """z (latent_dim + extra_inputs: a one-hot label for Sohn et al.'s CVAE) -> pixel logits (28, 28, 1),
    the last layer a :class:`~cvae_lib.fast_conv.PixelLogits`, Keras's ``Conv2D`` computed faster."""
    depth, k = config.base_depth, config.kernel_size
    act = tf.nn.leaky_relu
    init = lambda i: keras.initializers.GlorotUniform(seed=seed + 100 + i)  # noqa: E731
    width = config.latent_dim + extra_inputs
    # (filters, kernel, stride, padding) of each transposed convolution
    shapes = [(2 * depth, 7, 1, "valid"), (2 * depth, k, 1, "same"), (2 * depth, k, 2, "same"),
              (depth, k, 1, "same"), (depth, k, 2, "same"), (depth, k, 1, "same")]
    return keras.Sequential(
        [keras.layers.InputLayer(input_shape=(width,)), keras.layers.Reshape((1, 1, width))]
        + [keras.layers.Conv2DTranspose(filters, size, stride, padding, activation=act, kernel_initializer=init(i))
           for i, (filters, size, stride, padding) in enumerate(shapes)]
        + [PixelLogits(config.image_shape[-1], k, 1, "same", kernel_initializer=init(6))], name="decoder")


def pixel_distribution(logits: tf.Tensor) -> tfd.Distribution:
    """Independent Bernoulli over all pixels of each image."""
    return tfd.Independent(tfd.Bernoulli(logits=logits), reinterpreted_batch_ndims=3)
