"""Bones of one leg on the sub-slices of one slice: tissue codes, bone ids and partial-volume HU.

Every sample gets the fraction of it covered by cortex, trabecular bone and marrow (from the bone
fields turned into distances), so oblique surfaces give smooth partial volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import union_box
from ..shapes import sstep
from .anatomy import CORTEX, F32, MARROW, MID, SPACING, SUB_DZ, SUBSLICES, TRABECULAR
from .bone_fields import femur_field, fibula_field, patella_field, tibia_cross_section, tibia_field
from .leg_slice import LegSlice, relative_box

__all__ = ["LegBones", "as_distance", "coverage", "trabecular_rim", "render_bones"]


@dataclass
class LegBones:
    """The bones of one leg on the sub-slices of one slice (:func:`render_bones`).

    ``box``: in-plane index box; ``tissue`` and ``bone_id``: codes at the sample points,
    ``(SUBSLICES, ni, nj)``; ``coverage``: fraction of each sample covered by bone; ``material``: HU of
    the bone material times its coverage; ``centre_distance``: per bone id, its box and distance at the
    slice centre; ``centre_envelope``: box and femur envelope (no notch) at the slice centre, or ``None``.
    """

    box: tuple
    tissue: np.ndarray
    bone_id: np.ndarray
    coverage: np.ndarray
    material: np.ndarray
    centre_distance: dict
    centre_envelope: tuple | None


def as_distance(f: np.ndarray):
    """Distance estimate of an implicit field on a (sub-slice, i, j) grid, and the sample footprint.

    Returns ``(d, w)``: ``d = f / |grad f|`` (mm, negative inside) and ``w``, the extent (mm) along
    the surface normal of one sample (1 mm across the slice, one pixel in-plane), used to turn
    ``d`` into the fraction of the sample inside the surface (:func:`coverage`) so that oblique
    surfaces give smooth partial volume instead of one step per sub-slice.
    """
    g = np.gradient(f, SUB_DZ, SPACING[0], SPACING[1])
    gm = np.clip(np.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]), 0.25, None)
    w = (np.abs(g[0]) * F32(SUB_DZ) + (np.abs(g[1]) + np.abs(g[2])) * F32(SPACING[0])) / gm
    return (f / gm).astype(F32), np.clip(w, 0.3, None).astype(F32)


def coverage(d, w):
    """Fraction of a sample of footprint ``w`` inside the surface at signed distance ``d``."""
    return np.clip(0.5 - d / w, 0.0, 1.0)


def trabecular_rim(r0: float, s):
    """Trabecular rim inside the cortex: ``r0`` where the marrow cavity is open (``s = 1``), huge
    (no cavity) in the metaphyses and epiphyses (``s = 0``)."""
    return r0 + 25.0 * (1.0 - s) / (s + 0.02)


def render_bones(S: LegSlice, hu: dict, tex_fine, tex_coarse) -> LegBones | None:
    """Bones of one leg on the sub-slices of one slice (``None`` when no bone is near)."""
    L, zr = S.L, S.zr
    F, T, Pt, B = L.femur, L.tibia, L.patella, L.fibula
    zf = (zr - F.joint_gap).astype(F32)  # femur frame z
    zt = (zr + T.joint_gap).astype(F32)  # tibia frame z
    jobs = []  # (bone id, box, phi, z array)
    if zf.max() > -1.0:
        if zf.min() > 2.4 * F.condyle_radius_si + 3.0:  # above the trochlea: the (tapering) block only
            uu = sstep(0.0, 1.0, (zf.min() - F.metaphysis_z) / F.flare)
            hx0, hy0, cy0 = F.width / 2 * 0.96, 0.8 * F.condyle_radius_ap, F.condyle_centre_y + 0.15 * F.condyle_radius_ap
            hx, hy = hx0 + (F.shaft_half_width - hx0) * uu, hy0 + (F.shaft_half_depth - hy0) * uu
            cx, cy = F.shaft_x * uu, cy0 + (F.shaft_y - cy0) * uu
            xr = (cx - hx - 2.0, cx + hx + 2.0)
            yr = (cy - hy - F.linea_aspera - 2.0, cy + hy + 2.0)
        else:
            xr = (-F.width / 2 - 4.0, F.width / 2 + 4.0)
            yr = (F.condyle_centre_y - F.condyle_radius_ap - 4.0, F.trochlea_front + 4.0)
        box = S.box(xr, yr, L.femur_rotation)
        if box is not None:
            jobs.append((1, box, L.femur_rotation, zf))
    pc, pr = Pt.centre, Pt.radii
    if np.abs(zf - pc[2]).min() < pr[2] + 2.0:
        box = S.box((pc[0] - pr[0] - 3, pc[0] + pr[0] + 3), (pc[1] - pr[1] - 3, pc[1] + pr[1] + 3), L.femur_rotation)
        if box is not None:
            jobs.append((3, box, L.femur_rotation, zf))
    if zt.min() < T.eminence_height + 1.0:
        if zt.max() < -(T.taper + 5.0) and zt.max() < T.tuberosity_z - T.tuberosity_radii[2] - 3.0:
            hx, hy, cx, cy, _ = tibia_cross_section(zt.min(), T)
            xr, yr = (cx - hx - 3.0, cx + hx + 3.0), (cy - hy - 3.0, cy + hy + 3.0)
        else:
            xr = (-T.width / 2 - 4.0, T.width / 2 + 4.0)
            yr = (-T.depth / 2 - 4.0, T.depth / 2 + 14.0)
        box = S.box(xr, yr, L.tibia_rotation)
        if box is not None:
            jobs.append((2, box, L.tibia_rotation, zt))
    hc, hr = B.head_centre, B.head_radii
    if zt.min() < hc[2] + hr[2] + 1.0:
        fr = (hc[2] - zt) / 250.0
        xs = hc[0] + B.shaft_offset[0] * np.clip(fr, 0, 1)
        ys = hc[1] + B.shaft_offset[1] * np.clip(fr, 0, 1)
        rad = max(hr[0], hr[1]) + 3.0 if zt.max() > hc[2] - 25.0 else B.shaft_radius + 3.0
        box = S.box((xs.min() - rad, xs.max() + rad), (ys.min() - rad, ys.max() + rad), L.tibia_rotation)
        if box is not None:
            jobs.append((4, box, L.tibia_rotation, zt))
    if not jobs:
        return None
    ubox = union_box([j[1] for j in jobs])
    shp = (SUBSLICES, ubox[0].stop - ubox[0].start, ubox[1].stop - ubox[1].start)
    tis = np.zeros(shp, np.uint8)
    bid = np.zeros(shp, np.uint8)
    cov = np.zeros(shp, F32)  # fraction of each sample covered by bone
    mat = np.zeros(shp, F32)  # HU of the bone material times its coverage
    dist_c = {}
    env_c = None
    tf = tex_fine[ubox][None]
    tc = tex_coarse[ubox][None]
    for bone, box, phi, zz in jobs:
        x, y = S.coords(box, phi)
        z3 = zz[:, None, None]
        if bone == 1:
            f, env = femur_field(x, y, z3, F)
            env_c = (box, env[MID])
            t = F.cortex_epiphysis + (F.cortex_shaft - F.cortex_epiphysis) * sstep(35.0, 85.0, z3)
            rim = trabecular_rim(0.8, sstep(F.marrow_cavity_z, F.marrow_cavity_z + 35.0, z3))
        elif bone == 2:
            f = tibia_field(x, y, z3, T)
            t = T.cortex_epiphysis + (T.cortex_shaft - T.cortex_epiphysis) * sstep(25.0, 75.0, -z3)
            rim = trabecular_rim(0.8, sstep(T.marrow_cavity_depth, T.marrow_cavity_depth + 30.0, -z3))
        elif bone == 3:
            f = patella_field(x, y, z3, Pt)
            t = np.full_like(z3, Pt.cortex)
            rim = np.full_like(z3, 1e3)
        else:
            f = fibula_field(x, y, z3, B)
            dd = B.head_centre[2] - z3
            t = B.cortex_epiphysis + (B.cortex_shaft - B.cortex_epiphysis) * sstep(22.0, 42.0, dd)
            rim = trabecular_rim(0.6, sstep(40.0, 60.0, dd))
        d, w = as_distance(f)
        del f
        dist_c[bone] = (box, d[MID])
        t, rim = t.astype(F32), rim.astype(F32)
        rb = relative_box(ubox, box)
        sub_t, sub_b = tis[:, rb[0], rb[1]], bid[:, rb[0], rb[1]]
        c0 = coverage(d, w)
        if not c0.any():
            continue
        depth = -d
        stf, stc = tf[:, rb[0], rb[1]], tc[:, rb[0], rb[1]]
        # cortex: thin epiphyseal cortex less dense than the shaft cortex
        c_hu = hu[CORTEX] * (0.7 + 0.3 * sstep(1.0, 4.0, t)) + 35.0 * stf
        # trabecular bone: texture, denser under the cortex (subchondral / endosteal)
        t_hu = hu[TRABECULAR] + 55.0 * stf + 30.0 * stc + 160.0 * np.exp(-np.clip(depth - t, 0, None) / 2.0)
        m_hu = hu[MARROW] + 10.0 * stf
        c1 = coverage(d + t, w)
        c2 = coverage(d + (t + rim), w)
        m = (c0 - c1) * c_hu + (c1 - c2) * t_hu + c2 * m_hu
        sub_c, sub_m = cov[:, rb[0], rb[1]], mat[:, rb[0], rb[1]]
        ce = np.minimum(c0, 1.0 - sub_c)  # bones never share a sample
        sub_m += m * (ce / np.maximum(c0, 1e-6))
        sub_c += ce
        # tissue codes and bone ids at the sample points (for the label and the tissue maps)
        inside = (d <= 0) & (sub_b == 0)
        cort = inside & (depth < t)
        marrow = inside & (depth > t + rim)
        sub_t[inside] = TRABECULAR
        sub_t[cort] = CORTEX
        sub_t[marrow] = MARROW
        sub_b[inside] = bone
    return LegBones(ubox, tis, bid, cov, mat, dist_c, env_c)
