"""Partially contoured cases: the contoured flags travel on the label, and an uncontoured organ is not scored
(its loss: tests/losses/test_marginal_loss.py)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from monai.metrics import DiceMetric, HausdorffDistanceMetric
from monai.transforms import AsDiscreted

from custom_networks.transforms.partial_labels import ContouredOrgansd, MaskUncontouredd, with_organ

ORGANS = ["a", "b", "c"]


def contoured_case(labels: torch.Tensor, contoured=None, organs=ORGANS) -> dict:
    """A case whose (H, W, D) ``labels`` carry the flags of ``contoured`` (None: every organ of ``organs``)."""
    d = {"label": MetaTensor(labels[None].float())}
    if contoured is not None:
        d["contoured"] = contoured
    return ContouredOrgansd("label", organs)(d)


def three_organ_labels() -> torch.Tensor:
    """8 x 8 x 4 labels with organs a (1) and b (2); c (3) absent."""
    lab = torch.zeros(8, 8, 4, dtype=torch.long)
    lab[1:3, 1:3] = 1
    lab[5:7, 5:7] = 2
    return lab


def test_contoured_flags_travel_on_the_label_and_collate():
    full, partial = contoured_case(three_organ_labels()), contoured_case(three_organ_labels(), ["a", "b"])
    assert full["label"].meta["contoured"].tolist() == [1.0, 1.0, 1.0]
    assert partial["label"].meta["contoured"].tolist() == [1.0, 1.0, 0.0]
    batch = list_data_collate([partial, contoured_case(three_organ_labels(), ["a"])])
    assert batch["label"].meta["contoured"].tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_an_organ_outside_the_setup_is_refused():
    with pytest.raises(ValueError, match=r"\['eye'\] are not in this bundle's organ list"):
        contoured_case(three_organ_labels(), ["a", "eye"])


def test_masked_evaluation_scores_an_organ_only_where_it_is_contoured():
    pred_labels = three_organ_labels().clone()
    pred_labels[0:2, 6:8] = 3  # the network finds organ c, which this case has not contoured
    discrete = AsDiscreted(keys=["pred", "label"], to_onehot=[4, 4])
    case = discrete({"pred": MetaTensor(pred_labels[None].float()), **contoured_case(three_organ_labels(), ["a", "b"])})
    masked = MaskUncontouredd(["pred", "label"])(case)
    assert masked["pred"][3].sum() == 0 and case["pred"][3].sum() > 0  # input untouched
    dice = DiceMetric(include_background=False)(masked["pred"][None], masked["label"][None])
    assert dice[0, :2].tolist() == [1.0, 1.0] and math.isnan(float(dice[0, 2]))
    hd = HausdorffDistanceMetric(include_background=False, percentile=95)(masked["pred"][None], masked["label"][None])
    assert math.isnan(float(hd[0, 2]))


def test_each_organ_net_trains_only_on_cases_that_contour_it():
    items = [{"image": "1", "contoured": ["a", "b"]}, {"image": "2", "contoured": ["a"]}, {"image": "3"}]
    assert [i["image"] for i in with_organ(items, "b")] == ["1", "3"]
    assert [i["image"] for i in with_organ(items, "a")] == ["1", "2", "3"]
    with pytest.raises(ValueError, match="none of the 1 cases contours c"):
        with_organ(items[1:2], "c")
