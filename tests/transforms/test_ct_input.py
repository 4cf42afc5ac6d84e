"""The shared CT input path: DICOM series checks, reading a series in HU with its geometry, the bone window
and paper 000's bone-ratio crop (papers.md §1.3). Synthetic slices for the crop; the real TotalSegmentator
series from ``../shared/data`` for reading (skipped when that folder is absent)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, ScaleIntensityRanged

from custom_networks.transforms.bone_crop import RandBoneRatioCropd, bone_ratio_threshold
from custom_networks.transforms.dicom_series import CheckDicomSeriesd, DicomSeriesError, check_dicom_series
from custom_networks.labels.totalsegmentator import class_ids
from custom_networks.transforms.validate import ValidateVolumed
from tests.conftest import SHARED_DATA

EXAMPLE = SHARED_DATA / "totalsegmentator_example"
SERIES = EXAMPLE / "example_ct_dicom"
SEG = EXAMPLE / "example_seg_dicom.nii.gz"
BONE_IDS = class_ids("bone")


# ---------------------------------------------------------------------------------------------- the crop rule
def _slice(fg: np.ndarray, channels: int = 1) -> dict:
    """A (C, H, W) image coding each pixel's index, and the (1, H, W) mask ``fg``."""
    h, w = fg.shape
    coded = np.arange(h * w, dtype=np.float32).reshape(h, w)
    image = np.stack([coded + 1e6 * c for c in range(channels)])
    return {"image": torch.as_tensor(image), "label": torch.as_tensor(fg[None].astype(np.float32))}


def _check_rule(t: RandBoneRatioCropd) -> None:
    """The chosen attempt passes the rule and every earlier attempt failed it."""
    s = t.last_sample
    for i, (_, ratio) in enumerate(s["candidates"][: s["attempt"] - 1], start=1):
        assert ratio < bone_ratio_threshold(i)
    assert s["ratio"] >= bone_ratio_threshold(s["attempt"]) == 0.2 / s["attempt"] + 0.2


def test_first_attempt_keeps_forty_percent_of_concentrated_bone():
    rng = np.random.default_rng(0)
    fg = rng.random((256, 256)) < 0.01  # scattered specks
    fg[98:158, 98:158] = True  # most of the bone in one block
    first_accepted = 0
    for seed in range(20):
        t = RandBoneRatioCropd(["image", "label"], "label").set_random_state(seed)
        out = t(_slice(fg))
        share = float(out["label"].sum()) / fg.sum()
        assert share == pytest.approx(t.last_sample["ratio"])  # the recorded ratio is the crop's real share
        assert t.last_sample["accepted"]
        _check_rule(t)
        if t.last_sample["attempt"] == 1:
            first_accepted += 1
            assert share >= 0.4
    assert first_accepted > 0


def test_first_attempts_must_fail_and_acceptance_follows_threshold():
    # four equal blobs in the corners of a 512 slice: a 128 crop holds at most one (25 %), so attempts 1-3
    # (thresholds 0.4, 0.3, 0.267) cannot pass; attempt i >= 4 passes at ratio >= 0.2 / i + 0.2.
    fg = np.zeros((512, 512), bool)
    for r in (50, 442):
        for c in (50, 442):
            fg[r : r + 20, c : c + 20] = True
    for seed in range(10):
        t = RandBoneRatioCropd(["image", "label"], "label").set_random_state(seed)
        out = t(_slice(fg))
        s = t.last_sample
        assert s["accepted"] and s["attempt"] >= 4
        assert all(ratio <= 0.25 for _, ratio in s["candidates"])
        _check_rule(t)
        assert float(out["label"].sum()) / fg.sum() == pytest.approx(s["ratio"])


def test_no_passing_attempt_takes_the_largest_ratio():
    fg = np.random.default_rng(1).random((512, 512)) < 0.3  # bone everywhere: every crop holds about 6 %
    t = RandBoneRatioCropd(["image", "label"], "label").set_random_state(0)
    out = t(_slice(fg))
    s = t.last_sample
    ratios = [r for _, r in s["candidates"]]
    assert not s["accepted"] and len(ratios) == 100
    assert s["ratio"] == max(ratios) and s["attempt"] == ratios.index(max(ratios)) + 1
    assert float(out["label"].sum()) / fg.sum() == pytest.approx(s["ratio"])


def test_empty_slice_gives_uniform_crop_of_the_right_size():
    fg = np.zeros((200, 300), bool)
    t = RandBoneRatioCropd(["image", "label"], "label").set_random_state(0)
    starts = set()
    for _ in range(20):
        out = t(_slice(fg))
        assert out["image"].shape == (1, 128, 128) and out["label"].shape == (1, 128, 128)
        assert t.last_sample["attempt"] is None and t.last_sample["candidates"] == []
        y, x = t.last_sample["start"]
        assert 0 <= y <= 200 - 128 and 0 <= x <= 300 - 128
        starts.add((y, x))
    assert len(starts) > 10


def test_seeded_state_is_deterministic():
    fg = np.random.default_rng(2).random((256, 256)) < 0.05
    a = RandBoneRatioCropd(["image", "label"], "label").set_random_state(123)
    b = RandBoneRatioCropd(["image", "label"], "label").set_random_state(123)
    c = RandBoneRatioCropd(["image", "label"], "label").set_random_state(7)
    outs_a = [a(_slice(fg))["image"] for _ in range(3)]
    outs_b = [b(_slice(fg))["image"] for _ in range(3)]
    outs_c = [c(_slice(fg))["image"] for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(outs_a, outs_b))
    assert not all(torch.equal(x, y) for x, y in zip(outs_a, outs_c))


def test_all_keys_cropped_identically_with_geometry():
    fg = np.zeros((256, 320), bool)
    fg[100:180, 150:200] = True
    data = _slice(fg, channels=2)
    affine = torch.diag(torch.tensor([0.5, 0.7, 1.0], dtype=torch.float64))
    data = {k: MetaTensor(v, affine=affine.clone()) for k, v in data.items()}
    t = RandBoneRatioCropd(["image", "label"], "label").set_random_state(3)
    out = t(data)
    y, x = t.last_sample["start"]
    assert out["image"].shape == (2, 128, 128) and out["label"].shape == (1, 128, 128)
    assert torch.equal(out["image"].as_tensor(), data["image"].as_tensor()[:, y : y + 128, x : x + 128])
    assert torch.equal(out["label"].as_tensor(), data["label"].as_tensor()[:, y : y + 128, x : x + 128])
    assert float(out["image"][0, 0, 0]) == y * 320 + x
    for key in ("image", "label"):
        assert torch.allclose(out[key].affine[:2, 2], torch.tensor([0.5 * y, 0.7 * x], dtype=torch.float64))


def test_small_slice_is_padded_first():
    fg = np.zeros((100, 300), bool)
    fg[40:60, 10:30] = True
    t = RandBoneRatioCropd(["image", "label"], "label").set_random_state(0)
    out = t(_slice(fg))
    assert out["image"].shape == (1, 128, 128) and t.last_sample["start"][0] == 0
    assert float(out["image"][0, :14].abs().sum()) == 0  # symmetric zero padding: 14 rows above, 14 below
    assert float(out["image"][0, 14, 0]) == t.last_sample["start"][1]  # first real row, column x


def test_mismatched_shapes_are_refused():
    data = {"image": torch.zeros(1, 200, 200), "label": torch.zeros(1, 100, 200)}
    with pytest.raises(ValueError, match="share one grid"):
        RandBoneRatioCropd(["image", "label"], "label")(data)


# ----------------------------------------------------------------------------------- the real DICOM series
def _needs_shared_data() -> None:
    if not SERIES.is_dir() or not SEG.is_file():
        pytest.skip(f"shared reference data absent ({SERIES} or {SEG}); a fresh clone has no ../shared/data")


def _ct_transforms() -> Compose:
    """The reading steps documented in custom_networks/transforms/dicom_series.py, without the bone window."""
    keys = ["image", "label"]
    return Compose(
        [
            CheckDicomSeriesd(keys=["image"]),
            LoadImaged(keys=keys, reader="ITKReader", image_only=True),
            ValidateVolumed(keys=keys),
            EnsureChannelFirstd(keys=keys),
            Orientationd(keys=keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        ]
    )


@pytest.fixture(scope="module")
def ct_and_seg():
    _needs_shared_data()
    return _ct_transforms()({"image": str(SERIES), "label": str(SEG)})


def test_series_reads_in_hu_on_the_label_grid(ct_and_seg):
    image, label = ct_and_seg["image"], ct_and_seg["label"]
    assert image.shape == label.shape == (1, 512, 512, 20)
    assert torch.allclose(image.affine, label.affine, atol=1e-4)
    spacing = torch.linalg.norm(image.affine[:3, :3], dim=0)
    assert torch.allclose(spacing, torch.tensor([0.9765625, 0.9765625, 2.0], dtype=spacing.dtype), atol=1e-5)
    assert float(image.min()) == -1024.0  # air outside the body: HU, not stored values


def test_hu_equals_pydicom_rescaled_pixels(ct_and_seg):
    """The series is JPEG 2000 compressed; pydicom decodes it with pillow (a core dependency), so a missing decoder
    fails here rather than skipping."""
    import pydicom

    volume = ct_and_seg["image"][0].numpy()
    to_voxel = np.linalg.inv(ct_and_seg["image"].affine.numpy())
    files = sorted(os.listdir(SERIES))
    for name in files[::6]:
        ds = pydicom.dcmread(SERIES / name)
        assert ds.file_meta.TransferSyntaxUID.name.startswith("JPEG 2000"), ds.file_meta.TransferSyntaxUID.name
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        # every pixel's LPS position from the DICOM geometry -> RAS -> voxel index of the loaded volume
        rows, cols = np.indices(hu.shape)
        row_dir, col_dir = np.asarray(ds.ImageOrientationPatient, float).reshape(2, 3)
        dr, dc = (float(v) for v in ds.PixelSpacing)  # spacing between rows, between columns
        origin = np.asarray(ds.ImagePositionPatient, float)
        lps = origin + cols[..., None] * dc * row_dir + rows[..., None] * dr * col_dir
        ras = lps * np.array([-1.0, -1.0, 1.0])
        ijk = ras @ to_voxel[:3, :3].T + to_voxel[:3, 3]
        index = np.rint(ijk).astype(int)
        assert np.abs(ijk - index).max() < 1e-3
        assert np.array_equal(volume[index[..., 0], index[..., 1], index[..., 2]], hu)
        # the same mapping in array terms (axial slice, ImageOrientationPatient [1,0,0,0,1,0]):
        k = int(index[0, 0, 2])
        assert np.array_equal(volume[:, :, k], hu[::-1, ::-1].T)


def test_bone_labels_sit_on_bone_hu(ct_and_seg):
    hu = ct_and_seg["image"][0].numpy()
    bone = np.isin(ct_and_seg["label"][0].numpy(), BONE_IDS)
    assert bone.sum() > 10_000
    assert np.median(hu[bone]) > 150  # README: about 260 HU; soft tissue is 0-80, fat below 0
    assert np.median(hu[~bone]) < 0


def test_bone_window_and_crop_on_a_real_slice(ct_and_seg):
    windowed = ScaleIntensityRanged("image", a_min=-500, a_max=1500, b_min=0.0, b_max=1.0, clip=True)(
        {"image": ct_and_seg["image"]}
    )["image"]
    assert float(windowed.min()) == 0.0 and float(windowed.max()) <= 1.0
    hu = ct_and_seg["image"][0, 256, 256, 10]
    assert float(windowed[0, 256, 256, 10]) == pytest.approx(min(max((float(hu) + 500) / 2000, 0), 1))
    k = 10
    sample = {
        "image": windowed[..., k],
        "label": MetaTensor(np.isin(ct_and_seg["label"][..., k].numpy(), BONE_IDS).astype(np.float32)),
    }
    t = RandBoneRatioCropd(["image", "label"], "label").set_random_state(0)
    out = t(sample)
    assert tuple(out["image"].shape) == tuple(out["label"].shape) == (1, 128, 128)
    if t.last_sample["accepted"]:
        _check_rule(t)


# -------------------------------------------------------------------------------------- clear series errors
def _copy_series(dst) -> list[str]:
    """Copy the shared series file by file (the shared folder is read-only; its mode must not follow)."""
    _needs_shared_data()
    dst.mkdir(exist_ok=True)
    names = sorted(os.listdir(SERIES))
    for name in names:
        shutil.copyfile(SERIES / name, dst / name)
    return names


def test_real_series_passes_and_is_sorted_along_the_normal():
    _needs_shared_data()
    files = check_dicom_series(SERIES)
    assert len(files) == 20
    import pydicom

    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    assert z == sorted(z)
    data = {"image": str(SERIES), "label": str(SEG)}
    assert CheckDicomSeriesd(keys=["image", "label"])(data) == data  # a folder checked, a file passed through


def test_missing_middle_slice_names_the_gap(tmp_path):
    import pydicom

    names = _copy_series(tmp_path / "series")
    (tmp_path / "series" / "notes.txt").write_text("not DICOM")  # skipped, not an error
    headers = {n: pydicom.dcmread(tmp_path / "series" / n, stop_before_pixels=True) for n in names}
    by_number = {int(ds.InstanceNumber): n for n, ds in headers.items()}
    os.remove(tmp_path / "series" / by_number[276])  # z = -784.5 mm; neighbours 275 (-782.5) and 277 (-786.5)
    with pytest.raises(DicomSeriesError, match="slices are missing") as err:
        check_dicom_series(tmp_path / "series")
    message = str(err.value)
    for expected in (str(tmp_path / "series"), "-786.5", "-782.5", "InstanceNumber 275", "InstanceNumber 277", "4 mm"):
        assert expected in message
    with pytest.raises(ValueError, match="slices are missing"):
        CheckDicomSeriesd(keys=["image"])({"image": str(tmp_path / "series")})


def test_second_series_is_listed(tmp_path):
    import pydicom
    from pydicom.uid import generate_uid

    names = _copy_series(tmp_path / "series")
    ds = pydicom.dcmread(tmp_path / "series" / names[0])
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesDescription = "Localizer"
    ds.save_as(tmp_path / "series" / "extra.dcm")
    with pytest.raises(DicomSeriesError, match="holds 2 DICOM series") as err:
        check_dicom_series(tmp_path / "series")
    message = str(err.value)
    assert ds.SeriesInstanceUID in message and "'Localizer'" in message and "1 file " in message
    assert "(empty SeriesInstanceUID): 'CT Body 3.0', 20 files" in message and "one DICOM series" in message


def test_inconsistent_slice_shape_is_refused(tmp_path):
    import pydicom

    names = _copy_series(tmp_path / "series")
    ds = pydicom.dcmread(tmp_path / "series" / names[3])  # with its pixel data: a complete file, other Rows
    ds.Rows = 256
    ds.save_as(tmp_path / "series" / names[3])
    shapes = r"differ in shape.*\n.*\(512, 512\): 19 files.*\n.*\(256, 512\): 1 file "
    with pytest.raises(DicomSeriesError, match=shapes):
        check_dicom_series(tmp_path / "series")


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DicomSeriesError, match="No DICOM image files") as err:
        check_dicom_series(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(err.value)
