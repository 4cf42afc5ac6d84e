"""Paper 002's 3D U-Net and the two-stage box / crop / merge logic."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn as nn

from custom_networks import TwoStageUNet, UNet3D
from custom_networks.ops.boxes import box_slices, crop_and_resize, expand_box, organ_box, paste_max, scale_box
from custom_networks.transforms.organ_crop import OrganCropd, foreground_weight

ORGANS = ("a", "b", "c")
TINY = dict(features=(4, 8, 16, 32), stage1_size=(32, 32, 16))


def weight_count(net: nn.Module) -> int:
    return sum(m.weight.numel() for m in net.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)))


def label_map() -> torch.Tensor:
    """A (40, 36, 20) map with three organs; organ 2 touches organ 1 (boxes overlap); organ 1 has a stray voxel."""
    lab = torch.zeros(40, 36, 20, dtype=torch.long)
    lab[5:15, 6:16, 4:10] = 1
    lab[15:22, 8:14, 4:9] = 2
    lab[25:35, 20:30, 10:16] = 3
    lab[38, 1, 1] = 1  # stray voxel, not part of organ 1's box
    return lab


def test_unet3d_matches_thesis_table_3_3():
    net = UNet3D()
    assert weight_count(net) == 3_154_896  # 12.03 MiB as float32: the thesis's "12.03M"
    assert net.head.kernel_size == (3, 3, 3) and net.head.out_channels == 9
    assert [lvl[0].conv.out_channels for lvl in net.encoder] == [24, 48, 96, 192]
    small = UNet3D(out_channels=2, features=(4, 8, 16, 32))
    assert small(torch.randn(1, 1, 16, 24, 8)).shape == (1, 2, 16, 24, 8)
    with pytest.raises(ValueError, match="divisible by 8"):
        small(torch.randn(1, 1, 16, 24, 12))


def test_organ_box_ignores_stray_voxels_and_expand_box_clips():
    lab = label_map()
    assert organ_box(lab == 1) == ((5, 15), (6, 16), (4, 10))
    assert organ_box(lab == 4) is None
    # extent 10 -> margin max(8, 2) = 8 in-plane; extent 6 in z -> max(3, 1) = 3; clipped at 0 and the shape
    assert expand_box(((5, 15), (6, 16), (4, 10)), lab.shape) == ((0, 23), (0, 24), (1, 13))
    assert expand_box(((0, 40), (0, 36), (0, 20)), lab.shape, fraction=0.5) == ((0, 40), (0, 36), (0, 20))


def test_boxes_cut_and_merged_back_reproduce_the_label_map():
    lab = label_map()
    lab[38, 1, 1] = 0
    onehot = torch.nn.functional.one_hot(lab, 4).permute(3, 0, 1, 2)[None].float()
    full = torch.zeros_like(onehot)
    full[:, 0] = 0.5
    for i in range(1, 4):
        box = expand_box(organ_box(lab == i), lab.shape)
        extent = [hi - lo for lo, hi in box]
        crop = crop_and_resize(onehot[:, i : i + 1], box, extent)  # identity resize: exact round trip
        paste_max(full[:, i : i + 1], crop, box)
    assert torch.equal(full.argmax(1)[0], lab)


def test_crop_resize_to_thesis_size_and_back_keeps_the_organ():
    lab = label_map()
    mask = (lab == 3).float()[None, None]
    box = expand_box(organ_box(lab == 3), lab.shape)
    back = torch.zeros_like(mask)
    paste_max(back, crop_and_resize(mask, box, (32, 32, 32)), box)
    dice = 2 * ((back > 0.5) & (mask > 0)).sum() / ((back > 0.5).sum() + mask.sum())
    assert dice > 0.95


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


def test_scale_box_rounds_outwards_and_covers_every_touched_voxel():
    assert scale_box(((2, 5), (0, 3), (1, 2)), (10, 12, 8), (20, 36, 20)) == ((4, 10), (0, 9), (2, 5))
    assert scale_box(((0, 10), (0, 12), (0, 8)), (10, 12, 8), (33, 35, 21)) == ((0, 33), (0, 35), (0, 21))
    lab = label_map()
    lab[38, 1, 1] = 0
    for i in range(1, 4):  # a coarse mask of every 2x2x2 block the organ touches: its scaled box is the fine
        coarse = torch.nn.functional.max_pool3d((lab == i).float()[None, None], 2)[0, 0] > 0  # box, rounded out
        box, fine = scale_box(organ_box(coarse), coarse.shape, lab.shape), organ_box(lab == i)
        assert all(lo <= flo and fhi <= hi and flo - lo <= 1 and hi - fhi <= 1
                   for (lo, hi), (flo, fhi) in zip(box, fine)), (i, box, fine)


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


def test_organ_cropd_contains_the_organ_and_binarises():
    lab = label_map()[None].float()
    image = torch.rand(1, 40, 36, 20)
    t = OrganCropd(["image", "label"], organ_label=1, spatial_size=(16, 16, 8), jitter=4)
    t.set_random_state(0)
    out = t({"image": image, "label": lab})
    assert out["image"].shape == (1, 16, 16, 8) and out["label"].shape == (1, 16, 16, 8)
    assert set(out["label"].unique().tolist()) == {0.0, 1.0}
    # without jitter the box holds the whole organ: the resized label keeps about its volume share
    exact = OrganCropd(["image", "label"], organ_label=3, spatial_size=(16, 16, 8), jitter=0)({"image": image, "label": lab})
    box = expand_box(organ_box(lab[0] == 3), lab.shape[1:])
    share = float((lab[0][box_slices(box)] == 3).float().mean())
    assert abs(float(exact["label"].mean()) - share) < 0.05
    t2 = OrganCropd(["image", "label"], organ_label=1, spatial_size=(16, 16, 8), jitter=4)
    t2.set_random_state(0)
    assert torch.equal(t2({"image": image, "label": lab})["image"], out["image"])  # seeded jitter is reproducible


def test_foreground_weight_is_the_box_background_ratio(tmp_path):
    lab = label_map().numpy().astype(np.uint8)
    path = tmp_path / "lab.nii.gz"
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(path))
    box = expand_box(organ_box(torch.as_tensor(lab) == 3), lab.shape)
    region = lab[box_slices(box)]
    expected = (region.size - (region == 3).sum()) / (region == 3).sum()
    w = foreground_weight([{"label": str(path)}], organ_label=3)
    assert w[0] == 1.0 and w[1] == pytest.approx(expected)
    assert foreground_weight([{"label": str(path)}], organ_label=3, cap=2.0)[1] == 2.0
    with pytest.raises(ValueError, match="no training label contains organ label 7"):
        foreground_weight([{"label": str(path)}], organ_label=7)
