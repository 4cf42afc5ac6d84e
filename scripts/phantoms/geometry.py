"""Small geometry helpers the phantom renderers share: rotations, unit vectors, splines, index boxes.

An *index box* is a tuple of ``slice`` objects (one per array axis) that selects the part of a grid
a structure can touch, so that its implicit field is evaluated only there.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "rotation_matrix",
    "unit_vector",
    "catmull_rom",
    "upsample_xy",
    "union_box",
    "intersect_box",
    "is_empty_box",
    "bounding_box",
]


def rotation_matrix(axis: int, degrees: float) -> np.ndarray:
    """3x3 rotation by ``degrees`` about coordinate axis ``axis`` (0 x, 1 y, 2 z), right-handed."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 1:
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def unit_vector(v) -> np.ndarray:
    """``v`` (as ``float64``) divided by its length."""
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def catmull_rom(points: np.ndarray, step: float) -> np.ndarray:
    """Uniform Catmull-Rom spline through ``points`` (n, d), sampled about every ``step`` mm."""
    p = np.asarray(points, float)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = [p[0]]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        n = max(1, int(np.ceil(np.linalg.norm(p2 - p1) / step)))
        t = (np.arange(1, n + 1) / n)[:, None]
        seg = 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                     + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        out.extend(seg)
    return np.asarray(out)


def upsample_xy(a: np.ndarray, shape) -> np.ndarray:
    """Bilinear upsampling of the first two axes of ``a`` to ``shape`` (pixel-centre aligned)."""
    out = a
    for ax, n_hi in enumerate(shape):
        n_lo = out.shape[ax]
        c = np.clip((np.arange(n_hi) + 0.5) * n_lo / n_hi - 0.5, 0, n_lo - 1)
        i0 = np.floor(c).astype(np.intp)
        i1 = np.minimum(i0 + 1, n_lo - 1)
        w = (c - i0).astype(np.float32).reshape((-1,) + (1,) * (out.ndim - 1 - ax))
        lo, hi = np.take(out, i0, axis=ax), np.take(out, i1, axis=ax)
        out = lo + (hi - lo) * w
    return out


def union_box(boxes) -> tuple:
    """The smallest index box that holds every box of ``boxes`` (all of the same rank)."""
    boxes = list(boxes)
    return tuple(
        slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(len(boxes[0]))
    )


def intersect_box(box, other):
    """Intersection of two index boxes (``None`` if it is empty or ``box`` is ``None``)."""
    if box is None:
        return None
    out = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box, other))
    return None if is_empty_box(out) else out


def is_empty_box(box) -> bool:
    """Whether the index box selects nothing."""
    return any(s.stop <= s.start for s in box)


def bounding_box(mask: np.ndarray, pad=(0, 0, 0)):
    """Index box of the ``True`` voxels of a 3D ``mask`` grown by ``pad`` voxels per axis (``None`` if empty)."""
    if not mask.any():
        return None
    box = []
    for ax in range(3):
        idx = np.nonzero(mask.any(axis=tuple(b for b in range(3) if b != ax)))[0]
        box.append(slice(max(0, int(idx[0]) - pad[ax]), min(mask.shape[ax], int(idx[-1]) + 1 + pad[ax])))
    return tuple(box)
