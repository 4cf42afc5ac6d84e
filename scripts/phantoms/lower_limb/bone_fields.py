"""Implicit bones of one leg: femur, tibia, fibula and patella (negative inside, not yet distances).

The femur and patella are in the femur frame, tibia and fibula in the tibia frame (see
:mod:`scripts.phantoms.lower_limb.params`). :func:`~scripts.phantoms.lower_limb.bones.as_distance`
turns a field into a distance estimate.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ..shapes import capsule, ellipsoid, smax, smin, sstep
from .anatomy import F32
from .params import FemurParams, FibulaParams, PatellaParams, TibiaParams

__all__ = ["femur_field", "tibial_plateau_height", "tibia_cross_section", "tibia_field", "fibula_field", "patella_field"]

# The bone fields keep NumPy's float64 promotion of float64 centres/end points (the HU images depend
# on it bit for bit), see :func:`scripts.phantoms.shapes.ellipsoid`.
_ellipsoid = partial(ellipsoid, promote=True)
_capsule = partial(capsule, promote=True)


def femur_field(x, y, z, F: FemurParams):
    """Femur in the femur frame; returns ``(femur, envelope)`` (the envelope has no notch)."""
    yc = F.condyle_centre_y
    out = None
    for xc, ay, az in ((F.medial_condyle_x, F.condyle_radius_ap, F.condyle_radius_si), (F.lateral_condyle_x, F.lateral_condyle_radius_ap, F.lateral_condyle_radius_si)):
        adx = np.abs(x - F32(xc)) * F32(1.0 / F.condyle_half_width)
        r2 = ((y - F32(yc)) * F32(1.0 / ay)) ** 2 + ((z - F32(az)) * F32(1.0 / az)) ** 2
        q = np.cbrt(adx * adx * adx + r2 * np.sqrt(r2))
        f = (q - 1.0) * F32(az)
        out = f if out is None else np.minimum(out, f)
    c, r, W = F.trochlea_centre, F.trochlea_radii, F.width
    tro = _ellipsoid(x, y, z, c, r)
    tro = tro + F32(F.groove_depth) * np.exp(-(((x - F32(c[0])) * F32(1.0 / (0.16 * W))) ** 2)) * sstep(
        yc, yc + 0.6 * F.condyle_radius_ap, y
    )
    out = smin(out, tro, 3.0)
    # metaphysis flaring into the shaft (superellipse, boxy -> round)
    uu = sstep(0.0, 1.0, (z - F.metaphysis_z) / F.flare)
    hx0, hy0, cy0 = W / 2 * 0.96, 0.8 * F.condyle_radius_ap, yc + 0.15 * F.condyle_radius_ap
    hx = hx0 + (F.shaft_half_width - hx0) * uu
    hy = hy0 + (F.shaft_half_depth - hy0) * uu
    cx = F.shaft_x * uu
    cy = cy0 + (F.shaft_y - cy0) * uu
    p = 3.2 - 1.2 * uu
    bx = np.abs(x - cx) / hx
    by = np.abs(y - cy) / hy
    qb = (bx**p + by**p) ** (1.0 / p)
    blk = (qb - 1.0) * np.minimum(hx, hy)
    blk = blk - F.linea_aspera * uu * np.exp(-(((x - cx) / 5.0) ** 2)) * sstep(0.0, 0.6 * hy, cy - y)
    blk = smax(blk, F.metaphysis_z - z, 2.0)
    env = smin(out, blk, 5.0)
    # intercondylar notch
    zlo, ylo, k = F.notch_roof
    wn = F.notch_width * (1.0 - 0.35 * sstep(zlo, zlo + 25.0, z))
    slab = np.abs(x - F32(F.notch_x)) - wn / 2.0
    roof = y - (ylo + k * (z - zlo))
    notch = smax(slab, roof, 1.0)
    fem = smax(env, -notch, 1.0)
    return fem.astype(F32), env.astype(F32)


def tibial_plateau_height(x, y, T: TibiaParams):
    """Height of the tibial plateau bone surface (tibia frame)."""
    z = F32(T.slope) * y
    hy = T.depth / 2 * 0.85
    for xc, dep in ((T.medial_compartment_x, T.medial_concavity), (T.lateral_compartment_x, T.lateral_concavity)):
        r2 = ((x - F32(xc)) * F32(1.0 / T.compartment_half_width)) ** 2 + (y * F32(1.0 / hy)) ** 2
        z = z - F32(dep) * np.clip(1.0 - r2, 0.0, 1.0)
    z = z + F32(T.eminence_height) * np.exp(-((x * F32(1.0 / T.eminence_width)) ** 2) - ((y - 2.0) * F32(1.0 / 7.0)) ** 2)
    return z


def tibia_cross_section(z, T: TibiaParams):
    """``(half-width, half-depth, centre x, centre y, shaft weight)`` of the tibia at height ``z``."""
    uu = sstep(5.0, T.taper, -z)
    hx = T.width / 2 + (T.shaft_half_width - T.width / 2) * uu
    hy = T.depth / 2 + (T.shaft_half_depth - T.depth / 2) * uu
    return hx, hy, T.shaft_x * uu, T.shaft_y * uu, uu


def tibia_field(x, y, z, T: TibiaParams):
    """Tibia in the tibia frame."""
    hx, hy, cx, cy, uu = tibia_cross_section(z, T)
    yy = (y - cy) / hy
    hxe = hx * (1.0 - T.triangularity * uu * np.clip(yy, 0.0, 1.0))  # triangular shaft, anterior crest
    q = (np.abs((x - cx) / hxe) ** 2.3 + np.abs(yy) ** 2.3) ** (1 / 2.3)
    foot = (q - 1.0) * np.minimum(hx, hy)
    out = smax(foot, z - tibial_plateau_height(x, y, T), 1.5)
    # posterior intercondylar notch of the proximal tibia
    fade = 1.0 - sstep(15.0, 35.0, -z)
    pnx, pny = T.posterior_notch[0] * fade + 1e-3, T.posterior_notch[1] * fade + 1e-3
    pn = (np.sqrt(((x - cx) / pnx) ** 2 + ((y - (cy - hy)) / pny) ** 2) - 1.0) * np.minimum(pnx, pny)
    out = smax(out, -pn, 1.0)
    _, hy25, _, cy25, _ = tibia_cross_section(T.tuberosity_z, T)
    tub = _ellipsoid(x, y, z, (T.tuberosity_x, cy25 + hy25 - 3.0, T.tuberosity_z), T.tuberosity_radii)
    return smin(out, tub, 3.0).astype(F32)


def fibula_field(x, y, z, B: FibulaParams):
    """Fibular head and shaft in the tibia frame."""
    hc = B.head_centre
    head = _ellipsoid(x, y, z, hc, B.head_radii)
    end = (hc[0] + B.shaft_offset[0], hc[1] + B.shaft_offset[1], hc[2] - 250.0)
    shaft = _capsule(x, y, z, hc, end, B.shaft_radius)
    return smin(head, shaft, 4.0).astype(F32)


def patella_field(x, y, z, Pt: PatellaParams):
    """Patella in the femur frame (tilted, V-shaped articular surface)."""
    c, r, tl = Pt.centre, Pt.radii, Pt.tilt
    dx, dy = x - F32(c[0]), y - F32(c[1])
    ct, st = F32(np.cos(tl)), F32(np.sin(tl))
    px, py = ct * dx + st * dy, -st * dx + ct * dy
    # V-shaped articular (posterior) surface with the ridge in the middle, flatter front
    ryp = r[1] * (1.0 - 0.45 * np.clip(np.abs(px) / r[0], 0.0, 1.0))
    ry = np.where(py < 0, ryp, F32(r[1] * 0.8))
    q = np.sqrt((px / F32(r[0])) ** 2 + (py / ry) ** 2 + ((z - F32(c[2])) / F32(r[2])) ** 2)
    return ((q - 1.0) * F32(r[1])).astype(F32)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
