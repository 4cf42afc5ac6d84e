"""``scripts.prediction_overlay``: the results page's figure of a ``medseg-segment`` case, prediction (fill) against
reference contour (line), on a small synthetic case folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")
nib = pytest.importorskip("nibabel")

from custom_networks.apps.preview import PALETTE  # noqa: E402
from scripts.prediction_overlay import draw  # noqa: E402


def _case(tmp_path, reference: bool = True):
    """A 40 x 40 x 20 CT (soft tissue, 40 HU, in air) with organ 1 predicted as a cube and contoured as the same cube
    shifted by 3 voxels, written as ``medseg-segment --reference`` would leave it."""
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    ct = np.full((40, 40, 20), -1000, np.int16)
    ct[5:35, 5:35, 2:18] = 40
    pred, ref = np.zeros(ct.shape, np.uint8), np.zeros(ct.shape, np.uint8)
    pred[15:25, 15:25, 6:14] = 1
    ref[18:28, 15:25, 6:14] = 1
    for name, data in [("ct.nii.gz", ct), ("segmentation.nii.gz", pred), ("reference.nii.gz", ref)]:
        nib.save(nib.Nifti1Image(data, affine), str(tmp_path / name))
    stats = {"case": "toy", "input": str(tmp_path / "ct.nii.gz"), "bundle": "b", "bundle_version": "0",
             "label_map": "segmentation.nii.gz", "reference": str(tmp_path / "reference.nii.gz") if reference else None,
             "organs": {"organ_a": {"label": 1, "scored": True, "dice": 0.7}}}
    (tmp_path / "statistics.json").write_text(json.dumps(stats))
    return tmp_path


def _pixels_near(image: np.ndarray, colour, tolerance: float) -> int:
    return int((np.abs(image[..., :3].astype(float) - np.asarray(colour, float)).max(axis=-1) <= tolerance).sum())


def test_prediction_fill_and_reference_line_are_drawn_in_the_organ_colour(tmp_path):
    from PIL import Image

    out = draw(_case(tmp_path), tmp_path / "fig.png", views="axial:organ_a,sagittal:organ_a")
    image = np.asarray(Image.open(out).convert("RGB"))
    rows = image.shape[0]
    panels = image[int(0.12 * rows):int(0.8 * rows)]  # the figure's title is above, the legend's colours below
    colour = np.asarray(PALETTE[0], float)
    grey = 255 * (40 + 160) / 400  # 40 HU in the soft-tissue window [-160, 240] HU
    assert _pixels_near(panels, colour, 20) > 300, "no reference contour in the organ's colour"
    assert _pixels_near(panels, 0.55 * grey + 0.45 * colour, 12) > 3000, "no prediction fill (colour over the CT)"


def test_refuses_a_case_without_reference_or_an_organ_it_lacks(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="--reference"):
        draw(_case(tmp_path / "a", reference=False), tmp_path / "x.png")
    with pytest.raises(ValueError, match="organs: organ_a"):
        draw(_case(tmp_path / "b"), tmp_path / "y.png", views="axial:larynx")
