"""Implicit bones of the knee and the regions that carry cartilage and menisci.

Every field takes coordinate arrays in mm (femur frame for the femur, local tibia frame otherwise, see
:mod:`scripts.phantoms.knee.params`) and is negative inside; the ``*_cover`` functions return the
margin (mm, positive inside) of an articulating region.
"""

from __future__ import annotations

import numpy as np

from ..shapes import capsule, ellipsoid, smax, smin, sstep
from .params import KneeLandmarks, KneeParams

__all__ = [
    "femur_field",
    "femoral_cartilage_cover",
    "tibial_plateau_height",
    "tibia_cross_section",
    "tibia_field",
    "fibula_field",
    "tibial_cartilage_cover",
    "meniscus_mask",
]

def femur_field(x, y, z, P: KneeParams, D: KneeLandmarks):
    """Implicit femur (negative inside) in the femur frame."""
    yc = P.condyle_centre_y
    out = None
    for xc, ay, az in ((D.medial_condyle_x, P.condyle_radius_ap, P.condyle_radius_si), (D.lateral_condyle_x, P.lateral_condyle_radius_ap, P.lateral_condyle_radius_si)):
        dx = (x - xc) / D.condyle_half_width
        r2 = ((y - yc) / ay) ** 2 + ((z - az) / az) ** 2
        adx = np.abs(dx)
        q = np.cbrt(adx * adx * adx + r2 * np.sqrt(r2))
        f = (q - 1.0) * az
        out = f if out is None else smin(out, f, 1.5)
    ay, az, W = P.condyle_radius_ap, P.condyle_radius_si, P.femur_width
    # trochlea: anterior bridge between the condyles with a groove
    tro = ellipsoid(x, y, z, (0.0, yc + 0.42 * ay, 1.15 * az), (W / 2 * 0.88, 0.62 * ay, 0.85 * az))
    tro = tro + P.trochlear_groove_depth * np.exp(-((x + 1.0) / (0.16 * W)) ** 2) * sstep(yc, yc + 0.6 * ay, y)
    out = smin(out, tro, 3.0)
    # metaphysis flaring into the shaft
    uu = sstep(0.0, 1.0, (z - 1.6 * az) / P.metaphysis_flare)
    hx = W / 2 + (P.femur_shaft_half_width - W / 2) * uu
    hy = 0.8 * ay + (P.femur_shaft_half_depth - 0.8 * ay) * uu
    cy = yc + 0.12 * ay + (0.28 * ay - 0.12 * ay) * uu
    bx2, by2 = (x / hx) ** 2, ((y - cy) / hy) ** 2
    qb = np.sqrt(np.sqrt(bx2 * bx2 + by2 * by2))
    blk = (qb - 1.0) * np.minimum(hx, hy)
    blk = smax(blk, 1.1 * az - z, 2.0)
    out = smin(out, blk, 5.0)
    # intercondylar notch (open posteriorly/inferiorly, roof = Blumensaat line)
    th = np.deg2rad(P.notch_roof_angle)
    ya, za = yc + 0.3 * ay, 0.3 * az
    roof = (y - ya) * float(np.cos(th)) + (z - za) * float(np.sin(th))  # > 0 on the bone side
    slab = np.abs(x) - P.notch_width / 2
    notch = np.maximum(slab, roof)  # < 0 inside the notch
    return smax(out, -notch, 1.0)


def femoral_cartilage_cover(x, y, z, P: KneeParams, D: KneeLandmarks):
    """Margin (mm, > 0 inside) of the articulating femoral surface region, femur frame.

    Covered: the arc of the condyles from the trochlea (anterior-superior limit) through the distal
    surface to the posterior condyles (posterior-superior limit); not the intercondylar notch.
    """
    yc, az = P.condyle_centre_y, P.condyle_radius_si
    phi = np.degrees(np.arctan2(z - az, y - yc))  # 0 anterior, 90 superior, 180 posterior
    lo, hi = P.femoral_cartilage_anterior_angle, P.femoral_cartilage_posterior_angle
    ang = np.abs((phi - (lo + hi) / 2 + 180.0) % 360.0 - 180.0) - (hi - lo) / 2
    m = ang * (np.pi / 180.0) * az
    m = np.minimum(m, P.femur_width / 2 - 1.5 - np.abs(x))
    notch = np.maximum(np.abs(x) - P.notch_width / 2 - 0.7, y - (yc + 0.35 * P.condyle_radius_ap))
    return np.minimum(m, notch)


def tibial_plateau_height(x, y, P: KneeParams, D: KneeLandmarks):
    """Height of the tibial plateau bone surface (local frame)."""
    z = P.tibial_slope * y
    hy = P.tibia_depth / 2 * 0.85
    for xc, dep in ((D.medial_compartment_x, P.medial_plateau_concavity), (D.lateral_compartment_x, P.lateral_plateau_concavity)):
        r2 = ((x - xc) / D.compartment_half_width) ** 2 + (y / hy) ** 2
        z = z - dep * np.clip(1.0 - r2, 0.0, 1.0)
    z = z + P.eminence_height * np.exp(-((x / P.eminence_width) ** 2) - ((y - 2.0) / 7.0) ** 2)
    return z


def tibia_cross_section(z, P: KneeParams):
    """Half-width, half-depth and AP centre of the tibia at height ``z`` (plateau to shaft)."""
    depth = -z
    uu = sstep(5.0, 42.0, depth)
    hx = P.tibia_width / 2 + (P.tibia_shaft_half_width - P.tibia_width / 2) * uu
    hy = P.tibia_depth / 2 + (P.tibia_shaft_half_depth - P.tibia_depth / 2) * uu
    cy = 0.0 + 2.0 * uu
    return hx, hy, cy


def tibia_field(x, y, z, P: KneeParams, D: KneeLandmarks):
    """Implicit tibia (negative inside), local frame."""
    hx, hy, cy = tibia_cross_section(z, P)
    q = (np.abs(x / hx) ** 2.3 + np.abs((y - cy) / hy) ** 2.3) ** (1 / 2.3)
    foot = (q - 1.0) * np.minimum(hx, hy)
    out = smax(foot, z - tibial_plateau_height(x, y, P, D), 1.5)
    hx25, hy25, cy25 = tibia_cross_section(-26.0, P)
    tub = ellipsoid(x, y, z, (0.0, cy25 + hy25 - 2.0, -26.0), (8.0, 5.0, 11.0))
    return smin(out, tub, 3.0)


def fibula_field(x, y, z, P: KneeParams, D: KneeLandmarks):
    """Fibular head and shaft (lateral, posterior), local frame."""
    xf = P.tibia_width / 2 - 1.0
    yf = -P.tibia_depth / 2 * 0.55
    head = ellipsoid(x, y, z, (xf, yf, -16.0), (7.0, 7.5, 8.0))
    shaft = capsule(x, y, z, (xf, yf, -16.0), (xf + 1.0, yf - 3.0, -90.0), 5.0)
    return smin(head, shaft, 3.0)


def tibial_cartilage_cover(x, y, z, P: KneeParams, D: KneeLandmarks):
    """Margin (mm, > 0 inside) of the two tibial cartilage compartments, local frame."""
    hy = P.tibia_depth / 2 * 0.9
    m = None
    for xc in (D.medial_compartment_x, D.lateral_compartment_x):
        r = np.sqrt(((x - xc) / (D.compartment_half_width * 0.95)) ** 2 + (y / hy) ** 2)
        mc = (1.0 - r) * D.compartment_half_width
        m = mc if m is None else np.maximum(m, mc)
    return m


def meniscus_mask(x, y, z, P: KneeParams, D: KneeLandmarks):
    """Boolean mask of the two meniscal wedges (local frame)."""
    hy = P.tibia_depth / 2 * 0.97
    rin = P.meniscus_inner_radius
    mask = None
    for xc, sgn in ((D.medial_compartment_x, -1.0), (D.lateral_compartment_x, 1.0)):
        r = np.sqrt(((x - xc) / (D.compartment_half_width * 1.03)) ** 2 + (y / hy) ** 2)
        frac = np.clip((r - rin) / (0.9 - rin), 0.0, 1.0)
        hmax = P.meniscus_height * (1.0 + 0.25 * np.clip(-y / hy, 0, 1))  # posterior horn taller
        h = hmax * frac * (r <= 1.0)
        # open towards the intercondylar eminence (horn attachments)
        inner = ((x - xc) * -sgn > 0.55 * D.compartment_half_width) & (np.abs(y) < 0.45 * hy)
        m = (r >= rin) & (r <= 1.0) & ~inner
        zt = tibial_plateau_height(x, y, P, D)
        m &= (z >= zt - 0.5) & (z <= zt + h + 0.3)
        mask = m if mask is None else (mask | m)
    return mask
