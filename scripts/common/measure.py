"""Measuring helpers of the benchmark, model_stats, export and benchmark_compression: time, memory, FLOPs, size.

Also the one-line protocol of measurements made in a child process: the child prints ``RESULT {json}``
(:func:`print_result`), the parent reads the last such line (:func:`read_result`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def device_name() -> str:
    """The device every figure of this process comes from, in words (GPU name, or CPU with its thread count)."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


#: fp32 FLOP per cycle and core of each x86 vector instruction set, widest first, and why: two FMA units per
#: core, as every AVX2 core since Intel Haswell and AMD Zen has (AVX-512 parts with one unit reach half)
FP32_FLOP_PER_CYCLE = {
    "avx512f": (64, "16 lanes x 2 FLOP per FMA x 2 FMA units"),
    "fma": (32, "8 lanes x 2 FLOP per FMA x 2 FMA units (AVX2)"),
    "avx": (16, "8 lanes x (1 multiply + 1 add unit)"),
    "sse2": (8, "4 lanes x (1 multiply + 1 add unit)"),
}


def cpu_peak_gflops(threads: int, cpuinfo: str | None = None) -> dict:
    """The CPU's theoretical fp32 peak for ``threads`` cores: cores x clock x FLOP per cycle of the widest vector
    instruction set ``/proc/cpuinfo`` lists, with how it was derived. The clock is the nominal one of the model
    name (``@ 2.20GHz``) or else the kernel's ``cpu MHz``; boost clocks may exceed either."""
    import re

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {"gflops_per_s": None, "derivation": "no /proc/cpuinfo on this system"}
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo, re.M)
    isa = next((name for name in FP32_FLOP_PER_CYCLE if flags and name in flags.group(1).split()), None)
    nominal = re.search(r"@\s*([0-9.]+)\s*GHz", cpuinfo)
    reported = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", cpuinfo, re.M)
    ghz = float(nominal.group(1)) if nominal else float(reported.group(1)) / 1000 if reported else None
    if isa is None or ghz is None:
        return {"gflops_per_s": None, "derivation": "no vector instruction set or clock in /proc/cpuinfo"}
    per_cycle, why = FP32_FLOP_PER_CYCLE[isa]
    source = "model name" if nominal else "cpu MHz"
    return {"gflops_per_s": threads * ghz * per_cycle, "threads": threads, "ghz": ghz, "isa": isa,
            "flop_per_cycle": per_cycle,
            "derivation": f"{threads} cores x {ghz:.3f} GHz ({source} in /proc/cpuinfo) x {per_cycle} fp32 FLOP "
                          f"per cycle ({isa}: {why})"}


def torch_device():
    """The first GPU if there is one, else the CPU."""
    import torch

    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def sync() -> None:
    """Wait for queued GPU work (a no-op on the CPU), so wall times include it."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_seconds(fn, x, repeats: int) -> float:
    """Median wall time of ``fn(x)`` over ``repeats`` calls after one warm-up call."""
    import numpy as np

    fn(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def flops_of(module, shape: tuple[int, ...]) -> float:
    """FLOPs (multiply-add = 2) of one forward of ``module`` on zeros of ``shape`` (batch 1, times batch)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    dev = next(module.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros((1, *shape[1:]), device=dev))
    return float(counter.get_total_flops()) * shape[0]


def count_parameters(net) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def _status_gb(field: str) -> float | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**20  # kB
    return None


def peak_rss_gb() -> float:
    """This process's own peak RSS (``VmHWM``, GB). Not ``getrusage``/``wait4``: Linux carries the parent's
    high-water mark into a forked child across ``exec``, so those report at least the parent's RSS."""
    peak = _status_gb("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_gb() -> float:
    """This process's resident memory now (``VmRSS``, GB; 0 where ``/proc`` does not say)."""
    return _status_gb("VmRSS") or 0.0


def print_result(result: dict) -> None:
    """Report a child process's measurement to its parent (see :func:`read_result`)."""
    print("RESULT " + json.dumps(result), flush=True)


def read_result(stdout: str) -> dict | None:
    """The last ``RESULT {json}`` line of a child's output, or None when it printed none."""
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else None
