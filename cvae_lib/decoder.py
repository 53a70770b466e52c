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
from .precision import hidden_layer_dtype


class PixelLogits(keras.layers.Conv2D):
    """The decoder's last layer: Keras's ``Conv2D`` (stride 1, "same"), computed as the
    transposed convolution with the spatially flipped kernel, which is the same function.

    Why: oneDNN's convolution kernels are slow when the *output* has one channel. On a
    2-core AVX-512 CPU at batch 256 (``benchmarks/output_conv.py``), forward plus
    backward of this 16 -> 1 channel 5x5 layer took 13.3 ms as ``Conv2D`` and 9.0 ms
    computed this way, with outputs and gradients equal to 1e-5 of their size; in the
    profile of the whole training step the layer went from 14% of the op time to
    about 7% (``book/performance.md``). Weights, their shapes and checkpoints are
    those of ``Conv2D``. The identity holds for a stride-1, undilated, ungrouped, "same"
    convolution with an odd kernel (symmetric padding); any other configuration falls
    back to ``Conv2D``'s own computation.
    """

    def runs_as_transposed(self) -> bool:
        """Whether this layer's configuration is one where the flipped-kernel identity is
        exact, so that ``call`` computes it as a transposed convolution."""
        return (self.padding == "same" and self.strides == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and self.groups == 1 and self.data_format == "channels_last"
                and all(size % 2 == 1 for size in self.kernel_size))

    def call(self, inputs):
        if not self.runs_as_transposed():
            return super().call(inputs)
        flipped = tf.transpose(tf.reverse(self.kernel, [0, 1]), [0, 1, 3, 2])  # (h, w, out, in)
        shape = tf.concat([tf.shape(inputs)[:3], [self.filters]], axis=0)
        outputs = tf.nn.conv2d_transpose(inputs, flipped, shape, strides=1, padding="SAME")
        outputs = tf.ensure_shape(outputs, inputs.shape[:3] + (self.filters,))
        return tf.nn.bias_add(outputs, self.bias) if self.use_bias else outputs


def make_decoder(config: ModelConfig, seed: int = 0, extra_inputs: int = 0,
                 precision: str = "float32", fast_output: bool = True) -> keras.Model:
    """latent (latent_dim + extra_inputs,) -> pixel logits (28, 28, 1), always float32.

    ``extra_inputs`` > 0 lets a variant append a one-hot label to z (Sohn et al.'s
    CVAE); 0 is the reference decoder. ``precision`` sets the hidden layers' compute
    precision (:mod:`cvae_lib.precision`); the last layer is float32 either way.
    ``fast_output=False`` builds the last layer as plain ``Conv2D`` instead of
    :class:`PixelLogits` (the same function): the benchmark's reference path uses it.
    """
    depth, k = config.base_depth, config.kernel_size
    act = tf.nn.leaky_relu
    init = lambda i: keras.initializers.GlorotUniform(seed=seed + 100 + i)  # noqa: E731
    width = config.latent_dim + extra_inputs
    hidden = hidden_layer_dtype(precision)
    # (filters, kernel, stride, padding) of each transposed convolution
    shapes = [(2 * depth, 7, 1, "valid"), (2 * depth, k, 1, "same"), (2 * depth, k, 2, "same"),
              (depth, k, 1, "same"), (depth, k, 2, "same"), (depth, k, 1, "same")]
    return keras.Sequential(
        [keras.layers.InputLayer(input_shape=(width,)), keras.layers.Reshape((1, 1, width), dtype=hidden)]
        + [keras.layers.Conv2DTranspose(filters, size, stride, padding, activation=act,
                                        kernel_initializer=init(i), dtype=hidden)
           for i, (filters, size, stride, padding) in enumerate(shapes)]
        + [(PixelLogits if fast_output else keras.layers.Conv2D)(
            config.image_shape[-1], k, 1, "same", kernel_initializer=init(6), dtype="float32")],
        name="decoder",
    )


def pixel_distribution(logits: tf.Tensor) -> tfd.Distribution:
    """Independent Bernoulli over all pixels of each image."""
    return tfd.Independent(tfd.Bernoulli(logits=logits), reinterpreted_batch_ndims=3)
