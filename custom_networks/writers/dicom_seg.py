"""DICOM Segmentation (SEG) output of ``inference.json`` for inputs that were a DICOM series.

Implements a DICOM Segmentation Image (PS3.3 A.51, Segmentation IOD; C.8.20 Segmentation Image Module,
BINARY type) written with highdicom (Herrmann et al., J Digit Imaging 2022), one segment per foreground
class, each frame referencing its source slice (Derivation Image and Referenced Series sequences, per-frame
Plane Position = the source slice's ``ImagePositionPatient``), so viewers with DICOM SEG support (OHIF,
3D Slicer) overlay the prediction on the original series. highdicom is imported only when a SEG is written.

How the label map is mapped to the source frames: ``inference.json``'s label map is, after ``Invertd``,
on the grid of the ITK-read input (MONAI ``ITKReader``: array ``(X, Y, Z)``, RAS affine). Nothing here
assumes which ITK axis is which DICOM axis: :func:`label_frames` takes every source slice's
``ImagePositionPatient``, ``ImageOrientationPatient`` and ``PixelSpacing`` (sorted along the slice
normal), maps its pixel (row 0, column 0) and the unit steps along a row, down a column and across
slices through the inverse affine into voxel indices, requires each step to be one voxel along one axis
(and each origin to land on a voxel centre), and reads the frames ``(slices, rows, columns)`` by that
index map. A label map that is not on the series' grid (resampled, cropped, another series) is an error,
never a silently shifted SEG. On the real CT series in ``../shared/data`` this reproduces pydicom's
``pixel_array`` of every slice exactly from the ITK-read volume (``tests/writers/test_dicom_seg.py``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from monai.config import KeysCollection

from ..transforms.dicom_series import read_dicom_series
from .base import LabelMapWriterd, write_atomically

__all__ = [
    "DicomSegGridError",
    "DicomSegReferenceError",
    "SaveDicomSegd",
    "label_frames",
    "read_series_headers",
    "segment_names",
    "write_dicom_seg",
]

#: RAS (MONAI world) <-> LPS (DICOM patient); its own inverse.
RAS_LPS = np.diag([-1.0, -1.0, 1.0])

#: how far (in voxels) a mapped slice origin or step may be off a voxel centre / a unit step
GRID_TOLERANCE = 0.01


#: what every source slice must carry for a SEG to reference it (PS3.3 C.7.6.1 / C.12.1 / C.7.4.1, all Type 1 there)
REFERENCE_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID")

#: Type 2 Patient / General Study attributes (PS3.3 C.7.1.1, C.7.2.1) that the SEG copies from its source;
#: some exporters leave them out instead of writing them empty
TYPE2_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber",
)


class DicomSegReferenceError(ValueError):
    """The source series lacks the UIDs a SEG must reference; the message names the file and the fix."""


class DicomSegGridError(ValueError):
    """The label map does not lie on the source series' voxel grid; the message names the series and the fix."""


def _code(keyword: str):
    from pydicom.sr.codedict import codes

    return getattr(codes.SCT, keyword)


#: class name without its side, normalised (lower case, no separators) -> (property category, property type) as
#: SNOMED CT keywords of pydicom's code dictionary (DICOM CID 7150 / 7151). A "left" or "right" word anywhere in the
#: name ("left parotid", "parotid_left") becomes the laterality modifier (CID 244). Unknown names fall back to
#: "Anatomical Structure" for both; the segment label always carries the class name itself.
PROPERTY_CODES: dict[str, tuple[str, str]] = {
    "bone": ("Tissue", "Bone"),
    "spine": ("AnatomicalStructure", "Spine"),
    "brainstem": ("AnatomicalStructure", "BrainStem"),
    "spinalcord": ("AnatomicalStructure", "SpinalCord"),
    "eye": ("AnatomicalStructure", "Eye"),
    "opticnerve": ("AnatomicalStructure", "OpticNerve"),
    "parotid": ("AnatomicalStructure", "ParotidGland"),
    "mandible": ("AnatomicalStructure", "Mandible"),
    "esophagus": ("AnatomicalStructure", "Esophagus"),
    "larynx": ("AnatomicalStructure", "Larynx"),
    "femoralcartilage": ("Tissue", "Cartilage"),
    "tibialcartilage": ("Tissue", "Cartilage"),
}


def property_codes(name: str) -> tuple[str, str, str | None]:
    """(category, type, laterality or None) SNOMED CT keywords of a class name (see :data:`PROPERTY_CODES`)."""
    words = [w for w in re.split(r"[\s_\-]+", name.lower()) if w]
    laterality = "Left" if "left" in words else "Right" if "right" in words else None
    base = "".join(w for w in words if w not in ("left", "right"))
    return (*PROPERTY_CODES.get(base, ("AnatomicalStructure", "AnatomicalStructure")), laterality)


def segment_names(channel_def: Mapping[str, str]) -> dict[int, str]:
    """Label value -> class name from a ``metadata.json`` ``channel_def``.

    One channel (a sigmoid output, label map 0/1): label 1 is ``channel_def["0"]``. Several channels (softmax,
    then argmax): label ``k`` is ``channel_def[str(k)]`` and channel 0 is the background, left out.
    """
    items = {int(k): str(v) for k, v in channel_def.items()}
    if len(items) == 1:
        return {1: next(iter(items.values()))}
    return {k: v for k, v in sorted(items.items()) if k != 0}


def read_series_headers(folder: str | os.PathLike, modality: str | None = None) -> list:
    """The headers (pydicom Datasets, no pixel data) of the one series in ``folder``, sorted along the slice normal.

    The folder is read and checked by :func:`custom_networks.transforms.dicom_series.read_dicom_series` (one image
    series, of ``modality`` when given; non-image objects such as RT Dose, RT Plan and RT Structure Sets skipped; no
    missing or duplicate slices; each header read once). The sort is by ``ImagePositionPatient`` projected on the
    normal ``row direction x column direction`` of ``ImageOrientationPatient``, ascending.

    In the returned in-memory copies (the files are never written), a blank ``SOPClassUID`` / ``SOPInstanceUID``
    is taken from the file meta's Media Storage SOP Class / Instance UID (the same values by PS3.10 7.1; some
    anonymisers blank only the dataset's copy), and absent Type 2 patient/study attributes are set empty.

    Raises:
        DicomSegReferenceError: a slice has no Study / Series / SOP Instance / SOP Class / Frame of Reference UID
            (a SEG must reference them), e.g. the anonymised example series in ``../shared/data``.
        DicomSegGridError: a slice has no ``ImagePositionPatient``, ``ImageOrientationPatient`` or ``PixelSpacing``.
    """
    headers = read_dicom_series(folder, modality=modality)
    for ds in headers:
        # anonymisers sometimes blank the dataset's SOP Class/Instance UIDs but keep the file meta copies, which
        # PS3.10 7.1 defines as the same values (Media Storage SOP Class/Instance UID): take them from there
        meta = getattr(ds, "file_meta", None)
        for tag in ("SOPClassUID", "SOPInstanceUID"):
            meta_tag = f"MediaStorage{tag}"
            if not str(ds.get(tag, "") or "") and meta is not None and str(meta.get(meta_tag, "") or ""):
                setattr(ds, tag, meta.get(meta_tag))
        for tag in TYPE2_COPIED:  # highdicom copies these; absent (non-conformant) means unknown, i.e. empty
            if tag not in ds:
                setattr(ds, tag, "")
        missing = [t for t in REFERENCE_UIDS if not str(ds.get(t, "") or "").strip()]
        if missing:
            raise DicomSegReferenceError(
                f"{folder}: {os.path.basename(ds.filename)} has no {', '.join(missing)} (empty or absent), so a "
                "DICOM SEG "
                "cannot reference the series (viewers match a SEG to its images by these UIDs; an anonymiser may "
                "have blanked them). Re-export the series with its UIDs kept (or fill them in with pydicom/dcmodify "
                "in a copy), or run without --save_dicom_seg: the NIfTI label map does not need them."
            )
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if tag not in ds:
                raise DicomSegGridError(
                    f"{folder}: {os.path.basename(ds.filename)} has no {tag}, so a DICOM SEG cannot be placed on "
                    "the series. Turn save_dicom_seg off for this input (the NIfTI label map is still written)."
                )
    return headers  # every slice has a position here, so read_dicom_series sorted them along the normal


def label_frames(label: np.ndarray, affine: np.ndarray, headers: Sequence, source: str = "the series") -> np.ndarray:
    """The frames ``(len(headers), Rows, Columns)`` of ``label`` that lie on each source slice, pixel for pixel.

    Args:
        label: ``(X, Y, Z)`` label map on the ITK-read grid of the series (``inference.json`` after ``Invertd``).
        affine: its 4x4 voxel-to-world matrix in RAS (a MONAI MetaTensor's ``affine``).
        headers: the source slices' datasets (``ImagePositionPatient``, ``ImageOrientationPatient``,
            ``PixelSpacing``, ``Rows``, ``Columns``), in the order the frames are wanted.
        source: the series' name for error messages.

    Returns:
        ``frames[s, r, c]`` = the label at the centre of pixel (row ``r``, column ``c``) of slice ``headers[s]``.

    Raises:
        DicomSegGridError: when a slice's pixels do not fall on the label map's voxel centres (the label map was
            resampled or comes from another series), or fall outside it.
    """
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError(f"label_frames needs a 3D label map (X, Y, Z), got shape {label.shape}.")
    inv = np.linalg.inv(np.asarray(affine, float))
    to_voxel = inv[:3, :3] @ RAS_LPS  # LPS direction -> voxel step
    fix = (
        "write the label map on the input's grid (SaveImaged with resample=false after Invertd) "
        "and pass the same series"
    )

    def voxel(point_lps):
        return to_voxel @ np.asarray(point_lps, float) + inv[:3, 3]

    ds0 = headers[0]
    rows, cols = int(ds0.Rows), int(ds0.Columns)
    iop = np.asarray(ds0.ImageOrientationPatient, float)
    spacing = np.asarray(ds0.PixelSpacing, float)  # [between rows, between columns]
    # DICOM PS3.3 C.7.6.2.1.1: IOP[:3] is the direction of increasing column index (along a row), IOP[3:]
    # the direction of increasing row index (down a column); PixelSpacing[1] the column step, [0] the row step
    step_c = to_voxel @ (iop[:3] * spacing[1])
    step_r = to_voxel @ (iop[3:] * spacing[0])
    origins = np.stack([voxel(ds.ImagePositionPatient) for ds in headers])

    def unit_axis(step, what):
        axis = int(np.argmax(np.abs(step)))
        sign = int(np.sign(step[axis]))
        expected = np.zeros(3)
        expected[axis] = sign
        if np.abs(step - expected).max() > GRID_TOLERANCE:
            raise DicomSegGridError(
                f"{source}: one step {what} of the DICOM slices is {np.round(step, 4).tolist()} voxels of the label "
                f"map, not one voxel along one axis: the label map is not on the series' grid; {fix}."
            )
        return axis, sign

    axis_c, sign_c = unit_axis(step_c, "along a row")
    axis_r, sign_r = unit_axis(step_r, "down a column")
    if axis_c == axis_r:
        raise DicomSegGridError(f"{source}: rows and columns map onto one label-map axis; {fix}.")
    (axis_s,) = {0, 1, 2} - {axis_c, axis_r}
    rounded = np.rint(origins)
    if np.abs(origins - rounded).max() > GRID_TOLERANCE:
        raise DicomSegGridError(
            f"{source}: the slice origins fall up to {np.abs(origins - rounded).max():.3f} voxels off the label map's "
            f"voxel centres; {fix}."
        )
    rounded = rounded.astype(np.int64)
    in_plane = [a for a in (0, 1, 2) if a != axis_s]
    if (rounded[:, in_plane] != rounded[0, in_plane]).any():
        raise DicomSegGridError(f"{source}: the slices are shifted in-plane against each other (gantry tilt?); {fix}.")

    s = np.arange(len(headers))[:, None, None]
    r = np.arange(rows)[None, :, None]
    c = np.arange(cols)[None, None, :]
    index = [None, None, None]
    index[axis_s] = rounded[:, axis_s][s]
    index[axis_r] = rounded[0, axis_r] + sign_r * r
    index[axis_c] = rounded[0, axis_c] + sign_c * c
    for a, idx in enumerate(index):
        if idx.min() < 0 or idx.max() >= label.shape[a]:
            raise DicomSegGridError(
                f"{source}: the series' {len(headers)} slices of {rows}x{cols} pixels reach voxel indices "
                f"{int(idx.min())}..{int(idx.max())} along axis {a} of a label map of shape {label.shape}; {fix}."
            )
    return label[index[0], index[1], index[2]]


def _segment_description(number: int, name: str, algorithm):
    import highdicom as hd
    from highdicom.sr.coding import CodedConcept

    category, kind, laterality = property_codes(name)
    desc = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=_code(category),
        segmented_property_type=_code(kind),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    if laterality is not None:  # PS3.3 C.8.20.2: Segmented Property Type Modifier Code Sequence (0062,0011)
        code = _code(laterality)
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            CodedConcept(code.value, code.scheme_designator, code.meaning)
        ]
    return desc


def write_dicom_seg(
    frames: np.ndarray,
    headers: Sequence,
    names: Mapping[int, str],
    path: str | os.PathLike,
    algorithm_name: str,
    algorithm_version: str,
) -> int:
    """Write a BINARY DICOM SEG of ``frames`` on the source slices ``headers`` to ``path``; return its frame count.

    Args:
        frames: ``(len(headers), Rows, Columns)`` integer label map, ``frames[s]`` on ``headers[s]``
            (see :func:`label_frames`). Value ``k > 0`` is segment ``k``.
        headers: the source series' datasets (pixel data not needed), in the order of ``frames``.
        names: label value -> segment label, for every value ``1..max(names)`` (see :func:`segment_names`).
        path: the output file; written to ``<path>.tmp`` and renamed, so no truncated SEG is ever left.
        algorithm_name, algorithm_version: the Algorithm Identification Sequence of every segment
            (family "Artificial Intelligence", DCM 123110).

    Empty frames are left out (highdicom ``omit_empty_frames``); a segment without any voxel is still described
    (every class of ``names`` is listed) but has no frames. When the whole label map is empty the SEG is still
    written, with all frames of every segment (all zero), since a SEG needs at least one frame: one SEG per case,
    so "nothing found" is not confused with "not run". The SEG's SeriesNumber is the source's + 1000.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    frames = np.asarray(frames)
    numbers = sorted(names)
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"segment numbers must be 1..N, got {numbers}.")
    present = np.unique(frames)
    unknown = sorted(int(v) for v in present if v != 0 and int(v) not in names)
    if unknown:
        raise ValueError(
            f"{path}: the label map holds values {unknown} that channel_def does not name ({dict(names)}); "
            "fix channel_def in metadata.json or pass class_names."
        )
    stacked = np.stack([frames == k for k in numbers], axis=-1).astype(np.uint8)  # (S, R, C, segments)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name[:64], family=codes.cid7162.ArtificialIntelligence, version=algorithm_version[:64]
    )
    options = dict(
        source_images=list(headers),
        pixel_array=stacked,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(k, names[k], algorithm) for k in numbers],
        series_instance_uid=hd.UID(),
        series_number=int(headers[0].get("SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medseg-bundles",
        manufacturer_model_name=algorithm_name[:64],
        software_versions=algorithm_version[:64],
        device_serial_number="none",
        content_description=f"{algorithm_name} {algorithm_version}"[:64],
        series_description=f"SEG {algorithm_name}"[:64],
        # a SEG needs at least one frame: an empty prediction keeps all (empty) frames of every segment
        omit_empty_frames=bool(stacked.any()),
    )
    quiet = logging.getLogger("highdicom")  # otherwise one INFO line per copied DICOM module, for every case
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        seg = hd.seg.Segmentation(**options)
    finally:
        quiet.setLevel(level)
    write_atomically(path, lambda tmp: seg.save_as(tmp, enforce_file_format=True))
    return int(seg.NumberOfFrames)


class SaveDicomSegd(LabelMapWriterd):
    """Write a DICOM SEG of each label map whose input was a DICOM series folder (``inference.json``).

    Standard: DICOM PS3.3 A.51 Segmentation IOD, BINARY, one segment per foreground class (label from
    ``channel_def``, algorithm type AUTOMATIC, algorithm name and version from ``metadata.json``), every frame
    referencing its source slice; written with highdicom. Put it last in the postprocessing, after
    ``SaveImaged``, on the inverted, discrete prediction ``(1, X, Y, Z)`` (the input's ITK-read grid); see the
    module docstring for how voxels are matched to the source frames.

    The file is ``<output_dir>/<series folder name>_<output_postfix>.dcm`` (next to ``SaveImaged``'s
    ``<name>_seg.nii.gz``), written atomically (checks, name and atomic write:
    :class:`~custom_networks.writers.base.LabelMapWriterd`). ``enabled=False`` (the configs' ``save_dicom_seg``,
    default false) makes the transform a no-op.

    Input that is not a DICOM series folder (NIfTI, NRRD, ...): a ``UserWarning`` naming the file, and no SEG;
    the NIfTI label map is already written. A warning rather than an error because one datalist may mix
    folders and files and the run should not stop half-way for an optional extra output. A series folder that
    cannot carry a correct SEG is an error, since the user asked for one and a wrong one would mislead: slices
    without the UIDs a SEG must reference (:class:`DicomSegReferenceError`, e.g. blanked by an anonymiser) or a
    label map off the series' grid (:class:`DicomSegGridError`). Segment numbers: see :func:`segment_names`.

    Args:
        keys: label-map keys (``"pred"``).
        output_dir: folder of the SEG files (created when missing).
        metadata_file: the bundle's ``metadata.json``: ``channel_def`` of ``network_data_format.outputs.pred``
            names the segments (:func:`segment_names`), ``name`` and ``version`` identify the algorithm.
        class_names: label value -> name, overriding ``channel_def`` (e.g. ``{1: "bone"}``).
        output_postfix: suffix after the input's name (``"seg"``).
        enabled: write SEGs at all.
        print_log: log the path and frame count of each SEG.
    """

    suffix = ".dcm"
    what = "DICOM SEG"
    flag = "save_dicom_seg"

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        metadata_file: str | os.PathLike | None = None,
        class_names: Mapping[int | str, str] | None = None,
        output_postfix: str = "seg",
        enabled: bool = True,
        print_log: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, output_dir, output_postfix, enabled, print_log, allow_missing_keys)
        self.algorithm_name, self.algorithm_version = "medseg-bundles", "0"
        self.names: dict[int, str] | None = None
        if metadata_file is not None and self.enabled:
            with open(metadata_file) as f:
                meta = json.load(f)
            self.algorithm_name = str(meta.get("name", self.algorithm_name))
            self.algorithm_version = str(meta.get("version", self.algorithm_version))
            try:
                self.names = segment_names(meta["network_data_format"]["outputs"]["pred"]["channel_def"])
            except KeyError as e:
                raise ValueError(f"{metadata_file} has no network_data_format.outputs.pred.channel_def ({e}).") from e
        if class_names is not None:
            self.names = {int(k): str(v) for k, v in class_names.items()}
        if self.enabled and not self.names:
            raise ValueError(
                "SaveDicomSegd needs metadata_file (with channel_def) or class_names to name the segments."
            )
        if self.enabled:
            try:
                import highdicom  # noqa: F401
            except ImportError as e:  # before anything is written, not after the first case
                raise ImportError(
                    "save_dicom_seg needs highdicom: pip install highdicom (it is in the repo's dependencies and the "
                    "bundle's metadata.json), or run without --save_dicom_seg."
                ) from e

    def accepts(self, source: str) -> bool:
        """Only a DICOM series folder gets a SEG; any other input gets a warning (see the class docstring)."""
        if os.path.isdir(source):
            return True
        warnings.warn(
            f"save_dicom_seg: {source or 'the input'} is not a DICOM series folder, so no DICOM SEG is written "
            "for it (only the NIfTI label map). A DICOM SEG references the source slices: pass the folder that "
            "holds the series, or turn save_dicom_seg off.",
            UserWarning,
            stacklevel=3,
        )
        return False

    def write(self, label: np.ndarray, affine: np.ndarray, source: str, path: str) -> str:
        headers = read_series_headers(source)
        frames = label_frames(np.rint(label).astype(np.int64), affine, headers, source)
        n = write_dicom_seg(frames, headers, self.names, path, self.algorithm_name, self.algorithm_version)
        return f"{n} frames, {len(self.names)} segments, source series {source}"
