"""The comparison's other recipes: the unconditional VAE and Sohn et al.'s CVAE.

Each is trained for one short epoch through the book's own training loop and
checkpoint code, then checked for what makes it that recipe.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tiny_settings import TINY_MODEL, finished_run

from cvae_lib import baselines
from cvae_lib.backend import tf
from cvae_lib.config import TrainConfig
from cvae_lib.model import ConditionalVAE
from cvae_lib.sampling import class_means, manifold_image, sample_images
from cvae_lib.store import checkpoint
from cvae_lib.store.runs import train_or_load

ONE_EPOCH = TrainConfig(epochs=1, batch_size=128)


@pytest.fixture(
    scope="module",
    params=(baselines.UnconditionalVAE, baselines.SohnCVAE),
    ids=lambda cls: cls.kind,
)
def trained(request, tmp_path_factory, tiny_digits):
    """(model, checkpoint directory) of each baseline after one epoch of train_or_load."""
    out = tmp_path_factory.mktemp(request.param.kind) / "run"
    model, history, _ = train_or_load(
        tiny_digits,
        out,
        model_config=TINY_MODEL,
        train_config=ONE_EPOCH,
        model_class=request.param,
        progress="none",
    )
    assert np.isfinite(history.epochs[-1]["val_loss"])
    return model, out


def test_kinds_are_registered_and_distinct():
    kinds = baselines.MODEL_KINDS
    assert (
        kinds["vae"] is baselines.UnconditionalVAE
        and kinds["sohn_cvae"] is baselines.SohnCVAE
    )
    assert len(kinds) == 3


def test_baseline_round_trips_through_its_checkpoint(trained):
    model, out = trained
    loaded, history = checkpoint.load_checkpoint(out)
    assert (
        type(loaded) is type(model)
        and checkpoint.read_config(out)["kind"] == model.kind
    )
    assert len(history.epochs) == 1
    assert list(loaded.networks()) == list(model.networks())
    for name, network in model.networks().items():
        for saved, restored in zip(
            network.get_weights(), loaded.networks()[name].get_weights()
        ):
            np.testing.assert_array_equal(saved, restored)
    np.testing.assert_array_equal(
        sample_images(loaded, 3, seed=1), sample_images(model, 3, seed=1)
    )


def test_baselines_have_a_fixed_standard_normal_prior(trained):
    model, _ = trained
    labels = tf.constant([0, 3, 9])
    prior = model.prior(labels)
    np.testing.assert_array_equal(prior.mean(), np.zeros((3, 2)))
    np.testing.assert_array_equal(prior.stddev(), np.ones((3, 2)))
    assert model.prior_variables == []
    assert "prior_network" not in model.networks()


def test_baseline_is_reused_by_train_or_load_but_not_as_another_kind(
    trained, tiny_digits
):
    model, out = trained
    _, _, reused = train_or_load(
        tiny_digits,
        out,
        model_config=TINY_MODEL,
        train_config=ONE_EPOCH,
        model_class=type(model),
        progress="none",
    )
    assert reused

    assert not finished_run(
        out, tiny_digits, TINY_MODEL, ONE_EPOCH, model_class=ConditionalVAE
    )


def test_unconditional_vae_centres_are_the_mean_encodings_of_each_class(
    tiny_digits, tmp_path
):
    model, _, _ = train_or_load(
        tiny_digits,
        tmp_path / "vae",
        model_config=TINY_MODEL,
        train_config=ONE_EPOCH,
        model_class=baselines.UnconditionalVAE,
        progress="none",
    )
    centres = class_means(model)
    np.testing.assert_allclose(
        centres,
        model.encoded_class_means(tiny_digits.x_train, tiny_digits.y_train),
        rtol=1e-5,
        atol=1e-6,
    )
    assert np.abs(centres).max() > 0  # set after training (they start at zero)
    # the centre of class 4 really is the average posterior mean of the training 4s
    from cvae_lib.train import fixed_binarization

    fours = fixed_binarization(tiny_digits.x_train)[tiny_digits.y_train == 4]
    encoded = model.posterior(tf.constant(fours), None).mean().numpy()
    np.testing.assert_allclose(centres[4], encoded.mean(0), rtol=1e-4, atol=1e-5)
    # generation draws around those centres with unit spread
    generation = model.generation_prior(tf.constant([4, 7]))
    np.testing.assert_allclose(generation.mean(), centres[[4, 7]], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(generation.stddev(), np.ones((2, 2)))


def test_unconditional_vae_ignores_the_label_when_training():
    model = baselines.UnconditionalVAE(TINY_MODEL)
    images = tf.constant(
        np.random.default_rng(0).random((4, 28, 28, 1)) > 0.5, tf.float32
    )
    seed = tf.constant([1, 2])
    a = model.loss_terms(images, tf.constant([0, 1, 2, 3]), seed)[:2]
    b = model.loss_terms(images, tf.constant([9, 9, 9, 9]), seed)[:2]
    for part_a, part_b in zip(a, b):
        np.testing.assert_array_equal(part_a, part_b)
    assert model.likelihood_of == "p(x)"


def test_sohn_cvae_feeds_the_label_to_encoder_and_decoder():
    model = baselines.SohnCVAE(TINY_MODEL)
    assert model.encoder.input_shape == (None, 28, 28, 11)
    assert model.decoder.input_shape == (None, 12)
    z = tf.zeros([2, 2])
    decoded = model.decode(z, tf.constant([1, 8])).numpy()
    assert not np.allclose(
        decoded[0], decoded[1]
    )  # same z, different label: different digit
    images = tf.ones([2, 28, 28, 1])
    q = model.posterior(images, tf.constant([1, 8]))
    assert not np.allclose(q.mean()[0], q.mean()[1])
    # generation: z ~ N(0, I) for every class, the label does the rest
    np.testing.assert_array_equal(class_means(model), np.zeros((10, 2)))
    assert manifold_image(model, 3, n=3).shape == (84, 84)


def test_standard_training_keeps_the_budget_and_drops_the_book_changes():
    book = TrainConfig(epochs=7, batch_size=64, seed=3)
    standard = baselines.standard_train_config(book)
    assert (standard.epochs, standard.batch_size, standard.seed) == (7, 64, 3)
    assert standard.learning_rate == 1e-3 and standard.warmup_epochs == 0
    ramped = baselines.standard_train_config(
        dataclasses.replace(book, class_weight_final=100.0)
    )
    assert ramped.class_weight_final is None  # no class term to schedule
    assert baselines.standard_model_config(TINY_MODEL).class_weight == 0.0
