"""benchmarks/conv_primitives.py: its reading of oneDNN's log and its map from kernels to layers.

The timing itself is measured, not tested; what can be wrong silently is the
arithmetic (FLOPs of a problem) and which layer and pass a logged kernel is credited to.
"""

import importlib.util
import json
from pathlib import Path

import pytest

from cvae_lib.config import ModelConfig
from cvae_lib.model import ConditionalVAE

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "conv_primitives.py"


@pytest.fixture(scope="module")
def conv_primitives():
    spec = importlib.util.spec_from_file_location("conv_primitives", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def layers(conv_primitives):
    """The layer table of the reference-size model, as the child process prints it."""
    line = conv_primitives.layer_table(ConditionalVAE(ModelConfig()))
    assert line.startswith("LAYERS ")
    return json.loads(line[len("LAYERS ") :])


def test_problem_and_macs(conv_primitives):
    p = conv_primitives.problem(
        "mb256_ic16oc32_ih14oh14kh5sh1dh0ph2_iw14ow14kw5sw1dw0pw2"
    )
    assert (p["mb"], p["ic"], p["oc"], p["ih"], p["oh"], p["kh"], p["sh"]) == (
        256,
        16,
        32,
        14,
        14,
        5,
        1,
    )
    assert conv_primitives.macs(p) == 256 * 32 * 14 * 14 * 16 * 5 * 5
    # stride 2: useful multiply-accumulates are counted on the smaller (output) grid
    strided = conv_primitives.problem(
        "mb8_ic16oc16_ih28oh14kh5sh2dh0ph1_iw28ow14kw5sw2dw0pw1"
    )
    assert conv_primitives.macs(strided) == 8 * 16 * 14 * 14 * 16 * 25


def test_layer_table_states_transposed_layers_as_onednn_sees_them(layers):
    by_name = {row["layer"]: row for row in layers}
    # A transposed convolution 14x14x16 -> 28x28x16 is oneDNN's convolution 28 -> 14.
    assert by_name["decoder 5 Conv2DTranspose"]["shape"] == [16, 16, 28, 14]
    assert by_name["decoder 5 Conv2DTranspose"]["passes"] == "transposed"
    # PixelLogits (16 -> 1 channel) runs as the transposed convolution 1 -> 16.
    assert by_name["decoder 7 PixelLogits"]["shape"] == [1, 16, 28, 28]
    assert by_name["decoder 7 PixelLogits"]["passes"] == "transposed"
    assert by_name["encoder 2 Conv2D"]["shape"] == [16, 16, 28, 14]
    assert by_name["encoder 2 Conv2D"]["passes"] == "Conv2D"
    firsts = [row["layer"] for row in layers if row["first"]]
    assert firsts == ["encoder 1 Conv2D"]


def verbose_line(impl, pass_, descriptor, ms, dtype="f32"):
    return (
        f"onednn_verbose,v1,primitive,exec,cpu,convolution,{impl},{pass_},"
        f"src:{dtype}::blocked:acdb::f0 wei:{dtype}:a:blocked:Adcb16a::f0,attr-scratchpad:user,"
        f"alg:convolution_direct,{descriptor},{ms}"
    )


def test_summary_credits_each_kernel_to_its_layers_and_pass(conv_primitives, layers):
    strided = "mb256_ic16oc16_ih28oh14kh5sh2dh0ph1_iw28ow14kw5sw2dw0pw1"
    first = "mb256_ic1oc16_ih28oh28kh5sh1dh0ph2_iw28ow28kw5sw1dw0pw2"
    output = "\n".join(
        [
            "LAYERS " + json.dumps(layers),
            verbose_line(
                "brg_conv_fwd:avx512_core", "forward_training", strided, 99.0
            ),  # warm-up: ignored
            conv_primitives.MARK,
            verbose_line("brgconv_strided:avx512_core", "backward_data", strided, 2.0),
            verbose_line("brgconv_strided:avx512_core", "backward_data", strided, 3.0),
            verbose_line("brg_conv_bwd:avx512_core", "backward_data", first, 4.0),
            "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32 dst:f32,,,16x16x5x5,0.5",
            "STEP_MS 10.0",
        ]
    )
    summary = conv_primitives.summarise(output)
    result = conv_primitives.report(summary, steps=1)
    rows = {(row["pass"], row["problem"]): row for row in result["rows"]}
    assert set(rows) == {("backward_data", strided), ("backward_data", first)}
    row = rows[("backward_data", strided)]
    assert row["ms_per_step"] == 5.0 and row["per_step"] == 2
    assert row["flops"] == 2 * 2 * 256 * 16 * 14 * 14 * 16 * 25
    assert row["used_by"] == [
        "encoder 2 Conv2D input gradient",
        "decoder 5 Conv2DTranspose forward",
    ]
    # The encoder's first layer gets no input gradient: that kernel is PixelLogits' forward pass.
    assert rows[("backward_data", first)]["used_by"] == [
        "decoder 7 PixelLogits forward"
    ]
    assert result["step_ms"] == 10.0
    assert result["other_primitives_ms_per_step"] == {"reorder": 0.5}
    assert result["convolution_ms_per_step"] == 9.0


def test_negative_thread_counts_are_refused_before_any_work(
    conv_primitives, monkeypatch, capsys
):
    monkeypatch.setattr("sys.argv", ["conv_primitives.py", "--inter-op", "-1"])
    monkeypatch.setattr(
        conv_primitives,
        "timed_child",
        lambda *a, **k: pytest.fail("ran the timed child"),
    )
    with pytest.raises(SystemExit) as stopped:
        conv_primitives.main()
    assert (
        stopped.value.code == 2 and "thread counts must be 0" in capsys.readouterr().err
    )
