"""A 2D bundle's label map lies on its input voxel for voxel: ``inference.json`` on a volume stored in LPS order
(so that ``Orientationd`` flips it, and ``Invertd`` must flip it back) with a square slice (so that a transposed
map keeps its shape), by a network fitted to label the volume's intensity bands, gives back those bands where the
input has them. A map flipped or transposed under the right affine fails.

The network is fitted on exactly what it sees in ``inference.json`` (the bundle's preprocessing and its slab
transform, sliced along the inferer's axis), to bands of equal voxel counts; the intensities lie inside the CT
window and the in-plane spacing is the bundle's, so no clipping or resampling moves a band edge.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from scripts.common.registry import tiny
from tests.bundle_configs.helpers import BundleUnderTest, fit_to_labels, run

#: bundle -> (intensity bands fitted, in-plane spacing of the test volume in mm); two bands fit in a few steps
BUNDLES = {"knee_eas_unet": (2, 0.5), "lower_limb_afu_unet": (2, 0.8), "spine_msr_attention_unet": (2, 0.8)}


def _bands(values: np.ndarray | torch.Tensor, classes: int, reference=None) -> torch.Tensor:
    """Class ids of ``values`` by the quantile bands of ``reference`` (default: ``values``), equal voxel counts."""
    values = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    reference = values if reference is None else torch.as_tensor(np.asarray(reference), dtype=torch.float32)
    edges = torch.quantile(reference.flatten()[::7], torch.linspace(0, 1, classes + 1)[1:-1])
    return torch.bucketize(values, edges)


def _volume(path, spacing: float) -> np.ndarray:
    """A smooth random field of -400 to 1400 (HU inside the CT window, air included; or MR signal), 64 x 64 x 12,
    saved in LPS order."""
    field = ndi.gaussian_filter(np.random.default_rng(0).standard_normal((64, 64, 12)), (5, 5, 1.5))
    field = (field - field.min()) / (field.max() - field.min()) * 1800 - 400
    affine = np.diag([-spacing, -spacing, 2.5, 1.0])
    affine[:3, 3] = (20.0, -15.0, 40.0)
    nib.save(nib.Nifti1Image(field.astype(np.float32), affine), str(path))
    return field


@pytest.mark.parametrize("name", BUNDLES)
@pytest.mark.slow
def test_label_map_lines_up_with_its_input_voxel_for_voxel(name, tmp_path):
    classes, spacing = BUNDLES[name]
    bundle = BundleUnderTest(name, tiny(name))
    field = _volume(tmp_path / "volume.nii.gz", spacing)
    parser = bundle.parser(["inference.json"])
    seen = parser.get_parsed_content("inferer#transform")(
        parser.get_parsed_content("preprocessing")({"image": str(tmp_path / "volume.nii.gz")}))["image"]
    axis = parser.get_parsed_content("inferer#inferer#spatial_dim")
    slices = torch.movedim(seen.as_tensor()[0], axis, 0)[:, None]  # (slices, 1, H, W), padding included
    target = _bands(slices, classes, reference=torch.movedim(seen.as_tensor()[0], axis, 0)[
        (slice(None),) + tuple(slice(0, n) for n in np.delete(field.shape, axis))])
    torch.manual_seed(0)
    net = fit_to_labels(parser.get_parsed_content("network_def"), slices, target, steps=60)
    (tmp_path / "ckpt").mkdir()
    torch.save(net.state_dict(), tmp_path / "ckpt" / "model.pt")

    run(bundle.workflow(["inference.json"], "infer", datalist=[str(tmp_path / "volume.nii.gz")],
                        ckpt_dir=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "out")))
    out = nib.load(next((tmp_path / "out").glob("*_seg.nii.gz")))
    np.testing.assert_allclose(out.affine, nib.load(tmp_path / "volume.nii.gz").affine, atol=1e-4)
    labels = np.asarray(out.dataobj)
    expected = _bands(field, classes).numpy()
    agreement = float((labels == expected).mean())
    misplaced = {"flipped x": labels[::-1], "flipped y": labels[:, ::-1], "transposed": labels.transpose(1, 0, 2)}
    worst = {k: float((v == expected).mean()) for k, v in misplaced.items()}
    print(f"{name}: label map = intensity bands on {agreement:.3f} of the voxels; misplaced: {worst}")
    assert agreement > 0.8, agreement  # a fitted network, not a perfect one; a misplaced map scores about 0.5
    assert all(a < agreement - 0.15 for a in worst.values()), worst  # the check tells a misplaced map apart
