"""Reusable layers of the four papers' networks: ECA, DASP, attention fusion (AF), MSR blocks, separable convs,
the EAS pyramid, channel/spatial attention, output fusion and the U-Net decoder level (:class:`UpStage`).

Each block is an ``nn.Module`` with its paper, shapes and defaults in its docstring. ``blocks`` imports only
torch, MONAI, numpy and :mod:`custom_networks.ops`; the networks in :mod:`custom_networks.nets` are built from it.
"""

from .attention import ChannelAttention, SpatialAttention
from .attention_fusion import AttentionFusion
from .dasp import DASP
from .eas_pyramid import EASPyramid
from .eca import ECA, eca_kernel_size
from .msr_block import MSRBlock, PlainBlock
from .output_fusion import OutputFusionHead
from .separable_conv import DepthwiseSeparableConv, DoubleConv, StandardConv
from .up_stage import UpStage

__all__ = [
    "ECA",
    "eca_kernel_size",
    "DepthwiseSeparableConv",
    "StandardConv",
    "DoubleConv",
    "EASPyramid",
    "OutputFusionHead",
    "SpatialAttention",
    "ChannelAttention",
    "MSRBlock",
    "PlainBlock",
    "AttentionFusion",
    "DASP",
    "UpStage",
]
