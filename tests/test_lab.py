"""The performance lab (benchmarks/): the benchmark's plumbing and arithmetic, and the
reference path's decoder. No timing assertions: speed is measured, not tested."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from cvae_lib.backend import keras, tf
from cvae_lib.config import ModelConfig
from cvae_lib.decoder import PixelLogits, make_decoder
from cvae_lib.errors import CvaeError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench  # noqa: E402
import flops  # noqa: E402
import hardware  # noqa: E402
import reference_fit  # noqa: E402

REQUIRED = (
    "train_images_per_s",
    "reference_train_images_per_s",
    "speedup",
    "flops_per_image",
    "decode_images_per_s",
    "device",
    "device_kind",
    "peak_flops_per_s",
    "peak_fraction",
    "matmul_flops_per_s",
    "matmul_fraction",
)


def test_bench_json_smoke(capsys):
    """Tiny windows: one JSON object with every documented figure, all finite and positive."""
    code = bench.main(
        [
            "--json",
            "--windows",
            "1",
            "--warmup",
            "0",
            "--window-steps",
            "1",
            "--batch-size",
            "16",
            "--decode-images",
            "64",
            "--decode-batch",
            "32",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    for key in REQUIRED:
        assert key in result, key
    for key in (
        "train_images_per_s",
        "reference_train_images_per_s",
        "speedup",
        "flops_per_image",
        "decode_images_per_s",
        "matmul_flops_per_s",
        "matmul_fraction",
    ):
        assert math.isfinite(result[key]) and result[key] > 0, (key, result[key])
    assert result["device_kind"] in ("cpu", "gpu")
    assert result["settings"]["batch_size"] == 16
    assert result["settings"]["train_images_per_window"] == 16
    assert len(result["windows"]["library"]) == len(result["windows"]["reference"]) == 1
    # The profiler's count of the real step agrees with the analytic count to a few percent.
    assert result["profiler_flops_per_image"] == pytest.approx(
        result["flops_per_image"], rel=0.1
    )


@pytest.mark.parametrize(
    "settings", [dict(windows=0), dict(warmup=-1), dict(batch_size=True)]
)
def test_bad_settings_are_one_line_errors(settings):
    values = dict(
        windows=1,
        warmup=0,
        window_steps=1,
        batch_size=8,
        decode_images=8,
        decode_batch=8,
    )
    values.update(settings)
    with pytest.raises(CvaeError, match="must be an integer"):
        bench.check_settings(**values)


def test_too_many_window_steps_is_a_clear_error(capsys):
    assert bench.main(["--window-steps", "100000", "--windows", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bench: error:") and "--window-steps" in err[-1]


def test_conv_flops_of_a_small_known_layer():
    """Conv2D 3x3, 4 -> 8 channels, on 5x5: 5*5 outputs x 3*3*4 inputs x 8 filters."""
    layer = keras.layers.Conv2D(8, 3, padding="same")
    assert flops.layer_macs(layer, (5, 5, 4)) == 5 * 5 * 3 * 3 * 4 * 8 == 7200
    strided = keras.layers.Conv2D(8, 3, strides=2, padding="same")
    assert flops.layer_macs(strided, (5, 5, 4)) == 3 * 3 * 3 * 3 * 4 * 8
    valid = keras.layers.Conv2D(8, 3, padding="valid")
    assert flops.layer_macs(valid, (5, 5, 4)) == 3 * 3 * 3 * 3 * 4 * 8
    # A transposed convolution is counted from its input pixels.
    transposed = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same")
    assert flops.layer_macs(transposed, (5, 5, 4)) == 5 * 5 * 3 * 3 * 4 * 8
    assert flops.layer_macs(keras.layers.Dense(3), (4,)) == 12
    assert flops.layer_macs(keras.layers.Flatten(), (5, 5, 4)) == 0


def test_training_flops_are_three_forward_passes():
    network = keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=(5, 5, 4)),
            keras.layers.Conv2D(8, 3, padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    counts = flops.training_flops_per_image([network])
    assert counts["macs_per_image"] == 7200 + 5 * 5 * 8 * 3
    assert counts["forward_flops_per_image"] == 2 * counts["macs_per_image"]
    assert counts["flops_per_image"] == 6 * counts["macs_per_image"]


def test_profiler_agrees_with_the_analytic_count():
    """TensorFlow's own count of a bare convolution is 2 x MACs."""
    kernel = tf.ones([3, 3, 4, 8])

    @tf.function
    def conv(x):
        return tf.nn.conv2d(x, kernel, 1, "SAME")

    traced = conv.get_concrete_function(tf.TensorSpec([1, 5, 5, 4]))
    assert flops.profiler_flops(traced) == 2 * 7200


def test_peak_rules():
    assert hardware.flops_per_cycle({"avx512f", "avx2", "fma"}) == (64, "AVX-512")
    assert hardware.flops_per_cycle({"avx", "avx2", "fma"}) == (32, "AVX2+FMA")
    assert hardware.flops_per_cycle({"avx"}) == (16, "AVX")
    assert hardware.flops_per_cycle(set()) == (8, "SSE")
    peak = hardware.cpu_peak(
        {"model": "x", "mhz": 2000.0, "flags": {"avx2", "fma"}}, cores=2
    )
    assert peak["peak_flops_per_s"] == 2 * 2000e6 * 32
    assert (
        hardware.cpu_peak({"model": "x", "mhz": None, "flags": set()}, cores=2)[
            "peak_flops_per_s"
        ]
        is None
    )
    assert hardware.gpu_peak("NVIDIA H100 80GB HBM3") == 67e12
    assert hardware.gpu_peak("NVIDIA H100 PCIe") == 51e12
    assert hardware.gpu_peak("NVIDIA A100-SXM4-40GB") == 19.5e12
    assert hardware.gpu_peak("Some Future GPU") is None


def test_cpuinfo_parsing(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(
        "processor\t: 0\nmodel name\t: Test CPU\ncpu MHz\t\t: 2500.000\nflags\t\t: fpu avx avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: Test CPU\n"
    )
    info = hardware.cpu_info(str(path))
    assert (
        info["model"] == "Test CPU"
        and info["mhz"] == 2500.0
        and {"avx2", "fma"} <= info["flags"]
    )


def test_matmul_rate_is_the_flops_of_the_product_over_its_time(monkeypatch):
    """2 n^3 FLOPs over the fastest timed product, from perf_counter readings."""
    import time as time_module

    ticks = iter([0.0, 2.0, 10.0, 11.0, 20.0, 24.0])  # three products: 2 s, 1 s, 4 s
    monkeypatch.setattr(time_module, "perf_counter", lambda: next(ticks))
    assert hardware.measure_matmul_rate(size=8, repeats=3) == pytest.approx(
        2 * 8**3 / 1.0
    )


def test_reference_decoder_is_plain_keras_with_the_same_weights():
    fast, plain = (
        make_decoder(ModelConfig()),
        reference_fit.plain_decoder(ModelConfig()),
    )
    assert (
        type(fast.layers[-1]) is PixelLogits
        and type(plain.layers[-1]) is keras.layers.Conv2D
    )
    for a, b in zip(fast.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    z = tf.random.normal([4, 2], seed=2)
    np.testing.assert_allclose(fast(z).numpy(), plain(z).numpy(), atol=1e-4)
