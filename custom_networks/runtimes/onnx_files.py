"""What every ONNX file of this package shares: its tensor names, and opening one with errors that say how to
write it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..extras import require

__all__ = ["HOW_TO_WRITE", "INPUT_NAME", "OUTPUT_NAME", "load_onnx", "require_onnx_file"]

#: tensor names of every exported file, the keys of the bundles' ``network_data_format``
INPUT_NAME, OUTPUT_NAME = "image", "pred"

HOW_TO_WRITE = (
    "write it with custom_networks.runtimes.onnx_export.export_onnx(net, example_input, path) "
    "(and custom_networks.runtimes.int8.quantize_int8(path, calibration_inputs, int8_path) for the int8 model)"
)


def require_onnx_file(path: Path) -> None:
    """``FileNotFoundError`` naming how to write ``path`` when it is not a file."""
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist; {HOW_TO_WRITE}.")


def load_onnx(path: Path) -> Any:
    """``onnx.load`` with the errors :class:`~.onnxruntime_network.OnnxRuntimeNetwork` gives for a missing or
    non-ONNX file."""
    onnx = require("onnx", "ONNX export")

    require_onnx_file(path)
    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for garbage
        raise ValueError(
            f"{path} is not an ONNX model ({type(e).__name__}: {str(e).strip()[:200]}); {HOW_TO_WRITE}."
        ) from e
