"""Tracing a network: a small input it accepts, and eval mode for the length of a trace."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

__all__ = ["eval_mode", "example_input"]


def example_input(net: nn.Module, size: int | None = None) -> torch.Tensor:
    """A small input the network accepts, for tracing: ``(1, in_channels, *[size] * spatial_dims)``.

    ``size`` defaults to twice the network's ``size_multiple`` (the smallest size with 2x2 at the bottom).
    """
    first = next(m for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd))
    spatial_dims = getattr(net, "spatial_dims", first.weight.ndim - 2)
    size = size or 2 * getattr(net, "size_multiple", 16)
    param = next(net.parameters())
    return torch.zeros((1, first.in_channels, *[size] * spatial_dims), dtype=param.dtype, device=param.device)


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[None]:
    """Trace in eval mode (deep-supervision nets return one tensor); the caller's mode is restored after."""
    training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(training)
