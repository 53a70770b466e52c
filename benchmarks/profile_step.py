"""Where the training step's time goes, by kind of op and by layer (TensorFlow's tracer).

    nice -n 5 .venv/bin/python benchmarks/profile_step.py [--steps 6]

Traces the library's compiled step (as :func:`cvae_lib.train.train` builds it) for a
few batches after warm-up and sums the tracer's op durations on TensorFlow's compute
threads. Times are thread time per step (two threads can run ops at once), so the
shares are what matters; under machine load the absolute numbers drift.
"""

from __future__ import annotations

import argparse
import collections
import glob
import tempfile


def library_step(steps: int):
    """(model, compiled step, up to ``steps`` batches): the reference-size model and the
    step :func:`cvae_lib.train.train` runs, on the offline digits (also used by
    ``conv_primitives.py``)."""
    from cvae_lib.backend import keras
    from cvae_lib.config import ModelConfig, TrainConfig
    from cvae_lib.data import load_digits, training_dataset
    from cvae_lib.model import ConditionalVAE
    from cvae_lib.train import default_jit_compile, make_train_step

    digits = load_digits("sample")
    config = TrainConfig()
    model = ConditionalVAE(ModelConfig())
    step = make_train_step(
        model,
        keras.optimizers.Adam(config.learning_rate),
        keras.optimizers.Adam(config.prior_learning_rate),
        jit_compile=default_jit_compile(),
    )
    batches = list(
        training_dataset(digits.x_train, digits.y_train, config.batch_size, 0).take(
            steps
        )
    )
    return model, step, batches


def profile(steps: int) -> tuple[dict, dict]:
    from cvae_lib.backend import tf  # noqa: I001  (first: it sets up TensorFlow quietly)
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    _, step, batches = library_step(steps)
    for i, (x, y) in enumerate(batches):  # warm-up: trace, kernel caches
        step(x, y, tf.constant([0, i], tf.int32))
    logdir = tempfile.mkdtemp(prefix="cvae-profile-")
    tf.profiler.experimental.start(logdir)
    for i, (x, y) in enumerate(batches):
        float(step(x, y, tf.constant([1, i], tf.int32))[0])
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(
        sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb"
    ) as handle:
        space.ParseFromString(handle.read())
    by_kind, by_layer = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:
                    continue  # executor bookkeeping, not an op
                op, kind = name.rsplit(":", 1)
                ms = event.duration_ps / 1e9 / len(batches)
                by_kind["convolutions" if "Conv2D" in kind else kind] += ms
                parts = [p for p in op.split("/") if p != "gradient_tape"]
                layer = (
                    "/".join(parts[:2])
                    if parts[0] in ("encoder", "decoder", "prior_network")
                    else "other"
                )
                by_layer[
                    f"{layer} {'backward' if 'gradient_tape' in op else 'forward'}"
                ] += ms
    return dict(by_kind), dict(by_layer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    by_kind, by_layer = profile(args.steps)
    total = sum(by_kind.values())
    print(f"op thread time per step: {total:.0f} ms")
    for kind, ms in sorted(by_kind.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {100 * ms / total:5.1f}%  {ms:7.1f} ms  {kind}")
    print("by layer (forward + backward):")
    layers = collections.Counter()
    for key, ms in by_layer.items():
        layers[key.rsplit(" ", 1)[0]] += ms
    for layer, ms in sorted(layers.items(), key=lambda kv: -kv[1]):
        if ms >= 0.005 * total:
            print(f"  {100 * ms / total:5.1f}%  {ms:7.1f} ms  {layer}")


if __name__ == "__main__":
    main()
