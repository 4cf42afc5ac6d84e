"""CBAM-style spatial and channel attention, spatial-dims generic.

Paper 000: Liu Jinhui et al. 2022, "CT Image Segmentation of Lower Limb Bones Based on Improved
U-Net", Computer Systems & Applications 31(10): 134-141, AF module, spatial branch (formulas 5-6),
after CBAM (ref [15], Woo et al., ECCV 2018). The channel (SE) branch of the same module uses MONAI's
``monai.networks.blocks.ChannelSELayer``; only the spatial branch is written here (``SpatialAttention``).

Paper 001: Jin Shunnan et al. 2021, "Segmentation of Spine CT Images Based on Multi-Scale Feature
Fusion and Attention Mechanism", Computer Systems & Applications 30(10): 280-286, channel attention
(Fig. 4, formulas 3-4), the CBAM channel module (``ChannelAttention``). MONAI's ``ChannelSELayer`` has
only the average-pooled descriptor, so the avg + max version is written here.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

__all__ = ["SpatialAttention", "ChannelAttention"]


class SpatialAttention(nn.Module):
    """CBAM spatial attention: channel-wise mean and max -> kxk conv -> sigmoid -> multiply the input.

    Paper: Liu Jinhui et al. 2022, "CT Image Segmentation of Lower Limb Bones Based on Improved
    U-Net", Computer Systems & Applications 31(10), §1.2, formulas 5-6 (AF module, spatial
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


class ChannelAttention(nn.Module):
    """CBAM channel attention: global avg and max pool -> one shared 2-layer MLP -> add -> sigmoid -> scale.

    Paper: Jin Shunnan, Zhou Dibin, He Bin, Gu Jingjun 2021, "Segmentation of Spine CT Images Based on
    Multi-Scale Feature Fusion and Attention Mechanism", Computer Systems & Applications 30(10):
    280-286, §2 (Fig. 4, formulas 3-4):
    ``M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))``, ``F' = M_c(F) * F`` (channel-wise).

    The MLP is ``Linear(C, hidden) -> ReLU -> Linear(hidden, C)``, both with bias [X, CBAM reference
    code], shared by the two descriptors. ``hidden = max(C // reduction, min_hidden)``
    [D: r = 16 from CBAM, with a floor of 4 hidden units for small widths].

    Shapes: ``(B, C, *spatial) -> (B, C, *spatial)`` (same shape); each channel is multiplied by one
    weight in (0, 1) per sample. ``attention_map`` returns the weights, shape ``(B, C, 1, ..., 1)``.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        channels: number of channels C of the input.
        reduction: MLP reduction ratio r (default 16 [D]).
        min_hidden: lower bound of the hidden width (default 4 [D]).
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16, min_hidden: int = 4) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if channels < 1 or reduction < 1 or min_hidden < 1:
            raise ValueError(
                f"ChannelAttention needs channels, reduction and min_hidden >= 1, got "
                f"channels={channels}, reduction={reduction}, min_hidden={min_hidden}."
            )
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.hidden = max(channels // reduction, min_hidden)
        self.mlp = nn.Sequential(
            nn.Linear(channels, self.hidden), nn.ReLU(inplace=True), nn.Linear(self.hidden, channels)
        )
        self.sigmoid = nn.Sigmoid()

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The weights ``M_c(F)`` of shape ``(B, C, 1, ..., 1)``, values in (0, 1)."""
        spatial_axes = tuple(range(2, 2 + self.spatial_dims))
        avg = x.mean(dim=spatial_axes)  # (B, C)
        mx = x.amax(dim=spatial_axes)  # (B, C)
        weights = self.sigmoid(self.mlp(avg) + self.mlp(mx))  # (B, C)
        return weights.reshape(*weights.shape, *([1] * self.spatial_dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)
