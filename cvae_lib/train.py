"""Training: a compiled step, validation, progress, history, resumable state. The class means start on a circle and
stand still while the warm-up ramps the reconstruction's (or KL's) weight, then learn at ``prior_learning_rate``, kept
apart by ``class_weight`` times the class term (the training chapter shows why). Reported losses are the true -ELBO."""

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backend import GPUS, keras, tf
from .config import TrainConfig
from .data import (
    Digits,
    binarize,
    effective_batch_size,
    evaluation_dataset,
    fixed_binarization,
    steps_per_epoch,
    training_dataset,
)
from .errors import CvaeError
from .prior import class_separation, closest_pair
from .progress import Progress, check_mode


@dataclass
class History:
    """Per-epoch records: train/validation negative ELBO and its parts, speed."""

    epochs: list = field(default_factory=list)

    def series(self, key: str) -> np.ndarray:
        return np.array([record[key] for record in self.epochs], dtype=float)

    def to_json(self) -> str:
        return json.dumps({"epochs": self.epochs}, indent=2)

    @classmethod
    def from_dict(cls, record: dict) -> "History":
        return cls(list(record.get("epochs", [])))


def default_jit_compile() -> bool:
    """XLA on GPU only: on a CPU it is several times slower (book/performance.md)."""
    return bool(GPUS)


def make_train_step(
    model,
    optimizer,
    prior_optimizer,
    *,
    jit_compile: bool = True,
    binarize_input: bool = True,
):
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
        prior_optimizer.apply_gradients(zip(grads[len(networks) :], priors))
        return (
            tf.reduce_mean(reconstruction),
            tf.reduce_mean(kl),
            tf.reduce_mean(class_nll),
        )

    return step


def make_eval_step(model, *, jit_compile: bool = True):
    """Per-image (reconstruction, KL) on a batch, no gradients."""

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(images, labels, seed):
        return model.loss_terms(images, labels, seed)[:2]

    return step


def evaluate_elbo(
    model, images: np.ndarray, labels: np.ndarray, *, seed: int = 0, eval_step=None
) -> dict:
    """Mean negative ELBO and its parts (nats per image) over the given digits."""
    eval_step = eval_step or make_eval_step(model, jit_compile=default_jit_compile())
    totals = np.zeros(2)
    for i, (x, y) in enumerate(evaluation_dataset(images, labels)):
        recon, kl = eval_step(x, y, tf.constant([seed, i], tf.int32))
        totals += [float(tf.reduce_sum(recon)), float(tf.reduce_sum(kl))]
    recon, kl = totals / len(images)
    return {"neg_elbo": recon + kl, "recon": recon, "kl": kl}


def train(
    model,
    digits: Digits,
    config: TrainConfig | None = None,
    *,
    progress: str = "lines",
    jit_compile: bool | None = None,
    callback=None,
    stream=None,
    state_dir=None,
) -> History:
    """Train ``model`` on ``digits`` (``config``: ``TrainConfig.for_data`` by default); resumes from and keeps a
    :class:`TrainingState` in ``state_dir``, calls ``callback(model, history)`` per epoch; non-finite values stop it."""
    check_mode(progress)  # a misspelt mode fails now, not after minutes of training
    config = config or TrainConfig.for_data(len(digits.x_train))
    jit_compile = default_jit_compile() if jit_compile is None else jit_compile
    stream = stream or sys.stdout
    # Same seed, data and machine give the same weights, bit for bit (process-wide and permanent).
    tf.config.experimental.enable_op_determinism()
    tf.random.set_seed(config.seed)
    runner = _EpochRunner(model, digits, config, jit_compile)
    state = (
        TrainingState(state_dir, model, runner.optimizer, runner.prior_optimizer)
        if state_dir is not None
        else None
    )
    history = state.restore() if state is not None else History()
    first = len(history.epochs) + 1
    if history.epochs and progress != "none":
        print(f"resuming at epoch {first} of {config.epochs}", file=stream, flush=True)
    if first > config.epochs and callback is not None:  # stopped before the checkpoint
        callback(model, history)
    show = _progress_shower(progress, config.epochs, stream)
    for epoch in range(first, config.epochs + 1):
        set_epoch_weights(model, config, epoch)
        if epoch == config.warmup_epochs + 1:  # the means may move
            runner.prior_optimizer.learning_rate.assign(config.prior_learning_rate)
        record = runner.run(epoch)
        history.epochs.append(record)
        if state is not None:
            state.save(history)
        show(record)
        if callback is not None:
            callback(model, history)
    return history


def learning_rate_schedule(config, steps_per_epoch: int):
    """The encoder and decoder's learning rate: a number, or Keras's warm-up and cosine decay."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    total = config.epochs * steps_per_epoch
    warm = max(1, total // 20)
    return keras.optimizers.schedules.CosineDecay(
        0.0, total - warm, warmup_target=config.learning_rate, warmup_steps=warm
    )


def set_epoch_weights(model, config, epoch: int) -> None:
    """Set ``epoch``'s weights: the warm-up's ramp, and the class weight, linear to ``class_weight_final`` after it."""
    warmup = config.warmup_epochs
    ramp = min(1.0, (epoch - 1) / warmup) if warmup else 1.0
    model.recon_weight.assign(ramp if config.warmup_shape == "reconstruction" else 1.0)
    model.kl_anneal.assign(ramp if config.warmup_shape == "kl" else 1.0)
    weight = model.config.class_weight
    if config.class_weight_final is not None and epoch > warmup:
        share = (epoch - warmup - 1) / max(1, config.epochs - warmup - 1)
        weight += share * (config.class_weight_final - weight)
    model.class_weight.assign(weight)


def _progress_shower(progress: str, epochs: int, stream):
    """``show(record)`` for a finished epoch: a line, a progress bar, or nothing."""
    bar = Progress(  # mode "none" when there is no bar: its updates do nothing
        epochs,
        "training",
        "epochs",
        "bar" if progress == "bar" else "none",
        stream,
        min_interval=0,
    )

    def show(record: dict) -> None:
        if progress == "lines":  # epoch, loss parts, validation loss, separation, speed
            print(
                f"epoch {record['epoch']:>{len(str(epochs))}}/{epochs}  "
                f"loss {record['loss']:9.2f} (recon {record['recon']:8.2f} + KL {record['kl']:6.2f})  "
                f"val {record['val_loss']:9.2f}  means >= {record['min_mean_distance']:5.2f} apart  "
                f"{record['images_per_s']:7.0f} img/s",
                file=stream,
                flush=True,
            )
        bar.update(
            record["epoch"],
            f"loss {record['loss']:.1f}, val {record['val_loss']:.1f}, "
            f"{record['images_per_s']:.0f} img/s",
        )

    return show


class _EpochRunner:
    """One epoch of training and its record: optimizers, compiled steps, validation, checks."""

    def __init__(self, model, digits: Digits, config, jit_compile: bool):
        self.model, self.digits, self.config = model, digits, config
        self.steps = steps_per_epoch(len(digits.x_train), config.batch_size)
        self.optimizer = keras.optimizers.Adam(
            learning_rate_schedule(config, self.steps)
        )
        self.prior_optimizer = keras.optimizers.Adam(
            # 0 in the warm-up; Adam copies the rate, so train() sets Adam's after it
            0.0 if config.warmup_epochs else config.prior_learning_rate
        )
        self.step = make_train_step(
            model,
            self.optimizer,
            self.prior_optimizer,
            jit_compile=jit_compile,
            binarize_input=model.config.binarize,
        )
        self.eval_step = make_eval_step(model, jit_compile=jit_compile)
        self.val_x = (
            fixed_binarization(digits.x_test)
            if model.config.binarize
            else digits.x_test
        )
        self.images_per_epoch = self.steps * effective_batch_size(
            len(digits.x_train), config.batch_size
        )

    def run(self, epoch: int) -> dict:
        """Train epoch ``epoch``; its history record."""
        model, digits, config = self.model, self.digits, self.config
        start = time.perf_counter()
        sums = np.zeros(3)
        for i, (x, y) in enumerate(
            training_dataset(
                digits.x_train, digits.y_train, config.batch_size, config.seed, epoch
            )
        ):
            seed = tf.constant([config.seed, epoch * 100_000 + i], tf.int32)
            sums += [float(term) for term in self.step(x, y, seed)]
        seconds = time.perf_counter() - start
        if epoch == config.epochs:
            model.finish_training(
                digits
            )  # before the last checkpoint (see ConditionalVAE)
        sums /= self.steps
        val = evaluate_elbo(model, self.val_x, digits.y_test, eval_step=self.eval_step)
        record = {
            "epoch": epoch,
            "loss": sums[:2].sum(),
            "recon": sums[0],
            "kl": sums[1],
            "class_nll": sums[2],
            "val_loss": val["neg_elbo"],
            "val_recon": val["recon"],
            "val_kl": val["kl"],
            "seconds": seconds,
            "images_per_s": self.images_per_epoch / seconds,
            # the closest two means of p(z | y), in prior standard deviations
            "min_mean_distance": closest_pair(
                class_separation(model.prior(tf.range(model.config.num_classes)))
            )[2],
            "prior_learning_rate": float(self.prior_optimizer.learning_rate.numpy()),
            "recon_weight": float(model.recon_weight.numpy()),
            "kl_anneal": float(model.kl_anneal.numpy()),
            "class_weight": float(model.class_weight.numpy()),
        }
        if not all(math.isfinite(v) for v in record.values()) or not all(
            np.isfinite(v.numpy()).all() for v in model.trainable_variables
        ):
            kept = (
                f"epoch {epoch - 1}'s checkpoint is kept"
                if epoch > 1
                else "nothing was saved"
            )
            raise CvaeError(
                f"training diverged in epoch {epoch}: the loss or the weights became non-finite; "
                f"{kept} (a lower learning rate may help)"
            )
        record["class_means"] = np.asarray(
            model.class_means(tf.range(model.config.num_classes))
        ).tolist()
        return record


class TrainingState:
    """Weights, optimizers, warm-up weight and history, saved atomically after each epoch so an interrupted
    run resumes exactly (data order and random streams are functions of seed, epoch and step)."""

    def __init__(self, directory, model, optimizer, prior_optimizer):
        self.model, self.optimizers = model, (optimizer, prior_optimizer)
        self.history = tf.Variable("", dtype=tf.string, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            prior_optimizer=prior_optimizer,
            history=self.history,
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(directory), max_to_keep=1
        )

    def restore(self) -> History:
        """The history of the saved state (empty if there is none), its weights and optimizers restored."""
        if self.manager.latest_checkpoint is None:
            return History()
        optimizer, prior_optimizer = self.optimizers
        optimizer.build(
            self.model.network_variables
        )  # create the moments so they are restored now
        prior_optimizer.build(self.model.prior_variables)
        try:
            self.checkpoint.restore(
                self.manager.latest_checkpoint
            ).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as err:
            raise CvaeError(
                f"the training state in {self.manager.directory} is damaged or from another "
                f"model ({str(err).splitlines()[0][:120]}); train again with --overwrite"
            ) from None
        return History.from_dict(json.loads(self.history.numpy().decode()))

    def save(self, history: History) -> None:
        self.history.assign(json.dumps({"epochs": history.epochs}))
        try:
            self.manager.save(checkpoint_number=len(history.epochs))
        except (
            tf.errors.OpError
        ) as err:  # such as a full disk; the previous state stays the latest
            for partial in Path(self.manager.directory).glob("*_temp"):
                shutil.rmtree(partial, ignore_errors=True)
            reason = err.message.rsplit("; ", 1)[-1].split(" [Op:")[
                0
            ]  # the OS's words, without TF's op name
            raise CvaeError(
                f"cannot write the training state to {self.manager.directory}: {reason}"
            ) from None
