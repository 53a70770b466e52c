"""Generating digits: class samples, and the manifold grid cell by cell."""

import numpy as np
import pytest
from scipy.stats import norm

from cvae_lib import sampling
from cvae_lib.backend import tf
from cvae_lib.config import ModelConfig
from cvae_lib.errors import CvaeError
from cvae_lib.model import ConditionalVAE

QUANTILES = np.linspace(0.05, 0.95, 15)


def test_grid_quantiles_are_the_reference():
    offsets = sampling.grid_offsets()
    assert offsets.shape == (15, 15, 2)
    # symmetric around the mean, from the 5% to the 95% quantile
    assert offsets[0, 0, 0] == pytest.approx(-1.6448536, abs=1e-6)
    assert offsets[14, 14, 1] == pytest.approx(1.6448536, abs=1e-6)
    assert offsets[7, 7] == pytest.approx([0.0, 0.0], abs=1e-12)


@pytest.mark.parametrize("digit", [0, 3, 9])
def test_each_grid_cell_sits_at_its_quantile(tiny_model, digit):
    z = sampling.manifold_latents(tiny_model, digit)
    assert z.shape == (15, 15, 2) and z.dtype == np.float32
    mu = tiny_model.class_means(tf.constant([digit])).numpy()[0]
    for i in range(15):
        for j in range(15):
            expected = mu + np.array([norm.ppf(QUANTILES[j]), norm.ppf(QUANTILES[i])])
            np.testing.assert_allclose(
                z[i, j], expected, rtol=1e-5, atol=1e-5, err_msg=f"cell {i}, {j}"
            )
    # first latent dimension grows left to right, the second top to bottom
    assert (np.diff(z[:, :, 0], axis=1) > 0).all() and (
        np.diff(z[:, :, 0], axis=0) == 0
    ).all()
    assert (np.diff(z[:, :, 1], axis=0) > 0).all() and (
        np.diff(z[:, :, 1], axis=1) == 0
    ).all()


def test_grid_spans_the_first_two_dimensions_only():
    model = ConditionalVAE(ModelConfig(latent_dim=3, base_depth=2))
    z = sampling.manifold_latents(model, 5, n=4)
    mu = model.class_means(tf.constant([5])).numpy()[0]
    q = np.linspace(0.05, 0.95, 4)
    np.testing.assert_allclose(
        z[2, 1], mu + [norm.ppf(q[1]), norm.ppf(q[2]), 0.0], rtol=1e-5, atol=1e-5
    )
    # mu[2] is float32 rounding noise around 0 (about 1e-7), and mu comes from a batch of one
    # here but of ten in manifold_latents: compare on the scale of the means (a circle of radius 10).
    np.testing.assert_allclose(z[..., 2], np.full((4, 4), mu[2]), rtol=0, atol=1e-5)


def test_manifold_tiles_are_the_decoded_cells(tiny_model):
    digit = 4
    image = sampling.manifold_image(tiny_model, digit)
    assert image.shape == (15 * 28, 15 * 28)
    z = sampling.manifold_latents(tiny_model, digit)
    decoded = tiny_model.decode(
        tf.constant(z.reshape(-1, 2)), tf.fill([225], digit)
    ).numpy()[..., 0]
    for i in range(15):
        for j in range(15):
            tile = image[i * 28 : (i + 1) * 28, j * 28 : (j + 1) * 28]
            np.testing.assert_allclose(
                tile, decoded[i * 15 + j], atol=1e-6, err_msg=f"tile {i}, {j}"
            )
    assert not np.allclose(
        image[:28, :28], image[:28, -28:]
    )  # the grid is not one repeated digit


def test_manifold_grid_of_other_sizes(tiny_model):
    assert sampling.manifold_image(tiny_model, 1, n=3).shape == (84, 84)
    with pytest.raises(CvaeError, match="grid size"):
        sampling.manifold_latents(tiny_model, 1, n=1)


@pytest.mark.parametrize("digit", [10, -1, 2.5, "seven", True])
def test_bad_digit_raises(tiny_model, digit):
    with pytest.raises(CvaeError, match="digit"):
        sampling.manifold_latents(tiny_model, digit)
    with pytest.raises(CvaeError, match="digit"):
        sampling.manifold_image(tiny_model, digit)


def test_manifold_needs_two_latent_dimensions():
    model = ConditionalVAE(ModelConfig(latent_dim=1, base_depth=2))
    with pytest.raises(CvaeError, match="2 or more dimensions"):
        sampling.manifold_image(model, 0)


def test_sample_images_shape_range_and_rows(tiny_model):
    images = sampling.sample_images(tiny_model, 6, seed=1)
    assert images.shape == (10, 6, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    # row c decodes draws from class c's prior
    z = sampling.sample_latents(tiny_model, 6, seed=1)
    labels = np.repeat(np.arange(10), 6)
    expected = tiny_model.decode(
        tf.constant(z.reshape(60, 2)), tf.constant(labels)
    ).numpy()[..., 0]
    np.testing.assert_allclose(images, expected.reshape(10, 6, 28, 28), atol=1e-6)
    np.testing.assert_array_equal(sampling.sample_images(tiny_model, 6, seed=1), images)
    assert not np.array_equal(sampling.sample_images(tiny_model, 6, seed=2), images)


def test_latent_samples_come_from_each_class_prior(tiny_model):
    n = 4000
    z = sampling.sample_latents(tiny_model, n, seed=0)
    assert z.shape == (10, n, 2)
    means = sampling.class_means(tiny_model)
    # N(mu_c, I): sample mean within 5 standard errors, unit variance, uncorrelated
    assert np.abs(z.mean(axis=1) - means).max() < 5 / np.sqrt(n)
    np.testing.assert_allclose(z.var(axis=1), 1.0, atol=0.1)
    for c in range(10):
        assert abs(np.corrcoef(z[c].T)[0, 1]) < 0.1


@pytest.mark.parametrize("per_class", [0, -2, 1.5, True, "3"])
def test_bad_sample_count_raises(tiny_model, per_class):
    with pytest.raises(CvaeError, match="samples per class"):
        sampling.sample_images(tiny_model, per_class)


def test_class_means_and_decode_batching(tiny_model):
    means = sampling.class_means(tiny_model)
    np.testing.assert_array_equal(
        means, tiny_model.class_means(tf.range(10)).numpy()
    )  # the same computation
    np.testing.assert_allclose(
        sampling.class_means(tiny_model), means, rtol=1e-6, atol=1e-5
    )
    z = np.random.default_rng(0).normal(size=(20, 2))
    labels = np.arange(20) % 10
    np.testing.assert_allclose(
        sampling.decode_images(tiny_model, z, labels, batch_size=7),
        sampling.decode_images(tiny_model, z, labels),
        atol=1e-6,
    )
    assert sampling.decode_images(tiny_model, np.zeros((0, 2)), []).shape == (0, 28, 28)


def test_reconstructions_decode_the_posterior_mean(tiny_model):
    rng = np.random.default_rng(0)
    images = rng.random((5, 28, 28, 1)).astype(np.float32)
    labels = np.arange(5, dtype=np.int32)
    recon = sampling.reconstructions(tiny_model, images, labels)
    assert recon.shape == (5, 28, 28)
    mean = tiny_model.posterior(tf.constant(images), tf.constant(labels)).mean()
    expected = tiny_model.decode(mean, tf.constant(labels)).numpy()[..., 0]
    np.testing.assert_allclose(recon, expected, rtol=1e-5, atol=1e-6)


def test_bernoulli_samples_draw_each_pixel_at_its_probability():
    means = np.tile(np.linspace(0, 1, 11, dtype=np.float32), (2000, 1))
    drawn = sampling.bernoulli_samples(means, seed=3)
    assert set(np.unique(drawn)) <= {0.0, 1.0}
    np.testing.assert_allclose(drawn.mean(axis=0), means[0], atol=0.04)
    assert drawn[:, 0].max() == 0 and drawn[:, -1].min() == 1
    np.testing.assert_array_equal(drawn, sampling.bernoulli_samples(means, seed=3))


def test_manifold_image_assembles_the_tiles(tiny_model):
    tiles = sampling.manifold_tiles(tiny_model, 4, n=3)
    image = sampling.manifold_image(tiny_model, 4, n=3)
    assert tiles.shape == (3, 3, 28, 28)
    np.testing.assert_array_equal(image[28:56, 56:84], tiles[1, 2])  # row 1, column 2
