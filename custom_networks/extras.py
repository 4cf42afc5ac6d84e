"""Imports of the packages a bundle can run without, which fail with what to install.

The bundles need only the core dependencies. Their default CPU runtime (``runtime: auto``: OpenVINO, with the
export checked by ONNX Runtime) uses onnx, onnxruntime and openvino, core dependencies of ``medseg-bundles``
that a bundle zip run with MONAI alone may lack (``auto`` then runs torch). Compressing a network, the dynamo
ONNX exporter, the tools' figures and RTSTRUCT output need one of the extras. Importing such a module without it raises an
``ImportError`` naming the extra (``pip install -e ".[compress]"`` in a clone) and the package
(``pip install torch-pruning``, for a bundle zip run with MONAI alone).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: top-level module -> (distribution on PyPI, extra of ``medseg-bundles`` that installs it; None: a core
#: dependency, which a bundle run with MONAI alone may still lack)
EXTRAS: dict[str, tuple[str, str | None]] = {
    "torch_pruning": ("torch-pruning", "compress"),
    "onnx": ("onnx", None),
    "onnxscript": ("onnxscript", "export"),
    "onnxruntime": ("onnxruntime", None),
    "openvino": ("openvino", None),
    "matplotlib": ("matplotlib", "plots"),
    "rt_utils": ("rt-utils", "rtstruct"),
    "cv2": ("opencv-python-headless", "rtstruct"),
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
        how = (f"the optional package '{distribution}' (the '{extra}' extra): install it with pip install -e "
               f"\".[{extra}]\"" if extra else f"'{distribution}' (a dependency of medseg-bundles): install it with "
               "pip install -e .")
        raise ImportError(f"{purpose} needs {how} from the repository root, or pip install {distribution}.") from err
