"""The encoder q(z | x): the reference convolution stack -> a full-covariance Gaussian.

Four convolutions (5x5 kernels, leaky ReLU, two of them with stride 2) and a 7x7
valid one shrink the 28x28 image to a vector; a Dense layer emits the parameters of a
MultivariateNormalTriL: ``latent`` means plus ``latent*(latent+1)/2`` entries of a
lower-triangular scale matrix. The parameter layout and the map from raw parameters
to a valid scale (softplus on the diagonal plus 1e-5) are exactly those of
``tfp.layers.MultivariateNormalTriL``, so the network is the reference's; only the
distribution is built outside Keras, which lets the training step be XLA-compiled.
The encoder never sees the label.
"""

from __future__ import annotations

from .backend import keras, tf, tfb, tfd, tfpl
from .config import ModelConfig


def posterior_params_size(latent_dim: int) -> int:
    """Number of raw parameters of a latent_dim-dimensional MultivariateNormalTriL."""
    return tfpl.MultivariateNormalTriL.params_size(latent_dim)


def make_encoder(config: ModelConfig, seed: int = 0, extra_inputs: int = 0) -> keras.Model:
    """image (28, 28, 1) -> raw posterior parameters (params_size,).

    ``extra_inputs`` > 0 builds a variant that takes a one-hot label as a second input,
    broadcast over the image as extra channels (Sohn et al.'s CVAE); 0 is the
    reference encoder.
    """
    depth, k = config.base_depth, config.kernel_size
    act = tf.nn.leaky_relu
    init = lambda i: keras.initializers.GlorotUniform(seed=seed + i)  # noqa: E731
    channels = config.image_shape[-1] + extra_inputs
    return keras.Sequential([
        keras.layers.InputLayer(input_shape=config.image_shape[:-1] + (channels,)),
        keras.layers.Lambda(lambda x: x - 0.5, name="center"),
        keras.layers.Conv2D(depth, k, 1, "same", activation=act, kernel_initializer=init(0)),
        keras.layers.Conv2D(depth, k, 2, "same", activation=act, kernel_initializer=init(1)),
        keras.layers.Conv2D(2 * depth, k, 1, "same", activation=act, kernel_initializer=init(2)),
        keras.layers.Conv2D(2 * depth, k, 2, "same", activation=act, kernel_initializer=init(3)),
        keras.layers.Conv2D(4 * config.latent_dim, 7, 1, "valid", activation=act, kernel_initializer=init(4)),
        keras.layers.Flatten(),
        keras.layers.Dense(posterior_params_size(config.latent_dim), kernel_initializer=init(5)),
    ], name="encoder")


def posterior_distribution(params: tf.Tensor, latent_dim: int) -> tfd.Distribution:
    """MultivariateNormalTriL from raw parameters, as ``tfp.layers.MultivariateNormalTriL`` does."""
    scale_tril = tfb.FillScaleTriL(diag_shift=1e-5)(params[..., latent_dim:])
    return tfd.MultivariateNormalTriL(loc=params[..., :latent_dim], scale_tril=scale_tril)
