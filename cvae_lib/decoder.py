"""The decoder p(x | z): the reference transposed-convolution stack -> Bernoulli pixel logits.
It never sees the label, so the prior has to keep the classes apart. Its last layer,
:class:`PixelLogits`, is a faster ``Conv2D`` (``benchmarks/README.md``)."""

from .backend import keras, tf, tfd
from .config import ModelConfig


class PixelLogits(keras.layers.Conv2D):
    """``Conv2D`` with the same weights, run as the transposed convolution of the flipped kernel where that is exact."""

    def runs_as_transposed(self) -> bool:
        """Stride 1, undilated, ungrouped, "same" padding and an odd kernel: the identity is exact."""
        return (
            self.padding == "same"
            and self.strides == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.groups == 1
            and self.data_format == "channels_last"
            and all(size % 2 == 1 for size in self.kernel_size)
        )

    def call(self, inputs):
        """``Conv2D``'s output for ``inputs``, computed as a transposed convolution where exact."""
        if not self.runs_as_transposed():
            return super().call(inputs)
        flipped = tf.transpose(
            tf.reverse(self.kernel, [0, 1]), [0, 1, 3, 2]
        )  # (h, w, out, in)
        shape = tf.concat([tf.shape(inputs)[:3], [self.filters]], axis=0)
        outputs = tf.nn.conv2d_transpose(
            inputs, flipped, shape, strides=1, padding="SAME"
        )
        outputs = tf.ensure_shape(outputs, inputs.shape[:3] + (self.filters,))
        return tf.nn.bias_add(outputs, self.bias) if self.use_bias else outputs


def make_decoder(
    config: ModelConfig, seed: int = 0, extra_inputs: int = 0
) -> keras.Model:
    """z (and ``extra_inputs``: a one-hot label for Sohn et al.'s CVAE) -> pixel logits (28, 28, 1)."""
    depth, k = config.base_depth, config.kernel_size
    init = lambda i: keras.initializers.GlorotUniform(seed=seed + 100 + i)  # noqa: E731
    width = config.latent_dim + extra_inputs
    shapes = [  # (filters, kernel, stride, padding) of each transposed convolution
        (2 * depth, 7, 1, "valid"),
        (2 * depth, k, 1, "same"),
        (2 * depth, k, 2, "same"),
        (depth, k, 1, "same"),
        (depth, k, 2, "same"),
        (depth, k, 1, "same"),
    ]
    return keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=(width,)),
            keras.layers.Reshape((1, 1, width)),
        ]
        + [
            keras.layers.Conv2DTranspose(
                filters,
                size,
                stride,
                padding,
                activation=tf.nn.leaky_relu,
                kernel_initializer=init(i),
            )
            for i, (filters, size, stride, padding) in enumerate(shapes)
        ]
        + [
            PixelLogits(
                config.image_shape[-1], k, 1, "same", kernel_initializer=init(6)
            )
        ],
        name="decoder",
    )


def pixel_distribution(logits: tf.Tensor) -> tfd.Distribution:
    """Independent Bernoulli over all pixels of each image."""
    return tfd.Independent(tfd.Bernoulli(logits=logits), reinterpreted_batch_ndims=3)
