"""EAS module: an ASPP pyramid with ECA channel attention.

Paper 003: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
Deep Learning", §2.2.2 (EAS module, Fig. 3): ASPP (DeepLabv3, ref [6]) merged with ECA
(ECA-Net, ref [7]) so that the 1x1 branch "filters" features rather than only adjusting channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

from .eca import ECA
from .separable_conv import StandardConv

__all__ = ["EASPyramid"]


class EASPyramid(nn.Module):
    """ECA + ASPP pyramid; the output has the input's shape.

    Paper: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
    Deep Learning", §2.2.2, Fig. 3. The paper does not give rates, ECA placement or widths;
    the defaults below are [D]:

    - 1x1 conv -> BN -> ReLU -> :class:`ECA`;
    - one 3x3 conv per dilation rate (default 6, 12, 18 [X, DeepLabv3 output stride 16]) -> BN -> ReLU;
    - image pooling: global average pool -> 1x1 conv -> ReLU -> broadcast back to the input size
      (identical to bilinear/trilinear upsampling of a 1x1 map). This branch has a conv bias and no BN
      [D]: BN over a 1x1 map normalises over the batch only and fails in training
      with batch size 1;
    - every branch is ``branch_channels`` wide (default ``channels // 4`` [D]);
    - concatenate the branches -> 1x1 conv to ``channels`` -> BN -> ReLU -> :class:`ECA` [D].

    On small maps (24x24 at the bottom of a 384 input) rates 12 and 18 mostly sample padding; keep
    them configurable (for example ``(2, 4, 6)``).

    Shapes: ``(B, channels, *spatial) -> (B, channels, *spatial)``.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        channels: input and output channels.
        dilations: rates of the 3x3 atrous branches (default ``(6, 12, 18)``).
        branch_channels: width of every branch (default ``channels // 4``).
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        dilations: Sequence[int] = (6, 12, 18),
        branch_channels: int | None = None,
    ) -> None:
        super().__init__()
        if branch_channels is None:
            branch_channels = channels // 4
        if branch_channels < 1:
            raise ValueError(
                f"EASPyramid branch width must be >= 1; got branch_channels={branch_channels} "
                f"(channels={channels}; the default is channels // 4, so channels must be >= 4)."
            )
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.dilations = tuple(int(d) for d in dilations)

        self.branch_1x1 = nn.Sequential(
            StandardConv(spatial_dims, channels, branch_channels, kernel_size=1),
            ECA(spatial_dims, branch_channels),
        )
        self.branches_atrous = nn.ModuleList(
            [
                StandardConv(spatial_dims, channels, branch_channels, kernel_size=3, dilation=d)
                for d in self.dilations
            ]
        )
        self.pool_conv = Conv[Conv.CONV, spatial_dims](channels, branch_channels, kernel_size=1, bias=True)
        self.pool_act = nn.ReLU()

        n_branches = 2 + len(self.dilations)
        self.project = StandardConv(spatial_dims, n_branches * branch_channels, channels, kernel_size=1)
        self.eca_out = ECA(spatial_dims, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial_axes = tuple(range(2, 2 + self.spatial_dims))
        pooled = self.pool_act(self.pool_conv(x.mean(dim=spatial_axes, keepdim=True)))  # (B, Cb, 1, ..., 1)
        outs = [self.branch_1x1(x)]
        outs += [branch(x) for branch in self.branches_atrous]
        outs.append(pooled.expand(-1, -1, *x.shape[2:]))
        return self.eca_out(self.project(torch.cat(outs, dim=1)))
