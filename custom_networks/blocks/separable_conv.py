"""Depthwise-separable conv module and the two-conv block of one U-Net level.

Paper 003: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
Deep Learning", §2.2.1 (depthwise-separable conv module, Fig. 2c, after MobileNets, ref [5]).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Norm

__all__ = ["DepthwiseSeparableConv", "StandardConv", "DoubleConv"]


class DepthwiseSeparableConv(nn.Module):
    """Depthwise-separable conv: depthwise kxk -> BN -> LeakyReLU, then pointwise 1x1 -> BN -> h-swish.

    Paper: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
    Deep Learning", §2.2.1, Fig. 2c. LeakyReLU keeps negative-side information; h-swish
    ``x * ReLU6(x + 3) / 6`` (eq. 2-2, ``torch.nn.Hardswish``) after the pointwise conv.

    Shapes: ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)`` (padding keeps the size).

    Defaults: kernel 3 [P]; LeakyReLU slope 0.01 [D]; convs have no bias because BN follows
    [D].

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        in_channels: input channels; the depthwise conv has ``groups=in_channels``.
        out_channels: output channels of the pointwise conv.
        kernel_size: depthwise kernel size (default 3).
        dilation: depthwise dilation (default 1).
        negative_slope: LeakyReLU slope after the depthwise conv (default 0.01, [D]).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        self.depthwise = Convolution(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=in_channels,
            kernel_size=kernel_size,
            dilation=dilation,
            groups=in_channels,
            bias=False,
            adn_ordering="NA",
            norm=Norm.BATCH,
            act=("leakyrelu", {"negative_slope": negative_slope}),
        )
        self.pointwise = Convolution(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=1,
            bias=False,
            adn_ordering="N",
            norm=Norm.BATCH,
            act=None,
        )
        # MONAI's Act factory has no h-swish entry; torch's Hardswish is exactly eq. 2-2.
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pointwise(self.depthwise(x)))


class StandardConv(Convolution):
    """Standard conv unit of the plain U-Net (and the EAS pyramid branches): kxk conv -> BN -> ReLU.

    Paper: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
    Deep Learning", §2 (base U-Net: two 3x3 convs with ReLU per level). BN is added as in the
    paper's modules [D]; the conv has no bias because BN follows.

    Shapes: ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1
    ) -> None:
        super().__init__(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            dilation=dilation,
            bias=False,
            adn_ordering="NA",
            norm=Norm.BATCH,
            act="relu",
        )


class DoubleConv(nn.Module):
    """Two conv units of one U-Net level (encoder or decoder), standard or depthwise-separable.

    Paper: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
    Deep Learning", §2.1 and §2.2.1: U-Net has two 3x3 convs per level; in EAS U-Net each one is
    replaced by a :class:`DepthwiseSeparableConv` [D: two DS modules per level].

    Shapes: ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        in_channels: input channels.
        out_channels: output channels of both units.
        separable: use :class:`DepthwiseSeparableConv` units instead of :class:`StandardConv`.
        first_standard: keep the first unit a :class:`StandardConv` even when ``separable`` (used for
            the very first conv of the network, where a depthwise conv on a 1-channel image is
            degenerate [D]).
        negative_slope: LeakyReLU slope of the separable units (default 0.01, [D]).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        separable: bool = False,
        first_standard: bool = False,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        self.conv1 = self._unit(
            spatial_dims, in_channels, out_channels, separable and not first_standard, negative_slope
        )
        self.conv2 = self._unit(spatial_dims, out_channels, out_channels, separable, negative_slope)

    @staticmethod
    def _unit(spatial_dims: int, in_ch: int, out_ch: int, separable: bool, negative_slope: float) -> nn.Module:
        if separable:
            return DepthwiseSeparableConv(spatial_dims, in_ch, out_ch, negative_slope=negative_slope)
        return StandardConv(spatial_dims, in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))
