"""AF: attention-based fusion of a decoder (high-level) feature with an encoder skip (low-level) feature.

Paper 000: Liu Jinhui et al. 2022, "CT Image Segmentation of Lower Limb Bones Based on Improved
U-Net", Computer Systems & Applications 31(10): 134-141, AF module (formulas 3-7). It replaces
U-Net's concatenation skip: an SE channel branch (ref [7]) and a CBAM spatial branch (ref [15]).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import ChannelSELayer

from .attention import SpatialAttention
from .separable_conv import StandardConv

__all__ = ["AttentionFusion"]

_INTERP_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


class AttentionFusion(nn.Module):
    """Attention fusion (AF) of a high-level feature ``H`` and a low-level skip feature.

    Paper: Liu Jinhui et al. 2022, "CT Image Segmentation of Lower Limb Bones Based on Improved
    U-Net", Computer Systems & Applications 31(10), §1.2 (AF module,
    steps 1-6, formulas 3-7). With ``C_H`` = ``high_channels``:

    1. ``H`` is upsampled to the low-level resolution (x2), linear interpolation (bilinear in 2D,
       trilinear in 3D), ``align_corners=False`` [P: bilinear].
    2. ``H1, H2 = torch.chunk(H, 2, dim=1)``, ``C_H / 2`` channels each [D: deterministic halves; the
       paper says "randomly split equally"].
    3. ``L = CBR_1x1(low)`` with ``C_H / 2`` channels, so that ``H2 + L`` is defined [P: 1x1 conv;
       D: width, and BN + ReLU after it like every other conv of the network].
    4. Channel branch: ``F_c = SE([H1, L])`` (``C_H`` channels) with MONAI's
       ``ChannelSELayer`` (global average pool -> FC ``C_H -> C_H // r`` -> ReLU -> FC back -> sigmoid
       -> channel scaling; an FC on the pooled vector is the paper's 1x1 conv) [P: r = 16]. ``r`` is
       capped at ``C_H`` so the squeeze keeps at least one channel (matters only for small test widths).
    5. Spatial branch: ``F_s = SpatialAttention(H2 + L)`` (``C_H / 2`` channels, 7x7 conv) [P].
    6. Optionally (``branch_conv``) one 3x3 CBR after each branch mapping it to ``out_channels``
       [D: the text mentions "an ordinary convolution" after each branch; formulas 4 and 6 do not].
       Then ``F_out = CBR_3x3([F_s, F_c]) -> out_channels`` (formula 7) [P: CBR; D: 3x3].

    CBR = conv (no bias) -> BN -> ReLU (``StandardConv``).

    Shapes: ``forward(high, low)`` with ``high`` of shape ``(B, C_H, *s)`` and ``low`` of shape
    ``(B, low_channels, *2s)`` returns ``(B, out_channels, *2s)``. In AFU-Net at the first decoder
    level: ``(B, 512, 16, 16)`` + ``(B, 256, 32, 32)`` -> ``(B, 256, 32, 32)``. The final CBR sees
    ``2 * out_channels`` channels when ``branch_conv`` else ``C_H / 2 + C_H`` (the branches keep their
    widths).

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        high_channels: channels ``C_H`` of the high-level (decoder) feature; must be even.
        low_channels: channels of the low-level (encoder skip) feature.
        out_channels: output channels (default ``low_channels`` [D]).
        reduction: SE reduction ratio ``r`` (default 16 [P]).
        spatial_kernel: kernel size of the spatial-attention conv (default 7 [P]).
        branch_conv: add the 3x3 CBR after each branch (default True [D]).
    """

    def __init__(
        self,
        spatial_dims: int,
        high_channels: int,
        low_channels: int,
        out_channels: int | None = None,
        reduction: int = 16,
        spatial_kernel: int = 7,
        branch_conv: bool = True,
    ) -> None:
        super().__init__()
        if high_channels < 2 or high_channels % 2:
            raise ValueError(
                f"AttentionFusion needs an even high_channels >= 2 (split in halves), got {high_channels}."
            )
        if reduction < 1:
            raise ValueError(f"AttentionFusion needs reduction >= 1, got {reduction}.")
        if out_channels is None:
            out_channels = low_channels
        self.spatial_dims = spatial_dims
        self.high_channels = high_channels
        self.low_channels = low_channels
        self.out_channels = out_channels
        self.branch_conv = branch_conv
        self.interp_mode = _INTERP_MODES[spatial_dims]

        half = high_channels // 2
        self.se_reduction = min(reduction, high_channels)  # keep C_H // r >= 1
        self.project_low = StandardConv(spatial_dims, low_channels, half, kernel_size=1)
        self.channel_att = ChannelSELayer(spatial_dims, high_channels, r=self.se_reduction)
        self.spatial_att = SpatialAttention(spatial_dims, kernel_size=spatial_kernel)
        self.channel_conv: nn.Module = nn.Identity()
        self.spatial_conv: nn.Module = nn.Identity()
        if branch_conv:
            self.channel_conv = StandardConv(spatial_dims, high_channels, out_channels, kernel_size=3)
            self.spatial_conv = StandardConv(spatial_dims, half, out_channels, kernel_size=3)
            fused_channels = 2 * out_channels
        else:
            fused_channels = half + high_channels
        self.fuse = StandardConv(spatial_dims, fused_channels, out_channels, kernel_size=3)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        high = F.interpolate(high, size=low.shape[2:], mode=self.interp_mode, align_corners=False)
        h1, h2 = torch.chunk(high, 2, dim=1)  # (B, C_H/2, *2s) each
        low_proj = self.project_low(low)  # (B, C_H/2, *2s)
        f_c = self.channel_conv(self.channel_att(torch.cat([h1, low_proj], dim=1)))
        f_s = self.spatial_conv(self.spatial_att(h2 + low_proj))
        return self.fuse(torch.cat([f_s, f_c], dim=1))
