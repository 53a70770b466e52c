"""Latent-free baselines: every pixel an independent Bernoulli, with one probability image per
class (each class's mean training image, the *class templates*) or one for all digits (the mean
image). Their log-likelihoods are exact, so they say what a latent variable must beat: a model of
p(x | y) that does no better than its class's template has learned only the class from z.

Both are scored like the VAEs, in nats per digit on the test split binarised once
(:func:`cvae_lib.data.fixed_binarization`). The probabilities are add-0.5 smoothed (a grey level
counts as a fractional count), so no pixel has probability 0 or 1 and every binary digit has a
finite likelihood."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import NUM_CLASSES, Digits, fixed_binarization

#: Pseudo-count added to the "on" and to the "off" count of every pixel.
SMOOTHING = 0.5


@dataclass(frozen=True)
class PixelModel:
    """Independent Bernoulli pixels: ``probabilities[c]`` is the image of class c's model (one row
    for a label-free model, used for every digit)."""

    probabilities: np.ndarray  # (classes or 1, 28, 28, 1), strictly inside (0, 1)
    name: str

    @property
    def uses_labels(self) -> bool:
        return len(self.probabilities) > 1

    def log_likelihood(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Exact log p(x | y) (or log p(x) for a label-free model) of binary ``images``, per image, nats."""
        images = np.asarray(images, np.float64).reshape(len(images), -1)
        rows = (
            np.asarray(labels, np.int64)
            if self.uses_labels
            else np.zeros(len(images), np.int64)
        )
        p = self.probabilities.reshape(len(self.probabilities), -1).astype(np.float64)[
            rows
        ]
        return np.sum(images * np.log(p) + (1 - images) * np.log1p(-p), axis=1)

    def classify(self, images: np.ndarray) -> np.ndarray:
        """The class whose template gives a binary image the highest likelihood (needs labels)."""
        images = np.asarray(images, np.float64).reshape(len(images), -1)
        p = self.probabilities.reshape(len(self.probabilities), -1).astype(np.float64)
        return np.argmax(images @ np.log(p).T + (1 - images) @ np.log1p(-p).T, axis=1)


def _smoothed_mean(images: np.ndarray) -> np.ndarray:
    return (images.sum(axis=0) + SMOOTHING) / (len(images) + 2 * SMOOTHING)


def class_templates(digits: Digits, num_classes: int = NUM_CLASSES) -> PixelModel:
    """p(x | y): each class's mean training image, smoothed (see module docstring)."""
    rows = [
        _smoothed_mean(digits.x_train[digits.y_train == c]) for c in range(num_classes)
    ]
    return PixelModel(np.stack(rows).astype(np.float32), "class templates")


def mean_image(digits: Digits) -> PixelModel:
    """p(x): the mean training image of all digits, smoothed; knows no label."""
    return PixelModel(
        _smoothed_mean(digits.x_train)[None].astype(np.float32), "mean image"
    )


def baseline_nll(model: PixelModel, digits: Digits, n: int | None = None) -> float:
    """Mean negative log-likelihood, nats per digit, of the first ``n`` test digits (default all)
    as the VAEs are scored on them: the test split binarised once, then cut."""
    x, y = fixed_binarization(digits.x_test)[:n], digits.y_test[:n]
    return float(-model.log_likelihood(x, y).mean())


def baseline_report(digits: Digits, n: int | None = None) -> dict:
    """Both baselines on the first ``n`` test digits: ``{"class_templates": nats, "mean_image":
    nats, "digits": count, "template_accuracy": share of them the templates classify right}``."""
    templates, single = class_templates(digits), mean_image(digits)
    x, y = fixed_binarization(digits.x_test)[:n], digits.y_test[:n]
    return {
        "class_templates": float(-templates.log_likelihood(x, y).mean()),
        "mean_image": float(-single.log_likelihood(x, y).mean()),
        "digits": int(len(x)),
        "template_accuracy": float(np.mean(templates.classify(x) == y)),
    }
