"""Soft tissue of one leg on one slice (muscle, fat, septa, tendons, vessels, joint tissue, skin) and the table."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..shapes import smax, sstep
from .anatomy import (
    AIR,
    BIG,
    F32,
    FAT,
    JOINT,
    MID,
    MUSCLE,
    PAD,
    SHAPE_XY,
    SKIN,
    SPACING,
    TABLE_CORE,
    TABLE_SHELL,
    TENDON,
    VESSEL,
    X_MM,
    Y_MM,
)
from .bone_fields import tibia_cross_section
from .bones import LegBones
from .leg_slice import LegSlice, paste_box
from .outline import CAPSULE_THICKNESS, CAPSULE_Z, MUSCLE_FRONT_Y, MUSCLE_FRONT_Z, OUTLINE_Z, fat_thickness, outline, soft_tissue_rotation
from .params import LowerLimbParams

__all__ = ["render_soft_tissue", "table_and_air"]


def render_soft_tissue(S: LegSlice, bones: LegBones | None, P: LowerLimbParams):
    """Soft tissue of one leg at the slice centre: ``(box, tissue, depth)`` (depth > 0 inside)."""
    L = S.L
    z = float(S.zr[MID])
    F, T, Pt = L.femur, L.tibia, L.patella
    w = float(sstep(-30.0, 30.0, z))
    phi = soft_tissue_rotation(L, z)
    rx, ry = np.interp(z, OUTLINE_Z, L.outline_rx), np.interp(z, OUTLINE_Z, L.outline_ry)
    ox, oy = np.interp(z, OUTLINE_Z, L.outline_ox), np.interp(z, OUTLINE_Z, L.outline_oy)
    amp = float(np.abs(L.outline_amplitude).sum() + np.abs(L.outline_amplitude_drift).sum())
    fat_z = fat_thickness(L, z)
    R = max(rx, ry) * (1.0 + amp) + np.hypot(ox, oy) + fat_z * (1.0 + L.fat_asymmetry) + 20.0
    box = S.box((-R, R), (-R, R), phi, subs=[MID], margin=2.0)
    if box is None:
        return None
    x, y = (a[0] for a in S.coords(box, phi, subs=[MID]))
    shp = x.shape
    # bone hull (nearest bone at the slice centre) and joint spaces
    hull = np.full(shp, BIG, F32)
    dc = {}
    joint = np.zeros(shp, bool)
    if bones is not None:
        for bone, (bb, d) in bones.centre_distance.items():
            dc[bone] = paste_box(shp, box, bb, d, BIG)
        bmask = paste_box(shp, box, bones.box, bones.tissue[MID] > 0, False)
        if bmask.any():  # in-plane distance to the nearest bone (-1 inside)
            hull = ndi.distance_transform_edt(~bmask, sampling=SPACING[:2]).astype(F32)
            hull[bmask] = -1.0
        big = np.full(shp, BIG, F32)
        d_f, d_t, d_p, d_b = (dc.get(k, big) for k in (1, 2, 3, 4))
        joint |= (d_f > 0) & (d_t > 0) & (d_f + d_t < F.joint_gap + T.joint_gap + 1.5)
        joint |= (d_f > 0) & (d_p > 0) & (d_f + d_p < 7.5)
        joint |= (d_t > 0) & (d_b > 0) & (d_t + d_b < 4.0)
        cap = float(np.interp(z, CAPSULE_Z, CAPSULE_THICKNESS))
        if cap > 0:
            joint |= (hull > 0) & (hull < cap)
        if bones.centre_envelope is not None:
            e = paste_box(shp, box, bones.centre_envelope[0], bones.centre_envelope[1], BIG)
            joint |= (e < 0) & (d_f > 0)
    fascia, skin, fat_t = outline(L, z, x, y, hull)
    if P.table:
        Yp = Y_MM[box[1]][None, :] - F32(P.pad_top) + X_MM[box[0]][:, None] ** 2 / F32(2.0 * P.table_radius)
        skin = smax(skin, Yp, 3.0)
        fascia = smax(fascia, Yp + 0.45 * fat_t, 3.0)
    inside = skin <= 0
    tissue = np.where(fascia > 0, np.uint8(FAT), np.uint8(MUSCLE))
    musc = tissue == MUSCLE
    # muscle-free regions around the knee (muscle only behind y_lim)
    ylim = float(np.interp(z, MUSCLE_FRONT_Z, MUSCLE_FRONT_Y)) + L.muscle_front_shift
    wob = F32(L.muscle_front_wobble[0]) * np.sin(x * F32(1.0 / L.muscle_front_wobble[1]) + F32(L.muscle_front_wobble[2]))
    fat_zone = y > F32(ylim) - F32(L.muscle_front_curvature) * x * x + wob
    # popliteal fat with the popliteal vessels
    pfx, prx, pry = L.popliteal_fat
    taper = float(sstep(-35.0, -15.0, z) * (1.0 - sstep(50.0, 78.0, z)))
    pyc = float(np.interp(z, [-30.0, 0.0, 30.0, 70.0], [-32.0, -38.0, -44.0, -38.0])) * L.size
    if taper > 0.05:
        fat_zone |= ((x - pfx) / (prx * taper)) ** 2 + ((y - pyc) / (pry * taper)) ** 2 < 1.0
    # bone centre of the soft-tissue frame (femoral shaft above, tibial shaft below)
    bxf, byf = F.shaft_x, F.shaft_y
    _, _, tcx, tcy, _ = tibia_cross_section(z + T.joint_gap, T)
    bx_, by_ = bxf * w + tcx * (1 - w), byf * w + tcy * (1 - w)
    xb, yb = x - F32(bx_), y - F32(by_)
    # anteromedial tibia is subcutaneous
    if z < -20.0:
        fat_zone |= (xb < 3.0) & (yb > -2.0)
    # fat septa between the muscles (radial planes) and the gastrocnemius/soleus plane
    for ang, drift, curv, width, start, wa, wl, wp in L.septa:
        a = ang + drift * z
        ca, sa = F32(np.cos(a)), F32(np.sin(a))
        pr = xb * ca + yb * sa
        bend = F32(curv / 100.0) * pr * pr + F32(wa) * np.sin(pr * F32(1.0 / wl) + F32(wp + 0.02 * z))
        dd = np.abs(xb * sa - yb * ca + bend)
        fat_zone |= (dd < width / 2.0) & (pr > start)
    if z < -35.0:
        rgs, wgs = L.gastrocnemius_soleus_plane
        r_b = np.sqrt(xb * xb + yb * yb)
        fat_zone |= (np.abs(r_b - F32(rgs)) < wgs / 2.0) & (yb < -12.0)
    tissue[musc & fat_zone] = FAT
    tissue[joint & (fascia <= 0)] = JOINT
    # tendons: quadriceps (femur frame) and patellar (tibia frame)
    pc, pr_ = Pt.centre, Pt.radii
    zf = z - F.joint_gap
    p_top, p_bot = pc[2] + 0.8 * pr_[2], pc[2] - 0.8 * pr_[2]
    if p_top - 4.0 < zf < p_top + 55.0:
        xf, yf = (a[0] for a in S.coords(box, L.femur_rotation, subs=[MID]))
        fr = (zf - p_top) / 55.0
        uu = sstep(0.0, 1.0, (zf - F.metaphysis_z) / F.flare)
        front = F.condyle_centre_y + 0.15 * F.condyle_radius_ap + (F.shaft_y - F.condyle_centre_y - 0.15 * F.condyle_radius_ap) * uu
        front = front + 0.8 * F.condyle_radius_ap + (F.shaft_half_depth - 0.8 * F.condyle_radius_ap) * uu
        yq = (pc[1] + 0.1 * pr_[1]) * (1 - fr) + (front + 9.0) * fr
        tq = ((xf - pc[0]) / (13.0 * L.size)) ** 2 + ((yf - yq) / 3.6) ** 2 < 1.0
        tissue[tq & inside] = TENDON
    zt = z + T.joint_gap
    z_pb = p_bot + F.joint_gap + T.joint_gap  # patella lower pole in the tibia frame
    if T.tuberosity_z - 4.0 < zt < z_pb + 3.0:
        xt, yt = (a[0] for a in S.coords(box, L.tibia_rotation, subs=[MID]))
        fr = float(np.clip((z_pb - zt) / (z_pb - T.tuberosity_z), 0.0, 1.0))
        # patella position in the tibia frame (rotate by the femur-tibia rotation difference)
        dphi = L.tibia_rotation - L.femur_rotation
        px_t = pc[0] * np.cos(dphi) + pc[1] * np.sin(dphi)
        py_t = -pc[0] * np.sin(dphi) + pc[1] * np.cos(dphi)
        _, hy25, _, cy25, _ = tibia_cross_section(T.tuberosity_z, T)
        tx = px_t * (1 - fr) + T.tuberosity_x * fr
        ty = (py_t + 0.3 * pr_[1]) * (1 - fr) + (cy25 + hy25 + 3.0 + 2.5) * fr
        tp = ((xt - tx) / (12.5 * L.size)) ** 2 + ((yt - ty) / 3.0) ** 2 < 1.0
        tissue[tp & inside & ~joint] = TENDON
    # popliteal artery and vein (inside the fat or the muscle)
    if -60.0 < z < 110.0:
        vx = float(np.interp(z, [-60.0, 0.0, 60.0, 110.0], [6.0, pfx, pfx - 4.0, -22.0]))
        vy = float(np.interp(z, [-60.0, 0.0, 60.0, 110.0], [-30.0, pyc + 1.0, -36.0, -10.0])) * L.size
        artery = (x - (vx + 3.0)) ** 2 + (y - (vy + 3.0)) ** 2 < 3.0**2
        ves = artery | ((x - vx) ** 2 + (y - (vy - 3.0)) ** 2 < 4.3**2)
        tissue[ves & (fascia <= 0) & (tissue != JOINT)] = VESSEL
    # great saphenous vein in the subcutaneous fat
    ga, gr = L.saphenous_vein
    if fat_z > 5.0:
        ce = np.cos(ga), np.sin(ga)
        rr = 1.0 / np.sqrt((ce[0] / rx) ** 2 + (ce[1] / ry) ** 2) + 0.5 * fat_z
        gx, gy = ox + rr * ce[0], oy + rr * ce[1]
        tissue[((x - gx) ** 2 + (y - gy) ** 2 < gr * gr) & (fascia > 0) & inside] = VESSEL
    tissue[skin > -F32(L.skin)] = SKIN
    tissue[~inside] = AIR
    return box, tissue, -skin


def table_and_air(P: LowerLimbParams) -> np.ndarray:
    """Tissue map of the air, pad and table (the same on every slice)."""
    tissue = np.full(SHAPE_XY, AIR, np.uint8)
    if P.table:
        X = X_MM[:, None].astype(np.float64)
        Y = Y_MM[None, :].astype(np.float64)
        ytop = P.pad_top - X**2 / (2.0 * P.table_radius)  # pad top (rises at the sides)
        edge = np.abs(X) < P.table_half_width
        t0 = ytop + P.pad
        s_, c_ = P.table_shell, P.table_core
        if P.pad > 0:
            tissue[((Y >= ytop) & (Y < t0) & (np.abs(X) < P.table_half_width - 20.0)).astype(bool)] = PAD
        tissue[(Y >= t0) & (Y < t0 + s_) & edge] = TABLE_SHELL
        tissue[(Y >= t0 + s_) & (Y < t0 + s_ + c_) & edge] = TABLE_CORE
        tissue[(Y >= t0 + s_ + c_) & (Y < t0 + 2 * s_ + c_) & edge] = TABLE_SHELL
    return tissue
