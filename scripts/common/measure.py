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
