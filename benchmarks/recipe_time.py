"""Training time of the book's recipe against the first recipe, measured side by side.

    .venv/bin/python benchmarks/recipe_time.py --rounds 2

The first recipe (the class term on posterior samples, a constant learning rate of
3e-3, 20 epochs of batch 128) and the book's (the library's defaults: 30 epochs) are
trained in turn, ``--rounds`` times each, on the quick profile's 4,000 digits, so that
whatever else the machine does weighs on both alike. Prints each run's wall time of
:func:`cvae_lib.train.train` and the ratio of the means, with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import platform
import time

import cvae_lib  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from cvae_lib.config import ModelConfig, TrainConfig
from cvae_lib.data import load_digits
from cvae_lib.model import ConditionalVAE
from cvae_lib.train import train


def recipes(n_train: int) -> dict:
    """Name -> (model settings, schedule) of the two recipes compared."""
    first = (
        ModelConfig(class_codes="posterior"),
        TrainConfig.for_data(
            n_train, epochs=20, learning_rate=3e-3, lr_schedule="constant"
        ),
    )
    return {
        "first recipe": first,
        "book's recipe": (ModelConfig(), TrainConfig.for_data(n_train)),
    }


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    digits = load_digits("sample")
    seconds = {name: [] for name in recipes(len(digits.x_train))}
    for _ in range(args.rounds):
        for name, (model_config, schedule) in recipes(len(digits.x_train)).items():
            model = ConditionalVAE(model_config, seed=schedule.seed)
            started = time.perf_counter()
            train(model, digits, schedule, progress="none")
            seconds[name].append(time.perf_counter() - started)
            print(
                f"{name}: {schedule.epochs} epochs, {seconds[name][-1]:.1f} s",
                flush=True,
            )
    means = {name: sum(s) / len(s) for name, s in seconds.items()}
    print(f"CPU: {cpu_name()}")
    first, book = means["first recipe"], means["book's recipe"]
    print(f"ratio: {book / first:.2f} (means {book:.1f} s against {first:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
