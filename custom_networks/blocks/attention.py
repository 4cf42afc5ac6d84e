"""CBAM-style spatial attention, spatial-dims generic.

Paper 000: Liu Jinhui et al. 2022, "CT Image Segmentation of Lower Limb Bones Based on Improved
U-Net", Computer Systems & Applications 31(10): 134-141, AF module, spatial branch (formulas 5-6),
after CBAM (ref [15], Woo et al., ECCV 2018). The channel (SE) branch of the same module uses MONAI's
``monai.networks.blocks.ChannelSELayer``; only the spatial branch is written here.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

__all__ = ["SpatialAttention"]


class SpatialAttention(nn.Module):
    """CBAM spatial attention: channel-wise mean and max -> kxk conv -> sigmoid -> multiply the input.

    Paper: Liu Jinhui et al. 2022, "CT Image Segmentation of Lower Limb Bones Based on Improved
    U-Net", Computer Systems & Applications 31(10), section 1.4 of the design notes (AF module, spatial
    branch, formulas 5-6): ``w_s = Conv_kxk([AvgPool_c(Z), MaxPool_c(Z)])``,
    ``F_s = Sigmoid(w_s) * Z``.

    Not to be confused with MONAI's ``SpatialAttentionBlock``, which is a self-attention (query/key/
    value) block over spatial positions, a different thing.

    Defaults: kernel 7 [P]; one conv with 2 input and 1 output channel, no bias and no BN, exactly the
    CBAM formula [D].

    Shapes: ``(B, C, *spatial) -> (B, C, *spatial)`` (same shape). The attention map has shape
    ``(B, 1, *spatial)`` with values in (0, 1) and is shared by all channels.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        kernel_size: odd kernel size of the conv (default 7).
    """

    def __init__(self, spatial_dims: int, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"SpatialAttention needs an odd kernel_size, got {kernel_size}.")
        self.spatial_dims = spatial_dims
        self.kernel_size = kernel_size
        self.conv = Conv[Conv.CONV, spatial_dims](2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The map ``Sigmoid(w_s)`` of shape ``(B, 1, *spatial)``, values in (0, 1)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, *spatial)
        return self.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)
