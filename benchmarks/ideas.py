"""Which speed ideas pay: each one timed against the library's step, in alternating windows.

    nice -n 5 .venv/bin/python benchmarks/ideas.py [--windows 5] [--warmup 2] [--only xla,threads-2x1]
    nice -n 5 .venv/bin/python benchmarks/ideas.py --in-process --only iterator-in-step,reference
    .venv/bin/python benchmarks/ideas.py --check      # folded convolutions == Keras layers

Every training idea runs in its own worker process (thread settings are per process), next to
a worker running the baseline: the library's step as :func:`cvae_lib.train.train` runs it (no XLA on CPU, one
``float()`` per step, TensorFlow's default threads). The parent alternates one epoch
of the baseline and one of the idea (A B A B), so both see the same machine load,
and reports medians and the median of the paired ratios, in images per second and
in images per CPU-second of the worker (steadier when other jobs share the cores,
but blind to how many cores a variant keeps busy). The non-training ideas
(evaluation and decoding batch sizes, the input pipeline alone) are timed in one
worker, alternating in the same way. ``--in-process`` builds the baseline and the
chosen ideas in one process instead (same thread pools; only ideas without
per-process settings).

Results are printed as a Markdown table for ``benchmarks/README.md`` and, with
``--json PATH``, written to a file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> what the idea changes against the baseline.
TRAINING_IDEAS = {
    "xla": "XLA (`jit_compile=True`) for the training step",
    "device-sums": "sum the step's losses on the device (`run_epoch` here), read once per epoch",
    "threads-2x1": "thread settings: intra-op 2, inter-op 1",
    "threads-1x1": "thread settings: intra-op 1, inter-op 1",
    "folded-conv": "every stride-2 / transposed / thin convolution rewritten exactly (`benchmarks/folded_conv.py`)",
    "folded-thin-conv": "only the 1-channel convolutions (first and last) rewritten exactly",
    "iterator-in-step": "the step pulls its batch from the iterator inside the graph (as Keras `fit` does)",
    "epoch-in-graph": "the whole epoch's loop inside one `tf.function` (no Python per step)",
    "batches-in-memory": "each epoch's batches drawn from `tf.data` at its start (timed), then the steps run",
    "binarize-in-pipeline": "binarisation in the `tf.data` pipeline (`map`) instead of in the step",
    "reference": "the reference recipe: Keras `fit` with TFP layers",
}
BATCH = 256
WINDOW_STEPS = 15


# --------------------------------------------------------------------------- workers


def run_epoch(step, dataset, seed: int, epoch: int) -> tuple[float, float, int]:
    """The "device-sums" idea: one pass, (mean reconstruction, mean KL, number of steps).

    The running sums stay on the device and are read once at the end, so the host
    never waits for a step to finish before queueing the next one (on a GPU a
    ``float()`` per step would serialise the two). Each step gets its own seed,
    ``(seed, epoch * 100000 + i)``, so runs are reproducible.
    """
    from cvae_lib.backend import tf

    total = tf.zeros([2])
    steps = 0
    for i, (x, y) in enumerate(dataset):
        recon, kl, _ = step(x, y, tf.constant([seed, epoch * 100_000 + i], tf.int32))
        total += tf.stack([recon, kl])
        steps += 1
    if steps == 0:
        return float("nan"), float("nan"), 0
    recon, kl = (total / steps).numpy().tolist()
    return recon, kl, steps


def _digits():
    from cvae_lib.data import load_digits

    return load_digits("sample").subset(WINDOW_STEPS * BATCH, 1000)


class _Folded:
    """A Sequential network evaluated with folded convolutions (see folded_conv.py)."""

    def __init__(self, network, thin_only: bool):
        self.network, self.thin_only = network, thin_only

    @property
    def trainable_variables(self):
        return self.network.trainable_variables

    def __call__(self, x, **kwargs):
        sys.path.insert(0, str(HERE))
        import folded_conv

        for layer in self.network.layers:
            plan = folded_conv.fold_plan(layer, x.shape)
            if (
                plan is not None
                and self.thin_only
                and not (plan.in_phases == 2 and plan.out_phases == 2)
            ):
                plan = None
            x = plan(x) if plan is not None else layer(x)
        return x


def _library_window_fn(idea: str):
    """Build the model and step for ``idea`` and return ``window(epoch) -> (images, seconds)``."""
    import numpy as np

    from cvae_lib.backend import keras, tf
    from cvae_lib.config import ModelConfig, TrainConfig
    from cvae_lib.data import training_dataset
    from cvae_lib.model import ConditionalVAE
    from cvae_lib.train import make_train_step

    digits = _digits()
    config = TrainConfig(batch_size=BATCH)
    model = ConditionalVAE(ModelConfig(), config)
    if idea.startswith("folded"):
        model.encoder = _Folded(model.encoder, idea == "folded-thin-conv")
        model.decoder = _Folded(model.decoder, idea == "folded-thin-conv")
    in_pipeline = idea == "binarize-in-pipeline"
    step = make_train_step(
        model,
        keras.optimizers.Adam(config.learning_rate),
        keras.optimizers.Adam(config.prior_learning_rate),
        jit_compile=idea == "xla",
        binarize_input=config.binarize and not in_pipeline,
    )
    dataset = training_dataset(digits.x_train, digits.y_train, BATCH, 0)
    if in_pipeline:
        dataset = dataset.map(
            lambda x, y: (tf.cast(tf.random.uniform(tf.shape(x)) < x, x.dtype), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    @tf.function
    def pull_and_step(iterator, seed):
        x, y = next(iterator)
        return step(x, y, seed)

    @tf.function
    def whole_epoch(epoch):
        total, count = tf.zeros([2]), tf.constant(0)
        for x, y in dataset:
            recon, kl, _ = step(x, y, tf.stack([0, epoch * 100_000 + count]))
            total += tf.stack([recon, kl])
            count += 1
        return total / tf.cast(count, tf.float32)

    def window(epoch):
        start = time.perf_counter()
        if idea == "device-sums":
            _, _, steps = run_epoch(step, dataset, 0, epoch)
        elif idea == "batches-in-memory":
            sums, steps = np.zeros(2), 0
            for i, (x, y) in enumerate(list(dataset)):
                recon, kl, _ = step(
                    x, y, tf.constant([0, epoch * 100_000 + i], tf.int32)
                )
                sums += [float(recon), float(kl)]
                steps += 1
        elif idea == "epoch-in-graph":
            whole_epoch(tf.constant(epoch)).numpy()
            steps = WINDOW_STEPS
        elif idea == "iterator-in-step":
            iterator, sums = iter(dataset), np.zeros(2)
            for i in range(WINDOW_STEPS):
                recon, kl, _ = pull_and_step(
                    iterator, tf.constant([0, epoch * 100_000 + i], tf.int32)
                )
                sums += [float(recon), float(kl)]
            steps = WINDOW_STEPS
        else:  # cvae_lib.train.train's loop
            sums = np.zeros(2)
            steps = 0
            for i, (x, y) in enumerate(dataset):
                recon, kl, _ = step(
                    x, y, tf.constant([0, epoch * 100_000 + i], tf.int32)
                )
                sums += [float(recon), float(kl)]
                steps += 1
        return steps * BATCH, time.perf_counter() - start

    return window


def _reference_window_fn():
    sys.path.insert(0, str(HERE))
    from reference_fit import ReferenceTrainer

    digits = _digits()
    trainer = ReferenceTrainer(digits.x_train, digits.y_train, BATCH)
    return lambda epoch: trainer.epoch()


def _worker(idea: str) -> None:
    """Serve windows on stdin/stdout: one line in, one JSON line out."""
    from cvae_lib.backend import tf

    if idea.startswith("threads-"):
        intra, inter = (int(v) for v in idea.split("-")[1].split("x"))
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    window = _reference_window_fn() if idea == "reference" else _library_window_fn(idea)
    print("ready", flush=True)
    for line in sys.stdin:
        cpu = time.process_time()
        images, seconds = window(int(line))
        print(
            json.dumps(
                {
                    "images": images,
                    "seconds": seconds,
                    "cpu_seconds": time.process_time() - cpu,
                }
            ),
            flush=True,
        )


def _inference_worker(windows: int, warmup: int) -> None:
    """Evaluation and decoding batch sizes, and the input pipeline alone, alternating."""
    import numpy as np

    from cvae_lib.backend import tf
    from cvae_lib.config import ModelConfig, TrainConfig
    from cvae_lib.data import evaluation_dataset, training_dataset
    from cvae_lib.model import ConditionalVAE
    from cvae_lib.sampling import decode_images
    from cvae_lib.train import make_eval_step

    digits = _digits()
    model = ConditionalVAE(ModelConfig(), TrainConfig())
    eval_step = make_eval_step(model, jit_compile=False)
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(16_384, 2)).astype(np.float32)
    labels = rng.integers(0, 10, size=len(codes))

    def evaluate(batch):
        def run():
            for i, (x, y) in enumerate(
                evaluation_dataset(digits.x_test, digits.y_test, batch)
            ):
                float(tf.reduce_sum(eval_step(x, y, tf.constant([0, i], tf.int32))[0]))
            return len(digits.x_test)

        return run

    def decode(batch):
        return lambda: (
            decode_images(model, codes, labels, batch_size=batch),
            len(codes),
        )[1]

    def pipeline():
        count = 0
        for x, _ in training_dataset(digits.x_train, digits.y_train, BATCH, 0):
            count += int(x.shape[0])
        return count

    cases = {
        "evaluation, batch 256": evaluate(256),
        "evaluation, batch 1000": evaluate(1000),
        "decoding, batch 256": decode(256),
        "decoding, batch 2048": decode(2048),
        "decoding, batch 8192": decode(8192),
        "input pipeline alone": pipeline,
    }
    speeds = {name: {"wall": [], "cpu": []} for name in cases}
    for window in range(warmup + windows):
        for name, run in cases.items():
            start, cpu = time.perf_counter(), time.process_time()
            images = run()
            if window >= warmup:
                speeds[name]["wall"].append(images / (time.perf_counter() - start))
                speeds[name]["cpu"].append(images / (time.process_time() - cpu))
    print(json.dumps(speeds), flush=True)


# --------------------------------------------------------------------------- parent


def _spawn(idea: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", idea],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"worker {idea!r} failed to start (said {line!r})")
    return process


def _window(process, epoch: int) -> tuple[float, float]:
    """(images per second, images per CPU-second of the worker process) for one window."""
    process.stdin.write(f"{epoch}\n")
    process.stdin.flush()
    result = json.loads(process.stdout.readline())
    return result["images"] / result["seconds"], result["images"] / result[
        "cpu_seconds"
    ]


def _stop(process) -> None:
    process.stdin.close()
    process.wait(timeout=60)


def time_idea(idea: str, baseline, windows: int, warmup: int) -> dict:
    """Alternate baseline and idea windows; medians and the median paired ratio."""
    worker = _spawn(idea)
    try:
        before, after, before_cpu, after_cpu = [], [], [], []
        for epoch in range(warmup + windows):
            b, b_cpu = _window(baseline, 1000 + epoch)
            a, a_cpu = _window(worker, 1000 + epoch)
            if epoch >= warmup:
                before.append(b)
                after.append(a)
                before_cpu.append(b_cpu)
                after_cpu.append(a_cpu)
            print(
                f"ideas: {idea} window {epoch + 1}: baseline {b:,.0f} img/s ({b_cpu:,.0f} per CPU-s), "
                f"idea {a:,.0f} img/s ({a_cpu:,.0f} per CPU-s)",
                file=sys.stderr,
                flush=True,
            )
    finally:
        _stop(worker)
    return {
        "idea": idea,
        "what": TRAINING_IDEAS[idea],
        "before": statistics.median(before),
        "after": statistics.median(after),
        "ratio": statistics.median(a / b for a, b in zip(after, before)),
        "cpu_ratio": statistics.median(a / b for a, b in zip(after_cpu, before_cpu)),
        "before_windows": before,
        "after_windows": after,
        "before_cpu_windows": before_cpu,
        "after_cpu_windows": after_cpu,
    }


#: Ideas that can share one process with the baseline (no per-process settings).
IN_PROCESS_IDEAS = (
    "device-sums",
    "iterator-in-step",
    "epoch-in-graph",
    "batches-in-memory",
    "binarize-in-pipeline",
    "folded-conv",
    "folded-thin-conv",
    "reference",
)


def time_in_process(ideas: list, windows: int, warmup: int) -> list:
    """The baseline and ``ideas`` built in this one process, one window each in turn."""
    names = ["baseline"] + ideas
    runs = {
        name: _reference_window_fn()
        if name == "reference"
        else _library_window_fn(name)
        for name in names
    }
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for epoch in range(warmup + windows):
        for name, window in runs.items():
            start = time.process_time()
            images, seconds = window(1000 + epoch)
            if epoch >= warmup:
                wall[name].append(images / seconds)
                cpu[name].append(images / (time.process_time() - start))
        print(
            f"ideas: in-process round {epoch + 1}: "
            + ", ".join(f"{n} {wall[n][-1]:,.0f}" for n in names if wall[n]),
            file=sys.stderr,
            flush=True,
        )
    return [
        {
            "idea": name,
            "what": TRAINING_IDEAS[name],
            "before": statistics.median(wall["baseline"]),
            "after": statistics.median(wall[name]),
            "ratio": statistics.median(
                a / b for a, b in zip(wall[name], wall["baseline"])
            ),
            "cpu_ratio": statistics.median(
                a / b for a, b in zip(cpu[name], cpu["baseline"])
            ),
            "before_windows": wall["baseline"],
            "after_windows": wall[name],
            "before_cpu_windows": cpu["baseline"],
            "after_cpu_windows": cpu[name],
        }
        for name in ideas
    ]


def markdown(training: list, inference: dict | None) -> str:
    lines = (
        [
            "| idea | baseline images/s | with the idea | paired ratio | ratio per CPU-second |",
            "|---|---:|---:|---:|---:|",
        ]
        if training
        else []
    )
    for row in training:
        lines.append(
            f"| {row['what']} | {row['before']:,.0f} | {row['after']:,.0f} | {row['ratio']:.2f}x "
            f"| {row['cpu_ratio']:.2f}x |"
        )
    if inference:
        lines += [
            "",
            "| inference case | images/s (median) | images per CPU-second |",
            "|---|---:|---:|",
        ]
        for name, speeds in inference.items():
            lines.append(
                f"| {name} | {statistics.median(speeds['wall']):,.0f} "
                f"| {statistics.median(speeds['cpu']):,.0f} |"
            )
    return "\n".join(lines)


def check_folded() -> float:
    """Largest |difference| between folded and Keras layers over many shapes (float32)."""
    import itertools

    import numpy as np

    sys.path.insert(0, str(HERE))
    import folded_conv

    from cvae_lib.backend import keras, tf

    rng = np.random.default_rng(0)
    worst = 0.0
    for transpose, stride, k, split, c_in, c_out, n in itertools.product(
        [False, True], [1, 2], [3, 5], [False, True], [1, 3], [1, 4], [6, 8]
    ):
        if split and (transpose or stride == 2):
            continue
        layer_class = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
        layer = layer_class(
            c_out,
            k,
            stride,
            "same",
            activation=tf.nn.leaky_relu,
            bias_initializer="glorot_uniform",
        )
        x = tf.constant(rng.normal(size=(2, n, n, c_in)), tf.float32)
        expected = layer(x)
        got = folded_conv.FoldedConv(layer, split)(x)
        assert got.shape == expected.shape, (
            layer.get_config(),
            got.shape,
            expected.shape,
        )
        worst = max(worst, float(tf.reduce_max(tf.abs(got - expected))))
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated ideas (default: all, then inference)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help=f"run the baseline and the ideas in this one process ({', '.join(IN_PROCESS_IDEAS)})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check folded convolutions against Keras and exit",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--inference-worker", action="store_true", help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    if args.inference_worker:
        _inference_worker(args.windows, args.warmup)
        return 0
    if args.check:
        print(
            f"folded convolutions: largest difference from Keras {check_folded():.2e}"
        )
        return 0
    chosen = [name for name in args.only.split(",") if name] or list(TRAINING_IDEAS) + [
        "inference"
    ]
    unknown = set(chosen) - set(TRAINING_IDEAS) - {"inference"}
    if unknown:
        parser.error(
            f"unknown ideas: {', '.join(sorted(unknown))}; choose from {', '.join(TRAINING_IDEAS)}, inference"
        )
    import os

    started = {
        "load_average": os.getloadavg()[0],
        "time": time.strftime("%Y-%m-%d %H:%M"),
    }
    training, inference = [], None
    ideas = [name for name in chosen if name != "inference"]
    if ideas and args.in_process:
        if set(ideas) - set(IN_PROCESS_IDEAS):
            parser.error(f"--in-process takes only {', '.join(IN_PROCESS_IDEAS)}")
        training = time_in_process(ideas, args.windows, args.warmup)
    elif ideas:
        baseline = _spawn("baseline")
        try:
            for idea in ideas:
                training.append(time_idea(idea, baseline, args.windows, args.warmup))
        finally:
            _stop(baseline)
    if "inference" in chosen:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--inference-worker",
                "--windows",
                str(args.windows),
                "--warmup",
                str(args.warmup),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        inference = json.loads(out.stdout.strip().splitlines()[-1])
    result = {
        "started": started,
        "finished_load_average": os.getloadavg()[0],
        "training": training,
        "inference": inference,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(markdown(training, inference))
    print(
        f"\nload average (1 min): {started['load_average']:.2f} at start, "
        f"{result['finished_load_average']:.2f} at the end ({started['time']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
