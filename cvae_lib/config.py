"""Model and training settings as one serialisable record.

A checkpoint directory stores this record as ``config.json`` next to the weights, so
that ``sample``, ``grid``, ``evaluate`` and later book chapters rebuild exactly the
networks that were trained, without the user repeating any flags.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .errors import CvaeError

#: KL weightings understood by :class:`~cvae_lib.model.ConditionalVAE`.
KL_WEIGHTINGS = ("elbo", "reference")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the networks; defaults are the reference design."""

    latent_dim: int = 2
    base_depth: int = 16
    kernel_size: int = 5
    num_classes: int = 10
    image_shape: tuple = (28, 28, 1)

    def __post_init__(self):
        for name in ("latent_dim", "base_depth", "kernel_size", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CvaeError(f"{name} must be a positive integer, got {value!r}")
        object.__setattr__(self, "image_shape", tuple(int(v) for v in self.image_shape))


@dataclass(frozen=True)
class TrainConfig:
    """How the networks are trained. See :mod:`cvae_lib.train` for why these defaults."""

    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 1e-3
    prior_learning_rate: float = 0.1
    prior_init_spread: float = 3.0
    kl_weighting: str = "elbo"
    binarize: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.kl_weighting not in KL_WEIGHTINGS:
            raise CvaeError(
                f"kl_weighting must be one of {', '.join(KL_WEIGHTINGS)}, got {self.kl_weighting!r}"
            )
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CvaeError(f"{name} must be a positive integer, got {value!r}")
        for name in ("learning_rate", "prior_learning_rate"):
            if not float(getattr(self, name)) > 0:
                raise CvaeError(f"{name} must be positive, got {getattr(self, name)!r}")


def to_dict(model: ModelConfig, train: TrainConfig, **extra) -> dict:
    """The JSON-ready record written to ``config.json``."""
    return {
        "format": "cvae_lib/1",
        "model": dataclasses.asdict(model),
        "train": dataclasses.asdict(train),
        **extra,
    }


def from_dict(record: dict) -> tuple[ModelConfig, TrainConfig]:
    """Inverse of :func:`to_dict`; raises :class:`CvaeError` on a foreign record."""
    if not isinstance(record, dict) or record.get("format") != "cvae_lib/1":
        raise CvaeError("config.json was not written by cvae_lib (missing format 'cvae_lib/1')")
    try:
        model = ModelConfig(**record["model"])
        train = TrainConfig(**record["train"])
    except (KeyError, TypeError) as err:
        raise CvaeError(f"config.json is incomplete or has unknown fields: {err}") from None
    return model, train


def dumps(record: dict) -> str:
    return json.dumps(record, indent=2, sort_keys=True)
