"""Compute precision of the encoder and decoder: float32, or bfloat16 with float32 weights.

``"mixed_bfloat16"`` is Keras's mixed precision: every weight, gradient and optimiser
slot stays float32, but the convolutions multiply bfloat16 copies of their inputs and
weights (8 significant bits instead of 24) and keep bfloat16 activations. On a CPU
with AVX-512 BF16 or AMX instructions, or an NVIDIA GPU from Ampere on, those
convolutions run on bfloat16 units that do about twice the work per cycle; the
performance chapter (``book/performance.md``) has the measured gain and the trained
model's quality next to float32's.

What stays float32 regardless, because its precision is the model's, not the
convolutions': the prior network (the class means), the encoder's last layer (the
posterior's parameters), the decoder's last layer (the pixel logits), and every
distribution, loss and KL. bfloat16 has float32's exponent range, so unlike float16
it needs no loss scaling.
"""

from __future__ import annotations

from .errors import CvaeError

#: Precisions understood by :class:`~cvae_lib.config.TrainConfig`.
PRECISIONS = ("float32", "mixed_bfloat16")


def check_precision(value) -> str:
    """``value`` if it is a known precision, else one clear error naming the choices."""
    if value not in PRECISIONS:
        raise CvaeError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def hidden_layer_dtype(precision: str) -> str | None:
    """The Keras ``dtype`` for the hidden layers of the encoder and decoder.

    ``None`` leaves Keras's default (float32); a policy name makes the layer compute
    in that policy. Output layers are always built with ``"float32"``.
    """
    check_precision(precision)
    return None if precision == "float32" else precision


def native_bfloat16(cpu_flags=None) -> bool:
    """Whether this machine computes bfloat16 in hardware (where the option pays).

    A GPU counts from compute capability 8.0 (Ampere); a CPU with ``avx512_bf16`` or
    ``amx_bf16`` in its flags. Elsewhere bfloat16 is emulated and slower than float32.
    """
    from .backend import GPUS, tf
    from .hardware import cpu_info

    if GPUS and cpu_flags is None:
        capability = tf.config.experimental.get_device_details(GPUS[0]).get("compute_capability", (0, 0))
        return tuple(capability) >= (8, 0)
    flags = cpu_info()["flags"] if cpu_flags is None else set(cpu_flags)
    return bool({"avx512_bf16", "amx_bf16"} & flags)
