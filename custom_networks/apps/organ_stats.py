"""Per-organ numbers of one case: voxel count, volume in ml, found or missed, and Dice against a reference.

``statistics.json`` (:func:`case_statistics`) holds, per class of the bundle (``metadata.json``'s
``channel_def``): ``label`` (its value in the label map), ``voxels``, ``volume_ml`` (voxels times the voxel
volume from the label map's affine), ``found`` (any voxel at all) and, with a reference, ``dice`` (MONAI's
``compute_dice``) and ``scored``. A reference is a label map with the same ids on the same grid, or a folder of
them matched by case name (``<case>.nii.gz``, or any volume file whose name without extension is the case's).
When a Decathlon datalist JSON beside the reference (in its folder or the folder above) lists the reference with
a ``"contoured"`` list (as ``scripts.prepare_openkbp`` writes), organs not in that list are not scored: a
missing contour means "not contoured", not "absent". Otherwise every organ is scored; an organ empty in both
maps gets no Dice (null).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .inputs import VOLUME_SUFFIXES

__all__ = ["ReferenceMismatchError", "case_statistics", "contoured_organs", "find_reference", "format_report",
           "read_label_map"]


class ReferenceMismatchError(ValueError):
    """A reference label map that cannot be compared with the prediction; the message names both and the fix."""


def read_label_map(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (X, Y, Z) int, RAS affine 4x4)`` of a label-map file (NIfTI, NRRD, MHA), read with ITK as the
    bundles read images."""
    from monai.transforms import LoadImage

    image = LoadImage(reader="ITKReader", image_only=True)(str(path))
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    return np.rint(array).astype(np.int64), np.asarray(image.affine, dtype=np.float64)


def find_reference(reference: str | os.PathLike | None, case_name: str) -> Path | None:
    """The reference label map of case ``case_name``: ``reference`` itself when it is a file, the volume file in the
    folder ``reference`` whose name without extension is ``case_name`` (None when there is none), None without
    ``reference``."""
    if reference is None:
        return None
    reference = Path(reference).expanduser()
    if reference.is_file():
        return reference
    for suffix in VOLUME_SUFFIXES:
        candidate = reference / f"{case_name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def contoured_organs(reference: str | os.PathLike) -> list[str] | None:
    """The organs contoured in ``reference``, from a datalist JSON in its folder or the folder above whose entry
    has ``"label"`` = this file and a ``"contoured"`` list; None when no such entry exists (score every organ)."""
    reference = Path(reference).resolve()
    for folder in (reference.parent, reference.parent.parent):
        for candidate in sorted(folder.glob("*.json")):
            try:
                content = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            lists = [v for v in content.values() if isinstance(v, list)] if isinstance(content, dict) else []
            for entry in (e for items in lists for e in items if isinstance(e, dict)):
                label, contoured = entry.get("label"), entry.get("contoured")
                if isinstance(label, str) and isinstance(contoured, list) and \
                        (candidate.parent / label).resolve() == reference:
                    return [str(o) for o in contoured]
    return None


def _dice(pred: np.ndarray, ref: np.ndarray, labels: list[int]) -> list[float]:
    """Dice of each label value in ``labels`` (MONAI ``compute_dice`` on one-hot maps; NaN where the reference
    is empty)."""
    import torch
    from monai.metrics import compute_dice

    one_hot = [torch.from_numpy(np.stack([m == v for v in labels])[None]).float() for m in (pred, ref)]
    return compute_dice(one_hot[0], one_hot[1], include_background=True, ignore_empty=True)[0].tolist()


def case_statistics(label_file: str | os.PathLike, class_names: dict[int, str],
                    reference: str | os.PathLike | None = None) -> dict:
    """The contents of one case's ``statistics.json`` (see the module docstring).

    Args:
        label_file: the predicted label map.
        class_names: label value -> organ name (background excluded).
        reference: the reference label map, or None.

    Returns:
        ``{"label_map", "voxel_volume_ml", "reference", "contoured_from", "organs": {name: {...}}, "mean_dice"}``.

    Raises:
        ReferenceMismatchError: the reference is not on the prediction's grid.
    """
    pred, affine = read_label_map(label_file)
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    counts = np.bincount(pred.ravel().clip(0), minlength=max(class_names) + 1)
    organs = {name: {"label": value, "voxels": int(counts[value]),
                     "volume_ml": round(float(counts[value]) * voxel_ml, 3), "found": bool(counts[value] > 0)}
              for value, name in class_names.items()}
    stats = {"label_map": str(label_file), "voxel_volume_ml": voxel_ml, "reference": None, "contoured_from": None,
             "organs": organs, "mean_dice": None}
    if reference is None:
        return stats
    ref, ref_affine = read_label_map(reference)
    if ref.shape != pred.shape:
        raise ReferenceMismatchError(f"reference {reference} has shape {ref.shape} but the label map {label_file} has "
                              f"{pred.shape}: give the reference on the scan's own grid (resample it).")
    if not np.allclose(ref_affine, affine, atol=1e-3 * max(1.0, float(np.abs(affine).max()))):
        raise ReferenceMismatchError(f"reference {reference} has the scan's shape but another position, spacing or "
                              f"orientation than {label_file} (affines differ): resample it onto the scan.")
    contoured = contoured_organs(reference)
    values = list(class_names)
    dice = _dice(pred, ref, values)
    scored = []
    for value, d in zip(values, dice):
        entry = organs[class_names[value]]
        entry["scored"] = contoured is None or class_names[value] in contoured
        entry["dice"] = round(d, 4) if entry["scored"] and not math.isnan(d) else None
        if entry["dice"] is not None:
            scored.append(entry["dice"])
    stats.update(reference=str(reference), contoured_from=None if contoured is None else "datalist 'contoured'",
                 mean_dice=round(float(np.mean(scored)), 4) if scored else None)
    return stats


def format_report(case: str, stats: dict, outputs: dict[str, str], note: str = "") -> str:
    """The console lines of one case: a table of organs (Dice vs reference when there is one, volume in ml,
    found or missed), the mean Dice, then where each output is."""
    has_ref = stats.get("reference") is not None
    width = max([len(n) for n in stats["organs"]] + [5])
    lines = [f"{case}{f'  ({note})' if note else ''}"]
    head = f"  {'organ':<{width}}  " + ("  Dice " if has_ref else "") + "volume ml"
    lines.append(head)
    for name, o in stats["organs"].items():
        dice = ""
        if has_ref:
            dice = f"{o['dice']:6.3f} " if o.get("dice") is not None else \
                ("   n/a " if o.get("scored") else "   -   ")
        found = "" if o["found"] else "  not found"
        lines.append(f"  {name:<{width}}  {dice}{o['volume_ml']:9.1f}{found}")
    if has_ref:
        n = sum(o.get("dice") is not None for o in stats["organs"].values())
        mean = f"{stats['mean_dice']:.3f}" if stats.get("mean_dice") is not None else "n/a"
        lines.append(f"  mean Dice {mean} over {n} organ{'s' if n != 1 else ''} (reference {stats['reference']}; "
                     "'-': not contoured there, not scored)")
    width_o = max(len(k) for k in outputs) if outputs else 0
    lines += [f"  {kind:<{width_o}}  {path}" for kind, path in outputs.items()]
    return "\n".join(lines)
