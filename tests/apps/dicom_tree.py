"""A DICOM folder tree written from a sample NIfTI CT, the way planning systems export one: CT slices beside an
RT Dose and an RT Plan, and a second CT series in another folder (pydicom; for ``medseg-segment``'s tests)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RTDoseStorage, RTPlanStorage, generate_uid

RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


def _dataset(path: Path, sop_class: str, study: str, series: str, frame: str, modality: str, description: str):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.Modality, ds.SeriesDescription, ds.SeriesNumber = modality, description, 1
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "OPENKBP", "OpenKBP^Sample", "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = (
        "20200101", "120000", "1", "", "")
    return ds


def write_ct_series(nifti: str | Path, folder: str | Path, description: str, study: str | None = None,
                    frame: str | None = None) -> str:
    """Write the CT of ``nifti`` (HU) as an axial DICOM series in ``folder``; returns its SeriesInstanceUID.

    The volume is brought to RAS (nibabel's closest canonical); slice ``k`` holds ``volume[::-1, ::-1, k].T`` with
    ``ImageOrientationPatient`` ``[1, 0, 0, 0, 1, 0]``, so ITK reads back the same voxels on the same world grid.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = nib.as_closest_canonical(nib.load(str(nifti)))
    volume = np.asarray(image.dataobj).astype(np.int16)
    affine = image.affine
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    study, frame, series = study or generate_uid(), frame or generate_uid(), generate_uid()
    nx, ny, nz = volume.shape
    for k in range(nz):
        corner_ras = affine @ np.array([nx - 1, ny - 1, k, 1.0])
        path = folder / f"CT{k:04d}.dcm"
        ds = _dataset(path, CTImageStorage, study, series, frame, "CT", description)
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [float(v) for v in corner_ras[:3] * RAS_TO_LPS]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing (y), column spacing (x)
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "HU"
        ds.PixelData = np.ascontiguousarray(volume[::-1, ::-1, k].T).tobytes()
        ds.save_as(path, enforce_file_format=True)
    return series


def write_rt_objects(folder: str | Path, study: str, frame: str) -> None:
    """An RT Dose (a small multi-frame dose grid: an image, but not CT) and an RT Plan (not an image) in ``folder``."""
    folder = Path(folder)
    dose = _dataset(folder / "RD.dcm", RTDoseStorage, study, generate_uid(), frame, "RTDOSE", "Dose")
    dose.Rows, dose.Columns, dose.NumberOfFrames = 4, 4, 2
    dose.SamplesPerPixel, dose.PhotometricInterpretation = 1, "MONOCHROME2"
    dose.BitsAllocated, dose.BitsStored, dose.HighBit, dose.PixelRepresentation = 16, 16, 15, 0
    dose.ImagePositionPatient, dose.ImageOrientationPatient = [0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    dose.PixelSpacing, dose.GridFrameOffsetVector = [10.0, 10.0], [0.0, 10.0]
    dose.DoseUnits, dose.DoseType, dose.DoseSummationType, dose.DoseGridScaling = "GY", "PHYSICAL", "PLAN", 0.001
    dose.PixelData = np.arange(32, dtype=np.uint16).tobytes()
    dose.save_as(folder / "RD.dcm", enforce_file_format=True)
    plan = _dataset(folder / "RP.dcm", RTPlanStorage, study, generate_uid(), frame, "RTPLAN", "Plan")
    plan.RTPlanLabel, plan.RTPlanGeometry = "PLAN", "PATIENT"
    plan.save_as(folder / "RP.dcm", enforce_file_format=True)
