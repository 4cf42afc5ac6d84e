"""Two-stage organ segmentation of paper 002: stage-1 localisation -> organ boxes -> stage-2 crops -> merge.

Liu Ting 2020, "Research and Application on CT Image of Head and Neck Based on 3D Unet", master's thesis,
Xi'an Jiaotong University, §3.2.2 (Table 3-2, Figs. 3-6 and 3-7). The thesis never quantifies the box padding
or the merge rule; the defaults here are [D] choices:

* organ box = bounding box of the **largest 3D connected component** of that organ's voxels;
* enlarged by ``max(min_margin, fraction * extent)`` voxels on each side per axis
  (``min_margin = (8, 8, 3)``: 8 voxels in-plane, 3 slices in z; ``fraction = 0.15``), clipped to the volume;
* at training time the ground-truth box also gets ``+-jitter`` (4) voxels on every face, so stage 2 sees
  boxes as imprecise as stage 1's;
* each organ's foreground probability is resized back to its box and pasted into a full-size map; the final
  label is the organ with the highest probability where that is > 0.5, background elsewhere.

Axes are MONAI's: ``(B, C, X, Y, Z)`` after ``Orientationd("RAS")``, so a thesis size "slices x length x
width" (z, y, x) is written ``(x, y, z)`` here, e.g. the mandible crop 64x128x128 is ``(128, 128, 64)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.data import MetaTensor

from ..ops.boxes import Box, crop_and_resize, expand_box, organ_box, paste_max, scale_box
from ..ops.flags import as_bool
from ..ops.mirror import mirrored_channels
from ..ops.windows import box_centre, crop_window, paste_window_max, window_size_for, window_start
from .unet3d import UNet3D

__all__ = ["TwoStageUNet", "CROP_MODES"]

#: How an organ net's input is cut around stage 1's organ: the thesis's box resized to a fixed size, or a
#: fixed-size window of the working grid centred on the organ, never rescaled (:mod:`custom_networks.ops.windows`).
CROP_MODES = ("resize", "window")


class TwoStageUNet(nn.Module):
    """Paper 002's whole inference pipeline as one module: stage-1 9-class U-Net, then one binary U-Net per organ.

    ``forward(x)``: ``x`` (B, in_channels, X, Y, Z) is a preprocessed CT at the working grid (1 x 1 x 2.5 mm,
    windowed and standardised); returns **probabilities** (B, 1 + n_organs, X, Y, Z) on the same grid, so
    ``AsDiscrete(argmax=True)`` gives the label map:

    1. the volume is resized (trilinear) to ``stage1_size`` (thesis 208 x 208 x 72) and segmented by
       ``stage1`` (:class:`~custom_networks.nets.unet3d.UNet3D`, 1 + n_organs classes), argmax-ed on that grid;
    2. per organ, the box of the largest connected component of that label is scaled to ``x``'s grid
       (:func:`~custom_networks.ops.boxes.scale_box`, rounded outwards), enlarged
       (:func:`~custom_networks.ops.boxes.expand_box`), cut from ``x``, resized to the
       organ's ``crop_sizes`` entry (thesis Table 3-2) and segmented by ``stage2[organ]`` (UNet3D, 2 classes).
       Boxes come from stage 1's own output grid (the thesis: the "bbox" of the stage-1 result, section
       3.4); resizing nine channels of logits to a 512 x 512 x 200 input first, and searching components
       there, cost more than all the networks' forwards (``docs/benchmarks.md``, before/after). A scaled box
       is up to one stage-1 voxel per face larger and holds every organ voxel the full-grid box held (tested
       on the real organ masks);
    3. the foreground probabilities are pasted back (:func:`~custom_networks.ops.boxes.paste_max`); channel 0 is
       the constant 0.5, so the argmax is the most probable organ where it exceeds 0.5 and background
       elsewhere. An organ stage 1 misses stays empty and a warning names it.

    With ``use_stage2=False`` the output is stage 1's softmax resized to the input grid (the "stage 1 alone"
    row of the thesis's Table 3-7). Weights of both stages live in one state dict (``stage1.*``,
    ``stage2.<organ>.*``), so one ``models/model.pt`` holds the whole pipeline.

    Args:
        organs: organ names in label order (label ``i + 1`` is ``organs[i]``).
        crop_sizes: organ -> stage-2 input size ``(x, y, z)``; each divisible by ``2 ** (len(features) - 1)``.
        stage1_size: stage-1 input size ``(x, y, z)`` (thesis 208 x 208 x 72).
        in_channels, features, norm, dropout: passed to every :class:`~custom_networks.nets.unet3d.UNet3D`.
        min_margin, fraction: box enlargement (see :func:`~custom_networks.ops.boxes.expand_box`).
        use_stage2: run stage 2 (default) or return stage 1's probabilities.
        crop_mode: ``"resize"`` (the thesis; default) or ``"window"`` (see step 2).
        test_time_flip: also segment the left-right mirrored volume and average the two outputs, the mirrored
            one with its left and right organs' channels swapped back (:mod:`custom_networks.ops.mirror`);
            twice the work. Default False.
    """

    def __init__(
        self,
        organs: Sequence[str],
        crop_sizes: Mapping[str, Sequence[int]],
        stage1_size: Sequence[int] = (208, 208, 72),
        in_channels: int = 1,
        features: Sequence[int] = (24, 48, 96, 192),
        norm: str = "instance",
        dropout: float = 0.5,
        min_margin: Sequence[int] = (8, 8, 3),
        fraction: float = 0.15,
        use_stage2: bool = True,
        crop_mode: str = "resize",
        test_time_flip: bool = False,
    ) -> None:
        super().__init__()
        self.organs = tuple(organs)
        missing = [o for o in self.organs if o not in crop_sizes]
        if missing:
            raise ValueError(f"crop_sizes has no entry for {missing}; give an (x, y, z) size for every organ.")
        self.crop_sizes = {o: tuple(int(s) for s in crop_sizes[o]) for o in self.organs}
        self.stage1_size = tuple(int(s) for s in stage1_size)
        self.min_margin = tuple(min_margin)
        self.fraction = fraction
        self.use_stage2 = as_bool(use_stage2, "use_stage2")
        if crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {CROP_MODES}, got {crop_mode!r}.")
        self.crop_mode = crop_mode
        self.test_time_flip = as_bool(test_time_flip, "test_time_flip")
        self.mirrored_channels = mirrored_channels(self.organs)
        net = dict(in_channels=in_channels, features=features, norm=norm, dropout=dropout)
        self.stage1 = UNet3D(out_channels=1 + len(self.organs), **net)
        self.stage2 = nn.ModuleDict({o: UNet3D(out_channels=2, **net) for o in self.organs})
        # kept here: a runtime may replace the parts with exported networks that do not carry it
        self.size_multiple = self.stage1.size_multiple
        for name, size in [("stage1_size", self.stage1_size)] + [(f"crop_sizes[{o}]", s) for o, s in self.crop_sizes.items()]:
            if any(s % self.size_multiple for s in size):
                raise ValueError(f"{name} = {size} must be divisible by {self.size_multiple} in every axis.")

    def stage1_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Stage-1 logits on the stage-1 grid: (B, 1 + n_organs, *stage1_size)."""
        return self.stage1(F.interpolate(x, size=self.stage1_size, mode="trilinear", align_corners=False))

    def organ_boxes(self, labels: torch.Tensor, shape: Sequence[int]) -> dict[str, Box | None]:
        """Enlarged stage-2 box, on a grid of ``shape``, of every organ in a (X, Y, Z) label map on any grid
        covering the same extent (None where the organ is absent)."""
        boxes = {}
        for i, organ in enumerate(self.organs, start=1):
            box = organ_box(labels == i)
            if box is not None:
                box = expand_box(scale_box(box, labels.shape, shape), shape, self.min_margin, self.fraction)
            boxes[organ] = box
        return boxes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"TwoStageUNet expects a (B, C, X, Y, Z) volume, got shape {tuple(x.shape)}.")
        source = x if isinstance(x, MetaTensor) else None
        x = x.as_tensor() if source is not None else x  # plain tensors inside; metadata restored on the output
        out = self._segment(x)
        if self.test_time_flip:  # axis 2 runs left-right (RAS)
            mirrored = self._segment(torch.flip(x, dims=[2]))
            out = (out + torch.flip(mirrored, dims=[2])[:, self.mirrored_channels]) / 2
        return out if source is None else MetaTensor(out).copy_meta_from(source)

    def _segment(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.stage1_logits(x)
        if not self.use_stage2:
            return torch.softmax(F.interpolate(logits, size=x.shape[2:], mode="trilinear", align_corners=False), dim=1)
        return self.organ_probabilities(x, logits.argmax(dim=1))

    def organ_probabilities(self, x: torch.Tensor, labels: torch.Tensor, warn: bool = True) -> torch.Tensor:
        """Stage 2 on the organs of ``labels``: (B, 1 + n_organs, *x's grid) probabilities, channel 0 the constant 0.5.

        ``labels`` (B, X', Y', Z') is a label map on any grid covering ``x``'s extent: stage 1's argmax (the
        pipeline), or the ground truth on ``x``'s grid (the "ground-truth boxes" row of
        ``python -m scripts.decompose_head_neck``). Channel ``i`` holds organ ``i``'s foreground probability inside
        its crop and 0 elsewhere, so ``argmax`` merges the organs and ``[:, i] > 0.5`` is organ ``i``'s net alone.
        """
        out = torch.zeros((x.shape[0], 1 + len(self.organs)) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
        out[:, 0] = 0.5
        for b in range(x.shape[0]):
            for i, (organ, box) in enumerate(self.organ_boxes(labels[b], x.shape[2:]).items(), start=1):
                if box is None:
                    if warn:
                        warnings.warn(f"stage 1 found no {organ} in volume {b}; its output is empty.", stacklevel=2)
                    continue
                self._segment_organ(x[b : b + 1], organ, box, out[b : b + 1, i : i + 1])
        return out

    def _segment_organ(self, x: torch.Tensor, organ: str, box: Box, out: torch.Tensor) -> None:
        """Run ``organ``'s net on its crop of ``x`` (1, C, *S) around the enlarged ``box``; paste into ``out``."""
        if self.crop_mode == "resize":
            crop = crop_and_resize(x, box, self.crop_sizes[organ])
            paste_max(out, torch.softmax(self.stage2[organ](crop), dim=1)[:, 1:], box)
            return
        size = window_size_for(box, self.crop_sizes[organ], self.size_multiple)
        start = window_start(box_centre(box), size)
        prob = torch.softmax(self.stage2[organ](crop_window(x, start, size)), dim=1)[:, 1:]
        paste_window_max(out, prob, start)
