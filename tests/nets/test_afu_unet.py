"""Tests of AFUNet (paper 000), its blocks (DASP, SpatialAttention, AttentionFusion) and ablation presets.

Small widths, CPU only.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from monai.losses import DiceFocalLoss
from monai.networks.blocks import ChannelSELayer

from custom_networks import AFUNet
from custom_networks.blocks import DASP, AttentionFusion, SpatialAttention, StandardConv
from custom_networks.blocks import UpStage
from tests.nets.test_network_contracts import n_params

SMALL = (8, 16, 32, 64)
PRESETS = ["unet", "unet_dasp", "unet_af", "afu_unet"]


def small_net(preset: str, **kwargs) -> AFUNet:
    torch.manual_seed(0)
    return AFUNet.from_ablation(preset, features=SMALL, **kwargs)


# ---------------------------------------------------------------- DASP


@pytest.mark.parametrize("spatial_dims,shape", [(2, (2, 8, 16, 16)), (3, (1, 4, 8, 8, 8))])
def test_dasp_keeps_shape(spatial_dims, shape):
    block = DASP(spatial_dims, shape[1])
    x = torch.randn(*shape)
    assert block(x).shape == x.shape


def test_dasp_dilations_and_dense_wiring():
    c = 8
    block = DASP(2, c)
    assert block.dilations == (3, 5, 7)
    for i, (branch, d) in enumerate(zip(block.branches, (3, 5, 7))):
        assert isinstance(branch, StandardConv)
        conv = branch.conv
        assert conv.dilation == (d, d) and conv.padding == (d, d) and conv.kernel_size == (3, 3)
        assert conv.in_channels == (i + 1) * c and conv.out_channels == c
    assert block.project.conv.in_channels == 4 * c and block.project.conv.out_channels == c
    assert block.project.conv.dilation == (1, 1)

    narrow = DASP(2, c, growth=4)
    assert [b.conv.in_channels for b in narrow.branches] == [8, 12, 16]
    assert narrow.project.conv.in_channels == 20
    assert narrow(torch.randn(1, c, 16, 16)).shape == (1, c, 16, 16)


# ---------------------------------------------------------------- SpatialAttention


def test_spatial_attention_map_is_shared_across_channels():
    torch.manual_seed(0)
    att = SpatialAttention(2)
    assert att.conv.kernel_size == (7, 7) and att.conv.in_channels == 2 and att.conv.out_channels == 1
    x = torch.rand(2, 6, 12, 12) + 0.5  # positive, so out / x recovers the map
    out = att(x)
    amap = att.attention_map(x)
    assert out.shape == x.shape and amap.shape == (2, 1, 12, 12)
    assert ((amap > 0) & (amap < 1)).all()
    torch.testing.assert_close(out, x * amap)
    ratio = out / x
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    with pytest.raises(ValueError):
        SpatialAttention(2, kernel_size=4)


# ---------------------------------------------------------------- AttentionFusion


def test_attention_fusion_shapes_and_parts():
    torch.manual_seed(0)
    # Scaled-down version of (B, 512, 16, 16) + (B, 256, 32, 32) -> (B, 256, 32, 32).
    af = AttentionFusion(2, high_channels=32, low_channels=16, reduction=4)
    out = af(torch.randn(2, 32, 8, 8), torch.randn(2, 16, 16, 16))
    assert out.shape == (2, 16, 16, 16)
    assert af.out_channels == 16
    assert isinstance(af.channel_att, ChannelSELayer) and isinstance(af.spatial_att, SpatialAttention)
    # SE over [H1, L] (C_H channels), squeeze to C_H // r.
    assert af.channel_att.fc[0].in_features == 32 and af.channel_att.fc[0].out_features == 8
    assert af.project_low.conv.in_channels == 16 and af.project_low.conv.out_channels == 16  # L: C_H / 2
    assert af.project_low.conv.kernel_size == (1, 1)
    assert af.fuse.conv.in_channels == 2 * 16 and af.fuse.conv.out_channels == 16


def test_attention_fusion_reduction_guard():
    af = AttentionFusion(2, high_channels=8, low_channels=4)  # r = 16 > 8 channels
    assert af.se_reduction == 8 and af.channel_att.fc[0].out_features == 1
    assert af(torch.randn(1, 8, 4, 4), torch.randn(1, 4, 8, 8)).shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match="even"):
        AttentionFusion(2, high_channels=7, low_channels=4)


def test_attention_fusion_branch_conv_flag():
    with_conv = AttentionFusion(2, 32, 16, reduction=4, branch_conv=True)
    without = AttentionFusion(2, 32, 16, reduction=4, branch_conv=False)
    assert n_params(with_conv) != n_params(without)
    assert isinstance(without.channel_conv, nn.Identity) and isinstance(without.spatial_conv, nn.Identity)
    assert without.fuse.conv.in_channels == 16 + 32  # branches keep C_H/2 and C_H channels
    out = without(torch.randn(1, 32, 8, 8), torch.randn(1, 16, 16, 16))
    assert out.shape == (1, 16, 16, 16)
    assert AttentionFusion(2, 32, 16, out_channels=12, reduction=4)(
        torch.randn(1, 32, 8, 8), torch.randn(1, 16, 16, 16)
    ).shape == (1, 12, 16, 16)


def test_attention_fusion_3d_smoke():
    af = AttentionFusion(3, 16, 8, reduction=4)
    assert af.interp_mode == "trilinear"
    assert af(torch.randn(1, 16, 4, 4, 4), torch.randn(1, 8, 8, 8, 8)).shape == (1, 8, 8, 8, 8)


# ---------------------------------------------------------------- AFUNet


def test_presets_are_table_3s_rows():
    assert list(AFUNet.ABLATIONS) == PRESETS
    assert AFUNet.ABLATIONS["afu_unet"] == {"dasp": True, "attention_fusion": True}
    assert AFUNet.ABLATIONS["unet"] == {"dasp": False, "attention_fusion": False}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_outputs_gradients_and_modules(preset):
    net = small_net(preset)
    flags = AFUNet.ABLATIONS[preset]
    assert isinstance(net.dasp, DASP) == flags["dasp"]
    assert isinstance(net.dasp, nn.Identity) != flags["dasp"]
    dec_type = AttentionFusion if flags["attention_fusion"] else UpStage
    assert len(net.decoder) == 3 and all(isinstance(m, dec_type) for m in net.decoder)
    has = {type(m) for m in net.modules()}
    assert (DASP in has) == flags["dasp"]
    assert (AttentionFusion in has) == flags["attention_fusion"] and (UpStage in has) != flags["attention_fusion"]

    x = torch.randn(2, 1, 64, 64)
    net.train()
    out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1, 64, 64)
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{preset}: no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"{preset}: non-finite gradient for {name}"

    net.eval()
    with torch.no_grad():
        y = net(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 1, 64, 64)


def test_shape_walkthrough_128_crop():
    # Forward with small widths (features / 8) and check every stage of the papers.md 1.4 table via hooks.
    net = small_net("afu_unet").eval()
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name):
        def _record(_module, _inputs, output):
            shapes[name] = tuple(output.shape[1:])

        return _record

    for i, stage in enumerate(net.encoder):
        stage.register_forward_hook(hook(f"enc{i + 1}"))
    net.dasp.register_forward_hook(hook("dasp"))
    for i, stage in enumerate(net.decoder):
        stage.register_forward_hook(hook(f"af{i + 1}"))
    net.head.register_forward_hook(hook("head"))
    with torch.no_grad():
        net(torch.randn(1, 1, 128, 128))
    assert shapes == {
        "enc1": (8, 128, 128),
        "enc2": (16, 64, 64),
        "enc3": (32, 32, 32),
        "enc4": (64, 16, 16),
        "dasp": (64, 16, 16),
        "af1": (32, 32, 32),
        "af2": (16, 64, 64),
        "af3": (8, 128, 128),
        "head": (1, 128, 128),
    }

    # Default widths: the channel configuration of the table (no forward pass, to stay fast).
    full = AFUNet()
    assert [s.conv2.conv.out_channels for s in full.encoder] == [64, 128, 256, 512]
    assert full.dasp.channels == 512 and full.dasp.project.conv.out_channels == 512
    assert [(af.high_channels, af.low_channels, af.out_channels) for af in full.decoder] == [
        (512, 256, 256),
        (256, 128, 128),
        (128, 64, 64),
    ]
    assert [af.channel_att.fc[0].out_features for af in full.decoder] == [32, 16, 8]  # r = 16
    assert full.head.in_channels == 64 and full.head.out_channels == 1


def test_invalid_input_size_and_rank():
    net = small_net("afu_unet").eval()
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(1, 1, 60, 60))
    with pytest.raises(ValueError, match="expects a 4D input"):
        net(torch.randn(1, 1, 8, 8, 8))


def test_3d_and_two_class_head():
    net = AFUNet(spatial_dims=3, in_channels=1, out_channels=2, features=(4, 8, 16), dasp_dilations=(1, 2, 3)).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)


def test_dice_focal_loss_train_step():
    torch.manual_seed(0)
    net = small_net("afu_unet")
    loss_fn = DiceFocalLoss(sigmoid=True, lambda_dice=1.0, lambda_focal=0.5, gamma=2.0, alpha=0.25)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(2, 1, 32, 32)
    y = (torch.rand(2, 1, 32, 32) > 0.8).float()
    before = [p.detach().clone() for p in net.parameters()]
    loss = loss_fn(net(x), y)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))
