"""Experiment (not used by the library): the same convolutions, rewritten as stride-1 ones.

``benchmarks/ideas.py`` times this idea against the library's step; it did not pay
on the 2-core CPU (see ``benchmarks/README.md``), so it lives here, not in cvae_lib.
The hypothesis was: on a CPU, oneDNN runs a 5x5 convolution fast when it has many
channels and stride 1, and slowly otherwise. The reference networks are full of the
slow cases: stride-2 convolutions, stride-2 transposed convolutions, and a final
16 -> 1 channel convolution that alone took a sixth of the training step. Each of
those layers computes a fixed linear map that can be rewritten exactly as

    pad -> space_to_depth -> stride-1 VALID convolution -> depth_to_space

with a kernel assembled from the layer's own weights (a gather of its taps, zeros
where a phase has no tap). Folding 2x2 pixel blocks into channels turns a stride-2
convolution into a stride-1 one with 4x the input channels, a stride-2 transposed
convolution into a stride-1 convolution with 4x the output channels (sub-pixel
convolution), and a 1-channel output into 4 channels. Stride-1 transposed
convolutions become plain convolutions with the kernel flipped.

Nothing about the model changes: the variables are the Keras layers' own (the
gradient flows through the gather into them), outputs agree with the Keras layers to
float32 rounding (``benchmarks/ideas.py --check``), and checkpoints are untouched. Layers
this module does not recognise are simply called as usual.
"""

from __future__ import annotations

import numpy as np

from cvae_lib.backend import keras, tf

#: Stride-1 convolutions are folded only when one side has at most this many channels.
SPLIT_SMALL_CHANNELS = 4


def _axis_taps(transpose: bool, stride: int, k: int, split: bool):
    """One spatial axis of a rewrite: (tap index table, pad before, pad after, in phases, out phases).

    ``table[a, r, p]`` is the original kernel tap feeding block offset ``a``, input
    phase ``r`` and output phase ``p``, or ``k`` (a zero tap) where none does. Offsets
    follow TensorFlow's SAME padding: ``pad_before = pad_total // 2``.
    """
    entries = []  # (block offset e, input phase r, output phase p, tap t)
    if not transpose and stride == 1 and not split:
        pb = (k - 1) // 2
        entries = [(t - pb, 0, 0, t) for t in range(k)]
    elif not transpose and stride == 1:
        pb = (k - 1) // 2
        entries = [(*divmod(p + t - pb, 2), p, t) for p in range(2) for t in range(k)]
    elif not transpose:  # stride 2, folded input
        pb = (k - 2) // 2
        entries = [(*divmod(t - pb, 2), 0, t) for t in range(k)]
    elif stride == 1:
        pb = (k - 1) // 2
        entries = [(pb - t, 0, 0, t) for t in range(k)]
    else:  # transposed, stride 2, unfolded output
        pb = (k - 2) // 2
        entries = [
            ((p + pb - t) // 2, 0, p, t)
            for p in range(2)
            for t in range(k)
            if (p + pb - t) % 2 == 0
        ]
    in_phases = 2 if not transpose and (stride == 2 or split) else 1
    out_phases = 2 if (transpose and stride == 2) or split else 1
    e_min = min(e for e, *_ in entries)
    e_max = max(e for e, *_ in entries)
    table = np.full((e_max - e_min + 1, in_phases, out_phases), k, dtype=np.int32)
    for e, r, p, t in entries:
        table[e - e_min, r, p] = t
    return table, -e_min * in_phases, e_max * in_phases, in_phases, out_phases


def rewritten_kernel(kernel: tf.Tensor, table: np.ndarray) -> tf.Tensor:
    """Kernel (k, k, c_in, c_out) -> (A, A, R*R*c_in, P*P*c_out) for the folded convolution."""
    padded = tf.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])  # index k is the zero tap
    a, r, p = table.shape
    flat = table.reshape(-1)
    gathered = tf.gather(tf.gather(padded, flat, axis=0), flat, axis=1)
    c_in, c_out = kernel.shape[2], kernel.shape[3]
    gathered = tf.reshape(gathered, [a, r, p, a, r, p, c_in, c_out])
    gathered = tf.transpose(gathered, [0, 3, 1, 4, 6, 2, 5, 7])
    return tf.reshape(gathered, [a, a, r * r * c_in, p * p * c_out])


class FoldedConv:
    """A Keras Conv2D / Conv2DTranspose layer evaluated as a folded stride-1 convolution."""

    def __init__(self, layer, split: bool = False):
        self.layer = layer
        self.transpose = isinstance(layer, keras.layers.Conv2DTranspose)
        k, stride = layer.kernel_size[0], layer.strides[0]
        self.table, self.pad_before, self.pad_after, self.in_phases, self.out_phases = (
            _axis_taps(self.transpose, stride, k, split)
        )

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        layer = self.layer
        kernel = layer.kernel
        if self.transpose:  # Keras stores (k, k, filters, in_channels)
            kernel = tf.transpose(kernel, [0, 1, 3, 2])
        pads = [
            [0, 0],
            [self.pad_before, self.pad_after],
            [self.pad_before, self.pad_after],
            [0, 0],
        ]
        if self.pad_before or self.pad_after:
            x = tf.pad(x, pads)
        if self.in_phases == 2:
            x = tf.nn.space_to_depth(x, 2)
        y = tf.nn.conv2d(x, rewritten_kernel(kernel, self.table), 1, "VALID")
        if self.out_phases == 2:
            y = tf.nn.depth_to_space(y, 2)
        if layer.use_bias:
            y = tf.nn.bias_add(y, layer.bias)
        return layer.activation(y) if layer.activation is not None else y


def fold_plan(layer, input_shape) -> FoldedConv | None:
    """The rewrite for ``layer`` at ``input_shape``, or None to call the layer as it is."""
    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        return None
    if type(layer) not in (keras.layers.Conv2D, keras.layers.Conv2DTranspose):
        return None  # subclasses (separable, depthwise, ...) compute something else
    k, stride = layer.kernel_size, layer.strides
    if (
        layer.padding != "same"
        or layer.data_format != "channels_last"
        or k[0] != k[1]
        or k[0] % 2 == 0
        or stride[0] != stride[1]
        or stride[0] not in (1, 2)
        or tuple(layer.dilation_rate) != (1, 1)
        or getattr(layer, "groups", 1) != 1
    ):
        return None
    height, width = int(input_shape[1]), int(input_shape[2])
    transpose = isinstance(layer, keras.layers.Conv2DTranspose)
    if transpose and getattr(layer, "output_padding", None) is not None:
        return None
    if stride[0] == 2:
        if k[0] < 3 or (not transpose and (height % 2 or width % 2)):
            return None
        return FoldedConv(layer)
    if transpose:
        return FoldedConv(layer)
    c_in, c_out = int(input_shape[-1]), layer.filters
    if min(c_in, c_out) <= SPLIT_SMALL_CHANNELS and height % 2 == 0 and width % 2 == 0:
        return FoldedConv(layer, split=True)
    return None


def fast_call(network, x: tf.Tensor) -> tf.Tensor:
    """``network(x)`` for a Keras Sequential, with convolutions rewritten where that pays."""
    for layer in network.layers:
        plan = fold_plan(layer, x.shape)
        x = plan(x) if plan is not None else layer(x)
    return x
