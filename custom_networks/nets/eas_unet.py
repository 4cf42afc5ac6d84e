"""EAS U-Net (paper 003): U-Net + depthwise-separable convs + EAS pyramid + output-fusion deep supervision.

Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on Deep
Learning", Software Engineering and Applications 12(2), DOI 10.12677/sea.2023.122027.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Pool

from ..blocks.eas_pyramid import EASPyramid
from ..blocks.output_fusion import OutputFusionHead
from ..blocks.separable_conv import DoubleConv
from ..blocks.up_stage import UpStage
from .base import PaperUNet, bool_flags

__all__ = ["EASUNet"]


class EASUNet(PaperUNet):
    """EAS U-Net for 2D (or 3D) segmentation, with flags for the ablation rows.

    Paper: Bi Mingcheng et al. 2023, "Research on MR Image Segmentation of Knee Cartilage Based on
    Deep Learning", §2 (network, Fig. 5). Built from:

    - encoder: ``len(features)`` levels of two conv units (3x3 conv -> BN -> ReLU, or
      :class:`~custom_networks.blocks.DepthwiseSeparableConv` when ``separable``), a 2x2 max pool
      (stride 2) between levels; channels ``features`` [D: 64-128-256-512-1024, 4 poolings];
    - bottom: :class:`~custom_networks.blocks.EASPyramid` after the last encoder level, before the
      first up-sampling, when ``eas`` [D: placement];
    - decoder: :meth:`UpStage.with_double_conv <custom_networks.blocks.UpStage.with_double_conv>` per level
      (2x2 transposed conv halving channels, concat skip, two conv units);
    - head: a 1x1 conv, or :class:`~custom_networks.blocks.OutputFusionHead` over the
      ``len(features) - 1`` decoder outputs when ``deep_supervision``.

    Shapes: input ``(B, in_channels, *spatial)``; every spatial size must be divisible by
    ``2 ** (len(features) - 1)`` (16 by default), else ``ValueError``. Output:

    - ``deep_supervision=False``: one tensor ``(B, out_channels, *spatial)`` (logits);
    - ``deep_supervision=True``, eval mode: the fused logits ``(B, out_channels, *spatial)``;
    - ``deep_supervision=True``, training mode: a list ``[fused, side_1, ..., side_n]`` of
      ``n = len(features) - 1`` side logits (coarse to fine), all ``(B, out_channels, *spatial)``.
      The main output is first, as ``monai.losses.DeepSupervisionLoss`` expects;
      ``weights=[1.0] + [0.5 / n] * n`` gives the [D] loss ``L(fused) + 0.5 * mean_i L(side_i)``.

    Ablation presets (``EASUNet.ABLATIONS``, ``EASUNet.from_ablation(name)``): ``"unet"``,
    ``"unet_separable"``, ``"unet_separable_eas"``, ``"eas_unet"`` (full model, the defaults).

    Args:
        spatial_dims: number of spatial dimensions, 2 (paper) or 3.
        in_channels: input channels (1 for MR).
        out_channels: classes (3: background, femoral cartilage, tibial cartilage).
        features: channels per level, top to bottom; ``len(features) - 1`` poolings.
        separable: depthwise-separable conv units instead of standard 3x3 convs.
        eas: the EAS pyramid at the bottom.
        deep_supervision: the multi-scale output-fusion head (otherwise a plain 1x1 conv).
        eas_dilations: atrous rates of the EAS pyramid [D: 6, 12, 18; the bottom of a 384 input is
            24x24, so smaller rates such as (2, 4, 6) are a sensible option].
        ds_first_layer: make the very first conv separable too; default False keeps it a standard
            3x3 conv, since a depthwise conv on a 1-channel image is degenerate [D].
        negative_slope: LeakyReLU slope inside the separable units [D: 0.01].
    """

    output_modules: ClassVar[tuple[str, ...]] = ("fusion_head",)
    ABLATIONS: ClassVar[dict[str, dict[str, bool]]] = {
        "unet": {"separable": False, "eas": False, "deep_supervision": False},
        "unet_separable": {"separable": True, "eas": False, "deep_supervision": False},
        "unet_separable_eas": {"separable": True, "eas": True, "deep_supervision": False},
        "eas_unet": {"separable": True, "eas": True, "deep_supervision": True},
    }

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 3,
        features: Sequence[int] = (64, 128, 256, 512, 1024),
        separable: bool = True,
        eas: bool = True,
        deep_supervision: bool = True,
        eas_dilations: Sequence[int] = (6, 12, 18),
        ds_first_layer: bool = False,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__(spatial_dims, features)
        features = self.features
        separable, eas, deep_supervision, ds_first_layer = bool_flags(
            separable=separable, eas=eas, deep_supervision=deep_supervision, ds_first_layer=ds_first_layer
        )
        self.deep_supervision = deep_supervision

        # Encoder, top to bottom: one DoubleConv per level; max pooling between levels.
        encoder = [
            DoubleConv(
                spatial_dims,
                in_channels,
                features[0],
                separable=separable,
                first_standard=not ds_first_layer,
                negative_slope=negative_slope,
            )
        ]
        for c_in, c_out in zip(features[:-1], features[1:]):
            encoder.append(DoubleConv(spatial_dims, c_in, c_out, separable=separable, negative_slope=negative_slope))
        self.encoder = nn.ModuleList(encoder)
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)

        # Bottom: EAS pyramid, before the first up-sampling.
        self.eas: nn.Module = EASPyramid(spatial_dims, features[-1], eas_dilations) if eas else nn.Identity()

        # Decoder, coarse to fine.
        self.decoder = nn.ModuleList(
            [
                UpStage.with_double_conv(spatial_dims, c_in, c_out, separable, negative_slope=negative_slope)
                for c_in, c_out in zip(features[:0:-1], features[-2::-1])
            ]
        )

        # Head: output fusion over all decoder levels, or a single 1x1 conv.
        self.fusion_head: OutputFusionHead | None = None
        self.head: nn.Module | None = None
        if deep_supervision:
            self.fusion_head = OutputFusionHead(spatial_dims, features[-2::-1], out_channels)
        else:
            self.head = Conv[Conv.CONV, spatial_dims](features[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        x, skips = self.encode(x, self.eas)
        decoder_outputs = self.decode(x, skips)
        if self.fusion_head is None:
            assert self.head is not None
            return self.head(decoder_outputs[-1])
        fused, sides = self.fusion_head(decoder_outputs)
        if self.training:
            return [fused, *sides]
        return fused
