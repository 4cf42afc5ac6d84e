"""Structured (filter) pruning of paper 002's Algorithm 4-1 (thesis §4.2.1, Table 4-2) through torch-pruning.

The thesis zeroes the lowest-L1 filters of every conv layer at a cumulative rate (5 %, 10 %, 15 %, 20 %),
retrains with the zeroed filters masked, and finally removes the all-zero filters and the feature maps
they feed. Here each step removes the filters at once (a smaller dense network; a removed filter is a
zeroed filter that never gets a gradient again, so the fine-tuning in between is the same), and the
U-Net coupling (encoder outputs feeding both the next level and a decoder concatenation, transposed-conv
outputs forming the first part of a concatenation, residual additions, depthwise convs) is resolved by
torch-pruning's dependency graph instead of hand-written index maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from ..extras import require
from ..ops.tracing import eval_mode, example_input

tp = require("torch_pruning", "Channel pruning")

__all__ = ["THESIS_RATES", "ChannelPruner", "FilterL1Importance", "unprunable_layers"]

# Algorithm 4-1 loops "until start >= end", which would stop before its own 25 % row; [D]: the explicit
# cumulative schedule; 20 % is the thesis's chosen rate (§4.3.1).
THESIS_RATES = (0.05, 0.10, 0.15, 0.20)

_OUT_CHANNEL_FNS = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)


class FilterL1Importance(tp.importance.Importance):
    """The thesis's criterion: a channel's importance is the L1 norm (sum of ``|w|``) of the filters producing it.

    Channels coupled by a concatenation or an addition are one torch-pruning group; their importance is the
    sum over every conv / linear layer that produces them. The weights that *consume* a channel (next
    layer's input slices) and norm parameters do not count, unlike torch-pruning's ``MagnitudeImportance``.
    Returns one score per channel of the group's root layer.
    """

    @torch.no_grad()
    def __call__(self, group: tp.dependency.Group) -> torch.Tensor:
        scores = None
        for item in group:
            dep, idxs = item.dep, item.idxs
            if dep.pruning_fn not in _OUT_CHANNEL_FNS:
                continue
            weight = dep.layer.weight.data
            if getattr(dep.layer, "transposed", False):  # (in, out // groups, *k): filters along dim 1
                weight = weight.transpose(0, 1)
            local = weight[idxs].abs().flatten(1).sum(1)
            if scores is None:
                scores = torch.zeros(len(group[0].idxs), dtype=local.dtype, device=local.device)
            scores.index_add_(0, torch.as_tensor(item.root_idxs, device=local.device), local)
        return scores


def unprunable_layers(net: nn.Module) -> list[nn.Module]:
    """Layers whose output channels must stay: the output layers and the channel splits of MSR blocks.

    Output layers are the modules named by the network's ``output_modules`` (``("head",)`` by default;
    the thesis keeps the output layer conv3d_15 at 23 KB at every rate, Table 4-2). An MSR block splits its
    reduced features into equal groups with a fixed width (paper 001, formula 2), so its ``reduce`` conv and
    the per-scale convs keep their channels.
    """
    from custom_networks.blocks.msr_block import MSRBlock

    layers: list[nn.Module] = []
    for name in getattr(net, "output_modules", ("head",)):
        module = net.get_submodule(name)
        layers.extend(m for m in module.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)))
    for block in net.modules():
        if isinstance(block, MSRBlock):
            layers.extend(m for m in block.reduce.modules() if isinstance(m, nn.modules.conv._ConvNd))
            layers.extend(m for m in block.convs.modules() if isinstance(m, nn.modules.conv._ConvNd))
    return layers


class ChannelPruner:
    """Iterative L1 filter pruning of one network, in place (paper 002, thesis §4.2.1, Algorithm 4-1).

    Each :meth:`step` removes, in every prunable layer (group of coupled layers), the channels with the
    smallest filter L1 norm until ``rates[i]`` of the *original* channels are gone (cumulative, as the
    thesis's Table 4-2), and returns that rate. The network's parameters are replaced: build the optimizer
    again after each step. Output layers and MSR splits are kept (:func:`unprunable_layers`).

    Args:
        net: any network of this repo (or its sub-network, e.g. ``TwoStageUNet.stage1``).
        rates: cumulative pruning rates [D: ``THESIS_RATES`` = 5, 10, 15, 20 %].
        example: input for tracing the network; defaults to :func:`example_input`.
        round_to: keep channel counts at multiples of this (rounded down), or ``None`` for the thesis's counts.
            Not in the thesis: CPU conv kernels (oneDNN) run channel counts that are multiples of 8 in blocked
            layouts, and a pruned top level of 9-19 channels is barely faster than 12-24 (measured on 2 cores:
            UNet3D 12-24-48-96 at 112x112x48, 1.22 s; pruned 20 % to 9-19-38-76, 1.14 s; with ``round_to=8``,
            8-16-32-72, 0.65 s).

    torch-pruning keeps ``int(n * (1 - rate))`` channels; the thesis removes ``floor(n * rate)``, so where
    ``n * rate`` is not whole this removes one channel more (24 at 20 %: 19 kept, thesis 20).
    """

    def __init__(
        self,
        net: nn.Module,
        rates: Sequence[float] = THESIS_RATES,
        example: torch.Tensor | None = None,
        round_to: int | None = None,
    ):
        rates = tuple(float(r) for r in rates)
        if not rates or any(not 0.0 < r < 1.0 for r in rates) or list(rates) != sorted(set(rates)):
            raise ValueError(f"rates must be increasing values in (0, 1), got {rates}.")
        self.net, self.rates, self.done = net, rates, 0
        with eval_mode(net):
            self._pruner = tp.pruner.MetaPruner(
                net,
                example if example is not None else example_input(net),
                importance=FilterL1Importance(),
                pruning_ratio=rates[-1],
                iterative_steps=len(rates),
                iterative_pruning_ratio_scheduler=lambda ratio, steps: [0.0, *rates],
                ignored_layers=unprunable_layers(net),
                round_to=int(round_to) if round_to else None,
            )

    def __len__(self) -> int:
        return len(self.rates)

    def step(self, on_group: Callable[[tp.dependency.Group], None] | None = None) -> float:
        """Prune to the next rate; return it. Raises when every rate is done.

        ``on_group``, if given, sees each group of coupled layers with the channels about to be removed.
        """
        if self.done >= len(self.rates):
            raise RuntimeError(f"all {len(self.rates)} pruning rates {self.rates} are done.")
        with eval_mode(self.net):
            for group in self._pruner.step(interactive=True):
                if on_group is not None:
                    on_group(group)
                group.prune()
        self.done += 1
        return self.rates[self.done - 1]
