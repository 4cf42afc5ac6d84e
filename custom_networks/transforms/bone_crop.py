"""Paper 000's training crop: random crops of a 2D slice that keep a large share of its bone
(:class:`RandBoneRatioCropd`, :func:`bone_ratio_threshold`).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, SpatialCrop, SpatialPad
from monai.utils import convert_to_numpy, ensure_tuple_rep

__all__ = ["RandBoneRatioCropd", "bone_ratio_threshold"]


def bone_ratio_threshold(attempt: int, ratio_numerator: float = 0.2, min_ratio: float = 0.2) -> float:
    """The share of the slice's bone a crop needs at (1-based) ``attempt``.

    ``ratio_numerator / attempt + min_ratio``; paper 000: ``0.2 / i + 0.2``.
    """
    return ratio_numerator / attempt + min_ratio


def _integral(mask: np.ndarray) -> np.ndarray:
    """Summed-area table of ``mask`` with a zero row/column in front of every axis."""
    table = mask.astype(np.int64)
    for axis in range(table.ndim):
        table = table.cumsum(axis)
    return np.pad(table, [(1, 0)] * table.ndim)


def _box_sum(table: np.ndarray, start: Sequence[int], size: Sequence[int]) -> int:
    nd = len(start)
    total = 0
    for corner in itertools.product((0, 1), repeat=nd):
        index = tuple(s + (k if c else 0) for s, k, c in zip(start, size, corner))
        total += (-1) ** (nd - sum(corner)) * int(table[index])
    return total


class RandBoneRatioCropd(Randomizable, MapTransform):
    """Random crop that keeps a large share of the bone, the training-sample rule of paper 000.

    Liu Jinhui, Tong Jing et al., "CT Image Segmentation of Lower Limb Bones Based on Improved U-Net",
    *Computer Systems & Applications* 2022, 31(10): 134-141, §2.1, formula 8: training samples
    are random crops (128 x 128) of a slice, drawn so that each crop holds a large share of the slice's
    bone. For attempt ``i = 1 .. max_attempts`` a crop position is drawn uniformly among all positions that
    fit in the slice, and it is accepted when

        ``N_crop / N_full >= ratio_numerator / i + min_ratio``        (paper: 0.2 / i + 0.2)

    where ``N`` counts foreground pixels (label > 0) in the crop and in the whole slice. Attempt 1 needs
    40 % of the slice's bone, attempt 100 needs 20.2 %: the later the attempt, the looser the rule.
    Documented choices [D] (the paper is silent on them):

    * no attempt passes: take the attempt with the largest ratio (the earliest one on a tie);
    * ``N_full == 0`` (no bone on the slice): one uniform random crop;
    * a slice smaller than ``spatial_size`` along an axis is first padded symmetrically to
      ``spatial_size`` (MONAI ``SpatialPad``, ``pad_mode``; constant 0 by default, which is the air end of
      the bone window when this runs after ``ScaleIntensityRanged`` and background for the label);
    * one crop per call (per slice per epoch).

    All ``keys`` (and ``label_key``) are padded and cropped with the same MONAI ``SpatialPad`` and
    ``SpatialCrop``, so images and label stay aligned and each MetaTensor's affine is moved to the crop.
    The crop is meant for training only and is not inverted.

    Shapes: every key holds a channel-first array ``(C, H, W)`` (a 3D ``(C, H, W, D)`` array works the same
    way with a 3-entry ``spatial_size``), all with one spatial shape; the output is ``(C, *spatial_size)``.
    For a multi-channel label a pixel counts as foreground when any channel is > 0, so give a binary
    bone mask (one channel, no background channel).

    The chosen sample is kept for inspection in ``last_sample``: ``start`` (crop corner), ``attempt``
    (1-based index of the chosen attempt, ``None`` for an empty slice), ``ratio`` (``N_crop / N_full``,
    ``None`` for an empty slice), ``accepted`` (whether it passed the rule) and ``candidates`` (the
    ``(start, ratio)`` of every attempt drawn).

    Args:
        keys: keys to crop (image and label).
        label_key: the key of the bone mask used to count ``N``; cropped too.
        spatial_size: crop size, paper: (128, 128).
        max_attempts: number of random attempts, paper: 100.
        min_ratio: the share the rule tends to as attempts grow, paper: 0.2.
        ratio_numerator: the extra share that decays as ``1 / i``, paper: 0.2.
        pad_mode: ``SpatialPad`` mode for slices smaller than ``spatial_size``.
        allow_missing_keys: skip keys that are absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str,
        spatial_size: Sequence[int] | int = (128, 128),
        max_attempts: int = 100,
        min_ratio: float = 0.2,
        ratio_numerator: float = 0.2,
        pad_mode: str = "constant",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}.")
        self.label_key = label_key
        self.spatial_size = spatial_size
        self.max_attempts = int(max_attempts)
        self.min_ratio = float(min_ratio)
        self.ratio_numerator = float(ratio_numerator)
        self.pad_mode = pad_mode
        self.last_sample: dict = {}

    def randomize(self, foreground: np.ndarray, size: Sequence[int] | None = None) -> None:
        """Choose the crop corner for the boolean ``foreground`` mask (spatial shape only); sets ``last_sample``."""
        size = tuple(size if size is not None else ensure_tuple_rep(self.spatial_size, foreground.ndim))
        highs = [s - k + 1 for s, k in zip(foreground.shape, size)]

        def draw() -> tuple[int, ...]:
            return tuple(int(self.R.randint(0, h)) for h in highs)

        n_full = int(foreground.sum())
        if n_full == 0:
            self.last_sample = {"start": draw(), "attempt": None, "ratio": None, "accepted": False, "candidates": []}
            return
        table = _integral(foreground)
        candidates: list[tuple[tuple[int, ...], float]] = []
        best = 0
        for i in range(1, self.max_attempts + 1):
            start = draw()
            ratio = _box_sum(table, start, size) / n_full
            candidates.append((start, ratio))
            if ratio >= bone_ratio_threshold(i, self.ratio_numerator, self.min_ratio):
                self.last_sample = {
                    "start": start, "attempt": i, "ratio": ratio, "accepted": True, "candidates": candidates
                }
                return
            if ratio > candidates[best][1]:
                best = i - 1
        start, ratio = candidates[best]
        self.last_sample = {
            "start": start, "attempt": best + 1, "ratio": ratio, "accepted": False, "candidates": candidates
        }

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.label_key not in d:
            raise KeyError(f"RandBoneRatioCropd needs the bone mask under '{self.label_key}' to choose the crop.")
        keys = list(dict.fromkeys([*self.key_iterator(d), self.label_key]))
        label = d[self.label_key]
        nd = len(label.shape) - 1
        if nd < 1:
            raise ValueError(
                f"RandBoneRatioCropd expects channel-first arrays (C, H, W); '{self.label_key}' has shape "
                f"{tuple(label.shape)}."
            )
        size = ensure_tuple_rep(self.spatial_size, nd)
        for key in keys:
            if tuple(d[key].shape[1:]) != tuple(label.shape[1:]):
                raise ValueError(
                    f"RandBoneRatioCropd: '{key}' has spatial shape {tuple(d[key].shape[1:])} but "
                    f"'{self.label_key}' has {tuple(label.shape[1:])}; the image and its mask must share one grid "
                    "(channel-first (C, H, W))."
                )
        if any(s < k for s, k in zip(label.shape[1:], size)):
            padder = SpatialPad(spatial_size=size, method="symmetric", mode=self.pad_mode)
            for key in keys:
                d[key] = padder(d[key])
            label = d[self.label_key]
        foreground = convert_to_numpy(label > 0).any(axis=0)
        self.randomize(foreground, size)
        start = self.last_sample["start"]
        cropper = SpatialCrop(roi_start=start, roi_end=[s + k for s, k in zip(start, size)])
        for key in keys:
            d[key] = cropper(d[key])
        return d
