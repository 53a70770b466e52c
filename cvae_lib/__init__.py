"""cvae_lib: a conditional VAE on MNIST with TensorFlow Probability.

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads (see
:mod:`cvae_lib.backend`), so TFP's Keras-2 layers work. The pieces, one module each:

- :mod:`~cvae_lib.data`: real MNIST (Keras, cached) or offline digits; input checks
- :mod:`~cvae_lib.prior`: one-hot -> mu_y, prior N(mu_y, I)
- :mod:`~cvae_lib.encoder`: image -> q(z|x), a full-covariance Gaussian
- :mod:`~cvae_lib.decoder`: z -> Bernoulli pixel logits
- :mod:`~cvae_lib.model`: the three combined into the negative ELBO
- :mod:`~cvae_lib.train`: compiled training with validation and progress
- :mod:`~cvae_lib.checkpoint`, :mod:`~cvae_lib.runs`: saving, loading, reusing runs
- :mod:`~cvae_lib.sampling`, :mod:`~cvae_lib.plots`: generating digits and figures
"""

from . import backend  # noqa: F401  (must come first: sets TF_USE_LEGACY_KERAS)
from .config import ModelConfig, TrainConfig
from .errors import CvaeError

__version__ = "0.1.0"

__all__ = ["ModelConfig", "TrainConfig", "CvaeError", "__version__"]
