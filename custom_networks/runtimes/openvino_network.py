"""An ``nn.Module`` that runs an ONNX file compiled by OpenVINO on the CPU, always in float32."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from ..extras import require
from .tensors import as_numpy, as_plain_tensor, like_input

__all__ = ["OPENVINO_CONFIG", "OpenVinoNetwork"]

#: OpenVINO CPU settings of every compiled network: float32 arithmetic whatever the CPU offers (OpenVINO 2026 picks
#: bfloat16 on CPUs that report it: 2.4 % of a test UNet's outputs off by up to 0.024 here)
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


class OpenVinoNetwork(nn.Module):
    """An ONNX file compiled by OpenVINO for the CPU, behind the torch network interface.

    ``forward(x)``: ``(B, C_in, *S)`` tensor or MetaTensor -> ``(B, C_out, *S)`` plain float tensor on ``x``'s
    device. Any shape the file's dynamic axes allow; OpenVINO reshapes on a new input shape. Always float32
    (:data:`OPENVINO_CONFIG`): on a CPU that reports BF16, OpenVINO would otherwise compute in bfloat16 by default,
    and its label maps would differ from torch's. ``num_threads``: OpenVINO's inference threads (default: its own).

    Raises:
        RuntimeError: OpenVINO cannot read or compile ``path`` (a missing, truncated or non-ONNX file).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None) -> None:
        super().__init__()
        ov = require("openvino", "OpenVINO inference")
        config = {**OPENVINO_CONFIG, **({"INFERENCE_NUM_THREADS": int(num_threads)} if num_threads else {})}
        self.path = Path(path)
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_plain_tensor(x)
        return like_input(self.compiled(as_numpy(x))[self.compiled.output(0)], x)
