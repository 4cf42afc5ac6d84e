"""Connected components of 3D masks."""

from __future__ import annotations

import numpy as np

__all__ = ["largest_component"]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected (face, edge or corner neighbours) component of a 3D mask, as ``bool``.

    Stray voxels and islands are dropped (e.g. case 0522c0629's Orbit-Lt); an empty mask stays empty.
    Ties between equally large components go to the one met first in C order. Work is done on the
    mask's bounding box, so large sparse volumes are cheap.
    """
    from scipy import ndimage as ndi

    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"expected a 3D mask, got shape {mask.shape}")
    out = np.zeros(mask.shape, dtype=bool)
    if not mask.any():
        return out
    box = tuple(
        slice(int(idx[0]), int(idx[-1]) + 1)
        for idx in (np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3))
    )
    labels, n = ndi.label(mask[box], structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        out[box] = labels > 0
        return out
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    out[box] = labels == int(np.argmax(sizes))
    return out
