"""Multi-valued weight quantization of paper 002's Algorithm 4-3 (thesis §4.2.3, Tables 4-4 and 4-5).

Conv and transposed-conv weights of every layer are replaced by one of ``levels`` values in the forward
pass while the optimizer keeps updating the full-precision weights (straight-through estimator, formulas
4-2 and 4-3); biases, norm parameters and activations stay float32. Zeros from pruning stay zero.

Levels (Δ is the thesis's printed step, ``round(0.9 / levels, 2)``, which reproduces formulas 4-5 and 4-6):

- 2 (binary, 4-1): ``+1 if w >= 0 else -1``; 3 (ternary, 4-4): ``±1`` beyond ``±0.15``, else 0;
- odd ``k >= 5``: zero bin ``|w| <= Δ/2``, otherwise ``sign(w) (Δ/2 + jΔ)`` with
  ``j = floor((|w| - Δ/2) / Δ)`` (the bin's lower edge), saturating at ``(k - 2) Δ/2``.
  The thesis keeps **31 levels** (Δ = 0.03, ±0.435).

Every quantized weight is an integer multiple of one step (``Δ/2``, or 1 for binary/ternary), so it is
stored as int8 codes and that step (:func:`weight_codes`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from .threshold_pruning import conv_layers

__all__ = [
    "THESIS_LEVELS",
    "StraightThroughQuantizer",
    "attach_quantizers",
    "bake_quantizers",
    "level_step",
    "packed_bits",
    "quantize_weights",
    "weight_codes",
]

THESIS_LEVELS = 31
_SUPPORTED = (2, 3, 5, 7, 15, 31)


def _check_levels(levels: int) -> int:
    if int(levels) not in _SUPPORTED:
        raise ValueError(f"levels must be one of {_SUPPORTED} (the thesis's quantizers), got {levels}.")
    return int(levels)


def level_step(levels: int) -> float:
    """The thesis's step Δ for ``levels`` (0.18 for 5, 0.13 for 7, 0.06 for 15, 0.03 for 31; 0.3 ternary)."""
    levels = _check_levels(levels)
    return 0.3 if levels == 3 else round(0.9 / levels, 2)


def packed_bits(levels: int) -> int:
    """Bits per weight when packed: ``ceil(log2 levels)`` (5 for 31 levels; stored here as 8)."""
    return max(1, math.ceil(math.log2(_check_levels(levels))))


def quantize_weights(w: torch.Tensor, levels: int) -> torch.Tensor:
    """The thesis's k-level value of every weight (same shape and dtype as ``w``)."""
    levels = _check_levels(levels)
    if levels == 2:
        return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
    if levels == 3:
        return (torch.sign(w) * (w.abs() > 0.15)).to(w.dtype)
    delta = level_step(levels)
    half = delta / 2
    top = (levels - 3) // 2  # index j of the saturating level (k - 2) Δ/2
    # + 1e-6: a value already on a level (a bin's lower edge) maps to itself despite float rounding
    j = torch.floor((w.abs() - half) / delta + 1e-6).clamp(max=top)
    # sign * (2j + 1) * Δ/2 == sign * (Δ/2 + jΔ), computed as code * step so that int8 codes decode to the same floats
    return torch.where(w.abs() <= half, torch.zeros_like(w), torch.sign(w) * ((2 * j + 1) * half))


def weight_codes(w: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes and the float32 step with ``codes * step == w`` for weights already on the ``levels`` grid.

    Raises ValueError when ``w`` is not quantized to ``levels`` (then it cannot be stored exactly).
    """
    levels = _check_levels(levels)
    step = 1.0 if levels <= 3 else level_step(levels) / 2
    codes = torch.round(w.detach().float() / step)
    decoded = codes * step
    if not torch.allclose(decoded, w.detach().float(), atol=1e-6, rtol=0):
        raise ValueError(
            f"weights are not on the {levels}-level grid (max error {float((decoded - w).abs().max()):.3g}); "
            "quantize them first (attach_quantizers + bake_quantizers)."
        )
    return codes.to(torch.int8), torch.tensor(step, dtype=torch.float32)


class StraightThroughQuantizer(nn.Module):
    """Parametrization ``weight -> mask * q(weight)`` with the straight-through gradient (thesis formulas 4-2, 4-3).

    The forward value is the quantized weight; the gradient reaches the full-precision weight unchanged
    where ``mask`` is 1 and is zero where it is 0 (pruned weights stay pruned). ``mask`` is fixed when the
    quantizer is attached: the non-zero weights at that moment. Shapes: weight in, weight out.
    """

    def __init__(self, levels: int, mask: torch.Tensor):
        super().__init__()
        self.levels = _check_levels(levels)
        self.register_buffer("mask", mask.detach().to(torch.bool), persistent=False)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        kept = weight * self.mask
        return kept + (quantize_weights(kept, self.levels) * self.mask - kept).detach()


def attach_quantizers(net: nn.Module, levels: int = THESIS_LEVELS) -> None:
    """Quantize every conv weight of ``net`` in the forward pass from now on (fine-tune afterwards)."""
    for layer in conv_layers(net):
        parametrize.register_parametrization(layer, "weight", StraightThroughQuantizer(levels, layer.weight != 0))


def bake_quantizers(net: nn.Module) -> None:
    """Make the quantization permanent: each conv ``weight`` becomes its quantized value, a plain Parameter."""
    for layer in conv_layers(net):
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
