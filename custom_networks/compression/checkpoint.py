"""Writing compressed weights as plain tensors: the format that
:mod:`custom_networks.bundle.compressed_weights` reads into the full-size network of a bundle's config.

:func:`compressed_state_dict` marks a compressed network's state dict (``compression_format``) and, for a
k-level quantized one, stores each conv weight as int8 codes and a step; :func:`save_checkpoint` writes it
atomically. The bundles' checkpoint loader, ``scripts.common.bundles.load_weights`` and the MONAI Label app read
it back explicitly (:func:`~custom_networks.bundle.compressed_weights.load_weights`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn as nn

from ..bundle.compressed_weights import CODES, FORMAT_KEY, FORMAT_VERSION, STEP
from ..writers.base import write_atomically
from .quantization import weight_codes
from .threshold_pruning import conv_layers

__all__ = ["compressed_state_dict", "conv_weight_count", "save_checkpoint"]


def compressed_state_dict(net: nn.Module, levels: int | None = None) -> dict[str, torch.Tensor]:
    """``net``'s state dict marked as compressed, conv weights as int8 codes when ``levels`` is given.

    ``levels`` must be the quantizer ``net`` was fine-tuned with (its weights must be on that grid).
    """
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    if levels is not None:
        for name, layer in net.named_modules():
            if isinstance(layer, nn.modules.conv._ConvNd):
                codes, step = weight_codes(state.pop(f"{name}.weight"), levels)
                state[f"{name}.{CODES}"], state[f"{name}.{STEP}"] = codes, step
    state[FORMAT_KEY] = torch.tensor(FORMAT_VERSION)
    return state


def save_checkpoint(state_dict: Mapping[str, torch.Tensor], path: str) -> None:
    """Write ``state_dict`` atomically (temp file + rename): a kill never leaves half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, lambda tmp: torch.save(dict(state_dict), tmp))


def conv_weight_count(net: nn.Module) -> tuple[int, int]:
    """(all conv weights, non-zero conv weights) of ``net``."""
    weights = [layer.weight.detach() for layer in conv_layers(net)]
    return sum(w.numel() for w in weights), sum(int((w != 0).sum()) for w in weights)
