"""Data for the HTML book's latent explorer (``book/_static/cvae_explorer.js``), which decodes any point of the latent
plane in the browser: decoder weights and plot points as one script (it loads from ``file://``; ``fetch`` does not)."""

import base64
import json
from pathlib import Path

import numpy as np

from .backend import keras, tf
from .config import ModelConfig
from .decoder import make_decoder
from .errors import CvaeError
from .sampling import class_means
from .store.files import atomic_write_text, prepare_directory

PREFIX = "window.CVAE_EXPLORER = "
SUFFIX = ";\n"
FORMAT = "cvae-explorer/1"
#: The activations the page runs (leaky ReLU at TensorFlow's default slope, 0.2).
ACTIVATIONS = {
    tf.nn.leaky_relu: {"activation": "leaky_relu", "alpha": 0.2},
    keras.activations.linear: {"activation": "linear"},
}


def _encode(array) -> str:
    return base64.b64encode(np.asarray(array, "<f4").tobytes()).decode("ascii")


def decoder_layers(decoder: keras.Model) -> list[dict]:
    """The decoder's convolutions as the page runs them, kernel (Keras's layout) and bias in base64."""
    layers = []
    for layer in decoder.layers:
        if isinstance(layer, keras.layers.Reshape):
            continue  # the page reshapes z to 1 x 1 x latent_dim itself
        kind = (  # a Conv2DTranspose is a Conv2D too: test it first
            "conv2d_transpose"
            if isinstance(layer, keras.layers.Conv2DTranspose)
            else "conv2d"
            if isinstance(layer, keras.layers.Conv2D)
            else None
        )
        activation = ACTIVATIONS.get(getattr(layer, "activation", None))
        if (
            kind is None
            or activation is None
            or not layer.use_bias
            or tuple(layer.dilation_rate) != (1, 1)
            or layer.groups != 1
        ):
            raise CvaeError(
                f"the explorer cannot run layer {layer.name} ({type(layer).__name__}, "
                f"activation {getattr(layer, 'activation', None)!r})"
            )
        kernel, bias = layer.get_weights()
        layers.append(
            {
                "kind": kind,
                "strides": list(layer.strides),
                "padding": layer.padding,
                **activation,
                "kernel_shape": list(kernel.shape),
                "kernel": _encode(kernel),
                "bias": _encode(bias),
            }
        )
    return layers


def explorer_data(model, images, labels) -> dict:
    """Everything the page needs, as a JSON-ready dict."""
    config = model.config
    if config.latent_dim != 2 or model.decoder.input_shape[-1] != 2:
        raise CvaeError(
            "the explorer draws a 2-D latent plane: it needs a decoder of z alone, latent_dim 2"
        )
    posterior = model.posterior(tf.constant(images), tf.constant(labels))
    return {
        "format": FORMAT,
        "config": {
            "latent_dim": config.latent_dim,
            "base_depth": config.base_depth,
            "kernel_size": config.kernel_size,
            "image_shape": list(config.image_shape),
        },
        "layers": decoder_layers(model.decoder),
        "class_means": class_means(model).round(6).tolist(),
        "points": np.asarray(posterior.mean()).round(4).tolist(),
        "labels": np.asarray(labels).astype(int).tolist(),
    }


def write_explorer_data(model, images, labels, path) -> Path:
    """Write the explorer's script for ``model`` and the digits ``images``/``labels``."""
    path = Path(path)
    prepare_directory(path.parent)
    text = json.dumps(explorer_data(model, images, labels), separators=(",", ":"))
    atomic_write_text(path, PREFIX + text + SUFFIX)
    return path


def read_explorer_data(path) -> dict:
    """The dict that :func:`write_explorer_data` wrote to ``path``."""
    text = Path(path).read_text(encoding="utf-8")
    if not (text.startswith(PREFIX) and text.endswith(SUFFIX)):
        raise CvaeError(f"{path} is not an explorer data file")
    data = json.loads(text[len(PREFIX) : -len(SUFFIX)])
    if data.get("format") != FORMAT:
        raise CvaeError(
            f"{path} has format {data.get('format')!r}, expected {FORMAT!r}"
        )
    return data


def explorer_images(data: dict, z) -> np.ndarray:
    """Pixel probabilities (N, height, width) of codes ``z`` by a decoder with ``data``'s weights: checks the export."""
    config = data["config"]
    decoder = make_decoder(
        ModelConfig(**{**config, "image_shape": tuple(config["image_shape"])})
    )
    decoder.set_weights(
        [
            np.frombuffer(base64.b64decode(layer[name]), "<f4").reshape(shape).copy()
            for layer in data["layers"]
            for name, shape in (("kernel", layer["kernel_shape"]), ("bias", [-1]))
        ]
    )
    return tf.sigmoid(decoder(np.asarray(z, np.float32))).numpy()[..., 0]
