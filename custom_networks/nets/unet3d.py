"""The thesis's 3D U-Net (paper 002): 3 poolings, initial depth 24, 3x3x3 output conv.

Liu Ting 2020, "Research and Application on CT Image of Head and Neck Based on 3D Unet", master's thesis,
Xi'an Jiaotong University, §3.2.3 and Table 3-3 (one topology for both stages).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution, UpSample

from ..blocks.up_stage import UpStage
from .base import PaperUNet

__all__ = ["UNet3D"]

NORMS = {"instance": ("instance", {"affine": True}), "batch": "batch", "none": None}


def double_conv(in_channels: int, out_channels: int, norm: str) -> nn.Sequential:
    """Two 3x3x3 "same" convs, each followed by the norm and ReLU (one Table 3-3 level)."""
    return nn.Sequential(
        *[
            Convolution(3, c_in, out_channels, kernel_size=3, act="relu", norm=NORMS[norm], adn_ordering="NA")
            for c_in in (in_channels, out_channels)
        ]
    )


class UNet3D(PaperUNet):
    """3D U-Net of paper 002 (thesis Table 3-3), used for stage 1 (9 classes) and every stage-2 organ net (2).

    Encoder: per level two 3x3x3 convs (``features`` channels: 24-48-96-192 [P]), 2x2x2 max pooling between
    levels (3 poolings [P]), dropout at the bottom [P] (rate 0.5 [D]). Decoder: one
    :class:`~custom_networks.blocks.UpStage` per level: 2x2x2 transposed conv (stride 2) halving channels,
    concatenation with the encoder level ``[skip, up]``, two 3x3x3 convs. Output: a **3x3x3** conv [P] to
    ``out_channels`` logits (no activation; softmax belongs to the loss / post-processing).
    Every inner conv is followed by the norm and ReLU [D: the thesis only says "BN"; with batch size 1
    InstanceNorm3d(affine) is the default, ``norm="batch"`` or ``"none"`` are options].

    With the defaults the conv and transposed-conv weights number 3 154 896 (12.03 MiB as float32), the
    thesis's "12.03M" model size (weights only, no biases or norm parameters).

    Shapes: ``(B, in_channels, D1, D2, D3)`` -> ``(B, out_channels, D1, D2, D3)``, every ``Di`` divisible
    by ``2 ** (len(features) - 1)`` (8 by default); e.g. stage 1: (1, 1, 208, 208, 72) -> (1, 9, 208, 208, 72).

    Args:
        in_channels: input channels (1: windowed, standardised CT).
        out_channels: classes (9 for stage 1, 2 for a stage-2 organ net).
        features: channels per level, top to bottom (length = poolings + 1).
        norm: ``"instance"`` (default), ``"batch"`` or ``"none"``.
        dropout: dropout rate at the bottom (0 disables it).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 9,
        features: Sequence[int] = (24, 48, 96, 192),
        norm: str = "instance",
        dropout: float = 0.5,
    ) -> None:
        super().__init__(3, features)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}.")
        f = self.features
        self.encoder = nn.ModuleList(
            [double_conv(c_in, c_out, norm) for c_in, c_out in zip((in_channels,) + f[:-1], f)]
        )
        self.pool = nn.MaxPool3d(2)
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.decoder = nn.ModuleList(
            [
                UpStage(UpSample(3, f[i + 1], f[i], scale_factor=2, mode="deconv"), double_conv(2 * f[i], f[i], norm))
                for i in reversed(range(len(f) - 1))
            ]
        )
        self.head = nn.Conv3d(f[0], out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encode(x, self.dropout)
        return self.head(self.decode(x, skips)[-1])
