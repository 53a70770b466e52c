"""Run-profile selection (cvae_lib.book): fast, no training, no real data."""

from __future__ import annotations

import numpy as np
import pytest

from cvae_lib import book as profiles
from cvae_lib.config import TrainConfig
from cvae_lib.data import Digits
from cvae_lib.errors import CvaeError
from cvae_lib.train import History


def fake_digits(n_train: int, source: str) -> Digits:
    x = np.zeros((n_train, 28, 28, 1), np.float32)
    y = np.arange(n_train, dtype=np.int32) % 10
    return Digits(x, y, x[:10], y[:10], source, f"{n_train} fake digits")


@pytest.fixture
def no_profile_env(monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)


@pytest.mark.parametrize("has_gpu, expected", [(True, "full"), (False, "quick")])
def test_auto_follows_the_gpu(no_profile_env, has_gpu, expected):
    assert profiles.resolve_profile(has_gpu=has_gpu) == expected
    assert profiles.resolve_profile("auto", has_gpu=has_gpu) == expected


@pytest.mark.parametrize("name", ["quick", "full"])
def test_explicit_profile_ignores_the_gpu(no_profile_env, name):
    assert profiles.resolve_profile(name, has_gpu=True) == name
    assert profiles.resolve_profile(name, has_gpu=False) == name


def test_environment_variable_selects_the_profile(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, " Full ")
    assert profiles.resolve_profile(has_gpu=False) == "full"
    monkeypatch.setenv(profiles.PROFILE_ENV, "")
    assert profiles.resolve_profile(has_gpu=True) == "full"
    assert profiles.resolve_profile(has_gpu=False) == "quick"


def test_argument_overrides_the_environment(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "full")
    assert profiles.resolve_profile("quick", has_gpu=True) == "quick"


def test_unknown_profile_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "fast")
    with pytest.raises(
        CvaeError,
        match=r"CVAE_PROFILE='fast' is not a run profile: choose one of quick, full, auto",
    ):
        profiles.resolve_profile(has_gpu=False)


def test_auto_without_argument_asks_tensorflow(no_profile_env):
    from cvae_lib.backend import GPUS

    assert profiles.resolve_profile() == ("full" if GPUS else "quick")


def test_quick_uses_the_library_defaults_and_the_budget_rule():
    digits = fake_digits(4000, "sample")
    config = profiles.profile_train_config("quick", digits)
    assert config == TrainConfig.for_data(len(digits.x_train))
    assert (config.epochs, config.batch_size) == (30, 128)


def test_full_is_the_reference_run():
    config = profiles.profile_train_config("full", fake_digits(60_000, "keras"))
    assert (config.epochs, config.batch_size) == (15, 256)
    assert config == TrainConfig.for_data(60_000)  # the budget rule's full run
    assert config.seed == TrainConfig().seed


@pytest.mark.parametrize("bad", ["auto", "other"])
def test_train_config_needs_a_concrete_profile(bad):
    with pytest.raises(CvaeError, match="'quick' or 'full'"):
        profiles.profile_train_config(bad, fake_digits(100, "sample"))


def test_run_directories_are_per_profile(tmp_path, monkeypatch):
    monkeypatch.delenv("CVAE_RUNS", raising=False)
    assert profiles.profile_directory("quick", tmp_path) == tmp_path / "quick-cvae"
    assert profiles.profile_directory("full", tmp_path) == tmp_path / "full-cvae"
    monkeypatch.setenv("CVAE_RUNS", str(tmp_path / "elsewhere"))
    assert profiles.profile_directory("quick") == tmp_path / "elsewhere" / "quick-cvae"
    with pytest.raises(CvaeError):
        profiles.profile_directory("auto", tmp_path)


class FakeLoader:
    """Stands in for load_digits; ``missing`` sources raise as an offline Keras would."""

    def __init__(self, missing=()):
        self.missing, self.calls = set(missing), []

    def __call__(self, source):
        self.calls.append(source)
        if source in self.missing:
            raise CvaeError(f"could not download MNIST ({source})")
        return fake_digits(60_000 if source == "keras" else 4000, source)


@pytest.mark.parametrize(
    "value, has_gpu, source",
    [
        ("quick", True, "sample"),
        ("full", False, "keras"),
        ("auto", True, "keras"),
        ("auto", False, "sample"),
    ],
)
def test_each_profile_loads_its_data(value, has_gpu, source):
    loader = FakeLoader()
    profile, digits = profiles.load_profile_digits(
        value, has_gpu=has_gpu, loader=loader
    )
    assert loader.calls == [source]
    assert digits.source == source
    assert profile == {"sample": "quick", "keras": "full"}[source]


def test_auto_falls_back_to_quick_when_full_mnist_is_missing(capsys):
    loader = FakeLoader(missing={"keras"})
    profile, digits = profiles.load_profile_digits("auto", has_gpu=True, loader=loader)
    assert (profile, digits.source, loader.calls) == (
        "quick",
        "sample",
        ["keras", "sample"],
    )
    assert "using the quick profile" in capsys.readouterr().err


def test_explicit_full_does_not_fall_back():
    loader = FakeLoader(missing={"keras"})
    with pytest.raises(CvaeError, match="could not download MNIST"):
        profiles.load_profile_digits("full", has_gpu=True, loader=loader)
    assert loader.calls == ["keras"]


def test_profile_model_reuses_a_finished_run(tmp_path, monkeypatch):
    """profile_model passes the profile's digits, settings and directory to train_or_load."""

    calls = []

    def fake_train_or_load(digits, out_dir, *, train_config, progress):
        calls.append((digits.source, out_dir, train_config, progress))
        return (
            "model",
            History([{"epoch": 1, "seconds": 2.5}, {"epoch": 2, "seconds": 1.5}]),
            True,
        )

    monkeypatch.setattr(profiles, "train_or_load", fake_train_or_load)
    fake = ("quick", fake_digits(4000, "sample"))
    monkeypatch.setattr(profiles, "load_profile_digits", lambda value, data=None: fake)
    run = profiles.profile_model(root=tmp_path, progress="none")
    assert calls == [("sample", tmp_path / "quick-cvae", run.train_config, "none")]
    assert (run.model, run.profile, run.reused, run.directory) == (
        "model",
        "quick",
        True,
        tmp_path / "quick-cvae",
    )
    assert run.training_seconds == 4.0


def test_the_full_profile_reads_mnist_files_when_given_a_path(monkeypatch, tmp_path):
    monkeypatch.delenv("CVAE_DATA", raising=False)
    assert (
        profiles.profile_data("full") == "keras"
        and profiles.profile_data("quick") == "sample"
    )
    assert profiles.profile_data("full", str(tmp_path)) == str(tmp_path)
    monkeypatch.setenv("CVAE_DATA", str(tmp_path / "mnist.npz"))
    assert profiles.profile_data("full") == str(tmp_path / "mnist.npz")
    assert (
        profiles.profile_data("quick") == "sample"
    )  # the quick profile is always the offline sample
    monkeypatch.setenv("CVAE_DATA", "sample")
    assert profiles.profile_data("full") == "keras"
    loader = FakeLoader()
    profiles.load_profile_digits(
        "full", has_gpu=True, loader=loader, data="/data/mnist"
    )
    assert loader.calls == ["/data/mnist"]


def test_the_book_prints_run_paths_without_the_machines_folders(monkeypatch, tmp_path):
    repository = profiles.Path(profiles.__file__).resolve().parents[1]
    monkeypatch.delenv("CVAE_RUNS", raising=False)
    assert (
        profiles.shown_path(repository / "_runs" / "quick-cvae") == "_runs/quick-cvae"
    )
    monkeypatch.setenv("CVAE_RUNS", str(tmp_path / "runs"))
    assert (
        profiles.shown_path(tmp_path / "runs" / "full-cvae") == "$CVAE_RUNS/full-cvae"
    )
    assert profiles.shown_path(tmp_path / "elsewhere" / "run") == "run"
    assert str(tmp_path) not in profiles.shown_path(profiles.profile_directory("quick"))
