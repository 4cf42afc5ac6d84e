"""LargeSliceInferer: whole slices as SliceInferer does, sliding windows within slices that are too large."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.inferers import SliceInferer

from custom_networks.engine.inferers import LargeSliceInferer
from tests.bundle_configs.helpers import run
from tests.bundle_configs.test_knee_eas_unet import KNEE


def test_small_slices_are_segmented_whole_exactly_as_slice_inferer():
    net = torch.nn.Conv2d(1, 2, 3, padding=1)
    x = torch.rand(1, 1, 4, 32, 24)
    torch.testing.assert_close(LargeSliceInferer(0, roi_size=(-1, -1), progress=False)(x, net),
                               SliceInferer(0, roi_size=(-1, -1), progress=False)(x, net), rtol=0, atol=0)


def test_large_slices_go_through_windows_that_tile_the_whole_slice():
    """A pointwise network gives the same output in windows as whole: the windows cover every pixel once blended."""
    net = torch.nn.Conv2d(1, 2, 1)
    x = torch.rand(1, 1, 3, 100, 70)
    inferer = LargeSliceInferer(0, roi_size=(-1, -1), max_slice_pixels=1000, window=(32, 32), progress=False)
    with pytest.warns(UserWarning, match="100x70 pixels exceed max_slice_pixels=1000.*windows of 32x32"):
        windowed = inferer(x, net)
    torch.testing.assert_close(windowed, net(x.permute(0, 2, 1, 3, 4)[0]).unsqueeze(0).permute(0, 2, 1, 3, 4),
                               rtol=1e-5, atol=1e-6)
    assert inferer.orig_roi_size == (-1, -1)  # the next volume starts whole again


def test_bundle_inference_on_a_volume_with_oversized_slices(knee_data, tmp_path):
    """The knee inference.json, told that 64x64 is the most it may segment whole, still writes a full label map."""
    image = knee_data / json.loads((knee_data / "datalist.json").read_text())["testing"][0]["image"]
    net = KNEE.workflow(["inference.json"], "infer").parser.get_parsed_content("network_def")
    torch.save(net.state_dict(), tmp_path / "model.pt")
    with pytest.warns(UserWarning, match="sliding windows of 32x32"):
        run(KNEE.workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(tmp_path),
                          output_dir=str(tmp_path / "out"), max_slice_pixels=64 * 64, **{"inferer#inferer#window": [32, 32]}))
    out = nib.load(next((tmp_path / "out").glob("*_seg.nii.gz")))
    assert out.shape == nib.load(image).shape
    assert set(np.unique(np.asarray(out.dataobj)).tolist()) <= {0, 1, 2}
