"""The negative ELBO: exact KL against a closed form and Monte Carlo, the KL weighting,
reconstruction as a Bernoulli log-likelihood, and that training lowers the loss."""

from dataclasses import replace

import numpy as np
import pytest

from cvae_lib.backend import keras, tf, tfb, tfd
from cvae_lib.config import ModelConfig
from cvae_lib.decoder import pixel_distribution
from cvae_lib.encoder import posterior_distribution, posterior_params_size
from cvae_lib.model import ConditionalVAE
from cvae_lib.prior import prior_distribution
from cvae_lib.train import make_train_step

TINY = ModelConfig(base_depth=2)


def closed_form_kl(m, cov, mu):
    """KL(N(m, S) || N(mu, I)) = 1/2 [tr S + |m - mu|^2 - d - log det S], in numpy float64."""
    m, cov, mu = (np.asarray(a, np.float64) for a in (m, cov, mu))
    d = m.shape[-1]
    _, logdet = np.linalg.slogdet(cov)
    return 0.5 * (
        np.trace(cov, axis1=-2, axis2=-1) + np.sum((m - mu) ** 2, -1) - d - logdet
    )


def random_posterior(latent, n, seed, spread=1.0):
    rng = np.random.default_rng(seed)
    params = tf.constant(
        rng.normal(size=(n, posterior_params_size(latent))) * spread, tf.float32
    )
    return posterior_distribution(params, latent)


@pytest.fixture(scope="module")
def batch(sample_digits):
    rng = np.random.default_rng(0)
    x = sample_digits.x_train[:32]
    return (rng.random(x.shape) < x).astype(np.float32), sample_digits.y_train[:32]


@pytest.mark.parametrize("latent", [1, 2, 4])
def test_analytic_kl_equals_the_closed_form(latent):
    q = random_posterior(latent, 6, seed=latent, spread=1.5)
    mu = (
        np.random.default_rng(10 + latent).normal(size=(6, latent)).astype(np.float32)
        * 3
    )
    kl = tfd.kl_divergence(q, prior_distribution(tf.constant(mu))).numpy()
    expected = closed_form_kl(q.mean().numpy(), q.covariance().numpy(), mu)
    np.testing.assert_allclose(kl, expected, rtol=1e-4, atol=1e-4)
    assert (kl > 0).all()


def test_analytic_kl_equals_a_monte_carlo_estimate():
    latent, n_samples = 2, 200_000
    q = random_posterior(latent, 3, seed=7, spread=1.0)
    p = prior_distribution(tf.constant([[1.0, -1.0], [0.0, 0.5], [-2.0, 2.0]]))
    z = q.sample(n_samples, seed=[3, 4])  # (n_samples, 3, latent)
    log_ratio = (q.log_prob(z) - p.log_prob(z)).numpy().astype(np.float64)
    estimate = log_ratio.mean(axis=0)
    standard_error = log_ratio.std(axis=0) / np.sqrt(n_samples)
    exact = tfd.kl_divergence(q, p).numpy()
    assert (np.abs(estimate - exact) < 5 * standard_error + 1e-3).all(), (
        estimate,
        exact,
        standard_error,
    )


def test_kl_is_zero_when_posterior_equals_prior():
    mu = tf.constant([[0.3, -1.2], [2.0, 5.0]])
    # raw parameters whose scale is exactly the identity after FillScaleTriL(diag_shift=1e-5)
    tril = tfb.FillScaleTriL(diag_shift=1e-5).inverse(tf.eye(2, batch_shape=[2]))
    q = posterior_distribution(tf.concat([mu, tril], axis=-1), 2)
    np.testing.assert_allclose(
        q.covariance().numpy(), np.stack([np.eye(2)] * 2), atol=1e-5
    )
    kl = tfd.kl_divergence(q, prior_distribution(mu)).numpy()
    np.testing.assert_allclose(kl, 0.0, atol=1e-5)
    # and moving either the mean or the scale away makes it positive
    shifted = tfd.kl_divergence(q, prior_distribution(mu + 0.5)).numpy()
    np.testing.assert_allclose(shifted, 0.5 * 2 * 0.25, rtol=1e-4)


def test_loss_terms_kl_is_the_closed_form_against_the_class_mean(batch):
    model = ConditionalVAE(TINY)
    x, y = tf.constant(batch[0][:8]), tf.constant(batch[1][:8])
    recon, kl = model.loss_terms(x, y, tf.constant([1, 2]))[:2]
    assert recon.shape == (8,) and kl.shape == (8,)
    q = model.posterior(x, y)
    mu = model.class_means(y).numpy()
    np.testing.assert_allclose(
        kl.numpy(),
        closed_form_kl(q.mean().numpy(), q.covariance().numpy(), mu),
        rtol=1e-4,
        atol=1e-4,
    )
    assert (kl.numpy() >= 0).all()
    # the KL depends on the label (through mu_y), the posterior does not
    other = tf.constant((batch[1][:8] + 1) % 10)
    np.testing.assert_array_equal(
        model.posterior(x, other).mean().numpy(), q.mean().numpy()
    )
    assert not np.allclose(
        model.loss_terms(x, other, tf.constant([1, 2]))[1].numpy(), kl.numpy()
    )


def test_reconstruction_is_the_bernoulli_negative_log_likelihood(batch):
    model = ConditionalVAE(TINY)
    x, y = tf.constant(batch[0][:8]), tf.constant(batch[1][:8])
    seed = tf.constant([5, 6])
    recon, _ = model.loss_terms(x, y, seed)[:2]
    z = model.posterior(x, y).sample(seed=seed)  # the same reparameterised draw
    expected = -pixel_distribution(model.decode_logits(z, y)).log_prob(x)
    np.testing.assert_allclose(recon.numpy(), expected.numpy(), rtol=1e-5)
    # the same seed gives the same draw, another seed another one
    np.testing.assert_array_equal(
        model.loss_terms(x, y, seed)[0].numpy(), recon.numpy()
    )
    assert not np.array_equal(
        model.loss_terms(x, y, tf.constant([7, 8]))[0].numpy(), recon.numpy()
    )


def test_decoder_ignores_the_label_and_decode_is_a_probability(batch):
    model = ConditionalVAE(TINY)
    z = tf.constant(np.random.default_rng(0).normal(size=(4, 2)), tf.float32)
    a = model.decode(z, tf.constant([0, 1, 2, 3])).numpy()
    b = model.decode(z, tf.constant([9, 9, 9, 9])).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 28, 28, 1) and (a > 0).all() and (a < 1).all()


@pytest.mark.parametrize("n", [1, 8, 256])
def test_kl_weighting_in_the_objective(n):
    rng = np.random.default_rng(n)
    recon = tf.constant(rng.uniform(100, 200, n), tf.float32)
    kl = tf.constant(rng.uniform(5, 20, n), tf.float32)
    elbo = ConditionalVAE(replace(TINY, kl_weighting="elbo"))
    reference = ConditionalVAE(replace(TINY, kl_weighting="reference"))
    r, k = recon.numpy().astype(np.float64), kl.numpy().astype(np.float64)
    np.testing.assert_allclose(
        float(elbo.objective(recon, kl)), r.mean() + k.mean(), rtol=1e-6
    )
    np.testing.assert_allclose(
        float(reference.objective(recon, kl)), r.mean() + k.mean() / n, rtol=1e-6
    )
    # the reference recipe: sum of reconstruction + mean KL, i.e. per image mean(r) + mean(k)/n
    np.testing.assert_allclose(
        float(reference.objective(recon, kl)), (r.sum() + k.mean()) / n, rtol=1e-6
    )


def test_kl_weighting_changes_only_the_kl_gradient():
    recon = tf.Variable(tf.fill([4], 150.0))
    kl = tf.Variable(tf.fill([4], 10.0))
    grads = {}
    for weighting in ("elbo", "reference"):
        model = ConditionalVAE(replace(TINY, kl_weighting=weighting))
        with tf.GradientTape() as tape:
            loss = model.objective(recon, kl)
        grads[weighting] = [g.numpy() for g in tape.gradient(loss, [recon, kl])]
    np.testing.assert_allclose(grads["elbo"][0], grads["reference"][0])
    np.testing.assert_allclose(grads["reference"][1], grads["elbo"][1] / 4)


def test_variables_split_into_prior_and_networks():
    model = ConditionalVAE(TINY)
    prior = {id(v) for v in model.prior_variables}
    networks = {id(v) for v in model.network_variables}
    assert len(prior) == 4 and not prior & networks
    everything = {
        id(v) for net in model.networks().values() for v in net.trainable_variables
    }
    assert prior | networks == everything
    assert sum(int(np.prod(v.shape)) for v in model.prior_variables) == 54


def test_class_means_have_one_row_per_label():
    model = ConditionalVAE(ModelConfig(latent_dim=3, base_depth=2))
    means = model.class_means(tf.constant([0, 3, 3, 9])).numpy()
    assert means.shape == (4, 3)
    np.testing.assert_array_equal(means[1], means[2])
    assert not np.allclose(means[0], means[1])
    assert isinstance(model.prior(tf.constant([0, 3])), tfd.MultivariateNormalDiag)


@pytest.mark.parametrize("weighting", ["elbo", "reference"])
def test_loss_falls_when_overfitting_one_batch(batch, weighting):
    x, y = tf.constant(batch[0]), tf.constant(batch[1])
    model = ConditionalVAE(replace(TINY, kl_weighting=weighting))
    step = make_train_step(
        model,
        keras.optimizers.Adam(1e-3),
        keras.optimizers.Adam(1e-3),
        jit_compile=False,
        binarize_input=False,
    )

    def loss():
        recon, kl = model.loss_terms(x, y, tf.constant([11, 12]))[:2]
        return float(tf.reduce_mean(recon) + tf.reduce_mean(kl))

    before = loss()
    assert 450 < before < 700  # ~784 log 2 = 543 nats for an untrained decoder
    step_losses = [
        sum(float(v) for v in step(x, y, tf.constant([0, i]))) for i in range(40)
    ]
    after = loss()
    assert all(np.isfinite(step_losses))
    assert after < 0.8 * before, (before, after)
    assert np.mean(step_losses[-5:]) < 0.8 * np.mean(step_losses[:5])


def test_the_class_term_reads_the_posterior_mean_by_default():
    model = ConditionalVAE(TINY)
    assert model.config.class_codes == "posterior_mean"
    images = tf.constant(
        np.random.default_rng(1).random((4, 28, 28, 1)) > 0.5, tf.float32
    )
    labels = tf.constant([0, 3, 5, 9])
    _, _, class_nll = model.loss_terms(images, labels, tf.constant([1, 2]))
    mean = model.posterior(images, labels).mean()
    np.testing.assert_allclose(class_nll, model.class_nll(mean, labels), rtol=1e-6)


def test_free_bits_charge_nothing_below_their_floor():
    free = ConditionalVAE(replace(TINY, free_bits=4.0))
    recon, nll = tf.constant([100.0, 120.0]), tf.constant([0.0, 0.0])
    below, above = tf.constant([1.0, 3.0]), tf.constant([5.0, 7.0])
    # a batch mean KL of 2 is charged as 4; of 6, as itself
    assert float(free.objective(recon, below, nll)) == pytest.approx(110.0 + 4.0)
    assert float(free.objective(recon, above, nll)) == pytest.approx(110.0 + 6.0)
