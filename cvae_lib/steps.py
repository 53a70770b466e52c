"""The compiled training and evaluation steps: plain gradient steps, XLA-compiled on a GPU
only (on a CPU, oneDNN's convolutions bound them: ``book/performance.md``)."""

from __future__ import annotations

from .backend import GPUS, tf


def default_jit_compile() -> bool:
    """XLA on GPU only: on a CPU, XLA's convolutions are several times slower than oneDNN's."""
    return bool(GPUS)


def binarize(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Each pixel 1 with probability its grey level: the Bernoulli decoder's likelihood needs
    0/1 pixels, and a fresh draw each time also acts as augmentation."""
    noise = tf.random.stateless_uniform(tf.shape(images), seed=seed)
    return tf.cast(noise < images, images.dtype)


def make_train_step(model, optimizer, prior_optimizer, *, jit_compile: bool = True, binarize_input: bool = True):
    """One compiled gradient step; returns the batch's mean reconstruction, KL and class loss."""
    networks = model.network_variables
    priors = model.prior_variables

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(images, labels, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2)
        if binarize_input:
            images = binarize(images, seeds[0])
        with tf.GradientTape() as tape:
            reconstruction, kl, class_nll = model.loss_terms(images, labels, seeds[1])
            loss = model.objective(reconstruction, kl, class_nll)
        grads = tape.gradient(loss, networks + priors)
        optimizer.apply_gradients(zip(grads[: len(networks)], networks))
        prior_optimizer.apply_gradients(zip(grads[len(networks):], priors))
        return tf.reduce_mean(reconstruction), tf.reduce_mean(kl), tf.reduce_mean(class_nll)

    return step


def make_eval_step(model, *, jit_compile: bool = True):
    """Per-image (reconstruction, KL) on a batch, no gradients."""

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(images, labels, seed):
        return model.loss_parts(images, labels, seed)

    return step
