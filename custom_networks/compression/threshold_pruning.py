"""Magnitude (threshold) pruning of paper 002's Algorithm 4-2 (thesis §4.2.2) with ``torch.nn.utils.prune``.

Every conv and transposed-conv weight with ``|w| < t`` is masked (biases and norm parameters are not
touched); fine-tuning runs through PyTorch's pruning reparametrisation (``weight = weight_orig * mask``), so
masked weights stay zero; :func:`make_permanent` folds the masks into plain ``weight`` tensors before saving.
The thesis raises ``t`` by 0.01 from 0.01 and keeps **0.02** (sparsity 0.150 on its data).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils import prune

__all__ = ["THESIS_THRESHOLDS", "conv_layers", "make_permanent", "mask_below", "sparsity"]

# Thesis §4.2.2 / §4.3.2: start 0.01, step 0.01, chosen 0.02.
THESIS_THRESHOLDS = (0.01, 0.02)


def conv_layers(net: nn.Module) -> list[nn.Module]:
    """Every conv and transposed conv of ``net`` (1D/2D/3D), output layer included, in module order."""
    return [m for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd)]


def mask_below(net: nn.Module, threshold: float) -> None:
    """Mask every conv weight with ``|w| < threshold``; masks of an earlier call are kept (AND-ed)."""
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}.")
    for layer in conv_layers(net):
        prune.custom_from_mask(layer, "weight", mask=(layer.weight.detach().abs() >= threshold))


def make_permanent(net: nn.Module) -> None:
    """Replace each ``weight_orig * weight_mask`` by a plain ``weight`` (zeros stay); no-op for unmasked layers."""
    for layer in conv_layers(net):
        if prune.is_pruned(layer) and hasattr(layer, "weight_mask"):
            prune.remove(layer, "weight")


@torch.no_grad()
def sparsity(net: nn.Module) -> float:
    """Zero conv weights / all conv weights (the thesis's sparsity; biases and norms excluded)."""
    weights = [layer.weight for layer in conv_layers(net)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / max(total, 1)
