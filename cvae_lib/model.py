r"""The conditional VAE: prior network + encoder + decoder -> negative ELBO, nats per image::

    -ELBO(x, y) = E_q(z|x)[-log p(x | z)]  +  KL(q(z | x) || N(mu_y, I))
                  \_____ reconstruction ____/   \_________ KL ____________/

with one reparameterised sample of z and the exact KL. ``kl_weighting="reference"`` reproduces the reference's
mistake of weighting the KL by 1/batch_size in training; reported losses are always the true per-image ELBO parts."""

from .backend import keras, tf, tfd
from .config import ModelConfig
from .decoder import make_decoder
from .encoder import make_encoder, posterior_distribution
from .prior import Prior, make_prior


class ConditionalVAE(tf.Module):
    """Class-conditional prior (by default N(mu_y, I): :mod:`cvae_lib.prior`), label-blind encoder and decoder."""

    kind = "cvae"  #: Its name in checkpoints, so a checkpoint of one model kind never loads as another.
    label_inputs = False  #: Whether encoder and decoder read the label (:class:`~cvae_lib.baselines.SohnCVAE`).

    def __init__(self, config: ModelConfig = ModelConfig(), *, seed: int = 0):
        super().__init__(name=self.kind)
        self.config, self.seed = config, seed
        self.class_prior = self._make_prior()
        extra = config.num_classes if self.label_inputs else 0
        self.encoder = make_encoder(config, seed=seed, extra_inputs=extra)
        self.decoder = make_decoder(config, seed=seed, extra_inputs=extra)
        # The objective's weights, set each epoch by cvae_lib.train.set_epoch_weights.
        self.recon_weight = tf.Variable(
            1.0, trainable=False, dtype=tf.float32, name="recon_weight"
        )
        self.kl_anneal = tf.Variable(
            1.0, trainable=False, dtype=tf.float32, name="kl_anneal"
        )
        self.class_weight = tf.Variable(
            float(config.class_weight), trainable=False, name="class_weight"
        )

    def _make_prior(self) -> Prior:
        """p(z | y) of the family the config names (the baselines override it)."""
        return make_prior(self.config, self.config.prior_init_radius, seed=self.seed)

    def networks(self) -> dict[str, keras.Model]:
        """Named networks, in checkpoint order."""
        return {
            **self.class_prior.networks(),
            "encoder": self.encoder,
            "decoder": self.decoder,
        }

    def one_hot(self, labels: tf.Tensor) -> tf.Tensor:
        return tf.one_hot(tf.cast(labels, tf.int32), self.config.num_classes)

    def class_means(self, labels: tf.Tensor) -> tf.Tensor:
        """mu_y for each label, shape (N, latent_dim)."""
        return self.class_prior.class_means(labels)

    def prior(self, labels: tf.Tensor) -> tfd.Distribution:
        """p(z | y), by default N(mu_y, I)."""
        return self.class_prior.distribution(labels)

    def generation_prior(self, labels: tf.Tensor) -> tfd.Distribution:
        """What z is drawn from to *generate* class y: the prior; :mod:`cvae_lib.baselines` overrides it."""
        return self.prior(labels)

    def finish_training(self, digits) -> None:
        """Called by :func:`cvae_lib.train.train` after the last epoch's steps, before its
        checkpoint, for what gradients do not fit (the unconditional VAE's class means)."""

    def posterior(self, images: tf.Tensor, labels: tf.Tensor) -> tfd.Distribution:
        """q(z | x); this model's encoder ignores the label."""
        del labels
        return posterior_distribution(self.encoder(images), self.config.latent_dim)

    def decode_logits(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Pixel logits of p(x | z); this model's decoder ignores the label."""
        del labels
        return self.decoder(z)

    def decode(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Mean image E[x | z] = sigmoid(logits), float32 (N, 28, 28, 1) in [0, 1]."""
        return tf.sigmoid(self.decode_logits(z, labels))

    def loss_terms(self, images: tf.Tensor, labels: tf.Tensor, seed):
        """Per-image (N,) reconstruction and KL (-ELBO), and :meth:`class_nll` of the codes ``class_codes`` picks."""
        posterior = self.posterior(images, labels)
        z = posterior.sample(seed=seed)
        logits = self.decode_logits(z, labels)
        reconstruction = tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits),
            axis=[1, 2, 3],
        )
        prior = self.prior(labels)
        kl = tfd.kl_divergence(posterior, prior)
        if self.config.class_codes == "prior":
            z = prior.sample(seed=tf.random.experimental.stateless_fold_in(seed, 1))
        elif self.config.class_codes == "posterior_mean":
            z = posterior.mean()
        return reconstruction, kl, self.class_nll(z, labels)

    def class_nll(self, z: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """-log p(y | z) under the prior (a softmax over log p(z | c)): not part of the ELBO, but
        weighted in (``class_weight``) it keeps classes apart, like Kingma et al.'s (2014) M2."""
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            logits=self.class_prior.class_log_probs(z), labels=tf.cast(labels, tf.int32)
        )

    def objective(
        self,
        reconstruction: tf.Tensor,
        kl: tf.Tensor,
        class_nll: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """The scalar training minimises, per image: ``recon_weight * reconstruction + kl_weight *
        KL + class_weight * class_nll``, the negative ELBO when the weights are 1, 1 and 0."""
        kl_weight = (  # the reference's KL x 1/batch
            1.0 / tf.cast(tf.shape(kl)[0], kl.dtype)
            if self.config.kl_weighting == "reference"
            else 1.0
        )
        kl_term = tf.maximum(tf.reduce_mean(kl), self.config.free_bits)
        loss = (
            self.recon_weight * tf.reduce_mean(reconstruction)
            + self.kl_anneal * kl_weight * kl_term
        )
        if class_nll is not None:
            loss += self.class_weight * tf.reduce_mean(class_nll)
        return loss

    @property
    def prior_variables(self):
        """What the prior's own optimiser trains (see :mod:`cvae_lib.train`)."""
        return list(self.class_prior.trainable_variables)

    @property
    def network_variables(self):
        """Everything but the prior network: the encoder and decoder weights."""
        prior_ids = {id(v) for v in self.prior_variables}
        return [
            v
            for net in self.networks().values()
            for v in net.trainable_variables
            if id(v) not in prior_ids
        ]
