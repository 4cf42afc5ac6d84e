"""The one ONNX exporter of this package: any network here, pruned or not, as a float32 ONNX file.

:func:`export_onnx` writes the bundles' tensor names (input ``"image"``, output ``"pred"``, as in ``metadata.json``'s
``network_data_format``) and, by default, a dynamic batch and dynamic spatial axes. ``scripts/export.py`` exports
every bundle through it, the runtime cache (:mod:`.exported_part`) exports each part through it, and
:func:`~.int8.quantize_int8` quantizes its files.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from ..extras import require
from .onnx_files import INPUT_NAME, OUTPUT_NAME
from .onnxruntime_network import OnnxRuntimeNetwork
from .tensors import as_plain_tensor

__all__ = ["export_onnx"]


def _dynamic_axes(ndim: int) -> list[int]:
    """Batch (0) and every spatial axis (2..ndim-1); channels stay fixed."""
    return [0, *range(2, ndim)]


def export_onnx(
    net: nn.Module,
    example_input: torch.Tensor,
    path: str | os.PathLike,
    *,
    dynamic: bool = True,
    opset_version: int = 18,
    dynamo: bool = False,
    check_atol: float | None = 1e-4,
) -> Path:
    """Write ``net`` as a float32 ONNX model, weights inside the file (no ``.data`` side file).

    Args:
        net: any network (pruned or not); a CPU copy in eval mode is exported, ``net`` itself is untouched.
        example_input: ``(B, C_in, *S)`` tensor (or MetaTensor) the graph is traced with, e.g.
            ``(1, 1, 112, 112, 48)`` for stage 1 or ``(1, 1, 512, 512)`` for the 2D networks.
        path: output ``.onnx`` file (parent folders are created).
        dynamic: batch and spatial axes dynamic (input ``"image"``: ``(batch, C_in, spatial_1, ...)``,
            output ``"pred"``: ``(batch, C_out, spatial_1, ...)``), so sliding-window patches or slices of
            other sizes run (sizes must still be multiples of the network's down-sampling factor). ``False``:
            the example input's shape only.
        opset_version: ONNX opset (18: ORT 1.14+).
        dynamo: ``False`` (default) uses the TorchScript-based exporter: it exports these networks about 15x
            faster (1-3 s instead of 20-50 s on 2 cores) with the same graph. ``True`` uses
            ``torch.export`` (``torch.export.Dim.DYNAMIC`` axes: about half the export time of named dims);
            it is also tried when the default exporter fails.
        check_atol: when not ``None``, ONNX Runtime's output on ``example_input`` must match torch's within
            ``check_atol * max(1, max|torch|)``, else ``RuntimeError`` (catches a broken export early).

    Returns:
        ``Path`` of the written file.
    """
    onnx = require("onnx", "ONNX export")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(net).to("cpu").eval()
    x = as_plain_tensor(example_input).detach().to("cpu", torch.float32)
    axes = _dynamic_axes(x.ndim) if dynamic else None
    names = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset_version)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated in torch 2.9+ and warns on every call
        errors = []
        for use_dynamo in ((dynamo,) if dynamo else (False, True)):
            try:
                if use_dynamo:
                    shapes = ({a: torch.export.Dim.DYNAMIC for a in axes},) if axes else None
                    program = torch.onnx.export(model, (x,), None, dynamo=True, dynamic_shapes=shapes, verbose=False,
                                                **names)
                    program.save(str(path), external_data=False)
                else:
                    named = {a: "batch" if a == 0 else f"spatial_{a - 1}" for a in axes} if axes else None
                    torch.onnx.export(model, (x,), str(path), dynamo=False, **names,
                                      dynamic_axes={INPUT_NAME: named, OUTPUT_NAME: named} if named else None)
                break
            except Exception as e:  # noqa: BLE001 - try the other exporter, report both if both fail
                errors.append(f"{'dynamo' if use_dynamo else 'torchscript'} exporter: {type(e).__name__}: {e}")
        else:
            raise RuntimeError(f"Could not export {type(net).__name__} to {path}:\n" + "\n".join(errors))
    onnx.checker.check_model(str(path))
    if check_atol is not None:
        with torch.inference_mode():
            ref = model(x)
        ref = ref[0] if isinstance(ref, (list, tuple)) else ref
        out = OnnxRuntimeNetwork(path)(x)
        diff, scale = (out - ref).abs().max().item(), max(1.0, ref.abs().max().item())
        if not diff <= check_atol * scale:
            raise RuntimeError(
                f"ONNX export of {type(net).__name__} to {path} differs from torch by {diff:.3g} "
                f"(allowed {check_atol * scale:.3g}); export with dynamo={not dynamo} or check the network."
            )
    return path
