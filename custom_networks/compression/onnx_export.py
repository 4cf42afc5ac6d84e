"""The one ONNX exporter of this repo and an ``nn.Module`` that runs an ONNX file in ONNX Runtime on the CPU.

:func:`export_onnx` writes a float32 ONNX file of any network here (pruned or not) with the bundles' tensor names
(input ``"image"``, output ``"pred"``, as in ``metadata.json``'s ``network_data_format``) and, by default, a
dynamic batch and dynamic spatial axes. ``scripts/export.py`` exports every bundle through it, and
:func:`~custom_networks.compression.int8.quantize_int8` quantizes its files. :class:`OnnxRuntimeNetwork` runs
either (float32 or int8) behind the torch network interface, so MONAI inferers and bundle configs call it like
the torch network.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..extras import require

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "OnnxRuntimeNetwork", "export_onnx"]

#: tensor names of every exported file, the keys of the bundles' ``network_data_format``
INPUT_NAME, OUTPUT_NAME = "image", "pred"


def as_plain_tensor(x: Any) -> torch.Tensor:
    """A plain ``torch.Tensor`` (MONAI ``MetaTensor`` -> ``.as_tensor()``; NumPy -> tensor)."""
    if hasattr(x, "as_tensor"):
        x = x.as_tensor()
    return torch.as_tensor(x)


def as_numpy(x: Any) -> np.ndarray:
    """Contiguous float32 NumPy array on the CPU of a tensor, MetaTensor or array."""
    return np.ascontiguousarray(as_plain_tensor(x).detach().to("cpu", torch.float32).numpy())


def like_input(out: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """A runtime's NumPy output as a tensor on ``x``'s device with ``x``'s float dtype (float32 for other inputs)."""
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)


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


_HOW_TO_WRITE = (
    "write it with custom_networks.compression.onnx_export.export_onnx(net, example_input, path) "
    "(and quantize_int8(path, calibration_inputs, int8_path) for the int8 model)"
)


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist; {_HOW_TO_WRITE}.")


def load_onnx(path: Path) -> Any:
    """``onnx.load`` with the errors :class:`OnnxRuntimeNetwork` gives for a missing or non-ONNX file."""
    onnx = require("onnx", "ONNX export")

    _require_file(path)
    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for garbage
        raise ValueError(
            f"{path} is not an ONNX model ({type(e).__name__}: {str(e).strip()[:200]}); "
            f"{_HOW_TO_WRITE}."
        ) from e


# ORT's WeightBiasQuantization pass (ORT 1.20+) quantizes the float weights of a conv whose input comes from a
# DequantizeLinear, i.e. it undoes quantize_int8's min_in/out_channels exclusions (measured: the excluded convs
# ran as QLinearConv again, 1.6x slower than float32 overall). Other ORT consumers of the int8 file should
# disable it the same way.
_DISABLED_OPTIMIZERS = ["WeightBiasQuantization"]


class OnnxRuntimeNetwork(nn.Module):
    """Run an ONNX model (float32 or int8) in ONNX Runtime on the CPU behind the torch network interface.

    ``forward(x)``: ``(B, C_in, *S)`` torch tensor or MONAI ``MetaTensor`` on any device/dtype ->
    ``(B, C_out, *S)`` plain torch tensor on ``x``'s device with ``x``'s dtype (computed in float32 on the
    CPU). With a model from :func:`export_onnx` any batch size and any spatial size the network accepts
    works, so MONAI's ``SimpleInferer``, ``SlidingWindowInferer`` and ``SliceInferer`` can use it in place
    of the torch network. It has no parameters; ``.to(device)``/``.eval()`` are no-ops for the computation.

    Args:
        path: ``.onnx`` file (:func:`export_onnx` or :func:`~custom_networks.compression.int8.quantize_int8`).
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

        _require_file(self.path)
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
                f"{str(e).strip()[:300]}); {_HOW_TO_WRITE}."
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


