"""Counting the arithmetic of a training step, so a speed can be read as a share of peak.

Counted analytically, layer by layer, from the Keras networks themselves:

* multiply-accumulates (MACs) of every convolution, transposed convolution and dense
  layer, per image; biases, activations, the loss and the optimiser are not counted
  (they are a few percent at most);
* forward FLOPs = 2 x MACs (a multiply and an add);
* training FLOPs = 3 x forward: the backward pass computes a gradient with respect to
  the layer's input and one with respect to its weights, each as costly as the
  forward pass. (The first layer needs no input gradient; the convention ignores it.)

A transposed convolution is counted from its input: each input pixel scatters a
``k x k x filters`` patch, the same count TensorFlow's profiler uses for
``Conv2DBackpropInput``. :func:`profiler_flops` gives TensorFlow's own count of a
traced graph as a cross-check.
"""

from __future__ import annotations

from cvae_lib.backend import keras, tf
from cvae_lib.decoder import PixelLogits
from cvae_lib.errors import CvaeError


def layer_macs(layer, input_shape) -> int:
    """Multiply-accumulates of one layer for one example of shape ``input_shape`` (no batch axis)."""
    shape = tuple(int(d) for d in input_shape)
    if isinstance(
        layer, keras.layers.Conv2DTranspose
    ):  # before Conv2D: it is a subclass
        height, width, channels = shape
        kh, kw = layer.kernel_size
        return height * width * kh * kw * channels * layer.filters
    if isinstance(layer, keras.layers.Conv2D):
        if type(layer) not in (
            keras.layers.Conv2D,
            PixelLogits,
        ):  # PixelLogits: Conv2D's function
            raise CvaeError(
                f"cannot count FLOPs of {type(layer).__name__} layer {layer.name!r}"
            )
        out = layer.compute_output_shape((1,) + shape)
        kh, kw = layer.kernel_size
        groups = getattr(layer, "groups", 1)
        return (
            int(out[1]) * int(out[2]) * kh * kw * (shape[-1] // groups) * layer.filters
        )
    if isinstance(layer, keras.layers.Dense):
        return int(shape[-1]) * layer.units * _product(shape[:-1])
    return 0


def network_macs(network, input_shape=None) -> list[tuple[str, int]]:
    """(layer name, MACs per example) for every layer of a Sequential network."""
    shape = tuple(input_shape or network.input_shape[1:])
    counts = []
    for layer in network.layers:
        counts.append((layer.name, layer_macs(layer, shape)))
        shape = tuple(layer.compute_output_shape((1,) + shape)[1:])
    return counts


def training_flops_per_image(networks) -> dict:
    """Analytic counts for a list of networks used once per image (encoder, decoder, prior)."""
    macs = sum(m for network in networks for _, m in network_macs(network))
    return {
        "macs_per_image": macs,
        "forward_flops_per_image": 2 * macs,
        "flops_per_image": 3 * 2 * macs,
    }


def profiler_flops(concrete_function) -> int:
    """TensorFlow's count of the FLOPs in a traced graph (ops it has a formula for)."""
    import logging

    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder.float_operation()
    options["output"] = "none"
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the profiler warns that it is a TF1 API
    try:
        profile = tf.compat.v1.profiler.profile(
            concrete_function.graph, options=options
        )
    finally:
        logger.setLevel(level)
    return int(profile.total_float_ops)


def _product(values) -> int:
    result = 1
    for value in values:
        result *= int(value)
    return result
