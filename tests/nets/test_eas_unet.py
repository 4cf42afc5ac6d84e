"""Tests of EASUNet (paper 003) and its ablation presets. Small widths, CPU only."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss

from custom_networks import EASUNet
from custom_networks.blocks import DepthwiseSeparableConv, EASPyramid, OutputFusionHead, StandardConv
from tests.nets.test_network_contracts import n_params

SMALL = (8, 16, 32, 64, 128)
PRESETS = ["unet", "unet_separable", "unet_separable_eas", "eas_unet"]


def small_net(preset: str, **kwargs) -> EASUNet:
    torch.manual_seed(0)
    return EASUNet.from_ablation(preset, features=SMALL, eas_dilations=(1, 2, 3), **kwargs)


def test_presets_and_the_full_network_s_modules():
    assert list(EASUNet.ABLATIONS) == PRESETS
    net = EASUNet()
    assert EASUNet.ABLATIONS["eas_unet"] == {"separable": True, "eas": True, "deep_supervision": True}
    assert isinstance(net.eas, EASPyramid) and isinstance(net.fusion_head, OutputFusionHead) and net.head is None


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_outputs_and_gradients(preset):
    net = small_net(preset)
    flags = EASUNet.ABLATIONS[preset]
    x = torch.randn(2, 1, 64, 64)

    net.train()
    out = net(x)
    if flags["deep_supervision"]:
        assert isinstance(out, list) and len(out) == 5
        assert all(o.shape == (2, 3, 64, 64) for o in out)
        loss = sum(o.square().mean() for o in out)
    else:
        assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 64, 64)
        loss = out.square().mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{preset}: no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"{preset}: non-finite gradient for {name}"

    net.eval()
    with torch.no_grad():
        y = net(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 3, 64, 64)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_modules_present_only_when_used(preset):
    net = small_net(preset)
    flags = EASUNet.ABLATIONS[preset]
    modules = list(net.modules())
    assert any(isinstance(m, EASPyramid) for m in modules) == flags["eas"]
    assert any(isinstance(m, OutputFusionHead) for m in modules) == flags["deep_supervision"]
    assert any(isinstance(m, DepthwiseSeparableConv) for m in modules) == flags["separable"]
    assert (net.head is None) == flags["deep_supervision"]
    # the very first conv stays standard (ds_first_layer=False)
    assert isinstance(net.encoder[0].conv1, StandardConv)


def test_ds_first_layer_flag():
    net = EASUNet(features=SMALL, ds_first_layer=True)
    assert isinstance(net.encoder[0].conv1, DepthwiseSeparableConv)


def test_param_counts_ordered():
    counts = {p: n_params(small_net(p)) for p in PRESETS}
    assert counts["unet_separable"] < counts["unet"]
    assert counts["unet_separable"] < counts["unet_separable_eas"] < counts["eas_unet"]


def test_structure_depth_and_widths():
    net = EASUNet(features=SMALL)
    assert len(net.encoder) == 5 and len(net.decoder) == 4
    assert [s.up.out_channels for s in net.decoder] == [64, 32, 16, 8]
    assert [h.in_channels for h in net.fusion_head.side_heads] == [64, 32, 16, 8]
    assert net.size_multiple == 16


def test_indivisible_input_raises():
    net = small_net("eas_unet").eval()
    with pytest.raises(ValueError, match=r"\(60, 60\).*16"):
        net(torch.randn(1, 1, 60, 60))
    with pytest.raises(ValueError, match="4D input"):
        net(torch.randn(1, 1, 64, 64, 64))


def test_3d_smoke():
    torch.manual_seed(0)
    net = EASUNet(spatial_dims=3, in_channels=1, out_channels=2, features=(4, 8, 16), eas_dilations=(1, 2, 3))
    x = torch.randn(1, 1, 16, 16, 16)
    out = net(x)
    assert len(out) == 3 and all(o.shape == (1, 2, 16, 16, 16) for o in out)
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (1, 2, 16, 16, 16)


def test_deep_supervision_loss():
    net = small_net("eas_unet").train()
    x = torch.randn(2, 1, 64, 64)
    y = torch.randint(0, 3, (2, 1, 64, 64))
    n_sides = len(net.decoder)
    loss_fn = DeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True), weights=[1.0] + [0.5 / n_sides] * n_sides)
    loss = loss_fn(net(x), y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
