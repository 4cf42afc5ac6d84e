"""Multi-scale residual (MSR) block and the plain two-conv unit of paper 001's Table 2, spatial-dims generic.

Paper 001: Jin Shunnan, Zhou Dibin, He Bin, Gu Jingjun 2021, "Segmentation of Spine CT Images Based on
Multi-Scale Feature Fusion and Attention Mechanism", Computer Systems & Applications 30(10): 280-286,
MSR block (Fig. 3, formulas 1-2) with CBAM channel attention (Fig. 4, formulas 3-4), and the basic-unit
variants of Table 2 (§3.3.2).

Both units share one tail: ``body(x)`` ends with BN (no activation) -> optional channel attention ->
optional shortcut addition -> ReLU. ``MONAI``'s ``ResidualUnit`` and ``UnetResBlock`` put the
activation or nothing where channel attention has to go, so the tail is written here once.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Norm

from .attention import ChannelAttention
from .separable_conv import StandardConv

__all__ = ["MSRBlock", "PlainBlock"]


def _conv_bn(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int) -> Convolution:
    """Conv (no bias) -> BN, no activation: the last layer of a unit body and the projection shortcut."""
    return Convolution(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel_size,
        bias=False,
        adn_ordering="N",
        norm=Norm.BATCH,
        act=None,
    )


class _AttentionResidualUnit(nn.Module):
    """Shared tail of :class:`MSRBlock` and :class:`PlainBlock`: ``ReLU(CA(body(x)) [+ W_s x])``.

    Subclasses set ``self.body`` (a callable ending in BN) after calling ``__init__``.
    The shortcut is the identity when the channel counts match, else a 1x1 conv + BN projection
    ``W_s`` (formula 1) [D]; ``None`` when ``shortcut`` is False.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        attention: bool,
        shortcut: bool,
        reduction: int,
        min_hidden: int,
    ) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.attention: nn.Module = (
            ChannelAttention(spatial_dims, out_channels, reduction=reduction, min_hidden=min_hidden)
            if attention
            else nn.Identity()
        )
        self.shortcut: nn.Module | None = None
        if shortcut:
            self.shortcut = (
                nn.Identity() if in_channels == out_channels else _conv_bn(spatial_dims, in_channels, out_channels, 1)
            )
        self.act = nn.ReLU(inplace=True)

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attention(self.body(x))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class MSRBlock(_AttentionResidualUnit):
    """Multi-scale residual block with channel attention (paper 001, Fig. 3), Res2Net-style.

    Paper: Jin Shunnan, Zhou Dibin, He Bin, Gu Jingjun 2021, "Segmentation of Spine CT Images Based on
    Multi-Scale Feature Fusion and Attention Mechanism", Computer Systems & Applications 30(10):
    280-286, §2, Fig. 3, formula 2 (the multi-scale residual block):

    1. ``reduce``: 1x1 conv -> BN -> ReLU to ``mid_channels`` [D: ``out_channels // 2``, "reduce then
       expand"; BN + ReLU as every other conv of the network];
    2. split into ``scales`` equal groups ``x_1 ... x_s`` [P: 4], ``mid_channels // scales`` channels
       each (``out_channels // 8`` by default);
    3. hierarchical convs (formula 2): ``y_1 = x_1``, ``y_i = K_i(x_i + y_{i-1})`` for ``1 < i <= s``,
       ``K_i`` = 3x3 conv -> BN -> ReLU [D]. With ``res2net_canonical`` ``y_2 = K_2(x_2)`` (no ``x_1``
       added, as in Res2Net) [D: default False, the printed formula];
    4. concatenate ``y_1 ... y_s`` -> ``expand``: 1x1 conv -> BN to ``out_channels`` [D];
    5. CBAM channel attention (:class:`~custom_networks.blocks.attention.ChannelAttention`, formulas
       3-4) on the fused output, before the addition [D: placement], when ``attention``;
    6. residual shortcut ``y = F(x) + W_s x`` (formula 1), ``W_s`` = identity or, when the channels
       differ, 1x1 conv + BN [D], when ``shortcut``; then ReLU [D].

    Receptive fields of the groups: ``y_1`` 1x1, ``y_2`` 3x3, ``y_3`` ~5x5, ``y_4`` ~7x7.

    Shapes: ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        in_channels: input channels.
        out_channels: output channels.
        scales: number of channel groups ``s`` (default 4 [P]); ``mid_channels`` must be divisible by it.
        mid_channels: width after the reducing 1x1 conv (default ``out_channels // 2`` [D]).
        attention: channel attention after the multi-scale fusion (default True [P]).
        shortcut: residual shortcut (default True [P]).
        res2net_canonical: ``y_2 = K_2(x_2)`` instead of the printed ``K_2(x_2 + x_1)`` (default False).
        reduction: channel-attention MLP ratio r (default 16 [D]).
        min_hidden: floor of the channel-attention MLP width (default 4 [D]).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        scales: int = 4,
        mid_channels: int | None = None,
        attention: bool = True,
        shortcut: bool = True,
        res2net_canonical: bool = False,
        reduction: int = 16,
        min_hidden: int = 4,
    ) -> None:
        super().__init__(spatial_dims, in_channels, out_channels, attention, shortcut, reduction, min_hidden)
        if mid_channels is None:
            mid_channels = out_channels // 2
        if scales < 2 or mid_channels < scales or mid_channels % scales:
            raise ValueError(
                f"MSRBlock needs scales >= 2 and mid_channels divisible by scales, got scales={scales}, "
                f"mid_channels={mid_channels} (out_channels={out_channels}; by default mid_channels = "
                f"out_channels // 2, so out_channels must be a multiple of {2 * max(scales, 1)})."
            )
        self.scales = scales
        self.mid_channels = mid_channels
        self.width = mid_channels // scales
        self.res2net_canonical = res2net_canonical

        # Paper 001, §2, Fig. 3 / formula 2 (steps 1-4 of the class docstring).
        self.reduce = Convolution(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=mid_channels,
            kernel_size=1,
            bias=False,
            adn_ordering="NA",
            norm=Norm.BATCH,
            act="relu",
        )
        self.convs = nn.ModuleList(
            [StandardConv(spatial_dims, self.width, self.width, kernel_size=3) for _ in range(scales - 1)]
        )  # K_2 ... K_s
        self.expand = _conv_bn(spatial_dims, mid_channels, out_channels, 1)

    def multi_scale(self, h: torch.Tensor) -> torch.Tensor:
        """Formula 2 on the reduced feature ``h`` (``(B, mid_channels, *s)``): concat of ``y_1 ... y_s``."""
        xs = torch.split(h, self.width, dim=1)
        ys = [xs[0]]  # y_1 = x_1
        for i, conv in enumerate(self.convs, start=1):
            if i == 1 and self.res2net_canonical:
                ys.append(conv(xs[i]))  # Res2Net: y_2 = K_2(x_2)
            else:
                ys.append(conv(xs[i] + ys[-1]))  # y_i = K_i(x_i + y_{i-1})
        return torch.cat(ys, dim=1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.multi_scale(self.reduce(x)))


class PlainBlock(_AttentionResidualUnit):
    """Plain unit of paper 001's Table 2 ("Conv3x3, Conv3x3"), with optional shortcut and channel attention.

    Paper: Jin Shunnan, Zhou Dibin, He Bin, Gu Jingjun 2021, "Segmentation of Spine CT Images Based on
    Multi-Scale Feature Fusion and Attention Mechanism", Computer Systems & Applications 30(10):
    280-286, Tables 2 and 3 (§3.3.2). ``ReLU(CA(BN(conv(ReLU(BN(conv(x))))))
    [+ W_s x])``:

    - no shortcut, no attention: exactly U-Net's two 3x3 conv -> BN -> ReLU (Table 2 case 1; the
      state-dict keys and the computation equal
      :class:`~custom_networks.blocks.separable_conv.DoubleConv` with ``separable=False``);
    - shortcut: ResNet basic block, identity or 1x1 conv + BN projection, ReLU after the addition
      (Table 2 cases 2-3, Table 3 "Res-block") [D];
    - attention: CBAM channel attention after the two 3x3 convs, before the final ReLU (and before the
      addition) (Table 3 "Attention") [D: placement].

    Shapes: ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        in_channels: input channels.
        out_channels: output channels of both convs.
        attention: channel attention after the two convs (default False).
        shortcut: residual shortcut (default False).
        reduction: channel-attention MLP ratio r (default 16 [D]).
        min_hidden: floor of the channel-attention MLP width (default 4 [D]).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        attention: bool = False,
        shortcut: bool = False,
        reduction: int = 16,
        min_hidden: int = 4,
    ) -> None:
        super().__init__(spatial_dims, in_channels, out_channels, attention, shortcut, reduction, min_hidden)
        self.conv1 = StandardConv(spatial_dims, in_channels, out_channels, kernel_size=3)
        self.conv2 = _conv_bn(spatial_dims, out_channels, out_channels, 3)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))
