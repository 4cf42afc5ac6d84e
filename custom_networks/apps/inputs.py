"""What ``medseg-segment`` segments: its INPUT arguments turned into cases.

Each INPUT is

- a volume file (NIfTI ``.nii``/``.nii.gz``, NRRD ``.nrrd``/``.nhdr``, MetaImage ``.mha``/``.mhd``): one case,
  named after the file (``pt_201.nii.gz`` -> ``pt_201``);
- a folder: every volume file directly in it (not in sub-folders: a ``labels/`` folder beside ``images/`` is not
  segmented), and every DICOM image series anywhere below it whose Modality is the bundle's (CT, or MR for the
  knee bundle), found by :func:`~custom_networks.transforms.dicom_tree.find_image_series`. A series is one case
  whatever folders its files lie in, named from its SeriesDescription and SeriesInstanceUID, made
  filesystem-safe (``CT_Head_Neck_1.2.826.0.1...``). Series of other modalities (an MR beside the CT) and objects
  that are not image slices (RT Dose, RT Plan, RT Structure Set, SEG, SR) are skipped and counted in one log line
  per folder tree.

``--series_uid`` keeps only the series with that SeriesInstanceUID. Case names are unique within a run (a
repeated name gets ``_2``, ``_3``). The bundle's ``inference.json`` reads one series per folder, so a DICOM case
is handed to it as its own folder where that holds no other series of the modality, else as a folder of links to
just its own files (:func:`series_folder`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..transforms.dicom_tree import ImageSeries, find_image_series
from ..writers.base import output_stem

__all__ = ["Case", "InputError", "discover", "series_folder", "stage_series", "VOLUME_SUFFIXES"]

#: file name endings read as one volume each
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


class InputError(ValueError):
    """An INPUT argument that cannot be used; the message names it and the fix."""


@dataclass
class Case:
    """One scan to segment.

    Attributes:
        name: the case's name, also its output folder's name (unique within a run, filesystem-safe).
        source: what identifies the input to the user: the volume file, or the folder the series was found in.
        volume: the volume file, or None for a DICOM series.
        series: the DICOM series, or None for a volume file.
    """

    name: str
    source: str
    volume: str | None = None
    series: ImageSeries | None = None

    @property
    def described(self) -> str:
        """The input as the summary names it: the volume file, or ``<folder> (series <UID>)``."""
        return self.source if self.series is None else f"{self.source} (series {self.series.series_uid})"

    @property
    def is_dicom(self) -> bool:
        """Whether the case is a DICOM series (RTSTRUCT and DICOM SEG need one to reference)."""
        return self.series is not None


def _is_volume(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(VOLUME_SUFFIXES)


def safe_name(text: str, limit: int = 48) -> str:
    """``text`` with every run of characters other than letters, digits, ``.``, ``_``, ``-`` replaced by ``_``,
    trimmed, at most ``limit`` characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:limit].strip("._-")


def _may_hold_dicom(root: Path) -> bool:
    """Whether the tree under ``root`` holds any visible file that is not a volume file (a folder of NIfTI files
    alone is not searched for DICOM)."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(not n.startswith(".") and not n.lower().endswith(VOLUME_SUFFIXES) for n in names):
            return True
    return False


def _series_cases(root: Path, modality: str) -> list[Case]:
    """One case per image series of ``modality`` below ``root``
    (:func:`~custom_networks.transforms.dicom_tree.find_image_series`; it logs what it skipped, one line)."""
    cases = []
    for s in find_image_series(root, modality or None):
        name = "_".join(p for p in (safe_name(s.description) or s.modality, s.series_uid) if p)
        cases.append(Case(name=name or "series", source=s.folder, series=s))
    return cases


def discover(inputs: list[str], modality: str, series_uid: str | None = None,
             exclude: list[str | os.PathLike] = ()) -> tuple[list[Case], list[str]]:
    """The cases of ``inputs`` (see the module docstring) and one note per thing skipped.

    Args:
        inputs: volume files and folders, as given on the command line.
        modality: the bundle's input modality (``"CT"``); DICOM series of other modalities are skipped.
        series_uid: keep only the DICOM series with this SeriesInstanceUID (an :class:`InputError` when none has it).
        exclude: folders whose series are left out (the output folder, when it lies inside an input folder).

    Returns:
        ``(cases, notes)``, cases in the order of ``inputs``, files and series sorted within a folder.

    Raises:
        InputError: an input that does not exist, or a file that is not a volume.
    """
    exclude = [Path(p) for p in exclude]
    cases: list[Case] = []
    notes: list[str] = []
    for given in inputs:
        path = Path(given).expanduser()
        if not path.exists():
            raise InputError(f"{given} does not exist: give a NIfTI, NRRD or MHA file, or a folder of them or of "
                             "DICOM files.")
        if path.is_file():
            if not _is_volume(path):
                raise InputError(f"{given} is not a NIfTI, NRRD or MHA file (by its name): give a volume file, or "
                                 "the folder holding a DICOM series.")
            cases.append(Case(name=output_stem(str(path)), source=str(path), volume=str(path)))
            continue
        found = [Case(name=output_stem(str(p)), source=str(p), volume=str(p))
                 for p in sorted(path.iterdir()) if _is_volume(p) and not p.name.startswith(".")]
        if _may_hold_dicom(path):
            found += [c for c in _series_cases(path, modality) if not _inside(c.source, exclude)]
        if not found:
            nested = sorted({str(p.parent) for p in path.rglob("*") if _is_volume(p)})
            hint = f" (volume files are read from a folder's top level only: give {', '.join(nested[:3])})" \
                if nested else ""
            notes.append(f"{given}: no NIfTI, NRRD or MHA file in it and no {modality or 'image'} DICOM series "
                         f"below it{hint}")
        cases += found
    if series_uid is not None:
        kept = [c for c in cases if c.series is not None and c.series.series_uid == series_uid]
        if not kept:
            uids = [c.series.series_uid for c in cases if c.series is not None]
            raise InputError(f"--series_uid {series_uid}: no {modality} series with that SeriesInstanceUID in the "
                             f"inputs (found: {', '.join(uids) or 'no DICOM series'}).")
        notes += [f"skipped {c.source}: not series {series_uid} (--series_uid)" for c in cases if c not in kept]
        cases = kept
    return _unique_names(cases), notes


def _unique_names(cases: list[Case]) -> list[Case]:
    seen: dict[str, int] = defaultdict(int)
    for case in cases:
        base = safe_name(case.name, limit=128) or "case"
        seen[base] += 1
        case.name = base if seen[base] == 1 else f"{base}_{seen[base]}"
    return cases


def _inside(path: str, folders: list[Path]) -> bool:
    resolved = Path(path).resolve()
    return any(resolved == f.resolve() or f.resolve() in resolved.parents for f in folders)


def series_folder(series: ImageSeries, staging: str | os.PathLike) -> str:
    """The folder to give the bundle for ``series``: its own folder when it holds no other image series of the
    modality (RT objects beside it are skipped by the bundle's reader), else :func:`stage_series` into
    ``staging``."""
    return series.folder if series.own_folder else stage_series(series, staging)


def stage_series(series: ImageSeries, folder: str | os.PathLike) -> str:
    """A folder holding only ``series``'s files, for the bundle's reader (one series per folder): links to them
    (copies where links are not allowed). ``folder`` is emptied first; returns its path."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, src in enumerate(series.files):
        dst = folder / f"{i:05d}_{os.path.basename(src)}"
        try:
            os.symlink(os.path.abspath(src), dst)
        except OSError:
            shutil.copy2(src, dst)
    return str(folder)
