"""The class means are learned: the prior network really trains after warm-up.

Tested on the effective values, not the configured ones: the learning rate the prior's
optimizer applies, the prior network's weights and the class means themselves.
"""

from dataclasses import replace

import numpy as np
import pytest
from tiny_settings import TINY_MODEL

from cvae_lib.backend import tf
from cvae_lib.config import TrainConfig
from cvae_lib.model import ConditionalVAE
from cvae_lib.sampling import class_means
from cvae_lib.train import train


def _trained(digits, **settings):
    config = TrainConfig(
        epochs=3, batch_size=64, warmup_fraction=1 / 3, seed=2, **settings
    )
    model = ConditionalVAE(TINY_MODEL, seed=config.seed)
    start_weights = [v.numpy().copy() for v in model.prior_variables]
    start_means = class_means(model).copy()
    history = train(model, digits, config, progress="none")
    return model, history, start_weights, start_means


@pytest.fixture(scope="module")
def learned(tiny_digits):
    return _trained(tiny_digits.subset(256, 64), prior_learning_rate=0.01)


def test_prior_optimizer_applies_the_configured_rate_after_warmup(learned):
    _, history, _, _ = learned
    rates = [record["prior_learning_rate"] for record in history.epochs]
    assert rates[0] == 0.0  # warm-up: held still
    np.testing.assert_allclose(rates[1:], 0.01, rtol=1e-6)  # then the configured rate


def test_prior_network_weights_and_class_means_move(learned):
    model, history, start_weights, start_means = learned
    assert all(
        not np.allclose(a, v.numpy())
        for a, v in zip(start_weights, model.prior_variables)
    )
    moved = np.linalg.norm(class_means(model) - start_means, axis=-1)
    assert moved.min() > 1e-3, moved
    # the history's record of the means is the model's, and the warm-up epoch left them in place
    recorded = np.array(history.epochs[-1]["class_means"])
    np.testing.assert_allclose(recorded, class_means(model), atol=1e-6)
    np.testing.assert_allclose(history.epochs[0]["class_means"], start_means, atol=1e-6)


def test_prior_learning_rate_zero_freezes_the_means(tiny_digits):
    model, history, start_weights, start_means = _trained(
        tiny_digits.subset(128, 32), prior_learning_rate=0.0
    )
    assert all(record["prior_learning_rate"] == 0.0 for record in history.epochs)
    for a, v in zip(start_weights, model.prior_variables):
        np.testing.assert_array_equal(a, v.numpy())
    np.testing.assert_array_equal(class_means(model), start_means)


def test_class_nll_is_the_prior_classifier():
    model = ConditionalVAE(TINY_MODEL)
    means = class_means(model)
    z = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32) * 6
    labels = np.array([0, 1, 2, 3, 4, 5, 9])
    logits = -0.5 * ((z[:, None] - means[None]) ** 2).sum(-1)
    expected = -(logits[np.arange(7), labels] - np.log(np.exp(logits).sum(-1)))
    got = model.class_nll(tf.constant(z), tf.constant(labels)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # a code at its own class mean is classified as that class
    at_means = model.class_nll(tf.constant(means), tf.range(10)).numpy()
    assert (at_means < np.log(10)).all()


@pytest.mark.parametrize("weight", [0.0, 2.5])
def test_class_weight_enters_the_objective_only(weight):
    model = ConditionalVAE(replace(TINY_MODEL, class_weight=weight))
    recon, kl, nll = (
        tf.constant(v, tf.float32) for v in ([100.0, 120.0], [3.0, 5.0], [0.5, 1.5])
    )
    assert float(model.objective(recon, kl, nll)) == pytest.approx(
        110.0 + 4.0 + weight * 1.0
    )
    assert float(model.objective(recon, kl)) == pytest.approx(114.0)


def test_the_chapters_separation_check_rejects_collapsed_means():
    from cvae_lib.prior import circle_means, closest_pair, spread_class_means
    from cvae_lib.sampling import class_separation

    model = ConditionalVAE(
        TINY_MODEL
    )  # the circle start: neighbours 2 r sin(18°) apart
    radius = model.config.prior_init_radius
    assert closest_pair(class_separation(model))[2] == pytest.approx(
        2 * radius * np.sin(np.pi / 10), rel=1e-4
    )
    spread_class_means(
        model.class_prior.network, circle_means(10, 2, 1.5)
    )  # means collapsed to radius 1.5
    assert closest_pair(class_separation(model))[2] == pytest.approx(0.93, abs=0.01)


def test_class_codes_prior_classifies_draws_around_the_means(tiny_digits):
    x = tf.constant(tiny_digits.x_train[:64])
    y = tf.constant(tiny_digits.y_train[:64])
    seed = tf.constant([1, 2])
    posterior = ConditionalVAE(TINY_MODEL)
    prior = ConditionalVAE(replace(TINY_MODEL, class_codes="prior"))
    r1, k1, n1 = posterior.loss_terms(x, y, seed)
    r2, k2, n2 = prior.loss_terms(x, y, seed)
    np.testing.assert_allclose(
        r1.numpy(), r2.numpy(), rtol=1e-5
    )  # same networks, same ELBO sample
    np.testing.assert_allclose(k1.numpy(), k2.numpy(), rtol=1e-5)
    # draws from N(mu_y, I) with neighbours several units apart: mostly nearest their own mean
    assert float(tf.reduce_mean(n2)) < 0.5 < float(tf.reduce_mean(n1))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(prior.loss_terms(x, y, seed)[2])
    grads = tape.gradient(loss, prior.prior_variables)
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


def test_the_means_start_around_the_circle_in_start_order():
    from cvae_lib.prior import circle_means
    from cvae_lib.sampling import class_means

    order = (3, 1, 4, 0, 5, 9, 2, 6, 8, 7)
    model = ConditionalVAE(replace(TINY_MODEL, start_order=order))
    means = class_means(model)
    radius = model.config.prior_init_radius
    for position, c in enumerate(order):  # class order[k] at angle 2 pi k / 10
        angle = 2 * np.pi * position / 10
        np.testing.assert_allclose(
            means[c], radius * np.array([np.cos(angle), np.sin(angle)]), atol=1e-4
        )
    np.testing.assert_allclose(means, circle_means(10, 2, radius, order), atol=1e-4)
    labelled = class_means(ConditionalVAE(TINY_MODEL))  # None: by label
    np.testing.assert_allclose(labelled, circle_means(10, 2, radius), atol=1e-4)
    assert not np.allclose(labelled, means, atol=1e-2)
