"""Run a bundle's network in a CPU inference runtime (ONNX Runtime or OpenVINO) with the same pre- and
post-processing: the ``runtime`` key of every ``inference.json`` (issue 19; this project's addition, not a
paper step).

:class:`RuntimeHandler` is an evaluator handler listed after the checkpoint loader. When the evaluator starts
(after the loader has put the trained weights into ``@network``) it gives the evaluator a network whose parts
run in the chosen runtime, and puts the torch network back when the run ends, so a reused workflow (MONAI
Label) loads weights into the same object every time. Each part is exported to ONNX at its first call, with that
call's input as the example (:func:`~custom_networks.compression.onnx_export.export_onnx`, dynamic batch and
spatial axes, checked against torch), and the file is kept in a cache folder named by a hash of the part's
weights, so later runs only open it.

``runtime``: ``"auto"`` (the bundles' default: OpenVINO on a CPU where it is installed, else torch; see
:func:`resolve_runtime`), ``"torch"`` (no change), ``"onnxruntime"``, ``"openvino"`` or ``"onnxruntime-int8"``
(:func:`~custom_networks.compression.int8.quantize_int8` of the exported part, calibrated on the first input it
sees, then cached like the float32 file). ``parts``: dotted names of the
submodules to run in the runtime (``""``, the default: the whole network); the two-stage head-and-neck network
names stage 1 and its organ nets, whose box search between them is NumPy and stays in Python.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..compression.onnx_export import OnnxRuntimeNetwork, as_numpy, as_plain_tensor, export_onnx, like_input
from ..extras import require
from ..writers.base import write_atomically

__all__ = ["RUNTIMES", "ExportedPart", "OpenVinoNetwork", "RuntimeHandler", "default_cache_dir", "resolve_runtime"]

#: the runtimes of the bundles' ``runtime`` key (besides ``"auto"``, which picks one of them)
RUNTIMES = ("torch", "onnxruntime", "openvino", "onnxruntime-int8")
#: what ``"auto"`` picks on a CPU: the fastest in ``docs/benchmarks.md`` for every bundle, label maps identical to
#: torch's on the real CT and MR (tests/engine/test_runtimes.py)
AUTO_CPU_RUNTIME = "openvino"
#: int8 calibration: at most this many samples of the first input a part sees
CALIBRATION_SAMPLES = 8

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


def default_cache_dir() -> Path:
    """``$MEDSEG_RUNTIME_CACHE``, else ``~/.cache/medseg_bundles/runtime``: where exported parts are kept."""
    return Path(os.environ.get("MEDSEG_RUNTIME_CACHE") or Path.home() / ".cache" / "medseg_bundles" / "runtime")


#: OpenVINO CPU settings of every compiled network: float32 arithmetic whatever the CPU offers (OpenVINO 2026 picks
#: bfloat16 on CPUs that report it: 2.4 % of a test UNet's outputs off by up to 0.024 here)
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


class OpenVinoNetwork(nn.Module):
    """An ONNX file compiled by OpenVINO for the CPU, behind the torch network interface.

    ``forward(x)``: ``(B, C_in, *S)`` tensor or MetaTensor -> ``(B, C_out, *S)`` plain float tensor on ``x``'s
    device. Any shape the file's dynamic axes allow; OpenVINO reshapes on a new input shape. Always float32
    (:data:`OPENVINO_CONFIG`): on a CPU that reports BF16, OpenVINO would otherwise compute in bfloat16 by default,
    and its label maps would differ from torch's.
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


def _weights_hash(module: nn.Module) -> str:
    digest = hashlib.sha1(type(module).__qualname__.encode())
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


class ExportedPart(nn.Module):
    """``module`` run in ``runtime``: exported to ONNX at the first call (that call's input is the example), the
    file cached in ``cache_dir`` under a hash of the weights and the input's rank.

    ``forward(x)``: what ``module(x)`` returns, ``(B, C_out, *S)``, computed by the runtime on the CPU in float32.
    """

    def __init__(self, module: nn.Module, runtime: str = "onnxruntime", cache_dir: str | os.PathLike | None = None,
                 num_threads: int | None = None, weights_hash: str | None = None) -> None:
        super().__init__()
        if runtime not in RUNTIMES[1:]:
            raise ValueError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES[1:])}.")
        self.torch_module = [module]  # a list: not a submodule, so this wrapper adds no weights to a state dict
        self.runtime, self.num_threads = runtime, num_threads
        self.weights_hash = weights_hash or _weights_hash(module)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.session: nn.Module | None = None

    def _open(self, x: torch.Tensor) -> nn.Module:
        module = self.torch_module[0]
        path = self.cache_dir / f"{type(module).__name__}_{self.weights_hash}_{x.ndim}d.onnx"
        example = as_plain_tensor(x).detach().to("cpu", torch.float32)
        if not path.is_file():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            # 1e-3 of the output's scale: the export check runs on the first input the part sees, and an organ
            # window padded with edge values has near-constant regions, where instance norm divides by a tiny
            # variance and float32 rounding differences between torch and ONNX Runtime reach 2e-4 of it
            write_atomically(path, lambda tmp: export_onnx(module, example[:1], tmp, check_atol=1e-3))
        if self.runtime == "openvino":
            return OpenVinoNetwork(path, self.num_threads)
        if self.runtime == "onnxruntime-int8":
            from ..compression.int8 import quantize_int8

            int8 = path.with_name(path.stem + "_int8.onnx")
            if not int8.is_file():  # calibrated on this first input, one sample at a time
                samples = [example[i: i + 1] for i in range(min(len(example), CALIBRATION_SAMPLES))]
                write_atomically(int8, lambda tmp: quantize_int8(path, samples, tmp))
            path = int8
        return OnnxRuntimeNetwork(path, self.num_threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is None:
            self.session = self._open(x)
        return self.session(x)


class RuntimeHandler:
    """Evaluator handler: run the network's ``parts`` in ``runtime`` for the length of each evaluator run.

    Attach it after the checkpoint loader (both act on ``Events.STARTED``, in the order attached). ``"torch"``
    (also what ``"auto"`` resolves to on a GPU) leaves the evaluator as it is. Defaults: ``parts=("",)`` (the
    whole network), the cache folder of :func:`default_cache_dir`, the runtime's own thread count.
    """

    def __init__(self, runtime: str = "torch", parts: Sequence[str] = ("",), cache_dir: str | None = None,
                 num_threads: int | None = None) -> None:
        resolve_runtime(runtime, "cpu")  # a misspelt runtime fails when the config is parsed, not at the first scan
        self.runtime, self.parts, self.cache_dir, self.num_threads = runtime, list(parts), cache_dir, num_threads
        self._torch_network: nn.Module | None = None
        self._opened: dict[tuple[str, str], ExportedPart] = {}  # (part, weights hash): reused while weights stay

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        if resolve_runtime(self.runtime, engine.state.device) != "torch":
            engine.add_event_handler(Events.STARTED, self.started)
            engine.add_event_handler(Events.COMPLETED, self.completed)
            engine.add_event_handler(Events.EXCEPTION_RAISED, self.completed)

    def _part(self, name: str, module: nn.Module, runtime: str) -> ExportedPart:
        key = (name, _weights_hash(module))
        if key not in self._opened:  # new weights (or the first run): drop this part's older session
            self._opened = {k: v for k, v in self._opened.items() if k[0] != name}
            self._opened[key] = ExportedPart(module, runtime, self.cache_dir, self.num_threads, key[1])
        return self._opened[key]

    def started(self, engine: Any) -> None:
        runtime = resolve_runtime(self.runtime, engine.state.device)
        self._torch_network = net = engine.network
        if self.parts == [""]:
            engine.network = self._part("", net, runtime)
            return
        engine.network = _with_parts(net, {name: self._part(name, net.get_submodule(name), runtime)
                                           for name in self.parts})

    def completed(self, engine: Any, *_: Any) -> None:
        if self._torch_network is not None:
            engine.network, self._torch_network = self._torch_network, None


def _with_parts(net: nn.Module, parts: dict[str, nn.Module]) -> nn.Module:
    """A shallow copy of ``net`` whose submodules named in ``parts`` are replaced; every container on the way is
    copied once, so ``net`` keeps its own modules and the weights are shared."""
    copies = {"": _shallow_copy(net)}
    for name, part in parts.items():
        *path, leaf = name.split(".")
        parent = ""
        for step in path:
            child = f"{parent}.{step}" if parent else step
            if child not in copies:
                copies[child] = _shallow_copy(copies[parent]._modules[step])
                copies[parent]._modules[step] = copies[child]
            parent = child
        copies[parent]._modules[leaf] = part
    return copies[""]


def _shallow_copy(module: nn.Module) -> nn.Module:
    copied = copy.copy(module)
    copied._modules = dict(module._modules)
    return copied
