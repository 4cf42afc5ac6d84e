"""Tests of MSRAttentionUNet (paper 001), its blocks (ChannelAttention, MSRBlock, PlainBlock) and ablation presets.

Small widths, CPU only.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from monai.networks.blocks import Convolution

from custom_networks import MSRAttentionUNet
from custom_networks.blocks import DoubleConv, StandardConv
from custom_networks.blocks.attention import ChannelAttention
from custom_networks.blocks.msr_block import MSRBlock, PlainBlock
from custom_networks.blocks import UpStage
from tests.nets.test_network_contracts import n_params

SMALL = (8, 16, 32, 64, 128)
PRESETS = [
    "unet",
    "res_block",
    "attention",
    "msr_attention_unet",
    "table2_case1",
    "table2_case2",
    "table2_case3",
    "table2_case4",
    "table2_case5",
]


def small_net(preset: str, **kwargs) -> MSRAttentionUNet:
    torch.manual_seed(0)
    return MSRAttentionUNet.from_ablation(preset, features=SMALL, **kwargs)


# ---------------------------------------------------------------- ChannelAttention


@pytest.mark.parametrize("spatial_dims, spatial", [(1, (9,)), (2, (6, 5)), (3, (4, 3, 5))])
def test_channel_attention_shape_and_channel_scaling(spatial_dims, spatial):
    torch.manual_seed(0)
    ca = ChannelAttention(spatial_dims, 16)
    x = torch.rand(2, 16, *spatial) + 0.5  # positive, so output / input is the channel weight
    y = ca(x)
    assert y.shape == x.shape
    ratio = (y / x).flatten(2)
    assert torch.allclose(ratio.amin(-1), ratio.amax(-1), atol=1e-6)  # constant over space per channel
    assert bool((ratio > 0).all()) and bool((ratio < 1).all())
    assert ca.attention_map(x).shape == (2, 16, *([1] * spatial_dims))


@pytest.mark.parametrize("channels, hidden", [(8, 4), (32, 4), (64, 4), (128, 8), (512, 32)])
def test_channel_attention_hidden_width(channels, hidden):
    ca = ChannelAttention(2, channels)
    assert ca.hidden == hidden
    assert ca.mlp[0].in_features == channels and ca.mlp[0].out_features == hidden
    assert ca.mlp[2].in_features == hidden and ca.mlp[2].out_features == channels
    assert n_params(ca) == 2 * channels * hidden + hidden + channels  # one shared MLP, with biases


def test_channel_attention_formula_uses_avg_and_max():
    torch.manual_seed(0)
    ca = ChannelAttention(2, 8)
    x = torch.randn(2, 8, 5, 5)
    mlp = ca.mlp
    expected = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))[..., None, None] * x
    torch.testing.assert_close(ca(x), expected)
    # Same mean per channel, different max: the max-pooled descriptor changes the weights.
    a = torch.zeros(1, 8, 4, 4)
    b = a.clone()
    b[..., 0, 0], b[..., 0, 1] = 1.0, -1.0
    assert not torch.allclose(ca.attention_map(a), ca.attention_map(b))
    with pytest.raises(ValueError):
        ChannelAttention(4, 8)


# ---------------------------------------------------------------- MSRBlock


@pytest.mark.parametrize("spatial_dims, c_in, c_out", [(2, 16, 32), (2, 32, 32), (2, 1, 8), (3, 8, 16)])
def test_msr_block_shapes_and_widths(spatial_dims, c_in, c_out):
    block = MSRBlock(spatial_dims, c_in, c_out)
    x = torch.randn(2, c_in, *([8] * spatial_dims))
    assert block(x).shape == (2, c_out, *([8] * spatial_dims))
    assert block.mid_channels == c_out // 2 and block.width == c_out // 8 and block.scales == 4
    reduce, expand = block.reduce.conv, block.expand.conv
    assert reduce.in_channels == c_in and reduce.out_channels == c_out // 2
    assert reduce.kernel_size == (1,) * spatial_dims
    assert expand.in_channels == c_out // 2 and expand.out_channels == c_out
    assert expand.kernel_size == (1,) * spatial_dims
    assert len(block.convs) == 3  # K_2, K_3, K_4
    for k in block.convs:
        assert isinstance(k, StandardConv)
        assert k.conv.in_channels == k.conv.out_channels == c_out // 8 and k.conv.kernel_size == (3,) * spatial_dims
    assert isinstance(block.attention, ChannelAttention) and block.attention.channels == c_out
    if c_in == c_out:
        assert isinstance(block.shortcut, nn.Identity)
    else:
        assert isinstance(block.shortcut, Convolution)
        assert block.shortcut.conv.kernel_size == (1,) * spatial_dims and block.shortcut.conv.out_channels == c_out
        assert [type(m).__name__ for m in block.shortcut.adn.children()] == [f"BatchNorm{spatial_dims}d"]
    # expand ends in BN without activation; the ReLU comes after the addition.
    assert [type(m).__name__ for m in block.expand.adn.children()] == [f"BatchNorm{spatial_dims}d"]


def test_msr_block_flags_and_errors():
    no_att = MSRBlock(2, 8, 16, attention=False, shortcut=False)
    assert isinstance(no_att.attention, nn.Identity) and no_att.shortcut is None
    assert no_att(torch.randn(1, 8, 8, 8)).shape == (1, 16, 8, 8)
    assert n_params(MSRBlock(2, 8, 16)) > n_params(no_att)
    assert n_params(MSRBlock(2, 8, 16, res2net_canonical=True)) == n_params(MSRBlock(2, 8, 16))
    assert MSRBlock(2, 8, 24, scales=3).width == 4
    with pytest.raises(ValueError, match="divisible by scales"):
        MSRBlock(2, 8, 12)  # mid 6 is not divisible by 4


def _group_changes(block: MSRBlock, h: torch.Tensor, group: int) -> list[bool]:
    """Which of y_1 ... y_s change when group ``group`` (0-based) of the reduced feature is perturbed."""
    w = block.width
    h2 = h.clone()
    h2[:, group * w : (group + 1) * w] += 1.0
    with torch.no_grad():
        y, y2 = block.multi_scale(h), block.multi_scale(h2)
    return [not torch.allclose(y[:, i * w : (i + 1) * w], y2[:, i * w : (i + 1) * w]) for i in range(block.scales)]


def test_msr_block_hierarchical_wiring():
    torch.manual_seed(0)
    printed = MSRBlock(2, 8, 32).eval()
    canonical = MSRBlock(2, 8, 32, res2net_canonical=True).eval()
    canonical.load_state_dict(printed.state_dict())
    h = torch.randn(2, 16, 8, 8)

    # y_1 = x_1 (identity) in both variants.
    with torch.no_grad():
        torch.testing.assert_close(printed.multi_scale(h)[:, :4], h[:, :4])
        torch.testing.assert_close(canonical.multi_scale(h)[:, :4], h[:, :4])

    # Printed formula: y_2 = K_2(x_2 + x_1), so x_1 reaches every group; canonical Res2Net: it reaches only y_1.
    assert _group_changes(printed, h, 0) == [True, True, True, True]
    assert _group_changes(canonical, h, 0) == [True, False, False, False]
    # x_2 reaches y_2 ... y_4 and x_4 only y_4, in both variants (hierarchical, y_i uses y_{i-1}).
    for block in (printed, canonical):
        assert _group_changes(block, h, 1) == [False, True, True, True]
        assert _group_changes(block, h, 3) == [False, False, False, True]

    # Same check by gradient: d y_2 / d x_1 is zero only for the canonical variant.
    for block, expect_zero in ((printed, False), (canonical, True)):
        hg = h.clone().requires_grad_(True)
        block.multi_scale(hg)[:, 4:8].sum().backward()
        assert (hg.grad[:, :4].abs().sum().item() == 0.0) == expect_zero
        assert hg.grad[:, 8:].abs().sum().item() == 0.0  # y_2 never sees x_3, x_4


def test_msr_block_identity_shortcut_and_relu_after_add():
    torch.manual_seed(0)
    block = MSRBlock(2, 16, 16).eval()
    # Zero the last BN: the residual branch F(x) is 0, so y = ReLU(CA(0) + x) = ReLU(x).
    bn = block.expand.adn.N
    nn.init.zeros_(bn.weight)
    nn.init.zeros_(bn.bias)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))
        assert (block(x) >= 0).all()


# ---------------------------------------------------------------- PlainBlock


def test_plain_block_without_flags_is_double_conv():
    torch.manual_seed(0)
    plain = PlainBlock(2, 4, 8).eval()
    double = DoubleConv(2, 4, 8, separable=False).eval()
    double.load_state_dict(plain.state_dict())  # same keys: conv1.*, conv2.*
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), double(x))
    assert n_params(plain) == n_params(double)


def test_plain_block_shortcut_and_attention():
    res = PlainBlock(2, 4, 8, shortcut=True)
    assert isinstance(res.shortcut, Convolution) and res.shortcut.conv.kernel_size == (1, 1)
    assert isinstance(PlainBlock(2, 8, 8, shortcut=True).shortcut, nn.Identity)
    att = PlainBlock(2, 4, 8, attention=True)
    assert isinstance(att.attention, ChannelAttention) and att.shortcut is None
    for block in (res, att, PlainBlock(3, 4, 8, shortcut=True, attention=True)):
        x = torch.randn(1, 4, *([8] * block.spatial_dims))
        assert block(x).shape == (1, 8, *([8] * block.spatial_dims))


# ---------------------------------------------------------------- MSRAttentionUNet


def test_presets_are_the_rows_of_tables_1_to_3():
    assert list(MSRAttentionUNet.ABLATIONS) == PRESETS
    presets = MSRAttentionUNet.ABLATIONS
    assert presets["msr_attention_unet"] == {"unit": "msr", "shortcut": True, "units_per_level": 1, "attention": True}
    assert presets["unet"] == {"unit": "plain", "shortcut": False, "units_per_level": 1, "attention": False}
    # Table 2 cases 1, 2 and 4 are the Table 3 / Table 1 rows under their Table 2 names.
    assert presets["table2_case1"] == presets["unet"]
    assert presets["table2_case2"] == presets["res_block"]
    assert presets["table2_case4"] == presets["msr_attention_unet"]
    assert presets["table2_case3"] == {**presets["res_block"], "units_per_level": 2}
    assert presets["table2_case5"] == {**presets["msr_attention_unet"], "units_per_level": 2}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_outputs_gradients_and_modules(preset):
    net = small_net(preset)
    flags = MSRAttentionUNet.ABLATIONS[preset]
    unit_type = MSRBlock if flags["unit"] == "msr" else PlainBlock
    units = [m for m in net.modules() if isinstance(m, (MSRBlock, PlainBlock))]
    assert all(isinstance(u, unit_type) for u in units)
    assert len(units) == (len(SMALL) + len(SMALL) - 1) * flags["units_per_level"]  # 5 encoder + 4 decoder levels
    assert all(isinstance(u.attention, ChannelAttention) == flags["attention"] for u in units)
    assert all((u.shortcut is not None) == flags["shortcut"] for u in units)
    assert len(net.decoder) == len(SMALL) - 1 and all(isinstance(s, UpStage) for s in net.decoder)

    x = torch.randn(2, 1, 64, 64)
    net.train()
    out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1, 64, 64)
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{preset}: no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"{preset}: non-finite gradient for {name}"
        assert p.grad.abs().sum() > 0, f"{preset}: zero gradient for {name}"


def test_parameter_counts_between_presets():
    counts = {name: n_params(small_net(name)) for name in PRESETS}
    assert counts["table2_case3"] > counts["table2_case2"] > counts["table2_case1"]  # 2 units > 1; projections
    assert counts["table2_case5"] > counts["table2_case4"]  # 2 MSR units > 1
    assert counts["attention"] > counts["unet"]  # channel-attention MLPs
    assert counts["res_block"] > counts["unet"]  # 1x1 conv + BN projections
    no_att = n_params(MSRAttentionUNet(features=SMALL, attention=False))
    no_short = n_params(MSRAttentionUNet(features=SMALL, shortcut=False))
    assert counts["msr_attention_unet"] > no_att and counts["msr_attention_unet"] > no_short
    # The bottleneck MSR block (1x1 reduce to C/2, 3x3 convs on C/8 groups) is lighter than two 3x3 convs.
    assert counts["msr_attention_unet"] < counts["unet"]


def test_shape_walkthrough_and_default_widths():
    net = small_net("msr_attention_unet").eval()
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name):
        def _record(_module, _inputs, output):
            shapes[name] = tuple(output.shape[1:])

        return _record

    for i, stage in enumerate(net.encoder):
        stage.register_forward_hook(hook(f"enc{i + 1}"))
    for i, stage in enumerate(net.decoder):
        stage.register_forward_hook(hook(f"dec{i + 1}"))
    net.head.register_forward_hook(hook("head"))
    with torch.no_grad():
        net(torch.randn(1, 1, 64, 64))
    assert shapes == {
        "enc1": (8, 64, 64),
        "enc2": (16, 32, 32),
        "enc3": (32, 16, 16),
        "enc4": (64, 8, 8),
        "enc5": (128, 4, 4),
        "dec1": (64, 8, 8),
        "dec2": (32, 16, 16),
        "dec3": (16, 32, 32),
        "dec4": (8, 64, 64),
        "head": (1, 64, 64),
    }

    # Default widths, no forward pass.
    full = MSRAttentionUNet()
    assert full.features == (32, 64, 128, 256, 512) and full.size_multiple == 16
    assert [s[0].out_channels for s in full.encoder] == [32, 64, 128, 256, 512]
    assert [s[0].mid_channels for s in full.encoder] == [16, 32, 64, 128, 256]
    assert [s[0].attention.hidden for s in full.encoder] == [4, 4, 8, 16, 32]
    assert full.encoder[0][0].in_channels == 1
    assert [(s.up.deconv.in_channels, s.up.deconv.out_channels) for s in full.decoder] == [
        (512, 256),
        (256, 128),
        (128, 64),
        (64, 32),
    ]
    assert all(s.up.deconv.kernel_size == (2, 2) and s.up.deconv.stride == (2, 2) for s in full.decoder)
    assert [s.conv[0].in_channels for s in full.decoder] == [512, 256, 128, 64]  # concat [skip, up]
    assert full.head.in_channels == 32 and full.head.out_channels == 1 and full.head.kernel_size == (1, 1)


def test_invalid_input_size_rank_and_arguments():
    net = small_net("msr_attention_unet").eval()
    with pytest.raises(ValueError, match="divisible by 16"):
        net(torch.randn(1, 1, 72, 72))  # divisible by 8, not by 16
    with pytest.raises(ValueError, match="expects a 4D input"):
        net(torch.randn(1, 1, 16, 16, 16))
    with pytest.raises(ValueError, match="unit must be one of"):
        MSRAttentionUNet(features=SMALL, unit="res2net")
    with pytest.raises(ValueError, match="units_per_level"):
        MSRAttentionUNet(features=SMALL, units_per_level=0)
    with pytest.raises(ValueError, match="divisible by scales"):
        MSRAttentionUNet(features=(4, 8, 16))  # MSR needs widths that are multiples of 8


def test_3d_forward():
    torch.manual_seed(0)
    net = MSRAttentionUNet(spatial_dims=3, features=(8, 16, 32)).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 16, 16, 16)).shape == (1, 1, 16, 16, 16)
    plain = MSRAttentionUNet.from_ablation("res_block", spatial_dims=3, out_channels=2, features=(4, 8, 16))
    assert plain(torch.randn(1, 1, 8, 8, 8)).shape == (1, 2, 8, 8, 8)


def test_eval_mode_is_deterministic():
    torch.manual_seed(0)
    net = MSRAttentionUNet(features=(8, 16, 32))
    x = torch.randn(2, 1, 32, 32)
    net.train()
    net(x)  # update the BN running statistics once
    net.eval()
    with torch.no_grad():
        a, b = net(x), net(x)
        single = net(x[:1])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(single, a[:1])  # no batch dependence in eval mode


def test_res2net_canonical_changes_output_not_parameters():
    torch.manual_seed(0)
    printed = MSRAttentionUNet(features=(8, 16, 32)).eval()
    canonical = MSRAttentionUNet(features=(8, 16, 32), res2net_canonical=True).eval()
    canonical.load_state_dict(printed.state_dict())
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(printed(x), canonical(x))
