"""Training and sampling speed: ``python benchmarks/bench.py [--json]``.

What it measures, in one process, on the same digits, batch size and networks:

``train_images_per_s``
    The library's training path: :func:`cvae_lib.train.train` itself, which times
    each epoch's step loop (validation excluded) and reports ``images_per_s``. Each
    epoch is one timing window; windows are whole epochs over
    ``window_steps x batch_size`` digits.
``reference_train_images_per_s``
    The reference recipe's path (``reference_fit.py``): Keras ``fit`` with
    TFP layers, one epoch per window. It runs *between* the library's epochs (from
    ``train``'s per-epoch callback), so the two alternate A B A B and share whatever
    load the machine has; ``speedup`` is the median of the per-pair ratios.
``flops_per_image`` and ``peak_fraction``
    Analytic training FLOPs per image (``flops.py``) and the share of the
    device's nominal FP32 peak (``hardware.py``) the library's speed reaches.
``matmul_flops_per_s`` and ``matmul_fraction``
    What a large float32 matrix product reaches on the same device, measured, and the
    share of it the library's training reaches: a ceiling that holds even where the
    clock-based peak is wrong (turbo).
``train_images_per_cpu_s``, ``reference_images_per_cpu_s``, ``cpu_speedup``
    The same per CPU-second used by this process: steadier than wall time when other
    jobs share the cores, but blind to how many cores a path keeps busy.
``decode_images_per_s``
    Sampling throughput: :func:`cvae_lib.sampling.decode_images` on many latent codes
    in large batches.

The first ``warmup`` windows of each path are discarded (tracing, kernel caches); the
figures are medians of the remaining ``windows``. Small ``--windows``/``--window-steps``
make it a smoke test that runs in seconds; the numbers are then meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parent)
)  # flops, hardware, reference_fit

from cvae_lib.errors import CvaeError  # noqa: E402

#: Test digits ``train`` validates on after each epoch (untimed; small, so the CPU-time
#: figures, which include it, are about the training steps).
VALIDATION_DIGITS = 256

DEFAULTS = {
    "windows": 5,
    "warmup": 2,
    "window_steps": 15,
    "batch_size": 256,
    "data": "sample",
    "decode_images": 20_480,
    "decode_batch": 2048,
}


def _median(values):
    return statistics.median(values) if values else float("nan")


def check_settings(
    windows: int,
    warmup: int,
    window_steps: int,
    batch_size: int,
    decode_images: int,
    decode_batch: int,
) -> None:
    """One clear error for a bad setting, before any TensorFlow work."""
    for name, value, least in (
        ("windows", windows, 1),
        ("warmup", warmup, 0),
        ("window_steps", window_steps, 1),
        ("batch_size", batch_size, 1),
        ("decode_images", decode_images, 1),
        ("decode_batch", decode_batch, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise CvaeError(f"{name} must be an integer >= {least}, got {value!r}")


def benchmark_training(
    digits,
    *,
    windows: int,
    warmup: int,
    batch_size: int,
    reference: bool = True,
    jit_compile: bool | None = None,
    stream=sys.stderr,
):
    """Alternate library epochs (``train``) and reference epochs.

    Returns (model, speeds): ``speeds`` maps ``library``, ``reference``,
    ``library_cpu`` and ``reference_cpu`` to one figure per timed window, in images
    per second and images per CPU-second of this process. The library's CPU time runs
    from one callback to the next, so it includes ``train``'s validation pass (kept
    small by :func:`run_benchmark`).
    """
    from reference_fit import ReferenceTrainer

    from cvae_lib.config import ModelConfig, TrainConfig
    from cvae_lib.model import ConditionalVAE
    from cvae_lib.train import train

    total = warmup + windows
    model = ConditionalVAE(ModelConfig())
    schedule = TrainConfig(epochs=total, batch_size=batch_size)
    trainer = (
        ReferenceTrainer(digits.x_train, digits.y_train, batch_size)
        if reference
        else None
    )
    speeds = {"library": [], "reference": [], "library_cpu": [], "reference_cpu": []}
    images_per_epoch = (len(digits.x_train) // batch_size) * batch_size
    cpu_mark = [time.process_time()]

    def after_epoch(_model, history):
        record = history.epochs[-1]
        timed = record["epoch"] > warmup
        library_cpu = time.process_time() - cpu_mark[0]
        line = (
            f"bench: window {record['epoch']}/{total}{'' if timed else ' (warm-up)'}: library "
            f"{record['images_per_s']:,.0f} img/s"
        )
        if timed:
            speeds["library"].append(record["images_per_s"])
            speeds["library_cpu"].append(images_per_epoch / library_cpu)
        if trainer is not None:
            start_cpu = time.process_time()
            images, seconds = trainer.epoch()
            reference_cpu = time.process_time() - start_cpu
            line += f", reference {images / seconds:,.0f} img/s"
            if timed:
                speeds["reference"].append(images / seconds)
                speeds["reference_cpu"].append(images / reference_cpu)
        print(line, file=stream, flush=True)
        cpu_mark[0] = time.process_time()

    train(
        model,
        digits,
        schedule,
        progress="none",
        jit_compile=jit_compile,
        callback=after_epoch,
    )
    return model, speeds


def benchmark_decoding(
    model, *, images: int, batch_size: int, windows: int, warmup: int = 1
):
    """Images/s of :func:`cvae_lib.sampling.decode_images` on ``images`` codes, per window."""
    import numpy as np

    from cvae_lib.sampling import decode_images

    rng = np.random.default_rng(0)
    z = rng.normal(size=(images, model.config.latent_dim)).astype(np.float32)
    labels = rng.integers(0, model.config.num_classes, size=images)
    speeds = []
    for window in range(warmup + windows):
        start = time.perf_counter()
        decode_images(model, z, labels, batch_size=batch_size)
        if window >= warmup:
            speeds.append(images / (time.perf_counter() - start))
    return speeds


def count_flops(model, batch_size: int) -> dict:
    """Analytic training FLOPs per image, and TensorFlow's profiler count of the traced step."""
    from flops import profiler_flops, training_flops_per_image

    from cvae_lib.backend import keras, tf
    from cvae_lib.train import make_train_step

    counts = training_flops_per_image(list(model.networks().values()))
    step = make_train_step(
        model, keras.optimizers.Adam(), keras.optimizers.Adam(), jit_compile=False
    )
    traced = step.get_concrete_function(
        tf.TensorSpec((batch_size,) + model.config.image_shape, tf.float32),
        tf.TensorSpec((batch_size,), tf.int32),
        tf.TensorSpec((2,), tf.int32),
    )
    counts["profiler_flops_per_image"] = profiler_flops(traced) / batch_size
    return counts


def run_benchmark(
    *,
    windows: int = DEFAULTS["windows"],
    warmup: int = DEFAULTS["warmup"],
    window_steps: int = DEFAULTS["window_steps"],
    batch_size: int = DEFAULTS["batch_size"],
    data: str = DEFAULTS["data"],
    decode_images: int = DEFAULTS["decode_images"],
    decode_batch: int = DEFAULTS["decode_batch"],
    reference: bool = True,
    stream=sys.stderr,
) -> dict:
    """Everything the module docstring lists, as one JSON-ready dict."""
    check_settings(
        windows, warmup, window_steps, batch_size, decode_images, decode_batch
    )
    from hardware import describe_device, measure_matmul_rate

    from cvae_lib.backend import tf
    from cvae_lib.data import load_digits
    from cvae_lib.train import default_jit_compile

    digits = load_digits(data)
    n_train = window_steps * batch_size
    if n_train > len(digits.x_train):
        raise CvaeError(
            f"{window_steps} steps of batch {batch_size} need {n_train:,} training digits; "
            f"{digits.source!r} has {len(digits.x_train):,}: lower --window-steps or use --data keras"
        )
    digits = digits.subset(n_train, min(len(digits.x_test), VALIDATION_DIGITS))
    load_before = os.getloadavg()
    model, speeds = benchmark_training(
        digits,
        windows=windows,
        warmup=warmup,
        batch_size=batch_size,
        reference=reference,
        stream=stream,
    )
    decode = benchmark_decoding(
        model, images=decode_images, batch_size=decode_batch, windows=windows
    )
    load_after = os.getloadavg()
    device = describe_device()
    matmul = measure_matmul_rate()
    flops = count_flops(model, batch_size)
    library, ref = speeds["library"], speeds["reference"]
    train_speed = _median(library)
    ref_speed = _median(ref)
    peak = device.get("peak_flops_per_s")
    achieved = train_speed * flops["flops_per_image"]
    return {
        "device": device["name"],
        "device_kind": device["kind"],
        "peak_flops_per_s": peak,
        "peak_rule": device.get("peak_rule"),
        "train_images_per_s": train_speed,
        "reference_train_images_per_s": ref_speed,
        "speedup": _median([a / b for a, b in zip(library, ref)]) if ref else None,
        "train_images_per_cpu_s": _median(speeds["library_cpu"]),
        "reference_images_per_cpu_s": _median(speeds["reference_cpu"]) if ref else None,
        "cpu_speedup": (
            _median(
                [a / b for a, b in zip(speeds["library_cpu"], speeds["reference_cpu"])]
            )
            if ref
            else None
        ),
        "flops_per_image": flops["flops_per_image"],
        "forward_flops_per_image": flops["forward_flops_per_image"],
        "profiler_flops_per_image": flops["profiler_flops_per_image"],
        "train_flops_per_s": achieved,
        "peak_fraction": achieved / peak if peak else None,
        "reference_peak_fraction": ref_speed * flops["flops_per_image"] / peak
        if peak and ref
        else None,
        "matmul_flops_per_s": matmul,
        "matmul_fraction": achieved / matmul,
        "reference_matmul_fraction": ref_speed * flops["flops_per_image"] / matmul
        if ref
        else None,
        "decode_images_per_s": _median(decode),
        "decode_batch_size": decode_batch,
        "windows": {**speeds, "decode": decode},
        "settings": {
            "windows": windows,
            "warmup": warmup,
            "window_steps": window_steps,
            "batch_size": batch_size,
            "data": digits.source,
            "train_images_per_window": n_train,
            "jit_compile": default_jit_compile(),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "load_average": {
            "before": round(load_before[0], 2),
            "after": round(load_after[0], 2),
        },
    }


def format_report(result: dict) -> str:
    """The human-readable summary printed without ``--json``."""

    def pct(value):
        return "n/a" if value is None else f"{100 * value:.0f}%"

    s = result["settings"]
    lines = [
        f"device: {result['device']}; peak {result['peak_flops_per_s'] / 1e9:,.0f} GFLOP/s ({result['peak_rule']})"
        if result["peak_flops_per_s"]
        else f"device: {result['device']}; peak unknown",
        f"float32 4096x4096 matmul reaches {result['matmul_flops_per_s'] / 1e9:,.0f} GFLOP/s on this device "
        f"(an attainable ceiling; the clock-based peak assumes no turbo)",
        f"load average (1 min): {result['load_average']['before']} before, {result['load_average']['after']} after",
        f"batch {s['batch_size']}, {s['windows']} timed windows of {s['window_steps']} steps "
        f"after {s['warmup']} warm-up, data {s['data']}, XLA {'on' if s['jit_compile'] else 'off'}",
        f"library training (cvae_lib.train):   {result['train_images_per_s']:8,.0f} images/s  "
        f"({pct(result['peak_fraction'])} of peak, {pct(result['matmul_fraction'])} of the matmul rate)",
    ]
    if result["speedup"] is not None:
        lines += [
            f"reference (Keras fit + TFP layers):  {result['reference_train_images_per_s']:8,.0f} images/s  "
            f"({pct(result['reference_peak_fraction'])} of peak, "
            f"{pct(result['reference_matmul_fraction'])} of the matmul rate)",
            f"speedup (median of paired windows):  {result['speedup']:8.2f}x",
            f"per CPU-second of this process: library {result['train_images_per_cpu_s']:,.0f}, reference "
            f"{result['reference_images_per_cpu_s']:,.0f} images, ratio {result['cpu_speedup']:.2f}x",
        ]
    lines += [
        f"training FLOPs per image: {result['flops_per_image'] / 1e6:.1f} M analytic (3 x forward), "
        f"{result['profiler_flops_per_image'] / 1e6:.1f} M by TensorFlow's profiler",
        f"decoding (sampling) at batch {result['decode_batch_size']}: {result['decode_images_per_s']:,.0f} images/s",
    ]
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_count(parser: argparse.ArgumentParser, flag: str, help=None) -> None:
    """A positive whole-number option ``--a-name``, its default ``DEFAULTS["a_name"]``."""
    parser.add_argument(
        flag,
        type=_positive_int,
        default=DEFAULTS[flag.removeprefix("--").replace("-", "_")],
        help=help,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead of the summary",
    )
    _add_count(parser, "--windows", "timed windows per path")
    parser.add_argument(
        "--warmup", type=int, default=DEFAULTS["warmup"], help="untimed windows first"
    )
    _add_count(
        parser,
        "--window-steps",
        "training steps per window (one epoch over that many batches)",
    )
    _add_count(parser, "--batch-size")
    parser.add_argument(
        "--data", choices=("sample", "keras", "auto"), default=DEFAULTS["data"]
    )
    _add_count(parser, "--decode-images", "latent codes decoded per sampling window")
    _add_count(parser, "--decode-batch")
    parser.add_argument(
        "--no-reference", action="store_true", help="time the library only"
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run_benchmark(
            windows=args.windows,
            warmup=args.warmup,
            window_steps=args.window_steps,
            batch_size=args.batch_size,
            data=args.data,
            decode_images=args.decode_images,
            decode_batch=args.decode_batch,
            reference=not args.no_reference,
        )
    except CvaeError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
