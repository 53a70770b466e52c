"""Latent-free baselines with exact likelihoods, what a latent variable must beat: independent Bernoulli pixels
with one probability image per class (the *class templates*) or one for all digits (the mean image), add-0.5 smoothed
so every binary digit has a finite likelihood, and scored like the VAEs (:func:`cvae_lib.data.fixed_binarization`)."""

from dataclasses import dataclass

import numpy as np

from .data import NUM_CLASSES, Digits, fixed_binarization

SMOOTHING = 0.5  #: Pseudo-count added to the "on" and the "off" count of every pixel.


@dataclass(frozen=True)
class PixelModel:
    """Independent Bernoulli pixels: ``probabilities[c]`` is class c's image (one row: no labels)."""

    probabilities: np.ndarray  # (classes or 1, 28, 28, 1), strictly inside (0, 1)
    name: str

    def _flat(self, images: np.ndarray):
        """``images`` and the probabilities, one float64 row per image or class."""
        p = self.probabilities.reshape(len(self.probabilities), -1).astype(np.float64)
        return np.asarray(images, np.float64).reshape(len(images), -1), p

    def log_likelihood(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Exact log p(x | y) (or log p(x) without labels) of binary ``images``, nats each."""
        images, p = self._flat(images)
        p = p[
            np.asarray(labels, np.int64) if len(p) > 1 else np.zeros(len(images), int)
        ]
        return np.sum(images * np.log(p) + (1 - images) * np.log1p(-p), axis=1)

    def classify(self, images: np.ndarray) -> np.ndarray:
        """The class whose template gives a binary image the highest likelihood (needs labels)."""
        images, p = self._flat(images)
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


def baseline_report(digits: Digits, n: int | None = None) -> dict:
    """Both baselines' nats per digit on the first ``n`` binarised test digits, their count, the templates' accuracy."""
    templates, single = class_templates(digits), mean_image(digits)
    x, y = fixed_binarization(digits.x_test)[:n], digits.y_test[:n]
    return {
        "class_templates": float(-templates.log_likelihood(x, y).mean()),
        "mean_image": float(-single.log_likelihood(x, y).mean()),
        "digits": int(len(x)),
        "template_accuracy": float(np.mean(templates.classify(x) == y)),
    }
