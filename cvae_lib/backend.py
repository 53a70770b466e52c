"""The one place that imports TensorFlow, tf-keras and TensorFlow Probability, with
``TF_USE_LEGACY_KERAS=1`` set first, so that ``tf.keras`` is the Keras 2 that TFP's layers need."""

import contextlib
import os
import sys
import warnings

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    # tf.keras may already be Keras 3; TFP gets tf_keras below either way, so only warn.
    warnings.warn(
        "TensorFlow was imported before cvae_lib; set TF_USE_LEGACY_KERAS=1 before "
        "importing TensorFlow so tf.keras and tf_keras agree.",
        stacklevel=2,
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# GPU memory is taken as needed, so that two processes (test workers) can share one GPU.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ log noise


@contextlib.contextmanager
def _native_stderr_silenced():
    """Hide TensorFlow's C++ chatter on file descriptor 2 (``CVAE_VERBOSE_TF=1`` shows it)."""
    try:
        sys.stderr.flush()
        saved = None if os.environ.get("CVAE_VERBOSE_TF") == "1" else os.dup(2)
    except (OSError, ValueError):
        saved = None
    if saved is None:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _native_stderr_silenced():
    import tensorflow as tf  # noqa: E402, I001  (kept in the order they load)
    import tf_keras as keras  # noqa: E402
    import tensorflow_probability as tfp  # noqa: E402

    #: The GPUs TensorFlow sees; empty on a CPU-only machine. (Listed here, quietly.)
    GPUS = tf.config.list_physical_devices("GPU")

tfd, tfb, tfpl = tfp.distributions, tfp.bijectors, tfp.layers

__all__ = ["tf", "keras", "tfp", "tfd", "tfb", "tfpl", "GPUS"]
