"""The chapters' pytest plugin (``notebooks/conftest.py``): one TensorFlow thread per
chapter kernel when the xdist workers fill the cores, and never over a value the user set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "notebooks" / "conftest.py"


@pytest.fixture
def plugin():
    spec = importlib.util.spec_from_file_location("chapters_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("workers", "cores", "preset", "expected"),
    [
        ("2", 2, None, "1"),  # two workers on two cores: one thread each
        ("2", 8, None, None),  # cores to spare: TensorFlow's own choice
        (None, 2, None, None),  # no xdist
        ("2", 2, "3", "3"),  # the user's setting wins
    ],
)
def test_kernels_get_one_thread_only_when_workers_fill_the_cores(
    plugin, monkeypatch, workers, cores, preset, expected
):
    for name, value in (
        ("PYTEST_XDIST_WORKER_COUNT", workers),
        ("TF_NUM_INTRAOP_THREADS", preset),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(plugin.os, "cpu_count", lambda: cores)
    plugin._one_thread_per_kernel_when_workers_fill_the_cores()
    assert plugin.os.environ.get("TF_NUM_INTRAOP_THREADS") == expected
