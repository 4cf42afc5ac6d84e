"""Organs of the trunk on one slice: the thorax (lungs, mediastinum, heart, airways) and the abdomen.

Both painters are called by :class:`scripts.phantoms.spine.soft_tissue.SoftTissuePainter` with itself as
``painter`` (its scene, random fields and lung vessels) and write into the slice's tissue map ``tis``.
"""

from __future__ import annotations

import numpy as np

from ..shapes import elliptic_capsule, sstep
from .anatomy import (
    AIRWAY,
    BLOOD,
    BOWEL,
    BOWEL_CONTENT,
    FECES,
    GAS,
    HEART,
    KIDNEY,
    LIVER,
    LUNG,
    MUSCLE,
    SHAPE_XY,
    SPACING,
    SPLEEN,
    VISCERAL_FAT,
)
from .scene import TrunkSection

__all__ = ["paint_thorax", "paint_abdomen"]


def paint_thorax(painter, tis, thor, T: TrunkSection, z, X, Y, depth, d_cav):
    """Lungs with vessels, mediastinum, heart, great vessels, airways and esophagus (in place)."""
    ctx, P = painter.ctx, painter.ctx.P
    f32 = np.float32
    lev, xs, ys, a, b = T.level, T.spine_x, T.spine_y, T.body_half_width, T.body_half_depth
    x_t, y_t = T.centre_x, T.centre_y
    tis[thor] = LUNG
    # mediastinum: a band from the spine to the sternum
    y_front = y_t + T.anterior_half_depth - P.skin - T.anterior_fat - T.wall
    t = np.clip((Y - f32(ys + b)) / f32(max(y_front - ys - b, 10.0)), 0.0, 1.0)
    hw = (a + 7.0) * (1 - t) + 16.0 * t
    xm = xs * (1 - t) + (x_t - 4.0) * t
    med = thor & (np.abs(X - xm) < hw) & (Y > ys - 0.3 * b)
    tis[med] = VISCERAL_FAT
    # heart (ellipsoid, long axis to the anterior left) with pericardial fat
    s = P.size
    zh = ctx.z_of_level(P.heart_level)
    ch = 60.0 * s
    if abs(z - zh) < ch:
        k = np.sqrt(1.0 - ((z - zh) / ch) ** 2)
        hx, hy = x_t - 22.0 * s, ys + b + 58.0 * s
        ca, sa = np.cos(np.deg2rad(35)), np.sin(np.deg2rad(35))
        ddx, ddy = X - f32(hx), Y - f32(hy)
        p1 = (ddx * f32(ca) + ddy * f32(sa)) / f32(60.0 * s * k)
        p2 = (-ddx * f32(sa) + ddy * f32(ca)) / f32(45.0 * s * k)
        rh = np.sqrt(p1 * p1 + p2 * p2)
        m = thor & (rh < 1.0 + 4.0 / (45.0 * s * k))
        tis[m] = VISCERAL_FAT
        tis[m & (rh < 1.0)] = HEART
    # great vessels above the heart: ascending aorta, pulmonary trunk, SVC; aortic arch
    if abs(z - zh) > 0.7 * ch:
        # (x offset from the trunk centre, y offset from the body front, radius, level range)
        for ox, oy, r, l0, l1 in ((10.0, 62.0, 15.0, 4.0, 7.2), (-14.0, 55.0, 13.0, 4.6, 6.8),
                                  (32.0, 45.0, 10.0, 3.4, 7.2)):
            if l0 < lev < l1:
                m = ((X - f32(x_t + ox * s)) ** 2 + (Y - f32(ys + b + oy * s)) ** 2) < (r * s) ** 2
                tis[m & thor] = BLOOD
    if 2.6 < lev < 3.8:
        # arch: a sausage from the ascending (anterior right) to the descending (posterior left) aorta
        p = elliptic_capsule(X[:, :, None], Y[:, :, None], np.float32(0.0), (x_t + 10.0 * s, ys + b + 60 * s, 0),
                   (xs - a - 10.0, ys + 0.2 * b, 0), 13.0 * s, 13.0 * s)[:, :, 0]
        tis[(p < 0) & thor] = BLOOD
    # trachea / main bronchi
    cl = P.carina_level
    if lev < cl + 1.2:
        ty = ys + b + 20.0 * s
        pos = [(xs + 2.0, 9.5 * s, 7.8 * s)] if lev < cl else [
            (xs + 2.0 + sg * (8.0 + 24.0 * (lev - cl)), 6.8 * s, 5.0 * s) for sg in (-1.0, 1.0)]
        for (px, ro, ri) in pos:
            rr = (X - f32(px)) ** 2 + (Y - f32(ty)) ** 2
            tis[(rr < ro * ro) & thor] = MUSCLE
            tis[(rr < ri * ri) & thor] = AIRWAY
    # esophagus (left of the midline, in front of the spine)
    ex, ey = xs - 5.0, ys + b + 7.0
    rr = ((X - f32(ex)) / 9.0) ** 2 + ((Y - f32(ey)) / 6.5) ** 2
    tis[(rr < 1.0) & (thor | (Y > ys))] = MUSCLE
    # lung vessels
    A_in = T.half_width - P.skin - T.fat - T.wall
    B_in = 0.5 * (T.anterior_half_depth + T.posterior_half_depth) - T.fat - T.wall
    lung = tis == LUNG
    for side, xn, yn, ddx, ddy, z0, hl, rr0 in painter.vessels.tolist():
        if abs(z - z0) > hl:
            continue
        cx = x_t + side * (0.18 + 0.75 * (0.5 + 0.5 * xn)) * A_in + ddx * (z - z0)
        cy = y_t + 0.8 * yn * B_in + ddy * (z - z0)
        rad = 0.8 + 2.6 * rr0 * (1.0 - 0.6 * (0.5 + 0.5 * xn))
        i0 = int((cx - rad) / SPACING[0] + 255.5)
        j0 = int((cy - rad) / SPACING[1] + 255.5)
        n_ = int(2 * rad / SPACING[0]) + 3
        if i0 < 0 or j0 < 0 or i0 + n_ > SHAPE_XY[0] or j0 + n_ > SHAPE_XY[1]:
            continue
        xx = painter.ctx.X[i0:i0 + n_][:, None] - cx
        yy = painter.ctx.Y[j0:j0 + n_][None, :] - cy
        m = (xx * xx + yy * yy < rad * rad) & lung[i0:i0 + n_, j0:j0 + n_]
        tis[i0:i0 + n_, j0:j0 + n_][m] = BLOOD



def paint_abdomen(painter, tis, abd, T: TrunkSection, z, k, X, Y, depth, d_cav, psi, dx):
    """Liver, spleen, stomach, kidneys, colon and small bowel (in place)."""
    ctx, P = painter.ctx, painter.ctx.P
    f32 = np.float32
    lev, xs, ys, a, b = T.level, T.spine_x, T.spine_y, T.body_half_width, T.body_half_depth
    x_t, y_t, A = T.centre_x, T.centre_y, T.half_width
    s = P.size
    dxn = dx / f32(A)
    dyn = (Y - f32(y_t)) / f32(T.anterior_half_depth)
    depth_in = depth - d_cav
    organ = np.zeros(SHAPE_XY, bool)
    # liver: right side, shrinking towards its inferior tip
    z_top = ctx.z_of_level(P.diaphragm_level)
    z_tip = ctx.z_of_level(P.liver_tip_level)
    if z < z_top + 5 and z > z_tip:
        fr = float(np.clip((z_top - z) / max(z_top - z_tip, 1.0), 0.0, 1.0))
        up = float(sstep(0.45, 0.1, fr))
        cut = (-0.12 - 0.45 * up * np.clip(dyn, 0, 1) + 0.75 * fr**1.6 + 0.3 * (dyn - 0.1) ** 2
               + 0.05 * painter.field(2, k))
        thick = 220.0 * (1.0 - fr) ** 1.5 + 18.0
        m = abd & (dxn > cut) & (depth_in < thick)
        m &= ((X - f32(xs)) / f32(a + 24.0)) ** 2 + ((Y - f32(ys)) / f32(b + 20.0)) ** 2 > 1.0
        tis[m] = LIVER
        organ |= m
    # spleen: left posterolateral, against the wall
    zs_ = ctx.z_of_level(P.spleen_level)
    cs = 52.0 * s
    if abs(z - zs_) < cs:
        kk = np.sqrt(1.0 - ((z - zs_) / cs) ** 2)
        ang = np.exp(-(((psi - 1.15) / 0.55) ** 2))
        m = abd & (dxn < -0.2) & (depth_in < 38.0 * s * kk * ang)
        tis[m] = SPLEEN
        organ |= m
    # stomach: left upper quadrant, gas anteriorly
    zst = ctx.z_of_level(P.stomach_level)
    cst = 60.0 * s
    if abs(z - zst) < cst:
        kk = np.sqrt(1.0 - ((z - zst) / cst) ** 2)
        sx, sy = x_t - 0.33 * A, y_t + 0.12 * T.anterior_half_depth
        rr = np.sqrt(((X - f32(sx)) / f32(48.0 * s * kk)) ** 2 + ((Y - f32(sy)) / f32(40.0 * s * kk)) ** 2)
        rr = rr + 0.08 * painter.field(1, k)
        m = abd & (rr < 1.0) & ~organ
        tis[m] = BOWEL
        tis[m & (rr < 1.0 - 3.0 / (40.0 * s * kk))] = BOWEL_CONTENT
        if P.stomach_gas:
            tis[m & (rr < 0.9) & (Y > sy + 12.0 * s * kk)] = GAS
        organ |= m
    # kidneys (with renal sinus fat, hilum anteromedial)
    for sg, key in ((1.0, "right_kidney_level"), (-1.0, "left_kidney_level")):
        zk = ctx.z_of_level(getattr(P, key))
        ck = 52.0 * s
        if abs(z - zk) >= ck:
            continue
        kk = np.sqrt(1.0 - ((z - zk) / ck) ** 2)
        kx, ky = xs + sg * (a + 46.0 * s), ys - 0.1 * b - 2.0
        th = np.deg2rad(sg * 35.0)
        ddx, ddy = X - f32(kx), Y - f32(ky)
        p1 = (ddx * f32(np.cos(th)) + ddy * f32(np.sin(th))) / f32(30.0 * s * kk)
        p2 = (-ddx * f32(np.sin(th)) + ddy * f32(np.cos(th))) / f32(20.0 * s * kk)
        rk = p1 * p1 + p2 * p2
        m = (rk < 1.0) & (abd | (tis == VISCERAL_FAT))
        tis[m & (depth > d_cav)] = KIDNEY
        hx, hy = kx - sg * 12.0 * s, ky + 8.0 * s
        rs = ((X - f32(hx)) ** 2 + (Y - f32(hy)) ** 2) < (9.0 * s * kk) ** 2
        tis[m & rs & (depth > d_cav)] = VISCERAL_FAT
        organ |= m
    # colon (ascending right, descending left) with feces and gas
    if lev > 12.5:
        for ci, sg in enumerate((-1.0, 1.0)):
            rc, asp, gas, off = P.colon[ci].tolist()
            rc *= s
            cx = x_t + sg * (0.6 * A + off) + 6.0 * np.sin(0.05 * z + sg)
            cy = y_t - 0.1 * T.anterior_half_depth + 6.0 * np.cos(0.04 * z + off)
            rr = ((X - f32(cx)) / f32(rc * asp)) ** 2 + ((Y - f32(cy)) / f32(rc / asp)) ** 2
            m = abd & (rr < 1.0) & ~organ
            tis[m] = BOWEL
            fe = m & (rr < 0.75)
            tis[fe] = FECES
            if gas > 0:
                tis[fe & (Y > cy + (1.0 - 2.0 * gas) * rc / asp)] = GAS
            organ |= m
    # small bowel: tubular loops along the zero crossings of a random field, some with gas
    if lev > 11.3:
        fb = painter.field(0, k)
        fg = painter.field(1, k)
        fn = painter.field(2, k)
        lim = ys + b + 4.0 - 35.0 * np.clip((np.abs(X - xs) - (a + 25.0)) / 60.0, 0, 1) + 6.0 * fn
        reg = abd & ~organ & (Y > lim)
        afb = np.abs(fb)
        bw = P.bowel_width
        loops = reg & (afb < bw)
        tis[loops] = BOWEL
        tis[loops & (afb < 0.55 * bw)] = BOWEL_CONTENT
        tis[loops & (afb < 0.6 * bw) & (fg > P.bowel_gas_threshold)] = GAS

