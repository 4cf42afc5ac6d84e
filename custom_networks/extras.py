"""Imports of the optional dependencies (``pyproject.toml``'s extras) that fail with what to install.

The bundles need only the core dependencies. Compressing a network, ONNX export and int8 inference, and
the tools' figures need one of the extras; importing such a module without it raises an ``ImportError``
naming the extra (``pip install -e ".[compress]"`` in a clone) and the package (``pip install torch-pruning``,
for a bundle zip run with MONAI alone).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: top-level module -> (distribution on PyPI, extra of ``medseg-bundles`` that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch_pruning": ("torch-pruning", "compress"),
    "onnx": ("onnx", "export"),
    "onnxscript": ("onnxscript", "export"),
    "onnxruntime": ("onnxruntime", "export"),
    "openvino": ("openvino", "export"),
    "matplotlib": ("matplotlib", "plots"),
}


def require(module: str, purpose: str) -> ModuleType:
    """``importlib.import_module(module)``; if the package is missing, an ``ImportError`` that says that
    ``purpose`` needs it and which extra or package installs it. ``module`` may be a submodule
    (``onnxruntime.quantization``); its top-level package must be in :data:`EXTRAS`."""
    top = module.split(".")[0]
    distribution, extra = EXTRAS[top]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if (err.name or top).split(".")[0] != top:
            raise  # the package is there but something it imports is not: its own error says more
        raise ImportError(
            f"{purpose} needs the optional package '{distribution}' (the '{extra}' extra): install it with "
            f"pip install -e \".[{extra}]\" from the repository root, or pip install {distribution}."
        ) from err
