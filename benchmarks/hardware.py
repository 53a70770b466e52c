"""What the benchmark ran on, and that machine's FP32 peak, so speeds can be compared.

CPU peak = cores x clock x FP32 FLOPs per cycle per core, from ``/proc/cpuinfo``:
64 with AVX-512 (two 512-bit FMA units x 16 lanes x 2), 32 with AVX2 and FMA, 16 with
AVX, 8 otherwise. That assumes two FMA units per core and the reported clock, which
turbo can exceed, so :func:`measure_matmul_rate` also measures what a large float32
matrix product reaches: an attainable ceiling. A GPU's peak comes from a table of
vendor FP32 figures (no tensor cores); an unknown GPU gets no peak.
"""

from __future__ import annotations

import os
import platform

#: Vendor FP32 (non-tensor-core) peaks in FLOP/s, matched by substring of the device name.
GPU_FP32_PEAK = {
    "H200": 67e12,
    "H100 PCIe": 51e12,
    "H100": 67e12,  # SXM
    "A100": 19.5e12,
    "L40S": 91.6e12,
    "L40": 90.5e12,
    "L4": 30.3e12,
    "A10G": 31.2e12,
    "A10": 31.2e12,
    "T4": 8.1e12,
    "V100": 15.7e12,
    "RTX 4090": 82.6e12,
}


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """Model name, clock (MHz) and feature flags of the first processor listed."""
    info = {
        "model": platform.processor() or platform.machine(),
        "mhz": None,
        "flags": set(),
    }
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return info
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            info["model"] = value
        elif key == "cpu MHz":
            info["mhz"] = float(value)
        elif key == "flags":
            info["flags"] = set(value.split())
    return info


def flops_per_cycle(flags) -> tuple[int, str]:
    """FP32 FLOPs per cycle per core for a set of cpuinfo flags, and the ISA that set it."""
    if "avx512f" in flags:
        return 64, "AVX-512"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2+FMA"
    if "avx" in flags:
        return 16, "AVX"
    return 8, "SSE"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_peak(info: dict | None = None, cores: int | None = None) -> dict:
    """The CPU's FP32 peak and how it was computed; ``peak_flops_per_s`` is None without a clock."""
    info = info or cpu_info()
    cores = cores or usable_cores()
    per_cycle, isa = flops_per_cycle(info["flags"])
    peak = cores * info["mhz"] * 1e6 * per_cycle if info["mhz"] else None
    return {
        "peak_flops_per_s": peak,
        "cores": cores,
        "clock_mhz": info["mhz"],
        "flops_per_cycle": per_cycle,
        "isa": isa,
        "peak_rule": f"{cores} cores x {info['mhz']} MHz x {per_cycle} FLOPs/cycle ({isa})",
    }


def gpu_peak(name: str) -> float | None:
    """Vendor FP32 peak of a GPU by name, or None if it is not in the table."""
    for key, peak in GPU_FP32_PEAK.items():
        if key.lower() in name.lower():
            return peak
    return None


def describe_device() -> dict:
    """The device TensorFlow computes on: kind, name and FP32 peak (with how it was found)."""
    from cvae_lib.backend import GPUS, tf

    if GPUS:
        details = tf.config.experimental.get_device_details(GPUS[0])
        name = details.get("device_name", GPUS[0].name)
        peak = gpu_peak(name)
        return {
            "kind": "gpu",
            "name": name,
            "peak_flops_per_s": peak,
            "peak_rule": "vendor FP32 table" if peak else "not in the table",
        }
    info = cpu_info()
    peak = cpu_peak(info)
    return {
        "kind": "cpu",
        "name": f"{info['model']}, {peak['cores']} cores ({peak['isa']})",
        **peak,
    }


def measure_matmul_rate(size: int = 4096, repeats: int = 3) -> float:
    """FLOP/s of the fastest of ``repeats`` float32 ``size`` x ``size`` matrix products.

    An attainable ceiling measured on this device, next to the nominal peak: large
    matrix products are the best case for the same vector units the convolutions use.
    (On NVIDIA GPUs from Ampere on, TensorFlow runs float32 products on TF32 tensor
    cores by default, so there this measures TF32.)
    """
    import time

    from cvae_lib.backend import tf

    a = tf.random.stateless_normal([size, size], seed=[0, 1])
    b = tf.random.stateless_normal([size, size], seed=[0, 2])
    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    float(product(a, b))  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        float(product(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
