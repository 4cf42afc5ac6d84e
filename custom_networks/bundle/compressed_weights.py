"""Reading a compressed checkpoint (``python -m scripts.compress``) into the full-size network of a bundle's config.

A compressed checkpoint is an ordinary state dict, as the bundles' ``CheckpointSaver`` writes it
(``torch.load(weights_only=True)``), in which a compressed (sub-)network

- has fewer channels (structured pruning changed the architecture),
- stores each quantized conv weight as ``<layer>.weight_codes`` (int8) and ``<layer>.weight_step`` (float32
  scalar) instead of a float32 ``<layer>.weight`` (4x smaller),
- carries ``<prefix>compression_format`` (an int tensor) marking it.

:func:`read_compressed` decodes the codes and shrinks the marked (sub-)networks to the checkpoint's channel counts
(torch-pruning replays the removals, so coupled layers and norms follow); then the state dict loads as any other.
The loaders call it explicitly: :func:`load_weights` for a network in hand, and :func:`reading_compressed` around a
load that someone else does (MONAI's ``CheckpointLoader`` in
:class:`~custom_networks.engine.checkpoints.CheckedCheckpointLoader`, MONAI Label's own ``load_state_dict``). A
checkpoint without the marker loads exactly as before: a shape mismatch there is still an error.
:mod:`custom_networks.compression.checkpoint` writes the format.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn

from ..extras import require
from ..ops.tracing import eval_mode, example_input

__all__ = [
    "CODES", "FORMAT_KEY", "FORMAT_VERSION", "STEP", "fit_to_state_dict", "load_weights", "read_compressed",
    "reading_compressed",
]

#: the marker key of a compressed (sub-)network, and the format version this code reads and writes
FORMAT_KEY = "compression_format"
FORMAT_VERSION = 1
#: ``<layer>.weight_codes`` (int8) times ``<layer>.weight_step`` (float32 scalar) is ``<layer>.weight``
CODES, STEP = "weight_codes", "weight_step"


def _decode(state_dict: dict, prefix: str) -> None:
    """Replace ``<layer>.weight_codes`` + ``<layer>.weight_step`` under ``prefix`` by a float32 ``<layer>.weight``."""
    for key in [k for k in state_dict if k.startswith(prefix) and k.endswith("." + CODES)]:
        layer = key[: -len(CODES)]
        if layer + STEP not in state_dict:
            raise ValueError(f"compressed checkpoint has {key} but no {layer + STEP}; the file is incomplete.")
        state_dict[layer + "weight"] = state_dict.pop(key).float() * state_dict.pop(layer + STEP).float()


def fit_to_state_dict(net: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> None:
    """Remove channels from ``net`` (in place) until every conv and linear layer has the checkpoint's output channels.

    Which channels go does not matter (the checkpoint's weights replace them); torch-pruning's dependency
    graph carries each removal to the coupled layers (concatenations, additions, norms, depthwise convs), and is
    needed only when some layer has fewer channels in the checkpoint. A checkpoint layer with *more* channels than
    ``net`` is left for ``load_state_dict`` to report.
    """
    graph = tp = None
    for name, layer in net.named_modules():
        weight = state_dict.get(f"{prefix}{name}.weight")
        if isinstance(layer, nn.Linear) and weight is not None:
            wanted, have, kind = weight.shape[0], layer.out_features, "prune_linear_out_channels"
        elif isinstance(layer, nn.modules.conv._ConvNd) and weight is not None:
            wanted = weight.shape[1] * layer.groups if layer.transposed else weight.shape[0]
            have, kind = layer.out_channels, "prune_conv_out_channels"
        else:
            continue
        if wanted < have:
            if graph is None:
                tp = require("torch_pruning", "Loading channel-pruned weights")
                with eval_mode(net):
                    graph = tp.DependencyGraph().build_dependency(net, example_inputs=example_input(net))
            graph.get_pruning_group(layer, getattr(tp, kind), idxs=list(range(wanted, have))).prune()


def read_compressed(module: nn.Module, state_dict: dict, prefix: str = "", *_: Any) -> None:
    """Make ``state_dict`` (keys under ``prefix`` belong to ``module``) loadable into ``module``, in place: every
    (sub-)network marked as compressed is decoded and ``module``'s matching submodule fitted to it. A state dict
    without a marker is left as it is. Also a ``load_state_dict`` pre-hook: torch's further arguments are ignored."""
    for marker in [k for k in state_dict if k.startswith(prefix) and k.rpartition(".")[2] == FORMAT_KEY]:
        version = int(state_dict.pop(marker))
        if version != FORMAT_VERSION:
            raise ValueError(
                f"compressed checkpoint format {version} is not supported (this code reads {FORMAT_VERSION}); "
                "re-run `python -m scripts.compress` with this version of the repo."
            )
        sub = marker[: -len(FORMAT_KEY)]  # "<prefix><path>." or the prefix itself
        _decode(state_dict, sub)
        path = sub[len(prefix):].rstrip(".")
        fit_to_state_dict(module.get_submodule(path) if path else module, state_dict, sub)


@contextmanager
def reading_compressed(*modules: nn.Module) -> Iterator[None]:
    """While inside, every ``load_state_dict`` of ``modules`` reads compressed checkpoints (:func:`read_compressed`
    as a pre-hook); the hooks are removed after."""
    handles = [m.register_load_state_dict_pre_hook(read_compressed) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def load_weights(network: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True) -> Any:
    """``network.load_state_dict(state_dict, strict)`` that also reads a compressed checkpoint; returns its result."""
    with reading_compressed(network):
        return network.load_state_dict(state_dict, strict=strict)
