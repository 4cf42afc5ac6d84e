"""What every CT bundle must do, run for each: train / evaluate / infer on tiny synthetic CT, geometry kept,
metadata and network checks, and the real DICOM series (skipped when ``../shared/data`` is absent)."""

from __future__ import annotations

import csv
import json
import shutil
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import verify_metadata, verify_net_in_out

from scripts.common.registry import tiny
from tests.bundle_configs.helpers import BundleUnderTest, assert_label_map_like, compress_tiny, error_chain, run
from tests.conftest import REPO, SHARED_DATA

#: bundle -> (tiny overrides, data fixture, channel name, spatial multiple)
CT_BUNDLES = {
    "lower_limb_afu_unet": (tiny("lower_limb_afu_unet"), "lower_limb_data", "bone", 8),
    "spine_msr_attention_unet": (tiny("spine_msr_attention_unet"), "spine_data", "spine", 16),
}
EXAMPLE = SHARED_DATA / "totalsegmentator_example"
needs_shared = pytest.mark.skipif(not EXAMPLE.is_dir(), reason=f"real CT example data not found at {EXAMPLE}")


def ct_bundle(name: str) -> BundleUnderTest:
    return BundleUnderTest(name, {**CT_BUNDLES[name][0], "slices_per_volume": 2, "val_interval": 1})


@pytest.fixture(scope="module", params=list(CT_BUNDLES))
def case(request, tmp_path_factory):
    """A bundle, its tiny data set, and a checkpoint from two epochs of its real train.json."""
    bundle = ct_bundle(request.param)
    data = request.getfixturevalue(CT_BUNDLES[request.param][1])
    ckpt = tmp_path_factory.mktemp(f"{request.param}_models")
    run(bundle.workflow(["train.json"], "train", dataset_dir=str(data), ckpt_dir=str(ckpt),
                        output_dir=str(ckpt / "tb"), max_epochs=2))
    return SimpleNamespace(bundle=bundle, data=data, ckpt=ckpt, channel=CT_BUNDLES[request.param][2],
                           multiple=CT_BUNDLES[request.param][3])


def _testing_image(data):
    return data / json.loads((data / "datalist.json").read_text())["testing"][0]["image"]


@pytest.mark.slow
def test_train_writes_loadable_weights(case):
    state = torch.load(case.ckpt / "model.pt", weights_only=True)
    net = case.bundle.workflow(["inference.json"], "infer").parser.get_parsed_content("network_def")
    assert set(state) == set(net.state_dict())
    net.load_state_dict(state)


@pytest.mark.slow
def test_rerun_with_more_epochs_resumes_from_the_last_epoch(case, tmp_path):
    """The same train.json command with a larger --max_epochs continues at epoch 3 (issue 10)."""
    ckpt = tmp_path / "models"
    shutil.copytree(case.ckpt, ckpt)
    run(case.bundle.workflow(["train.json"], "train", dataset_dir=str(case.data), ckpt_dir=str(ckpt),
                             output_dir=str(ckpt / "tb"), max_epochs=3))
    state = torch.load(ckpt / "checkpoint.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 3 * state["trainer"]["epoch_length"]
    assert {"network", "optimizer", "lr_scheduler", "rng", "best_metric", "best_model_saver"} <= set(state)
    torch.load(ckpt / "model.pt", weights_only=True)


@pytest.mark.slow
def test_evaluate_writes_metrics_and_overlays(case, tmp_path):
    run(case.bundle.workflow(["train.json", "evaluate.json"], "eval", dataset_dir=str(case.data),
                             ckpt_dir=str(case.ckpt), output_dir=str(tmp_path)))
    summary = dict(csv.reader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert set(summary) == {"val_mean_dice", "val_mean_iou", "val_precision", "val_recall", "val_hd_mm", "val_hd95_mm"}
    rows = list(csv.DictReader((tmp_path / "val_mean_dice_raw.csv").read_text().splitlines()))
    assert len(rows) == 1 and set(rows[0]) == {"filename", "class0", "mean"}  # class0: the sigmoid channel
    assert 0.0 <= float(rows[0]["class0"]) <= 1.0
    assert len(list((tmp_path / "overlays").glob("*.png"))) == 3


@pytest.mark.slow
def test_inference_writes_label_map_in_input_geometry(case, tmp_path):
    image = _testing_image(case.data)
    run(case.bundle.workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(case.ckpt),
                             output_dir=str(tmp_path)))
    assert_label_map_like(tmp_path, image, {0, 1})


@pytest.mark.slow
def test_compressed_weights_run_through_the_unchanged_inference_config(case, tmp_path):
    """scripts.compress on AFU-Net (DASP, attention fusion) / MSR-attention U-Net (Res2Net splits), then inference.json."""
    compress_tiny(case.bundle, case.ckpt, case.data, tmp_path / "compressed")
    image = _testing_image(case.data)
    run(case.bundle.workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(tmp_path / "compressed"),
                             output_dir=str(tmp_path / "out")))
    assert_label_map_like(tmp_path / "out", image, {0, 1})


@pytest.mark.slow
def test_check_properties_all_configs(case):
    for files, kind in [(["train.json"], "train"), (["train.json", "evaluate.json"], "eval"),
                        (["inference.json"], "infer")]:
        wf = case.bundle.workflow(files, kind, dataset_dir=str(case.data), ckpt_dir=str(case.ckpt))
        wf.initialize()
        assert wf.check_properties() == [], files


@pytest.mark.parametrize("name", list(CT_BUNDLES))
def test_preprocessing_is_shared_between_train_and_inference(name):
    bundle = ct_bundle(name)
    train = bundle.workflow(["train.json"], "train").parser
    infer = bundle.workflow(["inference.json"], "infer").parser
    steps = [t for t in train["train"]["deterministic_transforms"] if t["_target_"] != "MapLabelValued"]
    strip = lambda t: {k: v for k, v in t.items() if k not in ("keys", "num_classes", "require_foreground", "mode")}  # noqa: E731
    inf = infer["preprocessing"]["transforms"] + infer["inferer"]["transform"]["transforms"]  # scan, then slabs
    assert [strip(t) for t in steps] == [strip(t) for t in inf]
    assert train["network_def"] == infer["network_def"]
    for key in ("window_min", "window_max", "pixdim"):
        assert train[key] == infer[key]


@pytest.mark.parametrize("name", list(CT_BUNDLES))
def test_metadata_verifies_offline(name):
    configs = ct_bundle(name).configs
    verify_metadata(meta_file=str(configs / "metadata.json"), filepath=str(REPO / "bundles" / "meta_schema.json"))
    pred = json.loads((configs / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"]
    assert pred["channel_def"] == {"0": CT_BUNDLES[name][2]} and pred["num_channels"] == 1


@pytest.mark.parametrize("name", list(CT_BUNDLES))
def test_verify_net_in_out(name):
    configs = ct_bundle(name).configs
    verify_net_in_out(net_id="network_def", meta_file=str(configs / "metadata.json"),
                      config_file=str(configs / "inference.json"), n=2, any=CT_BUNDLES[name][3],
                      **{"network_def#features": CT_BUNDLES[name][0]["network_def#features"]})


# ---- the real DICOM series --------------------------------------------------------------------------------
@needs_shared
@pytest.mark.slow
def test_inference_on_real_dicom_series_keeps_its_geometry(case, tmp_path):
    run(case.bundle.workflow(["inference.json"], "infer", datalist=[str(EXAMPLE / "example_ct_dicom")],
                             ckpt_dir=str(case.ckpt), output_dir=str(tmp_path)))
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
@pytest.mark.slow
def test_broken_dicom_folder_stops_inference_with_a_clear_error(case, tmp_path, fault):
    import pydicom

    folder = tmp_path / "series"
    shutil.copytree(EXAMPLE / "example_ct_dicom", folder)
    files = sorted(folder.iterdir(),
                   key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
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
    wf = case.bundle.workflow(["inference.json"], "infer", datalist=[str(folder)], ckpt_dir=str(case.ckpt),
                              output_dir=str(out))
    wf.initialize()
    with pytest.raises(Exception) as e:
        wf.run()
    assert str(folder) in error_chain(e.value) and expected in error_chain(e.value)
    assert not out.exists() or not any(out.iterdir())
