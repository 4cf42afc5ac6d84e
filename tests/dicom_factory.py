"""Small DICOM exports written with pydicom for the tests: a CT series of a phantom, and the RT objects a planning
system exports beside it (a multi-frame RT Dose with Rows and Columns, an RT Plan, an RT Structure Set).

The CT's voxels and the tests' organs are functions of the patient position (LPS, mm), so a test can compute what
any pixel of any slice should hold from the DICOM geometry alone, independently of how a reader stacks slices.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    RTDoseStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    generate_uid,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def pixel_centres(ds) -> np.ndarray:
    """``(Rows, Columns, 3)`` LPS positions (mm) of a slice's pixel centres, from its DICOM geometry
    (PS3.3 C.7.6.2.1.1: ``IOP[:3]`` along a row, spaced ``PixelSpacing[1]``; ``IOP[3:]`` down a column, spaced
    ``PixelSpacing[0]``)."""
    iop = np.asarray(ds.ImageOrientationPatient, float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    r, c = np.meshgrid(np.arange(int(ds.Rows)), np.arange(int(ds.Columns)), indexing="ij")
    return np.asarray(ds.ImagePositionPatient, float) + r[..., None] * dr * iop[3:] + c[..., None] * dc * iop[:3]


def phantom_hu(lps: np.ndarray, centre) -> np.ndarray:
    """CT-like values at LPS positions ``(..., 3)``: air, an elliptic body of soft tissue with fat under its skin,
    and a bone ring behind the centre."""
    x, y = lps[..., 0] - centre[0], lps[..., 1] - centre[1]
    body = (x / 28.0) ** 2 + (y / 22.0) ** 2
    hu = np.where(body < 1.0, 40.0, -1000.0)
    hu = np.where((body < 1.0) & (body > 0.8), -90.0, hu)
    bone = np.hypot(x, y - 10.0)
    return np.where((bone > 4.0) & (bone < 7.0), 700.0, hu)


def new_file(path: Path, sop_class: str) -> FileDataset:
    """An empty DICOM file dataset of ``sop_class`` with fresh SOP Instance UID and file meta (explicit VR LE)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    return ds


def _patient(ds, study_uid: str) -> None:
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "HN001", "Test^Planning", "", "O"
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime, ds.StudyID = study_uid, "20260101", "120000", "1"
    ds.ReferringPhysicianName, ds.AccessionNumber = "", ""


def write_ct_series(
    folder: Path,
    rows: int = 40,
    cols: int = 56,
    n: int = 10,
    iop=AXIAL,
    spacing=(1.2, 0.9),
    step: float = 2.5,
    origin=(-25.0, -18.0, 100.0),
    study_uid: str | None = None,
    frame_uid: str | None = None,
    series_uid: str | None = None,
    description: str = "CT head neck",
    series_number: int = 2,
    prefix: str = "IMG",
    seed: int = 0,
) -> list[Path]:
    """``n`` CT slices of :func:`phantom_hu` in ``folder``, file names shuffled (neither position nor instance
    order), InstanceNumber 1 at the far end of the slice normal. Returns the files in slice-normal order."""
    folder.mkdir(parents=True, exist_ok=True)
    iop = np.asarray(iop, float)
    normal = np.cross(iop[:3], iop[3:])
    study_uid, frame_uid = study_uid or generate_uid(), frame_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    centre = np.asarray(origin) + 0.5 * (rows * spacing[0] * iop[3:] + cols * spacing[1] * iop[:3])
    order = list(range(n))
    random.Random(seed).shuffle(order)
    paths: list[Path] = [None] * n
    for name_rank, s in enumerate(order):
        path = folder / f"{prefix}{name_rank:03d}.dcm"
        ds = new_file(path, CTImageStorage)
        _patient(ds, study_uid)
        ds.Modality, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "CT", series_uid, frame_uid
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = description, series_number, n - s
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + s * step * normal]
        ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
        ds.SliceThickness = float(step)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        hu = phantom_hu(pixel_centres(ds), centre)
        ds.PixelData = np.clip(hu + 1024, 0, 65535).astype(np.uint16).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths[s] = path
    return paths


def _rt_object(path: Path, ct: list[Path], sop_class: str, modality: str, series_number: int):
    """``(dataset, the CT's first header)``: an RT object of its own series in the CT's study."""
    import pydicom

    ref = pydicom.dcmread(ct[0], stop_before_pixels=True)
    ds = new_file(path, sop_class)
    _patient(ds, ref.StudyInstanceUID)
    ds.Modality, ds.SeriesInstanceUID = modality, generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = series_number, 1
    return ds, ref


def write_rt_dose(path: Path, ct: list[Path], frames: int = 4) -> Path:
    """A multi-frame RT Dose (Rows, Columns, NumberOfFrames, its own series) on the CT's frame of reference."""
    ds, ref = _rt_object(path, ct, RTDoseStorage, "RTDOSE", 90)
    ds.FrameOfReferenceUID = ref.FrameOfReferenceUID
    ds.ImageOrientationPatient = list(ref.ImageOrientationPatient)
    ds.ImagePositionPatient = list(ref.ImagePositionPatient)
    ds.PixelSpacing = [3.0, 3.0]
    ds.Rows, ds.Columns, ds.NumberOfFrames = 8, 10, frames
    ds.GridFrameOffsetVector = [3.0 * k for k in range(frames)]
    ds.FrameIncrementPointer = (0x3004, 0x000C)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType, ds.DoseGridScaling = "GY", "PHYSICAL", "PLAN", 1e-4
    ds.PixelData = np.arange(frames * 80, dtype=np.uint32).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rt_plan(path: Path, ct: list[Path]) -> Path:
    """An RT Plan (no pixel data) of the CT's study."""
    ds, ref = _rt_object(path, ct, RTPlanStorage, "RTPLAN", 91)
    ds.FrameOfReferenceUID = ref.FrameOfReferenceUID
    ds.RTPlanLabel, ds.RTPlanGeometry = "HN plan", "PATIENT"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rt_struct(path: Path, ct: list[Path]) -> Path:
    """A clinical-looking RT Structure Set (one ROI, no contours) referencing the CT series."""
    ds, ref = _rt_object(path, ct, RTStructureSetStorage, "RTSTRUCT", 92)
    ds.StructureSetLabel = "Clinical"
    frame = Dataset()
    frame.FrameOfReferenceUID = ref.FrameOfReferenceUID
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    roi = Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = 1, ref.FrameOfReferenceUID, "External"
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = Sequence([roi])
    ds.save_as(path, enforce_file_format=True)
    return path


def write_planning_export(folder: Path, **ct_options) -> list[Path]:
    """A planning-system export: a CT series beside an RT Dose, an RT Plan and an RT Structure Set, in one
    folder. Returns the CT's files in slice order."""
    ct = write_ct_series(folder, **ct_options)
    write_rt_dose(folder / "RD.dcm", ct)
    write_rt_plan(folder / "RP.dcm", ct)
    write_rt_struct(folder / "RS.dcm", ct)
    return ct


def copy_real_series(source: Path, folder: Path, fill_sop_uids: bool = False) -> Path:
    """A copy of a real (anonymised) CT series in ``folder`` with the Study / Series UIDs a PACS export carries and
    its file names shuffled; with ``fill_sop_uids`` the blank SOP Instance / Class UIDs are filled in from each
    file's meta (else they stay blank, as in the shared copy). Returns ``folder``."""
    import os

    import pydicom

    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    names = sorted(os.listdir(source))
    shuffled = names[:]
    random.Random(1).shuffle(shuffled)
    for name, new in zip(names, shuffled):
        ds = pydicom.dcmread(source / name)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study, series, 2
        if fill_sop_uids:
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.save_as(folder / f"x{new}")
    return folder
