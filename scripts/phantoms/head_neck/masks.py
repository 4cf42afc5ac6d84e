"""The expert organ masks of one head-and-neck case: reading, cleaning, resampling, and the label map.

Each case folder holds ``segmentations/<Organ>.nrrd`` (21 organs, LPS, identity direction); every mask
keeps its largest 26-connected component.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from custom_networks.labels.head_neck import ORGANS, SOURCE_NAMES, find_organ_files, normalise_organ_name
from custom_networks.ops.components import largest_component

__all__ = [
    "BUNDLE",
    "SOURCE_ORGANS",
    "MASK_OF_ORGAN",
    "LABEL_PAINT_ORDER",
    "CaseMasks",
    "list_cases",
    "read_mask",
    "load_case",
    "ras_affine",
    "build_labels",
]

BUNDLE = "head_neck_two_stage_unet"
#: The 21 organ files of every case (normalised names).
SOURCE_ORGANS = tuple(
    normalise_organ_name(n)
    for n in (
        "Brain Brainstem Cochlea-Lt Cochlea-Rt Lacrimal-Lt Lacrimal-Rt Lens-Lt Lens-Rt Lung-Lt Lung-Rt "
        "Mandible Optic-Nerve-Lt Optic-Nerve-Rt Orbit-Lt Orbit-Rt Parotid-Lt Parotid-Rt Spinal-Canal "
        "Spinal-Cord Submandibular-Lt Submandibular-Rt"
    ).split()
)
#: Thesis organ -> name of its source mask.
MASK_OF_ORGAN = {organ: normalise_organ_name(stem) for organ, stem in SOURCE_NAMES.items()}
#: Label painting order (later wins where masks overlap: smaller organs win).
LABEL_PAINT_ORDER = (
    "mandible",
    "parotid_left",
    "parotid_right",
    "brainstem",
    "eye_left",
    "eye_right",
    "optic_nerve_left",
    "optic_nerve_right",
)


@dataclass
class CaseMasks:
    """The cleaned organ masks of one case on its (possibly coarsened) grid.

    ``masks`` maps every name of :data:`SOURCE_ORGANS` to a ``bool`` array ``(x, y, z)`` (all-False
    when the file is missing); ``spacing``/``origin``/``direction`` are the LPS geometry of the grid.
    """

    case: str
    masks: dict
    spacing: tuple
    origin: tuple
    direction: np.ndarray
    shape: tuple
    missing: list = field(default_factory=list)


def list_cases(masks_dir: str | os.PathLike) -> list[str]:
    """Sorted case names (folders with a ``segmentations`` subfolder) of a ``hn_oar_masks`` folder."""
    root = Path(masks_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"mask folder {root} does not exist; expected the hn_oar_masks folder "
            "(<case>/segmentations/<Organ>.nrrd)"
        )
    cases = sorted(p.name for p in root.iterdir() if (p / "segmentations").is_dir())
    if not cases:
        raise FileNotFoundError(f"no cases in {root}: expected folders <case>/segmentations/<Organ>.nrrd")
    return cases


def read_mask(path: Path):
    """One NRRD mask as ``(bool array (x, y, z), (spacing, origin, direction))``."""
    import itk

    img = itk.imread(str(path))
    arr = np.asarray(itk.array_view_from_image(img)).transpose(2, 1, 0)  # (z, y, x) -> (x, y, z)
    geo = (
        tuple(float(v) for v in img.GetSpacing()),
        tuple(float(v) for v in img.GetOrigin()),
        np.array(itk.array_from_matrix(img.GetDirection()), dtype=np.float64),
    )
    return arr > 0, geo


def _area_resample(mask: np.ndarray, new_shape) -> np.ndarray:
    """Fraction of each coarse cell (same extent, ``new_shape`` cells) covered by ``mask``; on its bbox."""
    frac = np.zeros(new_shape, np.float32)
    if not mask.any():
        return frac
    lo = [int(np.nonzero(mask.any(axis=tuple(b for b in range(3) if b != a)))[0][[0, -1]][0]) for a in range(3)]
    hi = [int(np.nonzero(mask.any(axis=tuple(b for b in range(3) if b != a)))[0][-1]) + 1 for a in range(3)]
    arr, out_box = mask, []
    arr_f = None
    for ax in range(3):
        n, m = mask.shape[ax], new_shape[ax]
        f = n / m
        i0, i1 = int(np.floor(lo[ax] / f)), min(m, int(np.ceil(hi[ax] / f)))
        e0, e1 = i0 * f, i1 * f
        j0, j1 = int(np.floor(e0)), min(n, int(np.ceil(e1)))
        src = (arr if arr_f is None else arr_f)
        src = np.take(src, np.arange(j0, j1), axis=ax).astype(np.float32)
        c = np.concatenate([np.zeros_like(np.take(src, [0], axis=ax)), np.cumsum(src, axis=ax)], axis=ax)
        edges = np.clip(np.linspace(e0, e1, i1 - i0 + 1) - j0, 0, j1 - j0)
        k = np.minimum(np.floor(edges).astype(int), j1 - j0 - 1)
        w = (edges - k).astype(np.float32)
        shp = [1, 1, 1]
        shp[ax] = -1
        ce = np.take(c, k, axis=ax) + w.reshape(shp) * (np.take(c, k + 1, axis=ax) - np.take(c, k, axis=ax))
        arr_f = np.diff(ce, axis=ax) / np.float32(f)
        out_box.append(slice(i0, i1))
    frac[tuple(out_box)] = arr_f
    return frac


def load_case(case_dir: str | os.PathLike, voxel_size=None) -> CaseMasks:
    """Read all organ masks of one case (``<case_dir>/segmentations``), keep each one's largest component.

    Args:
        case_dir: the case folder.
        voxel_size: ``None`` (native grid) or the target ``(sx, sy, sz)`` mm (a number means isotropic):
            the grid keeps the native extent with ``round(n * spacing / voxel_size)`` cells per axis.

    A missing organ file gives a ``UserWarning`` naming the case and organ and an empty mask.
    """
    case_dir = Path(case_dir)
    case = case_dir.name
    files = find_organ_files(case_dir / "segmentations")
    masks, geo, missing = {}, None, []
    for name in SOURCE_ORGANS:
        if name not in files:
            missing.append(name)
            warnings.warn(f"case {case}: organ file for {name!r} is missing; treating it as empty", stacklevel=2)
            continue
        arr, g = read_mask(files[name])
        if geo is None:
            geo = (g, arr.shape)
        elif arr.shape != geo[1] or not np.allclose(g[0], geo[0][0], atol=1e-4) or not np.allclose(g[1], geo[0][1], atol=1e-3):
            raise ValueError(f"case {case}: {files[name].name} has a different grid than the other organs")
        masks[name] = largest_component(arr)
    if geo is None:
        raise FileNotFoundError(f"case {case}: no organ masks in {case_dir / 'segmentations'}")
    (spacing, origin, direction), shape = geo
    if not np.allclose(np.abs(direction), np.eye(3), atol=1e-4) or not np.allclose(np.diag(direction), 1, atol=1e-4):
        raise NotImplementedError(f"case {case}: only an identity (LPS) direction is supported, got {direction}")
    if voxel_size is not None:
        vs = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64).ravel(), (3,))
        new_shape = tuple(max(1, int(round(n * s / v))) for n, s, v in zip(shape, spacing, vs))
        new_spacing = tuple(n * s / m for n, s, m in zip(shape, spacing, new_shape))
        origin = tuple(float(o) + (ns - s) / 2.0 for o, s, ns in zip(origin, spacing, new_spacing))
        for name, m in masks.items():
            frac = _area_resample(m, new_shape)
            coarse = frac >= 0.5
            if m.any() and not coarse.any():
                coarse[np.unravel_index(int(np.argmax(frac)), new_shape)] = True
            masks[name] = coarse
        spacing, shape = new_spacing, new_shape
    for name in missing:
        masks[name] = np.zeros(shape, dtype=bool)
    return CaseMasks(case, masks, tuple(spacing), tuple(origin), direction, tuple(shape), missing)


def ras_affine(cm: CaseMasks) -> np.ndarray:
    """4x4 voxel -> world (RAS+, mm) affine of the grid (LPS index->world, then x and y negated)."""
    aff = np.eye(4)
    aff[:3, :3] = cm.direction @ np.diag(cm.spacing)
    aff[:3, 3] = cm.origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff


def build_labels(cm: CaseMasks) -> np.ndarray:
    """The 9-class ``uint8`` label map (ids of ``CLASS_NAMES``; overlaps: :data:`LABEL_PAINT_ORDER`)."""
    lab = np.zeros(cm.shape, np.uint8)
    for organ in LABEL_PAINT_ORDER:
        lab[cm.masks[MASK_OF_ORGAN[organ]]] = ORGANS.index(organ) + 1
    return lab


# ----------------------------------------------------------------------------------------------------
# rendering helpers
