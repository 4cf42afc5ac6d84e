"""Finding the image series in a folder tree (a PACS or planning-system export, a CD copy, a study folder).

:func:`find_image_series` walks a tree, reads every DICOM file's header once (``pydicom``,
``stop_before_pixels=True``), keeps the image slices of one modality (the rules of
:func:`~custom_networks.transforms.dicom_series.skip_reason`: RT Dose, RT Plan, RT Structure Set, SEG, reports,
DICOMDIR and other modalities are skipped) and groups them by ``SeriesInstanceUID``. A caller segments each
series as its own case (or the one chosen by its UID): where :attr:`ImageSeries.own_folder` is true the series'
folder can be given to a bundle as it is (the bundle skips the non-image objects beside it); otherwise the
series shares its folder with another series of the modality, or spans several folders, and its ``files`` must
be put into a folder of their own first. Nothing is checked beyond the grouping: a series with missing slices
is found, and refused by the bundle's series check when it is read.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass

from .dicom_series import read_dicom_header, skip_reason, slice_order

__all__ = ["ImageSeries", "find_image_series"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSeries:
    """One image series found in a folder tree.

    Attributes:
        series_uid: its ``SeriesInstanceUID`` ("" when blanked, e.g. by an anonymiser: such files are grouped
            per folder).
        description: its ``SeriesDescription`` ("" when absent).
        modality: its ``Modality`` (``"CT"``).
        series_number: its ``SeriesNumber``, or None.
        folder: the folder holding its files (their common folder when they lie in several).
        files: its files, in slice order (along the slice normal, see
            :func:`~custom_networks.transforms.dicom_series.slice_order`).
        own_folder: True when ``folder`` directly holds all of ``files`` and no other image series of the
            modality, so that a bundle given ``folder`` reads exactly this series.
    """

    series_uid: str
    description: str
    modality: str
    series_number: int | None
    folder: str
    files: tuple[str, ...]
    own_folder: bool


def _instance_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):  # absent, empty or damaged
        return None


def find_image_series(root: str | os.PathLike, modality: str | None = "CT") -> list[ImageSeries]:
    """Every image series of ``modality`` in the folder tree under ``root``.

    Args:
        root: a folder; every file under it is looked at (hidden files and folders excepted, links to folders
            not followed). A single DICOM file is also accepted (its series then holds that file, and is not
            ``own_folder``: the other files of its folder were not looked at).
        modality: the ``Modality`` to keep (``"CT"`` default, ``"MR"``), compared case-insensitively; None keeps
            image series of every modality. Slices without a ``Modality`` value are kept.

    Returns:
        the series, sorted by folder, ``SeriesNumber`` and UID; empty when the tree holds none (the objects
        skipped are counted in one INFO log line, and each is logged at DEBUG level).

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = os.fspath(root)
    if not os.path.exists(root):
        raise FileNotFoundError(f"{root} does not exist: pass the folder that holds the DICOM export.")
    if os.path.isfile(root):
        candidates = [root]
    else:
        candidates = []
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            candidates.extend(os.path.join(folder, n) for n in sorted(names) if not n.startswith("."))

    headers, groups, skipped = {}, defaultdict(list), Counter()
    for path in candidates:
        read = read_dicom_header(path)
        if read is None:
            continue
        ds = read[0]
        reason = skip_reason(ds, modality)
        if reason is not None:
            skipped[reason] += 1
            logger.debug("%s: skipped, %s", path, reason)
            continue
        headers[path] = ds
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        groups[(uid, "" if uid else os.path.dirname(path))].append(path)

    folders_of = {key: {os.path.dirname(p) for p in paths} for key, paths in groups.items()}
    series_per_folder = Counter(f for folders in folders_of.values() for f in folders)
    found = []
    for (uid, key_folder), paths in groups.items():
        ds = headers[paths[0]]
        folders = folders_of[(uid, key_folder)]
        (folder,) = folders if len(folders) == 1 else (os.path.commonpath(paths),)
        number = _instance_or_none(ds.get("SeriesNumber", None))
        found.append(ImageSeries(
            series_uid=uid,
            description=str(ds.get("SeriesDescription", "") or ""),
            modality=str(ds.get("Modality", "") or ""),
            series_number=number,
            folder=folder,
            files=tuple(slice_order(paths, headers)),
            own_folder=len(folders) == 1 and series_per_folder[folder] == 1 and not os.path.isfile(root),
        ))
    found.sort(key=lambda s: (s.folder, s.series_number if s.series_number is not None else -1, s.series_uid))
    what = f"{modality.upper()} " if modality else "image "
    logger.info("%s: %d %sseries in %d DICOM files%s", root, len(found), what, len(headers),
                f"; skipped {sum(skipped.values())} other DICOM objects ("
                + "; ".join(f"{c} x {r}" for r, c in sorted(skipped.items())) + ")" if skipped else "")
    return found
