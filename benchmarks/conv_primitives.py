"""The training step's convolutions as oneDNN runs them: time and FLOP rate of each.

    nice -n 5 .venv/bin/python benchmarks/conv_primitives.py [--steps 20] [--without-onednn] [--inter-op 1] [--json]

Why: the profile (``profile_step.py``) says 87% of the step is convolutions but not
how well each one runs. This runs the library's compiled step (as
:func:`cvae_lib.train.train` builds it) in a child process with ``ONEDNN_VERBOSE=1``,
which makes oneDNN print every primitive it executes with its problem shape, its
implementation and its time, and sums them per step. Each row is one convolution
problem and pass; its FLOP rate is 2 x the multiply-accumulates of that problem
(useful ones: a strided pass counts no zeros) over oneDNN's own time. The summary
asks how fast the step would be if every convolution ran as fast as the fastest one
here.

oneDNN times a primitive from its start to its end; two ops that TensorFlow runs at
the same moment share the two cores, so the sum of primitive times can exceed the
step's wall time; ``--inter-op 1`` runs one op at a time, so each primitive's time is
its own. CPU only: on a GPU oneDNN is not used.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time

MARK = "CONV_PRIMITIVES_TIMED_STEPS"

#: The passes of a forward convolution, named from the point of view of a layer built
#: on it: for a Conv2D layer its forward pass is oneDNN's forward_training; for a
#: transposed convolution (and PixelLogits) the roles of forward and backward_data swap.
PASSES = {
    "Conv2D": {
        "forward_training": "forward",
        "backward_data": "input gradient",
        "backward_weights": "weight gradient",
    },
    "transposed": {
        "backward_data": "forward",
        "forward_training": "input gradient",
        "backward_weights": "weight gradient",
    },
}


def run_steps(steps: int, inter_op: int = 0, intra_op: int = 0) -> None:
    """Child process: warm up the library's step, print MARK, run ``steps`` timed steps.

    ``inter_op`` / ``intra_op``: TensorFlow's thread pools (0: its default). With
    ``inter_op=1`` the ops run one at a time, so each kernel's time is its own, not
    shared with a concurrent one.
    """
    from cvae_lib.backend import tf

    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from profile_step import library_step

    model, step, batches = library_step(steps)
    for i, (x, y) in enumerate(batches[:5]):
        step(x, y, tf.constant([0, i], tf.int32))
    print(layer_table(model), flush=True)
    print(MARK, flush=True)
    start = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        out = step(x, y, tf.constant([1, i], tf.int32))
    float(out[0])
    print(f"STEP_MS {1000 * (time.perf_counter() - start) / steps}", flush=True)


def layer_table(model) -> str:
    """JSON: for each convolution layer, the oneDNN problem it runs on and how."""
    from cvae_lib.backend import keras
    from cvae_lib.decoder import PixelLogits

    rows = []
    for net in (model.encoder, model.decoder):
        for index, layer in enumerate(net.layers):
            if not isinstance(
                layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
            ):
                continue
            (h, _, c), (oh, _, f) = layer.input_shape[1:], layer.output_shape[1:]
            transposed = isinstance(layer, keras.layers.Conv2DTranspose) or (
                isinstance(layer, PixelLogits) and layer.runs_as_transposed()
            )
            # A transposed convolution is oneDNN's convolution from its output to its input.
            shape = (f, c, oh, h) if transposed else (c, f, h, oh)
            # The encoder's first layer gets no input gradient: its input is the data.
            first = net is model.encoder and not rows
            rows.append(
                {
                    "layer": f"{net.name} {index} {type(layer).__name__}",
                    "shape": shape,
                    "first": first,
                    "dtype": layer.compute_dtype,
                    "kernel": layer.kernel_size[0],
                    "stride": layer.strides[0],
                    "passes": "transposed" if transposed else "Conv2D",
                }
            )
    return "LAYERS " + json.dumps(rows)


def problem(descriptor: str) -> dict:
    """'mb256_ic16oc32_ih14oh14kh5sh1...' -> {'mb': 256, 'ic': 16, ...}."""
    return {key: int(value) for key, value in re.findall(r"([a-z]+)(\d+)", descriptor)}


def macs(p: dict) -> int:
    """Multiply-accumulates of the forward problem (the same count for each pass)."""
    return (
        p["mb"]
        * p["oc"]
        * p["oh"]
        * p.get("ow", 1)
        * p["ic"]
        * p["kh"]
        * p.get("kw", 1)
        // p.get("g", 1)
    )


def step_ms(output: str) -> float:
    """The child's wall time per timed step, in ms."""
    return float(re.search(r"STEP_MS ([\d.]+)", output).group(1))


def summarise(output: str) -> dict:
    layers = json.loads(re.search(r"^LAYERS (.*)$", output, re.M).group(1))
    timed = output.split(MARK, 1)[1]
    lines = [
        line.split(",")
        for line in timed.splitlines()
        if line.startswith("onednn_verbose") and ",exec," in line
    ]
    per_step = collections.defaultdict(lambda: [0.0, 0])
    other_ms = collections.Counter()
    for fields in lines:
        kind, impl, pass_, descriptor, ms = (
            fields[5],
            fields[6],
            fields[7],
            fields[-2],
            float(fields[-1]),
        )
        if kind == "convolution":
            dtype = "bfloat16" if "bf16" in fields[8] else "float32"
            per_step[(pass_, descriptor, impl, dtype)][0] += ms
            per_step[(pass_, descriptor, impl, dtype)][1] += 1
        else:
            other_ms[kind] += ms
    rows = []
    for (pass_, descriptor, impl, dtype), (ms, count) in per_step.items():
        p = problem(descriptor)
        users = []
        for row in layers:
            role = PASSES[row["passes"]].get(pass_, pass_)
            if (
                tuple(row["shape"]) == (p["ic"], p["oc"], p["ih"], p["oh"])
                and row["kernel"] == p["kh"]
                and row["stride"] == p.get("sh", 1)
                and row["dtype"] == dtype
                and not (row["first"] and role == "input gradient")
            ):
                users.append(f"{row['layer']} {role}")
        rows.append(
            {
                "pass": pass_,
                "problem": descriptor,
                "implementation": impl,
                "dtype": dtype,
                "ms": ms,
                "count": count,
                "flops": 2 * macs(p) * count,
                "used_by": users,
            }
        )
    return {
        "step_ms": step_ms(timed),
        "rows": rows,
        "other_primitives_ms": dict(other_ms),
    }


def report(summary: dict, steps: int) -> dict:
    rows = sorted(summary["rows"], key=lambda r: -r["ms"])
    for row in rows:
        row["ms_per_step"] = row["ms"] / steps
        row["per_step"] = row["count"] / steps
        row["gflops_per_s"] = row["flops"] / (row["ms"] / 1000) / 1e9
    conv_ms = sum(r["ms_per_step"] for r in rows)
    conv_flops = sum(r["flops"] for r in rows) / steps
    big = [r for r in rows if r["ms_per_step"] >= 0.5]
    best = max(r["gflops_per_s"] for r in big)
    return {
        "step_ms": summary["step_ms"],
        "convolution_ms_per_step": conv_ms,
        "convolution_gflop_per_step": conv_flops / 1e9,
        "convolution_gflops_per_s": conv_flops / (conv_ms / 1000) / 1e9,
        "best_primitive_gflops_per_s": best,
        "convolution_ms_at_best_rate": conv_flops / (best * 1e9) * 1000,
        "other_primitives_ms_per_step": {
            k: v / steps for k, v in summary["other_primitives_ms"].items()
        },
        "rows": rows,
    }


def timed_child(args, **env) -> str:
    """Run the timed steps in a child process with ``env`` added; its stdout."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", **env)
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--steps",
            str(args.steps),
            "--inter-op",
            str(args.inter_op),
            "--intra-op",
            str(args.intra_op),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if child.returncode != 0 or MARK not in child.stdout:
        sys.exit(
            f"the timed child process failed (exit {child.returncode}):\n{child.stderr[-3000:]}"
        )
    return child.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=20, help="timed steps (default 20)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--without-onednn",
        action="store_true",
        help="also time the step with TensorFlow's own kernels (TF_ENABLE_ONEDNN_OPTS=0)",
    )
    parser.add_argument(
        "--inter-op",
        type=int,
        default=0,
        metavar="N",
        help="TensorFlow's inter-op threads (default 0: its own choice; 1: one op at a time)",
    )
    parser.add_argument(
        "--intra-op",
        type=int,
        default=0,
        metavar="N",
        help="TensorFlow's intra-op threads (default 0: its own choice)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inter_op < 0 or args.intra_op < 0:
        parser.error("thread counts must be 0 (TensorFlow's choice) or more")
    if args.child:
        run_steps(args.steps, args.inter_op, args.intra_op)
        return
    result = report(summarise(timed_child(args, ONEDNN_VERBOSE="1")), args.steps)
    result["threads"] = {"inter_op": args.inter_op, "intra_op": args.intra_op}
    if args.without_onednn:
        result["step_ms_without_onednn"] = step_ms(
            timed_child(args, TF_ENABLE_ONEDNN_OPTS="0")
        )
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"step {result['step_ms']:.1f} ms wall; oneDNN convolutions "
        f"{result['convolution_ms_per_step']:.1f} ms for {result['convolution_gflop_per_step']:.1f} GFLOP "
        f"({result['convolution_gflops_per_s']:.0f} GFLOP/s)"
    )
    print(f"{'ms/step':>8} {'GFLOP/s':>8}  pass              problem (used by)")
    for row in result["rows"]:
        if row["ms_per_step"] >= 0.2:
            print(
                f"{row['ms_per_step']:8.2f} {row['gflops_per_s']:8.0f}  {row['pass']:17s} "
                f"{row['problem'].split('_', 1)[1][:22]:22s} {row['implementation']}  ({'; '.join(row['used_by'])})"
            )
    print(
        f"fastest convolution here (>= 0.5 ms/step): {result['best_primitive_gflops_per_s']:.0f} GFLOP/s; "
        f"all convolutions at that rate: {result['convolution_ms_at_best_rate']:.1f} ms per step"
    )
    if args.without_onednn:
        print(
            f"the same step with TensorFlow's own kernels (TF_ENABLE_ONEDNN_OPTS=0): "
            f"{result['step_ms_without_onednn']:.1f} ms wall"
        )
    others = ", ".join(
        f"{k} {v:.1f} ms"
        for k, v in result["other_primitives_ms_per_step"].items()
        if v >= 0.05
    )
    print(f"other oneDNN primitives per step: {others}")


if __name__ == "__main__":
    main()
