"""An ``nn.Module`` that runs an ONNX file (float32 or int8) in ONNX Runtime on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from ..extras import require
from .onnx_files import HOW_TO_WRITE, require_onnx_file
from .tensors import as_numpy, as_plain_tensor, like_input

__all__ = ["OnnxRuntimeNetwork"]


# ORT's WeightBiasQuantization pass (ORT 1.20+) quantizes the float weights of a conv whose input comes from a
# DequantizeLinear, i.e. it undoes quantize_int8's min_in/out_channels exclusions (measured: the excluded convs
# ran as QLinearConv again, 1.6x slower than float32 overall). Other ORT consumers of the int8 file should
# disable it the same way.
_DISABLED_OPTIMIZERS = ["WeightBiasQuantization"]


class OnnxRuntimeNetwork(nn.Module):
    """Run an ONNX model (float32 or int8) in ONNX Runtime on the CPU behind the torch network interface.

    ``forward(x)``: ``(B, C_in, *S)`` torch tensor or MONAI ``MetaTensor`` on any device/dtype ->
    ``(B, C_out, *S)`` plain torch tensor on ``x``'s device with ``x``'s dtype (computed in float32 on the
    CPU). With a model from :func:`~.onnx_export.export_onnx` any batch size and any spatial size the network accepts
    works, so MONAI's ``SimpleInferer``, ``SlidingWindowInferer`` and ``SliceInferer`` can use it in place
    of the torch network. It has no parameters; ``.to(device)``/``.eval()`` are no-ops for the computation.

    Args:
        path: ``.onnx`` file (:func:`~.onnx_export.export_onnx` or :func:`~.int8.quantize_int8`).
        num_threads: ORT intra-op threads (default ``None``: ORT's default, one per physical core).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not an ONNX model ONNX Runtime can load.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.num_threads = num_threads
        self._open()

    def _open(self) -> None:
        ort = require("onnxruntime", "ONNX Runtime inference")

        require_onnx_file(self.path)
        options = ort.SessionOptions()
        if self.num_threads:
            options.intra_op_num_threads = int(self.num_threads)
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"], disabled_optimizers=_DISABLED_OPTIMIZERS
            )
        except Exception as e:  # noqa: BLE001 - ORT raises its own Fail/InvalidProtobuf types
            raise ValueError(
                f"{self.path} is not an ONNX model ONNX Runtime can load ({type(e).__name__}: "
                f"{str(e).strip()[:300]}); {HOW_TO_WRITE}."
            ) from e
        inp = self.session.get_inputs()[0]
        self.input_name, self.input_rank = inp.name, len(inp.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_plain_tensor(x)
        if x.ndim != self.input_rank:
            raise ValueError(
                f"{self.path.name} expects a {self.input_rank}D input (B, C, *spatial), got shape {tuple(x.shape)}."
            )
        out = self.session.run(None, {self.input_name: as_numpy(x)})[0]
        return like_input(out, x)

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, num_threads={self.num_threads}"

    def __getstate__(self) -> dict:  # an ORT session does not pickle/deepcopy; reopen it from the file
        state = self.__dict__.copy()
        state.pop("session", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()
