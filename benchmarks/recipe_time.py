"""Training time of the book's recipe against the first recipe's, measured side by side.

    .venv/bin/python benchmarks/recipe_time.py --epochs 6

The first recipe (the class term on posterior samples, a constant learning rate of
3e-3, 20 epochs of batch 128) and the book's (the library's defaults: 30 epochs) differ
in how many epochs they train, and perhaps in what an epoch costs. One-epoch trainings
of each, taken in turn (``--epochs`` of each, after one of each to warm up), give the
cost of an epoch under whatever else the machine is doing, alike for both; a run's time
is its epochs times that. Prints both, their ratio, and the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import cvae_lib  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from cvae_lib.config import ModelConfig, TrainConfig
from cvae_lib.data import load_digits
from cvae_lib.model import ConditionalVAE
from cvae_lib.train import train


def recipes(n_train: int) -> dict:
    """Name -> (model settings, schedule) of the two recipes compared."""
    first = TrainConfig.for_data(
        n_train, epochs=20, learning_rate=3e-3, lr_schedule="constant"
    )
    return {
        "first recipe": (ModelConfig(class_codes="posterior"), first),
        "book's recipe": (ModelConfig(), TrainConfig.for_data(n_train)),
    }


def epoch_seconds(model_config, schedule, digits) -> float:
    """Wall time of :func:`cvae_lib.train.train` for one epoch of this recipe (its
    warm-up's first epoch: the same steps as any other)."""
    one = dataclasses.replace(schedule, epochs=1, warmup_fraction=0.0)
    model = ConditionalVAE(model_config, seed=schedule.seed)
    started = time.perf_counter()
    train(model, digits, one, progress="none")
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args(argv)
    digits = load_digits("sample")
    compared = recipes(len(digits.x_train))
    seconds = {name: [] for name in compared}
    for i in range(args.epochs + 1):
        for name, (model_config, schedule) in compared.items():
            took = epoch_seconds(model_config, schedule, digits)
            if i:  # the first of each warms up the process
                seconds[name].append(took)
    runs = {}
    for name, (_, schedule) in compared.items():
        per_epoch = sorted(seconds[name])[len(seconds[name]) // 2]  # the median
        runs[name] = schedule.epochs * per_epoch
        print(
            f"{name}: {per_epoch:.2f} s per epoch x {schedule.epochs} = {runs[name]:.0f} s"
        )
    ratio = runs["book's recipe"] / runs["first recipe"]
    from hardware import describe_device  # benchmarks/, beside this script

    device = describe_device()["name"]
    print(f"ratio {ratio:.2f} on {device}, {len(seconds['first recipe'])} epochs each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
