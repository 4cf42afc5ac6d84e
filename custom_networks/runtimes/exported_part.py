"""A submodule run in a CPU runtime: exported to ONNX at its first call and kept in the runtime cache.

:class:`ExportedPart` is what :class:`~custom_networks.engine.runtimes.RuntimeHandler` puts in place of each part of
a bundle's network. The file is exported with the first call's input as the example
(:func:`~.onnx_export.export_onnx`: dynamic batch and spatial axes, checked against torch) into the cache folder
(:mod:`.cache`), under a name that holds the weights' hash and the package versions, so later runs only open it.
Writes are atomic with a temporary name of their own, so processes that export the same part at once each
rename a complete file. A cached file that fails to load (truncated, written by a broken disk) is exported again,
with a warning, and the run goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from ..writers.base import write_atomically
from .cache import cache_key, usable_cache_dir
from .int8 import quantize_int8
from .onnx_export import export_onnx
from .onnx_files import load_onnx
from .onnxruntime_network import OnnxRuntimeNetwork
from .openvino_network import OpenVinoNetwork
from .selection import RUNTIMES
from .tensors import as_plain_tensor

__all__ = ["CALIBRATION_SAMPLES", "ExportedPart", "hash_weights"]

#: int8 calibration: at most this many samples of the first input a part sees
CALIBRATION_SAMPLES = 8

logger = logging.getLogger(__name__)


def hash_weights(module: nn.Module) -> str:
    """A hash of ``module``'s class, state-dict keys, shapes and values (20 hex digits)."""
    digest = hashlib.sha1(type(module).__qualname__.encode())
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def _first_line(err: BaseException) -> str:
    """An error's first line, at most 200 characters (runtimes' messages run to whole graph dumps)."""
    return (str(err).strip().splitlines() or [""])[0][:200]


def _cached(path: Path, write: Callable[[str], object], load: Callable[[Path], object]) -> object:
    """``load(path)``, writing ``path`` first (atomically) when it is missing, and again when a cached file fails to
    load; a freshly written file that fails to load raises."""
    if path.is_file():
        try:
            return load(path)
        except Exception as err:  # noqa: BLE001 - ORT, OpenVINO and protobuf each raise their own types
            logger.warning("runtime cache: %s does not load (%s: %s); exporting it again", path, type(err).__name__,
                           _first_line(err))
    write_atomically(path, write)
    return load(path)


class ExportedPart(nn.Module):
    """``module`` run in ``runtime``: exported to ONNX at the first call (that call's input is the example), the
    file cached in ``cache_dir`` (default: :func:`~.cache.usable_cache_dir`) under :func:`~.cache.cache_key`.

    ``forward(x)``: what ``module(x)`` returns, ``(B, C_out, *S)``, computed by the runtime on the CPU in float32.
    With ``torch_fallback`` (what ``runtime: auto`` asks for) a part that cannot be exported or opened runs in
    torch instead, with a warning. After the first call, :attr:`ran` names the runtime that ran and :attr:`file`
    the file it opened (None for torch).
    """

    def __init__(self, module: nn.Module, runtime: str = "onnxruntime", cache_dir: str | os.PathLike | None = None,
                 num_threads: int | None = None, weights_hash: str | None = None,
                 torch_fallback: bool = False) -> None:
        super().__init__()
        if runtime not in RUNTIMES[1:]:
            raise ValueError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES[1:])}.")
        self.torch_module = [module]  # a list: not a submodule, so this wrapper adds no weights to a state dict
        self.runtime, self.num_threads, self.torch_fallback = runtime, num_threads, torch_fallback
        self.weights_hash = weights_hash or hash_weights(module)
        self.cache_dir = cache_dir
        self.session: nn.Module | None = None
        self.ran: str | None = None
        self.file: Path | None = None

    def _open(self, x: torch.Tensor) -> nn.Module:
        module = self.torch_module[0]
        folder = usable_cache_dir(self.cache_dir)
        stem = f"{type(module).__name__}_{cache_key(self.weights_hash, x.ndim)}"
        fp32 = folder / f"{stem}.onnx"
        example = as_plain_tensor(x).detach().to("cpu", torch.float32)

        # 1e-3 of the output's scale: the export check runs on the first input the part sees, and an organ window
        # padded with edge values has near-constant regions, where instance norm divides by a tiny variance and
        # float32 rounding differences between torch and ONNX Runtime reach 2e-4 of it
        def export(tmp: str) -> None:
            export_onnx(module, example[:1], tmp, check_atol=1e-3)

        threads = self.num_threads
        if self.runtime == "openvino":
            path, session = fp32, _cached(fp32, export, lambda file: OpenVinoNetwork(file, threads))
        elif self.runtime == "onnxruntime":
            path, session = fp32, _cached(fp32, export, lambda file: OnnxRuntimeNetwork(file, threads))
        else:  # onnxruntime-int8: a readable float32 file, quantized with this first input, one sample at a time
            _cached(fp32, export, load_onnx)
            samples = [example[i: i + 1] for i in range(min(len(example), CALIBRATION_SAMPLES))]
            path = folder / f"{stem}_int8.onnx"
            session = _cached(path, lambda tmp: quantize_int8(fp32, samples, tmp),
                              lambda file: OnnxRuntimeNetwork(file, threads))
        self.ran, self.file = self.runtime, path
        return session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is None:
            try:
                self.session = self._open(x)
            except Exception as err:  # noqa: BLE001 - runtime auto: whatever failed, torch still works
                if not self.torch_fallback:
                    raise
                logger.warning("runtime %s could not run %s (%s: %s); it runs in torch", self.runtime,
                               type(self.torch_module[0]).__name__, type(err).__name__,
                               _first_line(err))
                self.session, self.ran, self.file = self.torch_module[0], "torch", None
        return self.session(x)
