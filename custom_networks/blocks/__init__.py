"""Reusable layers of the four papers' networks."""

from .attention import ChannelAttention, SpatialAttention
from .attention_fusion import AttentionFusion
from .dasp import DASP
from .eas_pyramid import EASPyramid
from .eca import ECA, eca_kernel_size
from .msr_block import MSRBlock, PlainBlock
from .output_fusion import OutputFusionHead
from .separable_conv import DepthwiseSeparableConv, DoubleConv, StandardConv

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
]
