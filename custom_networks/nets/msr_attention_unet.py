"""MSR-attention U-Net (paper 001): U-Net whose conv blocks are multi-scale residual blocks with channel attention.

Jin Shunnan, Zhou Dibin, He Bin, Gu Jingjun 2021, "Segmentation of Spine CT Images Based on Multi-Scale
Feature Fusion and Attention Mechanism", Computer Systems & Applications 30(10): 280-286.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn as nn
from monai.networks.blocks import UpSample
from monai.networks.layers.factories import Conv, Pool

from ..blocks.msr_block import MSRBlock, PlainBlock
from ..blocks.up_stage import UpStage
from .base import PaperUNet, bool_flags

__all__ = ["MSRAttentionUNet"]

UNITS = ("msr", "plain")


def make_level(
    unit: str,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    units_per_level: int,
    **unit_kwargs: Any,
) -> nn.Sequential:
    """``units_per_level`` stacked units of one level: the first maps ``in -> out``, the others ``out -> out``."""
    block = {"msr": MSRBlock, "plain": PlainBlock}[unit]
    return nn.Sequential(
        *[
            block(spatial_dims, in_channels if i == 0 else out_channels, out_channels, **unit_kwargs)
            for i in range(units_per_level)
        ]
    )


class MSRAttentionUNet(PaperUNet):
    """MSR-attention U-Net for 2D (or 3D) binary spine segmentation, with flags for Tables 2 and 3.

    Paper: Jin Shunnan, Zhou Dibin, He Bin, Gu Jingjun 2021, "Segmentation of Spine CT Images Based on
    Multi-Scale Feature Fusion and Attention Mechanism", Computer Systems & Applications 30(10):
    280-286, §2 (architecture; the full diagram, Fig. 5, is not legible).
    Built from:

    - encoder: ``len(features)`` levels of ``units_per_level`` units, a 2x2 max pool (stride 2)
      between levels [P]; channels ``features`` [D: 32-64-128-256-512, 4 poolings; the paper's widths
      are unknown]. The deepest level is the bottom (no extra bottleneck module);
    - unit: :class:`~custom_networks.blocks.msr_block.MSRBlock` (``unit="msr"``: 1x1 reduce to C/2,
      4 groups, hierarchical 3x3 convs, 1x1 expand, CBAM channel attention, residual shortcut) or
      :class:`~custom_networks.blocks.msr_block.PlainBlock` (``unit="plain"``: two 3x3 conv -> BN ->
      ReLU, optional shortcut and channel attention); the same unit in the encoder and the decoder [P];
    - decoder: :class:`~custom_networks.blocks.UpStage` per level: up-sampling by deconvolution [P] (MONAI
      ``UpSample``, mode ``"deconv"``, 2x2 transposed conv, stride 2, halving channels, with bias, no norm or
      activation [D]), skip concatenation ``[skip, up]`` [P], then the level's units (the MSR block "in up- and
      down-sampling" [P, Table 2 case 4]);
    - head: 1x1 conv to ``out_channels`` logits [D: 1 logit; the sigmoid belongs to the loss and the
      post-processing, threshold 0.5].

    Shape walk-through, 512x512 slice, default widths: enc1 32x512^2 -> enc2 64x256^2 -> enc3 128x128^2
    -> enc4 256x64^2 -> enc5 (bottom) 512x32^2 -> dec 256x64^2 -> 128x128^2 -> 64x256^2 -> 32x512^2 ->
    head 1x512^2.

    Shapes: input ``(B, in_channels, *spatial)``, every spatial size divisible by
    ``2 ** (len(features) - 1)`` (16 by default), else ``ValueError``. Output: one tensor
    ``(B, out_channels, *spatial)`` of logits, in training and eval mode. With ``unit="msr"`` every
    width in ``features`` must be a multiple of ``2 * scales`` (8 by default).

    Ablation presets (``MSRAttentionUNet.ABLATIONS``, ``MSRAttentionUNet.from_ablation(name)``); each
    sets ``unit``, ``shortcut``, ``units_per_level`` and ``attention``:

    - ``"unet"``: plain, no shortcut, 1 unit, no attention (Table 1 U-Net = Table 2 case 1);
    - ``"res_block"``: plain, shortcut, 1 unit, no attention (Table 3 case 1 = Table 2 case 2);
    - ``"attention"``: plain, no shortcut, 1 unit, attention (Table 3 case 2);
    - ``"msr_attention_unet"``: MSR, shortcut, 1 unit, attention (Table 3 case 3 = Table 2 case 4; the
      full model and the constructor defaults);
    - ``"table2_case1"`` ... ``"table2_case5"``: the rows of Table 2 under their own names. Cases 1, 2
      and 4 repeat ``"unet"``, ``"res_block"`` and ``"msr_attention_unet"``; case 3 is plain,
      shortcut, 2 units, no attention; case 5 is MSR, shortcut, 2 units, attention.

    Attention in Table 2 is inferred [D]: cases 1-3 have none (case 1 reproduces the U-Net score of
    Table 1 and case 2 the "Res-block only" score of Table 3), cases 4-5 have it (case 4 is the final
    model). "Res-block" in Table 3 is the plain residual block, not the MSR block (its score equals
    Table 2 case 2).

    Args:
        spatial_dims: number of spatial dimensions, 2 (paper) or 3.
        in_channels: input channels (1 for CT).
        out_channels: logit channels (default 1, spine vs background with a sigmoid [D]).
        features: channels per level, top to bottom; ``len(features) - 1`` poolings.
        unit: ``"msr"`` (MSR block, default) or ``"plain"`` (two 3x3 convs).
        shortcut: residual shortcut in every unit (default True).
        units_per_level: stacked units per level, encoder and decoder (default 1 [P: best in Table 2]).
        attention: CBAM channel attention in every unit (default True).
        res2net_canonical: MSR only, ``y_2 = K_2(x_2)`` instead of the printed ``K_2(x_2 + x_1)``
            (default False, the printed formula).
        scales: MSR only, number of channel groups (default 4 [P]).
        ca_reduction: channel-attention MLP ratio r (default 16 [D], hidden width at least 4 [D]).
    """

    ABLATIONS: ClassVar[dict[str, dict[str, Any]]] = {
        "unet": {"unit": "plain", "shortcut": False, "units_per_level": 1, "attention": False},
        "res_block": {"unit": "plain", "shortcut": True, "units_per_level": 1, "attention": False},
        "attention": {"unit": "plain", "shortcut": False, "units_per_level": 1, "attention": True},
        "msr_attention_unet": {"unit": "msr", "shortcut": True, "units_per_level": 1, "attention": True},
        "table2_case1": {"unit": "plain", "shortcut": False, "units_per_level": 1, "attention": False},
        "table2_case2": {"unit": "plain", "shortcut": True, "units_per_level": 1, "attention": False},
        "table2_case3": {"unit": "plain", "shortcut": True, "units_per_level": 2, "attention": False},
        "table2_case4": {"unit": "msr", "shortcut": True, "units_per_level": 1, "attention": True},
        "table2_case5": {"unit": "msr", "shortcut": True, "units_per_level": 2, "attention": True},
    }

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256, 512),
        unit: str = "msr",
        shortcut: bool = True,
        units_per_level: int = 1,
        attention: bool = True,
        res2net_canonical: bool = False,
        scales: int = 4,
        ca_reduction: int = 16,
    ) -> None:
        super().__init__(spatial_dims, features)
        features = self.features
        shortcut, attention, res2net_canonical = bool_flags(
            shortcut=shortcut, attention=attention, res2net_canonical=res2net_canonical
        )
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}.")
        if units_per_level < 1:
            raise ValueError(f"units_per_level must be >= 1, got {units_per_level}.")
        self.unit = unit
        self.units_per_level = units_per_level

        unit_kwargs: dict[str, Any] = {"attention": attention, "shortcut": shortcut, "reduction": ca_reduction}
        if unit == "msr":
            unit_kwargs.update(scales=scales, res2net_canonical=res2net_canonical)

        # Encoder, top to bottom (the last level is the bottom); max pooling between levels.
        self.encoder = nn.ModuleList(
            [
                make_level(unit, spatial_dims, c_in, c_out, units_per_level, **unit_kwargs)
                for c_in, c_out in zip((in_channels, *features[:-1]), features)
            ]
        )
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)

        # Decoder, coarse to fine.
        self.decoder = nn.ModuleList(
            [
                UpStage(
                    UpSample(spatial_dims, c_in, c_out, scale_factor=2, mode="deconv"),
                    make_level(unit, spatial_dims, 2 * c_out, c_out, units_per_level, **unit_kwargs),
                )
                for c_in, c_out in zip(features[:0:-1], features[-2::-1])
            ]
        )

        # No bottleneck module between encoder and decoder in paper 001: the deepest level is the bottom.
        self.bottom = nn.Identity()
        self.head = Conv[Conv.CONV, spatial_dims](features[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encode(x, self.bottom)
        return self.head(self.decode(x, skips)[-1])
