"""The marginal loss of Shi et al., "Marginal loss and exclusion loss for partially supervised multi-organ
segmentation" (Medical Image Analysis 70, 2021): a case's uncontoured organs count as "background or that organ".

Not in the thesis, whose data were fully contoured; the head-and-neck bundle trains stage 1 with it on OpenKBP,
where cases leave organs uncontoured (:mod:`custom_networks.transforms.partial_labels`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from custom_networks.transforms.partial_labels import contoured_of

__all__ = ["MarginalLoss"]


class MarginalLoss(nn.Module):
    """Wrap a softmax segmentation loss so that uncontoured organs count as "background or that organ".

    ``forward(input, target)``: ``input`` logits (B, 1 + n_organs, *S), ``target`` labels (B, 1, *S) whose
    metadata carries :class:`~custom_networks.transforms.partial_labels.ContouredOrgansd`'s (B, n_organs) flags.
    For each case, the logits of the background and of every uncontoured organ are merged by ``logsumexp`` (their
    softmax probabilities add up), the contoured organs keep their own channels, the labels are renumbered to
    match (an uncontoured organ in the middle moves the organs after it down by one), and ``loss`` (a MONAI loss
    taking logits, with ``to_onehot_y`` and softmax, e.g. ``DiceFocalLoss``) is applied to that case; the result
    is the mean over cases. A fully contoured case is passed through unchanged, so on fully labelled data this
    equals ``loss``. An uncontoured organ therefore contributes nothing: any split of probability between it and
    background gives the same loss (tested).
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        flags = contoured_of(target, input.shape[1] - 1)
        if flags is None or bool(flags.all()):
            return self.loss(input, target)
        target = torch.as_tensor(target)
        losses = []
        for b in range(input.shape[0]):
            kept = [0] + [i + 1 for i in range(flags.shape[1]) if flags[b, i]]
            merged = [0] + [i + 1 for i in range(flags.shape[1]) if not flags[b, i]]
            logits = torch.cat(
                [torch.logsumexp(input[b : b + 1, merged], dim=1, keepdim=True), input[b : b + 1, kept[1:]]], dim=1
            )
            renumber = torch.zeros(input.shape[1], dtype=torch.long, device=input.device)
            renumber[kept] = torch.arange(len(kept), device=input.device)
            labels = renumber[target[b : b + 1].long()].to(target.dtype)
            losses.append(self.loss(logits, labels))
        return torch.stack(losses).mean()
