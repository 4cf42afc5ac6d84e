"""Input checks that turn bad scans into one clear error before they reach a network."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform


def _source(img) -> str:
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj", "<in-memory array>"))


class ValidateVolumed(MapTransform):
    """Check loaded images (and labels) before preprocessing, naming the file and the fix on failure.

    Put it right after ``LoadImaged(image_only=True)`` (no channel dimension yet). Checks:
    every key has ``spatial_dims`` dimensions (a single 2D slice, or a 4D series, given to a volume
    pipeline is refused); image voxels are finite; each other key has the image's shape; label values
    lie in ``range(num_classes)`` when ``num_classes`` is given (apply ``MapLabelValued`` first for
    datasets with other label ids).

    Args:
        keys: keys to check; the first is the image.
        spatial_dims: expected number of dimensions of every loaded array (3 for a volume).
        num_classes: number of label classes, checked on every key but the first.
        allow_missing_keys: skip keys that are absent (inference has no label).
    """

    def __init__(
        self,
        keys: KeysCollection,
        spatial_dims: int = 3,
        num_classes: int | None = None,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spatial_dims = spatial_dims
        self.num_classes = num_classes

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        present = [k for k in self.key_iterator(d)]
        if not present:
            return d
        image_key, *other_keys = present
        image = d[image_key]
        self._check_dims(image, image_key)
        if not bool(torch.isfinite(torch.as_tensor(image)).all()):
            raise ValueError(
                f"{_source(image)} contains NaN or infinite voxels. Fix or re-export the scan "
                "(for example replace them with the background value) before segmenting it."
            )
        for key in other_keys:
            other = d[key]
            self._check_dims(other, key)
            if tuple(other.shape) != tuple(image.shape):
                raise ValueError(
                    f"The {key} {_source(other)} has shape {tuple(other.shape)} but the image {_source(image)} "
                    f"has shape {tuple(image.shape)}: a {key} must be drawn on the image's own voxel grid. "
                    "Resample it onto the image (nearest neighbour) or fix the datalist pairing."
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

