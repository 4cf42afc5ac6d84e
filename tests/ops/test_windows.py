"""Fixed-size organ windows of the two-stage pipeline: centred on the organ, cut with padding, pasted back."""

from __future__ import annotations

import pytest
import torch

from custom_networks.ops.boxes import expand_box, organ_box
from custom_networks.ops.windows import box_centre, crop_window, paste_window_max, window_size_for, window_start
from custom_networks.transforms.organ_crop import OrganWindowd
from tests.conftest import SHARED_DATA
from tests.ops.test_boxes import label_map

OPENKBP_PATIENT = SHARED_DATA / "openkbp" / "validation-pats" / "pt_201"


def test_window_start_centres_odd_and_even_windows_and_grows_for_large_boxes():
    assert box_centre(((4, 9),)) == (6.0,)  # voxels 4..8
    assert window_start((6.0,), (5,)) == (4,)  # 4..8: the centre voxel in the middle
    assert window_start((6.0,), (4,)) == (5,)  # 5..8: ties go to the later half
    assert window_start((6.5,), (4,)) == (5,)  # 5..8 around 6.5
    assert window_size_for(((0, 30), (2, 6)), (16, 16), 8) == (32, 16)


def test_crop_window_pads_outside_the_volume_and_paste_drops_it():
    x = torch.arange(2 * 5 * 4, dtype=torch.float32).reshape(1, 2, 5, 4)
    crop = crop_window(x, (-2, 1), (6, 4))  # 2 rows before the volume, 1 column after
    assert crop.shape == (1, 2, 6, 4)
    assert torch.equal(crop[:, :, 2:, :3], x[:, :, :4, 1:])
    assert torch.equal(crop[:, :, 0], crop[:, :, 2]) and torch.equal(crop[..., 3], crop[..., 2])  # edge repeated
    zeros = crop_window(x, (-2, 1), (6, 4), pad="zeros")
    assert zeros[:, :, :2].abs().sum() == 0 and zeros[..., 3].abs().sum() == 0
    full = torch.zeros_like(x)
    paste_window_max(full, crop, (-2, 1))
    assert torch.equal(full[:, :, :4, 1:], x[:, :, :4, 1:]) and full[:, :, 4:].abs().sum() == 0
    with pytest.raises(ValueError, match="outside"):
        crop_window(x, (10, 0), (2, 2))


def _round_trip(label: torch.Tensor, sizes: dict[int, tuple[int, ...]]) -> None:
    """Every organ's window is centred on its enlarged box, holds the whole organ, and pastes back in place."""
    onehot = torch.nn.functional.one_hot(label.long(), int(label.max()) + 1).permute(3, 0, 1, 2)[None].float()
    merged = torch.zeros_like(onehot)
    merged[:, 0] = 0.5
    for organ, size in sizes.items():
        box = expand_box(organ_box(label == organ), label.shape, (2, 2, 2))
        size = window_size_for(box, size)
        start = window_start(box_centre(box), size)
        window = crop_window(onehot[:, organ : organ + 1], start, size, pad="zeros")
        assert int(window.sum()) == int((label == organ).sum()), organ  # the whole organ is in its window
        centre = [s + (n - 1) / 2 for s, n in zip(start, size)]
        assert all(abs(c - b) <= 0.5 for c, b in zip(centre, box_centre(box))), organ
        paste_window_max(merged[:, organ : organ + 1], window, start)
    assert torch.equal(merged.argmax(1)[0], label.long())


def test_windows_round_trip_on_a_synthetic_label_map():
    label = label_map()
    label[38, 1, 1] = 0
    _round_trip(label, {1: (16, 16, 8), 2: (8, 8, 8), 3: (16, 16, 16)})


@pytest.mark.skipif(not OPENKBP_PATIENT.is_dir(), reason=f"OpenKBP patient not found at {OPENKBP_PATIENT}")
def test_windows_round_trip_on_a_real_openkbp_case(tmp_path):
    import shutil

    import nibabel as nib

    from custom_networks.ops.components import largest_component
    from scripts.prepare_openkbp import prepare

    shutil.copytree(OPENKBP_PATIENT, tmp_path / "src" / "validation-pats" / "pt_201")
    prepare(str(tmp_path / "src"), str(tmp_path / "data"), workers=1, log=None)
    label = torch.as_tensor(nib.load(str(tmp_path / "data" / "labels" / "pt_201.nii.gz")).get_fdata()).long()
    for organ in range(1, int(label.max()) + 1):  # the windows hold each organ's largest component
        label[(label == organ) & ~torch.as_tensor(largest_component((label == organ).numpy()))] = 0
    # the bundle's window sizes (train.json), some smaller than the organ on one axis (grown at inference)
    _round_trip(label, {1: (24, 24, 48), 2: (24, 40, 112), 3: (24, 32, 48), 4: (24, 32, 48), 5: (48, 40, 56),
                        6: (24, 24, 64), 7: (24, 24, 40)})


def test_organ_windowd_centres_on_the_organ_jitters_per_axis_and_binarises():
    label = label_map()[None].float()
    image = torch.rand(1, 40, 36, 20)
    centred = OrganWindowd(["image", "label"], organ_label=3, spatial_size=(16, 16, 8), min_margin=(2, 2, 2), jitter=0)
    out = centred({"image": image, "label": label})
    assert out["image"].shape == (1, 16, 16, 8) and set(out["label"].unique().tolist()) == {0.0, 1.0}
    assert int(out["label"].sum()) == int((label == 3).sum())
    start = window_start(box_centre(expand_box(organ_box(label[0] == 3), label.shape[1:], (2, 2, 2))), (16, 16, 8))
    assert torch.equal(out["image"], crop_window(image[None], start, (16, 16, 8))[0])  # unscaled, centred
    jittered = OrganWindowd(["image", "label"], organ_label=3, spatial_size=(16, 16, 8), min_margin=(2, 2, 2),
                            jitter=(0, 0, 3), num_samples=8)
    jittered.set_random_state(0)
    samples = jittered({"image": image, "label": label})
    assert len(samples) == 8
    offsets = set()
    for s in samples:  # only z moves: the in-plane window is the centred one
        found = [dz for dz in range(-3, 4) if torch.equal(s["image"], crop_window(
            image[None], (start[0], start[1], start[2] + dz), (16, 16, 8))[0])]
        assert found, "a window not on the centred in-plane position"
        offsets.add(found[0])
    assert len(offsets) > 1
