"""The class-conditional prior p(z | y) and the seam for other families: a :class:`Prior`
subclass registered by name (:func:`register_prior`). The book's ``"unit_gaussian"`` is
N(mu_y, I), mu_y learned from the label; ``"standard_normal"`` is N(0, I), the baselines'.
:func:`closest_pair` gives the two closest classes, in prior standard deviations."""

import numpy as np

from .backend import keras, tf, tfd
from .config import ModelConfig
from .errors import CvaeError


def make_prior_network(
    config: ModelConfig, init_radius: float = 0.0, seed: int = 0
) -> keras.Model:
    """one-hot (num_classes,) -> mu_y (latent_dim,), Glorot-initialised (all means within about a unit),
    then spread on a circle of ``init_radius`` > 0 (:func:`spread_class_means`; :mod:`cvae_lib.train`)."""
    glorot = lambda i: keras.initializers.GlorotUniform(seed=seed + i)  # noqa: E731
    network = keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=(config.num_classes,)),
            keras.layers.Dense(
                2 * config.latent_dim, kernel_initializer=glorot(0), name="prior_hidden"
            ),
            keras.layers.Dense(
                config.latent_dim, kernel_initializer=glorot(1), name="prior_mean"
            ),
        ],
        name="prior_network",
    )
    if init_radius > 0:
        spread_class_means(
            network,
            circle_means(
                config.num_classes, config.latent_dim, init_radius, config.start_order
            ),
            seed,
        )
    return network


def circle_means(
    num_classes: int, latent_dim: int, radius: float, order=None
) -> np.ndarray:
    """Targets evenly spaced, the classes in ``order`` (default: by label), on a circle of ``radius`` in the
    first two dimensions, or on [-radius, radius] in a 1-D latent space (where cos alone would pair them)."""
    targets = np.zeros((num_classes, latent_dim), np.float32)
    place = np.argsort(np.arange(num_classes) if order is None else order)
    if latent_dim == 1:
        targets[:, 0] = np.linspace(-radius, radius, num_classes)[place]
        return targets
    angles = 2 * np.pi * place / num_classes
    targets[:, 0] = radius * np.cos(angles)
    targets[:, 1] = radius * np.sin(angles)
    return targets


def spread_class_means(
    network: keras.Model, targets: np.ndarray, seed: int = 0
) -> None:
    """Set the first layer so the network maps one-hot y exactly to ``targets[y]``: row y of
    W1 solves W2^T h = target_y, minimum-norm plus a small random part in the null space
    of W2^T, which keeps the hidden units distinct so gradients still move every weight."""
    hidden, mean = network.layers
    w2, b2 = mean.get_weights()
    solve = np.linalg.pinv(w2.T)  # (hidden, latent)
    rows = (targets - b2) @ solve.T
    null = np.eye(w2.shape[0]) - solve @ w2.T
    rng = np.random.default_rng(seed)
    rows += 0.1 * rng.standard_normal(rows.shape) @ null.T
    _, b1 = hidden.get_weights()
    hidden.set_weights([(rows - b1).astype(np.float32), b1])


def prior_distribution(class_means: tf.Tensor) -> tfd.Distribution:
    """N(mu_y, I) for a batch of class means (unit covariance: only the mean is learned)."""
    return tfd.MultivariateNormalDiag(
        loc=class_means, scale_diag=tf.ones_like(class_means)
    )


class Prior(tf.Module):
    """A family of class-conditional priors p(z | y): subclasses give :meth:`distribution`, the
    rest follows; what it learns lives in :meth:`networks`, which checkpoints save."""

    def __init__(self, config: ModelConfig, init_radius: float = 0.0, seed: int = 0):
        super().__init__(name=type(self).__name__)
        self.config = config

    def distribution(self, labels: tf.Tensor) -> tfd.Distribution:
        """p(z | y) for each label, batch shape (N,), event shape (latent_dim,)."""
        raise NotImplementedError

    def networks(self) -> dict[str, keras.Model]:
        """Named networks holding its weights, saved in checkpoints (none by default)."""
        return {}

    def class_means(self, labels: tf.Tensor) -> tf.Tensor:
        """mu_y = E[z | y] for each label, shape (N, latent_dim)."""
        return self.distribution(labels).mean()

    def class_log_probs(self, z: tf.Tensor) -> tf.Tensor:
        """log p(z | c) of each code under every class c, shape (N, num_classes)."""
        every_class = self.distribution(tf.range(self.config.num_classes))
        return every_class.log_prob(z[:, None, :])


class UnitGaussianPrior(Prior):
    """N(mu_y, I), mu_y learned by :func:`make_prior_network`, started on a circle of ``init_radius``."""

    def __init__(self, config: ModelConfig, init_radius: float = 0.0, seed: int = 0):
        super().__init__(config)
        self.network = make_prior_network(config, init_radius, seed=seed)

    def networks(self) -> dict[str, keras.Model]:
        return {"prior_network": self.network}

    def class_means(self, labels: tf.Tensor) -> tf.Tensor:
        return self.network(
            tf.one_hot(tf.cast(labels, tf.int32), self.config.num_classes)
        )

    def distribution(self, labels: tf.Tensor) -> tfd.Distribution:
        return prior_distribution(self.class_means(labels))

    def class_log_probs(self, z: tf.Tensor) -> tf.Tensor:
        """-||z - mu_c||^2 / 2 (the log density up to a constant that is the same for every class)."""
        means = self.class_means(tf.range(self.config.num_classes))
        return -0.5 * tf.reduce_sum(tf.square(z[:, None, :] - means[None]), axis=-1)


class StandardNormalPrior(Prior):
    """N(0, I) for every class: nothing learned, no class regions."""

    def distribution(self, labels: tf.Tensor) -> tfd.Distribution:
        return prior_distribution(
            tf.zeros(tf.stack([tf.shape(labels)[0], self.config.latent_dim]))
        )


#: Prior families by the name a :class:`~cvae_lib.config.ModelConfig` gives in ``prior``.
PRIOR_FAMILIES: dict[str, type] = {}


def register_prior(name: str, family: type) -> type:
    """Make ``family`` (a :class:`Prior` subclass) buildable as ``ModelConfig(prior=name)``."""
    if not (isinstance(family, type) and issubclass(family, Prior)):
        raise CvaeError(
            f"a prior family must be a subclass of cvae_lib.prior.Prior, got {family!r}"
        )
    PRIOR_FAMILIES[name] = family
    return family


register_prior("unit_gaussian", UnitGaussianPrior)
register_prior("standard_normal", StandardNormalPrior)


def make_prior(config: ModelConfig, init_radius: float = 0.0, seed: int = 0) -> Prior:
    """The prior of the family ``config.prior`` names."""
    if config.prior not in PRIOR_FAMILIES:
        raise CvaeError(
            f"unknown prior family {config.prior!r}: known are {', '.join(sorted(PRIOR_FAMILIES))}"
        )
    return PRIOR_FAMILIES[config.prior](config, init_radius, seed)


def class_separation(prior: tfd.Distribution) -> np.ndarray:
    """Distances (C x C) of per-class distributions' means, in their average std."""
    means = np.asarray(prior.mean(), np.float64)
    scale = float(np.mean(np.asarray(prior.stddev())))
    return np.linalg.norm(means[:, None] - means[None], axis=-1) / scale


def closest_pair(separation) -> tuple[int, int, float]:
    """``(i, j, distance)``, i < j: the two closest classes of a :func:`class_separation` matrix."""
    separation = np.asarray(separation, np.float64)
    gaps = separation + np.diag(np.full(len(separation), np.inf))
    i, j = np.unravel_index(np.argmin(gaps), gaps.shape)
    return int(min(i, j)), int(max(i, j)), float(gaps[i, j])
