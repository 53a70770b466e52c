"""The idle stall at the end of an epoch: deleting a ``tf.data`` iterator with the autotuner on.

    nice -n 5 .venv/bin/python benchmarks/iterator_stall.py [--epochs 14] [--json PATH]

Runs the library's training step (as :func:`cvae_lib.train.train` builds it) over 15
batches of 256 digits per epoch, once through the pipeline as ``cvae_lib.data`` builds
it (:func:`cvae_lib.data.prefetched`: autotuner off) and once through the same pipeline
with ``prefetch(AUTOTUNE)`` and the autotuner on (what the library did before), and
times, per epoch, the steps and the deletion of the epoch's iterator. A deletion over
0.1 s counts as a stall. This is what the benchmark's old "one-core epochs" were.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

STEPS, BATCH = 15, 256


def run(autotune: bool, epochs: int) -> dict:
    from cvae_lib.backend import keras, tf
    from cvae_lib.config import ModelConfig, TrainConfig
    from cvae_lib.data import load_digits, training_dataset
    from cvae_lib.model import ConditionalVAE
    from cvae_lib.train import make_train_step

    digits = load_digits("sample").subset(STEPS * BATCH, 256)
    model = ConditionalVAE(ModelConfig(), TrainConfig())
    step = make_train_step(
        model,
        keras.optimizers.Adam(1e-3),
        keras.optimizers.Adam(1e-3),
        jit_compile=False,
    )
    if autotune:
        dataset = tf.data.Dataset.from_tensor_slices((digits.x_train, digits.y_train))
        dataset = dataset.shuffle(len(digits.x_train), seed=0).batch(
            BATCH, drop_remainder=True
        )
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    else:
        dataset = training_dataset(digits.x_train, digits.y_train, BATCH, 0)
    steps_s, delete_s = [], []
    for epoch in range(epochs):
        iterator = iter(dataset)
        start = time.perf_counter()
        for i, (x, y) in enumerate(iterator):
            float(step(x, y, tf.constant([0, epoch * 1000 + i]))[0])
        mid = time.perf_counter()
        del iterator, x, y
        delete_s.append(time.perf_counter() - mid)
        steps_s.append(mid - start)
    steps_s, delete_s = steps_s[2:], delete_s[2:]  # first two: tracing, caches
    return {
        "autotune": autotune,
        "epochs": len(steps_s),
        "stalls": sum(d > 0.1 for d in delete_s),
        "stall_seconds": [round(d, 3) for d in delete_s if d > 0.1],
        "median_step_images_per_s": STEPS * BATCH / statistics.median(steps_s),
        "overall_images_per_s": STEPS
        * BATCH
        * len(steps_s)
        / (sum(steps_s) + sum(delete_s)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = [run(autotune, args.epochs + 2) for autotune in (True, False)]
    for r in results:
        print(
            f"autotuner {'on ' if r['autotune'] else 'off'}: {r['stalls']}/{r['epochs']} epochs ended in a stall "
            f"({', '.join(f'{s:.2f}' for s in r['stall_seconds']) or 'none'} s); steps "
            f"{r['median_step_images_per_s']:,.0f} images/s (median), all epochs with the deletions "
            f"{r['overall_images_per_s']:,.0f} images/s"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
