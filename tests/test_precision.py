"""Mixed bfloat16: float32 weights and outputs, bfloat16 hidden layers, and a model that trains.

The speed it buys is measured by the benchmark, not tested; these tests pin down what
must not change with the option: weights, outputs and losses stay float32.
"""

import numpy as np
import pytest

from cvae_lib import checkpoint
from cvae_lib.backend import keras, tf
from cvae_lib.config import TrainConfig
from cvae_lib.model import ConditionalVAE
from cvae_lib.precision import PRECISIONS, check_precision, hidden_layer_dtype, native_bfloat16
from cvae_lib.errors import CvaeError
from cvae_lib.steps import make_train_step
from cvae_lib.variants import SohnCVAE

from tiny_settings import TINY_MODEL

BF16 = TrainConfig(epochs=1, batch_size=16, precision="mixed_bfloat16")


@pytest.mark.parametrize("bad", ["float16", "bf16", "", None, 32])
def test_unknown_precisions_are_one_clear_error(bad):
    with pytest.raises(CvaeError, match="precision must be one of float32, mixed_bfloat16"):
        check_precision(bad)
    with pytest.raises(CvaeError, match="precision"):
        TrainConfig(precision=bad)


def test_float32_is_the_default_and_changes_no_layer():
    assert TrainConfig().precision == "float32" and "float32" in PRECISIONS
    assert hidden_layer_dtype("float32") is None
    assert hidden_layer_dtype("mixed_bfloat16") == "mixed_bfloat16"


@pytest.mark.parametrize("flags, expected", [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True),
                                             ({"avx2", "fma"}, False), (set(), False)])
def test_native_bfloat16_reads_the_cpu_flags(flags, expected):
    assert native_bfloat16(cpu_flags=flags) is expected


@pytest.mark.parametrize("model_class", [ConditionalVAE, SohnCVAE])
def test_hidden_layers_compute_in_bfloat16_but_weights_and_outputs_are_float32(model_class):
    model = model_class(TINY_MODEL, BF16)
    for network in (model.encoder, model.decoder):
        computing = [layer.compute_dtype for layer in network.layers if layer.weights]
        assert computing[:-1] == ["bfloat16"] * (len(computing) - 1), network.name
        assert computing[-1] == "float32", network.name  # the output layer
        assert all(v.dtype == tf.float32 for v in network.weights)
    assert all(layer.compute_dtype == "float32" for layer in model.prior_network.layers)
    images = tf.cast(tf.random.uniform([4, 28, 28, 1]) < 0.5, tf.float32)
    labels = tf.constant([0, 1, 2, 3])
    recon, kl = model.loss_parts(images, labels, tf.constant([1, 2]))
    assert recon.dtype == kl.dtype == tf.float32
    assert np.all(np.isfinite(recon.numpy())) and np.all(kl.numpy() >= -1e-4)


def test_bfloat16_model_is_close_to_the_float32_model_with_the_same_weights():
    """Same weights, same function up to bfloat16 rounding of the hidden activations."""
    full, mixed = ConditionalVAE(TINY_MODEL, TrainConfig()), ConditionalVAE(TINY_MODEL, BF16)
    for a, b in zip(full.networks().values(), mixed.networks().values()):
        b.set_weights(a.get_weights())
    z = tf.random.normal([8, 2], seed=3)
    logits_full, logits_mixed = full.decode_logits(z, None).numpy(), mixed.decode_logits(z, None).numpy()
    assert not np.array_equal(logits_full, logits_mixed)  # the option really changes the arithmetic
    np.testing.assert_allclose(logits_mixed, logits_full, atol=0.05 * np.abs(logits_full).max() + 1e-3)


def test_bfloat16_training_lowers_the_loss_and_checkpoints_as_float32(tmp_path, tiny_digits):
    model = ConditionalVAE(TINY_MODEL, BF16)
    step = make_train_step(model, keras.optimizers.Adam(3e-3), keras.optimizers.Adam(1e-3), jit_compile=False)
    x, y = tiny_digits.x_train[:64], tiny_digits.y_train[:64]
    losses = [sum(float(v) for v in step(x, y, tf.constant([0, i]))) for i in range(40)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    checkpoint.save_checkpoint(model, tmp_path / "run", complete=True)
    loaded, _ = checkpoint.load_checkpoint(tmp_path / "run")
    assert loaded.train_config.precision == "mixed_bfloat16"
    assert loaded.decoder.layers[1].compute_dtype == "bfloat16"
    for a, b in zip(model.decoder.get_weights(), loaded.decoder.get_weights()):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
