"""Int8 CPU inference through ONNX Runtime: static quantization of an exported ONNX file.

This is this project's addition to chapter 4 (model compression) of Liu Ting's head-and-neck thesis, not a thesis
step. The thesis quantizes the stage-1 weights to 31 levels (:mod:`custom_networks.compression.quantization`) but
keeps float arithmetic, so that only shrinks the stored weights. Here the (pruned, optionally k-level quantized)
network runs with int8 activations and weights in ONNX Runtime's CPU kernels:

1. :func:`~.onnx_export.export_onnx`: float32 ONNX file with a dynamic batch and dynamic spatial axes.
2. :func:`quantize_int8`: ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8
   activations calibrated by min/max on a few inputs).
3. :class:`~.onnxruntime_network.OnnxRuntimeNetwork`: an ``nn.Module`` that runs either file, so MONAI
   inferers (``SimpleInferer``, ``SlidingWindowInferer``, ``SliceInferer``) and bundle configs call it like the
   torch network.

Works on any ``nn.Module`` (also one whose channel counts torch-pruning changed in place): nothing depends
on fixed widths.

What the measurements behind the defaults found (2-core AMD EPYC Zen 1 VM: AVX2, no AVX512/VNNI; ORT 1.32;
shared CPU, so ratios of runs side by side; random weights):

- ORT float32 is the reliable CPU speed-up: 0.65-0.95x the time of torch float32 (UNet3D 112x112x48 at
  widths 12-96 and 24-192; AFUNet 512x512).
- ORT int8 is *not* reliably faster on this CPU. UNet3D at the thesis widths (24-192), 112x112x48: 0.90x ORT
  float32 (0.86x torch); at widths 12-96: 0.98x; AFUNet 512x512: 1.1-1.35x (slower). The int8 file is
  3-4x smaller. Per layer, an int8 ``QLinearConv`` beats the float32 ``Conv`` only when the layer is
  wide (48-192 channels: 20-30 % faster); 1-24-channel convs at full resolution (the first conv, 24->24,
  the 24->9 head) are 1.2-8x *slower*. :func:`quantize_int8` therefore leaves convs with fewer than
  ``min_in_channels`` (16) input or ``min_out_channels`` (32) output channels in float32. On CPUs with
  VNNI/AMX int8 should pay at smaller widths too (not measured here); try ``0, 0`` there.
- Only ``Conv`` is quantized by default: also quantizing MaxPool/Concat/Relu (ORT's default) was not faster
  and less accurate (UNet3D argmax agreement 0.94 instead of 0.99, max softmax difference 0.024 vs 0.004).
- ``reduce_range=True`` (7-bit weights): without VNNI, ORT's AVX2 u8s8 kernel (``vpmaddubsw``) saturates
  int16 sums; 7-bit weights avoid that and cut the int8-vs-float error by 2-3x here.
- ``ConvTranspose`` (the 2x up-sampling) and ``InstanceNormalization`` stay float32 (no ORT int8 kernels
  used for them); each costs a dequantize/quantize around it.
- QDQ and QOperator formats ran at the same speed; QDQ is ORT's recommended format and is the default.
- PyTorch's own int8 paths were not usable: ``torch.ao.quantization.quantize_pt2e`` (PT2E +
  X86InductorQuantizer) is gone from torch 2.13 (it lives in the separate ``torchao`` package), and the
  deprecated FX graph mode (``prepare_fx``) cannot trace these networks (data-dependent control flow).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..extras import require
from .onnx_files import load_onnx
from .tensors import as_numpy

__all__ = ["quantize_int8"]


def _calibration_reader(name: str, inputs: Sequence[np.ndarray]) -> Any:
    """ORT ``CalibrationDataReader`` feeding ``inputs`` one by one as the model input ``name``."""
    CalibrationDataReader = require("onnxruntime.quantization", "Int8 quantization").CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: a} for a in inputs])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    return Reader()


def _small_convs(model: Any, min_in_channels: int, min_out_channels: int) -> list[str]:
    """Names of ``Conv`` nodes whose weight has fewer input (per group) or output channels than the minima."""
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in weights:
            c_out, c_in = weights[node.input[1]][:2]
            if c_out < min_out_channels or c_in < min_in_channels:
                names.append(node.name)
    return names


def quantize_int8(
    onnx_path: str | os.PathLike,
    calibration_inputs: Iterable[torch.Tensor | np.ndarray],
    out_path: str | os.PathLike,
    *,
    min_in_channels: int = 16,
    min_out_channels: int = 32,
    per_channel: bool = True,
    reduce_range: bool = True,
    quant_format: str = "QDQ",
    nodes_to_exclude: Sequence[str] = (),
    op_types_to_quantize: Sequence[str] | None = ("Conv",),
) -> Path:
    """ONNX Runtime static int8 quantization of a float32 ONNX file (from
    :func:`~.onnx_export.export_onnx`).

    Weights become per-output-channel int8 (``reduce_range``: 7-bit range), activations uint8 with
    scales/zero points from the min/max over ``calibration_inputs``. The result runs in
    :class:`~.onnxruntime_network.OnnxRuntimeNetwork` with the same input/output shapes as the
    float32 model.

    Args:
        onnx_path: float32 model.
        calibration_inputs: a few ``(B, C_in, *S)`` inputs of the real kind (preprocessed scans / patches /
            slices, as the inferer feeds them); 2-8 are enough for min/max calibration. Random noise gives
            a working but less accurate model.
        out_path: int8 model to write.
        min_in_channels, min_out_channels: convs narrower than this stay float32 (default 16 / 32: narrow
            full-resolution convs were slower in int8 on an AVX2 CPU without VNNI; see the module docstring).
            ``0, 0`` quantizes every conv.
        per_channel: per-output-channel weight scales (default; per-tensor loses accuracy on pruned layers).
        reduce_range: 7-bit weights, avoids the AVX2 ``vpmaddubsw`` saturation (default ``True``).
        quant_format: ``"QDQ"`` (default) or ``"QOperator"``; same speed in our measurements.
        nodes_to_exclude: further node names to keep float32.
        op_types_to_quantize: op types to quantize (default ``("Conv",)``: activations are quantized only at
            the inputs of int8 convs; ``None`` lets ORT also quantize MaxPool/Concat/Relu/..., which measured
            no faster and less accurate: argmax agreement 0.94 instead of 0.99 on UNet3D).

    Returns:
        ``Path`` of the written file.
    """
    onnx = require("onnx", "ONNX export")
    ortq = require("onnxruntime.quantization", "Int8 quantization")

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    model = load_onnx(onnx_path)
    inputs = [as_numpy(x) for x in calibration_inputs]
    if not inputs:
        raise ValueError("quantize_int8 needs at least one calibration input (a (B, C_in, *S) tensor).")
    exclude = list(nodes_to_exclude) + _small_convs(model, min_in_channels, min_out_channels)
    if quant_format not in ("QDQ", "QOperator"):
        raise ValueError(f"quant_format must be 'QDQ' or 'QOperator', got {quant_format!r}.")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    reader = _calibration_reader(model.graph.input[0].name, inputs)
    ortq.quantize_static(
        str(onnx_path), str(out_path), reader, quant_format=getattr(ortq.QuantFormat, quant_format),
        per_channel=per_channel, reduce_range=reduce_range, activation_type=ortq.QuantType.QUInt8,
        weight_type=ortq.QuantType.QInt8, calibrate_method=ortq.CalibrationMethod.MinMax, nodes_to_exclude=exclude,
        op_types_to_quantize=list(op_types_to_quantize) if op_types_to_quantize is not None else None,
    )
    onnx.checker.check_model(str(out_path))
    return out_path
