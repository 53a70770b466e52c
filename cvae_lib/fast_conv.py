"""The one speed trick in the training path: the decoder's last layer, computed faster.

oneDNN's convolution kernels are slow when the output has a single channel, as the
decoder's 16 -> 1 channel pixel-logit layer does; the same function computed as a
transposed convolution runs about a third faster, forward and backward
(``benchmarks/README.md``, idea 2).
"""

from __future__ import annotations

from .backend import keras, tf


class PixelLogits(keras.layers.Conv2D):
    """Keras's ``Conv2D``, computed as the transposed convolution with the flipped kernel.

    For a stride-1, undilated, ungrouped "same" convolution with an odd kernel the two
    are the same function; weights and checkpoints are those of ``Conv2D``. Any other
    configuration falls back to ``Conv2D``'s own computation.
    """

    def runs_as_transposed(self) -> bool:
        """Whether the flipped-kernel identity is exact for this layer's configuration."""
        return (self.padding == "same" and self.strides == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and self.groups == 1 and self.data_format == "channels_last"
                and all(size % 2 == 1 for size in self.kernel_size))

    def call(self, inputs):
        """``Conv2D``'s output for ``inputs``, computed as a transposed convolution where exact."""
        if not self.runs_as_transposed():
            return super().call(inputs)
        flipped = tf.transpose(tf.reverse(self.kernel, [0, 1]), [0, 1, 3, 2])  # (h, w, out, in)
        shape = tf.concat([tf.shape(inputs)[:3], [self.filters]], axis=0)
        outputs = tf.nn.conv2d_transpose(inputs, flipped, shape, strides=1, padding="SAME")
        outputs = tf.ensure_shape(outputs, inputs.shape[:3] + (self.filters,))
        return tf.nn.bias_add(outputs, self.bias) if self.use_bias else outputs
