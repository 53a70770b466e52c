"""The chapters' claims about a trained model, each relative to what the data allows: an ``AssertionError`` of
one sentence, or in a run shortened by ``$CVAE_EPOCHS`` one line on stderr marked "not asserted"."""

import sys

import numpy as np

from .book import EPOCHS_ENV, epochs_override
from .prior import closest_pair
from .sampling import GRID_SIZE, class_separation, manifold_tiles

__all__ = [
    "claim",
    "check_classes_apart",
    "check_generated_class",
    "style_in_z",
    "check_style_in_z",
    "check_beats_baseline",
    "check_loss_fell",
    "check_bound_settled",
]

#: Generated digits' shares of the judge's accuracy on real ones: on average, in the worst class.
GENERATED_SHARE, WORST_CLASS_SHARE = 0.9, 0.5
#: Least median change per pixel between neighbouring manifold tiles (:func:`style_in_z`):
#: the quick profile's model changes by 0.002 to 0.007, a decoder blind to style by 0.
LEAST_STYLE = 0.001
#: Nats per digit by which the bound must beat the class templates (quick profile: 167.5
#: against 175.5); a decoder that reads only the class from z draws templates.
TEMPLATE_MARGIN = 4.0


def claim(holds: bool, message: str) -> None:
    """A chapter's claim about its trained model: an ``AssertionError(message)`` unless it
    ``holds`` (in a run shortened by ``$CVAE_EPOCHS``, one line on stderr instead)."""
    if not holds and epochs_override() is None:  # a shortened run's model is another
        raise AssertionError(message)
    if not holds:
        print(
            f"cvae_lib: not asserted in a run shortened by {EPOCHS_ENV}={epochs_override()}: {message}",
            file=sys.stderr,
            flush=True,
        )


def check_classes_apart(model, least: float = 2.0) -> float:
    """The distance of the closest two class means, in standard deviations of the generating
    distribution, which must exceed ``least`` (at 2, a draw is nearer its own mean > 84%)."""
    i, j, distance = closest_pair(class_separation(model))
    claim(
        distance > least,
        f"the means of classes {i} and {j} are only {distance:.2f} apart (need > {least:g})",
    )
    return distance


def check_generated_class(
    per_class,
    judge_per_class,
    *,
    share: float = GENERATED_SHARE,
    worst_share: float = WORST_CLASS_SHARE,
) -> None:
    """Generated digits judged the asked class at ``share`` times the judge's accuracy on real
    ones or more, and every class at ``worst_share`` times the judge's accuracy on its own."""
    per_class, real = np.asarray(per_class, float), np.asarray(judge_per_class, float)
    claim(
        per_class.mean() >= share * real.mean(),
        f"generated digits are judged the asked class {per_class.mean():.1%} of the time, "
        f"less than {share:g} x the judge's {real.mean():.1%} on real digits",
    )
    worst = int(np.argmin(per_class / real))
    claim(
        per_class[worst] >= worst_share * real[worst],
        f"digits generated for class {worst} are judged {worst} only {per_class[worst]:.1%} "
        f"of the time, less than {worst_share:g} x the judge's {real[worst]:.1%} on real ones",
    )


def style_in_z(model, digit: int, n: int = GRID_SIZE) -> float:
    """The median, over neighbouring tiles of class ``digit``'s manifold, of their mean absolute
    grey-level difference: 0 for a decoder that reads only the class from z."""
    tiles = manifold_tiles(model, digit, n)
    across = np.abs(np.diff(tiles, axis=1)).mean(axis=(2, 3)).ravel()
    down = np.abs(np.diff(tiles, axis=0)).mean(axis=(2, 3)).ravel()
    return float(np.median(np.concatenate([across, down])))


def check_style_in_z(model, digits=None, least: float = LEAST_STYLE) -> np.ndarray:
    """:func:`style_in_z` of every class in ``digits`` (default all), each above ``least``."""
    digits = range(model.config.num_classes) if digits is None else digits
    changes = np.array([style_in_z(model, d) for d in digits])
    worst = int(np.argmin(changes))
    claim(
        changes[worst] > least,
        f"the manifold of class {list(digits)[worst]} barely changes from tile to tile "
        f"(median {changes[worst]:.4f} per pixel, need > {least:g}): z carries the class "
        "but not the style",
    )
    return changes


def check_beats_baseline(
    nats: float, baseline: float, margin: float, what: str = "the class templates"
) -> float:
    """``nats`` (a negative log-likelihood or a bound on one, nats per digit) at least ``margin``
    below ``baseline``'s on the same digits; returns how far below it is."""
    gain = baseline - nats
    where = f"only {gain:.1f} below" if gain > 0 else f"{-gain:.1f} above"
    claim(
        gain >= margin,
        f"{nats:.1f} nats per digit is {where} {what} ({baseline:.1f}; need {margin:g} below)",
    )
    return gain


def check_loss_fell(history, warmup_epochs: int, least: float = 5.0) -> float:
    """The fall of the validation negative ELBO from the last warm-up epoch (or the first) to the
    last epoch, which must be ``least`` nats or more: the full objective still taught something."""
    val_loss = history.series("val_loss")
    before = val_loss[max(warmup_epochs, 1) - 1]
    fall = float(before - val_loss[-1])
    claim(
        fall >= least,
        f"the validation negative ELBO went from {before:.1f} after the warm-up to "
        f"{val_loss[-1]:.1f} at the end, a fall of {fall:.1f} nats (need {least:g})",
    )
    return fall


def check_bound_settled(by_k: dict, stderr: float) -> None:
    """Bounds ``{k: nats}`` that fall as k grows, the last step by less than the one before and
    than ``stderr``, the bound's standard error: a larger k would not move it beyond its noise."""
    ks = sorted(by_k)
    values = np.array([by_k[k] for k in ks])
    gains = -np.diff(values)
    claim(
        np.all(gains > 0),
        f"the bound does not fall as k grows: {dict(zip(ks, values.round(2)))}",
    )
    if len(gains) > 1:
        claim(
            gains[-1] < gains[-2],
            f"the bound's gain from k = {ks[-2]} to {ks[-1]} ({gains[-1]:.2f} nats) is not "
            f"smaller than the one before ({gains[-2]:.2f})",
        )
    claim(
        gains[-1] < stderr,
        f"the bound still falls by {gains[-1]:.2f} nats from k = {ks[-2]} to {ks[-1]}, "
        f"more than its standard error {stderr:.2f}",
    )
