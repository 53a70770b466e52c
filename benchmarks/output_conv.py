"""The decoder's last layer two ways: Keras ``Conv2D`` and :class:`cvae_lib.decoder.PixelLogits`.

    nice -n 5 .venv/bin/python benchmarks/output_conv.py [--repeats 20]

Both compute the same 16 -> 1 channel, 5x5, stride-1 "same" convolution on a batch of
256 28x28 feature maps, with the same weights; each is timed for a forward pass plus
the gradients the training step needs (with respect to its input and its weights),
in three rounds of ``repeats`` calls of each, after three untimed calls. Prints
milliseconds per call (medians) and the largest difference of the outputs and
gradients.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    from cvae_lib.backend import keras, tf
    from cvae_lib.decoder import PixelLogits

    x = tf.random.normal([256, 28, 28, 16], seed=0)
    upstream = tf.random.normal([256, 28, 28, 1], seed=1)
    layers = {
        "Conv2D": keras.layers.Conv2D(1, 5, 1, "same"),
        "PixelLogits": PixelLogits(1, 5, 1, "same"),
    }
    for layer in layers.values():
        layer.build(x.shape)
    layers["PixelLogits"].set_weights(layers["Conv2D"].get_weights())

    def timed(layer):
        @tf.function
        def forward_backward(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(y * upstream)
            return [y] + tape.gradient(loss, [x] + layer.trainable_variables)

        return forward_backward

    calls = {name: timed(layer) for name, layer in layers.items()}
    results = {name: call(x) for name, call in calls.items()}
    for _ in range(2):
        for call in calls.values():
            call(x)
    times = {name: [] for name in calls}
    for _ in range(3):  # rounds of `repeats` calls each, A A ... B B ... A A ...
        for name, call in calls.items():
            for _ in range(args.repeats):
                start = time.perf_counter()
                float(tf.reduce_sum(call(x)[-1]))
                times[name].append(1000 * (time.perf_counter() - start))
    for name, values in times.items():
        print(
            f"{name:12s} {statistics.median(values):6.2f} ms per forward + backward (median of {len(values)})"
        )
    diff = max(
        float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))
        for a, b in zip(results["Conv2D"], results["PixelLogits"])
    )
    print(
        f"largest difference of outputs and gradients, relative to their largest value: {diff:.1e}"
    )


if __name__ == "__main__":
    main()
