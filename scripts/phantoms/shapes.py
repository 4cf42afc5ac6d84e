"""Implicit-surface primitives shared by the phantom renderers.

The anatomy of every phantom (:mod:`scripts.phantoms.knee`, :mod:`scripts.phantoms.lower_limb`,
:mod:`scripts.phantoms.spine`) is built from distance-like fields (negative inside, roughly mm
outside) combined with smooth minimum/maximum. The fields are evaluated on large ``float32`` grids;
the results' dtypes follow NumPy's promotion rules, which the renderers' byte-exact outputs depend
on (see ``promote`` below).
"""

from __future__ import annotations

import numpy as np

from .geometry import unit_vector

__all__ = ["as_rng", "sstep", "smin", "smax", "ellipsoid", "capsule", "elliptic_capsule"]


def as_rng(rng_or_seed) -> np.random.Generator:
    """``rng_or_seed`` itself if it is a :class:`numpy.random.Generator`, else a new one seeded with it."""
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def sstep(e0: float, e1: float, x):
    """Smoothstep: 0 below ``e0``, 1 above ``e1`` (or the reverse when ``e1 < e0``), cubic between."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def smin(a, b, k: float):
    """Polynomial smooth minimum (union of implicit surfaces with a fillet of size ~k)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def smax(a, b, k: float):
    """Polynomial smooth maximum (intersection of implicit surfaces), ``-smin(-a, -b, k)``."""
    return -smin(-a, -b, k)


def ellipsoid(x, y, z, c, r, promote: bool = False):
    """Distance-like field of the axis-aligned ellipsoid with centre ``c`` and semi-axes ``r``.

    By default ``c`` and ``r`` are converted to Python floats, so the field keeps the dtype of the
    coordinates. With ``promote=True`` they are used as given: NumPy ``float64`` values then promote
    ``float32`` coordinates to a ``float64`` field (the lower-limb renderer's behaviour).
    """
    if not promote:
        c, r = [float(v) for v in c], [float(v) for v in r]
    q = np.sqrt(((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2)
    return (q - 1.0) * min(r)


def capsule(x, y, z, a, b, radius: float, xscale: float = 1.0, promote: bool = False):
    """Distance-like field of a segment a-b with the given radius (x compressed by ``xscale``).

    By default the end points enter the arithmetic as Python floats, so the field keeps the dtype of
    the coordinates. With ``promote=True`` the start point ``a`` enters as ``float64`` NumPy scalars,
    which promote ``float32`` coordinates to a ``float64`` field (the lower-limb renderer's behaviour).
    """
    a = np.asarray(a, float)
    ab = np.asarray(b, float) - a
    ab[0] /= xscale
    n2 = float(ab @ ab)
    ab = ab.tolist()
    if not promote:
        a = a.tolist()
    px, py, pz = (x - a[0]) / xscale, y - a[1], z - a[2]
    h = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / n2, 0.0, 1.0)
    return np.sqrt((px - h * ab[0]) ** 2 + (py - h * ab[1]) ** 2 + (pz - h * ab[2]) ** 2) - radius


def elliptic_capsule(px, py, pz, a, b, rh, rv, up=(0.0, 0.0, 1.0), rh1=None, rv1=None):
    """Distance-like field of the segment a-b with an elliptic cross-section (negative inside).

    ``rh`` is the radius across the segment in the horizontal plane (perpendicular to ``up``), ``rv``
    the radius in the plane of the segment and ``up``; ``rh1``/``rv1`` taper them linearly to the end
    ``b``. For a segment parallel to ``up`` the two radii apply to the first and second axis. The
    field is ``float32`` for ``float32`` coordinates.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    e0 = b - a
    length = float(np.linalg.norm(e0))
    e0 = e0 / length
    e1 = np.cross(e0, np.asarray(up, float))
    if np.linalg.norm(e1) < 1e-3:
        e1 = np.cross(e0, (0.0, 1.0, 0.0))
    e1 = unit_vector(e1)
    e2 = np.cross(e1, e0)
    f32 = np.float32
    dx, dy, dz = px - f32(a[0]), py - f32(a[1]), pz - f32(a[2])
    t = dx * f32(e0[0]) + dy * f32(e0[1]) + dz * f32(e0[2])
    tc = np.clip(t, 0.0, length)
    q0 = t - tc
    q1 = dx * f32(e1[0]) + dy * f32(e1[1]) + dz * f32(e1[2])
    q2 = dx * f32(e2[0]) + dy * f32(e2[1]) + dz * f32(e2[2])
    if rh1 is None and rv1 is None:
        s = np.sqrt((q1 * f32(1 / rh)) ** 2 + (q2 * f32(1 / rv)) ** 2 + (q0 * f32(1 / rh)) ** 2)
        return (s - 1.0) * f32(min(rh, rv))
    rh1 = rh if rh1 is None else rh1
    rv1 = rv if rv1 is None else rv1
    fr = tc * f32(1.0 / length)
    rh_t = f32(rh) + f32(rh1 - rh) * fr
    rv_t = f32(rv) + f32(rv1 - rv) * fr
    s = np.sqrt((q1 / rh_t) ** 2 + (q2 / rv_t) ** 2 + (q0 / rh_t) ** 2)
    return (s - 1.0) * np.minimum(rh_t, rv_t)
