"""MONAI's ``Spacingd`` with a nearest-neighbour inverse that gathers indices instead of sampling a dense grid.

The head-and-neck bundle (paper 002) resamples each CT to its 3.9 mm working grid and, after the argmax, back to
the scan's own grid with ``Invertd(nearest_interp=True)``. MONAI does that inverse with ``grid_sample`` over a
dense float64 grid of the scan's size: on a 512x512x200 CT about 1.7 GB of grid and image and most of the
pipeline's time (``docs/benchmarks.md``). Between two grids that differ only by a scale and shift per axis the
nearest neighbour of each output voxel is a product of one index per axis, so the same label map is one
``numpy`` gather (``np.ix_``) of a few hundred indices per axis.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Spacingd
from monai.transforms.spatial.array import SpatialResample
from monai.utils import TraceKeys, convert_to_numpy

__all__ = ["GatherInverseSpacingd", "gather_nearest_inverse"]

#: how far from a pure scale-and-shift the inverse's voxel map may be and still count as axis-aligned
_AXIS_ALIGNED_ATOL = 1e-6


def gather_nearest_inverse(resample: SpatialResample, img: torch.Tensor) -> MetaTensor | None:
    """The inverse of ``resample``'s most recent resampling of ``img`` by an index gather, or ``None`` where it
    would not give exactly what MONAI's inverse gives (the caller then runs MONAI's): only a nearest-neighbour
    inverse (as ``Invertd(nearest_interp=True)`` sets it), ``border`` or ``zeros`` padding, no pending lazy
    operations, and source and destination grids that differ by a scale and a shift per axis.

    Same rounding as ``grid_sample``'s nearest mode: the source coordinate of each output voxel centre, clamped
    to the image for ``border`` padding, rounded half to even; out of the image is 0 for ``zeros`` padding.
    Shapes: (C, *working grid) in, (C, *the grid before the resampling) out, the input's dtype; the
    applied-operations record is popped as MONAI's inverse pops it."""
    if not isinstance(img, MetaTensor) or img.pending_operations:
        return None
    transform = resample.get_most_recent_transform(img)
    info = transform[TraceKeys.EXTRA_INFO]
    mode, padding = info.get("mode"), info.get("padding_mode")
    if mode not in ("nearest", 0) or padding not in ("border", "zeros"):
        return None
    src = convert_to_numpy(img.affine, dtype=np.float64)  # the working grid (the resampling's output)
    dst = convert_to_numpy(info["src_affine"], dtype=np.float64)  # the grid before the resampling
    rank = len(transform[TraceKeys.ORIG_SIZE])
    if src.shape != (rank + 1, rank + 1) or dst.shape != src.shape or img.ndim != rank + 1:
        return None
    voxel_map = np.linalg.solve(src, dst)  # output voxel index -> working-grid voxel index
    scales = np.diag(voxel_map)[:rank]
    if not np.allclose(voxel_map[:rank, :rank], np.diag(scales), rtol=0, atol=_AXIS_ALIGNED_ATOL):
        return None
    resample.pop_transform(img)
    data = img.as_tensor().detach().cpu().numpy()
    index, inside = [], []
    for axis, size in enumerate(transform[TraceKeys.ORIG_SIZE]):
        coord = scales[axis] * np.arange(int(size)) + voxel_map[axis, rank]
        n = img.shape[1 + axis]
        if padding == "border":
            coord = np.clip(coord, 0, n - 1)
        i = np.rint(coord).astype(np.int64)  # round half to even, as grid_sample's nearest
        inside.append((i >= 0) & (i < n))
        index.append(np.clip(i, 0, n - 1))
    out = data[(slice(None), *np.ix_(*index))]
    if padding == "zeros" and not all(m.all() for m in inside):
        out = out * _outer(inside).astype(out.dtype)
    meta = dict(img.meta)
    meta["affine"] = torch.as_tensor(dst, dtype=img.affine.dtype)
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(out)).to(img.device), meta=meta,
                      applied_operations=img.applied_operations)


def _outer(masks: list[np.ndarray]) -> np.ndarray:
    """The product of per-axis boolean masks as one array of all their axes."""
    full = masks[0]
    for m in masks[1:]:
        full = np.multiply.outer(full, m)
    return full


class GatherInverseSpacingd(Spacingd):
    """MONAI's ``Spacingd`` (same arguments, same forward) whose inverse, where nearest-neighbour (as
    ``Invertd(nearest_interp=True)`` asks for a label map) and axis-aligned, is :func:`gather_nearest_inverse`:
    the same voxels as MONAI's ``grid_sample`` inverse, without its dense grid. Other inverses are MONAI's.

    Used by paper 002's bundle (thesis section 3.3: prediction on the 3.9 mm grid, label map back on the scan's).
    Shapes as ``Spacingd``: (C, *spatial) in, (C, *spatial at ``pixdim``) out; inverse the other way.
    """

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            fast = gather_nearest_inverse(self.spacing_transform.sp_resample, d[key])
            d[key] = fast if fast is not None else self.spacing_transform.inverse(d[key])
        return d
