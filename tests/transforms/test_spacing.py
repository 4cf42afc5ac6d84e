"""GatherInverseSpacingd: ``Invertd(nearest_interp=True)`` through it gives MONAI's label map voxel for voxel
(synthetic grids of several shapes, spacings, flips and an oblique direction; a real OpenKBP CT when
``../shared/data`` is present), and falls back to MONAI's inverse where the gather does not apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd, Orientationd, Spacingd

from custom_networks.transforms.spacing import GatherInverseSpacingd, gather_nearest_inverse
from tests.conftest import SHARED_DATA

OPENKBP_CT = SHARED_DATA / "openkbp"
RAS = (("L", "R"), ("P", "A"), ("I", "S"))  # as the bundles pass it (MONAI warns of a changing default)


def _labels_on_working_grid(image: MetaTensor, pixdim, spacing_cls, padding_mode: str = "border") -> tuple:
    """Preprocess ``image`` (1, X, Y, Z) to ``pixdim``; a label map with many boundaries on the working grid,
    inverted to the input grid. Returns (inverted label map, its affine, the Spacingd used)."""
    pre = Compose([Orientationd("image", axcodes="RAS", labels=RAS),
                   spacing_cls("image", pixdim=pixdim, mode="bilinear", padding_mode=padding_mode)])
    d = pre({"image": image})
    work = d["image"]
    rng = np.random.default_rng(0)
    labels = torch.as_tensor(rng.integers(0, 8, work.shape, dtype=np.int64).astype(np.float32))
    pred = MetaTensor(labels, meta=dict(work.meta), applied_operations=list(work.applied_operations))
    out = Invertd("pred", transform=pre, orig_keys="image", nearest_interp=True)({**d, "pred": pred})["pred"]
    return out, out.affine, pre


def _image(shape, spacing, flip=(), rotation_deg: float = 0.0) -> MetaTensor:
    affine = np.diag([*spacing, 1.0])
    for axis in flip:
        affine[axis, axis] *= -1
    if rotation_deg:
        a = np.deg2rad(rotation_deg)
        rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        affine[:3, :3] = rot @ affine[:3, :3]
    affine[:3, 3] = [-100.0, 37.3, 12.1]
    return MetaTensor(torch.randn(1, *shape), affine=torch.as_tensor(affine))


@pytest.mark.parametrize("shape,spacing,pixdim,flip,rotation,padding", [
    ((512 // 4, 512 // 4, 50), (0.977, 0.977, 2.5), (3.906, 3.906, 2.5), (), 0.0, "border"),  # OpenKBP-like
    ((97, 83, 41), (1.3, 0.7, 3.0), (3.906, 3.906, 2.5), (0, 1), 0.0, "border"),  # odd sizes, flipped axes
    ((64, 60, 33), (1.0, 1.0, 1.0), (1.5, 0.6, 1.7), (2,), 0.0, "zeros"),  # up and down, zeros padding
    ((60, 50, 30), (0.9, 0.9, 2.0), (3.906, 3.906, 2.5), (), 17.0, "border"),  # oblique: rotated, same grid axes
])
def test_inverse_is_monais_voxel_for_voxel(shape, spacing, pixdim, flip, rotation, padding):
    image = _image(shape, spacing, flip, rotation)
    ours, ours_affine, _ = _labels_on_working_grid(image, pixdim, GatherInverseSpacingd, padding)
    monai_map, monai_affine, _ = _labels_on_working_grid(image, pixdim, Spacingd, padding)
    assert ours.shape == monai_map.shape == (1, *shape)
    assert int((ours != monai_map).sum()) == 0
    assert np.allclose(np.asarray(ours_affine), np.asarray(monai_affine), atol=1e-5)
    assert np.allclose(np.asarray(ours_affine), np.asarray(image.affine), atol=1e-5)  # back on the input grid
    assert len(ours.applied_operations) == len(monai_map.applied_operations) == 0


def test_at_exact_ties_only_the_tied_planes_may_differ():
    """Spacing 1 -> 2 mm puts every other output voxel centre exactly halfway between two working-grid voxels:
    the gather rounds those half to even, MONAI's dense grid goes either way with its float rounding. Everywhere
    else the two agree."""
    image = _image((20, 18, 33), (1.0, 1.0, 1.0), flip=(2,))
    ours, _, pre = _labels_on_working_grid(image, (1.0, 1.0, 2.0), GatherInverseSpacingd)
    monai_map, _, _ = _labels_on_working_grid(image, (1.0, 1.0, 2.0), Spacingd)
    work_affine = np.asarray(pre({"image": image})["image"].affine, dtype=np.float64)
    to_work = np.linalg.solve(work_affine, np.asarray(Orientationd("image", axcodes="RAS", labels=RAS)(
        {"image": image})["image"].affine, dtype=np.float64))
    z = to_work[2, 2] * np.arange(33) + to_work[2, 3]  # each output slice's coordinate on the working grid
    tied = np.isclose(z - np.floor(z), 0.5, atol=1e-9)
    assert tied.any() and not tied.all()
    differs = (ours != monai_map)[0].numpy().any(axis=(0, 1))
    assert not differs[~tied].any()


def test_a_bilinear_inverse_is_left_to_monai():
    image = _image((40, 30, 20), (1.0, 1.0, 2.0))
    t = GatherInverseSpacingd("image", pixdim=(2.0, 2.0, 2.0), mode="bilinear")
    work = t({"image": image})["image"]
    assert gather_nearest_inverse(t.spacing_transform.sp_resample, work) is None  # not nearest: MONAI's
    assert len(work.applied_operations) == 1  # and nothing was popped
    back = t.inverse({"image": work})["image"]
    assert back.shape == image.shape and len(back.applied_operations) == 0


@pytest.mark.skipif(not OPENKBP_CT.is_dir(), reason=f"OpenKBP not found at {OPENKBP_CT}")
def test_inverse_on_a_real_openkbp_ct_is_monais():
    """The first validation patient's CT (128^3 at about 3.5 x 3.5 x 2 mm), as prepare_openkbp reads it, at the
    bundle's working grid."""
    from scripts.prepare_openkbp import convert_case

    patient = next(p for p in sorted((OPENKBP_CT / "validation-pats").iterdir()) if p.is_dir())
    ct, _, affine, _ = convert_case(patient)
    image = MetaTensor(torch.as_tensor(ct[None].astype(np.float32)), affine=torch.as_tensor(affine))
    ours, _, _ = _labels_on_working_grid(image, (3.906, 3.906, 2.5), GatherInverseSpacingd)
    monai_map, _, _ = _labels_on_working_grid(image, (3.906, 3.906, 2.5), Spacingd)
    assert ours.shape == monai_map.shape == image.shape
    assert int((ours != monai_map).sum()) == 0
