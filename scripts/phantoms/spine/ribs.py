"""Ribs, costal cartilages and the sternum on the fine grid (3D)."""

from __future__ import annotations

import numpy as np

from ..geometry import catmull_rom
from ..shapes import elliptic_capsule, sstep
from .anatomy import BONE_CORTEX, BONE_MARROW, COSTAL_CARTILAGE, RIB_CORTEX, RIB_MARROW, STERNUM_CORTEX, STERNUM_MARROW
from .levels import RIB_CARTILAGE, RIB_DROP, RIB_END_ANGLE, RIB_HEIGHT, RIB_THICKNESS
from .scene import SpineScene, TrunkSection
from .soft_tissue import SoftTissuePainter

__all__ = ["paint_capsule_chain", "lung_centre", "cavity_edge", "paint_ribs", "paint_sternum"]


def paint_capsule_chain(ctx: SpineScene, tissue, pts, rh, rv, marrow, cortex, cort_t=0.9):
    """Paint a chain of elliptic capsules through ``pts`` (world mm, with per-point radii)."""
    zlo, zhi = ctx.zf[0] - 1.0, ctx.zf[-1] + 1.0
    for j in range(len(pts) - 1):
        pa, pb = pts[j], pts[j + 1]
        r = max(rh[j], rv[j], rh[j + 1], rv[j + 1])
        if max(pa[2], pb[2]) + r < zlo or min(pa[2], pb[2]) - r > zhi:
            continue
        if np.linalg.norm(pb - pa) < 1e-3:
            continue
        sl = ctx.box(np.minimum(pa, pb) - r, np.maximum(pa, pb) + r, 0.5)
        if sl is None:
            continue
        sdf = elliptic_capsule(*ctx.coords(sl), pa, pb, rh[j], rv[j], rh1=rh[j + 1], rv1=rv[j + 1])
        t = tissue[sl]
        inside = sdf < 0
        if cortex is None:
            t[inside & ~np.isin(t, BONE_MARROW + BONE_CORTEX)] = marrow
            continue
        t[inside & (t != marrow)] = cortex
        t[inside & (sdf < -cort_t)] = marrow


def lung_centre(T: TrunkSection, side: float):
    """A point in the middle of one half of the chest cavity (rib paths are traced around it)."""
    return T.centre_x + side * 0.45 * T.half_width, T.centre_y - 0.1 * T.posterior_half_depth


def cavity_edge(ctx: SpineScene, T: TrunkSection, phi, side: float, soft: SoftTissuePainter) -> np.ndarray:
    """Points ``(m, 2)`` where rays from the lung centre at angles ``phi`` (0 posterior, pi/2
    lateral, pi anterior) leave the chest cavity."""
    cx, cy = lung_centre(T, side)
    phi = np.atleast_1d(np.asarray(phi, float))
    rho = np.arange(0.0, 260.0, 0.5)
    ex, ey = side * np.sin(phi)[:, None], -np.cos(phi)[:, None]
    x, y = cx + rho[None, :] * ex, cy + rho[None, :] * ey
    cav = soft.layers(T, x.astype(np.float32), y.astype(np.float32)).cavity
    first_out = np.argmin(cav, axis=1)  # first sample outside the cavity
    first_out = np.where(cav.all(axis=1), len(rho) - 1, np.maximum(first_out - 1, 0))
    r = rho[first_out]
    return np.stack([cx + r * ex[:, 0], cy + r * ey[:, 0]], 1), r


def paint_ribs(ctx: SpineScene, tissue, soft: SoftTissuePainter):
    """Ribs 1-12 (cortex + marrow) from the costovertebral joints around the chest wall, and the
    costal cartilages."""
    d, P = ctx.dims, ctx.P
    zlo, zhi = ctx.zf[0], ctx.zf[-1]

    def edge_point(z, phi, sg, extra):
        T = ctx.trunk_at(float(z))
        _, r = cavity_edge(ctx, T, [phi], sg, soft)
        cx, cy = lung_centre(T, sg)
        rr = float(r[0]) + extra
        x, y = cx + rr * sg * np.sin(phi), cy - rr * np.cos(phi)
        psi = float(np.arctan2(abs(x - T.centre_x), -(y - T.centre_y)))
        return np.array([x, y, z]), psi

    for k in range(12):
        F = ctx.F[k]
        H = d.body_height[k]
        z_head = F.world((0, 0, H / 2))[2]
        drop = RIB_DROP[k] * P.size
        if z_head < zlo - 12.0 or z_head - drop - 20.0 > zhi:
            continue
        a, b = d.body_width[k] / 2, d.body_depth[k] / 2
        cw, pw, pl = d.canal_width[k], d.pedicle_width[k], d.pedicle_length[k]
        ga = np.deg2rad(d.transverse_angle[k])
        rh_r, rv_r = RIB_THICKNESS[k] / 2 * P.size ** 0.5, RIB_HEIGHT[k] / 2 * P.size ** 0.5
        psi_e = np.deg2rad(RIB_END_ANGLE[k])
        for sg in (-1.0, 1.0):
            head = F.world((sg * (a - 1.0), -0.55 * b, H / 2 - 1.5))
            w_tp = H / 2 - d.pedicle_height[k] / 2 - 2.0
            r0 = np.array([sg * (cw / 2 + pw), -b - pl + 1.0, w_tp])
            tipl = r0 + d.transverse_length[k] * np.array([sg * np.cos(ga), -np.sin(ga), 0.06])
            tub = F.world(tipl + np.array([sg * 1.0, d.transverse_radius_ap[k] + rh_r + 0.8, -2.0]))
            T = ctx.trunk_at(float(tub[2]))
            cx, cy = lung_centre(T, sg)
            p_ang = (tub[0] + sg * 14.0, tub[1] - 5.0)
            phi = float(np.arctan2(sg * (p_ang[0] - cx), -(p_ang[1] - cy)))
            p0, psi_s = edge_point(tub[2] - 2.0, phi, sg, rh_r + 0.7)
            pts = [head, tub, p0]
            psi_prev, z = psi_s, tub[2] - 2.0
            step = np.deg2rad(11.0)
            dz = 0.0
            for _ in range(40):
                phi += step
                # the chest outline is taken at the height predicted from the previous step
                pt, psi = edge_point(z + dz, phi, sg, rh_r + 0.7)
                fr = min(max((psi - psi_s) / max(psi_e - psi_s, 0.1), 0.0), 1.0)
                z_new = tub[2] - 2.0 - drop * fr**1.2
                dz, z = z_new - z, z_new
                pt[2] = z
                if psi >= psi_e or phi > np.pi * 0.98:
                    # shorten the last step to end at psi_e
                    frac = (psi_e - psi_prev) / max(psi - psi_prev, 1e-6)
                    if 0.05 < frac < 1.0:
                        pt = pts[-1] + frac * (pt - pts[-1])
                    if frac > 0.05:
                        pts.append(pt)
                    break
                pts.append(pt)
                psi_prev = psi
            pts = np.asarray(pts)
            path = catmull_rom(pts, 8.0)
            # radii: rounder neck near the spine, flat ribbon around the chest
            cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
            s_t = float(np.linalg.norm(pts[1] - pts[0]))
            blend = sstep(s_t, s_t + 30.0, cum)
            rh = 3.6 * (1 - blend) + rh_r * blend
            rv = 4.2 * (1 - blend) + rv_r * blend
            paint_capsule_chain(ctx, tissue, path, rh, rv, RIB_MARROW, RIB_CORTEX, 0.9)
            # costal cartilage towards the sternum
            if RIB_CARTILAGE[k]:
                end = path[-1]
                rise = 5.0 * max(k - 3, 0)
                Te = ctx.trunk_at(float(end[2] + rise))
                if RIB_CARTILAGE[k] == 1:
                    y_st = Te.centre_y + Te.anterior_half_depth - P.skin - Te.anterior_fat - 7.0
                    tgt = np.array([Te.centre_x + sg * 14.0 * P.size, y_st, end[2] + rise])
                else:
                    tgt, _ = edge_point(end[2] + rise, min(phi + 0.35, np.pi * 0.97), sg, rh_r)
                mid = 0.5 * (end + tgt)
                Tm = ctx.trunk_at(float(mid[2]))
                cxm, cym = lung_centre(Tm, sg)
                phm = float(np.arctan2(sg * (mid[0] - cxm), -(mid[1] - cym)))
                mid, _ = edge_point(mid[2], phm, sg, rh_r)
                cpath = catmull_rom(np.array([end, mid, tgt]), 8.0)
                nn = len(cpath)
                paint_capsule_chain(ctx, tissue, cpath, np.full(nn, rh_r * 1.1), np.full(nn, rv_r * 0.9),
                                  COSTAL_CARTILAGE, None)


def paint_sternum(ctx: SpineScene, tissue):
    """The sternum (cortex + marrow) from T3 to T10, in front of the mediastinum."""
    P = ctx.P
    z_top, z_bot = ctx.z_of_level(2.3), ctx.z_of_level(9.8)
    for kf, z in enumerate(ctx.zf):
        if not (z_bot < z < z_top):
            continue
        T = ctx.trunk_at(float(z))
        fr = (z_top - z) / (z_top - z_bot)
        hw = (24.0 - 10.0 * sstep(0.0, 0.25, fr) - 8.0 * sstep(0.85, 1.0, fr)) * P.size
        ht = 5.5 - 2.0 * sstep(0.85, 1.0, fr)
        yc = T.centre_y + T.anterior_half_depth - P.skin - T.anterior_fat - 7.0
        xc = T.centre_x
        sl = ctx.box((xc - hw - 2, yc - ht - 2, z), (xc + hw + 2, yc + ht + 2, z))
        if sl is None:
            continue
        x = ctx.X[sl[0]][:, None] - np.float32(xc)
        y = ctx.Y[sl[1]][None, :] - np.float32(yc)
        qx = np.maximum(np.abs(x) - np.float32(hw - ht), 0.0)
        sd = np.sqrt(qx * qx + y * y) - np.float32(ht)
        t = tissue[sl[0], sl[1], kf]
        t[sd < 0] = STERNUM_CORTEX
        t[sd < -1.1] = STERNUM_MARROW

