"""Everything derived from a trunk's parameters that the painters share (:class:`SpineScene`).

The spine is a chain of vertebra frames (:class:`VertebraFrame`) through the level centres; the trunk
cross-section at any height is a :class:`TrunkSection`; the fine grid has :data:`SUPERSAMPLE` sub-slices
per slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import unit_vector
from ..shapes import sstep
from .anatomy import SHAPE_XY, SPACING, SUPERSAMPLE
from .levels import NOMINAL_LEVELS, NUM_LEVELS
from .params import SpineParams

__all__ = ["VertebraFrame", "TrunkSection", "SpineScene"]


class VertebraFrame:
    """Local frame of one vertebra: ``world = c + R @ (u, v, w)`` (u right, v anterior, w superior)."""

    def __init__(self, c, R):
        self.c = np.asarray(c, float)
        self.R = np.asarray(R, float)

    def world(self, p) -> np.ndarray:
        """World position of the local point ``p``."""
        return self.c + self.R @ np.asarray(p, float)

    def aabb(self, lo, hi):
        """World axis-aligned bounding box ``(lo, hi)`` of the local box ``lo..hi``."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        pts = corners @ self.R.T + self.c
        return pts.min(0), pts.max(0)

    def local(self, x, y, z):
        """Local ``float32`` coordinates ``(u, v, w)`` of world coordinate arrays."""
        f32 = np.float32
        d = (x - f32(self.c[0]), y - f32(self.c[1]), z - f32(self.c[2]))
        R = self.R
        return [d[0] * f32(R[0, i]) + d[1] * f32(R[1, i]) + d[2] * f32(R[2, i]) for i in range(3)]


@dataclass
class _TrunkDepths:
    """The anterior-posterior layout of the trunk at one level (see :meth:`SpineScene.trunk_at`)."""

    body_half_depth: float
    lumbar_weight: float
    fat: float
    anterior_fat: float
    back_depth: float
    posterior_half_depth: float
    anterior_half_depth: float


@dataclass
class TrunkSection:
    """Scalar description of the trunk's axial cross-section at height ``z`` (mm, scanner frame).

    ``lumbar_weight`` blends thoracic (0) into lumbar (1) values; the trunk is an ellipse (anterior)
    joined to a superellipse (posterior) around ``(centre_x, centre_y)`` with ``half_width`` and the
    anterior/posterior half depths; ``back_y`` is the skin of the back, ``back_depth`` its distance
    from the spine, ``(spine_x, spine_y)`` the vertebral body centre, ``body_half_width`` /
    ``body_half_depth`` its size, ``fat`` / ``anterior_fat`` the subcutaneous fat, ``wall`` the chest or
    abdominal wall and ``pelvis_weight`` how far the pelvis widens the trunk.
    """

    body_half_depth: float
    lumbar_weight: float
    fat: float
    anterior_fat: float
    back_depth: float
    posterior_half_depth: float
    anterior_half_depth: float
    z: float
    level: float
    spine_x: float
    spine_y: float
    centre_x: float
    centre_y: float
    half_width: float
    body_half_width: float
    wall: float
    back_y: float
    pelvis_weight: float


class SpineScene:
    """The spine chain, the trunk outline as a function of z, and the sampling grids of one volume.

    ``dims``: the volume's :class:`~scripts.phantoms.spine.levels.LevelTable`; ``F``: one
    :class:`VertebraFrame` per level; ``C``: level centres ``(NUM_LEVELS, 3)``; ``X``/``Y``: pixel
    centres (mm); ``zc``/``zf``: slice and sub-slice centres (mm); ``s1_top``: the top-plate centre of
    the sacrum.
    """

    def __init__(self, P: SpineParams, num_slices: int):
        self.P = P
        self.n = n = int(num_slices)
        ss = SUPERSAMPLE
        self.X = ((np.arange(SHAPE_XY[0]) - (SHAPE_XY[0] - 1) / 2) * SPACING[0]).astype(np.float32)
        self.Y = ((np.arange(SHAPE_XY[1]) - (SHAPE_XY[1] - 1) / 2) * SPACING[1]).astype(np.float32)
        self.zc = (np.arange(n) - (n - 1) / 2) * SPACING[2]
        self.zf = ((np.arange(n * ss) + 0.5) / ss - 0.5 - (n - 1) / 2) * SPACING[2]
        self.dzf = SPACING[2] / ss
        self._chain()
        self._anchor()

    # ---- spine chain ----
    def _chain(self):
        P = self.P
        dims = NOMINAL_LEVELS.scaled(P.vertebra_scale, P.vertebra_jitter)
        self.dims = dims
        lv = np.arange(NUM_LEVELS, dtype=float)
        theta = np.deg2rad(NOMINAL_LEVELS.sagittal_tilt * P.sagittal_curve_scale + P.sagittal_curve_offset)
        phi = np.deg2rad(P.scoliosis_amplitude * np.sin(2 * np.pi * (lv - P.scoliosis_phase) / P.scoliosis_period))
        gamma = np.deg2rad(P.axial_rotation_gain * np.rad2deg(phi) + P.axial_rotation_noise)
        tang = np.stack([np.tan(phi), np.tan(theta), np.ones(NUM_LEVELS)], 1)
        tang /= np.linalg.norm(tang, axis=1, keepdims=True)
        C = np.zeros((NUM_LEVELS, 3))
        for i in range(NUM_LEVELS - 1):
            t = unit_vector(tang[i] + tang[i + 1])
            C[i + 1] = C[i] - t * (dims.body_height[i] / 2 + dims.disc_height[i] + dims.body_height[i + 1] / 2)
        self.frames = []
        for i in range(NUM_LEVELS):
            w = tang[i]
            uu = unit_vector(np.array([1.0, 0, 0]) - w[0] * w)
            v = np.cross(w, uu)
            cg, sg = np.cos(gamma[i]), np.sin(gamma[i])
            u2, v2 = cg * uu + sg * v, -sg * uu + cg * v
            self.frames.append(np.stack([u2, v2, w], 1))
        self.C0 = C

    def _trunk_depths(self, lev: float) -> _TrunkDepths:
        P, d = self.P, self.dims
        lv = np.arange(NUM_LEVELS)
        b = float(np.interp(lev, lv, d.body_depth)) / 2
        wl = float(sstep(10.5, 12.5, lev))
        fat_sub = P.thoracic_fat * (1 - wl) + P.lumbar_fat * wl
        back_lean = P.thoracic_back_depth * (1 - wl) + P.lumbar_back_depth * wl
        back_d = b + back_lean + 0.7 * fat_sub
        B_lean = P.thoracic_half_depth * (1 - wl) + P.lumbar_half_depth * wl
        fat_ant = fat_sub * (1 + 1.2 * wl * P.belly)
        ap = 2 * B_lean + 0.7 * fat_sub + fat_ant
        B_post = 0.46 * ap
        return _TrunkDepths(b, wl, fat_sub, fat_ant, back_d, B_post, ap - B_post)

    def _anchor(self):
        P = self.P
        lc = P.centre_level
        lv = np.arange(NUM_LEVELS, dtype=float)
        c_lc = np.array([np.interp(lc, lv, self.C0[:, k]) for k in range(3)])
        td = self._trunk_depths(lc)
        ys = P.y_offset + td.back_depth - td.posterior_half_depth
        xs = P.x_offset - P.trunk_x_shift
        shift = np.array([xs, ys, P.z_anchor]) - c_lc
        self.C = self.C0 + shift
        self.F = [VertebraFrame(self.C[i], self.frames[i]) for i in range(NUM_LEVELS)]
        self.x_ref = xs
        # the sacrum: top-plate centre
        self.s1_top = self.F[17].world((0, 0, self.dims.body_height[17] / 2))

    # ---- z-dependent lookups ----
    def level_at(self, z):
        """Fractional level index at height ``z`` (extrapolated above T1 and below S1)."""
        zs = self.C[:, 2]
        z = np.asarray(z, float)
        lev = np.interp(-z, -zs, np.arange(NUM_LEVELS, dtype=float))
        lev = np.where(z > zs[0], (zs[0] - z) / (zs[0] - zs[1]), lev)
        lev = np.where(z < zs[-1], NUM_LEVELS - 1 + (zs[-1] - z) / (zs[-2] - zs[-1]), lev)
        return lev

    def z_of_level(self, lev: float) -> float:
        """Height of the fractional level ``lev``."""
        return float(np.interp(lev, np.arange(NUM_LEVELS, dtype=float), self.C[:, 2]))

    def spine_xy(self, z):
        """In-plane position of the spine axis at height ``z``."""
        zs = self.C[:, 2]
        return float(np.interp(-z, -zs, self.C[:, 0])), float(np.interp(-z, -zs, self.C[:, 1]))

    @staticmethod
    def at_level(values: np.ndarray, lev: float) -> float:
        """A per-level table (e.g. ``dims.pedicle_length``) interpolated at the fractional level ``lev``."""
        return float(np.interp(lev, np.arange(NUM_LEVELS), values))

    def trunk_at(self, z: float) -> TrunkSection:
        """The trunk cross-section at height ``z``."""
        P = self.P
        lev = float(self.level_at(z))
        T = self._trunk_depths(lev)
        xs, ys = self.spine_xy(z)
        wl = T.lumbar_weight
        A_lean = (P.thoracic_half_width * (0.88 + 0.12 * sstep(0.0, 5.0, lev))) * (1 - wl) + P.lumbar_half_width * wl
        # the pelvis widens the trunk below the iliac crests
        zp = z - self.s1_top[2]
        wp = float(sstep(P.iliac_crest_z + 35.0, P.iliac_crest_z - 5.0, zp)) if lev > 14.0 else 0.0
        pel_half = 126.0 * P.pelvis_scale + 30.0
        A_lean = A_lean * (1 - wp) + max(A_lean, pel_half) * wp
        x_t = self.x_ref + P.trunk_x_shift
        A = min(A_lean + T.fat, 196.0 - abs(x_t))
        y_back = ys - T.back_depth
        return TrunkSection(
            **vars(T), z=z, level=lev, spine_x=xs, spine_y=ys, centre_x=x_t, centre_y=y_back + T.posterior_half_depth,
            half_width=A, body_half_width=self.at_level(self.dims.body_width, lev) / 2,
            wall=P.thoracic_wall * (1 - wl) + P.lumbar_wall * wl, back_y=y_back, pelvis_weight=wp,
        )

    # ---- grid boxes ----
    def box(self, lo, hi, pad: float = 0.0):
        """Fine-grid index box (i, j, kf slices) covering the world AABB ``lo..hi``; None if empty."""
        lo = np.asarray(lo, float) - pad
        hi = np.asarray(hi, float) + pad
        n0, n1 = SHAPE_XY
        nf = self.n * SUPERSAMPLE
        i0 = int(np.floor(lo[0] / SPACING[0] + (n0 - 1) / 2)) - 1
        i1 = int(np.ceil(hi[0] / SPACING[0] + (n0 - 1) / 2)) + 2
        j0 = int(np.floor(lo[1] / SPACING[1] + (n1 - 1) / 2)) - 1
        j1 = int(np.ceil(hi[1] / SPACING[1] + (n1 - 1) / 2)) + 2
        kz = lambda zz: (zz / SPACING[2] + (self.n - 1) / 2 + 0.5) * SUPERSAMPLE - 0.5  # noqa: E731
        k0 = int(np.floor(kz(lo[2]))) - 1
        k1 = int(np.ceil(kz(hi[2]))) + 2
        i0, i1 = max(i0, 0), min(i1, n0)
        j0, j1 = max(j0, 0), min(j1, n1)
        k0, k1 = max(k0, 0), min(k1, nf)
        if i1 <= i0 or j1 <= j0 or k1 <= k0:
            return None
        return slice(i0, i1), slice(j0, j1), slice(k0, k1)

    def coords(self, sl):
        """World coordinates (``float32``, broadcastable) of the fine-grid index box ``sl``."""
        return (self.X[sl[0]][:, None, None], self.Y[sl[1]][None, :, None],
                self.zf[sl[2]].astype(np.float32)[None, None, :])
