"""Adapters that let networks with other output conventions run in these bundles."""

from __future__ import annotations

import torch
import torch.nn as nn


class MainOutput(nn.Module):
    """Wrap a network that returns a list or tuple of outputs and return only the first one.

    MONAI's ``BasicUNetPlusPlus`` returns ``[logits]`` (or a deep-supervision list, main output first)
    even in eval mode; bundles, ``SliceInferer`` and MONAI Label expect one tensor. Used for the
    U-Net++ baseline of paper 003's Table 1. Shapes pass through unchanged: ``(B, C_in, *S)`` in,
    ``(B, C_out, *S)`` out.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, (list, tuple)) else out
