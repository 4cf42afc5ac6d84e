"""Multi-scale output-fusion deep-supervision head.

Paper 003: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
Deep Learning", §2.2.3 (multi-scale output-fusion deep supervision, Fig. 4, after ref [8],
Yu Ningbo et al. 2020): side outputs at several decoder scales are fused into the final prediction
by concatenation (not addition).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv

__all__ = ["OutputFusionHead"]

_INTERP_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


class OutputFusionHead(nn.Module):
    """Side 1x1 heads per decoder level, upsampled to the finest level, concatenated and fused by a 1x1 conv.

    Paper: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
    Deep Learning", §2.2.3, Fig. 4. Wiring is not given in the paper; [D] defaults:
    one 1x1 conv side head per decoder level to ``out_channels`` logits, linear
    upsampling (bilinear in 2D, trilinear in 3D, ``align_corners=False``) to the finest level's size,
    concatenation of all side logits (``len(levels) * out_channels`` channels), 1x1 conv to
    ``out_channels`` fused logits.

    Shapes: ``forward(features)`` takes a list of decoder features ordered coarse to fine, feature
    ``i`` of shape ``(B, in_channels_per_level[i], *spatial_i)``; the last (finest) one sets the
    output size ``spatial``. Returns ``(fused, sides)``: ``fused`` of shape
    ``(B, out_channels, *spatial)`` and ``sides``, a list of ``len(features)`` tensors of the same
    shape, ordered coarse to fine.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        in_channels_per_level: channels of each decoder feature, coarse to fine.
        out_channels: number of classes (logit channels).
    """

    def __init__(self, spatial_dims: int, in_channels_per_level: Sequence[int], out_channels: int) -> None:
        super().__init__()
        if len(in_channels_per_level) < 1:
            raise ValueError("OutputFusionHead needs at least one decoder level.")
        self.spatial_dims = spatial_dims
        self.interp_mode = _INTERP_MODES[spatial_dims]
        conv = Conv[Conv.CONV, spatial_dims]
        self.side_heads = nn.ModuleList([conv(c, out_channels, kernel_size=1) for c in in_channels_per_level])
        self.fuse = conv(len(in_channels_per_level) * out_channels, out_channels, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if len(features) != len(self.side_heads):
            raise ValueError(f"OutputFusionHead expects {len(self.side_heads)} features, got {len(features)}.")
        size = features[-1].shape[2:]
        last = len(features) - 1
        sides = []
        for i, (feat, head) in enumerate(zip(features, self.side_heads)):
            side = head(feat)
            if i != last:  # the finest level is already at the output size
                side = F.interpolate(side, size=size, mode=self.interp_mode, align_corners=False)
            sides.append(side)
        fused = self.fuse(torch.cat(sides, dim=1))
        return fused, sides
