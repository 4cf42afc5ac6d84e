"""Paper 002's stage-2 training crops and their class weights."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from custom_networks.ops.boxes import box_slices, expand_box, organ_box
from custom_networks.transforms.organ_crop import OrganCropd, foreground_weight
from tests.ops.test_boxes import label_map


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
