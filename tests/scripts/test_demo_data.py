"""Tests of the synthetic knee MR demo data (scripts/demo_data.py, scripts/phantoms/knee)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from scripts import demo_data
from scripts.phantoms.io import MARKER_NAME, OutputDirError, split_counts
from scripts.phantoms.knee import (
    SHAPE,
    SPACING,
    knee_affine,
    render_knee_volume,
    volume_seed,
    write_knee_dataset,
)
from scripts.phantoms.knee.anatomy import AIR, FLUID, PAT_CART
from tests.scripts.phantom_helpers import (
    FOREIGN_FILES,
    assert_untouched,
    check_datalist,
    dataset_fixture,
    load_nifti,
    make_foreign_dir,
    run_demo_data,
)

EXPECTED_AFFINE_COLUMNS = np.array([[0.0, -0.7, 0.0], [0.0, 0.0, -0.7], [1.5, 0.0, 0.0]])

dataset = dataset_fixture(
    write_knee_dataset, "knee_demo", "Three volumes, seed 0, rendered in two worker processes.",
    num_volumes=3, seed=0, workers=2,
)


@pytest.fixture(scope="module")
def rendered():
    """Volume 0 of seed 0 rendered in-process, with the un-blurred tissue masks."""
    return render_knee_volume(np.random.default_rng(volume_seed(0, 0)), return_tissues=True)


def _labels(dataset):
    return sorted((dataset / "labelsTr").glob("knee_*.nii.gz"))


# ---------------------------------------------------------------------------------------------
# determinism and the CLI
# ---------------------------------------------------------------------------------------------


def test_cli_same_seed_gives_identical_bytes_and_rerun_is_idempotent(dataset, tmp_path):
    out = tmp_path / "cli"
    proc = run_demo_data("knee_eas_unet", out, "--num_volumes", 1)
    assert proc.returncode == 0, proc.stderr
    assert "[1/1] imagesTr/knee_000.nii.gz" in proc.stdout
    assert f"datalist: {out / 'datalist.json'}" in proc.stdout
    for sub in ("imagesTr", "labelsTr"):
        assert (out / sub / "knee_000.nii.gz").read_bytes() == (dataset / sub / "knee_000.nii.gz").read_bytes()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # a stale file recorded by an earlier run of the tool is removed on re-run, user files are kept
    marker = json.loads((out / MARKER_NAME).read_text())
    marker["files"].append("imagesTr/knee_005.nii.gz")
    (out / MARKER_NAME).write_text(json.dumps(marker))
    (out / "imagesTr" / "knee_005.nii.gz").write_bytes(b"stale")
    (out / "user_notes.txt").write_text("keep me")
    demo_data.main("knee_eas_unet", str(out), num_volumes=1, seed=0)  # re-run into its own output
    assert not (out / "imagesTr" / "knee_005.nii.gz").exists()
    assert (out / "user_notes.txt").read_text() == "keep me"
    (out / "user_notes.txt").unlink()
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before == after


def test_different_seed_gives_different_volume(dataset, rendered):
    img0, lab0, aff0 = rendered[:3]
    img1, lab1, _ = render_knee_volume(1)  # an int seed works too
    assert img1.shape == img0.shape and img1.dtype == np.float32 and lab1.dtype == np.uint8
    assert not np.array_equal(img0, img1)
    assert not np.array_equal(lab0, lab1)
    # volumes of one data set differ from each other too
    a = (dataset / "imagesTr" / "knee_000.nii.gz").read_bytes()
    b = (dataset / "imagesTr" / "knee_001.nii.gz").read_bytes()
    assert a != b


def test_files_match_the_renderer(dataset, rendered):
    img, lab, aff = rendered[:3]
    _, img_f = load_nifti(dataset / "imagesTr" / "knee_000.nii.gz")
    _, lab_f = load_nifti(dataset / "labelsTr" / "knee_000.nii.gz")
    np.testing.assert_array_equal(img_f, img)
    np.testing.assert_array_equal(lab_f, lab)


# ---------------------------------------------------------------------------------------------
# geometry and labels
# ---------------------------------------------------------------------------------------------


def test_geometry_and_header(dataset):
    np.testing.assert_allclose(knee_affine()[:3, :3], EXPECTED_AFFINE_COLUMNS.T)
    for sub in ("imagesTr", "labelsTr"):
        for path in sorted((dataset / sub).glob("*.nii.gz")):
            img, data = load_nifti(path)
            assert data.shape == SHAPE == (160, 160, 40)
            assert data.dtype == (np.float32 if sub == "imagesTr" else np.uint8)
            assert nib.aff2axcodes(img.affine) == ("P", "I", "R")
            np.testing.assert_allclose(img.header.get_zooms(), SPACING, atol=1e-6)
            np.testing.assert_allclose(img.affine[:3, :3], EXPECTED_AFFINE_COLUMNS.T, atol=1e-6)
            assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
            np.testing.assert_allclose(img.header.get_qform(), img.affine, atol=1e-5)
            np.testing.assert_allclose(img.header.get_sform(), img.affine, atol=1e-5)


def test_labels_values_and_both_classes(dataset):
    for path in _labels(dataset):
        _, lab = load_nifti(path)
        assert set(np.unique(lab).tolist()) == {0, 1, 2}
        n_fc, n_tc = int((lab == 1).sum()), int((lab == 2).sum())
        assert 3000 < n_fc < 20000, n_fc
        assert 1000 < n_tc < 6000, n_tc
        assert n_tc < n_fc


def test_cartilage_slices_in_plausible_range(dataset):
    for path in _labels(dataset):
        _, lab = load_nifti(path)
        n_any = int((lab > 0).any(axis=(0, 1)).sum())
        assert 24 <= n_any <= 36, n_any
        for c in (1, 2):
            assert (lab == c).any(axis=(0, 1)).sum() >= 18
        # the first and last slices are free (the knee lies inside the field of view)
        assert not lab[:, :, :2].any() and not lab[:, :, -2:].any()


def test_cartilage_thickness(dataset):
    for path in _labels(dataset):
        _, lab = load_nifti(path)
        for c in (1, 2):
            mask = lab == c
            edt = ndi.distance_transform_edt(mask, sampling=SPACING)
            thick = 2.0 * edt[mask]  # ~ local layer thickness at the layer's middle
            assert 1.2 <= np.percentile(thick, 99) <= 3.5, (path.name, c, np.percentile(thick, 99))


def test_cartilage_on_bone_without_overlap(rendered):
    img, lab, aff, masks = rendered
    assert not (lab > 0)[masks["bone"]].any()
    for c, bone in ((1, masks["femur"]), (2, masks["tibia"])):
        dist = ndi.distance_transform_edt(~bone, sampling=SPACING)[lab == c]
        assert dist.max() <= 4.5  # layer <= 3 mm plus the through-slice sampling
        assert np.mean(dist <= 0.75) > 0.2  # a good part of the layer touches its bone in-plane
    # femoral cartilage is nearer the femur than the tibia and vice versa
    d_f = ndi.distance_transform_edt(~masks["femur"], sampling=SPACING)
    d_t = ndi.distance_transform_edt(~masks["tibia"], sampling=SPACING)
    assert np.mean(d_f[lab == 1] < d_t[lab == 1]) > 0.99
    assert np.mean(d_t[lab == 2] < d_f[lab == 2]) > 0.99


def test_contrast_noise_and_intensity_overlap(rendered):
    img, lab, aff, masks = rendered
    tissue = masks["tissue"]
    cart = img[lab > 0]
    assert img[tissue == FLUID].mean() > 1.3 * cart.mean()
    assert 0.0 <= img.min() and img.max() < 2000.0 and np.isfinite(img).all()
    # Rician noise: the air floor is positive and noisy
    air = img[tissue == AIR]
    assert air.size > 1000 and air.mean() > 5.0 and air.std() > 5.0
    # cartilage is not identifiable from intensity alone
    lo, hi = np.percentile(cart, [10, 90])
    in_band = (img >= lo) & (img <= hi)
    assert (lab > 0)[in_band].mean() < 0.7
    pat = img[tissue == PAT_CART]
    assert lo < np.median(pat) < hi  # patellar cartilage (label 0) looks like FC/TC


# ---------------------------------------------------------------------------------------------
# datalist and output directory handling
# ---------------------------------------------------------------------------------------------


def test_datalist(dataset):
    dl = check_datalist(dataset, 3)
    assert dl["labels"] == {"0": "background", "1": "femoral_cartilage", "2": "tibial_cartilage"}
    assert split_counts(3) == (1, 1, 1)
    assert split_counts(12) == (8, 2, 2)
    assert split_counts(4) == (2, 1, 1)
    assert (dataset / MARKER_NAME).is_file()


def test_refuses_foreign_non_empty_directory(tmp_path):
    files = {**FOREIGN_FILES, "datalist.json": "{}"}
    foreign = make_foreign_dir(tmp_path, files)
    with pytest.raises(OutputDirError):
        write_knee_dataset(foreign, num_volumes=1, log=None)
    with pytest.raises(SystemExit):
        demo_data.main("knee_eas_unet", str(foreign), num_volumes=1)
    assert_untouched(foreign, files)


def test_refuses_directory_of_another_bundle(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / MARKER_NAME).write_text(json.dumps({"tool": "scripts.demo_data", "bundle": "some_other_bundle"}))
    with pytest.raises(OutputDirError, match="some_other_bundle"):
        write_knee_dataset(other, num_volumes=1, log=None)


def test_unknown_bundle_lists_known_ones(tmp_path):
    with pytest.raises(ValueError, match="knee_eas_unet"):
        demo_data.main("no_such_bundle", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
