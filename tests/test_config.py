"""ModelConfig / TrainConfig validation and their JSON record."""

import dataclasses
import json

import numpy as np
import pytest

from cvae_lib import config as cfg
from cvae_lib.config import ModelConfig, TrainConfig
from cvae_lib.errors import CvaeError


def test_defaults_are_the_reference_design():
    model, train = ModelConfig(), TrainConfig()
    assert (model.latent_dim, model.base_depth, model.kernel_size) == (2, 16, 5)
    assert (model.num_classes, model.image_shape) == (10, (28, 28, 1))
    assert train.batch_size == 256
    assert model.kl_weighting == "elbo" and model.class_weight == 20.0


@pytest.mark.parametrize(
    "field", ["latent_dim", "base_depth", "kernel_size", "num_classes"]
)
@pytest.mark.parametrize("value", [0, -3, 2.0, "4", True, None])
def test_model_config_rejects_non_positive_integers(field, value):
    with pytest.raises(CvaeError, match=field):
        ModelConfig(**{field: value})


def test_model_config_images_are_mnist_shaped():
    with pytest.raises(
        CvaeError,
        match=r"image_shape must be \(28, 28, 1\): the networks are built for MNIST",
    ):
        ModelConfig(image_shape=(32, 32, 1))


def test_model_config_image_shape_becomes_a_tuple_of_ints():
    assert ModelConfig(image_shape=[28, 28, 1]).image_shape == (28, 28, 1)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"prior_learning_rate": -0.1}, "prior_learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"warmup_shape": "beta"}, "warmup_shape"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"class_weight_final": -1.0}, "class_weight_final"),
    ],
)
def test_train_config_rejects_bad_values(kwargs, field):
    with pytest.raises(CvaeError, match=field):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"kl_weighting": "beta"}, "kl_weighting"),
        ({"class_codes": "labels"}, "class_codes"),
        ({"class_weight": -1.0}, "class_weight"),
        ({"free_bits": float("nan")}, "free_bits"),
        ({"prior_init_radius": True}, "prior_init_radius"),
    ],
)
def test_model_config_rejects_bad_loss_settings(kwargs, field):
    with pytest.raises(CvaeError, match=field):
        ModelConfig(**kwargs)


def test_record_round_trips_through_json():
    model = ModelConfig(latent_dim=3, base_depth=4, kl_weighting="reference")
    train = TrainConfig(epochs=7, seed=5, lr_schedule="cosine")
    record = cfg.to_dict(model, train, kind="cvae", note="x")
    assert (
        record["format"] == "cvae_lib/2"
        and record["kind"] == "cvae"
        and record["note"] == "x"
    )
    back = cfg.from_dict(json.loads(cfg.dumps(record)))
    assert back == (model, train)


@pytest.mark.parametrize(
    "record",
    [
        None,
        [],
        {"model": {}, "train": {}},  # no format marker
        {"format": "something/2", "model": {}, "train": {}},
    ],
)
def test_foreign_records_are_rejected(record):
    with pytest.raises(CvaeError, match="not written by cvae_lib"):
        cfg.from_dict(record)


def test_an_older_format_asks_for_training_again():
    record = {**_good_record(), "format": "cvae_lib/1"}
    with pytest.raises(
        CvaeError, match="older cvae_lib .format 'cvae_lib/1'.; train again"
    ):
        cfg.from_dict(record)


def test_a_record_of_an_untrained_model_has_no_schedule():
    record = cfg.to_dict(ModelConfig(), None)
    assert record["train"] is None and cfg.from_dict(record) == (ModelConfig(), None)


def _good_record():
    return json.loads(cfg.dumps(cfg.to_dict(ModelConfig(), TrainConfig())))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda r: r.pop("model"), "incomplete"),
        (lambda r: r["model"].update(colour="red"), "unknown fields"),
        (lambda r: r.update(train="fast"), "incomplete"),
        (lambda r: r["model"].update(latent_dim=0), "latent_dim"),
        (lambda r: r["model"].update(image_shape="abc"), "image_shape"),
        (lambda r: r["model"].update(image_shape=[28, 28]), "image_shape"),
        (lambda r: r["train"].update(learning_rate="fast"), "learning_rate"),
        (lambda r: r["model"].update(kl_weighting="none"), "kl_weighting"),
    ],
    ids=[
        "no-model",
        "unknown-field",
        "train-not-a-dict",
        "bad-latent",
        "bad-image-shape",
        "2d-image-shape",
        "bad-learning-rate",
        "bad-kl-weighting",
    ],
)
def test_incomplete_or_invalid_records_raise_cvae_error(mutate, match):
    record = _good_record()
    mutate(record)
    with pytest.raises(CvaeError, match=match):
        cfg.from_dict(record)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().latent_dim = 3


def test_the_budget_rule_depends_on_the_data_size_only():
    full, small = (
        TrainConfig.for_data(cfg.FULL_DATA_SIZE),
        TrainConfig.for_data(cfg.FULL_DATA_SIZE - 1),
    )
    assert (full.epochs, full.batch_size) == (15, 256)  # the reference
    assert (small.epochs, small.batch_size) == (30, 128)
    assert (full.prior_learning_rate, small.prior_learning_rate) == (2e-4, 1e-3)
    assert (full.learning_rate, small.learning_rate) == (3e-3, 6e-3)
    assert (full.class_weight_final, small.class_weight_final) == (100.0, None)
    assert TrainConfig.for_data(60_000, seed=3, epochs=2) == TrainConfig(
        epochs=2,
        batch_size=256,
        seed=3,
        learning_rate=3e-3,
        prior_learning_rate=2e-4,
        class_weight_final=100.0,
    )


def test_start_order_is_a_permutation_and_round_trips():
    model = ModelConfig(start_order=[2, 0, 1, 3, 4, 5, 6, 7, 8, 9])
    assert model.start_order == (2, 0, 1, 3, 4, 5, 6, 7, 8, 9)
    back, _ = cfg.from_dict(json.loads(cfg.dumps(cfg.to_dict(model, None))))
    assert back == model
    for bad in ([0, 0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2], list(range(1, 11))):
        with pytest.raises(CvaeError, match="start_order must list each of the 10"):
            ModelConfig(start_order=bad)


def test_template_order_puts_look_alike_classes_side_by_side():
    # three shapes of 4x4 images, each drawn twice with a little noise: classes (0, 3),
    # (1, 4) and (2, 5) have the same template, so they must be neighbours in the order
    rng = np.random.default_rng(0)
    shapes = np.zeros((3, 4, 4))
    shapes[0, :2], shapes[1, :, :2], shapes[2, 1:3, 1:3] = 1, 1, 1
    labels = np.repeat(np.arange(6), 50)
    images = shapes[labels % 3] + 0.01 * rng.standard_normal((300, 4, 4))
    order = cfg.template_order(images, labels, num_classes=6)
    assert sorted(order) == list(range(6))
    position = {c: order.index(c) for c in range(6)}
    for a, b in ((0, 3), (1, 4), (2, 5)):
        assert (position[a] - position[b]) % 6 in (1, 5), order


def test_for_data_records_the_template_order(tiny_digits):
    model = ModelConfig.for_data(tiny_digits, latent_dim=3)
    wanted = cfg.template_order(tiny_digits.x_train, tiny_digits.y_train)
    assert model.start_order == wanted and model.latent_dim == 3
    assert wanted != tuple(range(10))  # the tiny digits' order is not the labels'
