"""The lower-limb AFU-Net bundle end to end: tiny synthetic CT, and the real DICOM series when present."""

from __future__ import annotations

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
import trimesh
from monai.bundle import verify_metadata, verify_net_in_out

from tests.bundles.helpers import BundleUnderTest, error_chain, run
from tests.conftest import REPO, SHARED_DATA

LOWER_LIMB = BundleUnderTest("lower_limb_afu_unet", {"network_def#features": [4, 8, 16, 32], "slices_per_volume": 2,
                                                     "val_interval": 1})
workflow = LOWER_LIMB.workflow
CONFIGS = LOWER_LIMB.configs
EXAMPLE = SHARED_DATA / "totalsegmentator_example"
needs_shared = pytest.mark.skipif(not EXAMPLE.is_dir(), reason=f"real CT example data not found at {EXAMPLE}")


@pytest.fixture(scope="module")
def trained(lower_limb_data, tmp_path_factory):
    """One epoch of the real train.json on the tiny phantoms; returns the checkpoint dir."""
    ckpt = tmp_path_factory.mktemp("lower_limb_models")
    wf = workflow(["train.json"], "train", dataset_dir=str(lower_limb_data), ckpt_dir=str(ckpt),
                  output_dir=str(ckpt / "tb"), max_epochs=2)
    run(wf)
    # the poly schedule ran once per epoch: lr * (1 - 2/2) ** 0.9 after the last one
    assert wf.parser.get_parsed_content("optimizer").param_groups[0]["lr"] == pytest.approx(0.0)
    return ckpt


def _testing_image(data):
    return data / json.loads((data / "datalist.json").read_text())["testing"][0]["image"]


def test_train_writes_loadable_weights(trained):
    state = torch.load(trained / "model.pt", weights_only=True)
    net = workflow(["inference.json"], "infer").parser.get_parsed_content("network_def")
    assert set(state) == set(net.state_dict())
    net.load_state_dict(state)


def test_training_samples_are_bone_ratio_crops(lower_limb_data):
    """The random part of train.json yields 128x128 2D crops that satisfy the paper's bone-ratio rule."""
    wf = workflow(["train.json"], "train", dataset_dir=str(lower_limb_data))
    parser = wf.parser
    samples = parser.get_parsed_content("train#dataset")[0]
    assert len(samples) == 2  # slices_per_volume
    for s in samples:
        assert s["image"].shape == (1, 128, 128) and s["label"].shape == (1, 128, 128)
        assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.5  # window, then +-photometric
        assert set(torch.unique(s["label"]).tolist()) <= {0.0, 1.0}
    crop = next(t for t in parser.get_parsed_content("train#random_transforms")
                if type(t).__name__ == "RandBoneRatioCropd")
    assert crop.spatial_size == [128, 128] and crop.max_attempts == 100


def test_evaluate_writes_bone_metrics_and_overlays(trained, lower_limb_data, tmp_path):
    run(workflow(["train.json", "evaluate.json"], "eval", dataset_dir=str(lower_limb_data), ckpt_dir=str(trained),
                 output_dir=str(tmp_path)))
    summary = dict(csv.reader(open(tmp_path / "metrics.csv")))
    assert set(summary) == {"val_mean_dice", "val_mean_iou", "val_precision", "val_recall", "val_hd_mm", "val_hd95_mm"}
    rows = list(csv.DictReader(open(tmp_path / "val_mean_dice_raw.csv")))
    assert len(rows) == 1 and set(rows[0]) == {"filename", "class0", "mean"}  # class0 = bone (sigmoid channel)
    assert 0.0 <= float(rows[0]["class0"]) <= 1.0
    assert len(list((tmp_path / "overlays").glob("*.png"))) == 3


def test_inference_writes_label_map_and_mesh_in_input_geometry(trained, lower_limb_data, tmp_path):
    image = _testing_image(lower_limb_data)
    run(workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(trained),
                 output_dir=str(tmp_path), save_mesh=True, mesh_min_component_voxels=0))
    src = nib.load(image)
    out = nib.load(next(tmp_path.glob("*_seg.nii.gz")))
    assert out.shape == src.shape and out.get_data_dtype() == np.uint8
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-4)
    seg = np.asarray(out.dataobj)
    assert set(np.unique(seg).tolist()) <= {0, 1}
    stl = next(tmp_path.glob("*_seg.stl"))
    mesh = trimesh.load(stl)
    if seg.any():
        # the mesh lies inside the volume's world box (LPS = RAS with x, y negated), voxel centres to half a
        # voxel beyond them (the surface closes at the border)
        half_voxel = np.abs(src.affine[:3, :3]).sum(1) / 2 + 1e-3
        corners = np.array([[i, j, k, 1] for i in (0, seg.shape[0] - 1) for j in (0, seg.shape[1] - 1)
                            for k in (0, seg.shape[2] - 1)]) @ src.affine.T
        lps = corners[:, :3] * [-1, -1, 1]
        assert np.all(mesh.vertices >= lps.min(0) - half_voxel) and np.all(mesh.vertices <= lps.max(0) + half_voxel)
    else:
        assert len(mesh.faces) == 0


def test_check_properties_all_configs(lower_limb_data, trained):
    for files, kind in [(["train.json"], "train"), (["train.json", "evaluate.json"], "eval"),
                        (["inference.json"], "infer")]:
        wf = workflow(files, kind, dataset_dir=str(lower_limb_data), ckpt_dir=str(trained))
        wf.initialize()
        assert wf.check_properties() == [], files


def test_preprocessing_is_shared_between_train_and_inference():
    train = workflow(["train.json"], "train").parser
    infer = workflow(["inference.json"], "infer").parser
    steps = [t for t in train["train"]["deterministic_transforms"] if t["_target_"] != "MapLabelValued"]
    strip = lambda t: {k: v for k, v in t.items() if k not in ("keys", "num_classes", "mode")}  # noqa: E731
    assert [strip(t) for t in steps] == [strip(t) for t in infer["preprocessing"]["transforms"]]
    assert train["network_def"] == infer["network_def"]
    for key in ("window_min", "window_max", "pixdim"):
        assert train[key] == infer[key]


def test_loss_and_schedule_are_the_papers():
    parser = workflow(["train.json"], "train").parser
    loss = parser.get_parsed_content("loss")
    assert type(loss).__name__ == "DiceFocalLoss" and loss.lambda_focal == 0.5 and loss.lambda_dice == 1.0
    assert loss.focal.gamma == 2.0 and loss.focal.alpha == 0.25
    assert parser["learning_rate"] == 0.001 and parser["poly_power"] == 0.9
    sched = parser.get_parsed_content("lr_scheduler")
    assert type(sched).__name__ == "PolynomialLR" and sched.total_iters == parser["max_epochs"]


def test_metadata_verifies_offline():
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(REPO / "bundles" / "meta_schema.json"))
    pred = json.loads((CONFIGS / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"]
    assert pred["channel_def"] == {"0": "bone"} and pred["num_channels"] == 1


def test_verify_net_in_out():
    verify_net_in_out(net_id="network_def", meta_file=str(CONFIGS / "metadata.json"),
                      config_file=str(CONFIGS / "inference.json"), n=4, any=8,
                      **{"network_def#features": [4, 8, 16, 32]})


# ---- the real DICOM series --------------------------------------------------------------------------------
@needs_shared
def test_inference_on_real_dicom_series_keeps_its_geometry(trained, tmp_path):
    run(workflow(["inference.json"], "infer", datalist=[str(EXAMPLE / "example_ct_dicom")], ckpt_dir=str(trained),
                 output_dir=str(tmp_path)))
    out = nib.load(tmp_path / "example_ct_dicom_seg.nii.gz")
    ref = nib.load(EXAMPLE / "example_seg_dicom.nii.gz")  # TotalSegmentator's labels on the same series
    assert out.shape == ref.shape == (512, 512, 20)
    # the same world grid (the two files may store it with different axis flips): the same voxel size and
    # the same eight corner voxel centres
    np.testing.assert_allclose(np.abs(out.affine[:3, :3]), np.abs(ref.affine[:3, :3]), atol=1e-5)
    ijk = np.array([[i, j, k, 1] for i in (0, 511) for j in (0, 511) for k in (0, 19)])
    corners = [np.round((ijk @ a.T)[:, :3], 3) for a in (out.affine, ref.affine)]
    np.testing.assert_allclose(*[c[np.lexsort(c.T)] for c in corners], atol=1e-3)


@needs_shared
@pytest.mark.parametrize("fault", ["missing_slice", "second_series"])
def test_broken_dicom_folder_stops_inference_with_a_clear_error(trained, tmp_path, fault):
    import pydicom

    folder = tmp_path / "series"
    shutil.copytree(EXAMPLE / "example_ct_dicom", folder)
    files = sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    if fault == "missing_slice":
        files[10].unlink()
        expected = "slices are missing"
    else:
        ds = pydicom.dcmread(files[0])
        ds.SeriesInstanceUID = "1.2.3.4.5"
        ds.SOPInstanceUID = "1.2.3.4.5.6"
        ds.save_as(folder / "other_series.dcm")
        expected = "holds 2 DICOM series"
    out = tmp_path / "out"
    wf = workflow(["inference.json"], "infer", datalist=[str(folder)], ckpt_dir=str(trained), output_dir=str(out))
    wf.initialize()
    with pytest.raises(Exception) as e:
        wf.run()
    assert str(folder) in error_chain(e.value) and expected in error_chain(e.value)
    assert not out.exists() or not any(out.iterdir())
