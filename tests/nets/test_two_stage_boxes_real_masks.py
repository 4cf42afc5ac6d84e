"""Organ boxes from stage 1's own 208x208x72 grid versus from its logits resized to the working grid, on the real
expert organ masks (``../shared/data/hn_oar_masks``): the benchmark's head-and-neck fix must not lose organ voxels.

A perfect stage 1 is simulated: the ground-truth label map, nearest-resized to the stage-1 grid, as +-10 one-hot
logits. The old path resized those logits (trilinear) to the 1 x 1 x 2.5 mm working grid and searched boxes there;
the new one searches on the stage-1 grid and scales the boxes (``scale_box``, rounded outwards).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from custom_networks import TwoStageUNet
from tests.conftest import SHARED_DATA

MASKS = SHARED_DATA / "hn_oar_masks"
ORGANS = ["brainstem", "eye_left", "eye_right", "optic_nerve_left", "optic_nerve_right", "parotid_left",
          "parotid_right", "mandible"]
CROPS = {o: (64, 64, 64) if o in ("brainstem", "parotid_left", "parotid_right") else (32, 32, 32) for o in ORGANS}
CROPS["mandible"] = (128, 128, 64)


@pytest.mark.skipif(not MASKS.is_dir(), reason=f"real head-and-neck organ masks not present at {MASKS}")
@pytest.mark.parametrize("case", ["0522c0017"])  # 0522c0161 too when run by hand: the same
def test_stage1_grid_boxes_hold_every_organ_voxel_the_full_grid_boxes_hold(case):
    from scripts.phantoms.head_neck import build_labels, load_case

    label = torch.as_tensor(build_labels(load_case(MASKS / case, voxel_size=(1.0, 1.0, 2.5)))).long()
    net = TwoStageUNet(ORGANS, CROPS, features=(4, 8, 16, 32))  # the thesis's 208x208x72 stage-1 grid
    small = F.interpolate(label[None, None].float(), size=net.stage1_size, mode="nearest")[0, 0].long()
    logits = F.one_hot(small, 9).permute(3, 0, 1, 2)[None].float() * 20 - 10
    new = net.organ_boxes(small, label.shape)
    old_labels = F.interpolate(logits, size=label.shape, mode="trilinear", align_corners=False).argmax(1)[0]
    old = net.organ_boxes(old_labels, label.shape)
    del logits, old_labels
    ratios = []
    for i, organ in enumerate(ORGANS, start=1):
        truth = label == i
        if not truth.any() or old[organ] is None:
            continue
        assert new[organ] is not None, organ

        def held(box):
            return int(truth[tuple(slice(lo, hi) for lo, hi in box)].sum())

        volume = [torch.tensor([hi - lo for lo, hi in b]).prod().item() for b in (old[organ], new[organ])]
        print(f"{case} {organ}: organ voxels in box old {held(old[organ])} new {held(new[organ])} of "
              f"{int(truth.sum())}; box volume new/old {volume[1] / volume[0]:.3f}")
        assert held(new[organ]) >= held(old[organ]), organ
        ratios.append(volume[1] / volume[0])
    assert sorted(ratios)[len(ratios) // 2] < 1.25, ratios  # boxes grow by up to one stage-1 voxel per face
