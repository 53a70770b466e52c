"""The decoder's last layer, computed faster: oneDNN's convolutions are slow for a single
output channel; the same function as a transposed convolution is about a third faster
(``benchmarks/README.md``)."""

from __future__ import annotations

from .backend import keras, tf


class PixelLogits(keras.layers.Conv2D):
    """Keras's ``Conv2D`` (same weights and checkpoints), computed as the transposed
    convolution with the flipped kernel where that is the same function: stride 1,
    undilated, ungrouped, "same" padding and an odd kernel; otherwise as ``Conv2D``."""

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
