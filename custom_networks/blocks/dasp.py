"""DASP: densely connected multi-scale dilated conv module, spatial-dims generic.

Paper 000: Liu Jinhui et al. 2022, "CT Image Segmentation of Lower Limb Bones Based on Improved
U-Net", Computer Systems & Applications 31(10): 134-141, section on the DASP module (formulas 1-2),
after DenseNet (ref [12]) and ASPP (ref [13]); rates chosen by hybrid dilated convolution (ref [14]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .separable_conv import StandardConv

__all__ = ["DASP"]


class DASP(nn.Module):
    """Densely connected dilated 3x3 conv branches, then a 3x3 conv back to the input width.

    Paper: Liu Jinhui et al. 2022, "CT Image Segmentation of Lower Limb Bones Based on Improved
    U-Net", Computer Systems & Applications 31(10), §1.1 (DASP, formulas
    1-2). Each branch sees the concatenation of the input and all earlier branch outputs, so the module
    is serial and parallel at once. With the default rates (3, 5, 7):

    - ``X1 = CBR_d3(X)``
    - ``X2 = CBR_d5([X1, X])``
    - ``X3 = CBR_d7([X2, X1, X])``
    - ``Y  = CBR_3x3([X3, X2, X1, X])`` -> ``channels``

    CBR is 3x3 conv (no bias) -> BN -> ReLU with padding = dilation (``StandardConv``), so the size is
    kept.

    Defaults: rates 3, 5, 7 [P]; X enters every branch (DenseASPP wiring; formula 1 as printed
    omits X, which would leave X1 without an input) [D]; every branch is ``growth = channels`` wide
    [D]; CBR for every conv [D]; no residual addition around the module [D].

    Shapes: ``(B, channels, *spatial) -> (B, channels, *spatial)``. Branch ``i`` (0-based) has
    ``channels + i * growth`` input channels (``(i + 1) * channels`` at the default growth); the final
    conv has ``channels + len(dilations) * growth``.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        channels: input and output channels (512 at the bottom of AFU-Net).
        dilations: rates of the dilated branches, in order (default ``(3, 5, 7)``).
        growth: output channels of every branch (default ``channels``).
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        dilations: Sequence[int] = (3, 5, 7),
        growth: int | None = None,
    ) -> None:
        super().__init__()
        if growth is None:
            growth = channels
        if channels < 1 or growth < 1:
            raise ValueError(f"DASP needs channels >= 1 and growth >= 1, got channels={channels}, growth={growth}.")
        self.dilations = tuple(int(d) for d in dilations)
        if len(self.dilations) < 1:
            raise ValueError("DASP needs at least one dilation rate.")
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.growth = growth

        self.branches = nn.ModuleList(
            [
                StandardConv(spatial_dims, channels + i * growth, growth, kernel_size=3, dilation=d)
                for i, d in enumerate(self.dilations)
            ]
        )
        self.project = StandardConv(spatial_dims, channels + len(self.dilations) * growth, channels, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]  # newest first: [X_i, ..., X_1, X]
        for branch in self.branches:
            feats.insert(0, branch(torch.cat(feats, dim=1)))
        return self.project(torch.cat(feats, dim=1))
