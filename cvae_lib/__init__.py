"""cvae_lib: a conditional VAE on MNIST with TensorFlow Probability. Importing it sets
``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads (:mod:`cvae_lib.backend`), so TFP's Keras-2 layers work."""

from . import backend  # noqa: F401  (must come first: sets TF_USE_LEGACY_KERAS)
from .config import ModelConfig, TrainConfig
from .errors import CvaeError

__version__ = "0.1.0"

__all__ = ["ModelConfig", "TrainConfig", "CvaeError", "__version__"]
