"""Partially contoured cases: an uncontoured organ is neither trained as background nor scored."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from monai.losses import DiceFocalLoss, FocalLoss
from monai.metrics import DiceMetric, HausdorffDistanceMetric
from monai.transforms import AsDiscreted

from custom_networks.transforms.partial_labels import ContouredOrgansd, MarginalLoss, MaskUncontouredd, with_organ

ORGANS = ["a", "b", "c"]


def _case(labels: torch.Tensor, contoured=None) -> dict:
    d = {"label": MetaTensor(labels[None].float())}
    if contoured is not None:
        d["contoured"] = contoured
    return ContouredOrgansd("label", ORGANS)(d)


def _labels() -> torch.Tensor:
    lab = torch.zeros(8, 8, 4, dtype=torch.long)
    lab[1:3, 1:3] = 1
    lab[5:7, 5:7] = 2
    return lab


def test_contoured_flags_travel_on_the_label_and_collate():
    full, partial = _case(_labels()), _case(_labels(), ["a", "b"])
    assert full["label"].meta["contoured"].tolist() == [1.0, 1.0, 1.0]
    assert partial["label"].meta["contoured"].tolist() == [1.0, 1.0, 0.0]
    batch = list_data_collate([partial, _case(_labels(), ["a"])])
    assert batch["label"].meta["contoured"].tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_an_organ_outside_the_setup_is_refused():
    with pytest.raises(ValueError, match=r"\['eye'\] are not in this bundle's organ list"):
        _case(_labels(), ["a", "eye"])


@pytest.mark.parametrize("inner", [FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0),
                                   DiceFocalLoss(to_onehot_y=True, softmax=True)])
def test_uncontoured_organ_contributes_nothing_to_the_loss(inner):
    torch.manual_seed(0)
    loss = MarginalLoss(inner)
    target = list_data_collate([_case(_labels(), ["a", "b"])])["label"]  # organ c not contoured
    logits = torch.randn(1, 4, 8, 8, 4)
    base = loss(logits, target)
    # moving probability between background and the uncontoured organ c changes nothing ...
    swapped = logits.clone()
    swapped[:, [0, 3]] = logits[:, [3, 0]]
    assert torch.allclose(loss(swapped, target), base, atol=1e-6)
    confident_c = logits.clone()
    confident_c[:, 3] = torch.logsumexp(logits[:, [0, 3]], dim=1)  # c takes (almost) all of background's share
    confident_c[:, 0] = -30.0
    assert torch.allclose(loss(confident_c, target), base, atol=1e-4)
    # ... and equals the plain loss of a 3-class network whose background is "background or c"
    merged = torch.cat([torch.logsumexp(logits[:, [0, 3]], dim=1, keepdim=True), logits[:, 1:3]], dim=1)
    assert torch.allclose(base, inner(merged, torch.as_tensor(target)), atol=1e-6)
    # while a fully contoured case does penalise predicting c on background
    full = list_data_collate([_case(_labels())])["label"]
    assert loss(confident_c, full) > loss(logits, full) + 0.1


def test_marginal_loss_is_the_plain_loss_on_fully_contoured_batches_and_gradients_skip_nothing_else():
    torch.manual_seed(1)
    inner = DiceFocalLoss(to_onehot_y=True, softmax=True)
    target = list_data_collate([_case(_labels()), _case(_labels(), ["a", "b"])])["label"]
    logits = torch.randn(2, 4, 8, 8, 4, requires_grad=True)
    assert torch.allclose(MarginalLoss(inner)(logits[:1], target[:1]), inner(logits[:1], torch.as_tensor(target[:1])))
    MarginalLoss(inner)(logits, target).backward()
    assert logits.grad[1, 1:3].abs().sum() > 0  # the contoured organs of the partial case still learn


def test_masked_evaluation_scores_an_organ_only_where_it_is_contoured():
    pred_labels = _labels().clone()
    pred_labels[0:2, 6:8] = 3  # the network finds organ c, which this case has not contoured
    discrete = AsDiscreted(keys=["pred", "label"], to_onehot=[4, 4])
    case = discrete({"pred": MetaTensor(pred_labels[None].float()), **_case(_labels(), ["a", "b"])})
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
