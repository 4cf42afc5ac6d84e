"""CT-like head-and-neck volumes rendered from real expert organ masks (``shared/data/hn_oar_masks``).

Stand-in for the private planning CT of the ``head_neck_two_stage_unet`` bundle (two-stage 3D U-Net,
8 organs at risk). The 24 cases of Nikolov et al. 2018 (CC BY 4.0) ship only expert masks (21 organs,
one NRRD each, LPS, ~1 x 1 x 2.5 mm); this module turns one case into an ``int16`` HU volume and a
``uint8`` label map on the masks' own grid. The organ geometry is real; the intensities are NOT.

Anatomy (tissue codes :data:`TISSUES`, mean HU :data:`TISSUE_HU`, jittered a few HU per case; bone
values scaled by a per-case density factor 0.9-1.1):

* air -1000 outside the body. The body outline is synthesised per axial slice as the convex hull of
  all organ masks, the skull, the midface/nose block in front of the eyes, a neck ellipse around the
  spinal canal and, from 30 mm above the lung apices down, shoulders widening to ~40 cm; the hull is
  grown by a soft-tissue margin (6 mm over the skull, 12 mm at the neck and face, 22 mm around the
  lungs) and smoothed along z;
* skin 2 mm (+30), subcutaneous fat 3-10 mm (-100), muscle (+45) everywhere else inside the body,
  with intermuscular fat (~15 % of the muscle, -90) from a smooth random field;
* skull: a shell of 4-8 mm (smoothly varying) around brain + brainstem, 1.5 mm of CSF (+8) between,
  inner/outer cortical tables (+1350) around diploe (+500; cancellous bone of all bones gets a smooth +-80 HU texture, cortical bone +-200); lateral ventricles (CSF) in the brain;
* cervical/upper thoracic vertebrae built around the spinal canal mask: vertebral body anterior to
  the canal (1.2 mm cortex +1100, cancellous +250, discs +90 every ~16 mm), a ring-shaped arch,
  spinous and transverse processes (+700); CSF (+10) in the canal around the cord (+35);
* brain +38 (smooth texture of a few HU) and brainstem +33: only 5 HU apart, below the noise;
* mandible as bone: 2 mm cortex (+1300) over marrow (+300), each voxel the mix of its cortical
  coverage (so coarse grids get partial-volume values); a maxillary alveolar process of the same
  bone (the part of the mandible in front of 10 mm behind its centroid, shifted 22 mm up; background
  in the labels). Same HU family as skull and vertebrae, so bone HU alone does not identify it;
* parotids +32 with fatty lobules (30 % at -60): median ~+20, between fat and muscle; submandibular
  glands +40, lacrimal glands +40;
* eyes: vitreous +10 inside a 1 mm sclera (+50), lens +90; optic nerves +35 in orbital fat (-80)
  within 7 mm of globe and nerve, with four extraocular-muscle bands (+45) running from the globe to
  the orbital apex and a thin bony orbital wall (+900) behind the globe equator;
* cochleae: fluid (+20) inside dense petrous bone (+1600, 9 mm around the cochlea);
* nasal cavity and maxillary sinuses (air with thin bony walls) below and between the eyes; pharynx
  and trachea (air) anterior to the vertebral bodies, from the bottom up to the nasal cavity;
* lungs -850 with a posterior density gradient and vessel-like texture (+40).

CT physics: partial volume is modelled by the system point-spread function (the masks have no
sub-voxel detail): Gaussian in-plane sigma ``sqrt(0.6^2 + s^2 / 12)`` mm (0.6 mm reconstruction
kernel plus the voxel's own box) and a slice sensitivity profile with FWHM 1.15 x the slice
thickness along z; then correlated noise (white noise smoothed by ~0.7 voxel in-plane) with a
per-case sd of 12-18 HU; clipped to [-1024, 3071] and rounded to ``int16``.

Labels (``uint8``, :data:`custom_networks.labels.head_neck.CLASS_NAMES`): 0 background, 1 brainstem,
2/3 left/right eye, 4/5 left/right optic nerve, 6/7 left/right parotid, 8 mandible, each the largest
26-connected component of the expert mask. Overlap rule: organs are painted in the order of
:data:`LABEL_PAINT_ORDER` (largest first: mandible, parotids, brainstem, eyes, optic nerves), so a
voxel claimed by two organs goes to the smaller one (e.g. the optic nerve where it enters the globe).
The image follows the label there too: thesis organs are painted last in the image as well. Lens and
sclera voxels stay labelled as eye. Other organ masks (brain, cord, lungs, ...) only shape the
anatomy and are background in the labels.

No thesis organ can be found by its intensity alone: :func:`intensity_identifiability` measures, per
organ, the best Dice any single HU interval reaches against the organ mask inside the head region;
neighbours share each organ's HU range, so it stays below 0.5 (tested).

Fast path: ``voxel_size=(sx, sy, sz)`` resamples each mask onto a coarser grid covering the same
extent (exact area averaging, threshold 0.5; an organ that would vanish keeps its best-covered voxel)
before rendering, e.g. ``(4, 4, 5)`` gives about 125 x 125 x 75 voxels.

Axes: arrays are ``(x, y, z)`` in the NRRD's index order (LPS: axis 0 towards the patient's left,
axis 1 posterior, axis 2 superior); all 24 cases have an identity direction. :func:`ras_affine` gives
the NIfTI (RAS+) affine, so a voxel has the same world position in the NIfTI as in the NRRD.

Everything is deterministic given ``(case name, seed)``.
"""

from __future__ import annotations

import os
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from custom_networks.labels.head_neck import (
    CLASS_NAMES,
    ORGANS,
    SOURCE_NAMES,
    find_organ_files,
    normalise_organ_name,
)
from custom_networks.ops.components import largest_component

from . import volume_seed_sequence
from .shapes import capsule, ellipsoid

__all__ = [
    "BUNDLE",
    "SOURCE_ORGANS",
    "LABEL_PAINT_ORDER",
    "TISSUES",
    "TISSUE_HU",
    "CaseMasks",
    "list_cases",
    "load_case",
    "build_labels",
    "render_case",
    "render_case_dir",
    "ras_affine",
    "best_interval_dice",
    "intensity_identifiability",
    "head_region",
]

BUNDLE = "head_neck_two_stage_unet"
_SALT = 2002
#: The 21 organ files of every case (normalised names).
SOURCE_ORGANS = tuple(
    normalise_organ_name(n)
    for n in (
        "Brain Brainstem Cochlea-Lt Cochlea-Rt Lacrimal-Lt Lacrimal-Rt Lens-Lt Lens-Rt Lung-Lt Lung-Rt "
        "Mandible Optic-Nerve-Lt Optic-Nerve-Rt Orbit-Lt Orbit-Rt Parotid-Lt Parotid-Rt Spinal-Canal "
        "Spinal-Cord Submandibular-Lt Submandibular-Rt"
    ).split()
)
_KEY = {organ: normalise_organ_name(stem) for organ, stem in SOURCE_NAMES.items()}
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

_NAMES = (
    "air skin subcutaneous_fat muscle intermuscular_fat lung lung_vessel airway csf brain brainstem "
    "skull_cortex skull_diploe vertebra_cortex vertebra_cancellous disc vertebra_arch spinal_csf "
    "spinal_cord mandible_cortex mandible_marrow parotid parotid_fat submandibular lacrimal "
    "vitreous sclera lens optic_nerve orbital_fat extraocular_muscle orbit_wall petrous_bone cochlea "
    "sinus_wall"
).split()
#: Tissue code -> name.
TISSUES = dict(enumerate(_NAMES))
_T = {n: i for i, n in TISSUES.items()}
#: Tissue code -> mean HU before the per-case jitter.
TISSUE_HU = {
    _T[n]: v
    for n, v in dict(
        air=-1000, skin=30, subcutaneous_fat=-100, muscle=45, intermuscular_fat=-90, lung=-850,
        lung_vessel=40, airway=-990, csf=8, brain=38, brainstem=33, skull_cortex=1350,
        skull_diploe=500, vertebra_cortex=1100, vertebra_cancellous=250, disc=90, vertebra_arch=700,
        spinal_csf=10, spinal_cord=35, mandible_cortex=1300, mandible_marrow=300, parotid=32,
        parotid_fat=-60, submandibular=40, lacrimal=40, vitreous=10, sclera=50, lens=90,
        optic_nerve=35, orbital_fat=-80, extraocular_muscle=45, orbit_wall=900, petrous_bone=1600,
        cochlea=20, sinus_wall=900,
    ).items()
}
_BONE = {_T[n] for n in _NAMES if any(k in n for k in ("skull", "vertebra", "mandible", "wall", "petrous"))}


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


def _read(path: Path):
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
        arr, g = _read(files[name])
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
        lab[cm.masks[_KEY[organ]]] = ORGANS.index(organ) + 1
    return lab


# ----------------------------------------------------------------------------------------------------
# rendering helpers


def _bbox(mask: np.ndarray, pad=(0, 0, 0)):
    if not mask.any():
        return None
    box = []
    for ax in range(3):
        idx = np.nonzero(mask.any(axis=tuple(b for b in range(3) if b != ax)))[0]
        box.append(slice(max(0, int(idx[0]) - pad[ax]), min(mask.shape[ax], int(idx[-1]) + 1 + pad[ax])))
    return tuple(box)


def _dist(mask: np.ndarray, sp, max_mm: float, inside: bool = False) -> np.ndarray:
    """Distance (mm) to ``mask`` (outside it; ``inside=True``: to its complement), capped at ``max_mm``."""
    out = np.full(mask.shape, np.float32(max_mm))
    pad = [int(np.ceil(max_mm / s)) + 1 for s in sp]
    box = _bbox(mask, pad)
    if box is None:
        return out
    sub = mask[box]
    d = ndi.distance_transform_edt(sub if inside else ~sub, sampling=sp)
    out[box] = np.minimum(d, max_mm).astype(np.float32)
    return out


def _field(rng, shape, sp, sigma_mm: float) -> np.ndarray:
    """Smooth Gaussian random field with unit sd (correlation length ~``sigma_mm``)."""
    f = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), [sigma_mm / s for s in sp])
    return f / max(float(f.std()), 1e-6)


def _centroid(mask: np.ndarray, sp) -> np.ndarray | None:
    if not mask.any():
        return None
    return np.array([c * s for c, s in zip(ndi.center_of_mass(mask), sp)])


def _hull_slice(points: np.ndarray) -> np.ndarray:
    from skimage.morphology import convex_hull_image

    return convex_hull_image(points) if points.sum() >= 3 else points


def render_case(cm: CaseMasks, seed: int = 0, return_tissues: bool = False):
    """Render the CT-like volume of one case.

    Args:
        cm: the case masks (:func:`load_case`).
        seed: base seed; the volume depends only on ``(cm.case, seed)`` and the grid.
        return_tissues: also return the un-blurred tissue code map (:data:`TISSUES`).

    Returns:
        ``(image int16 HU, label uint8)`` or ``(image, label, tissues)``; arrays ``(x, y, z)``.
    """
    rng = np.random.default_rng(volume_seed_sequence(seed, zlib.crc32(cm.case.encode()), _SALT))
    sp = tuple(float(s) for s in cm.spacing)
    shape = cm.shape
    m = cm.masks
    X = (np.arange(shape[0], dtype=np.float32) * sp[0])[:, None, None]
    Y = (np.arange(shape[1], dtype=np.float32) * sp[1])[None, :, None]
    Z = (np.arange(shape[2], dtype=np.float32) * sp[2])[None, None, :]
    zmm = Z.ravel()

    def zrange(mask):
        idx = np.nonzero(mask.any(axis=(0, 1)))[0]
        return (float(zmm[idx[0]]), float(zmm[idx[-1]])) if idx.size else None

    brain, stem = m["brain"], m["brainstem"]
    canal = m["spinal_canal"] if m["spinal_canal"].any() else m["spinal_cord"]
    lungs = m["lung_lt"] | m["lung_rt"]
    eyes = [m["orbit_lt"], m["orbit_rt"]]
    nerves = [m["optic_nerve_lt"], m["optic_nerve_rt"]]

    # --- skull around brain + brainstem
    cranial = brain | stem
    thick = 6.0 + 1.3 * _field(rng, tuple(max(2, n // 8) for n in shape), [8 * s for s in sp], 3.0)
    thick = np.clip(ndi.zoom(thick, [n / t for n, t in zip(shape, thick.shape)], order=1), 4.0, 8.0)
    d_cran = _dist(cranial, sp, 12.0)
    csf_rim = (d_cran > 0) & (d_cran <= 1.5)
    skull = (d_cran > 1.5) & (d_cran <= 1.5 + thick)
    if canal.any():
        skull &= ~ndi.binary_dilation(canal, iterations=1)  # foramen magnum
    skull_u = (d_cran - 1.5) / thick

    # --- per-slice canal geometry for vertebrae, neck and airway
    area = canal.sum(axis=(0, 1)).astype(np.float64) * sp[0] * sp[1]
    has_canal = area > 0
    cx = np.zeros(shape[2])
    cy = np.zeros(shape[2])
    if has_canal.any():
        xs = (canal * X).sum(axis=(0, 1)) / np.maximum(canal.sum(axis=(0, 1)), 1)
        ys = (canal * Y).sum(axis=(0, 1)) / np.maximum(canal.sum(axis=(0, 1)), 1)
        k = np.nonzero(has_canal)[0]
        cx = np.interp(np.arange(shape[2]), k, xs[k])
        cy = np.interp(np.arange(shape[2]), k, ys[k])
        cx, cy = ndi.gaussian_filter1d(cx, 2.0), ndi.gaussian_filter1d(cy, 2.0)
    rc = np.clip(ndi.gaussian_filter1d(np.sqrt(area / np.pi), 1.5), 5.0, 10.0)
    lung_slices = lungs.any(axis=(0, 1))
    lung_top = zrange(lungs)
    mand_z = zrange(m["mandible"])
    eye_c = [_centroid(e, sp) for e in eyes]
    eye_c = [c if c is not None else o for c, o in zip(eye_c, eye_c[::-1])]
    face = None if eye_c[0] is None else (eye_c[0] + eye_c[1]) / 2.0

    # --- body outline: convex hull of anchors per slice + margin
    anchors = np.zeros(shape, bool)
    for name, mk in m.items():
        anchors |= mk
    anchors |= d_cran <= 1.5 + thick
    CX, CY = cx[None, None, :], cy[None, None, :]
    neck = (((X - CX) / 45.0) ** 2 + ((Y - CY + 15.0) / 48.0) ** 2 <= 1.0) & has_canal[None, None, :]
    anchors |= neck
    if lung_top is not None:
        w = np.interp(zmm, [lung_top[1] - 20.0, lung_top[1] + 30.0], [150.0, 40.0])[None, None, :]
        on = (zmm <= lung_top[1] + 30.0)[None, None, :] & has_canal[None, None, :]
        for side in (-1.0, 1.0):
            anchors |= on & (((X - CX - side * w) / 40.0) ** 2 + ((Y - CY + 10.0) / 45.0) ** 2 <= 1.0)
    if face is not None:
        anchors |= ellipsoid(X, Y, Z, face + [0, 5, -30], (45, 30, 35)) <= 0
        anchors |= ellipsoid(X, Y, Z, face + [0, -22, -25], (9, 12, 25)) <= 0
    margin = np.where(lung_slices, 22.0, np.where(brain.any(axis=(0, 1)), 6.0, 12.0))
    margin = ndi.gaussian_filter1d(margin, 1.0)
    body = np.zeros(shape, bool)
    depth = np.zeros(shape, np.float32)
    for k in range(shape[2]):
        a = anchors[:, :, k]
        if not a.any():
            continue
        hull = _hull_slice(a)
        body[:, :, k] = ndi.distance_transform_edt(~hull, sampling=sp[:2]) <= margin[k]
    body = ndi.gaussian_filter(body.astype(np.float32), [0.5, 0.5, 1.0]) >= 0.5
    for k in range(shape[2]):
        if body[:, :, k].any():
            depth[:, :, k] = ndi.distance_transform_edt(body[:, :, k], sampling=sp[:2])

    # --- crop everything below to the body (plus blur margin)
    box = _bbox(body | cranial, (4, 4, 2)) or tuple(slice(0, n) for n in shape)
    cshape = tuple(s.stop - s.start for s in box)
    Xc, Yc = X[box[0]], Y[:, box[1]]
    Zc = Z[:, :, box[2]]
    C = {k: v[box] for k, v in m.items()}
    tex = _field(rng, cshape, sp, 4.0)
    fine = _field(rng, cshape, sp, 1.2)
    T = np.zeros(cshape, np.uint8)
    bd, dp = body[box], depth[box]

    # soft tissue: muscle, intermuscular fat, subcutaneous fat, skin
    T[bd] = _T["muscle"]
    T[bd & (tex > 1.05)] = _T["intermuscular_fat"]
    fat_mm = np.where(brain[box].any(axis=(0, 1)), 3.0, 7.0)[None, None, :] + 2.0 * np.clip(tex, -1.5, 1.5)
    T[bd & (dp <= 2.0 + np.maximum(fat_mm, 2.0))] = _T["subcutaneous_fat"]
    T[bd & (dp <= 2.0)] = _T["skin"]

    # lungs with vessels, airway
    lc = lungs[box]
    T[lc] = _T["lung"]
    T[lc & (np.abs(fine) < 0.09)] = _T["lung_vessel"]
    cxc, cyc, rcc = cx[box[2]][None, None, :], cy[box[2]][None, None, :], rc[box[2]][None, None, :]
    thor = lung_slices[box[2]][None, None, :]
    b_ap, b_lr = np.where(thor, 12.0, 8.0), np.where(thor, 15.0, 11.0)
    body_cy = cyc - rcc - 3.0 - b_ap
    hc = has_canal[box[2]][None, None, :]
    if has_canal.any():
        top_air = (face[2] - 25.0) if face is not None else (mand_z[1] if mand_z else zmm[-1])
        ax_lr = np.where(Zc > (mand_z[0] - 15.0 if mand_z else -1e9), 12.0, 8.0)  # pharynx / trachea
        air_cy = body_cy - b_ap - 4.0 - 7.0
        airway = (((Xc - cxc) / ax_lr) ** 2 + ((Yc - air_cy) / 7.0) ** 2 <= 1.0) & hc & (Zc <= top_air)
        T[airway & bd] = _T["airway"]

    # vertebrae (not inside the skull)
    if has_canal.any():
        period, phase = 16.0, float(rng.uniform(0, 16.0))
        q = np.sqrt(((Xc - cxc) / b_lr) ** 2 + ((Yc - body_cy) / b_ap) ** 2) - 1.0
        vb = (q <= 0) & hc
        disc = np.abs(((Zc - phase) % period) - period / 2.0) < 2.0
        rho = np.sqrt((Xc - cxc) ** 2 + (Yc - cyc) ** 2)
        arch = (rho >= rcc + 0.5) & (rho <= rcc + 5.0) & (Yc >= cyc - 0.3 * rcc)
        arch |= (np.abs(Xc - cxc) <= 3.0) & (Yc >= cyc + rcc) & (Yc <= cyc + rcc + 25.0)
        arch |= (np.abs(Yc - cyc + 0.3 * rcc) <= 4.0) & (np.abs(Xc - cxc) >= rcc) & (np.abs(Xc - cxc) <= rcc + 22.0)
        arch &= hc & ~disc
        spine_ok = d_cran[box] > 1.5 + thick[box] + 2.0
        T[arch & spine_ok] = _T["vertebra_arch"]
        T[vb & spine_ok] = _T["vertebra_cancellous"]
        T[vb & spine_ok & (q > -1.2 / b_ap)] = _T["vertebra_cortex"]
        T[vb & spine_ok & disc] = _T["disc"]

    # skull, CSF, ventricles, brain, brainstem
    sk = skull[box]
    T[sk] = _T["skull_diploe"]
    su = skull_u[box]
    T[sk & ((su < 0.3) | (su > 0.7) | (thick[box] < 4.5))] = _T["skull_cortex"]
    T[csf_rim[box]] = _T["csf"]

    # nasal cavity and maxillary sinuses
    if face is not None:
        for c in eye_c:
            s = c + np.array([0.75 * (face[0] - c[0]), 10.0, -32.0])
            e = ellipsoid(Xc, Yc, Zc, s, (12, 15, 14))
            T[(e <= 1.5) & (e > 0) & bd] = _T["sinus_wall"]
            T[(e <= 0) & bd] = _T["airway"]
        e = ellipsoid(Xc, Yc, Zc, face + [0, 5, -28], (7, 28, 18))
        T[(e <= 0) & bd & (fine < 0.6)] = _T["airway"]
        T[(e > 0) & (e <= 1.5) & bd] = _T["sinus_wall"]

    T[C["brain"]] = _T["brain"]
    bc = _centroid(brain, sp)
    if bc is not None:
        for side in (-1.0, 1.0):
            T[(ellipsoid(Xc, Yc, Zc, bc + [side * 8.0, 0.0, 12.0], (5, 28, 10)) <= 0) & C["brain"]] = _T["csf"]

    # petrous bone and cochleae
    for name in ("cochlea_lt", "cochlea_rt"):
        if m[name].any():
            T[(_dist(m[name], sp, 9.0)[box] < 9.0) & ~C["brain"] & ~C["brainstem"]] = _T["petrous_bone"]
    # canal contents
    T[C["spinal_canal"]] = _T["spinal_csf"]
    T[C["spinal_cord"]] = _T["spinal_cord"]
    # glands
    for name in ("submandibular_lt", "submandibular_rt"):
        T[C[name]] = _T["submandibular"]
    for name in ("lacrimal_lt", "lacrimal_rt"):
        T[C[name]] = _T["lacrimal"]

    # orbits: fat cone, walls, extraocular muscles
    for eye, nerve, gc in zip(eyes, nerves, eye_c):
        if gc is None or not eye.any():
            continue
        d_orb = _dist(eye | nerve, sp, 9.0)[box]
        behind = Yc > gc[1] - 2.0
        cone = (d_orb <= 7.0) & behind & ~C["brain"] & ~C["brainstem"]
        T[(d_orb > 7.0) & (d_orb <= 8.5) & (Yc > gc[1]) & ~C["brain"]] = _T["orbit_wall"]
        T[cone] = _T["orbital_fat"]
        if nerve.any():
            pts = np.argwhere(nerve) * np.array(sp)
            apex = pts[np.argmax(((pts - gc) ** 2).sum(1))]
            ax = (apex - gc) / max(np.linalg.norm(apex - gc), 1e-3)
            u1 = np.array([0.0, 0.0, 1.0]) - ax[2] * ax
            u1 /= max(np.linalg.norm(u1), 1e-3)
            u2 = np.cross(ax, u1)
            radius = (3.0 * eye.sum() * np.prod(sp) / (4.0 * np.pi)) ** (1.0 / 3.0)
            for u in (u1, -u1, u2, -u2):
                a = gc + 0.85 * radius * u + 0.3 * radius * ax
                b = apex + 2.5 * u
                T[cone & (capsule(Xc, Yc, Zc, a, b, 1.8) <= 0)] = _T["extraocular_muscle"]

    # thesis organs last, in the label paint order (lens/sclera inside the eye)
    mand_mask, mand_frac = np.zeros(cshape, bool), np.zeros(0, np.float32)
    # maxillary alveolar process: the mandible in front of 10 mm behind its centroid, 22 mm higher (same bone HU)
    maxilla = np.zeros(cshape, bool)
    mc = _centroid(m["mandible"], sp)
    if mc is not None:
        shift = int(round(22.0 / sp[2]))
        front = C["mandible"] & (Yc < mc[1] + 10.0)
        if shift < cshape[2]:
            maxilla[:, :, shift:] = front[:, :, : cshape[2] - shift]
        others = ("brain", "brainstem", "orbit_lt", "orbit_rt", "optic_nerve_lt", "optic_nerve_rt", "parotid_lt", "parotid_rt")
        for name in others:
            maxilla &= ~C[name]
        maxilla &= bd
    T[C["cochlea_lt"] | C["cochlea_rt"]] = _T["cochlea"]
    for organ in LABEL_PAINT_ORDER:
        mk = C[_KEY[organ]]
        if organ == "mandible":
            # cortical coverage of each voxel: 2 mm cortex; a voxel centre lies ~s/2 below the surface
            s_min = min(sp)
            mand_mask = mk | maxilla
            d_jaw = _dist(mand_mask, sp, 12.0, inside=True)[mand_mask]
            mand_frac = np.clip((2.0 + s_min - d_jaw) / s_min, 0.0, 1.0)
            T[mand_mask] = np.where(mand_frac >= 0.5, _T["mandible_cortex"], _T["mandible_marrow"])
        elif organ.startswith("parotid"):
            T[mk] = _T["parotid"]
            T[mk & (fine > 0.52)] = _T["parotid_fat"]
        elif organ == "brainstem":
            T[mk] = _T["brainstem"]
        elif organ.startswith("eye"):
            T[mk] = _T["sclera"]
            T[mk & (_dist(mk, sp, 2.0, inside=True) > 1.0)] = _T["vitreous"]
            T[mk & (C["lens_lt"] | C["lens_rt"])] = _T["lens"]
        else:
            T[mk] = _T["optic_nerve"]

    # --- intensities
    lut = np.array([TISSUE_HU[i] for i in range(len(TISSUES))], np.float32)
    jitter = rng.normal(0.0, 2.0, len(lut)).astype(np.float32)
    density = float(rng.uniform(0.9, 1.1))
    for i in _BONE:
        lut[i] *= density
    lut += jitter
    lut[_T["air"]], lut[_T["airway"]] = -1000.0, -990.0
    hu = lut[T] + np.float32(3.0) * fine * np.isin(T, [_T["brain"], _T["brainstem"], _T["muscle"]])
    spongy = np.isin(T, [_T["skull_diploe"], _T["vertebra_cancellous"], _T["mandible_marrow"]])
    cortical = np.isin(T, [_T["skull_cortex"], _T["vertebra_cortex"], _T["mandible_cortex"], _T["petrous_bone"]])
    hu += np.float32(80.0) * tex * spongy + np.float32(200.0) * tex * cortical  # bone HU overlap between bones
    if mand_mask.any():  # partial-volume mix of cortex and marrow (matters on coarse grids)
        lo_hu, hi_hu = lut[_T["mandible_marrow"]], lut[_T["mandible_cortex"]]
        hu[mand_mask] = lo_hu + mand_frac * (hi_hu - lo_hu) + np.float32(80.0) * tex[mand_mask]
    fwhm_z = 1.15 * sp[2]
    sig = [np.sqrt(0.6**2 + s**2 / 12.0) / s for s in sp[:2]] + [fwhm_z / 2.355 / sp[2]]
    hu = ndi.gaussian_filter(hu, sig, mode="nearest")
    image = np.full(shape, -1000.0, np.float32)
    image[box] = hu
    sd = float(rng.uniform(12.0, 18.0))
    noise = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), [0.7, 0.7, 0.3])
    image += noise * np.float32(sd / max(float(noise.std()), 1e-6))
    image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    label = build_labels(cm)
    if return_tissues:
        tissues = np.zeros(shape, np.uint8)
        tissues[box] = T
        return image, label, tissues
    return image, label


def render_case_dir(case_dir: str | os.PathLike, seed: int = 0, voxel_size=None):
    """Load and render one case folder: ``(image, label, ras_affine, summary)``."""
    t0 = time.perf_counter()
    cm = load_case(case_dir, voxel_size)
    image, label = render_case(cm, seed)
    present = int(len(np.unique(label)) - 1)
    summary = (
        f"{'x'.join(map(str, cm.shape))} at {'x'.join(f'{s:.2f}' for s in cm.spacing)} mm, "
        f"{present}/8 organs, {time.perf_counter() - t0:.1f} s"
    )
    return image, label, ras_affine(cm), summary


# ----------------------------------------------------------------------------------------------------
# the "no organ identifiable by intensity alone" check


def best_interval_dice(image: np.ndarray, mask: np.ndarray, region: np.ndarray | None = None, bin_hu: int = 5):
    """Best Dice of ``lo <= image <= hi`` against ``mask`` over all HU intervals (``bin_hu`` steps).

    Only voxels in ``region`` (default: everywhere) count. Returns ``(dice, lo, hi)``.
    """
    region = np.ones(image.shape, bool) if region is None else region
    vals, inside = image[region].astype(np.int64), mask[region]
    n_org = int(inside.sum())
    if n_org == 0:
        return 0.0, 0, 0
    lo_v = -1024
    nb = (3071 - lo_v) // bin_hu + 1
    b = np.clip((vals - lo_v) // bin_hu, 0, nb - 1)
    ca = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=nb))]).astype(np.float64)
    co = np.concatenate([[0], np.cumsum(np.bincount(b[inside], minlength=nb))]).astype(np.float64)
    used = np.nonzero(np.bincount(b[inside], minlength=nb))[0]
    i, j = used[:, None], used[None, :] + 1  # intervals starting and ending on bins the organ uses
    inter, sel = co[j] - co[i], ca[j] - ca[i]
    dice = np.divide(2.0 * inter, n_org + sel, out=np.zeros_like(inter), where=j > i)  # empty intervals: 0
    k = np.unravel_index(int(np.argmax(dice)), dice.shape)
    return float(dice[k]), int(lo_v + used[k[0]] * bin_hu), int(lo_v + (used[k[1]] + 1) * bin_hu - 1)


def head_region(label: np.ndarray, spacing, margin_mm: float = 20.0) -> np.ndarray:
    """Bounding box of all labelled organs grown by ``margin_mm``, as a mask."""
    box = _bbox(label > 0, [int(np.ceil(margin_mm / s)) for s in spacing])
    region = np.zeros(label.shape, bool)
    if box is not None:
        region[box] = True
    return region


def intensity_identifiability(image: np.ndarray, label: np.ndarray, spacing) -> dict:
    """Per thesis organ, ``(dice, lo, hi)`` of the best single HU interval within :func:`head_region`."""
    region = head_region(label, spacing)
    return {organ: best_interval_dice(image, label == i + 1, region) for i, organ in enumerate(ORGANS)}
