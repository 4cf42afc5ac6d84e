"""Paper 002's 3D U-Net and the two-stage pipeline (boxes: tests/ops/test_boxes.py; stage-2 crops:
tests/transforms/test_organ_crop.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from custom_networks import TwoStageUNet, UNet3D
from tests.ops.test_boxes import label_map

ORGANS = ("a", "b", "c")
TINY = dict(features=(4, 8, 16, 32), stage1_size=(32, 32, 16))


def weight_count(net: nn.Module) -> int:
    return sum(m.weight.numel() for m in net.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)))


def test_unet3d_matches_thesis_table_3_3():
    net = UNet3D()
    assert weight_count(net) == 3_154_896  # 12.03 MiB as float32: the thesis's "12.03M"
    assert net.head.kernel_size == (3, 3, 3) and net.head.out_channels == 9
    assert [lvl[0].conv.out_channels for lvl in net.encoder] == [24, 48, 96, 192]
    small = UNet3D(out_channels=2, features=(4, 8, 16, 32))
    assert small(torch.randn(1, 1, 16, 24, 8)).shape == (1, 2, 16, 24, 8)
    with pytest.raises(ValueError, match="divisible by 8"):
        small(torch.randn(1, 1, 16, 24, 12))


class _Indicator(nn.Module):
    """Stand-in stage-2 net: foreground logit +10 where the (crop of the) input is near ``value``, -10 elsewhere."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x):
        fg = ((x - self.value).abs() < 0.1).float() * 20 - 10
        return torch.cat([torch.zeros_like(fg), fg], dim=1)


def test_two_stage_forward_merges_stage2_outputs_at_full_resolution(monkeypatch):
    lab = label_map()
    lab[38, 1, 1] = 0
    net = TwoStageUNet(ORGANS, {o: (24, 24, 16) for o in ORGANS}, **TINY).eval()
    onehot = torch.nn.functional.one_hot(lab, 4).permute(3, 0, 1, 2)[None].float()
    monkeypatch.setattr(net, "stage1_logits", lambda x: onehot * 10)
    for i, organ in enumerate(ORGANS, start=1):
        net.stage2[organ] = _Indicator(i / 4)
    # the input holds organ i at intensity i / 4, so each stand-in stage 2 finds its own organ inside its box
    x = (lab / 4).float()[None, None]
    with torch.no_grad():
        out = net(x)
    assert out.shape == (1, 4, 40, 36, 20)
    pred = out.argmax(1)[0]
    for i in range(1, 4):
        dice = 2 * ((pred == i) & (lab == i)).sum() / ((pred == i).sum() + (lab == i).sum())
        assert dice > 0.8, (i, float(dice))  # trilinear resizes blur the borders of a 7x6x5 organ
    assert (pred[lab == 0] == 0).float().mean() > 0.99


def test_two_stage_boxes_from_stage1_grid_find_the_organs_at_full_resolution(monkeypatch):
    """Stage 1 answers on its own, coarser grid (half size here); the boxes are scaled to the input's grid."""
    lab = label_map()
    lab[38, 1, 1] = 0
    net = TwoStageUNet(ORGANS, {o: (24, 24, 16) for o in ORGANS}, **TINY).eval()
    coarse = torch.nn.functional.interpolate(lab[None, None].float(), size=(20, 18, 10), mode="nearest")[0, 0].long()
    onehot = torch.nn.functional.one_hot(coarse, 4).permute(3, 0, 1, 2)[None].float()
    monkeypatch.setattr(net, "stage1_logits", lambda x: onehot)
    for i, organ in enumerate(ORGANS, start=1):
        net.stage2[organ] = _Indicator(i / 4)
    with torch.no_grad():
        pred = net((lab / 4).float()[None, None]).argmax(1)[0]
    assert pred.shape == lab.shape
    for i in range(1, 4):
        dice = 2 * ((pred == i) & (lab == i)).sum() / ((pred == i).sum() + (lab == i).sum())
        assert dice > 0.8, (i, float(dice))


@pytest.mark.parametrize("crop_mode", ["window", "resize"])
def test_a_batch_of_two_different_volumes_gives_each_its_own_organs(monkeypatch, crop_mode):
    """Two cases in one batch: each gets the boxes of its own stage-1 map, its own crops and its own output, the
    same as alone; the second case has its organs elsewhere and no organ b."""
    first = label_map()
    first[38, 1, 1] = 0
    second = torch.roll(first, shifts=(4, -5, 3), dims=(0, 1, 2))
    second[second == 2] = 0
    x = (torch.stack([first, second]) / 4).float()[:, None]  # organ i at intensity i / 4
    net = TwoStageUNet(ORGANS, {o: (8, 8, 8) for o in ORGANS}, crop_mode=crop_mode, min_margin=(1, 1, 1), **TINY)
    net.eval()
    # stand-in stage 1: the organs read off the input, case by case
    monkeypatch.setattr(net, "stage1_logits", lambda v: nn.functional.one_hot(
        (v[:, 0] * 4).round().long(), 4).permute(0, 4, 1, 2, 3).float() * 10)
    for i, organ in enumerate(ORGANS, start=1):
        net.stage2[organ] = _Indicator(i / 4)
    with torch.no_grad(), pytest.warns(UserWarning, match="stage 1 found no b in volume 1"):
        out = net(x)
    with torch.no_grad(), pytest.warns(UserWarning, match="stage 1 found no b in volume 0"):
        alone = torch.cat([net(x[:1]), net(x[1:])])
    torch.testing.assert_close(out, alone)
    pred = out.argmax(1)
    assert float(out[1, 2].max()) == 0.0 and float(out[0, 2].max()) > 0.5
    if crop_mode == "window":  # no resizing: each case's organs come back voxel for voxel
        assert torch.equal(pred[0], first) and torch.equal(pred[1], second)
    for case, lab in zip(pred, (first, second)):
        for i in set(lab.unique().tolist()) - {0}:
            dice = 2 * ((case == i) & (lab == i)).sum() / ((case == i).sum() + (lab == i).sum())
            assert dice > 0.8, (i, float(dice))


def test_two_stage_missing_organ_warns_and_stays_empty(monkeypatch):
    lab = label_map()
    lab[lab == 2] = 0
    net = TwoStageUNet(ORGANS, {o: (16, 16, 8) for o in ORGANS}, **TINY).eval()
    monkeypatch.setattr(net, "stage1_logits", lambda x: torch.nn.functional.one_hot(lab, 4).permute(3, 0, 1, 2)[None].float())
    with torch.no_grad(), pytest.warns(UserWarning, match="stage 1 found no b"):
        out = net(torch.rand(1, 1, 40, 36, 20))
    assert float(out[0, 2].max()) == 0.0
    assert float(out[0, 1].max()) > 0.0


def test_two_stage_stage1_only_and_state_dict_layout():
    net = TwoStageUNet(ORGANS, {o: (16, 16, 8) for o in ORGANS}, use_stage2=False, **TINY).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, 30, 26, 12))
    assert out.shape == (2, 4, 30, 26, 12)
    assert torch.allclose(out.sum(1), torch.ones(2, 30, 26, 12), atol=1e-5)
    prefixes = {k.split(".")[0] + "." + k.split(".")[1] if k.startswith("stage2") else k.split(".")[0] for k in net.state_dict()}
    assert prefixes == {"stage1", "stage2.a", "stage2.b", "stage2.c"}
    with pytest.raises(ValueError, match="crop_sizes has no entry"):
        TwoStageUNet(ORGANS, {"a": (16, 16, 8)}, **TINY)
    with pytest.raises(ValueError, match="divisible by 8"):
        TwoStageUNet(ORGANS, {o: (12, 16, 8) for o in ORGANS}, **TINY)


def test_window_mode_pastes_each_organ_back_unscaled(monkeypatch):
    lab = label_map()
    lab[38, 1, 1] = 0
    net = TwoStageUNet(ORGANS, {o: (8, 8, 8) for o in ORGANS}, crop_mode="window", min_margin=(1, 1, 1), **TINY).eval()
    onehot = torch.nn.functional.one_hot(lab, 4).permute(3, 0, 1, 2)[None].float()
    monkeypatch.setattr(net, "stage1_logits", lambda x: onehot * 10)
    for i, organ in enumerate(ORGANS, start=1):
        net.stage2[organ] = _Indicator(i / 4)
    with torch.no_grad():
        pred = net((lab / 4).float()[None, None]).argmax(1)[0]
    assert torch.equal(pred, lab)  # no resizing: the stand-ins' masks come back voxel for voxel


def test_test_time_flip_is_the_average_with_the_mirrored_output_relabelled():
    torch.manual_seed(0)
    organs = ("brainstem", "parotid_right", "parotid_left")
    kwargs = dict(features=(4, 8, 16, 32), stage1_size=(16, 16, 16), crop_mode="window", min_margin=(1, 1, 1))
    plain = TwoStageUNet(organs, {o: (8, 8, 8) for o in organs}, **kwargs).eval()
    flipped = TwoStageUNet(organs, {o: (8, 8, 8) for o in organs}, test_time_flip=True, **kwargs).eval()
    flipped.load_state_dict(plain.state_dict())
    x = torch.randn(1, 1, 32, 24, 16)
    with torch.no_grad():
        by_hand = plain(x)
        mirrored = torch.flip(plain(torch.flip(x, dims=[2])), dims=[2])
        by_hand = (by_hand + mirrored[:, [0, 1, 3, 2]]) / 2  # the two parotids' channels swapped back
        assert torch.allclose(flipped(x), by_hand)
    assert by_hand[:, 2:].amax() > 0 and not torch.allclose(by_hand, plain(x))  # parotids found, flips matter
