"""Model and training settings as one serialisable record, stored as a checkpoint's
``config.json`` so that later commands and chapters rebuild exactly the trained networks."""

import dataclasses
import json
import numbers
from dataclasses import dataclass

import numpy as np

from .errors import CvaeError, check_positive_int

#: KL weightings understood by :class:`~cvae_lib.model.ConditionalVAE`.
KL_WEIGHTINGS = ("elbo", "reference")
#: Which codes the class term classifies: z ~ q(z | x), its mean, or z ~ p(z | y).
CLASS_CODES = ("posterior", "posterior_mean", "prior")
#: What the warm-up ramps from 0 to 1: the reconstruction's weight, or the KL's (Bowman et al.).
WARMUP_SHAPES = ("reconstruction", "kl")
#: The networks' learning rate: constant, or 5% of steps of warm-up then a cosine decay.
LR_SCHEDULES = ("constant", "cosine")
#: The one image shape the networks, the judge and the figures are built for.
IMAGE_SHAPE = (28, 28, 1)
#: Training digits from which a data set counts as full MNIST for :meth:`TrainConfig.for_data`.
FULL_DATA_SIZE = 20_000


def _check_number(config, name: str, wanted: str, valid) -> None:
    """A one-line error unless ``config.<name>`` is a real number (not a bool) that is ``valid``."""
    value = getattr(config, name)
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not valid(value)
    ):
        raise CvaeError(f"{name} must be {wanted}, got {value!r}")


def _check_choices(config, fields) -> None:
    """A one-line error unless each ``config.<name>`` is one of its ``choices``."""
    for name, choices in fields:
        if getattr(config, name) not in choices:
            raise CvaeError(
                f"{name} must be one of {', '.join(choices)}, got {getattr(config, name)!r}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """The model: its networks' shape (defaults are the reference design), its prior and
    its loss. Images are MNIST's (:data:`IMAGE_SHAPE`); the number of classes may differ."""

    latent_dim: int = 2
    base_depth: int = 16
    kernel_size: int = 5
    num_classes: int = 10
    image_shape: tuple = (28, 28, 1)
    #: The family of p(z | y), by its registered name (:data:`cvae_lib.prior.PRIOR_FAMILIES`).
    prior: str = "unit_gaussian"
    #: Radius of the circle the class means start on (0: where Glorot puts them).
    prior_init_radius: float = 10.0
    #: The classes in their order around that circle (None: by label; :meth:`for_data`).
    start_order: tuple | None = None
    #: The loss (:mod:`cvae_lib.model`): the class term's weight and codes, the KL's
    #: weighting, free bits, and whether pixels are binarised (Bernoulli on 0/1 images).
    class_weight: float = 20.0
    class_codes: str = "posterior_mean"
    kl_weighting: str = "elbo"
    #: Nats of KL per image that cost nothing (the batch's mean KL counts from there).
    free_bits: float = 0.0
    binarize: bool = True

    def __post_init__(self):
        for name in ("latent_dim", "base_depth", "kernel_size", "num_classes"):
            check_positive_int(getattr(self, name), name, allow_numpy=False)
        _check_choices(
            self, (("class_codes", CLASS_CODES), ("kl_weighting", KL_WEIGHTINGS))
        )
        for name in ("prior_init_radius", "class_weight", "free_bits"):
            _check_number(self, name, "a number >= 0", lambda v: v >= 0)
        if not isinstance(self.prior, str) or not self.prior:
            raise CvaeError(
                f"prior must be the name of a prior family, got {self.prior!r}"
            )
        try:
            shape = tuple(int(v) for v in self.image_shape)
        except (TypeError, ValueError):
            shape = ()
        if (
            shape != IMAGE_SHAPE
        ):  # the strides of the networks, the judge and the figures
            raise CvaeError(
                f"image_shape must be {IMAGE_SHAPE}: the networks are built for MNIST's "
                f"28x28 grey digits, got {self.image_shape!r}"
            )
        object.__setattr__(self, "image_shape", shape)
        if self.start_order is not None:
            order = tuple(int(c) for c in self.start_order)
            if sorted(order) != list(range(self.num_classes)):
                raise CvaeError(
                    f"start_order must list each of the {self.num_classes} classes once, "
                    f"got {self.start_order!r}"
                )
            object.__setattr__(self, "start_order", order)

    @classmethod
    def for_data(cls, digits, **settings) -> "ModelConfig":
        """The book's model for these digits: the means start around the circle in :func:`template_order`,
        so look-alike classes start as neighbours (``experiments/README.md`` measures what that buys)."""
        order = template_order(
            digits.x_train, digits.y_train, settings.get("num_classes", 10)
        )
        return cls(**{"start_order": order, **settings})


def template_order(images, labels, num_classes: int = 10) -> tuple:
    """The classes sorted by the angle of their mean images (templates) in the plane of
    the templates' first two principal components."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    templates = np.stack(
        [flat[np.asarray(labels) == c].mean(0) for c in range(num_classes)]
    )
    u, s, _ = np.linalg.svd(templates - templates.mean(0), full_matrices=False)
    return tuple(int(c) for c in np.argsort(np.arctan2(u[:, 1] * s[1], u[:, 0] * s[0])))


@dataclass(frozen=True)
class TrainConfig:
    """The training schedule (defaults explained in :mod:`cvae_lib.train`); a data set's
    budget, epochs and batch size, comes from :meth:`for_data`."""

    epochs: int = 15
    batch_size: int = 256
    #: The peak of the encoder and decoder's learning rate (see ``lr_schedule``).
    learning_rate: float = 6e-3
    #: The class means' learning rate after the warm-up (0: frozen means).
    prior_learning_rate: float = 1e-3
    #: The class weight at the last epoch, reached linearly after the warm-up (None: constant).
    class_weight_final: float | None = None
    warmup_fraction: float = 1 / 3
    warmup_shape: str = "reconstruction"
    lr_schedule: str = "cosine"
    seed: int = 0

    @property
    def warmup_epochs(self) -> int:
        """Epochs of warm-up: the first ``warmup_fraction`` of training."""
        return int(round(self.warmup_fraction * self.epochs))

    def __post_init__(self):
        _check_choices(
            self, (("warmup_shape", WARMUP_SHAPES), ("lr_schedule", LR_SCHEDULES))
        )
        _check_number(
            self, "warmup_fraction", "a number in [0, 1)", lambda v: 0 <= v < 1
        )
        for name in ("epochs", "batch_size"):
            check_positive_int(getattr(self, name), name, allow_numpy=False)
        _check_number(self, "learning_rate", "a positive number", lambda v: v > 0)
        _check_number(self, "prior_learning_rate", "a number >= 0", lambda v: v >= 0)
        if self.class_weight_final is not None:
            _check_number(self, "class_weight_final", "a number >= 0", lambda v: v >= 0)

    @classmethod
    def for_data(cls, n_train: int, **settings) -> "TrainConfig":
        """The one budget rule: the reference's on full MNIST, the prior-recipes chapter's on the offline set.
        Full runs take 3.8 times the steps, so the means learn at a fifth of the rate under a rising class
        weight, or drift together; at a peak rate of 6e-3 a full-size run blew up (``experiments/README.md``)."""
        full = dict(
            epochs=15,
            batch_size=256,
            learning_rate=3e-3,
            prior_learning_rate=2e-4,
            class_weight_final=100.0,
        )
        small = dict(epochs=30, batch_size=128)
        budget = full if n_train >= FULL_DATA_SIZE else small
        return cls(**{**budget, **settings})


#: The format of a ``config.json`` record; the loss settings moved into the model's part in 2.
FORMAT = "cvae_lib/2"


def to_dict(model: ModelConfig, train: TrainConfig | None, **extra) -> dict:
    """The JSON-ready record written to ``config.json`` (``train`` None: not trained)."""
    return {
        "format": FORMAT,
        "model": dataclasses.asdict(model),
        "train": None if train is None else dataclasses.asdict(train),
        **extra,
    }


def from_dict(record: dict) -> tuple[ModelConfig, TrainConfig | None]:
    """Inverse of :func:`to_dict`; raises :class:`~cvae_lib.errors.CvaeError` on a foreign record."""
    written = record.get("format") if isinstance(record, dict) else None
    if written != FORMAT:
        raise CvaeError(
            f"config.json was written by an older cvae_lib (format {written!r}); train again"
            if isinstance(written, str) and written.startswith("cvae_lib/")
            else f"config.json was not written by cvae_lib (missing format {FORMAT!r})"
        )
    try:
        train = record["train"]
        return ModelConfig(**record["model"]), (
            None if train is None else TrainConfig(**train)
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CvaeError(
            f"config.json is incomplete or has unknown fields: {err}"
        ) from None


def dumps(record: dict) -> str:
    return json.dumps(record, indent=2, sort_keys=True)
