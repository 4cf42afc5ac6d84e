"""One leg on one slice (:class:`LegSlice`) and the in-plane index-box arithmetic the painters share."""

from __future__ import annotations

import numpy as np

from .anatomy import F32, SHAPE_XY, SPACING, SUBSLICES, X_MM, Y_MM
from .outline import axis_offset
from .params import LegParams

__all__ = ["LegSlice", "relative_box", "paste_box"]


class LegSlice:
    """Geometry of one leg for one slice: sub-slice axis centres, frames and index boxes.

    ``zr``: height of each sub-slice above the leg's joint line (mm); ``cX``/``cY``: scanner position
    of the leg axis on each sub-slice. :meth:`box` finds the in-plane index box of a rectangle given in
    a leg frame rotated by ``phi``, :meth:`coords` gives the frame coordinates of a box's pixels.
    """

    def __init__(self, L: LegParams, zr: np.ndarray):
        self.L = L
        self.zr = zr  # (SUBSLICES,) mm above the joint line
        dX, dY = axis_offset(L, zr)
        self.cX = (L.x + dX).astype(F32)
        self.cY = (L.y + dY).astype(F32)

    def box(self, xr, yr, phi, subs=None, margin: float = 8.0):
        """Index box (slice_i, slice_j) covering the frame rectangle ``xr`` x ``yr`` (mm)."""
        subs = range(SUBSLICES) if subs is None else subs
        c, s = np.cos(phi), np.sin(phi)
        pts = np.array([(a, b) for a in xr for b in yr], float)
        lat = pts[:, 0] * c + pts[:, 1] * s
        ant = -pts[:, 0] * s + pts[:, 1] * c
        X = np.concatenate([self.cX[k] + self.L.lateral_sign * lat for k in subs])
        Y = np.concatenate([self.cY[k] - ant for k in subs])
        i0 = (X.min() - margin) / SPACING[0] + (SHAPE_XY[0] - 1) / 2.0
        i1 = (X.max() + margin) / SPACING[0] + (SHAPE_XY[0] - 1) / 2.0
        j0 = (Y.min() - margin) / SPACING[1] + (SHAPE_XY[1] - 1) / 2.0
        j1 = (Y.max() + margin) / SPACING[1] + (SHAPE_XY[1] - 1) / 2.0
        a, b = int(np.clip(np.floor(i0), 0, SHAPE_XY[0])), int(np.clip(np.ceil(i1) + 1, 0, SHAPE_XY[0]))
        cc, d = int(np.clip(np.floor(j0), 0, SHAPE_XY[1])), int(np.clip(np.ceil(j1) + 1, 0, SHAPE_XY[1]))
        if b - a < 3 or d - cc < 3:
            return None
        return slice(a, b), slice(cc, d)

    def coords(self, box, phi, subs=None):
        """Frame coordinates ``(x, y)`` (float32, shape (n_sub, ni, nj)) of the pixels of ``box``."""
        subs = np.arange(SUBSLICES) if subs is None else np.asarray(subs)
        X = X_MM[box[0]][None, :, None]
        Y = Y_MM[box[1]][None, None, :]
        lat = (X - self.cX[subs][:, None, None]) * F32(self.L.lateral_sign)
        ant = self.cY[subs][:, None, None] - Y
        c, s = F32(np.cos(phi)), F32(np.sin(phi))
        return lat * c - ant * s, lat * s + ant * c


def relative_box(outer, inner):
    """``inner`` (absolute index box) relative to ``outer``."""
    return (
        slice(inner[0].start - outer[0].start, inner[0].stop - outer[0].start),
        slice(inner[1].start - outer[1].start, inner[1].stop - outer[1].start),
    )


def paste_box(shape, outer, inner, arr, fill):
    """``arr`` (covering the absolute box ``inner``) on an array of ``shape`` covering ``outer``."""
    out = np.full(shape, fill, dtype=np.asarray(arr).dtype)
    a0, a1 = max(inner[0].start, outer[0].start), min(inner[0].stop, outer[0].stop)
    b0, b1 = max(inner[1].start, outer[1].start), min(inner[1].stop, outer[1].stop)
    if a1 > a0 and b1 > b0:
        out[a0 - outer[0].start : a1 - outer[0].start, b0 - outer[1].start : b1 - outer[1].start] = arr[
            a0 - inner[0].start : a1 - inner[0].start, b0 - inner[1].start : b1 - inner[1].start
        ]
    return out
