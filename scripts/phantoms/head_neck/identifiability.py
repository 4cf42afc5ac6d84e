"""The "no organ identifiable by intensity alone" check of the rendered head-and-neck volumes."""

from __future__ import annotations

import numpy as np

from custom_networks.labels.head_neck import ORGANS

from ..geometry import bounding_box

__all__ = ["best_interval_dice", "head_region", "intensity_identifiability"]


def best_interval_dice(image: np.ndarray, mask: np.ndarray, region: np.ndarray | None = None, bin_hu: int = 5):
    """Best Dice of ``lo <= image <= hi`` against ``mask`` over all HU intervals (``bin_hu`` steps).

    Only voxels in ``region`` (default: everywhere) count. Returns ``(dice, lo, hi)``.
    """
    region = np.ones(image.shape, bool) if region is None else region
    vals, inside = image[region].astype(np.int64), mask[region]
    n_org = int(inside.sum())
    if n_org == 0:
        return 0.0, 0, 0
    lo_v = -1024
    nb = (3071 - lo_v) // bin_hu + 1
    b = np.clip((vals - lo_v) // bin_hu, 0, nb - 1)
    ca = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=nb))]).astype(np.float64)
    co = np.concatenate([[0], np.cumsum(np.bincount(b[inside], minlength=nb))]).astype(np.float64)
    used = np.nonzero(np.bincount(b[inside], minlength=nb))[0]
    i, j = used[:, None], used[None, :] + 1  # intervals starting and ending on bins the organ uses
    inter, sel = co[j] - co[i], ca[j] - ca[i]
    dice = np.divide(2.0 * inter, n_org + sel, out=np.zeros_like(inter), where=j > i)  # empty intervals: 0
    k = np.unravel_index(int(np.argmax(dice)), dice.shape)
    return float(dice[k]), int(lo_v + used[k[0]] * bin_hu), int(lo_v + (used[k[1]] + 1) * bin_hu - 1)


def head_region(label: np.ndarray, spacing, margin_mm: float = 20.0) -> np.ndarray:
    """Bounding box of all labelled organs grown by ``margin_mm``, as a mask."""
    box = bounding_box(label > 0, [int(np.ceil(margin_mm / s)) for s in spacing])
    region = np.zeros(label.shape, bool)
    if box is not None:
        region[box] = True
    return region


def intensity_identifiability(image: np.ndarray, label: np.ndarray, spacing) -> dict:
    """Per thesis organ, ``(dice, lo, hi)`` of the best single HU interval within :func:`head_region`."""
    region = head_region(label, spacing)
    return {organ: best_interval_dice(image, label == i + 1, region) for i, organ in enumerate(ORGANS)}
