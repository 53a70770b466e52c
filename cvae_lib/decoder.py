"""The decoder p(x | z): the reference transposed-convolution stack -> Bernoulli logits.

The latent vector is reshaped to a 1x1 "image" and grown back to 28x28 by
transposed convolutions (two of them with stride 2), mirroring the encoder. The last
convolution emits one logit per pixel; each pixel is an independent Bernoulli. The
decoder never sees the label: everything it knows about the class must be in z,
which is why the class-conditional prior has to keep the classes apart.
"""

from __future__ import annotations

from .backend import keras, tf, tfd
from .config import ModelConfig
from .fast_conv import PixelLogits


def make_decoder(config: ModelConfig, seed: int = 0, extra_inputs: int = 0) -> keras.Model:
    """latent (latent_dim + extra_inputs,) -> pixel logits (28, 28, 1).

    ``extra_inputs`` > 0 lets a variant append a one-hot label to z (Sohn et al.'s
    CVAE); 0 is the reference decoder. The last layer is a
    :class:`~cvae_lib.fast_conv.PixelLogits`, Keras's ``Conv2D`` computed faster.
    """
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
