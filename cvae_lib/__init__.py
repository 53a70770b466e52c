"""cvae_lib: a conditional VAE on MNIST with TensorFlow Probability. Importing it sets
``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads (:mod:`cvae_lib.backend`), so TFP's Keras-2 layers work.

The public API: the model and its settings, the digits, training (:func:`~cvae_lib.store.runs.train_or_load`, a
run kept on disk and reused; the loop itself is :func:`cvae_lib.train.train`, not exported
here, where it would hide the module of the same name) and the one error type."""

from . import backend  # noqa: F401  (must come first: sets TF_USE_LEGACY_KERAS)
from .config import ModelConfig, TrainConfig
from .data import load_digits
from .errors import CvaeError
from .model import ConditionalVAE
from .store.runs import train_or_load

__version__ = "0.1.0"

__all__ = [
    "ConditionalVAE",
    "ModelConfig",
    "TrainConfig",
    "load_digits",
    "train_or_load",
    "CvaeError",
    "__version__",
]
