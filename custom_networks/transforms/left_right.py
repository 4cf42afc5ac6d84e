"""Left-right mirroring of head-and-neck cases, with the paired organs' labels and contoured flags swapped.

A mirrored head is a plausible head in which the left parotid is the right one: flipping the image alone would
teach a network that right parotids lie on the left. Left and right organs are found by name (``<organ>_left`` /
``<organ>_right``, :func:`~custom_networks.ops.mirror.mirror_pairs`); midline organs (brainstem, spinal cord, mandible, esophagus, larynx)
keep their labels. Not in the thesis (Liu Ting 2020, §3.2.1 augments by translation, rotation and scale only):
this is the left-right augmentation nnU-Net uses, made label-aware.

* :class:`LeftRightFlipd` mirrors the cases flagged ``"mirror"`` in the datalist (:func:`with_mirrored` adds
  them: a flipped left-parotid case trains the right-parotid net);
* :class:`RandLeftRightFlipd` mirrors a random half of the samples (stage 1).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Flip, MapTransform, RandomizableTransform

from ..ops.mirror import mirror_pairs, mirrored_channels
from .partial_labels import CONTOURED, with_organ

__all__ = ["MIRROR", "LeftRightFlipd", "RandLeftRightFlipd", "with_mirrored"]

#: Datalist key that marks an entry to be mirrored (:func:`with_mirrored`, :class:`LeftRightFlipd`).
MIRROR = "mirror"


def with_mirrored(items: Sequence[Mapping], organ: str, organs: Sequence[str]) -> list[dict]:
    """The entries that contour ``organ``, then, where ``organ`` has a partner, those contouring the partner,
    marked ``"mirror": True``: mirrored, the partner is ``organ``. A midline organ gets :func:`with_organ` alone."""
    kept = with_organ(items, organ)
    partner = mirror_pairs(organs).get(organ)
    if partner is None:
        return kept
    # every entry carries the flag: entries with different keys do not collate into one batch
    return [{**i, MIRROR: False} for i in kept] + [{**i, MIRROR: True} for i in with_organ(items, partner)]


class LeftRightFlipd(MapTransform):
    """Mirror a case left-right and swap the labels and contoured flags of paired organs.

    ``keys`` (images and labels, (C, X, Y, Z) after ``Orientationd("RAS")``, so axis 0 runs left-right) are
    flipped on that axis (MONAI's ``Flip``, which keeps the affine right); in ``label_key`` every organ's label
    becomes its partner's (:func:`~custom_networks.ops.mirror.mirrored_channels`; ids are ``organs`` index + 1), and the label's contoured flags
    (:class:`~custom_networks.transforms.partial_labels.ContouredOrgansd`) are swapped the same way. With
    ``only_flagged`` (default) only entries with ``data["mirror"]`` true are mirrored (others pass unchanged).
    """

    def __init__(
        self,
        keys: KeysCollection,
        organs: Sequence[str],
        label_key: str = "label",
        only_flagged: bool = True,
        spatial_axis: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.organs = list(organs)
        self.label_key = label_key
        self.only_flagged = only_flagged
        self.flip = Flip(spatial_axis=spatial_axis)
        # label id -> mirrored id (background and midline organs map to themselves); flags in the same order
        self.id_map = torch.tensor(mirrored_channels(self.organs))
        self.flag_order = [int(i) - 1 for i in self.id_map[1:]]

    def mirror(self, d: dict) -> dict:
        for key in self.key_iterator(d):
            out = self.flip(d[key])
            if key == self.label_key:
                meta = dict(out.meta) if isinstance(out, MetaTensor) else {}
                out = self.id_map[torch.as_tensor(out).long()].to(out.dtype)
                out = MetaTensor(out, meta=meta) if meta else out
                if isinstance(out, MetaTensor) and CONTOURED in out.meta:
                    out.meta[CONTOURED] = torch.as_tensor(out.meta[CONTOURED])[self.flag_order]
            d[key] = out
        if isinstance(d.get(CONTOURED), torch.Tensor):
            d[CONTOURED] = d[CONTOURED][self.flag_order]
        return d

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.only_flagged and not d.get(MIRROR, False):
            return d
        return self.mirror(d)


class RandLeftRightFlipd(RandomizableTransform, LeftRightFlipd):
    """:class:`LeftRightFlipd` on a random ``prob`` of the samples (default 0.5), whatever their flags."""

    def __init__(self, keys: KeysCollection, organs: Sequence[str], label_key: str = "label", prob: float = 0.5,
                 spatial_axis: int = 0, allow_missing_keys: bool = False) -> None:
        RandomizableTransform.__init__(self, prob)
        LeftRightFlipd.__init__(self, keys, organs, label_key, False, spatial_axis, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        self.randomize(None)
        d = dict(data)
        return self.mirror(d) if self._do_transform else d
