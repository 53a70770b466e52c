"""cvae_lib: a conditional VAE on MNIST with TensorFlow Probability (importing it selects Keras 2
first: :mod:`cvae_lib.backend`). The public API: the model, its settings, the digits, runs kept
on disk (:func:`~cvae_lib.store.runs.train_or_load`; the loop ``cvae_lib.train.train`` is not
exported, where it would hide its module) and the one error type."""

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
