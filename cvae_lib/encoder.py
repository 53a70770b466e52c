"""The encoder q(z | x), blind to the label: the reference convolution stack -> a full-covariance
Gaussian, as ``tfp.layers.MultivariateNormalTriL`` makes it but outside Keras, for XLA."""

from .backend import keras, tf, tfb, tfd, tfpl
from .config import ModelConfig


def posterior_params_size(latent_dim: int) -> int:
    """Number of raw parameters of a latent_dim-dimensional MultivariateNormalTriL."""
    return tfpl.MultivariateNormalTriL.params_size(latent_dim)


def make_encoder(
    config: ModelConfig, seed: int = 0, extra_inputs: int = 0
) -> keras.Model:
    """image (28, 28, 1 + ``extra_inputs``: a one-hot label for Sohn et al.'s CVAE) -> raw posterior parameters."""
    depth, k = config.base_depth, config.kernel_size
    act = tf.nn.leaky_relu
    init = lambda i: keras.initializers.GlorotUniform(seed=seed + i)  # noqa: E731
    channels = config.image_shape[-1] + extra_inputs
    return keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=config.image_shape[:-1] + (channels,)),
            keras.layers.Lambda(lambda x: x - 0.5, name="center"),
            keras.layers.Conv2D(
                depth, k, 1, "same", activation=act, kernel_initializer=init(0)
            ),
            keras.layers.Conv2D(
                depth, k, 2, "same", activation=act, kernel_initializer=init(1)
            ),
            keras.layers.Conv2D(
                2 * depth, k, 1, "same", activation=act, kernel_initializer=init(2)
            ),
            keras.layers.Conv2D(
                2 * depth, k, 2, "same", activation=act, kernel_initializer=init(3)
            ),
            keras.layers.Conv2D(
                4 * config.latent_dim,
                7,
                1,
                "valid",
                activation=act,
                kernel_initializer=init(4),
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(
                posterior_params_size(config.latent_dim), kernel_initializer=init(5)
            ),
        ],
        name="encoder",
    )


def posterior_distribution(params: tf.Tensor, latent_dim: int) -> tfd.Distribution:
    """MultivariateNormalTriL from raw parameters, as ``tfp.layers.MultivariateNormalTriL`` does."""
    scale_tril = tfb.FillScaleTriL(diag_shift=1e-5)(params[..., latent_dim:])
    return tfd.MultivariateNormalTriL(
        loc=params[..., :latent_dim], scale_tril=scale_tril
    )
