"""RTSTRUCT output (``write_rtstruct``): written on CT series, read back with plain pydicom and a rasteriser of this
file (not rt-utils, which wrote it), and compared with the label map per organ.

Two kinds of series: small CT series written here with pydicom (non-square images and non-square pixels, file
names shuffled, InstanceNumber against the slice order, orientations whose slice normal is not +z; alone and
inside a planning-system export beside RT Dose, RT Plan and RT Structure Set), whose organs are functions of the
patient position so the truth of every slice pixel comes from the DICOM geometry alone; and the real
TotalSegmentator CT series in ``../shared/data`` with TotalSegmentator's own organ labels (skipped when absent).
"""

from __future__ import annotations

import os
import shutil
import sys

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage
from skimage.draw import polygon, polygon_perimeter
from skimage.measure import points_in_poly

from custom_networks.labels.head_neck import TG263_NAMES, organs, tg263_roi_names
from custom_networks.transforms.load import LoadVolumed
from custom_networks.writers.rtstruct import write_rtstruct
from tests.conftest import SHARED_DATA
from tests.dicom_factory import copy_real_series, pixel_centres, write_ct_series, write_planning_export

pytest.importorskip("rt_utils", reason="the rtstruct extra: pip install -e \".[rtstruct]\"")

SERIES = SHARED_DATA / "totalsegmentator_example" / "example_ct_dicom"
TOTALSEG_LABELS = SHARED_DATA / "totalsegmentator_example" / "example_seg_dicom.nii.gz"
RAS_LPS = np.diag([-1.0, -1.0, 1.0])
MIN_DICE = 0.95


# ------------------------------------------------------------------------------------------ an independent reader
def _geometry(ds):
    iop = np.asarray(ds.ImageOrientationPatient, float)
    return np.asarray(ds.ImagePositionPatient, float), iop[:3], iop[3:], np.cross(iop[:3], iop[3:])


def _rasterise(contours: list[np.ndarray], shape) -> np.ndarray:
    """One slice's mask from its contours ``(N, 2)`` (row, column), filled by nesting (even-odd): a contour inside
    an even number of the others is an outer border (its pixels and all inside it are in), one inside an odd number
    is a hole border (its inside is out, its own pixels, which are the organ's, stay in). The contours pass through
    border pixel centres, so a border pixel counts as inside its outer contour."""
    filled, interior = [], []
    for rc in contours:
        inside = np.zeros(shape, bool)
        inside[polygon(rc[:, 0], rc[:, 1], shape)] = True
        border = np.zeros(shape, bool)
        border[polygon_perimeter(rc[:, 0], rc[:, 1], shape)] = True
        border[rc[:, 0].astype(int), rc[:, 1].astype(int)] = True
        filled.append(inside | border)
        interior.append(inside & ~border)
    depth = [sum(points_in_poly(rc, other).mean() > 0.5 for j, other in enumerate(contours) if j != i)
             for i, rc in enumerate(contours)]
    mask = np.zeros(shape, bool)
    for i in sorted(range(len(contours)), key=lambda i: depth[i]):
        if depth[i] % 2 == 0:
            mask |= filled[i]
        else:
            mask &= ~interior[i]
    return mask


def read_rtstruct(path, slices: dict) -> tuple[pydicom.Dataset, dict[str, dict[str, np.ndarray]]]:
    """The RTSTRUCT's dataset and ROI name -> {slice SOP Instance UID -> (Rows, Columns) mask}, with plain pydicom.

    Each contour must lie in the plane of the slice it references (within 1e-3 mm) and its points on that
    slice's pixel centres; ``slices`` maps SOP Instance UID -> the slice's header."""
    ds = pydicom.dcmread(path)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    masks: dict[str, dict[str, np.ndarray]] = {}
    for roi in ds.ROIContourSequence:
        per_slice: dict[str, list[np.ndarray]] = {}
        for contour in roi.get("ContourSequence", []):
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            (image,) = contour.ContourImageSequence
            uid = str(image.ReferencedSOPInstanceUID)
            assert uid in slices, "a contour references an image that is not a slice of the series"
            sl = slices[uid]
            assert image.ReferencedSOPClassUID == sl.SOPClassUID
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            assert int(contour.NumberOfContourPoints) == len(points)
            ipp, along_row, down_column, normal = _geometry(sl)
            offset = points - ipp
            assert np.abs(offset @ normal).max() < 1e-3, "a contour lies off the slice it references"
            dr, dc = (float(v) for v in sl.PixelSpacing)
            rc = np.stack([offset @ down_column / dr, offset @ along_row / dc], axis=1)
            assert np.abs(rc - np.rint(rc)).max() < 1e-3  # rt-utils traces pixel centres
            per_slice.setdefault(uid, []).append(np.rint(rc))
        shape = (int(next(iter(slices.values())).Rows), int(next(iter(slices.values())).Columns))
        masks[names[int(roi.ReferencedROINumber)]] = {u: _rasterise(c, shape) for u, c in per_slice.items()}
    return ds, masks


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def compare(masks, truth: dict[str, np.ndarray], names: dict[int, str]) -> dict[str, float]:
    """Dice per ROI of the read-back masks against ``truth`` (slice SOP Instance UID -> (Rows, Columns) labels)."""
    scores = {}
    for value, name in names.items():
        got = np.stack([masks[name].get(uid, np.zeros(t.shape, bool)) for uid, t in truth.items()])
        want = np.stack([t == value for t in truth.values()])
        scores[name] = dice(got, want)
    return scores


def check_references(ds, headers: list) -> None:
    """The RTSTRUCT references the source series: its study, Frame of Reference UID, series and every slice."""
    first = headers[0]
    assert ds.SOPClassUID == pydicom.uid.RTStructureSetStorage and ds.Modality == "RTSTRUCT"
    assert ds.StudyInstanceUID == first.StudyInstanceUID and ds.PatientID == first.PatientID
    assert ds.SeriesInstanceUID != first.SeriesInstanceUID
    (frame,) = ds.ReferencedFrameOfReferenceSequence
    assert frame.FrameOfReferenceUID == first.FrameOfReferenceUID
    (study,) = frame.RTReferencedStudySequence
    (series,) = study.RTReferencedSeriesSequence
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    assert sorted(str(i.ReferencedSOPInstanceUID) for i in series.ContourImageSequence) == sorted(
        str(h.SOPInstanceUID) for h in headers)
    for roi in ds.StructureSetROISequence:
        assert roi.ReferencedFrameOfReferenceUID == first.FrameOfReferenceUID
        assert roi.ROIGenerationAlgorithm == "AUTOMATIC"


# -------------------------------------------------------------------------------------------- synthetic series
ORIENTATIONS = {
    "axial": (1, 0, 0, 0, 1, 0),
    "axial_normal_down": (1, 0, 0, 0, -1, 0),  # slice normal -z: rt-utils' slice order is not the z order
    "coronal": (1, 0, 0, 0, 0, -1),
    "oblique": (np.cos(0.3), np.sin(0.3), 0, 0, 0, -1),
}
#: label value -> organ (the default setup's label ids); 4, 6 and 7 (Parotid_L, Esophagus, Larynx) stay empty
ORGAN_SHAPES = {1: "ring with a hole", 2: "small cylinder", 3: "two components", 5: "L shape"}


def organ_labels(lps: np.ndarray, centre, iop) -> np.ndarray:
    """Organ labels at LPS positions ``(..., 3)``, drawn in the slices' own frame (u along a row, v down a column,
    w along the normal, mm from the volume's centre), so every orientation shows the same shapes on its slices:
    a ring (a hole on every slice it crosses), a thin cylinder, two separate ellipses and an L, each over its own
    range of slices (no symmetry that a swap of rows and columns, a flip or a reversed slice order would keep)."""
    iop = np.asarray(iop, float)
    d = lps - np.asarray(centre, float)
    u, v, w = d @ iop[:3], d @ iop[3:], d @ np.cross(iop[:3], iop[3:])
    out = np.zeros(lps.shape[:-1], np.uint8)
    ring = np.hypot(u + 10, v + 8)
    out[(ring > 4.5) & (ring < 10) & (w > -9) & (w < 4)] = 1
    out[np.hypot(u + 15, v - 12) < 4] = 2
    two = (((u - 8) / 5) ** 2 + ((v + 14) / 4) ** 2 < 1) | (((u - 19) / 4) ** 2 + ((v + 6) / 6) ** 2 < 1)
    out[two & (w > -3) & (w < 11)] = 3
    ell = ((u >= 2) & (u <= 20) & (v >= 6) & (v <= 11)) | ((u >= 2) & (u <= 7) & (v >= 11) & (v <= 20))
    out[ell & (w > -12) & (w < 6)] = 5
    return out


def synthetic_case(folder, orientation, planning_export):
    """A CT series (optionally in a planning export) and ``<name>_seg.nii.gz`` on its ITK-read grid, as
    ``inference.json`` writes it; returns (series folder, NIfTI path, slice headers, truth per slice UID)."""
    iop = ORIENTATIONS[orientation]
    options = dict(rows=40, cols=56, n=10, iop=iop, spacing=(1.2, 0.9), step=2.5, origin=(-25.0, -18.0, 100.0))
    paths = (write_planning_export if planning_export else write_ct_series)(folder, **options)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    iop_a = np.asarray(iop, float)
    normal = np.cross(iop_a[:3], iop_a[3:])
    centre = (np.asarray(options["origin"]) + 0.5 * (40 * 1.2 * iop_a[3:] + 56 * 0.9 * iop_a[:3])
              + 4.5 * 2.5 * normal)
    # the label map as inference.json writes it: on the grid the bundle reads the series onto
    image = LoadVolumed("image", reader="ITKReader", image_only=True)({"image": str(folder)})["image"]
    affine = image.affine.numpy()
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in image.shape], indexing="ij"), axis=-1)
    lps = (ijk @ affine[:3, :3].T + affine[:3, 3]) @ RAS_LPS.T
    nifti = folder.parent / f"{folder.name}_seg.nii.gz"
    nib.save(nib.Nifti1Image(organ_labels(lps, centre, iop), affine), str(nifti))
    truth = {str(h.SOPInstanceUID): organ_labels(pixel_centres(h), centre, iop) for h in headers}
    return folder, nifti, headers, truth


@pytest.mark.parametrize("planning_export", [False, True], ids=["ct_folder", "planning_export"])
@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_contours_read_back_match_the_label_map(tmp_path, orientation, planning_export):
    folder, nifti, headers, truth = synthetic_case(tmp_path / "ct", orientation, planning_export)
    for value in ORGAN_SHAPES:  # the organs are there, on several slices
        assert sum((t == value).any() for t in truth.values()) >= 5
    names = tg263_roi_names("openkbp")
    counts = write_rtstruct(nifti, folder, tmp_path / "RS_auto.dcm", names, algorithm_name="head_neck_two_stage_unet",
                            algorithm_version="1.2.3")
    ds, masks = read_rtstruct(tmp_path / "RS_auto.dcm", {str(h.SOPInstanceUID): h for h in headers})
    check_references(ds, headers)
    assert [r.ROIName for r in ds.StructureSetROISequence] == [
        "Brainstem", "SpinalCord", "Parotid_R", "Parotid_L", "Bone_Mandible", "Esophagus", "Larynx"]
    assert counts == {n: len(c.get("ContourSequence", [])) for n, c in
                      zip(names.values(), ds.ROIContourSequence)}
    for empty in ("Parotid_L", "Esophagus", "Larynx"):  # listed, without contours
        assert counts[empty] == 0 and not masks[empty]
    scores = compare(masks, truth, {k: names[k] for k in ORGAN_SHAPES})
    print(f"{orientation}, {'planning export' if planning_export else 'CT folder'}: Dice {scores}")
    assert min(scores.values()) >= MIN_DICE, scores
    # the ring's hole is a contour of its own inside the outer one, and the parotid has two outer contours
    ring_slice = max(truth, key=lambda u: (truth[u] == 1).sum())
    ring_contours = [c for c in ds.ROIContourSequence[0].ContourSequence
                     if c.ContourImageSequence[0].ReferencedSOPInstanceUID == ring_slice]
    assert len(ring_contours) == 2 and not masks["Brainstem"][ring_slice][truth[ring_slice] == 0].any()
    parotid_slice = max(truth, key=lambda u: (truth[u] == 3).sum())
    assert sum(c.ContourImageSequence[0].ReferencedSOPInstanceUID == parotid_slice
               for c in ds.ROIContourSequence[2].ContourSequence) == 2
    assert ds.Manufacturer == "medseg-bundles" and ds.ManufacturerModelName == "head_neck_two_stage_unet"
    assert ds.SoftwareVersions == "1.2.3" and ds.ApprovalStatus == "UNAPPROVED"
    assert all(o.RTROIInterpretedType == "ORGAN" for o in ds.RTROIObservationsSequence)
    assert not list(tmp_path.glob("*.tmp*"))


def test_an_array_with_its_affine_gives_the_same_contours(tmp_path):
    folder, nifti, headers, _ = synthetic_case(tmp_path / "ct", "axial", False)
    image = nib.load(nifti)
    names = {1: "Brainstem", 2: "SpinalCord", 3: "Parotid_R", 5: "Bone_Mandible"}
    write_rtstruct(nifti, folder, tmp_path / "a.dcm", names)
    write_rtstruct(np.asarray(image.dataobj)[None], folder, tmp_path / "b.dcm", names, affine=image.affine)
    a, b = pydicom.dcmread(tmp_path / "a.dcm"), pydicom.dcmread(tmp_path / "b.dcm")
    assert [[list(c.ContourData) for c in r.ContourSequence] for r in a.ROIContourSequence] == [
        [list(c.ContourData) for c in r.ContourSequence] for r in b.ROIContourSequence]


def test_labels_without_a_name_are_an_error(tmp_path):
    folder, nifti, _, _ = synthetic_case(tmp_path / "ct", "axial", False)
    with pytest.raises(ValueError, match=r"values \[5\] that roi_names does not name"):
        write_rtstruct(nifti, folder, tmp_path / "RS.dcm", {1: "Brainstem", 2: "SpinalCord", 3: "Parotid_R"})
    assert not (tmp_path / "RS.dcm").exists()


def test_missing_extra_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rt_utils", None)  # as if rt-utils were not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[rtstruct\]"'):
        write_rtstruct(np.zeros((2, 2, 2)), tmp_path, tmp_path / "RS.dcm", {1: "Brainstem"}, affine=np.eye(4))


def test_every_organ_of_every_setup_has_its_tg263_name():
    assert tg263_roi_names("openkbp") == {1: "Brainstem", 2: "SpinalCord", 3: "Parotid_R", 4: "Parotid_L",
                                         5: "Bone_Mandible", 6: "Esophagus", 7: "Larynx"}
    assert tg263_roi_names("thesis") == {1: "Brainstem", 2: "Eye_L", 3: "Eye_R", 4: "OpticNrv_L", 5: "OpticNrv_R",
                                        6: "Parotid_L", 7: "Parotid_R", 8: "Bone_Mandible"}
    assert set(TG263_NAMES) == set(organs("openkbp")) | set(organs("thesis"))
    assert all(len(n) <= 16 and " " not in n for n in TG263_NAMES.values())  # TG-263: at most 16 characters


# ------------------------------------------------------------------------------------------- the real CT series
#: TotalSegmentator label -> (ROI name, what it shows): holes and several components on real anatomy
REAL_ORGANS = {5: "Liver", 32: "Bone_Vertebra_T12", 117: "Cartilage_Costal", 52: "A_Aorta", 1: "Spleen"}


@pytest.mark.skipif(not SERIES.is_dir() or not TOTALSEG_LABELS.is_file(),
                    reason=f"real CT DICOM series and its labels not found at {SERIES.parent}")
def test_real_series_with_totalsegmentator_labels(tmp_path):
    """The real 512 x 512 x 20 CT series (UIDs filled in as a PACS export carries them, file names shuffled) and
    TotalSegmentator's labels on it (liver with holes, a vertebra with its canal and processes, costal
    cartilages in several pieces), stored with other axis flips than the ITK-read grid."""
    folder = copy_real_series(SERIES, tmp_path / "ct_series", fill_sop_uids=True)  # blank in the shared copy
    source = nib.load(TOTALSEG_LABELS)
    raw = np.asarray(source.dataobj)
    label = np.zeros(raw.shape, np.uint8)
    roi_names = {}
    for i, (ts, name) in enumerate(REAL_ORGANS.items(), start=1):
        label[raw == ts] = i
        roi_names[i] = name
    nifti = tmp_path / "ct_series_seg.nii.gz"
    nib.save(nib.Nifti1Image(label, source.affine), str(nifti))

    write_rtstruct(nifti, folder, tmp_path / "RS.dcm", roi_names)
    headers = [pydicom.dcmread(folder / n, stop_before_pixels=True) for n in sorted(os.listdir(folder))]
    ds, masks = read_rtstruct(tmp_path / "RS.dcm", {str(h.SOPInstanceUID): h for h in headers})
    check_references(ds, headers)
    assert [r.ROIName for r in ds.StructureSetROISequence] == list(roi_names.values())
    # the truth of every slice pixel: the NIfTI at that pixel's centre, through its own affine
    inv = np.linalg.inv(source.affine)
    truth = {}
    for h in headers:
        ijk = (pixel_centres(h) @ RAS_LPS.T) @ inv[:3, :3].T + inv[:3, 3]
        assert np.abs(ijk - np.rint(ijk)).max() < 1e-3
        i, j, k = np.rint(ijk).astype(int).transpose(2, 0, 1)
        truth[str(h.SOPInstanceUID)] = label[i, j, k]
    scores = compare(masks, truth, roi_names)
    print(f"real series: Dice {scores}")
    assert min(scores.values()) >= MIN_DICE, scores
    # what the Dice covered: holes (the liver, the vertebra around its canal) and several components per slice (the
    # vertebra's processes, the costal cartilages)
    # (8-connected, as the contours trace them)
    eight = np.ones((3, 3), bool)
    for value, name in roi_names.items():
        masks_ = [t == value for t in truth.values()]
        holes = sum(int((ndimage.binary_fill_holes(m) & ~m).any()) for m in masks_)
        parts = max(ndimage.label(m, structure=eight)[1] for m in masks_)
        print(f"  {name}: {holes} slices with holes, up to {parts} components on a slice")
        if name in ("Liver", "Bone_Vertebra_T12"):
            assert holes > 0
        if name in ("Bone_Vertebra_T12", "Cartilage_Costal"):
            assert parts >= 2
    shutil.rmtree(folder)
