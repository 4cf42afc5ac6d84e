"""What only the lower-limb AFU-Net bundle does: bone-ratio crops, Dice + 0.5 Focal with a poly schedule, STL
surfaces. The steps every CT bundle shares are in ``test_ct_bundles.py``."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
import trimesh

from tests.bundle_configs.helpers import run
from tests.bundle_configs.test_ct_bundles import ct_bundle

LOWER_LIMB = ct_bundle("lower_limb_afu_unet")
workflow = LOWER_LIMB.workflow


@pytest.fixture(scope="module")
def trained(lower_limb_data, tmp_path_factory):
    """Two epochs of the real train.json on the tiny phantoms; returns the checkpoint dir."""
    ckpt = tmp_path_factory.mktemp("lower_limb_models")
    wf = workflow(["train.json"], "train", dataset_dir=str(lower_limb_data), ckpt_dir=str(ckpt),
                  output_dir=str(ckpt / "tb"), max_epochs=2)
    run(wf)
    # the poly schedule stepped once per epoch: lr * (1 - 2/2) ** 0.9 after the last one
    assert wf.parser.get_parsed_content("optimizer").param_groups[0]["lr"] == pytest.approx(0.0)
    return ckpt


def test_training_samples_are_bone_ratio_crops(lower_limb_data):
    """The random part of train.json yields 128x128 2D crops drawn with the paper's bone-ratio rule."""
    parser = workflow(["train.json"], "train", dataset_dir=str(lower_limb_data)).parser
    samples = parser.get_parsed_content("train#dataset")[0]
    assert len(samples) == 2  # slices_per_volume
    for s in samples:
        assert s["image"].shape == (1, 128, 128) and s["label"].shape == (1, 128, 128)
        assert set(torch.unique(s["label"]).tolist()) <= {0.0, 1.0}
    crop = next(t for t in parser.get_parsed_content("train#random_transforms")
                if type(t).__name__ == "RandBoneRatioCropd")
    assert list(crop.spatial_size) == [128, 128] and crop.max_attempts == 100
    assert crop.last_sample["accepted"] and crop.last_sample["ratio"] >= 0.2


def test_loss_and_schedule_are_the_papers():
    parser = workflow(["train.json"], "train").parser
    loss = parser.get_parsed_content("loss")
    assert type(loss).__name__ == "DiceFocalLoss" and loss.lambda_focal == 0.5 and loss.lambda_dice == 1.0
    assert loss.focal.gamma == 2.0 and loss.focal.alpha == 0.25
    assert parser["learning_rate"] == 0.001 and parser["poly_power"] == 0.9
    sched = parser.get_parsed_content("lr_scheduler")
    assert type(sched).__name__ == "PolynomialLR" and sched.total_iters == parser["max_epochs"]


@pytest.mark.slow
def test_inference_writes_an_stl_surface_in_the_ct_frame(trained, lower_limb_data, tmp_path):
    datalist = json.loads((lower_limb_data / "datalist.json").read_text())
    image = lower_limb_data / datalist["testing"][0]["image"]
    run(workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(trained),
                 output_dir=str(tmp_path), save_mesh=True, mesh_min_component_voxels=0))
    src = nib.load(image)
    seg = np.asarray(nib.load(next(tmp_path.glob("*_seg.nii.gz"))).dataobj)
    mesh = trimesh.load(next(tmp_path.glob("*_seg.stl")))
    assert (len(mesh.faces) > 0) == bool(seg.any())
    if seg.any():
        # inside the volume's world box (LPS = RAS with x, y negated), up to half a voxel past the border
        # voxel centres (the surface is closed at the border)
        half_voxel = np.abs(src.affine[:3, :3]).sum(1) / 2 + 1e-3
        ijk = np.array([[i, j, k, 1] for i in (0, seg.shape[0] - 1) for j in (0, seg.shape[1] - 1)
                        for k in (0, seg.shape[2] - 1)])
        lps = (ijk @ src.affine.T)[:, :3] * [-1, -1, 1]
        assert np.all(mesh.vertices >= lps.min(0) - half_voxel) and np.all(mesh.vertices <= lps.max(0) + half_voxel)
