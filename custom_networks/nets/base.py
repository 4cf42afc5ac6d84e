"""What every paper U-Net here shares: ablation presets by name and an input-size check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn as nn

from ..ops.flags import as_bool


class PaperUNet(nn.Module):
    """Base for the papers' U-Nets: ``ABLATIONS`` presets, ``from_ablation`` and ``check_input``.

    Subclasses fill ``ABLATIONS`` (row name -> constructor flags, the paper's ablation table) and call
    ``super().__init__(spatial_dims, features)``, which checks and stores both; inputs must be ``(B, C, *spatial)``
    with every spatial size divisible by ``2 ** (len(features) - 1)`` (one halving per pooling).
    ``encode`` expects ``self.encoder`` (one module per level) and ``self.pool``; ``decode`` expects
    ``self.decoder`` (one :class:`~custom_networks.blocks.UpStage`-like ``stage(x, skip)`` per level, coarse to fine).
    """

    ABLATIONS: ClassVar[dict[str, dict[str, bool]]] = {}
    # Sub-modules producing the class channels; channel pruning keeps their outputs (see custom_networks.compression).
    output_modules: ClassVar[tuple[str, ...]] = ("head",)

    def __init__(self, spatial_dims: int, features: Sequence[int]) -> None:
        super().__init__()
        features = tuple(int(f) for f in features)
        if len(features) < 2:
            raise ValueError(f"features needs at least 2 levels (one pooling), got {features}.")
        self.spatial_dims = spatial_dims
        self.features = features

    @property
    def size_multiple(self) -> int:
        """The multiple every spatial input size must be: 2 ** number of poolings."""
        return 2 ** (len(self.features) - 1)

    @classmethod
    def from_ablation(cls, name: str, **kwargs: Any) -> PaperUNet:
        """Build one ablation row by name (see ``ABLATIONS``); ``kwargs`` set the other arguments."""
        if name not in cls.ABLATIONS:
            raise ValueError(f"unknown ablation {name!r}; choose one of {sorted(cls.ABLATIONS)}.")
        return cls(**{**kwargs, **cls.ABLATIONS[name]})

    def encode(self, x: torch.Tensor, bottom: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run ``self.encoder`` levels with ``self.pool`` between them and ``bottom`` on the deepest one.

        Returns the bottom features and the skip features of the upper levels, top to bottom.
        """
        self.check_input(x)
        skips = []
        for stage in self.encoder[:-1]:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        return bottom(self.encoder[-1](x)), skips

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        """Run ``self.decoder`` levels on the bottom features ``x`` with the skips of :meth:`encode`.

        Returns every level's output, coarse to fine (the last one is at the input's resolution).
        """
        outputs = []
        for stage, skip in zip(self.decoder, skips[::-1]):
            x = stage(x, skip)
            outputs.append(x)
        return outputs

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the shape when ``x`` is not a valid input."""
        name = type(self).__name__
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"{name}(spatial_dims={self.spatial_dims}) expects a {self.spatial_dims + 2}D input "
                f"(B, C, *spatial), got shape {tuple(x.shape)}."
            )
        spatial = tuple(x.shape[2:])
        if any(s % self.size_multiple != 0 for s in spatial):
            raise ValueError(
                f"{name} input spatial size {spatial} is not divisible by {self.size_multiple} "
                f"(= 2 ** {len(self.features) - 1} poolings); pad or crop it to a multiple of {self.size_multiple}."
            )


def bool_flags(**flags: object) -> tuple[bool, ...]:
    """The given constructor flags as bools, in order; ``"false"`` from the command line is False (see ``as_bool``)."""
    return tuple(as_bool(value, name) for name, value in flags.items())

