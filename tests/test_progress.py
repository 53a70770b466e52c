"""One progress report for every long loop: what it says, how often, and bad modes."""

from __future__ import annotations

import io

import pytest
from tiny_settings import TINY_MODEL

from cvae_lib import evaluate
from cvae_lib.config import TrainConfig
from cvae_lib.errors import CvaeError
from cvae_lib.model import ConditionalVAE
from cvae_lib.progress import Progress, check_mode
from cvae_lib.store import runs
from cvae_lib.train import train


def test_text_gives_done_elapsed_and_time_left():
    meter = Progress(10, "scoring", "digits", "lines")
    assert (
        meter.text(5, "loss 3.0", now=meter.start + 10)
        == "scoring: 5/10 digits, loss 3.0, 10 s, about 10 s left"
    )
    assert (
        meter.text(0, now=meter.start + 2)
        == "scoring: 0/10 digits, 2 s, time left unknown"
    )


def test_lines_are_throttled_but_the_last_report_always_comes():
    stream = io.StringIO()
    meter = Progress(3, "work", "items", "lines", stream, min_interval=3600)
    for done in (1, 2, 3):
        meter.update(done)
    assert stream.getvalue().count("\n") == 1  # 1 and 2 came too soon after the start
    assert stream.getvalue().startswith("work: 3/3 items")


def test_bar_redraws_in_place_and_ends_the_line():
    stream = io.StringIO()
    meter = Progress(4, "work", "items", "bar", stream, min_interval=0)
    for done in range(1, 5):
        meter.update(done)
    out = stream.getvalue()
    assert out.count("\r") == 4 and out.count("\n") == 1 and out.endswith("\n")
    assert f"\r[{'#' * 15}{'.' * 15}] work: 2/4 items" in out
    assert f"[{'#' * 30}] work: 4/4 items" in out


def test_none_prints_nothing():
    stream = io.StringIO()
    meter = Progress(2, "work", "items", "none", stream)
    meter.update(1)
    meter.update(2)
    assert stream.getvalue() == ""


def test_a_misspelt_mode_is_an_error_not_silence(tiny_digits):
    assert check_mode("bar") == "bar"
    with pytest.raises(
        CvaeError, match="progress must be 'bar', 'lines' or 'none', got 'bars'"
    ):
        Progress(1, "x", "y", "bars")
    model, settings = ConditionalVAE(TINY_MODEL), TrainConfig(epochs=1, batch_size=64)
    with pytest.raises(CvaeError, match="got 'Bar'"):
        train(model, tiny_digits.subset(64, 20), settings, progress="Bar")


def test_a_misspelt_mode_leaves_no_run_directory(tiny_digits, tmp_path):
    with pytest.raises(CvaeError, match="got 'Bar'"):
        runs.train_or_load(
            tiny_digits.subset(64, 20),
            tmp_path / "run",
            model_config=TINY_MODEL,
            train_config=TrainConfig(epochs=1, batch_size=64),
            progress="Bar",
        )
    assert not (tmp_path / "run").exists()


def test_importance_weighted_bound_reports_digits(tiny_model, tiny_digits):
    stream = io.StringIO()
    evaluate.importance_weighted_bound(
        tiny_model,
        tiny_digits.x_test[:8],
        tiny_digits.y_test[:8],
        k=4,
        progress="lines",
        stream=stream,
    )
    assert (
        stream.getvalue()
        .splitlines()[-1]
        .startswith("importance-weighted bound (k=4): 8/8 digits, ")
    )
