"""Unit tests of the reusable blocks of paper 003 (EAS U-Net): ECA, depthwise-separable conv, EAS pyramid,
output-fusion head. Small inputs, CPU only."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from custom_networks.blocks import (
    ECA,
    DepthwiseSeparableConv,
    DoubleConv,
    EASPyramid,
    OutputFusionHead,
    StandardConv,
    eca_kernel_size,
)
from tests.nets.test_network_contracts import n_params


# ---------------------------------------------------------------- ECA


@pytest.mark.parametrize("channels, k", [(64, 3), (256, 5), (512, 5), (1024, 5)])
def test_eca_kernel_size(channels, k):
    assert eca_kernel_size(channels) == k
    eca = ECA(2, channels)
    assert eca.conv.kernel_size == (k,)
    assert eca.conv.padding == ((k - 1) // 2,)
    assert eca.conv.bias is None
    assert n_params(eca) == k  # no dimensionality reduction: only the k shared taps


@pytest.mark.parametrize("spatial_dims, spatial", [(1, (9,)), (2, (6, 5)), (3, (4, 3, 5))])
def test_eca_shape_and_channel_scaling(spatial_dims, spatial):
    torch.manual_seed(0)
    eca = ECA(spatial_dims, 16)
    x = torch.rand(2, 16, *spatial) + 0.5  # positive, so output / input is the channel weight
    y = eca(x)
    assert y.shape == x.shape
    ratio = (y / x).flatten(2)  # (B, C, N)
    assert torch.allclose(ratio.amin(-1), ratio.amax(-1), atol=1e-6)  # constant over space per channel
    assert bool((ratio > 0).all()) and bool((ratio < 1).all())


# ---------------------------------------------------------------- depthwise-separable conv


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_depthwise_separable_conv_shapes(spatial_dims):
    block = DepthwiseSeparableConv(spatial_dims, 6, 10)
    x = torch.randn(2, 6, *([8] * spatial_dims))
    assert block(x).shape == (2, 10, *([8] * spatial_dims))


def test_depthwise_separable_conv_structure():
    block = DepthwiseSeparableConv(2, 8, 16, negative_slope=0.02)
    dw, pw = block.depthwise.conv, block.pointwise.conv
    assert dw.groups == 8 and dw.in_channels == dw.out_channels == 8 and dw.kernel_size == (3, 3)
    assert pw.groups == 1 and pw.kernel_size == (1, 1) and pw.out_channels == 16
    # depthwise -> BN -> LeakyReLU(0.02); pointwise -> BN -> Hardswish (h-swish, eq. 2-2)
    dw_layers = [type(m) for m in block.depthwise.adn.children()]
    assert dw_layers == [nn.BatchNorm2d, nn.LeakyReLU]
    assert block.depthwise.adn.A.negative_slope == 0.02
    assert [type(m) for m in block.pointwise.adn.children()] == [nn.BatchNorm2d]
    assert isinstance(block.act, nn.Hardswish)
    assert [name for name, _ in block.named_children()] == ["depthwise", "pointwise", "act"]

    block.eval()
    x = torch.randn(1, 8, 5, 5)
    expected = nn.functional.hardswish(block.pointwise(block.depthwise(x)))
    assert torch.allclose(block(x), expected)


def test_depthwise_separable_conv_fewer_params_than_standard():
    separable = DepthwiseSeparableConv(2, 32, 64)
    standard = StandardConv(2, 32, 64)
    assert n_params(separable) < n_params(standard)
    assert n_params(separable) < n_params(nn.Conv2d(32, 64, 3))


def test_double_conv_first_standard():
    block = DoubleConv(2, 1, 8, separable=True, first_standard=True)
    assert isinstance(block.conv1, StandardConv)
    assert isinstance(block.conv2, DepthwiseSeparableConv)
    assert block(torch.randn(2, 1, 8, 8)).shape == (2, 8, 8, 8)
    plain = DoubleConv(2, 4, 8, separable=False)
    assert isinstance(plain.conv1, StandardConv) and isinstance(plain.conv2, StandardConv)
    sep = DoubleConv(2, 4, 8, separable=True)
    assert isinstance(sep.conv1, DepthwiseSeparableConv) and isinstance(sep.conv2, DepthwiseSeparableConv)


# ---------------------------------------------------------------- EAS pyramid


@pytest.mark.parametrize("spatial_dims, spatial", [(2, (6, 4)), (3, (4, 4, 3))])
def test_eas_pyramid_shape(spatial_dims, spatial):
    block = EASPyramid(spatial_dims, 16, dilations=(2, 4, 6))
    x = torch.randn(2, 16, *spatial)
    assert block(x).shape == x.shape
    assert len(block.branches_atrous) == 3
    assert [m.conv.dilation[0] for m in block.branches_atrous] == [2, 4, 6]
    assert block.project.conv.in_channels == 5 * 4  # 5 branches, channels // 4 wide


def test_eas_pyramid_defaults_and_batch_one_training():
    block = EASPyramid(2, 64)
    assert block.dilations == (6, 12, 18)
    assert block.branch_1x1[1].kernel_size == eca_kernel_size(16)
    assert block.eca_out.kernel_size == 3
    block.train()
    x = torch.randn(1, 64, 4, 4)  # batch 1 in training must work (no BN on the 1x1 pooled map)
    assert block(x).shape == x.shape


def test_eas_pyramid_too_narrow():
    with pytest.raises(ValueError, match="branch"):
        EASPyramid(2, 3)


# ---------------------------------------------------------------- output fusion head


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_output_fusion_head(spatial_dims):
    head = OutputFusionHead(spatial_dims, [16, 8, 4], out_channels=3)
    feats = [torch.randn(2, c, *([s] * spatial_dims)) for c, s in [(16, 2), (8, 4), (4, 8)]]
    fused, sides = head(feats)
    assert fused.shape == (2, 3, *([8] * spatial_dims))
    assert len(sides) == 3 and all(s.shape == fused.shape for s in sides)
    assert head.fuse.in_channels == 9
    with pytest.raises(ValueError):
        head(feats[:2])
