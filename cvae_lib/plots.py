"""Figures for the book and the CLI, made without pyplot: no window, no global state."""

import numpy as np
from matplotlib.figure import Figure

from . import sampling
from .backend import tf


def new_figure(figsize) -> Figure:
    """A figure on an opaque white ground, so that it reads on the book's dark theme too."""
    return Figure(figsize=figsize, layout="constrained", facecolor="white")


def manifold_figure(
    model, digit: int, n: int = sampling.GRID_SIZE, size: float = 6.0
) -> Figure:
    """The reference's n x n grid of digits decoded around class ``digit``'s mean."""
    image = sampling.manifold_image(model, digit, n)  # which checks the digit
    ax = new_figure((size, size)).add_subplot()
    ax.imshow(image, cmap="Greys_r", vmin=0, vmax=1)
    height = image.shape[0] // n
    ticks = np.arange(n) * height + (height - 1) / 2
    labels = [
        f"{v:+.1f}" if i % 2 == 0 else ""
        for i, v in enumerate(sampling.grid_offsets(n)[0, :, 0])
    ]
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set(
        xlabel=r"$z_1 - \mu_{y,1}$",
        ylabel=r"$z_2 - \mu_{y,2}$",
        title=f"digit {digit}: decoded at $\\mu_{{{digit}}}$ + normal quantiles",
    )
    return ax.figure


def all_manifolds_figure(
    model, n: int = sampling.GRID_SIZE, size: float = 2.4
) -> Figure:
    """The manifold of every class, two rows of five."""
    classes, cols = model.config.num_classes, 5
    rows = int(np.ceil(classes / cols))
    fig = new_figure((cols * size, rows * size))
    for digit in range(classes):
        ax = fig.add_subplot(rows, cols, digit + 1)
        ax.imshow(
            sampling.manifold_image(model, digit, n), cmap="Greys_r", vmin=0, vmax=1
        )
        ax.set_title(f"digit {digit}")
        ax.axis("off")
    return fig


def samples_figure(samples: np.ndarray, size: float = 0.6) -> Figure:
    """Rows of generated digits, one row per class, from an array (classes, n, height, width)."""
    return rows_figure(
        {str(c): row for c, row in enumerate(samples)}, size, ylabel="requested digit"
    )


def rows_figure(rows: dict, size: float = 0.6, ylabel: str | None = None) -> Figure:
    """Rows of images, each an array (n, height, width), labelled by the dict's keys."""
    tiles = np.concatenate([np.concatenate(list(row), axis=1) for row in rows.values()])
    height, width = next(iter(rows.values())).shape[1:]
    ax = new_figure(
        (tiles.shape[1] / width * size + 0.4 * bool(ylabel), len(rows) * size)
    ).add_subplot()
    ax.imshow(tiles, cmap="Greys_r", vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(rows)) * height + (height - 1) / 2, list(rows))
    ax.set(xticks=[], ylabel=ylabel)
    return ax.figure


def latent_scatter_figure(
    model, images: np.ndarray, labels: np.ndarray, size: float = 6.5
) -> Figure:
    """Posterior means of encoded digits, coloured by class, with each class mean marked."""
    z = np.asarray(model.posterior(tf.constant(images), tf.constant(labels)).mean())
    ax = new_figure((size, size)).add_subplot()
    for c in range(model.config.num_classes):
        ax.scatter(
            z[labels == c, 0],
            z[labels == c, 1],
            s=4,
            alpha=0.5,
            color=f"C{c % 10}",
            label=str(c),
        )
    for c, (mx, my) in enumerate(sampling.class_means(model)[:, :2]):
        ax.scatter(
            [mx],
            [my],
            s=260,
            marker="o",
            facecolor="white",
            edgecolor=f"C{c % 10}",
            linewidth=2,
            zorder=3,
        )
        ax.text(
            mx,
            my,
            str(c),
            ha="center",
            va="center",
            fontsize=10,
            weight="bold",
            zorder=4,
        )
    ax.set(
        xlabel="$z_1$",
        ylabel="$z_2$",
        aspect="equal",
        title="encoded test digits (posterior means) and class means",
    )
    ax.legend(
        title="digit",
        markerscale=4,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    return ax.figure


def training_curves_figure(history, size: tuple = (10.0, 3.2)) -> Figure:
    """Negative ELBO, its reconstruction and KL parts, per epoch, train and validation."""
    epochs = history.series("epoch")
    fig = new_figure(size)
    for i, (key, title) in enumerate(
        [("loss", "negative ELBO"), ("recon", "reconstruction"), ("kl", "KL")]
    ):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.plot(epochs, history.series(key), label="train")
        ax.plot(epochs, history.series(f"val_{key}"), label="validation")
        ax.set(title=f"{title} (nats/image)", xlabel="epoch")
        ax.legend()
    return fig


def confusion_figure(confusion: np.ndarray, size: float = 5.0) -> Figure:
    """Row-normalised confusion matrix in percent: row = requested digit, column = judge's label."""
    return confusions_figure({"judge's label of generated digits (%)": confusion}, size)


def confusions_figure(confusions: dict, size: float = 3.6) -> Figure:
    """Several confusion matrices (in percent) side by side, titled by the dict's keys."""
    fig = new_figure((size * len(confusions), size + 0.3))
    for i, (name, confusion) in enumerate(confusions.items()):
        ax = fig.add_subplot(1, len(confusions), i + 1)
        confusion = np.asarray(confusion)
        rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
        labels = [
            [f"{100 * r:.0f}" if r >= 0.005 else "" for r in row] for row in rates
        ]
        _heatmap(
            ax,
            rates,
            labels,
            rates > 0.6,
            name,
            "judge's label",
            "requested digit",
            cmap="Blues",
            vmax=1,
        )
    return fig


def panels_figure(images: dict, size: float = 3.6, ylabel: str | None = None) -> Figure:
    """Grey images (e.g. sample grids or manifolds) side by side, titled by the dict's keys."""
    fig = new_figure((size * len(images), size + 0.3))
    for i, (name, image) in enumerate(images.items()):
        ax = fig.add_subplot(1, len(images), i + 1)
        ax.imshow(image, cmap="Greys_r", vmin=0, vmax=1)
        ax.set_title(name, fontsize=10)
        ax.set(xticks=[], yticks=[])
        if i == 0 and ylabel:
            ax.set_ylabel(ylabel)
    return fig


def separation_figure(
    separation: np.ndarray,
    title: str = "distance between class means",
    size: float = 5.0,
) -> Figure:
    """A :func:`~cvae_lib.sampling.class_separation` matrix, in prior standard deviations, annotated."""
    separation = np.asarray(separation)
    fig = new_figure((size, size))
    labels = [
        [f"{v:.1f}" if i != j else "" for j, v in enumerate(row)]
        for i, row in enumerate(separation)
    ]
    _heatmap(
        fig.add_subplot(),
        separation,
        labels,
        separation < 0.6 * separation.max(),
        f"{title} (prior standard deviations)",
        "digit",
        "digit",
        cmap="viridis",
    )
    return fig


def _heatmap(ax, values, labels, white, title: str, xlabel: str, ylabel: str, **shown):
    """``values`` as an image (``shown``: more ``imshow`` settings), cell labels ``labels`` (white where ``white``)."""
    ax.imshow(values, vmin=0, **shown)
    for (row, col), label in np.ndenumerate(np.asarray(labels)):
        if label:
            ax.text(
                col,
                row,
                label,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if white[row, col] else "black",
            )
    ax.set(
        xticks=range(values.shape[1]),
        yticks=range(values.shape[0]),
        xlabel=xlabel,
        ylabel=ylabel,
    )
    ax.set_title(title, fontsize=10)


def mean_paths_figure(history, start: np.ndarray, size: float = 6.0) -> Figure:
    """Each class mean's path (z_1, z_2) from ``start`` (circle) by each epoch's ``class_means`` (dots) to its digit."""
    paths = np.concatenate(
        [np.asarray(start)[None], history.series("class_means")]
    )  # (epochs + 1, C, d)
    ax = new_figure((size, size)).add_subplot()
    colours = [f"C{c}" for c in range(paths.shape[1])]
    for c, colour in enumerate(colours):
        ax.plot(paths[:, c, 0], paths[:, c, 1], "-", color=colour, lw=1, alpha=0.7)
        ax.plot(paths[1:, c, 0], paths[1:, c, 1], ".", color=colour, ms=3)
        ax.plot(*paths[0, c, :2], "o", mfc="none", color=colour, ms=8)
        ax.text(
            *paths[-1, c, :2],
            str(c),
            color="white",
            ha="center",
            va="center",
            fontsize=8,
            bbox=dict(boxstyle="circle,pad=0.2", fc=colour, ec="none"),
        )
    ax.set(aspect="equal", xlabel="$z_1$", ylabel="$z_2$")
    ax.set_title(
        "class means during training (open circle: start, dots: each epoch)",
        fontsize=10,
    )
    return ax.figure


def schedule_figure(history, size: tuple = (10.0, 3.0)) -> Figure:
    """Per epoch: the reconstruction weight and prior learning rate applied, and the closest two class means."""
    epochs = history.series("epoch")
    fig = new_figure(size)
    panels = [
        ("recon_weight", "reconstruction weight"),
        ("prior_learning_rate", "prior learning rate"),
        ("min_mean_distance", "closest two class means"),
    ]
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.plot(epochs, history.series(key), ".-", ms=3)
        ax.set_title(title, fontsize=10)
        ax.set(xlabel="epoch", ylim=(0, None))
    return fig


def frontier_figure(
    points: dict, references: dict, accuracy_line: float | None = None, size=(7.0, 4.6)
) -> Figure:
    """Judged accuracy against test negative ELBO: ``points`` maps a recipe to its seeds' ``(elbos, accuracies)``
    (mean, s.d. bar), ``references`` a baseline to its nats (a vertical line); ``accuracy_line``: the judge's."""
    ax = new_figure(size).add_subplot()
    for i, (label, (elbos, accuracies)) in enumerate(points.items()):
        elbos, accuracies = np.asarray(elbos, float), np.asarray(accuracies, float)
        several = len(elbos) > 1
        ax.errorbar(  # colour and marker together tell up to 40 recipes apart
            elbos.mean(),
            accuracies.mean(),
            xerr=elbos.std(ddof=1) if several else None,
            yerr=accuracies.std(ddof=1) if several else None,
            fmt=("oDHp" if several else "x^vs")[i // 10 % 4],
            color=f"C{i % 10}",
            markersize=8 if several else 6,
            capsize=3,
            label=label,
        )
    for i, (label, nats) in enumerate(references.items()):
        ax.axvline(nats, color="0.4", linestyle=("--", ":", "-.")[i % 3], label=label)
    if accuracy_line is not None:
        ax.axhline(
            accuracy_line, color="0.6", linewidth=0.8, label="judge on real digits"
        )
    ax.set(
        xlabel="test negative ELBO, nats per digit (lower is better)",
        ylabel="generated digits judged as asked",
    )
    ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    return ax.figure
