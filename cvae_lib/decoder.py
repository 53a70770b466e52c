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


def make_decoder(config: ModelConfig, seed: int = 0, extra_inputs: int = 0) -> keras.Model:
    """latent (latent_dim + extra_inputs,) -> pixel logits (28, 28, 1).

    ``extra_inputs`` > 0 lets a variant append a one-hot label to z (Sohn et al.'s
    CVAE); 0 is the reference decoder.
    """
    depth, k = config.base_depth, config.kernel_size
    act = tf.nn.leaky_relu
    init = lambda i: keras.initializers.GlorotUniform(seed=seed + 100 + i)  # noqa: E731
    width = config.latent_dim + extra_inputs
    return keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=(width,)),
            keras.layers.Reshape((1, 1, width)),
            keras.layers.Conv2DTranspose(2 * depth, 7, 1, "valid", activation=act, kernel_initializer=init(0)),
            keras.layers.Conv2DTranspose(2 * depth, k, 1, "same", activation=act, kernel_initializer=init(1)),
            keras.layers.Conv2DTranspose(2 * depth, k, 2, "same", activation=act, kernel_initializer=init(2)),
            keras.layers.Conv2DTranspose(depth, k, 1, "same", activation=act, kernel_initializer=init(3)),
            keras.layers.Conv2DTranspose(depth, k, 2, "same", activation=act, kernel_initializer=init(4)),
            keras.layers.Conv2DTranspose(depth, k, 1, "same", activation=act, kernel_initializer=init(5)),
            keras.layers.Conv2D(config.image_shape[-1], k, 1, "same", kernel_initializer=init(6)),
        ],
        name="decoder",
    )


def pixel_distribution(logits: tf.Tensor) -> tfd.Distribution:
    """Independent Bernoulli over all pixels of each image."""
    return tfd.Independent(tfd.Bernoulli(logits=logits), reinterpreted_batch_ndims=3)
