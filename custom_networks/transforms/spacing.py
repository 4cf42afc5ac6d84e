"""MONAI's ``Spacingd`` with a nearest-neighbour inverse that gathers indices instead of sampling a dense grid.

The head-and-neck bundle (paper 002) resamples each CT to its 3.9 mm working grid and, after the argmax, back to
the scan's own grid with ``Invertd(nearest_interp=True)``. MONAI does that inverse with ``grid_sample`` over a
dense float64 grid of the scan's size: on a 512x512x200 CT about 1.7 GB of grid and image and most of the
pipeline's time (``docs/benchmarks.md``). Between two grids that differ only by a scale and shift per axis the
nearest neighbour of each output voxel is a product of one index per axis, so the same label map is one
``numpy`` gather (``np.ix_``) of a few hundred indices per axis.
"""

from __future__ import annotations

import itertools
import math
import mmap
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.networks.utils import to_norm_affine
from monai.transforms import Spacingd
from monai.transforms.spatial.array import SpatialResample
from monai.transforms.utils import resolves_modes
from monai.utils import TraceKeys, convert_to_numpy

__all__ = ["GatherInverseSpacingd", "SlabResampling", "gather_nearest_inverse", "untouched_zeros"]

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


def untouched_zeros(shape: Sequence[int], dtype: torch.dtype, slowest: int) -> torch.Tensor:
    """A zero tensor of ``shape`` whose memory is committed only where it is written: an anonymous private
    mapping (zero pages until first written), laid out with axis ``slowest`` outermost so that each of its
    slices is one contiguous run of pages. A whole-volume-sized input of which a few slices are written costs
    the memory of those slices."""
    order = [slowest, *[a for a in range(len(shape)) if a != slowest]]
    count = math.prod(int(s) for s in shape)
    buffer = mmap.mmap(-1, max(1, count * torch.empty((), dtype=dtype).element_size()), flags=mmap.MAP_PRIVATE)
    flat = torch.frombuffer(buffer, dtype=dtype, count=count)
    return flat.view([int(shape[a]) for a in order]).permute(*np.argsort(order).tolist())


def _linspace_from_neg_one(n: int, align_corners: bool, dtype: torch.dtype) -> torch.Tensor:
    """ATen's ``linspace_from_neg_one`` (``affine_grid``'s base coordinates of one axis), op for op."""
    if n <= 1:
        return torch.zeros(1, dtype=dtype)
    r = torch.linspace(-1, 1, n, dtype=dtype)
    return r if align_corners else r * (n - 1) / n


class SlabResampling:
    """One of MONAI's resamplings of a whole volume (``SpatialResample``'s torch path: ``AffineTransform`` ->
    ``affine_grid`` -> ``grid_sample``), computed slab by slab along one spatial ``axis`` with the same voxels.

    The gap it fills: MONAI samples the whole output at once, with a float64 copy of the whole input and an
    affine grid of the whole output (about 60 bytes per output voxel: 2.3 GB for 100 CT slices resampled to
    0.8 mm). ``grid_sample`` normalises coordinates by the input's whole size, so a slab resampled on its own
    (MONAI's ``Spacing`` on a slab) differs from the whole volume's in the last bits; this takes the rows of
    the whole volume's grid (the same ``theta``, base coordinates and ``bmm`` as ATen's ``affine_grid``) and
    samples a whole-size input of which only the slices those rows read are written (:func:`untouched_zeros`).

    ``xform``: the 4x4 voxel map MONAI's ``spatial_resample`` computed (output voxel -> input voxel, float64);
    ``src_size`` / ``dst_size``: the whole input and output spatial sizes; ``mode``, ``padding_mode``,
    ``align_corners``, ``dtype``: as the resampling's record has them. Spline modes (integers) are refused.
    Call with ``(source slices (C, ...) holding input slices [lo, hi) along ``axis``, lo, z0, z1)``; returns
    output slices [z0, z1) as float32 ``(C, ...)``. :meth:`source_range` says which input slices they read.
    """

    def __init__(self, xform: torch.Tensor, src_size: Sequence[int], dst_size: Sequence[int], axis: int,
                 mode: str, padding_mode: str, align_corners: bool, dtype: torch.dtype) -> None:
        if isinstance(mode, int) or str(mode).isdigit():
            raise ValueError(f"slab-wise resampling supports grid_sample modes, not spline order {mode}")
        _, self.mode, self.padding_mode, _ = resolves_modes(mode, padding_mode)
        self.src_size, self.dst_size = [int(s) for s in src_size], [int(s) for s in dst_size]
        self.axis, self.align_corners, self.dtype = int(axis), bool(align_corners), dtype
        rank = len(self.src_size)
        # AffineTransform.forward (normalized=False, reverse_indexing=True, zero_centered=False), line for line
        theta = xform.to(dtype)[None].clone()
        theta = to_norm_affine(theta, self.src_size, self.dst_size, align_corners=self.align_corners,
                               zero_centered=False)
        rev = torch.as_tensor(range(rank - 1, -1, -1))
        theta[:, :rank] = theta[:, rev]
        theta[:, :, :rank] = theta[:, :, rev]
        self.theta = theta[:, :rank]

    def grid(self, z0: int, z1: int) -> torch.Tensor:
        """Rows [z0, z1) along ``axis`` of ``affine_grid(theta, whole output size)`` (ATen's
        ``affine_grid_generator``: base coordinates times ``theta`` by ``bmm``), shape (1, *slab size, rank)."""
        rank = len(self.dst_size)
        size = list(self.dst_size)
        size[self.axis] = z1 - z0
        base = torch.empty((1, *size, rank + 1), dtype=self.dtype)
        for axis in range(rank):  # ATen: base[..., 0] runs along the last axis, base[..., rank - 1] the first
            line = _linspace_from_neg_one(self.dst_size[axis], self.align_corners, self.dtype)
            if axis == self.axis:
                line = line[z0:z1]
            base[..., rank - 1 - axis].copy_(line.view([-1] + [1] * (rank - 1 - axis)))
        base[..., rank].fill_(1)
        return base.view(1, -1, rank + 1).bmm(self.theta.transpose(1, 2)).view(1, *size, rank)

    def source_range(self, z0: int, z1: int) -> tuple[int, int]:
        """The input slices [lo, hi) along ``axis`` that output slices [z0, z1) read (with a slice to spare): the
        grid is affine in the output index, so its extremes over the slab lie at the slab's corners."""
        rank = len(self.dst_size)
        ends = []
        for axis in range(rank - 1, -1, -1):  # base-grid component order: the last axis first
            line = _linspace_from_neg_one(self.dst_size[axis], self.align_corners, torch.float64)
            ends.append([float(line[z0]), float(line[z1 - 1])] if axis == self.axis else [float(line[0]), float(line[-1])])
        corners = torch.tensor([[*c, 1.0] for c in itertools.product(*ends)], dtype=torch.float64)
        coord = corners @ self.theta[0].double()[rank - 1 - self.axis]
        n = self.src_size[self.axis]
        index = (coord + 1) / 2 * (n - 1) if self.align_corners else ((coord + 1) * n - 1) / 2
        lo, hi = math.floor(float(index.min())) - 1, math.floor(float(index.max())) + 3
        return max(0, lo), min(n, max(hi, lo + 1))

    def __call__(self, source: torch.Tensor, lo: int, z0: int, z1: int) -> torch.Tensor:
        whole = untouched_zeros((1, source.shape[0], *self.src_size), self.dtype, slowest=2 + self.axis)
        whole[0].narrow(1 + self.axis, lo, source.shape[1 + self.axis]).copy_(source)
        out = F.grid_sample(whole, self.grid(z0, z1), mode=self.mode, padding_mode=self.padding_mode,
                            align_corners=self.align_corners)
        return out[0].to(torch.float32)
