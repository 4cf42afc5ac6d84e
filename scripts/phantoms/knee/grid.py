"""Sampling grid of a knee volume and the frames it is rendered in.

The anatomy is sampled on a grid :data:`~scripts.phantoms.knee.anatomy.SUPERSAMPLE` times finer across
the sagittal slices (axis 2). Three frames: scanner-aligned (X lateral, Y anterior, Z superior), the
local tibia frame (posed in the scanner by the parameters' pose) and the femur frame (rotated by
flexion, varus and rotation, and lowered onto the tibia until the joint gap is as sampled).
"""

from __future__ import annotations

import numpy as np

from ..geometry import rotation_matrix
from .anatomy import SHAPE, SPACING, SUPERSAMPLE
from .bones import femur_field, tibia_field, tibial_cartilage_cover
from .params import KneeLandmarks, KneeParams

__all__ = ["KneeGrid", "femur_rotation", "femur_height"]

def femur_rotation(P: KneeParams) -> np.ndarray:
    """Rotation of the femur frame relative to the tibia (flexion tilts the shaft anteriorly)."""
    return rotation_matrix(2, P.femur_rotation) @ rotation_matrix(1, P.femur_varus) @ rotation_matrix(0, -P.flexion)


def femur_height(P: KneeParams, D: KneeLandmarks, Rf: np.ndarray) -> float:
    """Height (local z) of the femoral condyle centre that leaves the requested joint gap."""
    xs = np.arange(-P.tibia_width / 2, P.tibia_width / 2, 0.75)
    ys = np.arange(-P.tibia_depth / 2, P.tibia_depth / 2, 0.75)
    zs = np.arange(-8.0, 30.0, 0.2)
    X, Y, Z = np.meshgrid(xs, ys, zs, indexing="ij")
    c_ref = np.array([0.0, P.condyle_centre_y, P.condyle_radius_si])
    q = np.einsum("ji,j...->i...", Rf, np.stack([X - c_ref[0], Y - c_ref[1], Z - c_ref[2]]))
    q += c_ref[:, None, None, None]
    fem = femur_field(q[0], q[1], q[2], P, D) <= 0
    tib = tibia_field(X, Y, Z, P, D) <= 0
    big = 1e3
    zlow = np.where(fem, Z, big).min(-1)
    ztop = np.where(tib, Z, -big).max(-1)
    cover = tibial_cartilage_cover(X[..., 0], Y[..., 0], 0.0, P, D) > 0
    clear = np.where(cover, P.femoral_cartilage_thickness + P.tibial_cartilage_thickness + P.joint_gap, 1.5)
    valid = (zlow < big) & (ztop > -big)
    shift = np.max((ztop + clear - zlow)[valid])
    return c_ref[2] + shift


class KneeGrid:
    """Fine sampling grid (axis 2 supersampled) and the scanner / tibia / femur frame transforms.

    ``shape`` is :data:`SHAPE` with axis 2 times :data:`SUPERSAMPLE`; :meth:`local` gives tibia-frame
    coordinates of an index box, :meth:`femur` turns them into femur-frame ones, and
    :meth:`box_local` / :meth:`box_femur` find the index box of a box given in either frame.
    """

    def __init__(self, P: KneeParams, D: KneeLandmarks):
        self.P, self.D = P, D
        self.ss = SUPERSAMPLE
        self.shape = (SHAPE[0], SHAPE[1], SHAPE[2] * self.ss)
        self.sp = (SPACING[0], SPACING[1], SPACING[2] / self.ss)
        self.R = rotation_matrix(2, P.pose_rotation_z) @ rotation_matrix(1, P.pose_rotation_y) @ rotation_matrix(0, P.pose_rotation_x)
        self.T = np.asarray(P.pose_translation, float)
        self.lat = float(P.laterality)
        self.Rf = femur_rotation(P)
        self.c_ref = np.array([0.0, P.condyle_centre_y, P.condyle_radius_si])
        self.c_loc = np.array([0.0, P.condyle_centre_y, femur_height(P, D, self.Rf)])

    # index (i, j, kf) <-> scanner-aligned mm (X lateral, Y anterior, Z superior)
    def _scanner_axes(self, sl):
        n0, n1, _ = SHAPE
        i = np.arange(self.shape[0])[sl[0]]
        j = np.arange(self.shape[1])[sl[1]]
        kf = np.arange(self.shape[2])[sl[2]]
        Y = -((i - (n0 - 1) / 2) * SPACING[0])
        Z = -((j - (n1 - 1) / 2) * SPACING[1])
        kc = (kf + 0.5) / self.ss - 0.5
        X = self.lat * (kc - (SHAPE[2] - 1) / 2) * SPACING[2]
        return X, Y, Z

    def local(self, sl):
        """Tibia-frame coordinates (float32 arrays broadcast to the box ``sl``)."""
        X, Y, Z = self._scanner_axes(sl)
        dX = (X - self.T[0])[None, None, :]
        dY = (Y - self.T[1])[:, None, None]
        dZ = (Z - self.T[2])[None, :, None]
        R = self.R
        out = []
        for c in range(3):
            v = R[0, c] * dX + R[1, c] * dY + R[2, c] * dZ
            out.append(v.astype(np.float32))
        return out

    def femur(self, x, y, z):
        """Femur-frame coordinates of tibia-frame points."""
        Rf, cl, cr = self.Rf, self.c_loc, self.c_ref
        d = (x - np.float32(cl[0]), y - np.float32(cl[1]), z - np.float32(cl[2]))
        out = []
        for c in range(3):
            v = np.float32(Rf[0, c]) * d[0] + np.float32(Rf[1, c]) * d[1] + np.float32(Rf[2, c]) * d[2]
            out.append(v + np.float32(cr[c]))
        return out

    def fem_to_local(self, q):
        """Tibia-frame position of a femur-frame point."""
        return self.Rf @ (np.asarray(q, float) - self.c_ref) + self.c_loc

    def box_local(self, lo, hi):
        """Index box (tuple of slices) of the fine grid covering a tibia-frame axis-aligned box."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        pts = corners @ self.R.T + self.T  # scanner-aligned
        n0, n1, n2 = SHAPE
        i = (n0 - 1) / 2 - pts[:, 1] / SPACING[0]
        j = (n1 - 1) / 2 - pts[:, 2] / SPACING[1]
        kc = (n2 - 1) / 2 + self.lat * pts[:, 0] / SPACING[2]
        kf = (kc + 0.5) * self.ss - 0.5
        out = []
        for v, n in zip((i, j, kf), self.shape):
            a = int(np.clip(np.floor(v.min()) - 1, 0, n))
            b = int(np.clip(np.ceil(v.max()) + 2, 0, n))
            out.append(slice(a, max(a, b)))
        return tuple(out)

    def box_femur(self, lo, hi):
        """Index box covering a femur-frame axis-aligned box."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        loc = np.array([self.fem_to_local(c) for c in corners])
        return self.box_local(loc.min(0), loc.max(0))
