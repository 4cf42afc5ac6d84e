"""Which runtime a bundle's ``runtime`` key means on a device: the names, and what ``"auto"`` picks."""

from __future__ import annotations

import importlib.util
import logging

import torch

__all__ = ["AUTO_CPU_RUNTIME", "RUNTIMES", "resolve_runtime"]

#: the runtimes of the bundles' ``runtime`` key (besides ``"auto"``, which picks one of them)
RUNTIMES = ("torch", "onnxruntime", "openvino", "onnxruntime-int8")
#: what ``"auto"`` picks on a CPU: the fastest in ``docs/benchmarks.md`` for every bundle, label maps identical to
#: torch's on the real CT and MR (tests/engine/test_runtimes.py)
AUTO_CPU_RUNTIME = "openvino"

logger = logging.getLogger(__name__)


def resolve_runtime(runtime: str, device: torch.device | str) -> str:
    """The runtime ``runtime`` means on ``device``: itself, or for ``"auto"`` torch on a GPU and
    :data:`AUTO_CPU_RUNTIME` on a CPU where its packages (``openvino``, and ``onnx`` + ``onnxruntime`` for the
    checked export) are installed, else torch (a MONAI Label environment without them, say), logged."""
    if runtime not in (*RUNTIMES, "auto"):
        raise ValueError(f"runtime {runtime!r} is not one of auto, {', '.join(RUNTIMES)}; pass --runtime with one "
                         "of them.")
    if runtime != "auto":
        return runtime
    if torch.device(device).type != "cpu":
        return "torch"
    missing = [m for m in ("openvino", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        logger.info("runtime auto: %s not installed, so the network runs in torch (pip install %s for the faster "
                    "CPU path)", ", ".join(missing), " ".join(missing))
        return "torch"
    return AUTO_CPU_RUNTIME
