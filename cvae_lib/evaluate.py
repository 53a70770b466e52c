"""Does the model generate the digit it is asked for, and how well does it model the test digits?
:func:`evaluate_model` measures both: the judge (:mod:`cvae_lib.judge`) on generated and reconstructed
digits, the test negative ELBO and its importance-weighted bound (Burda et al., 2016), the classes' spacing."""

import contextlib
import hashlib
import json
import math
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from .backend import GPUS, tf
from .data import (
    RECORDED_SOURCES,
    Digits,
    array_digest,
    fixed_binarization,
    load_digits,
)
from .errors import CvaeError, check_positive_int
from .prior import closest_pair
from .progress import Progress
from .sampling import class_separation, reconstructions, sample_images
from .store import cache
from .store.files import atomic_write_text, read_json
from .store.fingerprint import NOT_EVALUATION, code_fingerprint
from .train import default_jit_compile, evaluate_elbo, make_eval_step

#: Importance samples per digit: the cost grows like k, the gain shrinks.
DEFAULT_K = 1000
#: Generated digits per class: a binomial standard error under 1 point on the average.
DEFAULT_PER_CLASS = 500
#: Decoder passes per compiled call of the bound (some 200 MB of activations).
DEFAULT_CHUNK = 2048


@dataclass
class ConditionalAccuracy:
    """Judge's verdict on generated digits: ``confusion[c, j]`` counts those of class c labelled j."""

    accuracy: float
    per_class: np.ndarray
    confusion: np.ndarray
    samples_per_class: int


def conditional_accuracy(
    model, judge, per_class: int = DEFAULT_PER_CLASS, seed: int = 0
) -> ConditionalAccuracy:
    """Share of digits generated for class y (z ~ generation_prior(y), mean image) judged y;
    ``judge`` has ``labels(images) -> int array``, like :class:`cvae_lib.judge.Judge`."""
    samples = sample_images(
        model, per_class, seed=seed
    )  # (classes, per_class, height, width)
    classes = samples.shape[0]
    predicted = np.asarray(
        judge.labels(samples.reshape(-1, *samples.shape[2:]))
    ).reshape(classes, per_class)
    width = max(classes, int(predicted.max()) + 1)
    confusion = np.stack([np.bincount(row, minlength=width) for row in predicted])
    per_class_accuracy = confusion[np.arange(classes), np.arange(classes)] / per_class
    return ConditionalAccuracy(
        float(per_class_accuracy.mean()), per_class_accuracy, confusion, per_class
    )


def judged_per_class(judge, images, labels) -> np.ndarray:
    """The share of each class's ``images`` that ``judge`` labels as that class."""
    right = np.asarray(judge.labels(images)) == labels
    return np.array([right[labels == c].mean() for c in np.unique(labels)])


def reconstruction_accuracy(model, judge, digits: Digits, batch_size: int = 1000):
    """``(accuracy, per_class)``: the judge on the model's reconstructions of the scored test
    digits, what its decoder draws from a real digit's code (mean of the per-class shares)."""
    x, y = scored_digits(model, digits)
    drawn = [
        reconstructions(model, x[i : i + batch_size], y[i : i + batch_size])
        for i in range(0, len(x), batch_size)
    ]
    per_class = judged_per_class(judge, np.concatenate(drawn), y)
    return float(per_class.mean()), per_class


def scored_digits(
    model, digits: Digits, n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test digits as the model is scored on them: binarised once, reproducibly
    (before the cut, so they are the first ``n`` of the full evaluation)."""
    x = fixed_binarization(digits.x_test) if model.config.binarize else digits.x_test
    return x[:n], digits.y_test[:n]


_COMPILED = (
    weakref.WeakKeyDictionary()
)  # model -> {jit_compile: function}, so repeated calls reuse traces


def _log_weights_function(model, jit_compile: bool):
    """Compiled log p(x|z) + log p(z|y) - log q(z|x) for ``samples`` draws z ~ q(z|x) per image."""
    compiled = _COMPILED.setdefault(model, {})
    if jit_compile in compiled:
        return compiled[jit_compile]
    latent = model.config.latent_dim
    model_ref = weakref.ref(model)  # the cache must not keep the model alive

    @tf.function(
        jit_compile=jit_compile, reduce_retracing=True, autograph=False
    )  # no Python control flow
    def log_weights(images, labels, seed, samples):
        model = model_ref()
        posterior = model.posterior(images, labels)
        z = posterior.sample(samples, seed=seed)  # (samples, batch, latent)
        logits = model.decode_logits(
            tf.reshape(z, [-1, latent]), tf.tile(labels, [samples])
        )
        logits = tf.reshape(logits, tf.concat([[samples], tf.shape(images)], 0))
        targets = tf.broadcast_to(images[None], tf.shape(logits))
        log_px = -tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits),
            axis=[2, 3, 4],
        )
        return log_px + model.prior(labels).log_prob(z) - posterior.log_prob(z)

    compiled[jit_compile] = log_weights
    return log_weights


def importance_weighted_bound(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = DEFAULT_K,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    progress: str = "none",
    stream=None,
    jit_compile: bool | None = None,
) -> np.ndarray:
    """Per-image -log (1/k sum_i p(x|z_i) p(z_i|y) / q(z_i|x)) in nats, z_i ~ q(z|x), for
    :func:`scored_digits`; no compiled call decodes more than ``chunk`` codes."""
    k = check_positive_int(k, "k (importance samples per digit)")
    chunk = check_positive_int(chunk, "chunk")
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int32)
    if len(images) != len(labels):
        raise CvaeError(f"got {len(images)} images but {len(labels)} labels")
    jit_compile = default_jit_compile() if jit_compile is None else jit_compile
    log_weights = _log_weights_function(model, jit_compile)
    per_call = min(k, chunk)
    per_batch = max(1, chunk // per_call)
    calls_per_batch = math.ceil(k / per_call)
    bounds = np.empty(len(images), np.float64)
    meter = Progress(
        len(images), f"importance-weighted bound (k={k})", "digits", progress, stream
    )
    for b, start in enumerate(range(0, len(images), per_batch)):
        count = min(per_batch, len(images) - start)
        # Pad the last batch and draw whole calls of samples (surplus dropped): one shape, one trace.
        rows = np.minimum(np.arange(start, start + per_batch), len(images) - 1)
        x, y = tf.constant(images[rows]), tf.constant(labels[rows])
        parts = [
            log_weights(
                x, y, tf.constant([seed, b * calls_per_batch + c], tf.int32), per_call
            ).numpy()
            for c in range(calls_per_batch)
        ]
        log_w = np.concatenate(parts)[:k, :count].astype(
            np.float64
        )  # (k, images in batch)
        bounds[start : start + count] = math.log(k) - logsumexp(log_w, axis=0)
        meter.update(start + count)
    return bounds


def evaluate_model(
    model,
    digits: Digits,
    judge,
    *,
    k: int = DEFAULT_K,
    iw_digits: int | None = None,
    per_class: int = DEFAULT_PER_CLASS,
    seed: int = 0,
    progress: str = "bar",
    stream=None,
) -> dict:
    """All the measurements as one JSON-ready report; ``iw_digits``: bound only the first N
    test digits (default: all), whose ELBO the report gives as ``iw_neg_elbo``."""
    if iw_digits is not None:
        check_positive_int(iw_digits, "iw_digits")
    x, y = scored_digits(model, digits)
    eval_step = make_eval_step(model, jit_compile=default_jit_compile())
    elbo = evaluate_elbo(model, x, y, eval_step=eval_step)
    judged = conditional_accuracy(model, judge, per_class, seed=seed)
    n_iw = len(x) if iw_digits is None else min(int(iw_digits), len(x))
    start = time.perf_counter()
    bounds = importance_weighted_bound(
        model, x[:n_iw], y[:n_iw], k=k, seed=seed, progress=progress, stream=stream
    )
    iw_seconds = time.perf_counter() - start
    iw_elbo = (
        elbo
        if n_iw == len(x)
        else evaluate_elbo(model, x[:n_iw], y[:n_iw], eval_step=eval_step)
    )
    separation = class_separation(model)
    return {
        "kind": model.kind,
        "data": {
            "source": digits.source,
            "description": digits.description,
            "n_test": int(len(x)),
        },
        **_judged_report(judged, judge, model, digits),
        "test_neg_elbo": float(elbo["neg_elbo"]),
        "test_recon": float(elbo["recon"]),
        "test_kl": float(elbo["kl"]),
        "iw_bound": float(bounds.mean()),
        "iw_bound_stderr": float(bounds.std(ddof=1) / math.sqrt(n_iw))
        if n_iw > 1
        else float("nan"),
        "iw_bound_of": f"-log {getattr(model, 'likelihood_of', 'p(x | y)')}",
        "k": int(k),
        "iw_digits": int(n_iw),
        "iw_neg_elbo": float(iw_elbo["neg_elbo"]),
        "iw_seconds": float(iw_seconds),
        "iw_device": "GPU" if GPUS else "CPU",
        "separation": separation.round(4).tolist(),
        "min_separation": closest_pair(separation)[2],
    }


def _judged_report(judged: ConditionalAccuracy, judge, model, digits: Digits) -> dict:
    """:func:`evaluate_model`'s judge on generated, reconstructed and real digits, per class too."""
    redrawn, redrawn_per_class = reconstruction_accuracy(model, judge, digits)
    return {
        "conditional_accuracy": judged.accuracy,
        "per_class_accuracy": [float(v) for v in judged.per_class],
        "confusion": judged.confusion.tolist(),
        "samples_per_class": int(judged.samples_per_class),
        "reconstruction_accuracy": redrawn,
        "reconstruction_per_class": [float(v) for v in redrawn_per_class],
        "judge_test_accuracy": float(judge.test_accuracy),
        "judge_per_class": judged_per_class(
            judge, digits.x_test, digits.y_test
        ).tolist(),
        "judge": {
            key: judge.meta.get(key)
            for key in ("source", "n_train", "n_test", "seed", "epochs")
        },
    }


def run_digits(record: dict, directory="the checkpoint") -> tuple[Digits, int]:
    """``(digits, n_test)``: the digits a run's config record names, checked against its
    fingerprint, and how many test digits (the first) the run was validated on."""
    data = record.get("data") or {}
    source = data.get("source")
    if source not in RECORDED_SOURCES:
        raise CvaeError(
            f"{directory}/config.json does not record which digits the run used (data.source)"
        )
    seed = data.get("seed", record.get("train", {}).get("seed", 0))
    digits = load_digits(
        data.get("path") or source, seed=int(seed)
    )  # a run on files reads them again
    n_train, n_test = data.get("n_train"), data.get("n_test") or len(digits.x_test)
    if (n_train and n_train > len(digits.x_train)) or n_test > len(digits.x_test):
        raise CvaeError(
            f"{directory} was trained on {n_train} {source!r} digits, but only "
            f"{len(digits.x_train)} training / {len(digits.x_test)} test digits are here"
        )
    if (
        "fingerprint" in data
        and digits.subset(n_train, n_test).fingerprint != data["fingerprint"]
    ):
        # Evaluating on other test digits could score the run on digits it trained on.
        raise CvaeError(
            f"the {source!r} digits here (split seed {seed}) are not the ones {directory} "
            "was trained on: its config.json records other images or another split"
        )
    return digits, int(n_test)


def report_to_json(report: dict) -> str:
    """Strict JSON: non-finite numbers become null (``json.dumps`` would write them as NaN)."""
    strict = json.loads(json.dumps(report), parse_constant=lambda name: None)
    return json.dumps(strict, indent=2, allow_nan=False) + "\n"


def cached_evaluation(
    directory, model, digits: Digits, judge, *, progress: str = "bar", **settings
) -> tuple[dict, bool]:
    """``(report, reused)``: :func:`evaluate_model`'s, cached in run ``directory``."""
    weights = [
        w for network in model.networks().values() for w in network.get_weights()
    ]
    key = cache.key(
        code_fingerprint(leave_out=NOT_EVALUATION),
        kind=model.kind,
        weights=array_digest(weights),
        test_digits=array_digest([digits.x_test, digits.y_test]),
        judge=judge.meta.get("fingerprint"),
        judge_test_accuracy=float(judge.test_accuracy),
        **settings,
    )
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(directory) / f"evaluation-{name}.json"

    def read():
        stored = read_json(path) if path.exists() else None
        return (
            None
            if stored is None
            else (stored.get("cache_key"), lambda: stored.get("report"))
        )

    def make(reason):
        report = evaluate_model(model, digits, judge, progress=progress, **settings)
        for old in path.parent.glob("evaluation-*.json"):  # the run was retrained
            with contextlib.suppress(CvaeError, OSError, KeyError, TypeError):
                if read_json(old)["cache_key"]["weights"] != key["weights"]:
                    old.unlink()
        atomic_write_text(path, report_to_json({"cache_key": key, "report": report}))
        return json.loads(report_to_json(report))

    return cache.reuse_or_make(directory, key, read, make)
