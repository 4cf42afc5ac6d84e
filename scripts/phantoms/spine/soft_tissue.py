"""Soft tissue of the trunk, slice by slice: table, skin, fat, walls, muscles, diaphragm and vessels.

The thoracic and abdominal organs are in :mod:`scripts.phantoms.spine.organs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..fields import AngularHarmonics
from ..geometry import upsample_xy
from ..shapes import smax, sstep
from .anatomy import (
    BLOOD,
    CALCIFICATION,
    FAT,
    LIVER,
    MUSCLE,
    SHAPE_XY,
    SKIN,
    TABLE,
    TABLE_FOAM,
    VISCERAL_FAT,
)
from .organs import paint_abdomen, paint_thorax
from .scene import SpineScene, TrunkSection

__all__ = ["BodyLayers", "SoftTissuePainter"]


@dataclass
class BodyLayers:
    """The trunk's layers at a set of points (:meth:`SoftTissuePainter.layers`).

    ``depth``: radial depth below the skin (mm); ``muscle_depth`` / ``cavity_depth``: depth where the
    muscle / the body cavity starts; ``angle``: 0 posterior to pi anterior; ``dx``: x from the trunk
    centre; ``cavity``: inside the chest / abdominal cavity; ``vertebra_envelope``: around the
    vertebral body.
    """

    depth: np.ndarray
    muscle_depth: np.ndarray
    cavity_depth: np.ndarray
    angle: np.ndarray
    dx: np.ndarray
    cavity: np.ndarray
    vertebra_envelope: np.ndarray


class SoftTissuePainter:
    """Soft tissue of one trunk, painted slice by slice (2D, at the slice centres): :meth:`paint`.

    Built once per volume: draws the random extras from ``rng`` (fat and wall thickness harmonics,
    lung vessels, aortic calcifications, low-resolution random fields for bowel loops, gas and
    textures), so the volume stays a function of the seed.
    """

    def __init__(self, ctx: SpineScene, rng: np.random.Generator):
        self.ctx = ctx
        P = ctx.P
        self.h_fat = AngularHarmonics(rng, 0.18)
        self.h_wall = AngularHarmonics(rng, 0.12)
        # lung vessels: (side, dxn, dyn, drift x, drift y, z0, half length, radius)
        nv = 170
        side = np.where(rng.uniform(size=nv) < 0.5, -1.0, 1.0)
        rr = np.sqrt(rng.uniform(0.0, 1.0, size=nv))
        ang = rng.uniform(0, 2 * np.pi, size=nv)
        self.vessels = np.stack([
            side, rr * np.cos(ang), rr * np.sin(ang), rng.normal(0, 0.15, nv), rng.normal(0, 0.15, nv),
            rng.uniform(ctx.zc[0] - 30, ctx.zc[-1] + 30, nv), rng.uniform(10, 40, nv), rng.uniform(0, 1, nv),
        ], 1)
        # aortic wall calcifications: (angle, z0, half height, radius)
        ncalc = int(P.age ** 2 * 12)
        self.calc = np.stack([rng.uniform(0, 2 * np.pi, ncalc), rng.uniform(ctx.zc[0] - 5, ctx.zc[-1] + 5, ncalc),
                              rng.uniform(1.5, 5.0, ncalc), rng.uniform(1.0, 2.2, ncalc)], 1)
        # low-resolution random fields (bowel loops, gas, boundary jitter), upsampled per slice
        low = (SHAPE_XY[0] // 4, SHAPE_XY[1] // 4, ctx.n)
        f = rng.standard_normal((4,) + low).astype(np.float32)
        self.fields = []
        self._cache = {}
        for c, sig in enumerate(((2.6, 2.6, 2.2), (1.4, 1.4, 1.2), (4.0, 4.0, 2.0), (0.65, 0.65, 0.25))):
            g = ndi.gaussian_filter(f[c], sig, mode="wrap")
            self.fields.append(g / (g.std() + 1e-6))
        X, Y = ctx.X, ctx.Y
        self.Xg = X[:, None]
        self.Yg = Y[None, :]

    def field(self, c: int, k: int):
        """Random field ``c`` (0 bowel, 1 gas/irregularity, 2 smooth boundary jitter, 3 soft-tissue
        texture) on slice ``k``, upsampled to the full grid."""
        if (c, k) not in self._cache:
            self._cache = {key: v for key, v in self._cache.items() if key[1] == k}
            self._cache[(c, k)] = upsample_xy(self.fields[c][:, :, k], SHAPE_XY)
        return self._cache[(c, k)]

    def layers(self, T: TrunkSection, X, Y) -> BodyLayers:
        """Depth below the skin, layer limits and the cavity mask at points ``X, Y`` (broadcast)."""
        P = self.ctx.P
        f32 = np.float32
        wl = T.lumbar_weight
        dx, dy = X - f32(T.centre_x), Y - f32(T.centre_y)
        ant = dy >= 0
        r_ant = np.sqrt((dx / f32(T.half_width)) ** 2 + (dy / f32(T.anterior_half_depth)) ** 2)
        r_post = np.cbrt(np.abs(dx / f32(T.half_width)) ** 3 + np.abs(dy / f32(T.posterior_half_depth)) ** 3)
        r = np.where(ant, r_ant, r_post)
        rho = np.sqrt(dx * dx + dy * dy)
        depth = rho * (1.0 / np.maximum(r, 1e-3) - 1.0)
        psi = np.arctan2(np.abs(dx), -dy)  # 0 posterior, pi anterior
        psis = np.arctan2(dx, -dy)
        back = np.clip(np.cos(psi + np.pi), 0, 1)
        fat_t = T.fat * self.h_fat(psis) * (0.75 + 0.35 * np.sin(psi) ** 2 + 0.35 * wl * P.belly * back)
        w_ant = sstep(-0.3, 0.3, dy * np.float32(1.0 / T.anterior_half_depth))
        fat_t = fat_t * (1.0 + w_ant * ((T.anterior_fat / max(T.fat, 1e-3)) ** 0.5 - 1.0))
        wall = T.wall * self.h_wall(psis) * (1.0 + 0.3 * (1 - wl) * back)
        d_mus = P.skin + fat_t
        d_cav = d_mus + wall
        xs, ys, a, b = T.spine_x, T.spine_y, T.body_half_width, T.body_half_depth
        dxs = X - f32(xs)
        adxs = np.abs(dxs)
        pl = self.ctx.at_level(self.ctx.dims.pedicle_length, T.level)
        g0 = pl + 5.0 + 3.0 * wl
        d0 = a + 10.0 + 12.0 * wl
        y_pb = ys - b - g0 - 30.0 * (np.maximum(adxs - d0, 0.0) / 40.0) ** 2
        env = ((dxs / f32(a + 3.0)) ** 2 + ((Y - f32(ys)) / f32(b + 3.0)) ** 2) < 1.0
        column = (adxs < a + 3.0) & (Y < ys)
        cav = (depth > d_cav) & (Y > y_pb) & ~env & ~column
        return BodyLayers(depth, d_mus, d_cav, psi, dx, cav, env)

    def paint(self, k: int) -> np.ndarray:
        """The ``uint8`` tissue map of slice ``k``: table, trunk layers, muscles, thorax or abdomen, vessels."""
        ctx, P = self.ctx, self.ctx.P
        z = float(ctx.zc[k])
        T = ctx.trunk_at(z)
        X, Y = self.Xg, self.Yg
        f32 = np.float32
        tis = np.zeros(SHAPE_XY, np.uint8)
        lev, wl = T.level, T.lumbar_weight
        xs, ys, a, b = T.spine_x, T.spine_y, T.body_half_width, T.body_half_depth
        x_t, y_t, A = T.centre_x, T.centre_y, T.half_width
        # ---- table (under the back) ----
        if P.table:
            y_top = T.back_y - 0.5 + P.table_curvature * X**2  # centred in the gantry, not on the patient
            dtab = y_top - Y
            tis[(dtab >= 0) & (dtab < 42)] = TABLE_FOAM
            tis[((dtab >= 0) & (dtab < 2.5)) | ((dtab >= 39.5) & (dtab < 42))] = TABLE
        # ---- trunk outline: radial depth below the skin ----
        L = self.layers(T, X, Y)
        depth, d_mus, d_cav, psi, dx = L.depth, L.muscle_depth, L.cavity_depth, L.angle, L.dx
        Bp, Ba = T.posterior_half_depth, T.anterior_half_depth
        skin = P.skin
        tis[depth >= 0] = SKIN
        tis[depth >= skin] = FAT
        tis[depth >= d_mus] = MUSCLE
        # abdominal wall: a fat plane between the muscle layers (lateral)
        if wl > 0:
            wpl = 0.8 * wl * sstep(0.7, 1.2, psi) * sstep(2.7, 2.2, psi)
            plane = np.abs(depth - 0.5 * (d_mus + d_cav)) < wpl
            tis[plane] = VISCERAL_FAT
        cav, env = L.cavity, L.vertebra_envelope
        pl = ctx.at_level(ctx.dims.pedicle_length, lev)
        # erector spinae
        e_a = (20.0 + 9.0 * wl) * P.erector_scale
        e_b = (20.0 + 5.0 * wl) * P.erector_scale
        cw, pw = ctx.at_level(ctx.dims.canal_width, lev), ctx.at_level(ctx.dims.pedicle_width, lev)
        for sg in (-1.0, 1.0):
            ex = xs + sg * (cw / 2 + pw + e_a * 0.55)
            ey = ys - b - pl - 3.0 - e_b
            re = np.sqrt(((X - f32(ex)) / f32(e_a)) ** 2 + ((Y - f32(ey)) / f32(e_b)) ** 2)
            tis[(re < 1.0) & (depth > d_mus + 1.0)] = MUSCLE
        tis[env & (depth > d_mus)] = VISCERAL_FAT  # paravertebral fat (bone is painted later)
        lung_w = float(sstep(12.8, 11.0, lev))  # lungs only in the thorax / upper abdomen
        # diaphragm: two domes (right higher) with deep posterior recesses
        dxn = dx / f32(A)
        dyn = (Y - f32(y_t)) / f32(0.5 * (Ba + Bp))
        z_dome = ctx.z_of_level(P.diaphragm_level)
        domes = []
        for sg, zz in ((1.0, z_dome), (-1.0, z_dome - P.diaphragm_left_drop)):
            dd = (zz - 110.0 * (dxn - f32(0.42 * sg)) ** 2 - 95.0 * np.maximum(-dyn - 0.05, 0) ** 2
                  - 45.0 * np.maximum(dyn - 0.1, 0) ** 2)
            domes.append(dd)
        z_d = smax(domes[0], domes[1], 12.0)
        above = (z > z_d + 2.0) & (lung_w > 0)
        below = z < z_d - 3.0
        if lung_w <= 0:
            above[:] = False
            below[:] = True
        tis[cav & ~above] = VISCERAL_FAT
        tis[cav & ~above & ~below] = MUSCLE  # diaphragm
        # preperitoneal fat line inside the wall (abdomen)
        tis[cav & below & (depth < d_cav + 1.5)] = VISCERAL_FAT
        thor = cav & above
        if thor.any():
            paint_thorax(self, tis, thor, T, z, X, Y, depth, d_cav)
        abd = cav & below
        if abd.any():
            paint_abdomen(self, tis, abd, T, z, k, X, Y, depth, d_cav, psi, dx)
        self._vessels(tis, T, z, X, Y, cav | env)
        # retroperitoneal muscles (lumbar): psoas, quadratus lumborum
        if lev > 11.3:
            rp = (4.0 + 16.0 * float(sstep(11.3, 16.5, lev))) * P.psoas_scale
            tl = ctx.at_level(ctx.dims.transverse_length, lev)
            for sg in (-1.0, 1.0):
                px = xs + sg * (a + 0.8 * rp)
                py = ys + b * (0.05 + 0.6 * float(sstep(14.0, 17.0, lev)))
                m = ((X - f32(px)) / f32(rp)) ** 2 + ((Y - f32(py)) / f32(1.15 * rp)) ** 2 < 1.0
                tis[m & (cav | env)] = MUSCLE
                if lev < 16.2:
                    qa, qb = 16.0 * P.psoas_scale, 10.0 * P.psoas_scale
                    qx = xs + sg * (cw / 2 + pw + tl + 0.6 * qa)
                    qy = ys - b - pl + 2.0
                    m = ((X - f32(qx)) / f32(qa)) ** 2 + ((Y - f32(qy)) / f32(qb)) ** 2 < 1.0
                    tis[m & (depth > d_mus)] = MUSCLE
        return tis


    def _vessels(self, tis, T: TrunkSection, z, X, Y, where):
        """Aorta (with calcified plaques), its bifurcation, the IVC and the azygos vein."""
        P = self.ctx.P
        f32 = np.float32
        lev, xs, ys, a, b = T.level, T.spine_x, T.spine_y, T.body_half_width, T.body_half_depth
        s = P.size
        if lev < 3.0:
            return
        tA = float(sstep(6.0, 12.5, lev))
        r = P.aorta_radius * (1.0 - 0.22 * tA)
        ax = xs - ((a + r) * 0.95 * (1 - tA) + 0.35 * a * tA)
        ay = ys + 0.15 * b * (1 - tA) + (b + r + 2.0) * tA
        if lev < 15.6:
            centres = [(ax, ay, r)]
        else:  # bifurcation into the common iliac arteries
            sp = 18.0 * (lev - 15.6) + 6.0
            centres = [(ax + sp, ay + 2.0, 0.65 * r), (ax - sp + 8.0, ay + 2.0, 0.65 * r)]
        for cx, cy, rc in centres:
            rr = (X - f32(cx)) ** 2 + (Y - f32(cy)) ** 2
            tis[(rr < rc * rc) & where] = BLOOD
            if len(centres) == 1:
                for ang, z0, hh, rcal in self.calc.tolist():
                    if abs(z - z0) < hh:
                        px, py = cx + (rc - 0.8) * np.cos(ang), cy + (rc - 0.8) * np.sin(ang)
                        tis[((X - f32(px)) ** 2 + (Y - f32(py)) ** 2 < rcal**2) & where] = CALCIFICATION
        # IVC (abdomen) and azygos (thorax)
        if lev > 9.8:
            ix, iy = xs + a * 0.55 + 10.0 * s, ys + b + 12.0 * s
            m = (((X - f32(ix)) / f32(13.0 * s)) ** 2 + ((Y - f32(iy)) / f32(9.0 * s)) ** 2) < 1.0
            tis[m & (where | (tis == LIVER))] = BLOOD
        if lev < 12.0:
            m = ((X - f32(xs + 0.45 * a)) ** 2 + (Y - f32(ys + 0.55 * b)) ** 2) < 16.0
            tis[m & where] = BLOOD

