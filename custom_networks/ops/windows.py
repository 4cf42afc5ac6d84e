"""Fixed-size organ windows of the two-stage pipeline (paper 002): centre, cut with padding, paste back.

The thesis (Liu Ting 2020, §3.2.2) cuts each organ's box out of the CT and **resizes** it to the organ's fixed
size (Table 3-2), so an organ net sees every organ at a scale that depends on how tight the box was; at inference
the box comes from stage 1's coarse grid and is looser than in training. A window is the alternative measured in
the bundle's docs/performance_openkbp.md ("Localisation"): a crop of a fixed size in voxels of the working grid,
centred on the organ, **never rescaled**, so training and inference see the same scale and a box error only
moves the window.

Windows may reach past the volume: the part outside is padded (edge values for images, 0 for labels) when cut
and dropped when pasted back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .boxes import Box

__all__ = ["box_centre", "window_start", "window_size_for", "crop_window", "paste_window_max"]


def box_centre(box: Box) -> tuple[float, ...]:
    """The centre of ``box`` in voxel coordinates (a box ``(lo, hi)`` covers voxels ``lo .. hi - 1``)."""
    return tuple((lo + hi - 1) / 2 for lo, hi in box)


def window_start(centre: Sequence[float], size: Sequence[int]) -> tuple[int, ...]:
    """First voxel of a window of ``size`` centred on ``centre`` (may be negative or past the volume)."""
    return tuple(int(math.floor(c - (s - 1) / 2 + 0.5)) for c, s in zip(centre, size))


def window_size_for(box: Box, size: Sequence[int], multiple: int = 8) -> tuple[int, ...]:
    """``size``, grown on any axis where ``box`` is larger to the box's extent rounded up to ``multiple``.

    An organ larger than its window in one scan (a spinal cord over the whole field of view) is then still
    covered whole; the networks are fully convolutional, so only the sizes' divisibility matters.
    """
    return tuple(max(int(s), multiple * math.ceil((hi - lo) / multiple)) for (lo, hi), s in zip(box, size))


def _in_bounds(start: Sequence[int], size: Sequence[int], shape: Sequence[int]) -> tuple[list[slice], list[slice]]:
    """Slices of the volume and of the window that overlap."""
    vol, win = [], []
    for s0, n, dim in zip(start, size, shape):
        lo, hi = max(0, s0), min(int(dim), s0 + int(n))
        if hi <= lo:
            raise ValueError(f"window start {tuple(start)} size {tuple(size)} lies outside a volume of {tuple(shape)}")
        vol.append(slice(lo, hi))
        win.append(slice(lo - s0, hi - s0))
    return vol, win


def crop_window(x: torch.Tensor, start: Sequence[int], size: Sequence[int], pad: str = "replicate") -> torch.Tensor:
    """Cut a window of ``size`` at ``start`` from ``x`` (B, C, *S): (B, C, *size), unscaled.

    The part of the window outside ``x`` is padded: ``pad="replicate"`` repeats the edge voxels (images),
    ``"zeros"`` fills 0 (labels).
    """
    shape = x.shape[2:]
    vol, _ = _in_bounds(start, size, shape)
    crop = x[(slice(None), slice(None), *vol)]
    # F.pad takes (before, after) pairs from the last axis backwards
    widths = []
    for s0, n, sl in reversed(list(zip(start, size, vol))):
        widths += [sl.start - s0, s0 + int(n) - sl.stop]
    if not any(widths):
        return crop
    if pad == "zeros":
        return F.pad(crop, widths)
    if pad != "replicate":
        raise ValueError(f"pad must be 'replicate' or 'zeros', got {pad!r}")
    return F.pad(crop.float(), widths, mode="replicate").to(crop.dtype)


def paste_window_max(full: torch.Tensor, window: torch.Tensor, start: Sequence[int]) -> None:
    """Write ``max(full, window)`` into ``full`` (B, C, *S) where ``window`` (B, C, *size) at ``start`` overlaps it."""
    vol, win = _in_bounds(start, window.shape[2:], full.shape[2:])
    region = (slice(None), slice(None), *vol)
    full[region] = torch.maximum(full[region], window[(slice(None), slice(None), *win)])
