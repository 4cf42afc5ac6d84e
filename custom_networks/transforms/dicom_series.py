"""Checks of a DICOM series folder, run before MONAI reads it, that name the folder, the fault and the fix.

Why: MONAI's ``ITKReader`` (what ``LoadImaged`` uses for a folder) takes the **first** series it finds
when a folder holds several, with only a warning, and ITK stacks a series with missing slices as if
the slices were evenly spaced, so the volume's geometry is silently wrong. Both are common in real
exports (a localizer or a second reconstruction in the same folder, a slice lost on transfer).
:func:`check_dicom_series` reads the headers only (``pydicom``, ``stop_before_pixels=True``, a few
milliseconds per file) and refuses such folders with one clear error; :class:`CheckDicomSeriesd` runs
it inside a MONAI pipeline, **before** ``LoadImaged``.

Only image slices count (:func:`skip_reason`): a folder exported from a radiotherapy planning system holds the
CT series beside an RT Dose (a multi-frame image with Rows and Columns), an RT Plan and an RT Structure Set, and
PACS exports add SEG, reports and a DICOMDIR; these are skipped with one INFO log line each, and an optional
``modality`` (``"CT"``, ``"MR"``) also skips slices of other modalities. ``LoadVolumed`` with
``"reader": "ITKReader"`` reads the same files (:mod:`.dicom_reader`). :mod:`.dicom_tree` finds every image
series of a folder tree.

The CT input chain of the configs (checked on the shared TotalSegmentator DICOM series in
``tests/transforms/test_ct_input.py``)
-------------------------------------------------------------------------------------------
Use this order in every CT config's shared ``preprocessing`` (train, evaluate and inference)::

    [
      {"_target_": "custom_networks.transforms.dicom_series.CheckDicomSeriesd", "keys": ["image"]},
      {"_target_": "custom_networks.transforms.load.LoadVolumed", "keys": ["image", "label"], "reader": "ITKReader",
       "image_only": true},
      {"_target_": "custom_networks.transforms.validate.ValidateVolumed", "keys": ["image", "label"]},
      {"_target_": "EnsureChannelFirstd", "keys": ["image", "label"]},
      {"_target_": "Orientationd", "keys": ["image", "label"], "axcodes": "RAS"},
      {"_target_": "ScaleIntensityRanged", "keys": ["image"],
       "a_min": "@window_min", "a_max": "@window_max", "b_min": 0.0, "b_max": 1.0, "clip": true}
    ]

with ``"window_min": -500, "window_max": 1500`` (paper 000 §2.1 names "a bone window" without
values; [D]: WL 500 / WW 2000, ``window_min = WL - WW/2``, ``window_max = WL + WW/2``). Label id mapping (e.g.
merging TotalSegmentator's bone classes into one "bone" class) goes after ``Orientationd``.

What each step gives, measured with MONAI 1.6.1 and ITK 5.4.7:

* ``CheckDicomSeriesd`` refuses a folder with several image series or missing slices (MONAI's ``ITKReader``
  would read the first series only, with just a warning, and ITK would stack a gappy series as if evenly
  spaced). It does nothing for files.
* ``LoadVolumed(reader="ITKReader")`` (MONAI's ``LoadImaged`` with clearer errors) reads a folder as its DICOM
  image series through ITK and GDCM (JPEG 2000 included), **applies RescaleSlope/RescaleIntercept**, so values are
  Hounsfield units (float32 by ``LoadImaged``'s default ``dtype``), and stores the affine in RAS world coordinates (ITK's LPS converted). It reads
  NIfTI, NRRD and MHA labels with the same geometry rules. The default reader selection (no ``reader``)
  also picks ITK for a folder and gave identical values; naming it keeps configs independent of which
  optional readers are installed. The nibabel reader cannot read a series folder.
* ``EnsureChannelFirstd`` + ``Orientationd("RAS")`` bring the series and a NIfTI label drawn on it to the
  same voxel grid and the same affine: on the shared example (512 x 512 x 20, 0.977 x 0.977 x 2 mm)
  TotalSegmentator's labels then sit voxel for voxel on the CT, bone classes on a median of 262 HU.
* Array axes after these steps are (C, x: left to right, y: posterior to anterior, z: inferior to
  superior) = (1, 512, 512, 20) here, with a diagonal affine of positive spacings.
  A raw pydicom slice ``pixel_array`` (rows, columns) maps onto the volume as
  ``volume[0, :, :, k] == (pixel_array * RescaleSlope + RescaleIntercept)[::-1, ::-1].T`` for an axial
  series with ``ImageOrientationPatient`` ``[1, 0, 0, 0, 1, 0]``, where ``k`` orders the slices by
  ``ImagePositionPatient`` z (inferior first), not by file name or InstanceNumber.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = [
    "CheckDicomSeriesd",
    "DicomSeriesError",
    "check_dicom_series",
    "read_dicom_header",
    "read_dicom_series",
    "series_files",
    "skip_reason",
    "slice_order",
]

logger = logging.getLogger(__name__)

ONE_SERIES_HINT = (
    "Pass a folder that holds exactly one DICOM series (move each series into its own folder, "
    "e.g. sorted by SeriesInstanceUID with your PACS export tool, dcm2niix or pydicom)."
)
COMPLETE_SERIES_HINT = (
    "Re-export the complete series from the scanner or PACS; ITK would otherwise stack the slices as if "
    "they were evenly spaced and the volume's geometry would be wrong."
)


class DicomSeriesError(ValueError):
    """A folder cannot be read as one complete DICOM series; the message names the folder, the fault and the fix."""


def read_dicom_header(path: str):
    """``(header, pixel data offset, file size)`` of the DICOM file ``path`` (a pydicom Dataset without pixel
    data; offset and size are None for files without a preamble), or None when it is not a DICOM file.

    Any DICOM object is returned, images or not (RT Dose, RT Plan, RT Structure Set, SEG, DICOMDIR ...):
    :func:`skip_reason` tells which of them are slices of an image series."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    pixel_data_offset = size = None  # known for files with a preamble (pydicom stops at Pixel Data)
    try:
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            pixel_data_offset, size = fp.tell(), os.fstat(fp.fileno()).st_size
    except InvalidDicomError:
        # files written without the 128-byte preamble; accept them only when they look like DICOM instances
        try:
            with warnings.catch_warnings():  # a forced read of a non-DICOM file warns about its "VR"
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            return None
        if "SOPInstanceUID" not in ds or "Rows" not in ds:
            return None
    except Exception:
        return None
    return ds, pixel_data_offset, size


#: SOP Class UIDs, or their prefixes (ending in "."), of DICOM objects that are not slices of an image volume but
#: sit beside one in exports from planning systems and PACS: every RT object (Dose, Plan, Structure Set, RT Image,
#: treatment records; PS3.4 B.5 ``1.2.840.10008.5.1.4.1.1.481.x``), Segmentation, surface segmentation, raw data,
#: registrations and fiducials (``...1.1.66.x``), presentation states (``...1.1.11.x``), structured reports and
#: key object selections (``...1.1.88.x``), encapsulated documents (``...1.1.104.x``), waveforms
#: (``...1.1.9.x``) and the DICOMDIR (Media Storage Directory).
NON_IMAGE_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.481.",
    "1.2.840.10008.5.1.4.1.1.66",
    "1.2.840.10008.5.1.4.1.1.66.",
    "1.2.840.10008.5.1.4.1.1.11.",
    "1.2.840.10008.5.1.4.1.1.88.",
    "1.2.840.10008.5.1.4.1.1.104.",
    "1.2.840.10008.5.1.4.1.1.9.",
    "1.2.840.10008.1.3.10",
)
#: Modality values (PS3.3 C.7.3.1.1.1) of objects that are not image slices, for private or unknown SOP classes
NON_IMAGE_MODALITIES = frozenset(
    {"RTDOSE", "RTPLAN", "RTSTRUCT", "RTRECORD", "RTIMAGE", "SEG", "REG", "FID", "SR", "PR", "KO", "DOC", "PLAN", "RWV"}
)


def _sop_class(ds) -> str:
    uid = str(ds.get("SOPClassUID", "") or "")
    if not uid:  # a DICOMDIR carries its SOP class in the file meta only
        meta = getattr(ds, "file_meta", None)
        uid = str(meta.get("MediaStorageSOPClassUID", "") or "") if meta is not None else ""
    return uid


def skip_reason(ds, modality: str | None = None) -> str | None:
    """Why the DICOM object ``ds`` is not a slice of an image series of ``modality``, or None when it is one.

    Args:
        ds: a pydicom Dataset (the header is enough).
        modality: the series' modality (``"CT"``, ``"MR"``, compared case-insensitively with the object's
            ``Modality``), or None for any modality. An object without a ``Modality`` value is not refused for it.

    Returns:
        None for an image slice; otherwise a short reason naming the object's kind, e.g.
        ``"RT Dose Storage (Modality RTDOSE), not an image slice"`` or ``"MR Image Storage (Modality MR), not a
        slice of the CT series"``. Objects that
        are not slices: the SOP classes of :data:`NON_IMAGE_SOP_CLASSES`, the modalities of
        :data:`NON_IMAGE_MODALITIES`, and anything without ``Rows`` and ``Columns``.
    """
    from pydicom.uid import UID

    sop = _sop_class(ds)
    found = str(ds.get("Modality", "") or "").strip().upper()
    kind = (UID(sop).name if sop else "no SOPClassUID") + (f" (Modality {found})" if found else "")
    if sop and any(sop == c or (c.endswith(".") and sop.startswith(c)) for c in NON_IMAGE_SOP_CLASSES):
        return f"{kind}, not an image slice"
    if found in NON_IMAGE_MODALITIES or "Rows" not in ds or "Columns" not in ds:
        return f"{kind}, not an image slice"
    if modality and found and found != modality.strip().upper():
        return f"{kind}, not a slice of the {modality.strip().upper()} series"
    return None


_IMPLICIT_VR = "1.2.840.10008.1.2"
_ITEM, _SEQUENCE_END = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"  # (FFFE,E000), (FFFE,E0DD) little endian


def _check_pixel_data(path: str, ds, offset: int, size: int) -> None:
    """Refuse a slice whose file ends before its pixel data does: ITK (GDCM) would read the missing part as
    zeros, or decode a cut JPEG 2000 stream partly, without a word. ``offset`` is where pydicom stopped, at the
    Pixel Data element; its declared length (native) or its fragment items (encapsulated) must fit the file."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", _IMPLICIT_VR))
    if syntax == "1.2.840.10008.1.2.2":
        return  # explicit VR big endian (retired): lengths read differently, not checked
    with open(path, "rb") as fp:
        fp.seek(offset)
        want = 8 if syntax == _IMPLICIT_VR else 12  # tag, (VR, reserved,) 4-byte length
        header = fp.read(want)
        length = int.from_bytes(header[-4:], "little") if len(header) == want else None
        end = None
        if length is not None and length != 0xFFFFFFFF:
            end = fp.tell() + length
        elif length is not None:  # encapsulated: items (offset table, then fragments) up to the sequence delimiter
            while True:
                item = fp.read(8)
                if len(item) < 8 or item[:4] not in (_ITEM, _SEQUENCE_END):
                    break
                if item[:4] == _SEQUENCE_END:
                    end = fp.tell()
                    break
                fp.seek(fp.tell() + int.from_bytes(item[4:], "little"))
    if end is None or end > size:
        raise DicomSeriesError(
            f"{path} is truncated: the file ends inside its pixel data ({size} bytes on disk). "
            "Copy or re-export the series from the scanner or PACS."
        )


def _uid_label(uid: str) -> str:
    return uid if uid else "(empty SeriesInstanceUID)"


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def check_dicom_series(
    folder: str | os.PathLike,
    max_gap_ratio: float = 1.5,
    check_instance_numbers: bool = True,
    modality: str | None = None,
) -> list[str]:
    """Check that ``folder`` holds exactly one complete DICOM image series and return its files in slice order.

    Only the files directly in ``folder`` are read (sub-folders are ignored, as ITK's series reader does);
    files that are not DICOM are skipped silently, and DICOM objects that are not slices of an image series of
    ``modality`` (RT Dose, RT Plan, RT Structure Set, SEG, DICOMDIR, reports ...; see :func:`skip_reason`) are
    skipped with one INFO log line each, so a folder exported from a planning system (a CT series beside its
    RTDOSE, RTPLAN and RTSTRUCT) is read as its CT series.

    Raises :class:`DicomSeriesError` (a ``ValueError``) naming the folder, the fault and the fix when:

    * the folder has no DICOM image files (of ``modality``);
    * it holds more than one image series (the message lists each ``SeriesInstanceUID`` with its
      ``SeriesDescription`` and file count);
    * slices differ in shape (``Rows`` x ``Columns``), ``ImageOrientationPatient`` or ``PixelSpacing``;
    * two slices share one position (duplicates);
    * slices are missing: a step in ``ImagePositionPatient`` along the slice normal larger than
      ``max_gap_ratio`` times the median step, or (when ``check_instance_numbers``) a step in the sorted
      ``InstanceNumber`` values larger than ``max_gap_ratio`` times their median step. The message names
      the positions, instance numbers and files on both sides of each gap;
    * a slice's file ends inside its pixel data (truncated);
    * a slice lacks ``ImagePositionPatient``, ``ImageOrientationPatient`` or ``PixelSpacing``, or they are not
      finite, the spacing is not positive, or the orientation is not two orthogonal unit vectors.

    A slice missing at either end of the stack cannot be seen from the headers and is not reported.

    Args:
        folder: a folder holding one DICOM image series (and possibly non-image objects beside it).
        max_gap_ratio: a step between neighbouring slices larger than this multiple of the median step is a gap.
        check_instance_numbers: also look for gaps in ``InstanceNumber``; turn off for exports that
            renumber or skip instance numbers on purpose.
        modality: only image slices of this ``Modality`` (``"CT"``, ``"MR"``) count; slices of other modalities
            are skipped like non-image objects. Default None: any modality (a second image series of any
            modality is then an error).

    Returns:
        the paths of the series' files, sorted along the slice normal (by ``InstanceNumber`` when positions
        are absent, then by file name).
    """
    return _read_series(folder, max_gap_ratio, check_instance_numbers, modality)[0]


def read_dicom_series(
    folder: str | os.PathLike,
    max_gap_ratio: float = 1.5,
    check_instance_numbers: bool = True,
    modality: str | None = None,
) -> list:
    """:func:`check_dicom_series`, returning the slices' headers (pydicom Datasets without pixel data) in slice
    order instead of their paths, so a caller that needs the headers does not read every file again."""
    paths, headers = _read_series(folder, max_gap_ratio, check_instance_numbers, modality)
    return [headers[p] for p in paths]


def series_files(folder: str | os.PathLike, modality: str | None = None) -> list[str]:
    """The files of the one image series in ``folder`` (of ``modality``; None: any), in slice order.

    What a reader needs to read exactly the series that :func:`check_dicom_series` checks: the same selection
    (non-image objects and other modalities skipped, silently here), the same order, and the same errors for a
    folder without an image series or with several; the slice geometry is not checked again (run
    :func:`check_dicom_series` or :class:`CheckDicomSeriesd` first)."""
    return _read_series(folder, modality=modality, check=False, log_skipped=False)[0]


def _select_image_headers(folder: str, names: list[str], modality: str | None, log_skipped: bool):
    """path -> (header, pixel data offset, file size) of the image slices (of ``modality``) among ``names``,
    and reason -> count of the DICOM objects skipped (each logged when ``log_skipped``)."""
    kept, skipped = {}, Counter()
    for n in names:
        path = os.path.join(folder, n)
        read = read_dicom_header(path)
        if read is None:
            continue  # not DICOM (notes, checksums): silently, as ITK does
        reason = skip_reason(read[0], modality)
        if reason is None:
            kept[path] = read
            continue
        skipped[reason] += 1
        if log_skipped:
            logger.info("%s: skipping %s: %s", folder, n, reason)
    return kept, skipped


def _read_series(
    folder: str | os.PathLike,
    max_gap_ratio: float = 1.5,
    check_instance_numbers: bool = True,
    modality: str | None = None,
    check: bool = True,
    log_skipped: bool = True,
) -> tuple[list[str], dict]:
    """The checks of :func:`check_dicom_series` (geometry, gaps and truncation only with ``check``); returns
    (paths in slice order, path -> header)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DicomSeriesError(f"{folder} is not a folder: pass the folder that holds the DICOM series' files.")
    names = sorted(n for n in os.listdir(folder) if not n.startswith(".") and os.path.isfile(os.path.join(folder, n)))
    kept, skipped = _select_image_headers(folder, names, modality, log_skipped)
    headers = {p: read[0] for p, read in kept.items()}
    if not headers:
        subfolders = sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n)))
        inside = f"; it has sub-folders {subfolders[:5]}{' ...' if len(subfolders) > 5 else ''}" if subfolders else ""
        what = f"{modality.upper()} image" if modality else "image"
        others = f"; skipped: {'; '.join(f'{c} x {r}' for r, c in sorted(skipped.items()))}" if skipped else ""
        raise DicomSeriesError(
            f"No DICOM {what} files in {folder} ({_files(len(names))}, none readable as a DICOM {what}"
            f"{inside}{others}). Point the datalist at the folder that holds the series' slices (not its parent), "
            "or convert the scan to NIfTI first."
        )

    # 1. exactly one series
    by_series: dict[str, list[str]] = defaultdict(list)
    for path, ds in headers.items():
        by_series[str(ds.get("SeriesInstanceUID", "") or "")].append(path)
    if len(by_series) > 1:
        lines = []
        for uid, paths in sorted(by_series.items(), key=lambda kv: -len(kv[1])):
            ds = headers[paths[0]]
            desc = str(ds.get("SeriesDescription", "") or "(no SeriesDescription)")
            number = ds.get("SeriesNumber", None)
            number = f", SeriesNumber {number}" if number not in (None, "") else ""
            example = os.path.basename(paths[0])
            lines.append(f"  - {_uid_label(uid)}: '{desc}'{number}, {_files(len(paths))} (e.g. {example})")
        raise DicomSeriesError(
            f"{folder} holds {len(by_series)} DICOM series; MONAI's ITK reader would silently read only one of them:\n"
            + "\n".join(lines)
            + f"\n{ONE_SERIES_HINT}"
        )

    paths = list(headers)
    if not check:
        return slice_order(paths, headers), headers
    for path, (ds, offset, size) in kept.items():
        if offset is not None:
            _check_pixel_data(path, ds, offset, size)
        _check_slice_geometry(path, ds)
    # 2. consistent slice geometry
    _check_same(folder, headers, "shape (Rows x Columns)", lambda ds: (int(ds.Rows), int(ds.Columns)))
    _check_same(
        folder,
        headers,
        "orientation (ImageOrientationPatient)",
        lambda ds: tuple(np.round(np.asarray(ds.ImageOrientationPatient, float), 3).tolist()),
    )
    _check_same(
        folder,
        headers,
        "pixel spacing (PixelSpacing)",
        lambda ds: tuple(np.round(np.asarray(ds.PixelSpacing, float), 4).tolist()),
    )
    if len(paths) == 1:
        return paths, headers

    # 3. slice positions along the normal: duplicates and gaps
    paths = slice_order(paths, headers)
    pos = _positions(paths, headers)
    z = np.array([pos[p] for p in paths])
    steps = np.diff(z)
    median = float(np.median(steps))
    dup = [i for i, s in enumerate(steps) if s <= max(1e-3, 1e-3 * median)]
    if dup:
        pairs = "; ".join(
            f"{os.path.basename(paths[i])} and {os.path.basename(paths[i + 1])} at {_fmt(z[i])} mm" for i in dup[:5]
        )
        raise DicomSeriesError(
            f"{folder}: {len(dup)} pair(s) of slices share one position along the slice normal ({pairs}"
            f"{'; ...' if len(dup) > 5 else ''}). The folder mixes duplicate files or two acquisitions of "
            f"one series. {ONE_SERIES_HINT}"
        )
    gaps = [i for i, s in enumerate(steps) if s > max_gap_ratio * median]
    if gaps:
        parts = []
        for i in gaps[:5]:
            a, b = paths[i], paths[i + 1]
            parts.append(
                f"between {_fmt(z[i])} mm (InstanceNumber {_instance(headers[a])}, {os.path.basename(a)}) and "
                f"{_fmt(z[i + 1])} mm (InstanceNumber {_instance(headers[b])}, {os.path.basename(b)}): "
                f"a step of {_fmt(steps[i])} mm, about {round(steps[i] / median) - 1} slice(s) missing"
            )
        raise DicomSeriesError(
            f"{folder}: slices are missing. The median slice step is {_fmt(median)} mm along the slice "
            f"normal, but there is a gap " + "; ".join(parts) + ("; ..." if len(gaps) > 5 else "") + ". "
            + COMPLETE_SERIES_HINT
        )

    if check_instance_numbers and all(_instance(headers[p]) is not None for p in paths):
        unique = sorted({_instance(headers[p]) for p in paths})
        if len(unique) > 1:
            steps_n = np.diff(unique)
            median_n = float(np.median(steps_n))
            gaps_n = [i for i, s in enumerate(steps_n) if s > max_gap_ratio * median_n]
            if gaps_n:
                parts = [f"from {unique[i]} to {unique[i + 1]}" for i in gaps_n[:10]]
                raise DicomSeriesError(
                    f"{folder}: slices are missing: the InstanceNumbers jump "
                    + ", ".join(parts)
                    + ("; ..." if len(gaps_n) > 10 else "")
                    + f" (median step {_fmt(median_n)}). {COMPLETE_SERIES_HINT} If the numbering skips on "
                    "purpose and the positions are complete, pass check_instance_numbers=False."
                )
    return paths, headers


GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")


def _values(value) -> list[float]:
    """A DICOM value of one number or several as floats (``"NaN"`` included)."""
    from pydicom.multival import MultiValue

    return [float(v) for v in value] if isinstance(value, (list, tuple, MultiValue)) else [float(value)]


def _check_slice_geometry(path: str, ds) -> None:
    """Refuse an image slice without a usable geometry: a missing ``ImagePositionPatient``,
    ``ImageOrientationPatient`` or ``PixelSpacing`` (ITK would place it at the origin, axial, 1 mm apart), values
    that are not numbers or not finite, a spacing that is not positive, or orientation rows that are not two
    orthogonal unit vectors (a singular orientation). Also ``Rows`` and ``Columns`` must be positive numbers."""
    fix = "Re-export the series from the scanner or PACS with its geometry (the slices cannot be placed)."
    missing = [t for t in GEOMETRY_TAGS if ds.get(t, None) in (None, "")]
    if missing:
        raise DicomSeriesError(f"{path} has no {', no '.join(missing)}: its position in the volume is unknown. {fix}")
    try:
        ipp, iop, spacing = (np.atleast_1d(np.asarray(_values(ds.get(t)), float)) for t in GEOMETRY_TAGS)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (TypeError, ValueError, AttributeError) as err:
        raise DicomSeriesError(f"{path} has geometry or size tags that are not numbers ({err}). {fix}") from None
    if ipp.shape != (3,) or iop.shape != (6,) or spacing.shape != (2,) or rows < 1 or cols < 1:
        raise DicomSeriesError(
            f"{path} has malformed geometry: ImagePositionPatient {ipp.tolist()} (3 values), ImageOrientationPatient "
            f"{iop.tolist()} (6), PixelSpacing {spacing.tolist()} (2), Rows x Columns {rows} x {cols}. {fix}")
    if not (np.isfinite(ipp).all() and np.isfinite(iop).all() and np.isfinite(spacing).all()) or (spacing <= 0).any():
        raise DicomSeriesError(
            f"{path} has an implausible geometry: ImagePositionPatient {ipp.tolist()}, ImageOrientationPatient "
            f"{iop.tolist()}, PixelSpacing {spacing.tolist()} (finite values and positive spacings needed). {fix}")
    row, col = iop[:3], iop[3:]
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(col) - 1) > 0.01 or abs(float(row @ col)) > 0.01:
        raise DicomSeriesError(
            f"{path} has a singular orientation: ImageOrientationPatient {iop.tolist()} is not two orthogonal unit "
            f"vectors. {fix}")


def _instance(ds) -> int | None:
    try:
        return int(ds.get("InstanceNumber", None))
    except (TypeError, ValueError):  # absent, empty or not a number
        return None


def _positions(paths: list[str], headers: Mapping) -> dict[str, float]:
    """path -> ``ImagePositionPatient`` projected on the normal (row direction x column direction) of the first
    slice's ``ImageOrientationPatient``."""
    iop = np.asarray(headers[paths[0]].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    return {p: float(np.dot(np.asarray(headers[p].ImagePositionPatient, float), normal)) for p in paths}


def slice_order(paths: list[str], headers: Mapping) -> list[str]:
    """``paths`` sorted as slices of one series: along the slice normal (``ImagePositionPatient`` projected on
    ``row direction x column direction`` of ``ImageOrientationPatient``, ascending), then ``InstanceNumber``,
    then path; by ``InstanceNumber`` and path when a slice has no position or orientation.

    Args:
        paths: the series' files.
        headers: path -> pydicom Dataset of each of them.
    """
    if paths and all("ImageOrientationPatient" in headers[p] and "ImagePositionPatient" in headers[p] for p in paths):
        try:
            pos = _positions(paths, headers)
            return sorted(paths, key=lambda p: (pos[p], _instance(headers[p]) or 0, p))
        except (TypeError, ValueError):  # damaged geometry values: the series check names them
            pass
    return sorted(paths, key=lambda p: (_instance(headers[p]) or 0, p))


def _check_same(folder: str, headers: Mapping, what: str, value) -> None:
    groups: dict = defaultdict(list)
    for path, ds in headers.items():
        groups[value(ds)].append(path)
    if len(groups) > 1:
        lines = [
            f"  - {v}: {_files(len(ps))} (e.g. {os.path.basename(ps[0])})"
            for v, ps in sorted(groups.items(), key=lambda kv: -len(kv[1]))
        ]
        raise DicomSeriesError(
            f"{folder}: the slices differ in {what}, so they do not stack into one volume:\n"
            + "\n".join(lines)
            + f"\n{ONE_SERIES_HINT} Remove localizer/scout images and other reconstructions from the folder."
        )


class CheckDicomSeriesd(MapTransform):
    """Run :func:`check_dicom_series` on every key whose value is a folder; files pass unchanged.

    Put it **before** ``LoadImaged`` in CT configs, so that a folder with several series or missing slices
    stops the run with a clear error instead of being read wrongly::

        {"_target_": "custom_networks.transforms.dicom_series.CheckDicomSeriesd", "keys": ["image"]},
        {"_target_": "custom_networks.transforms.load.LoadVolumed", "keys": ["image", "label"],
         "reader": "ITKReader", "image_only": true}

    Non-image DICOM objects in the folder (RT Dose, RT Plan, RT Structure Set, SEG ...) are skipped with one
    INFO log line each, and ``LoadVolumed`` with ``"reader": "ITKReader"`` reads the same files
    (:class:`~custom_networks.transforms.dicom_reader.SeriesITKReader`), so a planning-system export folder is
    read as its image series.

    The data dict is returned unchanged (the paths stay paths). Place it inside the cached part of a
    ``CacheDataset`` pipeline, or accept reading each folder's headers once per epoch (about 1-2 ms a file).

    Args:
        keys: keys whose values may be DICOM series folders.
        max_gap_ratio, check_instance_numbers: passed to :func:`check_dicom_series`.
        allow_missing_keys: skip keys that are absent (inference has no label).
        modality: only image slices of this ``Modality`` (``"CT"``, ``"MR"``) form the series; default None: any
            modality (a second image series of any modality is an error). Give ``LoadVolumed`` the same value.
    """

    def __init__(
        self,
        keys: KeysCollection,
        max_gap_ratio: float = 1.5,
        check_instance_numbers: bool = True,
        allow_missing_keys: bool = True,
        modality: str | None = None,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.max_gap_ratio = max_gap_ratio
        self.check_instance_numbers = check_instance_numbers
        self.modality = modality

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if isinstance(value, (str, os.PathLike)) and os.path.isdir(value):
                check_dicom_series(value, self.max_gap_ratio, self.check_instance_numbers, self.modality)
        return d
