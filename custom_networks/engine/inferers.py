"""Slice-by-slice inference that falls back to sliding windows on slices too large to segment whole."""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import torch
from monai.inferers import SliceInferer


class LargeSliceInferer(SliceInferer):
    """MONAI's ``SliceInferer`` (same arguments) for the 2D bundles, with a memory guard.

    The papers segment whole 512x512 slices. A slice larger than ``max_slice_pixels`` (default 1024x1024) would
    need several GB of activations at the papers' widths, so such a volume is segmented in sliding windows of
    ``window`` pixels within each slice instead (MONAI's sliding-window blending, ``overlap`` as configured),
    and a warning says so. Inputs ``(B, C, H, W, D)``, outputs as ``SliceInferer``. Smaller slices are
    segmented whole, exactly as before.

    ``inference_mode=True`` (default) runs the slices under ``torch.inference_mode`` rather than the evaluator's
    ``torch.no_grad`` (no autograd bookkeeping at all; with a channels-last network, the 2D bundles' bottleneck
    fix in ``docs/benchmarks.md``). The output is returned as an ordinary tensor.
    """

    def __init__(self, spatial_dim: int = 0, *args: Any, max_slice_pixels: int = 1024 * 1024,
                 window: Sequence[int] = (512, 512), inference_mode: bool = True, **kwargs: Any) -> None:
        super().__init__(spatial_dim, *args, **kwargs)
        self.max_slice_pixels = int(max_slice_pixels)
        self.window = tuple(int(w) for w in window)
        self.inference_mode = bool(inference_mode)

    def __call__(self, inputs: torch.Tensor, network, *args: Any, **kwargs: Any):
        if not self.inference_mode:
            return self._segment(inputs, network, *args, **kwargs)
        with torch.inference_mode():
            out = self._segment(inputs, network, *args, **kwargs)
        return out.clone()  # an inference tensor refuses later in-place updates (e.g. by postprocessing)

    def _segment(self, inputs: torch.Tensor, network, *args: Any, **kwargs: Any):
        spatial = list(inputs.shape[2:])
        in_plane = [s for i, s in enumerate(spatial) if i != self.spatial_dim]
        whole = tuple(self.orig_roi_size) == (-1, -1)
        if not whole or math.prod(in_plane) <= self.max_slice_pixels:
            return super().__call__(inputs, network, *args, **kwargs)
        window = tuple(min(w, s) for w, s in zip(self.window, in_plane))
        source = getattr(inputs, "meta", {}).get("filename_or_obj", "the input")
        warnings.warn(f"{source}: slices of {'x'.join(map(str, in_plane))} pixels exceed max_slice_pixels="
                      f"{self.max_slice_pixels}, too large to segment whole in memory; segmenting them in sliding "
                      f"windows of {'x'.join(map(str, window))} instead.", stacklevel=2)
        self.orig_roi_size = window
        try:
            return super().__call__(inputs, network, *args, **kwargs)
        finally:
            self.orig_roi_size = (-1, -1)
