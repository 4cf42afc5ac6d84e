"""Run a bundle's network in a CPU inference runtime (ONNX Runtime or OpenVINO) with the same pre- and
post-processing: the ``runtime`` key of every ``inference.json`` (this project's addition, not a paper step).

:class:`RuntimeHandler` is an evaluator handler listed after the checkpoint loader. When the evaluator starts
(after the loader has put the trained weights into ``@network``) it gives the evaluator a network whose parts
run in the chosen runtime, and puts the torch network back when the run ends or raises, so a reused workflow
(MONAI Label) loads weights into the same object every time. Each part is a
:class:`~custom_networks.runtimes.exported_part.ExportedPart`: exported to ONNX at its first call and kept in the
runtime cache (:mod:`custom_networks.runtimes.cache`), so later runs only open the file. At the end of each run
one log line names the runtime that ran each part and the cached file it used.

``runtime``: ``"auto"`` (the bundles' default: OpenVINO on a CPU where it is installed, else torch; see
:func:`~custom_networks.runtimes.selection.resolve_runtime`; a part that cannot be exported or opened runs in torch,
with a warning), ``"torch"`` (no change), ``"onnxruntime"``, ``"openvino"`` or ``"onnxruntime-int8"``
(:func:`~custom_networks.runtimes.int8.quantize_int8` of the exported part, calibrated on the first input it
sees, then cached like the float32 file). ``parts``: dotted names of the submodules to run in the runtime (``""``,
the default: the whole network); the two-stage head-and-neck network names stage 1 and its organ nets, whose box
search between them is NumPy and stays in Python.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Sequence

import torch.nn as nn

from ..runtimes.exported_part import ExportedPart, hash_weights
from ..runtimes.selection import resolve_runtime

__all__ = ["RuntimeHandler"]

logger = logging.getLogger(__name__)


class RuntimeHandler:
    """Evaluator handler: run the network's ``parts`` in ``runtime`` for the length of each evaluator run.

    Attach it after the checkpoint loader (both act on ``Events.STARTED``, in the order attached). ``"torch"``
    (also what ``"auto"`` resolves to on a GPU) leaves the evaluator's network as it is. Defaults: ``parts=("",)``
    (the whole network), the cache folder of :func:`~custom_networks.runtimes.cache.usable_cache_dir`, the
    runtime's own thread count. Every run ends with one log line naming the runtime that ran and its files.
    """

    def __init__(self, runtime: str = "torch", parts: Sequence[str] = ("",), cache_dir: str | None = None,
                 num_threads: int | None = None) -> None:
        resolve_runtime(runtime, "cpu")  # a misspelt runtime fails when the config is parsed, not at the first scan
        self.runtime, self.parts, self.cache_dir, self.num_threads = runtime, list(parts), cache_dir, num_threads
        self._torch_network: nn.Module | None = None
        self._opened: dict[tuple[str, str], ExportedPart] = {}  # (part, weights hash): reused while weights stay

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        if resolve_runtime(self.runtime, engine.state.device) == "torch":
            engine.add_event_handler(Events.COMPLETED, self.log_torch)
            return
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.COMPLETED, self.completed)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.failed)

    def _part(self, name: str, module: nn.Module, runtime: str) -> ExportedPart:
        key = (name, hash_weights(module))
        if key not in self._opened:  # new weights (or the first run): drop this part's older session
            self._opened = {k: v for k, v in self._opened.items() if k[0] != name}
            self._opened[key] = ExportedPart(module, runtime, self.cache_dir, self.num_threads, key[1],
                                             torch_fallback=self.runtime == "auto")
        return self._opened[key]

    def network_for(self, net: nn.Module, device: Any) -> nn.Module:
        """``net`` with its ``parts`` run in this handler's runtime on ``device`` (``net`` itself for torch); ``net``
        is left as it is, and a part's session is reused while its weights stay. What the evaluator runs, and what
        the MONAI Label app runs (it loads the weights itself and runs no evaluator handlers)."""
        runtime = resolve_runtime(self.runtime, device)
        if runtime == "torch":
            return net
        if self.parts == [""]:
            return self._part("", net, runtime)
        return _with_parts(net, {name: self._part(name, net.get_submodule(name), runtime) for name in self.parts})

    def started(self, engine: Any) -> None:
        self._torch_network = engine.network
        engine.network = self.network_for(engine.network, engine.state.device)

    def completed(self, engine: Any) -> None:
        """Put the torch network back and log which runtime ran each part, from which file."""
        if self._torch_network is None:
            return
        engine.network, self._torch_network = self._torch_network, None
        ran = [(name or "the network", part) for (name, _), part in self._opened.items() if name in self.parts]
        logger.info("runtime %s: %s", self.runtime, "; ".join(
            f"{name} did not run" if part.ran is None else f"{name} ran in {part.ran}"
            + (f" from {part.file}" if part.file else "") for name, part in ran))

    def failed(self, engine: Any, error: BaseException) -> None:
        """Put the torch network back, then let the error propagate (as MONAI's handlers do)."""
        self.completed(engine)
        raise error

    def log_torch(self, engine: Any) -> None:
        logger.info("runtime %s: the network ran in torch", self.runtime)


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
