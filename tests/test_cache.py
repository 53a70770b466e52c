"""The one train-or-reuse mechanism (cvae_lib.store.cache): keys, the lock, and its three users.

Runs, the judge and evaluation reports are each made once: a second process (or
thread) that wants the same result waits on the directory's lock and then reuses it.
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_settings import save_npz

from cvae_lib import evaluate
from cvae_lib import judge as judge_lib
from cvae_lib.errors import CvaeError
from cvae_lib.store import cache, files
from cvae_lib.store.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parent.parent


def test_key_holds_format_code_and_plain_json_values():
    key = cache.key(
        "abc", settings={"k": 3, "shape": (28, 28)}, seed=np.int64(2).item()
    )
    assert key == {
        "cache_format": cache.CACHE_FORMAT,
        "code": "abc",
        "settings": {"k": 3, "shape": [28, 28]},
        "seed": 2,
    }


def test_matches_is_a_nested_subset():
    wanted = {"code": "x", "data": {"source": "sample", "fingerprint": "f"}}
    assert cache.matches({**wanted, "hardware": "cpu"}, wanted)
    assert cache.matches(
        {"code": "x", "data": {"source": "sample", "fingerprint": "f", "n": 5}}, wanted
    )
    assert not cache.matches(
        {"code": "x", "data": {"source": "sample"}}, wanted
    )  # fingerprint missing
    assert not cache.matches({"code": "y", "data": wanted["data"]}, wanted)
    assert not cache.matches(None, wanted) and not cache.matches([1], wanted)


def test_reuse_or_make_makes_once_and_says_why_it_remakes(tmp_path):
    store = {}
    reasons = []

    def read():
        return None if not store else (store["key"], lambda: store["value"])

    def make(reason):
        reasons.append(reason)
        store.update(key=wanted, value=len(reasons))
        return len(reasons)

    wanted = cache.key("code", n=1)
    assert cache.reuse_or_make(tmp_path, wanted, read, make) == (1, False)
    assert cache.reuse_or_make(tmp_path, wanted, read, make) == (1, True)
    wanted = cache.key("other code", n=1)
    assert cache.reuse_or_make(tmp_path, wanted, read, make) == (2, False)

    def damaged():
        raise CvaeError("judge.npz is corrupt")

    assert cache.reuse_or_make(tmp_path, wanted, damaged, make) == (3, False)
    assert reasons == [
        None,
        "it was made from other settings, data or code",
        "judge.npz is corrupt",
    ]


def test_if_exists_refuses_or_replaces_what_is_stored(tmp_path):
    store, wanted = {}, cache.key("code", n=1)

    def read():
        return None if not store else (store["key"], lambda: store["value"])

    def make(reason):
        store.update(key=wanted, value=store.get("value", 0) + 1)
        return store["value"]

    assert cache.reuse_or_make(tmp_path, wanted, read, make, if_exists="refuse") == (
        1,
        False,
    )  # nothing there
    with pytest.raises(
        CvaeError,
        match="already holds a finished result of these settings.*if_exists='replace'",
    ):
        cache.reuse_or_make(tmp_path, wanted, read, make, if_exists="refuse")
    with pytest.raises(CvaeError, match="already holds another run"):
        cache.reuse_or_make(
            tmp_path,
            cache.key("other code"),
            read,
            make,
            if_exists="refuse",
            noun="run",
        )
    assert cache.reuse_or_make(tmp_path, wanted, read, make, if_exists="replace") == (
        2,
        False,
    )
    assert cache.reuse_or_make(tmp_path, wanted, read, make) == (2, True)
    with pytest.raises(
        CvaeError, match="if_exists must be one of reuse, refuse, replace"
    ):
        cache.reuse_or_make(tmp_path, wanted, read, make, if_exists="keep")


def _in_thread(function):
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("value", function()), daemon=True
    )
    thread.start()
    return thread, result


def test_a_second_caller_waits_for_the_lock_then_reuses(tmp_path, capsys):
    store = {}
    wanted = cache.key("code")

    def make(reason):
        store["stored"] = (wanted, lambda: "made by the waiting thread")
        return store["stored"][1]()

    with files.locked(tmp_path):
        thread, result = _in_thread(
            lambda: cache.reuse_or_make(
                tmp_path, wanted, lambda: store.get("stored"), make
            )
        )
        time.sleep(0.5)
        assert thread.is_alive()  # blocked on the lock
        store["stored"] = (wanted, lambda: "made by the holder")
    thread.join(10)
    assert result["value"] == ("made by the holder", True)
    assert f"waiting for another process using {tmp_path}" in capsys.readouterr().err


def test_the_judge_cache_takes_the_lock(tmp_path, sample_digits, monkeypatch):
    digits = sample_digits.subset(200, 50)
    trained = []
    monkeypatch.setattr(
        judge_lib,
        "train_judge",
        lambda *a, **k: trained.append(1) or judge_lib.make_judge_network(),
    )
    directory = judge_lib.judge_directory(digits, 0, 1, root=tmp_path)
    with files.locked(directory):
        thread, result = _in_thread(
            lambda: judge_lib.load_or_train_judge(digits, epochs=1, root=tmp_path)
        )
        time.sleep(0.5)
        assert thread.is_alive() and trained == []
    thread.join(60)
    assert trained == [1] and isinstance(result["value"], judge_lib.Judge)
    judge_lib.load_or_train_judge(digits, epochs=1, root=tmp_path)
    assert trained == [1]  # reused


def test_the_evaluation_cache_takes_the_run_directory_lock(
    tmp_path, tiny_model, tiny_digits, monkeypatch
):
    judge = judge_lib.Judge(judge_lib.make_judge_network(), 0.5, {"fingerprint": "f"})
    calls = []
    monkeypatch.setattr(
        evaluate,
        "evaluate_model",
        lambda *a, **k: calls.append(1) or {"conditional_accuracy": 0.5},
    )
    with files.locked(tmp_path):
        thread, result = _in_thread(
            lambda: evaluate.cached_evaluation(
                tmp_path, tiny_model, tiny_digits, judge, progress="none", k=2
            )
        )
        time.sleep(0.5)
        assert thread.is_alive() and calls == []
    thread.join(60)
    assert result["value"] == ({"conditional_accuracy": 0.5}, False) and calls == [1]
    assert evaluate.cached_evaluation(
        tmp_path, tiny_model, tiny_digits, judge, progress="none", k=2
    )[1]


RACER = r"""
import pathlib, sys, time
sys.path.insert(0, sys.argv[4])
from tiny_settings import TINY_MODEL
from cvae_lib.config import TrainConfig
from cvae_lib.data import load_digits
from cvae_lib.store.runs import train_or_load

digits = load_digits(sys.argv[2])
go = pathlib.Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
_, _, reused = train_or_load(digits, sys.argv[1], model_config=TINY_MODEL,
                             train_config=TrainConfig(epochs=2, batch_size=64), progress="none")
print("reused" if reused else "trained", flush=True)
"""


def test_two_processes_train_one_run_once(tmp_path, tiny_digits):
    """Two processes start training the same run at the same moment: one trains, the other
    waits on the lock and then loads the finished run."""
    data = tmp_path / "digits.npz"
    digits = tiny_digits.subset(128, 50)
    save_npz(data, digits)
    out, go = tmp_path / "run", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RACER,
                str(out),
                str(data),
                str(go),
                str(REPO / "tests"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for racer in racers:
            assert racer.stdout.readline().strip() == "ready"
        go.touch()
        results = [racer.communicate(timeout=240) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in results]
    assert sorted(stdout.strip() for stdout, _ in results) == ["reused", "trained"]
    assert sum("waiting for another process" in err for _, err in results) == 1
    _, history = load_checkpoint(out)
    assert [r["epoch"] for r in history.epochs] == [1, 2]
