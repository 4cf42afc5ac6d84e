"""Organ boxes of the two-stage pipeline (paper 002): find, enlarge, jitter, rescale, crop and paste back.

Liu Ting 2020, "Research and Application on CT Image of Head and Neck Based on 3D Unet", master's thesis,
Xi'an Jiaotong University, §3.2.2. The rules (largest connected component, margins, jitter) are described
in :mod:`custom_networks.nets.two_stage`; :class:`~custom_networks.nets.two_stage.TwoStageUNet` uses them at
inference and :class:`~custom_networks.transforms.organ_crop.OrganCropd` at training time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .components import largest_component

__all__ = ["Box", "organ_box", "expand_box", "jitter_box", "scale_box", "box_slices", "crop_and_resize", "paste_max"]


#: A box: one ``(start, stop)`` pair (stop exclusive) per spatial axis.
Box = tuple[tuple[int, int], ...]


def organ_box(mask: torch.Tensor | np.ndarray) -> Box | None:
    """Bounding box of the largest 3D connected component (full 26-connectivity) of ``mask``; None if empty.

    ``mask`` is a spatial boolean array (no channel axis). Using the largest component, never the raw
    extent, keeps a few stray voxels (e.g. case 0522c0629's Orbit-Lt) from blowing the box up.
    """
    largest = largest_component(torch.as_tensor(mask).bool().cpu().numpy())
    if not largest.any():
        return None
    idx = np.nonzero(largest)
    return tuple((int(i.min()), int(i.max()) + 1) for i in idx)


def expand_box(
    box: Box, shape: Sequence[int], min_margin: Sequence[int] = (8, 8, 3), fraction: float = 0.15
) -> Box:
    """Enlarge ``box`` by ``max(min_margin[a], ceil(fraction * extent))`` on both sides of axis ``a``, clipped."""
    out = []
    for (lo, hi), size, m in zip(box, shape, min_margin):
        margin = max(int(m), math.ceil(fraction * (hi - lo)))
        out.append((max(0, lo - margin), min(int(size), hi + margin)))
    return tuple(out)


def jitter_box(box: Box, shape: Sequence[int], jitter: int, rng: np.random.RandomState) -> Box:
    """Move every face of ``box`` by a uniform integer in ``[-jitter, jitter]`` (position and size), clipped."""
    out = []
    for (lo, hi), size in zip(box, shape):
        lo2 = int(np.clip(lo + rng.randint(-jitter, jitter + 1), 0, size - 1))
        hi2 = int(np.clip(hi + rng.randint(-jitter, jitter + 1), lo2 + 1, size))
        out.append((lo2, hi2))
    return tuple(out)


def scale_box(box: Box, shape: Sequence[int], new_shape: Sequence[int]) -> Box:
    """``box`` on a grid of ``shape`` as a box on a grid of ``new_shape`` over the same extent, rounded outwards.

    Voxel ``i`` of an axis of ``n`` voxels covers ``[i, i + 1) * new / n`` of the new axis (the
    ``align_corners=False`` convention of the resize into stage 1), so the new box holds every voxel that any
    voxel of the old one touches.
    """
    out = []
    for (lo, hi), n, m in zip(box, shape, new_shape):
        f = int(m) / int(n)
        out.append((max(0, math.floor(lo * f)), min(int(m), math.ceil(hi * f))))
    return tuple(out)


def box_slices(box: Box) -> tuple[slice, ...]:
    """``box`` as a tuple of slices over the spatial axes."""
    return tuple(slice(lo, hi) for lo, hi in box)


def crop_and_resize(x: torch.Tensor, box: Box, size: Sequence[int], mode: str = "trilinear") -> torch.Tensor:
    """Cut ``box`` out of ``x`` (B, C, *S) and resize it to ``size``: (B, C, *size)."""
    crop = x[(slice(None), slice(None)) + box_slices(box)]
    return F.interpolate(crop, size=tuple(size), mode=mode, align_corners=False if mode == "trilinear" else None)


def paste_max(full: torch.Tensor, crop: torch.Tensor, box: Box) -> None:
    """Resize ``crop`` (B, C, *size) to ``box``'s extent and write ``max(full, crop)`` into ``full`` (B, C, *S)."""
    extent = tuple(hi - lo for lo, hi in box)
    region = (slice(None), slice(None)) + box_slices(box)
    resized = F.interpolate(crop, size=extent, mode="trilinear", align_corners=False)
    full[region] = torch.maximum(full[region], resized)
