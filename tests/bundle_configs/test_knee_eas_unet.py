"""The knee EAS U-Net bundle end to end on tiny synthetic data (CPU, small widths)."""

from __future__ import annotations

import csv
import json
import subprocess

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import verify_metadata, verify_net_in_out

from custom_networks.bundle.datalist import DatalistError
from scripts.common.registry import tiny
from tests.bundle_configs.helpers import BundleUnderTest, assert_label_map_like, compress_tiny, error_chain, run
from tests.bundle_configs.helpers import write_nifti as _write
from tests.conftest import PYTHON, REPO, subprocess_env

KNEE = BundleUnderTest("knee_eas_unet", {**tiny("knee_eas_unet"), "slices_per_volume": 2, "val_interval": 1})
BUNDLE, CONFIGS, TINY_CLI, workflow = KNEE.root, KNEE.configs, KNEE.tiny_cli, KNEE.workflow


@pytest.fixture(scope="module")
def trained(knee_data, tmp_path_factory):
    """Train one epoch with the real train.json; returns the checkpoint dir."""
    ckpt = tmp_path_factory.mktemp("knee_models")
    run(workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(ckpt),
                 output_dir=str(ckpt / "tb"), max_epochs=1))
    return ckpt


@pytest.mark.slow
def test_same_seed_and_config_give_bit_identical_weights(trained, knee_data, tmp_path):
    """train.json seeds MONAI's determinism: a second one-epoch run on the CPU reproduces every weight bit for bit."""
    run(workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(tmp_path),
                 output_dir=str(tmp_path / "tb"), max_epochs=1))
    first, second = (torch.load(d / "model.pt", weights_only=True) for d in (trained, tmp_path))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_train_writes_loadable_weights(trained):
    state = torch.load(trained / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    net = workflow(["inference.json"], "infer").parser.get_parsed_content("network_def")
    assert set(state) == set(net.state_dict())
    net.load_state_dict(state)


@pytest.mark.slow
def test_evaluate_writes_per_class_metrics_and_overlays(trained, knee_data, tmp_path):
    run(workflow(["train.json", "evaluate.json"], "eval", dataset_dir=str(knee_data), ckpt_dir=str(trained),
                 output_dir=str(tmp_path)))
    summary = dict(csv.reader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert set(summary) == {"val_mean_dice", "val_mean_iou", "val_precision", "val_recall", "val_hd_mm", "val_hd95_mm"}
    testing = json.loads((knee_data / "datalist.json").read_text())["testing"]
    rows = list(csv.DictReader((tmp_path / "val_mean_dice_raw.csv").read_text().splitlines()))
    assert len(rows) == len(testing)
    assert set(rows[0]) == {"filename", "class0", "class1", "mean"}  # femoral, tibial cartilage
    overlays = sorted((tmp_path / "overlays").glob("*.png"))
    assert len(overlays) == 3 * len(testing)
    dice = [float(rows[0]["class0"]), float(rows[0]["class1"])]
    assert all(0.0 <= d <= 1.0 for d in dice)


@pytest.mark.slow
def test_inference_writes_label_map_with_input_geometry(trained, knee_data, tmp_path):
    image = knee_data / json.loads((knee_data / "datalist.json").read_text())["testing"][0]["image"]
    run(workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(trained), output_dir=str(tmp_path)))
    out = nib.load(next(tmp_path.glob("*_seg.nii.gz")))
    src = nib.load(image)
    assert out.shape == src.shape
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
    assert set(np.unique(np.asarray(out.dataobj)).tolist()) <= {0, 1, 2}


@pytest.mark.slow
def test_compressed_weights_run_through_the_unchanged_inference_config(trained, knee_data, tmp_path):
    """scripts.compress on the EAS U-Net (separable convs, ECA, deep-supervision heads), then inference.json."""
    compress_tiny(KNEE, trained, knee_data, tmp_path / "compressed")
    image = knee_data / json.loads((knee_data / "datalist.json").read_text())["testing"][0]["image"]
    run(workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(tmp_path / "compressed"),
                 output_dir=str(tmp_path / "out")))
    assert_label_map_like(tmp_path / "out", image, {0, 1, 2})


@pytest.mark.slow
def test_inference_matches_evaluation_prediction_geometry(trained, knee_data, tmp_path):
    """Running from inside the bundle folder with the CLI gives the same label map as in-process."""
    image = knee_data / json.loads((knee_data / "datalist.json").read_text())["testing"][0]["image"]
    cmd = [PYTHON, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
           f"--datalist=['{image}']", f"--ckpt_dir={trained}", f"--output_dir={tmp_path / 'cli'}", *TINY_CLI]
    subprocess.run(cmd, cwd=BUNDLE, env=subprocess_env(), check=True, capture_output=True)
    run(workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(trained),
                 output_dir=str(tmp_path / "api")))
    cli = np.asarray(nib.load(next((tmp_path / "cli").glob("*_seg.nii.gz"))).dataobj)
    api = np.asarray(nib.load(next((tmp_path / "api").glob("*_seg.nii.gz"))).dataobj)
    np.testing.assert_array_equal(cli, api)


@pytest.mark.slow
def test_train_from_repo_root_with_cli(knee_data, tmp_path):
    cmd = [PYTHON, "-m", "monai.bundle", "run", "--config_file", "bundles/knee_eas_unet/configs/train.json",
           f"--dataset_dir={knee_data}", f"--ckpt_dir={tmp_path}", f"--output_dir={tmp_path / 'tb'}",
           "--max_epochs=1", *TINY_CLI]
    subprocess.run(cmd, cwd=REPO, env=subprocess_env(), check=True, capture_output=True)
    assert (tmp_path / "model.pt").is_file()


def test_train_without_data_says_how_to_make_it(tmp_path):
    cmd = [PYTHON, "-m", "monai.bundle", "run", "--config_file", "bundles/knee_eas_unet/configs/train.json",
           f"--dataset_dir={tmp_path / 'nothing_here'}", f"--ckpt_dir={tmp_path}", *TINY_CLI]
    proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode != 0
    assert "python -m scripts.demo_data knee_eas_unet" in proc.stderr
    assert "--dataset_dir" in proc.stderr
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.slow
def test_two_process_torchrun_gloo_through_the_multi_node_rendezvous(knee_data, tmp_path):
    """The README's multi-node command (c10d rendezvous), as one node of two processes."""
    configs = f"['{CONFIGS / 'train.json'}','{CONFIGS / 'multi_gpu_train.json'}']"
    cmd = [PYTHON, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--rdzv_backend=c10d",
           "--rdzv_endpoint=localhost:29517", "--rdzv_id=knee-test",
           "-m", "monai.bundle", "run", "--config_file", configs, f"--dataset_dir={knee_data}",
           f"--ckpt_dir={tmp_path}", f"--output_dir={tmp_path / 'tb'}", "--max_epochs=1", *TINY_CLI,
           # two validation cases so each rank gets one
           "--validate#dataset#data=$custom_networks.bundle.datalist.load_datalist(@datalist, 'training')"]
    env = {**subprocess_env(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)


@pytest.mark.slow
def test_check_properties_all_configs(knee_data, trained):
    for files, kind in [(["train.json"], "train"), (["train.json", "evaluate.json"], "eval"),
                        (["inference.json"], "infer")]:
        wf = workflow(files, kind, dataset_dir=str(knee_data), ckpt_dir=str(trained))
        wf.initialize()
        assert wf.check_properties() == [], files


def test_preprocessing_is_shared_between_train_and_inference():
    """train's deterministic transforms and inference's preprocessing are the same steps, same settings."""
    train = workflow(["train.json"], "train").parser
    infer = workflow(["inference.json"], "infer").parser
    label_only = {"MapLabelValued"}
    steps = [t for t in train["train"]["deterministic_transforms"] if t["_target_"] not in label_only]
    inf = infer["preprocessing"]["transforms"] + infer["inferer"]["transform"]["transforms"]  # scan, then slabs
    strip = lambda t: {k: v for k, v in t.items() if k not in ("keys", "num_classes", "require_foreground")}  # noqa: E731
    assert [strip(t) for t in steps] == [strip(t) for t in inf]
    assert train["network_def"] == infer["network_def"]


def test_metadata_verifies_offline_and_names_classes():
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(REPO / "bundles" / "meta_schema.json"))
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert pred["channel_def"] == {"0": "background", "1": "femoral_cartilage", "2": "tibial_cartilage"}
    assert len(pred["spatial_shape"]) == 2


def test_verify_net_in_out():
    verify_net_in_out(net_id="network_def", meta_file=str(CONFIGS / "metadata.json"),
                      config_file=str(CONFIGS / "inference.json"), n=2, any=16,
                      **tiny("knee_eas_unet"))


# ---- clear errors for bad input ---------------------------------------------------------------------------


def test_missing_image_file_names_the_entry(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    label = _write(tmp_path / "imagesTr" / "knee_label.nii.gz", np.zeros((32, 32, 8), np.uint8))
    bad = tmp_path / "datalist.json"
    bad.write_text(json.dumps({"training": [{"image": "imagesTr/not_there.nii.gz", "label": label}]}))
    with pytest.raises(DatalistError, match="not_there.nii.gz"):
        from custom_networks.bundle.datalist import load_datalist

        load_datalist(str(bad), "training")


def test_image_label_shape_mismatch_is_refused(tmp_path):
    img = _write(tmp_path / "img.nii.gz", np.zeros((32, 32, 8), np.float32))
    lab = _write(tmp_path / "lab.nii.gz", np.zeros((32, 32, 9), np.uint8))
    (tmp_path / "datalist.json").write_text(json.dumps({"training": [{"image": img, "label": lab}]}))
    wf = workflow(["train.json"], "train", dataset_dir=str(tmp_path), ckpt_dir=str(tmp_path / "m"))
    wf.initialize()
    with pytest.raises(Exception) as e:
        wf.run()
    assert "lab.nii.gz has shape (32, 32, 9) but the image" in error_chain(e.value)
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_2d_image_given_to_volume_pipeline_is_refused(trained, tmp_path):
    img = _write(tmp_path / "slice.nii.gz", np.zeros((64, 64), np.float32))
    wf = workflow(["inference.json"], "infer", datalist=[img], ckpt_dir=str(trained), output_dir=str(tmp_path / "o"))
    wf.initialize()
    with pytest.raises(Exception) as e:
        wf.run()
    assert "slice.nii.gz has 2 dimensions (64, 64): this pipeline takes whole 3D volumes" in error_chain(e.value)
    assert not any((tmp_path / "o").glob("*")) if (tmp_path / "o").exists() else True
