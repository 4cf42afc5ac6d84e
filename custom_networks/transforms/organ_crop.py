"""Stage-2 training samples of paper 002's two-stage pipeline: organ crops and their class weights.

Liu Ting 2020, "Research and Application on CT Image of Head and Neck Based on 3D Unet", master's thesis,
Xi'an Jiaotong University, §3.2.2 (crops) and §3.2.3 (losses). Boxes are found and enlarged as at inference
(:mod:`custom_networks.ops.boxes`, :class:`~custom_networks.nets.two_stage.TwoStageUNet`).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import LoadImage, MapTransform, Randomizable, Resize, SpatialCrop

from ..ops.boxes import Box, box_slices, expand_box, jitter_box, organ_box
from ..ops.windows import box_centre, crop_window, window_start

__all__ = ["OrganCropd", "OrganWindowd", "foreground_weight"]


class OrganCropd(Randomizable, MapTransform):
    """Stage-2 training sample of one organ: the ground-truth box, enlarged and jittered, resized to the organ's size.

    Thesis §3.2.2: "from the original image and ground-truth label, extract each organ's bbox, add padding,
    then resize to the organ's fixed size (Table 3-2)". Boxes come from the largest connected component of
    ``label == organ_label`` (:func:`~custom_networks.ops.boxes.organ_box`), enlarged like at inference
    (:func:`~custom_networks.ops.boxes.expand_box`) and moved by ``+-jitter`` voxels per face
    (:func:`~custom_networks.ops.boxes.jitter_box`; 0 for validation). The image is resized trilinearly, the
    label by nearest neighbour and made binary (1 = this organ, 0 = everything else, other organs included).
    A case without the organ gives a centred crop of ``spatial_size`` with an empty label and a warning. With
    ``num_samples`` > 1 a list of that many crops (each with its own jitter) is returned, which MONAI's
    collation flattens into the batch.

    Shapes: ``image`` (C, X, Y, Z) and ``label`` (1, X, Y, Z) -> both (C, *spatial_size) (a list of
    ``num_samples`` such dicts when ``num_samples`` > 1).
    """

    def __init__(
        self,
        keys: KeysCollection,
        organ_label: int,
        spatial_size: Sequence[int],
        label_key: str = "label",
        min_margin: Sequence[int] = (8, 8, 3),
        fraction: float = 0.15,
        jitter: int | Sequence[int] = 4,
        num_samples: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.num_samples = int(num_samples)
        self.organ_label = int(organ_label)
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.label_key = label_key
        self.min_margin = tuple(min_margin)
        self.fraction = fraction
        # one number, or one per axis (OrganWindowd; the resized boxes move every face by the largest)
        self.jitter_per_axis = tuple(int(j) for j in jitter) if isinstance(jitter, Sequence) else (int(jitter),)
        self.jitter = max(self.jitter_per_axis)

    def randomize(self, data=None) -> None:  # boxes are drawn in __call__, where the volume shape is known
        pass

    def box_for(self, label: torch.Tensor, name: str = "") -> Box:
        """The (jittered) crop box of this organ in a (1, X, Y, Z) label."""
        shape = tuple(label.shape[1:])
        box = organ_box(torch.as_tensor(label[0]) == self.organ_label)
        if box is None:
            warnings.warn(f"{name or 'a training case'} has no voxels of label {self.organ_label}; using a centred crop.")
            return tuple(
                (max(0, (s - c) // 2), min(s, (s - c) // 2 + c)) for s, c in zip(shape, self.spatial_size)
            )
        box = expand_box(box, shape, self.min_margin, self.fraction)
        return jitter_box(box, shape, self.jitter, self.R) if self.jitter else box

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor] | list[dict]:
        samples = [self.sample(data) for _ in range(self.num_samples)]
        return samples if self.num_samples > 1 else samples[0]

    def sample(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """One crop of ``data`` (its own jitter)."""
        d = dict(data)
        label = d[self.label_key]
        box = self.box_for(label, str(getattr(label, "meta", {}).get("filename_or_obj", "")))
        crop = SpatialCrop(roi_start=[lo for lo, _ in box], roi_end=[hi for _, hi in box])
        for key in self.key_iterator(d):
            is_label = key == self.label_key
            out = Resize(self.spatial_size, mode="nearest" if is_label else "trilinear")(crop(d[key]))
            d[key] = (out == self.organ_label).to(out.dtype) if is_label else out
        return d


class OrganWindowd(OrganCropd):
    """Stage-2 training samples of one organ: windows of a fixed size centred on the organ, never rescaled.

    The ``crop_mode="window"`` counterpart of :class:`OrganCropd` (see :mod:`custom_networks.ops.windows`): the
    centre of the organ's enlarged ground-truth box (as :class:`~custom_networks.nets.two_stage.TwoStageUNet`
    centres its windows on stage 1's enlarged box), moved by a uniform integer in ``[-jitter, jitter]`` voxels
    per axis (``jitter`` one number, or one per axis: stage 1's localisation error, largest across slices;
    0 for validation), and a window of ``spatial_size`` cut there,
    padded with the edge values (image) or 0 (label) where it leaves the volume. The label is made binary;
    ``num_samples`` as in :class:`OrganCropd`. A case without the organ gives a centred window with an empty
    label and a warning.

    Shapes: ``image`` (C, X, Y, Z) and ``label`` (1, X, Y, Z) -> both (C, *spatial_size).
    """

    def window_start_for(self, label: torch.Tensor, name: str = "") -> tuple[int, ...]:
        """The (jittered) first voxel of this organ's window in a (1, X, Y, Z) label."""
        shape = tuple(label.shape[1:])
        box = organ_box(torch.as_tensor(label[0]) == self.organ_label)
        if box is None:
            warnings.warn(f"{name or 'a training case'} has no voxels of label {self.organ_label}; using a centred window.")
            centre = tuple((s - 1) / 2 for s in shape)
        else:
            centre = box_centre(expand_box(box, shape, self.min_margin, self.fraction))
        jitter = self.jitter_per_axis if len(self.jitter_per_axis) == len(shape) else self.jitter_per_axis * len(shape)
        centre = [c + int(self.R.randint(-j, j + 1)) if j else c for c, j in zip(centre, jitter)]
        return window_start(centre, self.spatial_size)

    def sample(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        label = d[self.label_key]
        start = self.window_start_for(label, str(getattr(label, "meta", {}).get("filename_or_obj", "")))
        for key in self.key_iterator(d):
            is_label = key == self.label_key
            window = crop_window(d[key][None], start, self.spatial_size, pad="zeros" if is_label else "replicate")[0]
            d[key] = (window == self.organ_label).to(window.dtype) if is_label else window
        return d


def foreground_weight(
    data: Sequence[Mapping[str, str]],
    organ_label: int,
    min_margin: Sequence[int] = (8, 8, 3),
    fraction: float = 0.15,
    cap: float = 50.0,
) -> list[float]:
    """Class weights ``[1, w_fg]`` for a stage-2 net's cross entropy, ``w_fg = N_bg / N_fg`` over its training crops.

    Thesis §3.2.3: stage 2 uses "cross entropy with a proportion term"; the [D] reading here is a
    foreground weight equal to the background/foreground voxel ratio in that organ's enlarged ground-truth
    boxes, summed over the training labels (``data``: datalist entries with a ``"label"`` path), capped at
    ``cap``. Resizing a box to the crop size keeps the ratio, so it is measured on the labels' own grid.
    """
    loader = LoadImage(image_only=True, dtype=None)
    n_fg = n_all = 0
    for item in data:
        label = torch.as_tensor(loader(item["label"]))
        box = organ_box(label == organ_label)
        if box is None:
            continue
        region = label[box_slices(expand_box(box, label.shape, min_margin, fraction))]
        n_fg += int((region == organ_label).sum())
        n_all += region.numel()
    if n_fg == 0:
        raise ValueError(
            f"no training label contains organ label {organ_label}; check the datalist's labels or the organ list."
        )
    return [1.0, float(min((n_all - n_fg) / n_fg, cap))]
