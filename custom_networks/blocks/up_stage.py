"""The U-Net decoder level that every network here shares: up-sample, concatenate the skip, convolve."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

from .separable_conv import DoubleConv

__all__ = ["UpStage"]


class UpStage(nn.Module):
    """One U-Net decoder level: up-sample the coarser features, concatenate ``[skip, up(x)]``, convolve.

    Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI (the
    expansive path). Every decoder level of this repo is one: the plain U-Net decoder of papers 000 and 003
    (:meth:`with_double_conv`), paper 001's MSR-attention U-Net (MONAI ``UpSample``, mode ``"deconv"``, then the
    level's MSR or plain units) and paper 002's 3D U-Net (the same up-sampling, then two 3x3x3 convs); they
    differ only in ``up`` and ``conv``. The skip comes first in the concatenation in all of them.

    Shapes: ``forward(x, skip)`` with ``x`` of shape ``(B, in_channels, *s)`` and ``skip`` of shape
    ``(B, out_channels, *2s)`` returns ``(B, out_channels, *2s)``.

    Args:
        up: maps ``x`` to ``(B, out_channels, *2s)``, e.g. a 2x2 transposed conv with stride 2 halving channels.
        conv: maps the concatenation ``(B, 2 * out_channels, *2s)`` to ``(B, out_channels, *2s)``.
    """

    def __init__(self, up: nn.Module, conv: nn.Module) -> None:
        super().__init__()
        self.up = up
        self.conv = conv

    @classmethod
    def with_double_conv(
        cls,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        separable: bool = False,
        negative_slope: float = 0.01,
    ) -> UpStage:
        """The plain U-Net decoder level of papers 000 and 003: 2x2 transposed conv (stride 2) halving channels,
        concat skip, two conv units (:class:`~custom_networks.blocks.separable_conv.DoubleConv`).

        Paper 003: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
        Deep Learning", §2 (base U-Net decoder). The transposed conv has a bias and no norm or
        activation, as in the original U-Net [D].

        Args:
            spatial_dims: number of spatial dimensions (1, 2 or 3).
            in_channels: channels of the coarser input.
            out_channels: channels of the skip and of the output.
            separable: depthwise-separable conv units instead of standard ones (default False).
            negative_slope: LeakyReLU slope of the separable units (default 0.01).
        """
        return cls(
            Conv[Conv.CONVTRANS, spatial_dims](in_channels, out_channels, kernel_size=2, stride=2),
            DoubleConv(spatial_dims, 2 * out_channels, out_channels, separable, negative_slope=negative_slope),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))
