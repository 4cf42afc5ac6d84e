"""A DICOM folder tree written from a sample NIfTI CT, the way planning systems export one: CT slices beside an
RT Dose and an RT Plan, and a second CT series in another folder (pydicom; for ``medseg-segment``'s tests)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.uid import CTImageStorage, generate_uid

from tests.dicom_factory import new_file, write_rt_dose, write_rt_plan

RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


def _dataset(path: Path, sop_class: str, study: str, series: str, frame: str, modality: str, description: str):
    ds = new_file(path, sop_class)
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


def write_rt_objects(folder: str | Path) -> None:
    """An RT Dose (a small multi-frame dose grid: an image, but not CT) and an RT Plan (not an image) in ``folder``,
    in the study and frame of reference of the CT series there (:mod:`tests.dicom_factory`'s writers)."""
    folder = Path(folder)
    ct = sorted(folder.glob("CT*.dcm"))
    write_rt_dose(folder / "RD.dcm", ct)
    write_rt_plan(folder / "RP.dcm", ct)
