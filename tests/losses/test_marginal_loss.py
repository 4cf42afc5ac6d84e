"""MarginalLoss: a case's uncontoured organs are "background or that organ", never plain background."""

from __future__ import annotations

import pytest
import torch
from monai.data import list_data_collate
from monai.losses import DiceFocalLoss, FocalLoss

from custom_networks.labels.head_neck import OPENKBP_ORGANS
from custom_networks.losses import MarginalLoss
from tests.transforms.test_partial_labels import contoured_case, three_organ_labels


@pytest.mark.parametrize("inner", [FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0),
                                   DiceFocalLoss(to_onehot_y=True, softmax=True)])
def test_uncontoured_organ_contributes_nothing_to_the_loss(inner):
    torch.manual_seed(0)
    loss = MarginalLoss(inner)
    target = list_data_collate([contoured_case(three_organ_labels(), ["a", "b"])])["label"]  # organ c not contoured
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
    full = list_data_collate([contoured_case(three_organ_labels())])["label"]
    assert loss(confident_c, full) > loss(logits, full) + 0.1


def test_marginal_loss_is_the_plain_loss_on_fully_contoured_batches_and_gradients_skip_nothing_else():
    torch.manual_seed(1)
    inner = DiceFocalLoss(to_onehot_y=True, softmax=True)
    target = list_data_collate([contoured_case(three_organ_labels()), contoured_case(three_organ_labels(), ["a", "b"])])
    target = target["label"]
    logits = torch.randn(2, 4, 8, 8, 4, requires_grad=True)
    assert torch.allclose(MarginalLoss(inner)(logits[:1], target[:1]), inner(logits[:1], torch.as_tensor(target[:1])))
    MarginalLoss(inner)(logits, target).backward()
    assert logits.grad[1, 1:3].abs().sum() > 0  # the contoured organs of the partial case still learn


def _seven_organ_case() -> tuple[torch.Tensor, torch.Tensor]:
    """OpenKBP's seven organs as slabs of a 14 x 6 x 4 volume (organ k in rows 2k-2, 2k-1); returns the labels a
    case without a mandible contour has (the mandible's rows are background there) and an "oracle" network's
    logits: confident and right on every organ, the mandible included (+-12, so that the sigmoid focal term of
    MONAI's DiceFocalLoss is near 0 too)."""
    truth = torch.zeros(14, 6, 4, dtype=torch.long)
    for k in range(1, 8):
        truth[2 * k - 2 : 2 * k, 1:5] = k
    logits = (torch.nn.functional.one_hot(truth, 8).permute(3, 0, 1, 2)[None].float() * 2 - 1) * 12.0
    mandible = OPENKBP_ORGANS.index("mandible") + 1
    unlabelled = torch.where(truth == mandible, 0, truth)
    return unlabelled, logits


def test_an_uncontoured_organ_in_the_middle_moves_the_later_organs_down():
    """OpenKBP leaves the mandible (organ 5 of 7) uncontoured: the merged network's channels 1-4 are organs 1-4,
    channels 5 and 6 organs 6 and 7, and the labels 6 and 7 become 5 and 6."""
    assert OPENKBP_ORGANS.index("mandible") + 1 == 5
    labels, logits = _seven_organ_case()
    contoured = [o for o in OPENKBP_ORGANS if o != "mandible"]
    target = list_data_collate([contoured_case(labels, contoured, OPENKBP_ORGANS)])["label"]
    inner = DiceFocalLoss(to_onehot_y=True, softmax=True)
    loss = MarginalLoss(inner)
    # a network right about every organ, mandible included, costs (almost) nothing ...
    assert float(loss(logits, target)) < 1e-3
    # ... exactly the plain loss of the merged 7-channel network against the renumbered labels
    merged = torch.cat([torch.logsumexp(logits[:, [0, 5]], dim=1, keepdim=True), logits[:, [1, 2, 3, 4, 6, 7]]], 1)
    renumbered = torch.tensor([0, 1, 2, 3, 4, 0, 5, 6])[labels][None, None].float()
    assert torch.allclose(loss(logits, target), inner(merged, renumbered), atol=1e-6)
    # and one that calls the larynx (7) esophagus (6) is penalised
    wrong = logits.clone()
    wrong[:, [6, 7]] = logits[:, [7, 6]]
    assert float(loss(wrong, target)) > 0.1
