"""Efficient Channel Attention (ECA-Net), spatial-dims generic.

Used by paper 003, Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage
Based on Deep Learning" (Software Engineering and Applications 12(2)), §2.2.2, "EAS module":
ECA (ref [7], Wang et al., CVPR 2020) is merged into the ASPP pyramid to reweight channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["ECA", "eca_kernel_size"]


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """Adaptive 1D kernel size of ECA-Net: ``k = |log2(C)/gamma + b/gamma|_odd``.

    Follows the ECA-Net reference code: ``t = int(abs((log2(C) + b) / gamma))``, then ``k = t`` if ``t``
    is odd, else ``t + 1``. This gives ``k = 3`` for C = 64 and ``k = 5`` for C = 256, 512, 1024.
    """
    if channels < 1:
        raise ValueError(f"ECA needs at least one channel, got channels={channels}.")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """ECA channel attention: global average pool, 1D conv across channels, sigmoid, channel scaling.

    Paper: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
    Deep Learning", §2.2.2 (EAS module, Fig. 3), after ECA-Net (ref [7]). There is no dimensionality
    reduction (unlike SE); the only weights are the ``k`` taps of one bias-free ``Conv1d(1, 1, k)``
    shared over the channel axis, with ``k`` from :func:`eca_kernel_size` [X, ECA-Net reference code].

    Shapes: ``(B, C, *spatial) -> (B, C, *spatial)`` (same shape); each channel is multiplied by one
    weight in (0, 1) per sample.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        channels: number of channels C of the input.
        gamma: ECA-Net ``gamma`` (default 2, ECA-Net value).
        b: ECA-Net ``b`` (default 1, ECA-Net value).
    """

    def __init__(self, spatial_dims: int, channels: int, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.kernel_size = eca_kernel_size(channels, gamma=gamma, b=b)
        self.conv = nn.Conv1d(1, 1, kernel_size=self.kernel_size, padding=(self.kernel_size - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial_axes = tuple(range(2, 2 + self.spatial_dims))
        pooled = x.mean(dim=spatial_axes, keepdim=True)  # (B, C, 1, ..., 1)
        y = pooled.flatten(2).transpose(1, 2)  # (B, 1, C): channels become the 1D "length" axis
        y = self.sigmoid(self.conv(y))  # (B, 1, C)
        weights = y.transpose(1, 2).reshape_as(pooled)  # (B, C, 1, ..., 1)
        return x * weights
