"""Input checks that turn bad scans into one clear error before they reach a network."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from nibabel.orientations import inv_ornt_aff, io_orientation
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..ops.flags import as_bool
from .volume_header import check_voxel_axes

#: a CT in Hounsfield units has air (about -1000 HU) around or inside the body
AIR_BELOW_HU = -200


def _source(img) -> str:
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj", "<in-memory array>"))


def _canonical_grid(img) -> tuple[tuple[int, ...], np.ndarray | None]:
    """Shape and affine of ``img`` reoriented to the closest canonical (RAS) axes, as ``Orientationd`` will:
    two files on one voxel grid, stored with other axis orders or flips (a DICOM series and its NIfTI label),
    compare equal."""
    shape = tuple(int(n) for n in img.shape)
    affine = getattr(img, "affine", None)
    if affine is None:
        return shape, None
    affine = np.asarray(torch.as_tensor(affine), dtype=np.float64)
    ornt = io_orientation(affine)
    return tuple(shape[i] for i in np.argsort(ornt[:, 0])), affine @ inv_ornt_aff(ornt, shape)


class ValidateVolumed(MapTransform):
    """Check loaded images (and labels) before preprocessing, naming the file and the fix on failure.

    Put it right after ``LoadImaged(image_only=True)`` (no channel dimension yet). Checks:
    every key has ``spatial_dims`` dimensions (a single 2D slice, or a 4D series, given to a volume
    pipeline is refused); the image's affine is finite and not singular; image voxels are finite; each other key lies on the image's voxel grid (same shape
    and affine within ``affine_tolerance`` mm once both are in canonical axis order, as ``Orientationd`` puts them); label values lie in ``range(num_classes)`` when ``num_classes``
    is given (apply ``MapLabelValued`` first for datasets with other label ids); with ``require_foreground``
    a label has at least one foreground voxel (the bundles' training crops are drawn around foreground);
    with ``hounsfield`` the image looks like CT in Hounsfield units (some voxel below -200 HU: air; an MR,
    or a CT exported without its rescale tags, has none).

    Args:
        keys: keys to check; the first is the image.
        spatial_dims: expected number of dimensions of every loaded array (3 for a volume).
        num_classes: number of label classes, checked on every key but the first.
        require_foreground: refuse labels without foreground. Default False.
        hounsfield: refuse images without air-like values. Default False (CT bundles: ``@check_hu``).
        affine_tolerance: largest difference of image and label affines, in mm. Default 1e-3.
        allow_missing_keys: skip keys that are absent (inference has no label).
    """

    def __init__(
        self,
        keys: KeysCollection,
        spatial_dims: int = 3,
        num_classes: int | None = None,
        require_foreground: bool | str = False,
        hounsfield: bool | str = False,
        affine_tolerance: float = 1e-3,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spatial_dims = spatial_dims
        self.num_classes = num_classes
        self.require_foreground = as_bool(require_foreground, "require_foreground")
        self.hounsfield = as_bool(hounsfield, "check_hu")
        self.affine_tolerance = affine_tolerance

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        present = [k for k in self.key_iterator(d)]
        if not present:
            return d
        image_key, *other_keys = present
        image = d[image_key]
        self._check_dims(image, image_key)
        self._check_geometry(image)
        values = torch.as_tensor(image)
        if values.is_floating_point() and not bool(torch.isfinite(values).all()):  # integers are always finite
            raise ValueError(
                f"{_source(image)} contains NaN or infinite voxels. Fix or re-export the scan "
                "(for example replace them with the background value) before segmenting it."
            )
        if self.hounsfield:
            low = float(torch.as_tensor(image).min())
            if low > AIR_BELOW_HU:
                raise ValueError(
                    f"{_source(image)} does not look like a CT in Hounsfield units: no voxel is below "
                    f"{AIR_BELOW_HU} HU (lowest {low:g}, highest {float(torch.as_tensor(image).max()):g}), so there "
                    "is no air. Is it an MR, or a CT exported without RescaleSlope/RescaleIntercept? This bundle "
                    "needs CT in HU; if the scan is right (a field of view inside the body), pass --check_hu false."
                )
        image_shape, image_affine = _canonical_grid(image)
        for key in other_keys:
            other = d[key]
            self._check_dims(other, key)
            grid = "a {key} must be drawn on the image's own voxel grid. Resample it onto the image (nearest " \
                   "neighbour) or fix the datalist pairing."
            other_shape, other_affine = _canonical_grid(other)
            if other_shape != image_shape:
                raise ValueError(
                    f"The {key} {_source(other)} has shape {tuple(other.shape)} but the image {_source(image)} "
                    f"has shape {tuple(image.shape)}: {grid.format(key=key)}"
                )
            if image_affine is not None and other_affine is not None:
                gap = float(np.abs(image_affine - other_affine).max())
                if gap > self.affine_tolerance:
                    raise ValueError(
                        f"The {key} {_source(other)} has the image's shape but another position, spacing or "
                        f"orientation than {_source(image)} (affines differ by up to {gap:g} mm): "
                        f"{grid.format(key=key)}"
                    )
            if self.require_foreground and not bool((torch.as_tensor(other) > 0).any()):
                raise ValueError(
                    f"The {key} {_source(other)} has no foreground voxels: the training crops are drawn around "
                    "foreground and its Dice is undefined. Remove the case from the datalist or fix the file."
                )
            if self.num_classes is not None:
                values = np.unique(np.asarray(other))
                bad = values[(values < 0) | (values >= self.num_classes) | (values != np.round(values))]
                if bad.size:
                    raise ValueError(
                        f"The {key} {_source(other)} holds values {bad.tolist()[:10]} outside the classes "
                        f"0..{self.num_classes - 1}. Map your dataset's label ids with the bundle's "
                        "`label_mapping` setting (MapLabelValued) or fix the file."
                    )
        return d

    def _check_geometry(self, img) -> None:
        """Refuse an affine that is not finite or is singular (what a reader made of a damaged header: NaN
        positions, a zero-length or repeated axis)."""
        affine = getattr(img, "affine", None)
        if affine is not None:
            affine = np.asarray(torch.as_tensor(affine), dtype=np.float64)
            k = min(affine.shape[0] - 1, len(img.shape))
            check_voxel_axes(_source(img), affine[:k, :k], affine[:k, -1], "voxel-to-world affine")

    def _check_dims(self, img, key: str) -> None:
        shape = tuple(img.shape)
        if len(shape) == self.spatial_dims:
            return
        if len(shape) < self.spatial_dims:
            hint = f"this pipeline takes whole {self.spatial_dims}D volumes; give it the full series, not one slice"
        else:
            hint = (
                f"this pipeline takes one {self.spatial_dims}D volume per file; split multi-channel, multi-echo or "
                "time series into separate volumes"
            )
        raise ValueError(f"The {key} {_source(img)} has {len(shape)} dimensions {shape}: {hint}.")

