"""Paper 002's organ boxes: find, enlarge, rescale, crop and paste back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from custom_networks.ops.boxes import crop_and_resize, expand_box, jitter_box, organ_box, paste_max, scale_box


def label_map() -> torch.Tensor:
    """A (40, 36, 20) map with three organs; organ 2 touches organ 1 (boxes overlap); organ 1 has a stray voxel."""
    lab = torch.zeros(40, 36, 20, dtype=torch.long)
    lab[5:15, 6:16, 4:10] = 1
    lab[15:22, 8:14, 4:9] = 2
    lab[25:35, 20:30, 10:16] = 3
    lab[38, 1, 1] = 1  # stray voxel, not part of organ 1's box
    return lab


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


@pytest.mark.parametrize("box", [((10, 20), (5, 9), (3, 4)), ((0, 3), (0, 30), (29, 30))],
                         ids=["inside", "at_the_edges"])
def test_jitter_box_moves_each_face_by_at_most_jitter_and_stays_a_non_empty_box_in_the_volume(box):
    """Every face moves by a uniform integer in [-jitter, jitter], clipped to the volume, never to an empty box;
    far from the edges every offset of that range occurs (both ends included)."""
    shape, jitter = (30, 30, 30), 4
    rng = np.random.RandomState(0)
    offsets = set()
    for _ in range(500):
        moved = jitter_box(box, shape, jitter, rng)
        for (lo, hi), (lo2, hi2), size in zip(box, moved, shape):
            assert 0 <= lo2 < hi2 <= size, (box, moved)
            assert max(0, lo - jitter) <= lo2 <= min(size - 1, lo + jitter), (box, moved)
            assert max(lo2 + 1, hi - jitter) <= hi2 <= min(size, hi + jitter), (box, moved)
        offsets |= {lo2 - lo for (lo, _), (lo2, _) in zip(box, moved)} | {hi2 - hi for (_, hi), (_, hi2) in zip(box, moved)}
    if box[0] == (10, 20):
        assert offsets == set(range(-jitter, jitter + 1))
    else:  # the faces on the volume's edges are clipped onto them, and still reach them
        assert min(offsets) == -jitter and max(offsets) == jitter
        assert any(jitter_box(box, shape, jitter, rng)[1] == (0, 30) for _ in range(200))
    assert jitter_box(box, shape, 0, rng) == box
