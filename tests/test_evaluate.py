"""Evaluation: the judge, conditional accuracy, the ELBO and its importance-weighted bound, the CLI.

The bound tests use the session's tiny trained model (conftest.py) on real test
digits; conditional accuracy is checked on a stub model and a stub judge whose right
answers are known exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cvae_lib import book, evaluate, plots, sampling
from cvae_lib import judge as judge_lib
from cvae_lib.backend import tf, tfd
from cvae_lib.cli import main
from cvae_lib.config import ModelConfig
from cvae_lib.errors import CvaeError
from cvae_lib.prior import closest_pair

# ---------------------------------------------------------------- stubs with known answers


class BandModel:
    """Latent 10-d; class y is generated around 10 * e_y and decoded as horizontal band
    ``mapping[argmax z]`` lit up. With the identity mapping every sample shows its class."""

    kind = "stub"

    def __init__(self, mapping=tuple(range(10))):
        self.config = ModelConfig(latent_dim=10)
        self.mapping = tf.constant(mapping, tf.int32)

    def generation_prior(self, labels):
        loc = 10.0 * tf.one_hot(labels, 10)
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=0.1 * tf.ones_like(loc))

    def decode(self, z, labels):
        band = tf.gather(self.mapping, tf.argmax(z, axis=-1, output_type=tf.int32))
        rows = tf.range(28)[None, :] // 2 - 4  # bands 0..9 occupy rows 8..27
        image = tf.cast(rows == band[:, None], tf.float32)[:, :, None] * tf.ones(
            [1, 1, 28]
        )
        return image[..., None]


class BandJudge:
    """Labels an image by its brightest band (rows 8 + 2j, 9 + 2j)."""

    test_accuracy = 1.0
    meta = {}

    def labels(self, images):
        images = np.asarray(images).reshape(-1, 28, 28)
        return images[:, 8:].reshape(-1, 10, 2 * 28).sum(-1).argmax(-1)


def test_conditional_accuracy_is_one_when_every_sample_shows_its_class():
    result = evaluate.conditional_accuracy(BandModel(), BandJudge(), per_class=20)
    assert result.accuracy == 1.0
    np.testing.assert_array_equal(result.per_class, np.ones(10))
    np.testing.assert_array_equal(result.confusion, 20 * np.eye(10, dtype=int))


def test_conditional_accuracy_counts_per_class_and_confusions():
    # classes 0-4 decode correctly, 5-9 decode as the next digit (9 -> 0)
    mapping = [0, 1, 2, 3, 4, 6, 7, 8, 9, 0]
    result = evaluate.conditional_accuracy(BandModel(mapping), BandJudge(), per_class=8)
    np.testing.assert_array_equal(result.per_class, [1] * 5 + [0] * 5)
    assert result.accuracy == 0.5
    assert result.confusion.sum() == 80
    for c in range(5, 10):
        assert result.confusion[c, (c + 1) % 10] == 8
    fig = plots.confusion_figure(result.confusion)
    assert fig.axes and fig.axes[0].get_ylabel() == "requested digit"


class EchoBandModel(BandModel):
    """A BandModel whose 'encoder' puts each test digit at its label's code, so its
    reconstructions show the band ``mapping[label]``."""

    def posterior(self, images, labels):
        loc = 10.0 * tf.one_hot(tf.cast(labels, tf.int32), 10)
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.ones_like(loc))


def test_reconstruction_accuracy_judges_what_the_decoder_draws(tiny_digits):
    mapping = [0, 1, 2, 3, 4, 6, 7, 8, 9, 0]  # 5-9 are redrawn as the next class
    accuracy, per_class = evaluate.reconstruction_accuracy(
        EchoBandModel(mapping), BandJudge(), tiny_digits, batch_size=64
    )
    np.testing.assert_array_equal(per_class, [1] * 5 + [0] * 5)
    assert accuracy == 0.5
    assert evaluate.reconstruction_accuracy(
        EchoBandModel(), BandJudge(), tiny_digits
    ) == (1.0, pytest.approx(np.ones(10)))


# ---------------------------------------------------------------- judge


@pytest.fixture(scope="module")
def quick_judge(tmp_path_factory, sample_digits):
    """A judge trained for 2 epochs on 1,500 real digits, cached under a temporary root."""
    root = tmp_path_factory.mktemp("judge_runs")
    digits = sample_digits.subset(1500, 300)
    return judge_lib.load_or_train_judge(digits, epochs=2, root=root), digits, root


def test_judge_learns_real_digits_and_is_cached(quick_judge, monkeypatch):
    judge, digits, root = quick_judge
    assert judge.test_accuracy > 0.7  # chance is 0.1; ~0.9 after 2 epochs
    assert judge.accuracy(digits.x_test, digits.y_test) == pytest.approx(
        judge.test_accuracy
    )
    assert judge.meta["n_train"] == 1500 and judge.meta["source"] == "sample"

    def no_training(*args, **kwargs):
        raise AssertionError("the cached judge should have been loaded")

    monkeypatch.setattr(judge_lib, "train_judge", no_training)
    again = judge_lib.load_or_train_judge(digits, epochs=2, root=root)
    assert again.test_accuracy == judge.test_accuracy
    np.testing.assert_array_equal(
        again.labels(digits.x_test[:50]), judge.labels(digits.x_test[:50])
    )


def test_blur_is_a_gaussian_of_each_images_own_width():
    from scipy.ndimage import gaussian_filter

    images = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    blurred = judge_lib.blur(tf.constant(images), tf.constant([0.0, 1.0, 1.7])).numpy()
    np.testing.assert_allclose(blurred[0], images[0], atol=1e-6)  # sigma 0: untouched
    for i, sigma in ((1, 1.0), (2, 1.7)):
        expected = gaussian_filter(
            images[i, ..., 0], sigma, mode="constant", truncate=4 / sigma
        )
        np.testing.assert_allclose(blurred[i, ..., 0], expected, atol=1e-3)


def test_the_judge_trains_on_shifted_images_half_of_them_blurred():
    """What train_judge maps over its batches: each batch moves by up to 2 pixels, and about
    half its images spread into grey edges, some by as much as MAX_BLUR."""
    square = np.zeros((400, 28, 28, 1), np.float32)
    square[:, 12:16, 12:16] = 1.0
    out = judge_lib._augment(tf.constant(square), tf.constant([0, 3], tf.int64)).numpy()
    grey = ((out > 1e-4) & (out < 1 - 1e-4)).any(axis=(1, 2, 3))
    assert 0.4 < grey.mean() < 0.6  # half blurred
    assert out.max(axis=(1, 2, 3)).min() < 0.6  # some strongly

    def corner(seed):
        """Top-left pixel of the square in one image augmented with ``seed``."""
        out = judge_lib._augment(tf.constant(square[:1]), tf.constant(seed, tf.int64))
        return tuple(np.argwhere(out[0, ..., 0] > 0.5).min(axis=0))

    corners = {corner([0, i]) for i in range(20)}
    rows = [row for row, _ in corners]
    assert len(corners) > 5 and max(rows) - min(rows) >= 3


def trainings(digits, root, monkeypatch) -> int:
    """How many judges ``load_or_train_judge`` trains for ``digits``; none is saved, which
    keeps the module's cached judge intact."""
    calls = []
    monkeypatch.setattr(
        judge_lib,
        "train_judge",
        lambda *a, **k: calls.append(1) or judge_lib.make_judge_network(),
    )
    monkeypatch.setattr(judge_lib, "save_judge", lambda *a, **k: None)
    judge_lib.load_or_train_judge(digits, epochs=2, root=root)
    return len(calls)


def test_judge_is_retrained_for_other_training_digits(quick_judge, monkeypatch):
    """Same source and size but another split (which may contain these test digits): not reused."""
    _, digits, root = quick_judge
    other = type(digits)(
        digits.x_train[::-1],
        digits.y_train[::-1],
        digits.x_test,
        digits.y_test,
        digits.source,
        digits.description,
    )
    assert trainings(other, root, monkeypatch) == 1


def test_judge_is_retrained_when_its_code_changed(quick_judge, monkeypatch):
    _, digits, root = quick_judge
    assert judge_lib.load_judge(judge_lib.judge_directory(digits, 0, 2, root)).meta[
        "code"
    ] == judge_lib.code_fingerprint(only=judge_lib.JUDGE_MODULES)
    monkeypatch.setattr(judge_lib, "code_fingerprint", lambda **kwargs: "0" * 64)
    assert trainings(digits, root, monkeypatch) == 1


def test_corrupt_judge_cache_is_retrained(tmp_path, sample_digits, monkeypatch, capsys):
    digits = sample_digits.subset(200, 50)
    directory = judge_lib.judge_directory(digits, 0, 1, root=tmp_path)
    directory.mkdir(parents=True)
    (directory / judge_lib.JUDGE_FILE).write_bytes(b"not a zip file")
    monkeypatch.setattr(
        judge_lib, "train_judge", lambda *a, **k: judge_lib.make_judge_network()
    )
    judge = judge_lib.load_or_train_judge(digits, epochs=1, root=tmp_path)
    assert "corrupt" in capsys.readouterr().err
    stored = judge_lib.load_judge(directory).meta["fingerprint"]
    assert stored == digits.subset(n_test=0).fingerprint[:16]  # the training split's
    assert 0 <= judge.test_accuracy <= 1


# ---------------------------------------------------------------- ELBO and the importance-weighted bound


@pytest.fixture(scope="module")
def scored(tiny_model, tiny_digits):
    """The tiny model's test digits, binarised as the evaluation scores them."""
    return evaluate.scored_digits(tiny_model, tiny_digits)


def test_scored_digits_are_the_fixed_binarisation_cut_after(
    tiny_model, tiny_digits, scored
):
    x, y = scored
    assert set(np.unique(x)) <= {0.0, 1.0} and len(x) == len(tiny_digits.x_test)
    first, _ = evaluate.scored_digits(tiny_model, tiny_digits, 30)
    np.testing.assert_array_equal(first, x[:30])


def test_iw_bound_with_k_1_equals_the_elbo_in_expectation(tiny_model, scored):
    """E[-log w] for one z ~ q is reconstruction + KL; compared image by image over repeats."""
    x, y = scored
    repeats = 12  # independent draws per image, as repeated rows of one batch
    xs, ys = np.repeat(x, repeats, axis=0), np.repeat(y, repeats)
    bounds = (
        evaluate.importance_weighted_bound(tiny_model, xs, ys, k=1)
        .reshape(-1, repeats)
        .mean(1)
    )
    recon, kl = tiny_model.loss_terms(
        tf.constant(xs), tf.constant(ys), tf.constant([99, 0])
    )[:2]
    elbos = (recon + kl).numpy().reshape(-1, repeats).mean(1)
    difference = bounds - elbos
    stderr = difference.std(ddof=1) / np.sqrt(len(difference))
    assert abs(difference.mean()) < 4 * stderr + 0.05, (difference.mean(), stderr)
    # the test can fail: leaving out p(z|y)/q(z|x) would shift the bound by the KL, many standard errors
    assert kl.numpy().mean() > 10 * stderr


def test_iw_bound_tightens_with_k_and_stays_below_the_elbo(
    tiny_model, tiny_digits, scored
):
    x, y = scored
    elbo = evaluate.evaluate_elbo(tiny_model, x, y)["neg_elbo"]
    k1, k10, k100 = (
        evaluate.importance_weighted_bound(tiny_model, x, y, k=k).mean()
        for k in (1, 10, 100)
    )
    assert k100 < k10 < k1
    assert k100 < elbo
    assert np.isfinite(k100) and k100 > 0


class ExactModel:
    """q(z|x) = p(z|y) = N(0, I) and logits that depend on the label only: every
    importance weight is exactly p(x|y), so the bound is exact for any k and any seed."""

    config = ModelConfig(latent_dim=3)

    def prior(self, labels):
        return tfd.MultivariateNormalDiag(loc=tf.zeros([tf.shape(labels)[0], 3]))

    def posterior(self, images, labels):
        return self.prior(labels)

    def decode_logits(self, z, labels):
        logit = tf.cast(labels, tf.float32) / 3.0 - 1.5
        return tf.broadcast_to(logit[:, None, None, None], [tf.shape(z)[0], 28, 28, 1])

    def exact(self, images, labels):
        logits = np.broadcast_to(
            (labels / 3.0 - 1.5)[:, None, None, None], images.shape
        )
        return (np.logaddexp(0, logits) - images * logits).sum(
            axis=(1, 2, 3)
        )  # -log p(x|y)


@pytest.mark.parametrize(
    "k, chunk", [(1, 4096), (64, 4096), (64, 20), (64, 640), (7, 30)]
)
def test_iw_bound_is_exact_per_image_however_the_work_is_chunked(scored, k, chunk):
    """Slicing k into several calls, padding the last batch of images: every image keeps its own bound."""
    x, y = scored[0][:23], scored[1][:23]
    model = ExactModel()
    bounds = evaluate.importance_weighted_bound(
        model, x, y, k=k, chunk=chunk, jit_compile=False
    )
    np.testing.assert_allclose(bounds, model.exact(x, y), rtol=1e-5)


def test_iw_bound_is_reproducible(tiny_model, scored):
    x, y = scored[0][:10], scored[1][:10]
    first = evaluate.importance_weighted_bound(tiny_model, x, y, k=16, seed=3)
    np.testing.assert_array_equal(
        evaluate.importance_weighted_bound(tiny_model, x, y, k=16, seed=3), first
    )
    assert not np.array_equal(
        evaluate.importance_weighted_bound(tiny_model, x, y, k=16, seed=4), first
    )


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_iw_bound_rejects_bad_k(tiny_model, scored, k):
    with pytest.raises(CvaeError, match="k"):
        evaluate.importance_weighted_bound(tiny_model, *scored, k=k)


def test_class_separation_of_the_main_model_is_distance_between_means(tiny_model):
    separation = sampling.class_separation(tiny_model)
    means = tiny_model.class_means(tf.range(10)).numpy()
    assert separation.shape == (10, 10)
    np.testing.assert_allclose(
        separation[2, 7], np.linalg.norm(means[2] - means[7]), rtol=1e-5
    )
    np.testing.assert_allclose(np.diag(separation), 0)
    i, j, closest = closest_pair(separation)
    assert i < j and closest == separation[i, j] == pytest.approx(
        separation[np.triu_indices(10, 1)].min()
    )


def test_evaluate_model_reports_everything_on_the_same_digits(
    tiny_model, tiny_digits, quick_judge
):
    judge = quick_judge[0]
    report = evaluate.evaluate_model(
        tiny_model,
        tiny_digits,
        judge,
        k=50,
        iw_digits=40,
        per_class=10,
        progress="none",
    )
    assert (
        report["iw_digits"] == 40
        and report["k"] == 50
        and report["data"]["n_test"] == 200
    )
    assert report["test_neg_elbo"] == pytest.approx(
        report["test_recon"] + report["test_kl"]
    )
    assert report["iw_bound"] < report["iw_neg_elbo"]
    assert report["conditional_accuracy"] == pytest.approx(
        np.mean(report["per_class_accuracy"])
    )
    assert report["judge_test_accuracy"] == judge.test_accuracy
    assert report["iw_bound_of"] == "-log p(x | y)"
    json.loads(evaluate.report_to_json(report))


def test_cached_evaluation_is_reused_only_for_the_same_evaluation(
    tiny_model, tiny_digits, quick_judge, tmp_path, monkeypatch
):
    judge = quick_judge[0]
    settings = dict(k=4, iw_digits=10, per_class=5, seed=0)
    first, reused = evaluate.cached_evaluation(
        tmp_path, tiny_model, tiny_digits, judge, progress="none", **settings
    )
    assert not reused and len(list(tmp_path.glob("evaluation-*.json"))) == 1
    calls = []
    real = evaluate.evaluate_model
    monkeypatch.setattr(
        evaluate, "evaluate_model", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    again, reused = evaluate.cached_evaluation(
        tmp_path, tiny_model, tiny_digits, judge, progress="none", **settings
    )
    assert reused and again == first and calls == []
    _, reused = evaluate.cached_evaluation(
        tmp_path,
        tiny_model,
        tiny_digits,
        judge,
        progress="none",
        **{**settings, "k": 5},
    )
    assert not reused and calls == [1]
    assert len(list(tmp_path.glob("evaluation-*.json"))) == 2
    # other evaluation code (say, a changed bound): computed again, not read back
    with monkeypatch.context() as patched:
        patched.setattr(evaluate, "code_fingerprint", lambda **kwargs: "0" * 64)
        _, reused = evaluate.cached_evaluation(
            tmp_path, tiny_model, tiny_digits, judge, progress="none", **settings
        )
    assert not reused and calls == [1, 1]
    for path in tmp_path.glob("evaluation-*.json"):
        if json.loads(path.read_text())["cache_key"]["code"] == "0" * 64:
            path.unlink()
    # reports of other weights (an earlier training of this run) are removed when a new one is written
    stale = json.loads(next(tmp_path.glob("evaluation-*.json")).read_text())
    stale["cache_key"]["weights"] = "0" * 64
    (tmp_path / "evaluation-stale.json").write_text(json.dumps(stale))
    evaluate.cached_evaluation(
        tmp_path,
        tiny_model,
        tiny_digits,
        judge,
        progress="none",
        **{**settings, "k": 6},
    )
    assert not (tmp_path / "evaluation-stale.json").exists()
    assert len(list(tmp_path.glob("evaluation-*.json"))) == 3


def test_comparison_table_and_figures(tiny_model, tiny_digits, quick_judge):
    report = evaluate.evaluate_model(
        tiny_model,
        tiny_digits,
        quick_judge[0],
        k=2,
        iw_digits=5,
        per_class=3,
        progress="none",
    )
    table = book.comparison_table({"tiny": report, "again": report}).splitlines()
    assert len(table) == 4 and table[2].startswith("| tiny | ")
    assert all(row.count("|") == 8 for row in table)  # "p(x | y)" must not split a cell
    assert (
        len(
            plots.confusions_figure(
                {"a": report["confusion"], "b": report["confusion"]}
            ).axes
        )
        == 2
    )
    assert (
        len(plots.panels_figure({"a": np.zeros((28, 56)), "b": np.ones((28, 56))}).axes)
        == 2
    )
    assert plots.separation_figure(np.array(report["separation"])).axes


def test_run_digits_follows_the_record_and_rejects_what_does_not_fit(
    monkeypatch, tiny_digits
):
    seen = {}
    monkeypatch.setattr(
        evaluate,
        "load_digits",
        lambda source, seed: seen.update(source=source, seed=seed) or tiny_digits,
    )
    digits, n_test = evaluate.run_digits(
        {
            "data": {"source": "sample", "n_train": 512, "n_test": 50},
            "train": {"seed": 3},
        }
    )
    assert (
        digits is tiny_digits
        and n_test == 50
        and seen == {"source": "sample", "seed": 3}
    )
    with pytest.raises(CvaeError, match="only 512 training"):
        evaluate.run_digits(
            {
                "data": {"source": "sample", "n_train": 4000, "n_test": 50},
                "train": {"seed": 0},
            }
        )
    with pytest.raises(CvaeError, match="which digits"):
        evaluate.run_digits({"train": {"seed": 0}})
    # With a fingerprint, the reloaded split must be the trained-on one.
    record = {
        "data": {
            "source": "sample",
            "n_train": 300,
            "n_test": 50,
            "seed": 3,
            "fingerprint": tiny_digits.subset(300, 50).fingerprint,
        }
    }
    assert evaluate.run_digits(record)[1] == 50
    record["data"]["fingerprint"] = tiny_digits.subset(300, 40).fingerprint
    with pytest.raises(CvaeError, match="not the ones"):
        evaluate.run_digits(record)


def test_report_json_is_strict():
    text = evaluate.report_to_json({"a": float("nan"), "b": [1.5, float("inf")]})
    assert json.loads(text) == {"a": None, "b": [1.5, None]}


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli_runs(tmp_path, monkeypatch):
    """Judges and runs go to a temporary root, never the repository's _runs/."""
    monkeypatch.setenv("CVAE_RUNS", str(tmp_path / "runs"))
    return tmp_path


def test_cli_evaluate_writes_the_report(copy_checkpoint, cli_runs, capsys):
    run = copy_checkpoint()
    out = cli_runs / "report.json"
    code = main(
        [
            "evaluate",
            str(run),
            "--out",
            str(out),
            "--k",
            "4",
            "--iw-digits",
            "all",
            "--per-class",
            "10",
            "--judge-epochs",
            "1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    for key in (
        "conditional_accuracy",
        "per_class_accuracy",
        "test_neg_elbo",
        "test_recon",
        "test_kl",
        "iw_bound",
        "k",
        "judge_test_accuracy",
        "min_separation",
    ):
        assert key in report
    assert (
        report["k"] == 4
        and report["iw_digits"] == 200
        and len(report["per_class_accuracy"]) == 10
        and len(report["reconstruction_per_class"]) == 10
        and len(report["judge_per_class"]) == 10
    )
    assert np.mean(report["judge_per_class"]) == pytest.approx(
        report["judge_test_accuracy"], abs=0.02
    )
    assert report["reconstruction_accuracy"] == pytest.approx(
        np.mean(report["reconstruction_per_class"])
    )
    assert report["iw_neg_elbo"] == report["test_neg_elbo"]  # all digits: the same ELBO
    assert report["data"]["source"] == "sample" and report["data"]["n_test"] == 200
    assert (
        report["judge"]["n_train"] == 4000
    )  # the judge learns from the whole training split
    assert 0.5 < report["judge_test_accuracy"] <= 1
    assert "wrote" in capsys.readouterr().out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1
    return err[-1]


@pytest.mark.parametrize(
    "case", ["missing", "empty", "no-data", "out-dir-missing", "out-is-dir"]
)
def test_cli_evaluate_bad_inputs_fail_in_one_line(
    case, copy_checkpoint, cli_runs, capsys
):
    run = copy_checkpoint()
    out = cli_runs / "report.json"
    out.write_text("previous report")
    if case == "missing":
        run = cli_runs / "nowhere"
    elif case == "empty":
        run = cli_runs / "empty"
        run.mkdir()
    elif case == "no-data":
        from cvae_lib.store.checkpoint import load_checkpoint, save_checkpoint

        model, _ = load_checkpoint(run)
        run = save_checkpoint(model, cli_runs / "no-data")  # no data record
    elif case == "out-dir-missing":
        out = cli_runs / "missing" / "report.json"
    elif case == "out-is-dir":
        out = cli_runs
    code = main(
        ["evaluate", str(run), "--out", str(out), "--k", "2", "--judge-epochs", "1"]
    )
    assert code == 2
    line = _error_line(capsys)
    assert line.startswith("cvae_lib: error: ")
    expected = {
        "missing": "no checkpoint",
        "empty": "not a cvae_lib checkpoint",
        "no-data": "which digits",
        "out-dir-missing": "does not exist",
        "out-is-dir": "is a directory",
    }[case]
    assert expected in line
    assert (
        cli_runs / "report.json"
    ).read_text() == "previous report"  # nothing overwritten


@pytest.mark.parametrize(
    "flag, value", [("--k", "0"), ("--iw-digits", "-3"), ("--per-class", "x")]
)
def test_cli_evaluate_rejects_bad_numbers(
    flag, value, copy_checkpoint, cli_runs, capsys
):
    code = main(
        [
            "evaluate",
            str(copy_checkpoint()),
            "--out",
            str(cli_runs / "r.json"),
            flag,
            value,
        ]
    )
    assert code == 2
    line = _error_line(capsys)
    assert (
        line.startswith("cvae_lib: error: ")
        and flag in line
        and "positive integer" in line
    )
    assert not (cli_runs / "r.json").exists()
