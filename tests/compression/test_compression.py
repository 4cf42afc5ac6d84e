"""The three compression steps of Liu Ting's thesis (chapter 4) on every network of this repo, and the checkpoint format."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch_pruning as tp

from custom_networks import AFUNet, EASUNet, MSRAttentionUNet, TwoStageUNet, UNet3D
from custom_networks.compression import channel_pruning, quantization, threshold_pruning
from custom_networks.bundle.compressed_weights import load_weights
from custom_networks.bundle.two_stage_weights import load_pipeline_weights
from custom_networks.compression.checkpoint import compressed_state_dict, conv_weight_count, save_checkpoint
from custom_networks.engine.checkpoints import CheckedCheckpointLoader

NETWORKS = {
    "UNet3D": (lambda: UNet3D(in_channels=1, out_channels=9, features=(8, 16, 32, 64)), (1, 1, 32, 32, 16)),
    "AFUNet": (lambda: AFUNet(spatial_dims=2, in_channels=1, out_channels=1, features=(16, 32, 64, 128)), (1, 1, 64, 64)),
    "MSRAttentionUNet": (lambda: MSRAttentionUNet(spatial_dims=2, in_channels=1, out_channels=1,
                                                  features=(8, 16, 32, 64, 128)), (1, 1, 64, 64)),
    "EASUNet": (lambda: EASUNet(spatial_dims=2, in_channels=1, out_channels=3, features=(16, 32, 64, 128, 256)),
                (1, 1, 64, 64)),
}


def _compress(net: nn.Module, levels: int = 31) -> None:
    """All three steps without fine-tuning: prune 20 %, mask |w| < 0.02, quantize."""
    pruner = channel_pruning.ChannelPruner(net)
    for _ in range(len(pruner)):
        pruner.step()
    threshold_pruning.mask_below(net, 0.02)
    threshold_pruning.make_permanent(net)
    quantization.attach_quantizers(net, levels)
    quantization.bake_quantizers(net)


# ---- quantizers: the printed formulas -------------------------------------------------------------------------------

def test_five_and_seven_level_quantizers_are_formulas_4_5_and_4_6():
    w = torch.tensor([-0.5, -0.2, -0.05, 0.0, 0.05, 0.1, 0.2, 0.26, 0.28, 0.9])
    five = quantization.quantize_weights(w, 5)
    assert five.tolist() == pytest.approx([-0.27, -0.09, 0, 0, 0, 0.09, 0.09, 0.09, 0.27, 0.27])
    seven = quantization.quantize_weights(torch.tensor([0.06, 0.07, 0.19, 0.2, 0.32, 0.33, 1.0, -0.2]), 7)
    assert seven.tolist() == pytest.approx([0, 0.065, 0.065, 0.195, 0.195, 0.325, 0.325, -0.195])


def test_binary_ternary_and_31_levels():
    w = torch.tensor([-0.3, -0.1, 0.0, 0.1, 0.3])
    assert quantization.quantize_weights(w, 2).tolist() == [-1, -1, 1, 1, 1]
    assert quantization.quantize_weights(w, 3).tolist() == [-1, 0, 0, 0, 1]
    q = quantization.quantize_weights(torch.linspace(-1, 1, 2001), 31)
    values = sorted(set(round(v, 4) for v in q.tolist()))
    assert len(values) == 31 and values[-1] == pytest.approx(0.435) and values[0] == pytest.approx(-0.435)
    assert quantization.packed_bits(31) == 5 and quantization.level_step(31) == 0.03
    with pytest.raises(ValueError, match="levels must be one of"):
        quantization.level_step(4)


def test_codes_store_quantized_weights_exactly_and_refuse_float_weights():
    w = quantization.quantize_weights(torch.randn(16, 8, 3, 3) * 0.2, 31)
    codes, step = quantization.weight_codes(w, 31)
    assert codes.dtype == torch.int8 and torch.equal(codes.float() * step, w)
    assert set(codes.abs().unique().tolist()) <= set(range(0, 30, 2)) | set(range(1, 30, 2))
    with pytest.raises(ValueError, match="not on the 31-level grid"):
        quantization.weight_codes(torch.randn(4, 4) * 0.2, 31)


def test_straight_through_training_updates_full_precision_weights_and_keeps_pruned_zeros():
    conv = nn.Conv2d(2, 4, 3)
    with torch.no_grad():
        conv.weight[0] = 0.0  # a pruned filter
    quantization.attach_quantizers(conv, 31)
    original = conv.parametrizations.weight.original
    before = original.detach().clone()
    opt = torch.optim.SGD(conv.parameters(), lr=0.1)
    conv(torch.randn(2, 2, 8, 8)).square().mean().backward()
    assert original.grad is not None and original.grad[1:].abs().sum() > 0  # gradient passes the quantizer
    assert torch.all(original.grad[0] == 0)  # ... but not to pruned weights
    opt.step()
    assert not torch.equal(original.detach(), before)
    quantization.bake_quantizers(conv)
    assert torch.all(conv.weight[0] == 0)
    quantization.weight_codes(conv.weight, 31)  # every weight is on the 31-level grid


# ---- threshold pruning ---------------------------------------------------------------------------------------------

def test_threshold_masks_survive_fine_tuning_and_become_plain_weights():
    net = UNet3D(in_channels=1, out_channels=2, features=(4, 8))
    threshold_pruning.mask_below(net, 0.05)
    masked = {id(m): (m.weight != 0).clone() for m in threshold_pruning.conv_layers(net)}
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.randn(1, 1, 8, 8, 8)).mean().backward()
    opt.step()
    threshold_pruning.make_permanent(net)
    for layer in threshold_pruning.conv_layers(net):
        assert set(dict(layer.named_parameters(recurse=False))) <= {"weight", "bias"}
        assert torch.all(layer.weight[~masked[id(layer)]] == 0)
    assert 0 < threshold_pruning.sparsity(net) < 1
    assert not any("mask" in k or "orig" in k for k in net.state_dict())


# ---- channel pruning -----------------------------------------------------------------------------------------------

def test_filter_l1_criterion_removes_the_smallest_filters_losslessly():
    """UNet3D: filters zeroed beforehand are the ones removed, and the smaller dense net computes the same function.

    A zero filter (weight and bias) gives a zero channel, which InstanceNorm and ReLU keep at zero, so removing it
    and the weights reading it must not change the output: this checks the U-Net coupling (skips, concatenations).
    """
    torch.manual_seed(0)
    net = UNet3D(in_channels=1, out_channels=3, features=(8, 16, 32, 64)).eval()
    zeroed = {}
    with torch.no_grad():
        for layer in threshold_pruning.conv_layers(net)[:-1]:  # every layer but the output layer
            weight = layer.weight.transpose(0, 1) if layer.transposed else layer.weight
            idxs = sorted(torch.randperm(weight.shape[0])[: weight.shape[0] // 4].tolist())
            weight[idxs], layer.bias[idxs] = 0, 0
            zeroed[layer] = idxs
    reference = copy.deepcopy(net)
    removed = {}

    def record(group):
        for item in group:
            if item.dep.pruning_fn == tp.prune_conv_out_channels:
                removed[item.dep.layer] = sorted(item.idxs)

    channel_pruning.ChannelPruner(net, rates=(0.25,)).step(on_group=record)
    assert removed == zeroed  # the lowest filter L1 norms, in every layer
    x = torch.randn(1, 1, 32, 32, 16)
    assert torch.allclose(net(x), reference(x), atol=1e-5)
    assert net.encoder[0][0].conv.out_channels == 6  # 8 - floor(8 * 0.25)
    assert net.head.out_channels == 3  # the output layer is never pruned (thesis Table 4-2, conv3d_15)


def test_thesis_widths_at_20_percent_match_table_4_2():
    """Conv weights of the full-width stage-1 net: 12.03 MB, and about 7.78 MB after the 5/10/15/20 % schedule."""
    net = UNet3D(in_channels=1, out_channels=9, features=(24, 48, 96, 192))
    assert conv_weight_count(net)[0] * 4 / 1e6 == pytest.approx(12.62, abs=0.01)  # 12.03 MiB (thesis "12.03M")
    pruner = channel_pruning.ChannelPruner(net)
    for _ in range(len(pruner)):
        pruner.step()
    mib = conv_weight_count(net)[0] * 4 / 2**20
    assert 7.4 < mib < 8.2, mib  # thesis 7.78M; per-layer rounding differs slightly
    # torch-pruning keeps int(n * 0.8) channels; the thesis removes floor(n * 0.2), keeping 20, 39, 77, 154
    assert [level[0].conv.out_channels for level in net.encoder] == [19, 38, 76, 153]


def test_round_to_keeps_channel_counts_at_multiples_of_8():
    net = UNet3D(in_channels=1, out_channels=9, features=(12, 24, 48, 96))
    pruner = channel_pruning.ChannelPruner(net, round_to=8)
    for _ in range(len(pruner)):
        pruner.step()
    assert [level[0].conv.out_channels for level in net.encoder] == [8, 16, 32, 72]
    assert all(layer.out_channels % 8 == 0 for layer in threshold_pruning.conv_layers(net)[:-1])
    assert net.head.out_channels == 9


@pytest.mark.parametrize("name", list(NETWORKS))
def test_compressed_network_keeps_shapes_and_loads_into_the_full_size_network(name, tmp_path):
    build, shape = NETWORKS[name]
    torch.manual_seed(0)
    net = build().eval()
    full_params = sum(p.numel() for p in net.parameters())
    _compress(net)
    x = torch.randn(shape)
    y = net(x)
    assert y.shape == build().eval()(x).shape
    assert sum(p.numel() for p in net.parameters()) < 0.85 * full_params
    save_checkpoint(compressed_state_dict(net, 31), str(tmp_path / "model.pt"))
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert any(v.dtype == torch.int8 for v in state.values())
    fresh = build().eval()
    load_weights(fresh, state)  # strict: decodes the codes and shrinks the layers
    assert torch.allclose(fresh(x), y, atol=1e-6)  # same weights; memory layout may change the summation order


def test_two_stage_pipeline_loads_a_compressed_stage_1(tmp_path):
    organs = ["eye_left", "mandible"]
    kwargs = dict(organs=organs, crop_sizes={o: [16, 16, 16] for o in organs}, stage1_size=[32, 32, 16],
                  features=[4, 8, 16, 32])
    pipeline = TwoStageUNet(**kwargs).eval()
    _compress(pipeline.stage1)
    state = {k: v for k, v in pipeline.state_dict().items() if not k.startswith("stage1.")}
    state.update({f"stage1.{k}": v for k, v in compressed_state_dict(pipeline.stage1, 31).items()})
    save_checkpoint(state, str(tmp_path / "model.pt"))
    fresh = TwoStageUNet(**kwargs).eval()
    load_pipeline_weights(fresh, str(tmp_path / "model.pt"))  # the two-stage training steps' loader
    x = torch.randn(1, 1, 40, 40, 20)
    probe = torch.randn(1, 1, 32, 32, 16)
    assert torch.allclose(fresh.stage1(probe), pipeline.stage1(probe), atol=1e-6)
    assert fresh(x).shape == (1, 3, 40, 40, 20)  # background + the two organs


def test_a_plain_checkpoint_with_other_shapes_is_still_an_error():
    """Only a checkpoint marked as compressed may shrink the network; another bundle's weights fail as before."""
    small = UNet3D(in_channels=1, out_channels=9, features=(4, 8, 16, 32))
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_weights(UNet3D(in_channels=1, out_channels=9, features=(8, 16, 32, 64)), small.state_dict())


def test_the_bundles_checkpoint_loader_reads_a_compressed_checkpoint_and_nothing_else_does(tmp_path):
    """``inference.json`` and ``evaluate.json`` load through ``CheckedCheckpointLoader``, which reads compressed
    weights explicitly; a bare ``load_state_dict`` has no hidden hook (importing the package registers none)."""
    from ignite.engine import Engine

    torch.manual_seed(0)
    net = UNet3D(in_channels=1, out_channels=9, features=(8, 16, 32, 64)).eval()
    _compress(net)
    save_checkpoint(compressed_state_dict(net, 31), str(tmp_path / "model.pt"))
    fresh = UNet3D(in_channels=1, out_channels=9, features=(8, 16, 32, 64)).eval()
    with pytest.raises(RuntimeError, match="size mismatch|Unexpected key"):
        copy.deepcopy(fresh).load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    engine = Engine(lambda e, b: None)
    CheckedCheckpointLoader(load_path=str(tmp_path / "model.pt"), load_dict={"model": fresh})(engine)
    x = torch.randn(1, 1, 32, 32, 16)
    with torch.no_grad():
        assert torch.allclose(fresh(x), net(x), atol=1e-6)
    assert not fresh._load_state_dict_pre_hooks  # the loader's hook is gone after the load
    imported = subprocess.run([sys.executable, "-c", "import sys, custom_networks; "
                               "print(sorted(m for m in sys.modules if m.startswith('custom_networks.compression')))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert imported == "[]"


def test_quantized_outputs_approach_the_float_outputs_as_levels_grow():
    """Fixed input, weights ~ N(0, 0.1) (the thesis's Fig. 4-7 range): 31 levels keep >= 65 % of the voxels' argmax
    without fine-tuning (measured 0.70), and every step up in levels brings the probabilities closer."""
    torch.manual_seed(0)
    net = UNet3D(in_channels=1, out_channels=9, features=(8, 16, 32, 64)).eval()
    with torch.no_grad():
        for layer in threshold_pruning.conv_layers(net):
            layer.weight.normal_(0, 0.1)
    x = torch.randn(1, 1, 32, 32, 16)
    with torch.no_grad():
        reference = net(x).softmax(1)
    errors = []
    for levels in (3, 7, 15, 31):
        quantized = copy.deepcopy(net)
        quantization.attach_quantizers(quantized, levels)
        quantization.bake_quantizers(quantized)
        with torch.no_grad():
            probs = quantized(x).softmax(1)
        errors.append(float((probs - reference).abs().mean()))
        agreement = float((probs.argmax(1) == reference.argmax(1)).float().mean())
    assert errors == sorted(errors, reverse=True), errors
    assert agreement >= 0.65
