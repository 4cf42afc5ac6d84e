"""AFU-Net (paper 000): 3-pool U-Net + DASP at the bottom + attention-fusion (AF) skips.

Liu Jinhui, Tong Jing, Ni Jiajia, Li Xuefei, Zhang Xu 2022, "CT Image Segmentation of Lower Limb
Bones Based on Improved U-Net", Computer Systems & Applications 31(10): 134-141.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Pool

from ..blocks.attention_fusion import AttentionFusion
from ..blocks.dasp import DASP
from ..blocks.separable_conv import DoubleConv
from ..blocks.up_stage import UpStage
from .base import PaperUNet, bool_flags

__all__ = ["AFUNet"]


class AFUNet(PaperUNet):
    """AFU-Net for 2D (or 3D) binary bone segmentation, with flags for the ablation rows.

    Paper: Liu Jinhui et al. 2022, "CT Image Segmentation of Lower Limb Bones Based on Improved
    U-Net", Computer Systems & Applications 31(10): 134-141, §1 (architecture; §1.1 DASP, §1.2 AF;
    Fig. 1 is not legible). Built from:

    - encoder: ``len(features)`` levels of two 3x3 conv -> BN -> ReLU units [D: two per level], a 2x2
      max pool (stride 2) between levels; channels ``features`` [D: 64-128-256-512]; 3 poolings [P];
    - bottom: :class:`~custom_networks.blocks.DASP` (rates 3, 5, 7 [P], full-width branches [D]) once,
      after the last encoder level [D: placement], when ``dasp``;
    - decoder, coarse to fine, when ``attention_fusion``: one
      :class:`~custom_networks.blocks.AttentionFusion` per level (high = previous decoder output,
      low = encoder skip, out = skip width); its output is the next level's high feature, with no
      extra double conv [D]. Otherwise the plain U-Net decoder
      :meth:`UpStage.with_double_conv <custom_networks.blocks.UpStage.with_double_conv>` (2x2 transposed conv
      halving channels, concat skip, two 3x3 CBR);
    - head: 1x1 conv to ``out_channels`` logits [D: 1 logit + sigmoid, threshold 0.5; a 2-class
      softmax head is the allowed alternative].

    Shape walk-through, 128x128 crop, default widths: enc1 64x128^2 -> enc2 128x64^2 -> enc3 256x32^2
    -> enc4 512x16^2 -> DASP 512x16^2 -> AF 256x32^2 -> AF 128x64^2 -> AF 64x128^2 -> head 1x128^2.

    Shapes: input ``(B, in_channels, *spatial)``, every spatial size divisible by
    ``2 ** (len(features) - 1)`` (8 by default), else ``ValueError``. Output: always one tensor
    ``(B, out_channels, *spatial)`` of logits, in training and eval mode.

    Ablation presets (``AFUNet.ABLATIONS``, ``AFUNet.from_ablation(name)``), the rows of the paper's
    Table 3: ``"unet"``, ``"unet_dasp"``, ``"unet_af"``, ``"afu_unet"`` (full model, the defaults).

    Args:
        spatial_dims: number of spatial dimensions, 2 (paper) or 3.
        in_channels: input channels (1 for CT).
        out_channels: logit channels (default 1, bone vs background with a sigmoid [D]).
        features: channels per level, top to bottom; ``len(features) - 1`` poolings. With
            ``attention_fusion`` every level below the top must have an even width.
        dasp: the DASP module at the bottom (else identity).
        attention_fusion: AF skips (else the plain U-Net concatenation decoder).
        dasp_dilations: DASP rates (default ``(3, 5, 7)`` [P]).
        se_reduction: SE reduction ratio ``r`` of the AF channel branch (default 16 [P]).
        af_branch_conv: the 3x3 CBR after each AF branch (default True [D]).
    """

    ABLATIONS: ClassVar[dict[str, dict[str, bool]]] = {
        "unet": {"dasp": False, "attention_fusion": False},
        "unet_dasp": {"dasp": True, "attention_fusion": False},
        "unet_af": {"dasp": False, "attention_fusion": True},
        "afu_unet": {"dasp": True, "attention_fusion": True},
    }

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (64, 128, 256, 512),
        dasp: bool = True,
        attention_fusion: bool = True,
        dasp_dilations: Sequence[int] = (3, 5, 7),
        se_reduction: int = 16,
        af_branch_conv: bool = True,
    ) -> None:
        super().__init__(spatial_dims, features)
        features = self.features
        dasp, attention_fusion, af_branch_conv = bool_flags(
            dasp=dasp, attention_fusion=attention_fusion, af_branch_conv=af_branch_conv
        )

        # Encoder, top to bottom: two conv-BN-ReLU units per level; max pooling between levels.
        encoder = [DoubleConv(spatial_dims, in_channels, features[0], separable=False)]
        for c_in, c_out in zip(features[:-1], features[1:]):
            encoder.append(DoubleConv(spatial_dims, c_in, c_out, separable=False))
        self.encoder = nn.ModuleList(encoder)
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)

        # Bottom: DASP after the last encoder level.
        self.dasp: nn.Module = DASP(spatial_dims, features[-1], dasp_dilations) if dasp else nn.Identity()

        # Decoder, coarse to fine: (high, low) = (features[i + 1], features[i]) for i = n - 2 ... 0.
        pairs = list(zip(features[:0:-1], features[-2::-1]))
        decoder: list[nn.Module]
        if attention_fusion:
            decoder = [
                AttentionFusion(spatial_dims, c_high, c_low, c_low, reduction=se_reduction, branch_conv=af_branch_conv)
                for c_high, c_low in pairs
            ]
        else:
            decoder = [UpStage.with_double_conv(spatial_dims, c_high, c_low) for c_high, c_low in pairs]
        self.decoder = nn.ModuleList(decoder)

        self.head = Conv[Conv.CONV, spatial_dims](features[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encode(x, self.dasp)
        return self.head(self.decode(x, skips)[-1])
