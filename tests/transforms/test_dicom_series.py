"""DICOM folders as planning systems and PACS export them: a CT series beside a multi-frame RT Dose, an RT Plan
and an RT Structure Set is read as its CT (the series check, ``LoadVolumed`` and the head-and-neck bundle's
``inference.json`` preprocessing), two CT series in one folder are still refused, a modality picks one series of
a folder that also holds another modality, :func:`find_image_series` finds every CT series of a tree, and a series
whose slices do not stack (two at one position, a slice of another orientation, spacing or shape, a missing slice,
a jump in InstanceNumber) is refused naming the files.
Series written with pydicom (``tests/dicom_factory.py``); the real TotalSegmentator series from
``../shared/data`` for the reader's equivalence with MONAI's (skipped when absent)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import LoadImage

from custom_networks.transforms.dicom_series import (
    CheckDicomSeriesd,
    DicomSeriesError,
    check_dicom_series,
    series_files,
    skip_reason,
)
from custom_networks.transforms.dicom_tree import find_image_series
from custom_networks.transforms.load import LoadVolumed
from tests.bundle_configs.helpers import BundleUnderTest, error_chain
from tests.conftest import SHARED_DATA
from tests.dicom_factory import write_ct_series, write_planning_export, write_rt_dose, write_rt_plan

SERIES = SHARED_DATA / "totalsegmentator_example" / "example_ct_dicom"
HEAD_NECK = BundleUnderTest("head_neck_two_stage_unet", {})


def _hu(paths) -> np.ndarray:
    """``(slices, rows, columns)`` HU of the files, read with pydicom."""
    out = []
    for p in paths:
        ds = pydicom.dcmread(p)
        out.append(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    return np.stack(out)


def _ct_only_copy(paths, folder):
    folder.mkdir()
    for p in paths:
        shutil.copy(p, folder / p.name)
    return folder


# ------------------------------------------------------------------------------------- a planning-system export
def test_planning_export_is_checked_as_its_ct_series_with_one_log_line_per_rt_object(tmp_path, caplog):
    ct = write_planning_export(tmp_path / "export")
    with caplog.at_level(logging.INFO, logger="custom_networks.transforms.dicom_series"):
        files = check_dicom_series(tmp_path / "export")
    assert files == [str(p) for p in ct]  # the CT's slices only, in slice order (not file-name order)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    for name, kind in (("RD.dcm", "RT Dose Storage (Modality RTDOSE)"), ("RP.dcm", "RT Plan Storage"),
                       ("RS.dcm", "RT Structure Set Storage")):
        (line,) = [x for x in lines if name in x]
        assert kind in line and "not an image slice" in line and str(tmp_path / "export") in line
    assert series_files(tmp_path / "export") == files
    assert CheckDicomSeriesd("image")({"image": str(tmp_path / "export")}) == {"image": str(tmp_path / "export")}


def test_load_volumed_reads_the_ct_not_the_dose(tmp_path):
    """MONAI's ITK reader takes a folder's first GDCM series, which here may be the RT Dose grid; LoadVolumed with
    ``reader="ITKReader"`` (the CT configs') reads the CT slices: 56 x 40 x 10, each slice pydicom's HU."""
    ct = write_planning_export(tmp_path / "export")
    image = LoadVolumed("image", reader="ITKReader", image_only=True)({"image": str(tmp_path / "export")})["image"]
    alone = LoadImage(reader="ITKReader", image_only=True)(str(_ct_only_copy(ct, tmp_path / "ct")))
    assert tuple(image.shape) == (56, 40, 10)
    np.testing.assert_array_equal(image.numpy(), alone.numpy())
    np.testing.assert_allclose(image.affine.numpy(), alone.affine.numpy(), atol=1e-6)
    hu = _hu(ct)  # (slices, rows, columns); ITK's array is (columns, rows, slices along the normal)
    np.testing.assert_array_equal(np.transpose(image.numpy(), (2, 1, 0)), hu)


def test_head_neck_inference_preprocessing_reads_the_ct_of_a_planning_export(tmp_path):
    ct = write_planning_export(tmp_path / "export")
    preprocessing = HEAD_NECK.parser(check_hu=False).get_parsed_content("preprocessing")
    out = preprocessing({"image": str(tmp_path / "export")})["image"]
    ref = preprocessing({"image": str(_ct_only_copy(ct, tmp_path / "ct"))})["image"]
    assert out.shape == ref.shape and torch.equal(out.as_tensor(), ref.as_tensor())
    assert out.meta["filename_or_obj"] == str(tmp_path / "export")  # outputs are named after the folder


def test_two_ct_series_in_one_folder_are_still_refused(tmp_path):
    write_planning_export(tmp_path / "export")
    write_ct_series(tmp_path / "export", n=4, description="CT recon 2", series_number=3, prefix="REC")
    with pytest.raises(DicomSeriesError, match="holds 2 DICOM series") as err:
        check_dicom_series(tmp_path / "export")
    assert "'CT head neck', SeriesNumber 2, 10 files" in str(err.value)
    assert "'CT recon 2', SeriesNumber 3, 4 files" in str(err.value)
    assert "RTDOSE" not in str(err.value)  # the RT objects are not series of the count
    preprocessing = HEAD_NECK.parser(check_hu=False).get_parsed_content("preprocessing")
    with pytest.raises(Exception) as err:
        preprocessing({"image": str(tmp_path / "export")})
    assert "holds 2 DICOM series" in error_chain(err.value) and str(tmp_path / "export") in error_chain(err.value)
    with pytest.raises(DicomSeriesError, match="holds 2 DICOM series"):  # the reader alone refuses it too
        LoadVolumed("image", reader="ITKReader")({"image": str(tmp_path / "export")})


def test_modality_picks_the_series_of_a_folder_with_ct_and_mr(tmp_path):
    ct = write_ct_series(tmp_path / "both", n=6)
    mr = write_ct_series(tmp_path / "both", n=4, rows=20, cols=24, description="T1", prefix="MR")
    for p in mr:  # the same writer, relabelled MR
        ds = pydicom.dcmread(p)
        ds.Modality, ds.SOPClassUID = "MR", pydicom.uid.MRImageStorage
        ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.MRImageStorage
        ds.save_as(p, enforce_file_format=True)
    with pytest.raises(DicomSeriesError, match="holds 2 DICOM series"):
        check_dicom_series(tmp_path / "both")  # no modality: both count, as before
    assert check_dicom_series(tmp_path / "both", modality="CT") == [str(p) for p in ct]
    assert check_dicom_series(tmp_path / "both", modality="mr") == [str(p) for p in mr]
    image = LoadVolumed("image", reader="ITKReader", modality="MR")({"image": str(tmp_path / "both")})["image"]
    assert tuple(image.shape) == (24, 20, 4)
    with pytest.raises(DicomSeriesError, match=r"No DICOM PT image files .*6 x CT Image Storage \(Modality CT\), "
                                               r"not a slice of the PT series"):
        CheckDicomSeriesd("image", modality="PT")({"image": str(tmp_path / "both")})


def test_folder_of_rt_objects_only_names_what_it_skipped(tmp_path):
    ct = write_ct_series(tmp_path / "ct", n=3)
    (tmp_path / "rt").mkdir()
    write_rt_dose(tmp_path / "rt" / "RD.dcm", ct)
    write_rt_plan(tmp_path / "rt" / "RP.dcm", ct)
    with pytest.raises(DicomSeriesError, match="No DICOM image files") as err:
        check_dicom_series(tmp_path / "rt")
    assert "RT Dose Storage (Modality RTDOSE), not an image slice" in str(err.value)
    assert "RT Plan Storage (Modality RTPLAN), not an image slice" in str(err.value)


def test_skip_reason_of_each_kind(tmp_path):
    ct = write_planning_export(tmp_path / "export")
    read = lambda name: pydicom.dcmread(tmp_path / "export" / name, stop_before_pixels=True)  # noqa: E731
    assert skip_reason(read(ct[0].name)) is None and skip_reason(read(ct[0].name), "ct") is None
    assert skip_reason(read(ct[0].name), "MR") == "CT Image Storage (Modality CT), not a slice of the MR series"
    assert skip_reason(read("RD.dcm")).startswith("RT Dose Storage")  # has Rows and Columns, still skipped
    assert skip_reason(read("RS.dcm")).startswith("RT Structure Set Storage")
    seg = read(ct[0].name)
    seg.SOPClassUID, seg.Modality = pydicom.uid.SegmentationStorage, "SEG"
    assert skip_reason(seg) == "Segmentation Storage (Modality SEG), not an image slice"
    us = read(ct[0].name)  # 1.2.840.10008.5.1.4.1.1.6.1: a prefix of no skipped class
    us.SOPClassUID, us.Modality = pydicom.uid.UltrasoundImageStorage, "US"
    assert skip_reason(us) is None


# --------------------------------------------------------------------------------- the reader equals MONAI's
@pytest.mark.parametrize("source", ["synthetic", "real"])
def test_a_folder_of_one_series_reads_as_monai_reads_it(tmp_path, source):
    if source == "real":
        if not SERIES.is_dir():
            pytest.skip(f"real CT DICOM series not found at {SERIES}")
        folder = SERIES
    else:
        folder = tmp_path / "ct"
        write_ct_series(folder, iop=(0, 1, 0, 0, 0, -1))  # sagittal, shuffled names, instances against order
    ours = LoadVolumed("image", reader="ITKReader", image_only=True)({"image": str(folder)})["image"]
    monai = LoadImage(reader="ITKReader", image_only=True)(str(folder))
    np.testing.assert_array_equal(ours.numpy(), monai.numpy())
    np.testing.assert_allclose(ours.affine.numpy(), monai.affine.numpy(), atol=1e-6)


# ------------------------------------------------------------------------------------------------ a folder tree
def test_find_image_series_in_a_tree(tmp_path, caplog):
    root = tmp_path / "export"
    a = write_planning_export(root / "patient1" / "plan", n=6)  # CT + RT Dose + RT Plan + RT Structure Set
    b = write_ct_series(root / "patient1" / "ct_contrast", n=5, description="CT contrast", series_number=4)
    c = write_ct_series(root / "patient2", n=4, description="CT A", series_number=2, prefix="A")
    d = write_ct_series(root / "patient2", n=3, description="CT B", series_number=5, prefix="B")
    (root / "patient2" / "notes.txt").write_text("not DICOM")
    with caplog.at_level(logging.INFO, logger="custom_networks.transforms.dicom_tree"):
        found = find_image_series(root)
    assert [(s.description, s.files, s.own_folder) for s in found] == [
        ("CT contrast", tuple(map(str, b)), True),
        ("CT head neck", tuple(map(str, a)), True),
        ("CT A", tuple(map(str, c)), False),  # shares patient2/ with CT B: its files must be put apart
        ("CT B", tuple(map(str, d)), False),
    ]
    ref = pydicom.dcmread(a[0], stop_before_pixels=True)
    assert found[1].series_uid == ref.SeriesInstanceUID and found[1].folder == str(root / "patient1" / "plan")
    assert found[1].modality == "CT" and found[1].series_number == 2
    assert len({s.series_uid for s in found}) == 4
    (line,) = [r.getMessage() for r in caplog.records if r.name == "custom_networks.transforms.dicom_tree"]
    assert "4 CT series in 18 DICOM files" in line and "skipped 3 other DICOM objects" in line
    # the bundle reads an own-folder series directly, RT objects and all
    assert check_dicom_series(found[1].folder) == list(found[1].files)
    assert find_image_series(root, modality="MR") == []
    (one,) = find_image_series(a[0])  # one file: its series, not readable as its folder
    assert (one.series_uid, one.files, one.own_folder) == (found[1].series_uid, (str(a[0]),), False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_image_series(tmp_path / "nowhere")


# --------------------------------------------------------------------- a series that does not stack into a volume
def _edit(path, **tags) -> None:
    """Rewrite the slice ``path`` with ``tags`` changed (pixel data kept: a complete file)."""
    ds = pydicom.dcmread(path)
    for tag, value in tags.items():
        setattr(ds, tag, value)
    ds.save_as(path, enforce_file_format=True)


def test_a_complete_synthetic_series_passes_in_slice_order(tmp_path):
    paths = write_ct_series(tmp_path / "ct", n=6)
    assert check_dicom_series(tmp_path / "ct") == [str(p) for p in paths]


def test_two_slices_at_one_position_are_refused_naming_both(tmp_path):
    paths = write_ct_series(tmp_path / "ct", n=6)
    copy = tmp_path / "ct" / "COPY.dcm"
    shutil.copy(paths[2], copy)
    _edit(copy, SOPInstanceUID=pydicom.uid.generate_uid(), InstanceNumber=99)
    z = float(pydicom.dcmread(paths[2], stop_before_pixels=True).ImagePositionPatient[2])
    with pytest.raises(DicomSeriesError, match=r"1 pair\(s\) of slices share one position") as err:
        check_dicom_series(tmp_path / "ct")
    assert f"{paths[2].name} and COPY.dcm at {z:.6g} mm" in str(err.value)


@pytest.mark.parametrize("tag, value, what", [
    ("ImageOrientationPatient", [0.996195, 0.087156, 0.0, -0.087156, 0.996195, 0.0],  # 5 degrees about the normal
     r"orientation \(ImageOrientationPatient\)"),
    ("PixelSpacing", [1.0, 0.9], r"pixel spacing \(PixelSpacing\)"),
    ("Rows", 20, r"shape \(Rows x Columns\)"),
], ids=["orientation", "spacing", "shape"])
def test_a_slice_of_another_geometry_is_refused_naming_it(tmp_path, tag, value, what):
    paths = write_ct_series(tmp_path / "ct", n=6)
    _edit(paths[3], **{tag: value})
    with pytest.raises(DicomSeriesError, match=f"the slices differ in {what}") as err:
        check_dicom_series(tmp_path / "ct")
    assert ": 5 files (e.g." in str(err.value) and f": 1 file (e.g. {paths[3].name})" in str(err.value)


def test_a_missing_middle_slice_is_refused_naming_its_neighbours(tmp_path):
    paths = write_ct_series(tmp_path / "ct", n=8, step=2.5)
    numbers = [int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in paths]
    paths[4].unlink()
    with pytest.raises(DicomSeriesError, match="slices are missing") as err:
        check_dicom_series(tmp_path / "ct")
    message = str(err.value)
    assert f"InstanceNumber {numbers[3]}, {paths[3].name}" in message
    assert f"InstanceNumber {numbers[5]}, {paths[5].name}" in message
    assert "a step of 5 mm, about 1 slice(s) missing" in message


def test_a_gap_in_the_instance_numbers_is_refused_unless_turned_off(tmp_path):
    """Positions complete, but the numbering jumps (a slice lost and the positions re-spaced, or renumbered)."""
    paths = write_ct_series(tmp_path / "ct", n=8)
    for p in paths:  # InstanceNumber 8 .. 1 along the normal; make it 11 .. 6, 3 .. 1
        number = int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber)
        _edit(p, InstanceNumber=number + 2 if number > 3 else number)
    with pytest.raises(DicomSeriesError, match=r"the InstanceNumbers jump from 3 to 6 \(median step 1\)") as err:
        check_dicom_series(tmp_path / "ct")
    assert "check_instance_numbers=False" in str(err.value)
    assert check_dicom_series(tmp_path / "ct", check_instance_numbers=False) == [str(p) for p in paths]

