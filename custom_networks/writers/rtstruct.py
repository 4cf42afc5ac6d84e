"""DICOM RT Structure Set (RTSTRUCT) of a label map, for radiotherapy planning systems.

Implements an RT Structure Set (PS3.3 A.19: Structure Set, ROI Contour and RT ROI Observations modules) with one
ROI per organ, its contours ``CLOSED_PLANAR`` on the source CT's own slices, referencing the source series:
its Frame of Reference UID, every slice in the Referenced Frame of Reference Sequence's Contour Image Sequence,
and each contour the SOP Instance UID of the slice it lies on. Written with rt-utils (Qurit, MIT licence), which
traces each slice's mask with OpenCV (``cv2.findContours``, ``RETR_TREE``: an outer contour per component and
one per hole; planning systems and DICOM readers fill nested contours by the even-odd rule, so holes and
several components come through), and finished with pydicom.

How the label map is mapped onto the CT slices: as the DICOM SEG writer does, by
:func:`~custom_networks.writers.dicom_seg.label_frames` from each slice's ``ImagePositionPatient``,
``ImageOrientationPatient`` and ``PixelSpacing`` (a label map off the series' grid is an error, never a shifted
contour). The slices are those of :func:`~custom_networks.writers.dicom_seg.read_series_headers` (one checked
series; RT Dose, RT Plan and other non-image objects beside it are skipped), in rt-utils' own order: ascending
``ImagePositionPatient`` projected on the normal of ``ImageOrientationPatient`` (not file name, InstanceNumber
or z). rt-utils' mask layout is ``(Rows, Columns, slices)``.

Where rt-utils 1.2.7 is not used as it is (each place says why in a comment): its series loader (walks
sub-folders, takes every file with pixel data, an RT Dose included), its column scale for non-square pixels,
and the identification of the file (manufacturer "Qurit", the CT's series description, series number 1).
rt-utils and OpenCV are the optional ``rtstruct`` extra (``pip install -e ".[rtstruct]"``), imported when an
RTSTRUCT is written.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from ..extras import require
from .base import write_atomically
from .dicom_seg import TYPE2_COPIED, label_frames, read_series_headers

__all__ = ["RtStructGeometryError", "load_label_map", "write_rtstruct"]

#: how far (mm) a contour may lie off the plane of the slice it references
PLANE_TOLERANCE_MM = 0.01

#: the SeriesNumber of an RTSTRUCT is its source's plus this (a DICOM SEG's is the source's + 1000)
SERIES_NUMBER_OFFSET = 2000

logger = logging.getLogger(__name__)


class RtStructGeometryError(ValueError):
    """rt-utils placed a contour off the slice it references (a series geometry it does not model); the message
    names the series and the slice."""


def load_label_map(label_map, affine: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(label (X, Y, Z) int64, affine 4x4 RAS)`` of a label map given as a NIfTI path or as an array.

    Args:
        label_map: a NIfTI file (``inference.json``'s ``<name>_seg.nii.gz``: the input's shape and affine), or an
            array / tensor / MONAI MetaTensor ``(X, Y, Z)`` or ``(1, X, Y, Z)`` on the CT's ITK-read grid.
        affine: the array's voxel-to-world matrix in RAS (MONAI's convention); taken from a MetaTensor or the
            NIfTI header when None.

    Raises:
        ValueError: no affine for an array, a label map that is not 3D, or non-integer labels.
    """
    if isinstance(label_map, (str, os.PathLike)):
        import nibabel as nib

        image = nib.load(os.fspath(label_map))
        array, affine = np.asanyarray(image.dataobj), image.affine if affine is None else affine
        source = os.fspath(label_map)
    else:
        if affine is None and hasattr(label_map, "affine"):
            affine = label_map.affine
        array = label_map.detach().cpu().numpy() if hasattr(label_map, "detach") else np.asarray(label_map)
        source = "the label map"
    if affine is None:
        raise ValueError("write_rtstruct: give the label map's affine (4x4, RAS) with an array, or pass a NIfTI path.")
    affine = np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, float)
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"{source}: an RTSTRUCT needs a 3D label map (X, Y, Z), got shape {array.shape}.")
    rounded = np.rint(array)
    if not np.array_equal(rounded, array):
        raise ValueError(f"{source} holds non-integer values: pass the discrete label map (after argmax).")
    return rounded.astype(np.int64), affine


def _rt_utils():
    """rt-utils' modules, or an ImportError naming the extra."""
    purpose = "Writing an RTSTRUCT"
    require("cv2", purpose)
    require("rt_utils", purpose)
    from rt_utils import ds_helper, image_helper
    from rt_utils.rtstruct import RTStruct

    return RTStruct, ds_helper, image_helper


def _normal(ds) -> np.ndarray:
    iop = np.asarray(ds.ImageOrientationPatient, float)
    return np.cross(iop[:3], iop[3:])


def write_rtstruct(
    label_map,
    series_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    roi_names: Mapping[int, str],
    affine: np.ndarray | None = None,
    colors: Mapping[int, Sequence[int]] | None = None,
    structure_set_label: str = "AUTOSEG",
    algorithm_name: str = "medseg-bundles",
    algorithm_version: str = "0",
    modality: str | None = None,
    pin_hole: bool = False,
) -> dict[str, int]:
    """Write an RTSTRUCT of ``label_map`` on the CT series in ``series_dir`` to ``out_path``.

    Args:
        label_map: a NIfTI path or an array with ``affine`` (see :func:`load_label_map`), on the series' grid:
            ``inference.json``'s ``<name>_seg.nii.gz`` of that series.
        series_dir: the folder of the source DICOM series (non-image objects beside it are skipped).
        out_path: the RTSTRUCT file; written to a temporary file and renamed, never left half-written.
        roi_names: label value -> ROI name, one ROI per entry in ascending label order (ROI numbers 1, 2, ...),
            e.g. :func:`custom_networks.labels.head_neck.tg263_roi_names`. A label absent from the label map
            gives an ROI without contours, so "not found" is not mistaken for "not segmented".
        affine: the array's RAS affine (not needed for a NIfTI path or a MetaTensor).
        colors: label value -> ``[r, g, b]`` (0-255) display colours; default rt-utils' palette.
        structure_set_label: Structure Set Label (SH, at most 16 characters).
        algorithm_name, algorithm_version: the writer's identification (Manufacturer Model Name, Software
            Versions, Structure Set Name, ROI descriptions), e.g. the bundle's name and version.
        modality: only slices of this ``Modality`` form the series (``"CT"``); None (default): the folder's one
            image series of any modality.
        pin_hole: cut each hole open to the outside with a thin channel, so that every component is one contour
            (for planning systems that do not fill nested contours by the even-odd rule); default False.

    Returns:
        ROI name -> number of contours written.

    Raises:
        ImportError: rt-utils or OpenCV is missing (the ``rtstruct`` extra).
        ValueError: labels that ``roi_names`` does not name, a label map that is not 3D or not integer.
        DicomSegGridError: the label map is not on the series' grid.
        DicomSegReferenceError: the slices lack the UIDs an RTSTRUCT references (blanked by an anonymiser).
        DicomSeriesError: the folder does not hold one complete image series.
        RtStructGeometryError: a contour would not lie on the slice it references.
    """
    RTStruct, ds_helper, image_helper = _rt_utils()
    series_dir = os.fspath(series_dir)
    label, affine = load_label_map(label_map, affine)
    names = {int(k): str(v) for k, v in roi_names.items()}
    unknown = sorted(int(v) for v in np.unique(label) if v != 0 and int(v) not in names)
    if unknown:
        raise ValueError(f"{out_path}: the label map holds values {unknown} that roi_names does not name "
                         f"({names}); pass a name for every label.")
    if len(structure_set_label) > 16:
        raise ValueError(f"structure_set_label {structure_set_label!r} is longer than 16 characters (DICOM SH).")

    # rt-utils' RTStructBuilder.create_new(folder) loads the series itself: it walks sub-folders and keeps every
    # file with pixel data, so an RT Dose beside the CT (a planning-system export) would become a "slice". The
    # slices here are the checked series (RT objects skipped), sorted by rt-utils' own key, the position along the
    # normal; RTStruct and ds_helper are what create_new calls on its slices.
    headers = sorted(read_series_headers(series_dir, modality=modality), key=image_helper.get_slice_position)
    frames = label_frames(label, affine, headers, series_dir)  # (slices, rows, columns), frames[s] on headers[s]
    masks = np.moveaxis(frames, 0, -1)  # rt-utils' layout: (Rows, Columns, slices)

    # rt-utils 1.2.7 scales the column index by PixelSpacing[0] and the row index by PixelSpacing[1]
    # (image_helper.get_pixel_to_patient_transformation_matrix); DICOM's PixelSpacing is [between rows, between
    # columns]. For non-square pixels it is handed copies with the two values swapped, so its contours land on the
    # right points; the RTSTRUCT copies nothing else from them.
    slices = [copy.deepcopy(ds) for ds in headers]
    for ds in slices:
        ds.PixelSpacing = list(ds.PixelSpacing)[::-1]

    # rt-utils prints its progress; pydicom 3 logs (and warns) that rt-utils' is_little_endian / is_implicit_VR
    # will go in pydicom 4 (the transfer syntax is in the file meta, which is what pydicom 3 writes by)
    quiet = logging.getLogger("pydicom")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", DeprecationWarning)
            rtstruct = RTStruct(slices, ds_helper.create_rtstruct_dataset(slices))
            for value in sorted(names):
                color = None if colors is None or value not in colors else [int(c) for c in colors[value]]
                rtstruct.add_roi(mask=masks == value, color=color, name=names[value][:64],
                                 description=f"{algorithm_name} {algorithm_version}"[:64], use_pin_hole=pin_hole,
                                 approximate_contours=True, roi_generation_algorithm=0)
    finally:
        quiet.setLevel(level)
    ds = rtstruct.ds
    _check_contour_planes(ds, headers, series_dir)
    _identify(ds, headers[0], structure_set_label, algorithm_name, algorithm_version)
    write_atomically(out_path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
    counts = {}
    for roi, contour in zip(ds.StructureSetROISequence, ds.ROIContourSequence):
        counts[str(roi.ROIName)] = len(contour.get("ContourSequence", []))
    logger.info("RTSTRUCT: %s (%d ROIs, %d contours, source series %s)", out_path, len(counts),
                sum(counts.values()), series_dir)
    return counts


def _check_contour_planes(ds, headers: Sequence, source: str) -> None:
    """Every contour lies in the plane of the slice it references. rt-utils places slice ``i`` at the first
    slice's position plus ``i`` times the mean step; on an evenly spaced series (which ``label_frames`` has
    required) that is the slice's own position, and this check makes sure of it."""
    by_uid = {str(h.SOPInstanceUID): h for h in headers}
    for roi_contour in ds.ROIContourSequence:
        for contour in roi_contour.get("ContourSequence", []):
            uid = str(contour.ContourImageSequence[0].ReferencedSOPInstanceUID)
            slice_ds = by_uid[uid]
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            off = np.abs((points - np.asarray(slice_ds.ImagePositionPatient, float)) @ _normal(slice_ds)).max()
            if off > PLANE_TOLERANCE_MM:
                name = os.path.basename(getattr(slice_ds, "filename", "") or uid)
                raise RtStructGeometryError(
                    f"{source}: a contour referencing slice {name} lies {off:.3f} mm off that slice's plane; the "
                    "series' slices are not evenly spaced along their normal. Re-export or resample the series "
                    "onto even slice steps.")
            contour.NumberOfContourPoints = len(points)  # rt-utils writes a float (len / 3)


def _identify(ds, source, label: str, algorithm_name: str, algorithm_version: str) -> None:
    """What rt-utils fills with its own identity or the CT's: this writer's identity and a series of its own."""
    ds.Manufacturer = "medseg-bundles"
    ds.ManufacturerModelName = algorithm_name[:64]
    ds.SoftwareVersions = algorithm_version[:64]
    if "InstitutionName" in ds:
        del ds.InstitutionName  # rt-utils writes "Qurit"
    ds.SeriesDescription = f"RTSTRUCT {algorithm_name}"[:64]
    ds.SeriesDate, ds.SeriesTime = ds.StructureSetDate, ds.StructureSetTime  # rt-utils copies the CT's
    ds.SeriesNumber = int(source.get("SeriesNumber", 0) or 0) + SERIES_NUMBER_OFFSET
    ds.InstanceNumber = 1
    ds.StructureSetLabel = label
    ds.StructureSetName = f"{algorithm_name} {algorithm_version}"[:64]
    for tag in TYPE2_COPIED:  # Type 2 patient / study attributes rt-utils leaves out
        if tag not in ds:
            setattr(ds, tag, source.get(tag, ""))
    for observation in ds.RTROIObservationsSequence:
        observation.RTROIInterpretedType = "ORGAN"
        if "ROIObservationDescription" in observation:
            del observation.ROIObservationDescription  # rt-utils' viewer settings
