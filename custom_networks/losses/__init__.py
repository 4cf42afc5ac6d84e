"""Losses MONAI lacks, as in ``monai.losses``: the marginal loss for partially labelled cases
(:mod:`.marginal`).

``losses`` imports torch, MONAI and :mod:`custom_networks.transforms` (the contoured-organ flags a label carries),
never the networks, the engine or the writers.
"""

from .marginal import MarginalLoss

__all__ = ["MarginalLoss"]
