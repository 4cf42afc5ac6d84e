"""The CT-like volume of one head-and-neck case: :func:`render_case` (see the package docstring)."""

from __future__ import annotations

import os
import time
import zlib

import numpy as np
from scipy import ndimage as ndi

from ..fields import gaussian_random_field
from ..geometry import bounding_box
from ..io import volume_seed_sequence
from ..shapes import capsule, ellipsoid
from .masks import LABEL_PAINT_ORDER, MASK_OF_ORGAN, CaseMasks, build_labels, load_case, ras_affine
from .tissues import BONE_TISSUES, TISSUE_CODE, TISSUE_HU, TISSUES

__all__ = ["render_case", "render_case_dir"]

#: Salt of the case seeds (see :func:`scripts.phantoms.io.volume_seed_sequence`).
_SALT = 2002

def distance_to(mask: np.ndarray, sp, max_mm: float, inside: bool = False) -> np.ndarray:
    """Distance (mm) to ``mask`` (outside it; ``inside=True``: to its complement), capped at ``max_mm``."""
    out = np.full(mask.shape, np.float32(max_mm))
    pad = [int(np.ceil(max_mm / s)) + 1 for s in sp]
    box = bounding_box(mask, pad)
    if box is None:
        return out
    sub = mask[box]
    d = ndi.distance_transform_edt(sub if inside else ~sub, sampling=sp)
    out[box] = np.minimum(d, max_mm).astype(np.float32)
    return out


def centroid_mm(mask: np.ndarray, sp) -> np.ndarray | None:
    """Centre of mass of ``mask`` in mm from the grid origin (``None`` if empty)."""
    if not mask.any():
        return None
    return np.array([c * s for c, s in zip(ndi.center_of_mass(mask), sp)])


def convex_hull_2d(points: np.ndarray) -> np.ndarray:
    """Convex hull of a 2D mask (the mask itself when it has fewer than 3 pixels)."""
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
    thick = 6.0 + 1.3 * gaussian_random_field(rng, tuple(max(2, n // 8) for n in shape), [8 * s for s in sp], 3.0)
    thick = np.clip(ndi.zoom(thick, [n / t for n, t in zip(shape, thick.shape)], order=1), 4.0, 8.0)
    d_cran = distance_to(cranial, sp, 12.0)
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
    eye_c = [centroid_mm(e, sp) for e in eyes]
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
        hull = convex_hull_2d(a)
        body[:, :, k] = ndi.distance_transform_edt(~hull, sampling=sp[:2]) <= margin[k]
    body = ndi.gaussian_filter(body.astype(np.float32), [0.5, 0.5, 1.0]) >= 0.5
    for k in range(shape[2]):
        if body[:, :, k].any():
            depth[:, :, k] = ndi.distance_transform_edt(body[:, :, k], sampling=sp[:2])

    # --- crop everything below to the body (plus blur margin)
    box = bounding_box(body | cranial, (4, 4, 2)) or tuple(slice(0, n) for n in shape)
    cshape = tuple(s.stop - s.start for s in box)
    Xc, Yc = X[box[0]], Y[:, box[1]]
    Zc = Z[:, :, box[2]]
    C = {k: v[box] for k, v in m.items()}
    tex = gaussian_random_field(rng, cshape, sp, 4.0)
    fine = gaussian_random_field(rng, cshape, sp, 1.2)
    T = np.zeros(cshape, np.uint8)
    bd, dp = body[box], depth[box]

    # soft tissue: muscle, intermuscular fat, subcutaneous fat, skin
    T[bd] = TISSUE_CODE["muscle"]
    T[bd & (tex > 1.05)] = TISSUE_CODE["intermuscular_fat"]
    fat_mm = np.where(brain[box].any(axis=(0, 1)), 3.0, 7.0)[None, None, :] + 2.0 * np.clip(tex, -1.5, 1.5)
    T[bd & (dp <= 2.0 + np.maximum(fat_mm, 2.0))] = TISSUE_CODE["subcutaneous_fat"]
    T[bd & (dp <= 2.0)] = TISSUE_CODE["skin"]

    # lungs with vessels, airway
    lc = lungs[box]
    T[lc] = TISSUE_CODE["lung"]
    T[lc & (np.abs(fine) < 0.09)] = TISSUE_CODE["lung_vessel"]
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
        T[airway & bd] = TISSUE_CODE["airway"]

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
        T[arch & spine_ok] = TISSUE_CODE["vertebra_arch"]
        T[vb & spine_ok] = TISSUE_CODE["vertebra_cancellous"]
        T[vb & spine_ok & (q > -1.2 / b_ap)] = TISSUE_CODE["vertebra_cortex"]
        T[vb & spine_ok & disc] = TISSUE_CODE["disc"]

    # skull, CSF, ventricles, brain, brainstem
    sk = skull[box]
    T[sk] = TISSUE_CODE["skull_diploe"]
    su = skull_u[box]
    T[sk & ((su < 0.3) | (su > 0.7) | (thick[box] < 4.5))] = TISSUE_CODE["skull_cortex"]
    T[csf_rim[box]] = TISSUE_CODE["csf"]

    # nasal cavity and maxillary sinuses
    if face is not None:
        for c in eye_c:
            s = c + np.array([0.75 * (face[0] - c[0]), 10.0, -32.0])
            e = ellipsoid(Xc, Yc, Zc, s, (12, 15, 14))
            T[(e <= 1.5) & (e > 0) & bd] = TISSUE_CODE["sinus_wall"]
            T[(e <= 0) & bd] = TISSUE_CODE["airway"]
        e = ellipsoid(Xc, Yc, Zc, face + [0, 5, -28], (7, 28, 18))
        T[(e <= 0) & bd & (fine < 0.6)] = TISSUE_CODE["airway"]
        T[(e > 0) & (e <= 1.5) & bd] = TISSUE_CODE["sinus_wall"]

    T[C["brain"]] = TISSUE_CODE["brain"]
    bc = centroid_mm(brain, sp)
    if bc is not None:
        for side in (-1.0, 1.0):
            T[(ellipsoid(Xc, Yc, Zc, bc + [side * 8.0, 0.0, 12.0], (5, 28, 10)) <= 0) & C["brain"]] = TISSUE_CODE["csf"]

    # petrous bone and cochleae
    for name in ("cochlea_lt", "cochlea_rt"):
        if m[name].any():
            T[(distance_to(m[name], sp, 9.0)[box] < 9.0) & ~C["brain"] & ~C["brainstem"]] = TISSUE_CODE["petrous_bone"]
    # canal contents
    T[C["spinal_canal"]] = TISSUE_CODE["spinal_csf"]
    T[C["spinal_cord"]] = TISSUE_CODE["spinal_cord"]
    # glands
    for name in ("submandibular_lt", "submandibular_rt"):
        T[C[name]] = TISSUE_CODE["submandibular"]
    for name in ("lacrimal_lt", "lacrimal_rt"):
        T[C[name]] = TISSUE_CODE["lacrimal"]

    # orbits: fat cone, walls, extraocular muscles
    for eye, nerve, gc in zip(eyes, nerves, eye_c):
        if gc is None or not eye.any():
            continue
        d_orb = distance_to(eye | nerve, sp, 9.0)[box]
        behind = Yc > gc[1] - 2.0
        cone = (d_orb <= 7.0) & behind & ~C["brain"] & ~C["brainstem"]
        T[(d_orb > 7.0) & (d_orb <= 8.5) & (Yc > gc[1]) & ~C["brain"]] = TISSUE_CODE["orbit_wall"]
        T[cone] = TISSUE_CODE["orbital_fat"]
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
                T[cone & (capsule(Xc, Yc, Zc, a, b, 1.8) <= 0)] = TISSUE_CODE["extraocular_muscle"]

    # thesis organs last, in the label paint order (lens/sclera inside the eye)
    mand_mask, mand_frac = np.zeros(cshape, bool), np.zeros(0, np.float32)
    # maxillary alveolar process: the mandible in front of 10 mm behind its centroid, 22 mm higher (same bone HU)
    maxilla = np.zeros(cshape, bool)
    mc = centroid_mm(m["mandible"], sp)
    if mc is not None:
        shift = int(round(22.0 / sp[2]))
        front = C["mandible"] & (Yc < mc[1] + 10.0)
        if shift < cshape[2]:
            maxilla[:, :, shift:] = front[:, :, : cshape[2] - shift]
        others = ("brain", "brainstem", "orbit_lt", "orbit_rt", "optic_nerve_lt", "optic_nerve_rt", "parotid_lt", "parotid_rt")
        for name in others:
            maxilla &= ~C[name]
        maxilla &= bd
    T[C["cochlea_lt"] | C["cochlea_rt"]] = TISSUE_CODE["cochlea"]
    for organ in LABEL_PAINT_ORDER:
        mk = C[MASK_OF_ORGAN[organ]]
        if organ == "mandible":
            # cortical coverage of each voxel: 2 mm cortex; a voxel centre lies ~s/2 below the surface
            s_min = min(sp)
            mand_mask = mk | maxilla
            d_jaw = distance_to(mand_mask, sp, 12.0, inside=True)[mand_mask]
            mand_frac = np.clip((2.0 + s_min - d_jaw) / s_min, 0.0, 1.0)
            T[mand_mask] = np.where(mand_frac >= 0.5, TISSUE_CODE["mandible_cortex"], TISSUE_CODE["mandible_marrow"])
        elif organ.startswith("parotid"):
            T[mk] = TISSUE_CODE["parotid"]
            T[mk & (fine > 0.52)] = TISSUE_CODE["parotid_fat"]
        elif organ == "brainstem":
            T[mk] = TISSUE_CODE["brainstem"]
        elif organ.startswith("eye"):
            T[mk] = TISSUE_CODE["sclera"]
            T[mk & (distance_to(mk, sp, 2.0, inside=True) > 1.0)] = TISSUE_CODE["vitreous"]
            T[mk & (C["lens_lt"] | C["lens_rt"])] = TISSUE_CODE["lens"]
        else:
            T[mk] = TISSUE_CODE["optic_nerve"]

    # --- intensities
    lut = np.array([TISSUE_HU[i] for i in range(len(TISSUES))], np.float32)
    jitter = rng.normal(0.0, 2.0, len(lut)).astype(np.float32)
    density = float(rng.uniform(0.9, 1.1))
    for i in BONE_TISSUES:
        lut[i] *= density
    lut += jitter
    lut[TISSUE_CODE["air"]], lut[TISSUE_CODE["airway"]] = -1000.0, -990.0
    hu = lut[T] + np.float32(3.0) * fine * np.isin(T, [TISSUE_CODE["brain"], TISSUE_CODE["brainstem"], TISSUE_CODE["muscle"]])
    spongy = np.isin(T, [TISSUE_CODE["skull_diploe"], TISSUE_CODE["vertebra_cancellous"], TISSUE_CODE["mandible_marrow"]])
    cortical = np.isin(T, [TISSUE_CODE["skull_cortex"], TISSUE_CODE["vertebra_cortex"], TISSUE_CODE["mandible_cortex"], TISSUE_CODE["petrous_bone"]])
    hu += np.float32(80.0) * tex * spongy + np.float32(200.0) * tex * cortical  # bone HU overlap between bones
    if mand_mask.any():  # partial-volume mix of cortex and marrow (matters on coarse grids)
        lo_hu, hi_hu = lut[TISSUE_CODE["mandible_marrow"]], lut[TISSUE_CODE["mandible_cortex"]]
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
