"""Figures: returned as matplotlib Figures, no pyplot state, and they save."""

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from cvae_lib import plots, sampling
from cvae_lib.errors import CvaeError
from cvae_lib.train import History

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_bytes(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a plot function left a pyplot figure open"


def test_manifold_figure(tiny_model, tmp_path):
    fig = plots.manifold_figure(tiny_model, 3, n=5)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(
        np.asarray(shown), sampling.manifold_image(tiny_model, 3, n=5), atol=1e-6
    )
    assert "digit 3" in ax.get_title()
    assert len(ax.get_xticks()) == 5
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(CvaeError, match="digit"):
        plots.manifold_figure(tiny_model, 11)


def test_all_manifolds_figure(tiny_model):
    fig = plots.all_manifolds_figure(tiny_model, n=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 10
    assert [ax.get_title() for ax in fig.axes] == [f"digit {d}" for d in range(10)]
    assert _png_bytes(fig).startswith(PNG_MAGIC)


def test_samples_figure_rows_are_classes(tiny_model):
    samples = sampling.sample_images(tiny_model, 4)
    fig = plots.samples_figure(samples)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    shown = np.asarray(ax.images[0].get_array())
    assert shown.shape == (10 * 28, 4 * 28)
    np.testing.assert_allclose(
        shown[3 * 28 : 4 * 28, 2 * 28 : 3 * 28], samples[3, 2]
    )  # row 3, column 2
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(c) for c in range(10)]
    assert _png_bytes(fig).startswith(PNG_MAGIC)


def test_latent_scatter_figure(tiny_model, tiny_digits):
    x, y = tiny_digits.x_test[:100], tiny_digits.y_test[:100]
    fig = plots.latent_scatter_figure(tiny_model, x, y)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    # one scatter per class of encoded digits, one marker per class mean
    assert len(ax.collections) == 20
    points = sum(len(c.get_offsets()) for c in ax.collections[:10])
    assert points == 100
    assert _png_bytes(fig).startswith(PNG_MAGIC)


def test_training_curves_figure(tmp_path):
    history = History(
        [
            {
                "epoch": e,
                "loss": 200 - e,
                "recon": 180 - e,
                "kl": 20.0,
                "val_loss": 205 - e,
                "val_recon": 185 - e,
                "val_kl": 20.0,
            }
            for e in range(1, 5)
        ]
    )
    fig = plots.training_curves_figure(history)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    first = fig.axes[0]
    np.testing.assert_array_equal(first.lines[0].get_ydata(), history.series("loss"))
    np.testing.assert_array_equal(
        first.lines[1].get_ydata(), history.series("val_loss")
    )
    fig.savefig(tmp_path / "curves.svg")
    assert (tmp_path / "curves.svg").read_text().lstrip().startswith("<?xml")


def _history_with_means(epochs=4):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(10, 2)) * 5
    records = [
        {
            "epoch": e,
            "recon_weight": min(1.0, (e - 1) / 2),
            "prior_learning_rate": 0.0 if e < 3 else 1e-3,
            "min_mean_distance": 4.0 - 0.1 * e,
            "class_means": (start + 0.3 * e).tolist(),
        }
        for e in range(1, epochs + 1)
    ]
    return History(records), start


def test_mean_paths_figure_draws_every_class_from_start_to_end():
    history, start = _history_with_means()
    fig = plots.mean_paths_figure(history, start)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 30  # path, epoch dots and start marker per class
    np.testing.assert_allclose(lines[0].get_xydata()[0], start[0])
    np.testing.assert_allclose(lines[0].get_xydata()[-1], start[0] + 1.2)
    assert [t.get_text() for t in ax.texts] == [str(c) for c in range(10)]
    assert _png_bytes(fig).startswith(PNG_MAGIC)


def test_schedule_figure_shows_what_training_applied():
    history, _ = _history_with_means()
    fig = plots.schedule_figure(history)
    assert len(fig.axes) == 3
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [0, 0.5, 1, 1])
    np.testing.assert_allclose(
        fig.axes[1].get_lines()[0].get_ydata(), [0, 0, 1e-3, 1e-3]
    )
    assert _png_bytes(fig).startswith(PNG_MAGIC)


def test_rows_figure_labels_each_row():
    rows = {
        "a": np.zeros((3, 28, 28)),
        "b": np.ones((3, 28, 28)),
    }
    (ax,) = plots.rows_figure(rows).axes
    shown = np.asarray(ax.images[0].get_array())
    assert shown.shape == (2 * 28, 3 * 28)
    assert shown[:28].max() == 0 and shown[28:].min() == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]


def test_frontier_figure_tells_every_recipe_apart():
    from cvae_lib.plots import frontier_figure

    points = {f"r{i}": ([170.0 - i], [0.9 + i / 100]) for i in range(12)}
    points["three seeds"] = ([159.0, 160.0, 158.0], [0.98, 0.97, 0.99])
    fig = frontier_figure(points, {"templates": 174.5, "vae": 167.4}, 0.977)
    ax = fig.axes[0]
    styles = [(c.lines[0].get_color(), c.lines[0].get_marker()) for c in ax.containers]
    assert len(styles) == 13 and len(set(styles)) == 13  # no two recipes look alike
    bars = ax.containers[-1]  # the three-seed recipe has error bars both ways
    assert bars.has_xerr and bars.has_yerr
    assert not ax.containers[0].has_xerr
    lines = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() != "None"]
    assert {174.5, 167.4} <= set(lines)  # the references, drawn as vertical lines
