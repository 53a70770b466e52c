"""Generating digits: class means and their distances, samples of every class, and the 15x15 manifold grid, a lattice
of normal quantiles that shows how the decoded digit changes as z moves through the class's prior."""

import numpy as np
from scipy.stats import norm

from . import prior as prior_geometry
from .backend import tf
from .data import check_digit, fixed_binarization
from .errors import CvaeError, check_positive_int

GRID_SIZE = 15  #: The size of the reference's manifold grid.
GRID_QUANTILES = (0.05, 0.95)  #: The grid's range of normal quantiles.


def class_means(model) -> np.ndarray:
    """mu_y of every class (num_classes, latent_dim): where each class is generated."""
    return np.asarray(model.generation_prior(tf.range(model.config.num_classes)).mean())


def class_separation(model) -> np.ndarray:
    """Distances between the class means (C x C), in standard deviations of the distribution
    that generates each class; :func:`~cvae_lib.prior.closest_pair` finds the closest two."""
    return prior_geometry.class_separation(
        model.generation_prior(tf.range(model.config.num_classes))
    )


def decode_images(model, z, labels, batch_size: int = 2048) -> np.ndarray:
    """Mean images for latent codes ``z`` (N, latent); large batches, since no gradients."""
    z = np.asarray(z, np.float32)
    labels = np.asarray(labels, np.int32)
    out = [
        model.decode(
            tf.constant(z[i : i + batch_size]), tf.constant(labels[i : i + batch_size])
        ).numpy()
        for i in range(0, len(z), batch_size)
    ]
    return (
        np.concatenate(out)[..., 0]
        if out
        else np.zeros((0, *model.config.image_shape[:2]), np.float32)
    )


def reconstructions(model, images, labels) -> np.ndarray:
    """Mean images (N, height, width) decoded from each image's posterior mean."""
    posterior = model.posterior(tf.constant(images, tf.float32), tf.constant(labels))
    return decode_images(model, posterior.mean().numpy(), labels)


def bernoulli_samples(mean_images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Binary images drawn pixel by pixel from ``mean_images``, as p(x | z) generates them."""
    return fixed_binarization(np.asarray(mean_images, np.float32), seed)


def sample_latents(model, per_class: int, seed: int = 0) -> np.ndarray:
    """z ~ p(z | y) for every class, shape (num_classes, per_class, latent_dim)."""
    check_positive_int(per_class, "samples per class")
    labels = np.repeat(np.arange(model.config.num_classes), per_class)
    z = model.generation_prior(tf.constant(labels, tf.int32)).sample(
        seed=tf.constant([seed, 7], tf.int32)
    )
    return np.asarray(z).reshape(model.config.num_classes, per_class, -1)


def sample_images(model, per_class: int, seed: int = 0) -> np.ndarray:
    """Decoded samples, shape (num_classes, per_class, height, width), floats in [0, 1]; row c is class c."""
    z = sample_latents(model, per_class, seed)
    labels = np.repeat(np.arange(len(z)), per_class)
    images = decode_images(model, z.reshape(len(labels), -1), labels)
    return images.reshape(*z.shape[:2], *images.shape[1:])


def grid_offsets(n: int = GRID_SIZE, quantiles=GRID_QUANTILES) -> np.ndarray:
    """Offsets from the class mean for an n x n manifold, shape (n, n, 2): cell (i, j) at
    (norm.ppf(q[j]), norm.ppf(q[i])), q = linspace(0.05, 0.95, n), as in the reference figure."""
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise CvaeError(f"grid size must be an integer >= 2, got {n!r}")
    steps = norm.ppf(np.linspace(quantiles[0], quantiles[1], n))
    cols, rows = np.meshgrid(steps, steps)
    return np.stack([cols, rows], axis=-1)


def manifold_latents(model, digit: int, n: int = GRID_SIZE) -> np.ndarray:
    """Codes (n, n, latent_dim) around ``digit``'s centre, in the first two axes."""
    digit = check_digit(digit, model.config.num_classes)
    if model.config.latent_dim < 2:
        raise CvaeError(
            f"the manifold grid needs a latent space of 2 or more dimensions, "
            f"this model has {model.config.latent_dim}"
        )
    offsets = grid_offsets(n)  # validates n
    mean = class_means(model)[digit]
    z = np.broadcast_to(mean, (n, n, mean.shape[-1])).copy()
    z[..., :2] += offsets
    return z.astype(np.float32)


def manifold_tiles(model, digit: int, n: int = GRID_SIZE) -> np.ndarray:
    """The decoded digits of the n x n grid, shape (n, n, height, width): row i, column j."""
    z = manifold_latents(model, digit, n)
    tiles = decode_images(model, z.reshape(n * n, -1), np.full(n * n, int(digit)))
    return tiles.reshape(n, n, *tiles.shape[1:])


def manifold_image(model, digit: int, n: int = GRID_SIZE) -> np.ndarray:
    """The n x n grid of decoded digits as one (n * height, n * width) image."""
    tiles = manifold_tiles(model, digit, n)
    height, width = tiles.shape[2:]
    return tiles.transpose(0, 2, 1, 3).reshape(n * height, n * width)
