"""Figures for the book and the CLI. Each function returns a matplotlib Figure.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so the
library never opens windows, never calls ``plt.show()`` and leaks no global state;
Jupyter displays a returned Figure, and ``fig.savefig`` writes it to disk.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from . import sampling
from .data import check_digit


def manifold_figure(model, digit: int, n: int = sampling.GRID_SIZE, size: float = 6.0) -> Figure:
    """The reference's n x n grid of digits decoded around class ``digit``'s mean."""
    digit = check_digit(digit, model.config.num_classes)
    image = sampling.manifold_image(model, digit, n)
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(image, cmap="Greys_r", vmin=0, vmax=1)
    steps = sampling.grid_offsets(n)[0, :, 0]
    ticks = np.arange(n) * 28 + 13.5
    labels = [f"{v:+.1f}" if i % 2 == 0 else "" for i, v in enumerate(steps)]
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel(r"$z_1 - \mu_{y,1}$")
    ax.set_ylabel(r"$z_2 - \mu_{y,2}$")
    ax.set_title(f"digit {digit}: decoded at $\\mu_{{{digit}}}$ + normal quantiles")
    return fig


def all_manifolds_figure(model, n: int = sampling.GRID_SIZE, size: float = 2.4) -> Figure:
    """The manifold of every class, two rows of five."""
    classes = model.config.num_classes
    cols = 5
    rows = int(np.ceil(classes / cols))
    fig = Figure(figsize=(cols * size, rows * size), layout="constrained")
    for digit in range(classes):
        ax = fig.add_subplot(rows, cols, digit + 1)
        ax.imshow(sampling.manifold_image(model, digit, n), cmap="Greys_r", vmin=0, vmax=1)
        ax.set_title(f"digit {digit}")
        ax.axis("off")
    return fig


def samples_figure(samples: np.ndarray, size: float = 0.6) -> Figure:
    """Rows of generated digits, one row per class, from an array (classes, n, 28, 28)."""
    classes, per_class = samples.shape[:2]
    fig = Figure(figsize=(per_class * size, classes * size), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(samples.transpose(0, 2, 1, 3).reshape(classes * 28, per_class * 28), cmap="Greys_r", vmin=0, vmax=1)
    ax.set_yticks(np.arange(classes) * 28 + 13.5, [str(c) for c in range(classes)])
    ax.set_xticks([])
    ax.set_ylabel("requested digit")
    return fig


def latent_scatter_figure(model, images: np.ndarray, labels: np.ndarray, size: float = 6.5) -> Figure:
    """Posterior means of encoded digits, coloured by class, with each class mean marked."""
    from .backend import tf

    z = np.asarray(model.posterior(tf.constant(images), tf.constant(labels)).mean())
    means = sampling.class_means_for_generation(model)
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.add_subplot()
    colours = [f"C{c}" for c in range(10)]
    for c in range(model.config.num_classes):
        members = labels == c
        ax.scatter(z[members, 0], z[members, 1], s=4, alpha=0.5, color=colours[c % 10], label=str(c))
    for c, (mx, my) in enumerate(means[:, :2]):
        ax.scatter([mx], [my], s=260, marker="o", facecolor="white", edgecolor=colours[c % 10], linewidth=2, zorder=3)
        ax.text(mx, my, str(c), ha="center", va="center", fontsize=10, weight="bold", zorder=4)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal")
    ax.legend(title="digit", markerscale=4, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("encoded test digits (posterior means) and class means")
    return fig


def training_curves_figure(history, size: tuple = (10.0, 3.2)) -> Figure:
    """Negative ELBO, its reconstruction and KL parts, per epoch, train and validation."""
    epochs = history.series("epoch")
    fig = Figure(figsize=size, layout="constrained")
    for i, (key, title) in enumerate([("loss", "negative ELBO"), ("recon", "reconstruction"), ("kl", "KL")]):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.plot(epochs, history.series(key), label="train")
        ax.plot(epochs, history.series(f"val_{key}"), label="validation")
        ax.set_title(f"{title} (nats/image)")
        ax.set_xlabel("epoch")
        ax.legend()
    return fig
