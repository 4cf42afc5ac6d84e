"""Partially labelled cases: organs that were not contoured are unknown, never background.

Clinical data sets contour only some organs per patient (OpenKBP: mandible in 134 of 203 patients, esophagus in
71). A datalist entry names its contoured organs (``"contoured": ["brainstem", ...]``; an entry without the
key is fully contoured). :class:`ContouredOrgansd` turns that list into a 0/1 vector on the label's metadata,
which then travels with the label through every transform, the collation and the decollation:

* :class:`custom_networks.losses.MarginalLoss` (training) merges the uncontoured organs' probabilities into
  background before the loss, so predicting an uncontoured organ where the label says "background" costs
  nothing;
* :class:`MaskUncontouredd` (evaluation) empties the prediction and label channels of uncontoured organs, so
  MONAI's Dice and HD95 give NaN there and the case is not scored for that organ;
* :func:`with_organ` keeps the cases that contour one organ (each stage-2 net trains only on those).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

__all__ = ["CONTOURED", "ContouredOrgansd", "MaskUncontouredd", "with_organ", "contoured_of"]

#: Datalist key and label-metadata key of the contoured-organ information.
CONTOURED = "contoured"


def with_organ(items: Sequence[Mapping], organ: str) -> list[dict]:
    """The datalist entries that contour ``organ`` (entries without a ``"contoured"`` list contour every organ).

    Raises ValueError when none does: an organ net cannot be trained or selected on nothing.
    """
    kept = [dict(i) for i in items if CONTOURED not in i or organ in i[CONTOURED]]
    if not kept:
        raise ValueError(
            f"none of the {len(items)} cases contours {organ} (their 'contoured' lists lack it): add cases that do, "
            "or leave this organ net untrained"
        )
    return kept


def contoured_of(label: torch.Tensor, num_organs: int) -> torch.Tensor | None:
    """The 0/1 contoured vector(s) :class:`ContouredOrgansd` put on ``label``'s metadata, shape (B, num_organs)
    for a batch or (num_organs,) for one case; None where the label carries none (fully contoured)."""
    meta = getattr(label, "meta", None) or {}
    if CONTOURED not in meta:
        return None
    flags = torch.as_tensor(meta[CONTOURED])
    if flags.shape[-1] != num_organs:
        raise ValueError(f"contoured flags have {flags.shape[-1]} organs, the network {num_organs}")
    return flags.bool()


class ContouredOrgansd(MapTransform):
    """Put the entry's contoured organs on the label's metadata as a 0/1 float vector (one entry per organ).

    Place it right after loading. ``data[contoured_key]`` is a list of organ names (absent: every organ);
    ``label.meta["contoured"]`` becomes a (len(organs),) tensor in ``organs`` order. A name outside ``organs``
    is refused, naming the case: it means the datalist and the bundle's organ setup disagree. The entry's own
    list is replaced by the same flags, so that cases with different organ counts collate into one batch.
    """

    def __init__(
        self, keys: KeysCollection, organs: Sequence[str], contoured_key: str = CONTOURED, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.organs = list(organs)
        self.contoured_key = contoured_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        names = d.get(self.contoured_key)
        for key in self.key_iterator(d):
            label = d[key] if isinstance(d[key], MetaTensor) else MetaTensor(d[key])
            if names is None:
                flags = torch.ones(len(self.organs))
            else:
                unknown = sorted(set(names) - set(self.organs))
                if unknown:
                    raise ValueError(
                        f"{label.meta.get('filename_or_obj', 'a datalist entry')}: contoured organs {unknown} are not "
                        f"in this bundle's organ list {self.organs}; convert the data for this organ setup"
                    )
                flags = torch.tensor([float(o in names) for o in self.organs])
            label.meta[CONTOURED] = flags
            d[key] = label
        if names is not None:
            d[self.contoured_key] = flags  # the names as flags: lists of different lengths do not collate
        return d


class MaskUncontouredd(MapTransform):
    """Empty the one-hot channels of uncontoured organs in ``keys`` (pred and label), one decollated case.

    Put it after ``AsDiscreted(to_onehot=...)`` in an evaluator's postprocessing: MONAI's ``DiceMetric`` and
    ``HausdorffDistanceMetric`` then give NaN for those organs (nothing to compare), and the bundle's summary
    counts only the cases where each organ was scored. The flags are read from ``label_key``'s metadata.
    """

    def __init__(self, keys: KeysCollection, label_key: str = "label", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_key = label_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        flags = contoured_of(d[self.label_key], d[self.label_key].shape[0] - 1)
        if flags is None or bool(flags.all()):
            return d
        uncontoured = [i + 1 for i in range(flags.shape[-1]) if not flags[i]]
        for key in self.key_iterator(d):
            d[key] = d[key].clone()
            d[key][uncontoured] = 0
        return d
