"""The chapters' checks (cvae_lib.checks) fail on broken models and pass on a sound one.

The models are built, not trained: each decodes class templates (cvae_lib.pixel_models) from
the region of latent space nearest a class mean, so what is broken is exactly one thing:

- a sound model: means on a circle of radius 10, and the decoded digit changes with z's
  offset from its class mean (its stroke grows thicker or thinner): z carries style;
- means that collapse: the same model with every mean within a tenth of a unit;
- a decoder that ignores the style in z: it draws the template of the nearest class, whatever
  z's offset; its encoder is q(z | x, y) = N(mu_y, I), so its bound is honest;
- samples of the wrong class: class y's region decodes class y + 1's template.

The judge is the templates' own classifier (a real judge needs training), with its accuracy
on the real test digits as the reference the generated digits are held to."""

from __future__ import annotations

import numpy as np
import pytest

from cvae_lib import book, checks
from cvae_lib.backend import tf
from cvae_lib.config import ModelConfig
from cvae_lib.evaluate import (
    conditional_accuracy,
    importance_weighted_bound,
    scored_digits,
)
from cvae_lib.model import ConditionalVAE
from cvae_lib.pixel_models import baseline_report, class_templates
from cvae_lib.prior import circle_means, prior_distribution
from cvae_lib.train import History


@pytest.fixture(autouse=True)
def claims_asserted(monkeypatch):
    """The checks assert, as they do in every run of the profile's own budget."""
    monkeypatch.delenv(book.EPOCHS_ENV, raising=False)


class TemplateModel(ConditionalVAE):
    """Decodes the template of the class whose mean is nearest z (``shift``: of class y + shift),
    with a stroke width set by z's offset from that mean unless ``styled`` is False."""

    def __init__(self, templates, *, radius=10.0, styled=True, shift=0):
        super().__init__(ModelConfig(base_depth=2))
        self.means = tf.constant(circle_means(10, 2, radius))
        probabilities = np.roll(templates.probabilities, -shift, axis=0)
        self.template_logits = tf.constant(
            np.log(probabilities) - np.log1p(-probabilities), tf.float32
        )
        self.styled = styled

    def class_means(self, labels):
        return tf.gather(self.means, tf.cast(labels, tf.int32))

    def prior(self, labels):
        return prior_distribution(self.class_means(labels))

    def posterior(self, images, labels):
        return prior_distribution(self.class_means(labels))

    def decode_logits(self, z, labels):
        distances = tf.reduce_sum(tf.square(z[:, None, :] - self.means[None]), axis=-1)
        nearest = tf.argmin(distances, axis=1)
        logits = tf.gather(self.template_logits, nearest)
        if (
            self.styled
        ):  # thicker strokes one way, thinner the other: the style z carries
            offset = z - tf.gather(self.means, nearest)
            logits = (
                logits + 1.0 * tf.tanh(offset[:, :1] + offset[:, 1:])[:, :, None, None]
            )
        return logits


class TemplateJudge:
    """Labels images by the class template that gives them the highest likelihood."""

    def __init__(self, templates, digits):
        self.templates = templates
        self.test_accuracy = float(np.mean(self.labels(digits.x_test) == digits.y_test))

    def labels(self, images):
        return self.templates.classify(np.asarray(images).reshape(len(images), -1))


@pytest.fixture(scope="module")
def templates(sample_digits):
    return class_templates(sample_digits)


@pytest.fixture(scope="module")
def judge(templates, sample_digits):
    return TemplateJudge(templates, sample_digits)


def test_means_that_collapse_fail_the_separation_check(templates):
    assert checks.check_classes_apart(TemplateModel(templates)) > 2
    with pytest.raises(AssertionError, match="only 0.06 apart"):
        checks.check_classes_apart(TemplateModel(templates, radius=0.1))


def test_samples_of_the_wrong_class_fail_the_generation_check(templates, judge):
    assert judge.test_accuracy > 0.7  # a judge worth the name
    sound = conditional_accuracy(TemplateModel(templates), judge, per_class=20)
    checks.check_generated_class(sound.per_class, [judge.test_accuracy] * 10)
    wrong = conditional_accuracy(TemplateModel(templates, shift=1), judge, per_class=20)
    assert wrong.accuracy < 0.5
    with pytest.raises(AssertionError, match="judged the asked class"):
        checks.check_generated_class(wrong.per_class, [judge.test_accuracy] * 10)


def test_one_class_generated_as_another_fails_the_generation_check():
    per_class = np.array([0.99] * 9 + [0.3])
    with pytest.raises(AssertionError, match="class 9 are judged 9 only 30.0%"):
        checks.check_generated_class(per_class, [0.95] * 10)


def test_the_generation_check_reads_each_class_against_the_judge_on_that_class():
    generated = np.array([0.95] * 9 + [0.45])
    checks.check_generated_class(generated, [0.97] * 9 + [0.6])  # 0.45 >= 0.5 x 0.6
    with pytest.raises(AssertionError, match="judged 9 only 45.0%.*95.0% on real"):
        checks.check_generated_class(generated, [0.97] * 9 + [0.95])


def test_two_classes_the_judge_rejects_fail_the_generation_check_over_all_classes():
    """Eight classes perfect cannot carry two that are never generated as asked."""
    generated = np.array([0.98] * 8 + [0.05, 0.0])
    real = np.array([0.97] * 8 + [0.9, 0.7])
    with pytest.raises(
        AssertionError, match="judged the asked class 78.9% of the time,"
    ):
        checks.check_generated_class(generated, real)
    with pytest.raises(AssertionError, match="class 9 are judged 9 only 0.0%"):
        checks.check_generated_class(np.array([0.98] * 9 + [0.0]), real)


def test_a_decoder_that_ignores_the_style_in_z_fails_the_style_check(templates):
    changes = checks.check_style_in_z(TemplateModel(templates))
    assert changes.min() > checks.LEAST_STYLE
    assert checks.style_in_z(TemplateModel(templates, styled=False), 3) == 0.0
    with pytest.raises(AssertionError, match="z carries the class but not the style"):
        checks.check_style_in_z(TemplateModel(templates, styled=False))


def test_a_decoder_that_ignores_the_style_in_z_does_not_beat_the_class_templates(
    templates, sample_digits
):
    """Chapter 9's likelihood check, with chapter 9's margin, on the bound chapter 9 computes."""
    blind = TemplateModel(templates, styled=False)
    x, y = scored_digits(blind, sample_digits, 100)
    bound = float(importance_weighted_bound(blind, x, y, k=20).mean())
    baseline = baseline_report(sample_digits, 100)["class_templates"]
    assert (
        bound > baseline - 1.0
    )  # it can only mix templates, never draw a better digit
    with pytest.raises(
        AssertionError,
        match=r"(below|above) the class templates \(1\d\d\.\d; need 4 below\)",
    ):
        checks.check_beats_baseline(bound, baseline, checks.TEMPLATE_MARGIN)
    assert checks.check_beats_baseline(
        baseline - 5, baseline, checks.TEMPLATE_MARGIN
    ) == pytest.approx(5)


def history_of(val_losses):
    return History([{"epoch": i + 1, "val_loss": v} for i, v in enumerate(val_losses)])


def test_a_loss_that_stopped_falling_after_the_warm_up_fails():
    """Chapter 5 compares with the last warm-up epoch, not the first (which any training beats)."""
    assert checks.check_loss_fell(
        history_of([590, 300, 210, 190, 180]), warmup_epochs=2
    ) == pytest.approx(120)
    with pytest.raises(AssertionError, match="from 210.0 after the warm-up to 208.0"):
        checks.check_loss_fell(history_of([590, 300, 210, 209, 208]), warmup_epochs=3)


def test_a_bound_still_falling_at_the_largest_k_fails():
    checks.check_bound_settled(
        {1: 167.4, 10: 162.9, 100: 159.1, 1000: 157.8}, stderr=3.6
    )
    with pytest.raises(AssertionError, match="more than its standard error"):
        checks.check_bound_settled(
            {1: 167.4, 10: 162.9, 100: 159.1, 1000: 157.8}, stderr=0.5
        )
    with pytest.raises(AssertionError, match="not smaller than the one before"):
        checks.check_bound_settled({10: 162.9, 100: 161.9, 1000: 160.0}, stderr=3.6)
    with pytest.raises(AssertionError, match="does not fall"):
        checks.check_bound_settled({10: 162.9, 100: 163.0}, stderr=3.6)


def test_a_shortened_run_reports_a_failed_claim_instead_of_raising(monkeypatch, capsys):
    monkeypatch.setenv(book.EPOCHS_ENV, "3")
    checks.claim(False, "the judge accepts too few digits")
    assert (
        "not asserted in a run shortened by CVAE_EPOCHS=3: the judge accepts too few"
        in capsys.readouterr().err
    )
    monkeypatch.setenv(book.EPOCHS_ENV, "")
    with pytest.raises(AssertionError, match="the judge accepts too few digits"):
        checks.claim(False, "the judge accepts too few digits")
