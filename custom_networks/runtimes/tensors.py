"""Tensors in and out of a CPU runtime: what every runtime network here converts its input and output with."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_numpy", "as_plain_tensor", "like_input"]


def as_plain_tensor(x: Any) -> torch.Tensor:
    """A plain ``torch.Tensor`` (MONAI ``MetaTensor`` -> ``.as_tensor()``; NumPy -> tensor)."""
    if hasattr(x, "as_tensor"):
        x = x.as_tensor()
    return torch.as_tensor(x)


def as_numpy(x: Any) -> np.ndarray:
    """Contiguous float32 NumPy array on the CPU of a tensor, MetaTensor or array."""
    return np.ascontiguousarray(as_plain_tensor(x).detach().to("cpu", torch.float32).numpy())


def like_input(out: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """A runtime's NumPy output as a tensor on ``x``'s device with ``x``'s float dtype (float32 for other inputs)."""
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
