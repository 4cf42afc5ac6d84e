"""The iliac wings with the iliacus and gluteal muscles, at the bottom of low lumbar volumes."""

from __future__ import annotations

import numpy as np

from ..shapes import smax, sstep
from .anatomy import AIR, BONE_CORTEX, BONE_MARROW, FAT, ILIUM_CORTEX, ILIUM_MARROW, MUSCLE, SKIN, TABLE, TABLE_FOAM
from .scene import SpineScene

__all__ = ["paint_pelvis"]


def paint_pelvis(ctx: SpineScene, tissue):
    """Iliac wings (with iliacus/gluteal muscles) down to the sacroiliac joints.

    In the axial plane each wing is an arc concave towards the anteromedial side (iliac fossa), from
    the posterior superior iliac spine next to the sacrum to the anterior superior iliac spine; the
    crest is highest over the posterior half. Below the top of S1 the posterior part thickens medially
    towards the sacral ala (the joint space is cut out later around the sacrum).
    """
    P = ctx.P
    s = P.pelvis_scale
    x0, y0, z0 = ctx.s1_top
    zc0 = P.iliac_crest_z
    if ctx.zf[0] > z0 + zc0 + 2.0:
        return
    ks = [kf for kf, z in enumerate(ctx.zf) if z - z0 < zc0 + 4.0]
    k0, k1 = ks[0], ks[-1] + 1
    f32 = np.float32
    for sg in (-1.0, 1.0):
        xlo, xhi = (x0 + 5.0, x0 + 175.0 * s) if sg > 0 else (x0 - 175.0 * s, x0 - 5.0)
        sl = ctx.box((xlo, y0 - 100.0 * s, ctx.zf[k0]), (xhi, y0 + 100.0 * s, ctx.zf[k1 - 1]))
        if sl is None:
            continue
        sl = (sl[0], sl[1], slice(k0, k1))
        x, y, z = ctx.coords(sl)
        zp = z - f32(z0)
        # arc of radius R around a centre anteromedial to the wing
        cx = f32(10.0 * s) + 0.12 * np.maximum(zp, 0)
        R = f32(115.0 * s)
        dxp = f32(sg) * (x - f32(x0)) - cx
        dyp = (y - f32(y0)) - f32(60.0 * s)
        rho = np.sqrt(dxp * dxp + dyp * dyp)
        rd = rho - R  # > 0 outside (posterolateral)
        beta = np.rad2deg(np.arctan2(dxp, -dyp))  # 0 posterior, 90 lateral
        kside = np.where(beta < 40.0, f32(60.0), f32(45.0))
        z_crest = f32(zc0) - kside * ((beta - 40.0) / 45.0) ** 2
        rim = np.exp(-(((z_crest - zp) / 8.0) ** 2))
        post = sstep(36.0, 18.0, beta)
        th_out = 1.6 + 3.0 * rim + 5.0 * post
        th_in = 1.6 + 3.0 * rim + (4.0 + 22.0 * sstep(15.0, -10.0, zp)) * post
        arc = np.deg2rad(np.maximum(14.0 - beta, beta - 90.0)) * rho
        band = np.where(rd > 0, rd - th_out, -rd - th_in)
        sdf = smax(smax(band, zp - z_crest, 2.0), arc, 3.0)
        t = tissue[sl]
        musc = (rd > -th_in - 16.0 * s) & (rd < th_out + 24.0 * s) & (zp < z_crest + 3.0) & (arc < 10.0)
        t[musc & ~np.isin(t, (SKIN, FAT, AIR, TABLE, TABLE_FOAM) + BONE_MARROW + BONE_CORTEX)] = MUSCLE
        t[sdf < 0] = ILIUM_CORTEX
        t[sdf < -1.3] = ILIUM_MARROW
