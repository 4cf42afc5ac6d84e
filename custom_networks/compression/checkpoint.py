"""Compressed weights as plain tensors, and loading them into a full-size network of this repo.

A compressed checkpoint is an ordinary state dict, as the bundles' ``CheckpointSaver`` writes it
(``torch.load(weights_only=True)``), in which the compressed sub-network

- has fewer channels (structured pruning changed the architecture),
- stores each quantized conv weight as ``<layer>.weight_codes`` (int8) and ``<layer>.weight_step``
  (float32 scalar) instead of a float32 ``<layer>.weight`` (4x smaller),
- carries ``<prefix>compression_format`` (an int tensor) marking it.

Importing this module adds :func:`load_compressed_pre_hook` to ``PaperUNet.load_state_dict_pre_hooks``, which
every network of this repo registers when it is built (``custom_networks/__init__.py`` imports this package, so
that happens before any network exists). The bundles' ``CheckpointLoader``, MONAI Label's ``load_state_dict``
and ``torch.nn.Module.load_state_dict`` therefore read such a checkpoint into the full-size network built from
the unchanged config: the hook decodes the codes and shrinks the layers to the checkpoint's channel counts
(torch-pruning replays the removals so coupled layers and norms follow). A checkpoint without the marker loads
exactly as before: a shape mismatch there is still an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn as nn

from ..nets.base import PaperUNet
from ..writers.base import write_atomically
from .quantization import weight_codes
from .threshold_pruning import conv_layers

__all__ = [
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "compressed_state_dict",
    "conv_weight_count",
    "fit_to_state_dict",
    "load_compressed_pre_hook",
    "save_checkpoint",
]

FORMAT_KEY = "compression_format"
FORMAT_VERSION = 1
_CODES, _STEP = "weight_codes", "weight_step"


def compressed_state_dict(net: nn.Module, levels: int | None = None) -> dict[str, torch.Tensor]:
    """``net``'s state dict marked as compressed, conv weights as int8 codes when ``levels`` is given.

    ``levels`` must be the quantizer ``net`` was fine-tuned with (its weights must be on that grid).
    """
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    if levels is not None:
        for name, layer in net.named_modules():
            if isinstance(layer, nn.modules.conv._ConvNd):
                codes, step = weight_codes(state.pop(f"{name}.weight"), levels)
                state[f"{name}.{_CODES}"], state[f"{name}.{_STEP}"] = codes, step
    state[FORMAT_KEY] = torch.tensor(FORMAT_VERSION)
    return state


def _decode(state_dict: dict, prefix: str) -> None:
    """Replace ``<layer>.weight_codes`` + ``<layer>.weight_step`` under ``prefix`` by a float32 ``<layer>.weight``."""
    for key in [k for k in state_dict if k.startswith(prefix) and k.endswith("." + _CODES)]:
        layer = key[: -len(_CODES)]
        if layer + _STEP not in state_dict:
            raise ValueError(f"compressed checkpoint has {key} but no {layer + _STEP}; the file is incomplete.")
        state_dict[layer + "weight"] = state_dict.pop(key).float() * state_dict.pop(layer + _STEP).float()


def fit_to_state_dict(net: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> None:
    """Remove channels from ``net`` (in place) until every conv and linear layer has the checkpoint's output channels.

    Which channels go does not matter (the checkpoint's weights replace them); torch-pruning's dependency
    graph carries each removal to the coupled layers (concatenations, additions, norms, depthwise convs).
    A checkpoint layer with *more* channels than ``net`` is left for ``load_state_dict`` to report.
    """
    from ..extras import require

    tp = require("torch_pruning", "Loading channel-pruned weights")

    from .channel_pruning import eval_mode, example_input

    graph = None
    for name, layer in net.named_modules():
        weight = state_dict.get(f"{prefix}{name}.weight")
        if isinstance(layer, nn.Linear) and weight is not None:
            wanted, have, prune_fn = weight.shape[0], layer.out_features, tp.prune_linear_out_channels
        elif isinstance(layer, nn.modules.conv._ConvNd) and weight is not None:
            wanted = weight.shape[1] * layer.groups if layer.transposed else weight.shape[0]
            have, prune_fn = layer.out_channels, tp.prune_conv_out_channels
        else:
            continue
        if wanted < have:
            if graph is None:
                with eval_mode(net):
                    graph = tp.DependencyGraph().build_dependency(net, example_inputs=example_input(net))
            graph.get_pruning_group(layer, prune_fn, idxs=list(range(wanted, have))).prune()


def load_compressed_pre_hook(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` pre-hook: decode and fit a compressed checkpoint (no-op for any other checkpoint)."""
    marker = prefix + FORMAT_KEY
    if marker not in state_dict:
        return
    version = int(state_dict.pop(marker))
    if version != FORMAT_VERSION:
        raise ValueError(
            f"compressed checkpoint format {version} is not supported (this code reads {FORMAT_VERSION}); "
            "re-run `python -m scripts.compress` with this version of the repo."
        )
    _decode(state_dict, prefix)
    fit_to_state_dict(module, state_dict, prefix)


PaperUNet.load_state_dict_pre_hooks.append(load_compressed_pre_hook)


def save_checkpoint(state_dict: Mapping[str, torch.Tensor], path: str) -> None:
    """Write ``state_dict`` atomically (temp file + rename): a kill never leaves half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, lambda tmp: torch.save(dict(state_dict), tmp))


def conv_weight_count(net: nn.Module) -> tuple[int, int]:
    """(all conv weights, non-zero conv weights) of ``net``."""
    weights = [layer.weight.detach() for layer in conv_layers(net)]
    return sum(w.numel() for w in weights), sum(int((w != 0).sum()) for w in weights)
