"""Sizes of the tiny models the tests train, and the small helpers several test files share.

A module of its own, not conftest.py: the notebooks' conftest.py is also imported as
a top-level ``conftest`` when pytest collects both folders, so ``from conftest
import ...`` could find the wrong one.
"""

import cvae_lib  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from cvae_lib.config import ModelConfig, TrainConfig

#: The model size the tests train: the reference layout with 2 base channels.
TINY_MODEL = ModelConfig(base_depth=2)
#: Two short epochs of batch 128.
TINY_TRAIN = TrainConfig(epochs=2, batch_size=128)


def finished_run(out_dir, digits, model_config, train_config, model_class=None) -> bool:
    """True if ``out_dir`` holds a finished run with exactly these settings, data and code."""
    from cvae_lib.model import ConditionalVAE
    from cvae_lib.store.runs import run_key, run_state

    wanted = run_key(digits, model_config, train_config, model_class or ConditionalVAE)
    return run_state(out_dir, wanted) == "finished"


def save_npz(path, digits) -> None:
    """Write ``digits`` to ``path`` as an MNIST-format .npz (what ``--data PATH`` reads)."""
    import numpy as np

    np.savez(
        path,
        x_train=digits.x_train,
        y_train=digits.y_train,
        x_test=digits.x_test,
        y_test=digits.y_test,
    )


def library_environment() -> dict:
    """The environment for a child process that runs the library as a user would: the
    repository importable, and TensorFlow's log as quiet as the library keeps it (a
    ``TF_CPP_MIN_LOG_LEVEL`` or ``CVAE_VERBOSE_TF`` set in the caller's shell would let
    TensorFlow's own lines into the output the tests count)."""
    import os
    from pathlib import Path

    loud = ("TF_CPP_MIN_LOG_LEVEL", "CVAE_VERBOSE_TF")
    env = {k: v for k, v in os.environ.items() if k not in loud}
    return {**env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
