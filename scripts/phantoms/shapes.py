"""Implicit-surface primitives shared by the phantom renderers.

The anatomy of every phantom (:mod:`scripts.phantoms.knee_mr`, :mod:`scripts.phantoms.lower_limb_ct`,
:mod:`scripts.phantoms.spine_ct`) is built from distance-like fields (negative inside, roughly mm
outside) combined with smooth minimum/maximum. The fields are evaluated on large ``float32`` grids;
the results' dtypes follow NumPy's promotion rules, which the renderers' byte-exact outputs depend
on (see ``promote`` below).
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_rng", "sstep", "smin", "smax", "ellipsoid", "capsule"]


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
