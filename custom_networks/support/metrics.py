"""Metric handlers the papers need and MONAI's handlers lack: distances in mm, per-case precision/recall."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.handlers import HausdorffDistance, IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric
from monai.metrics.confusion_matrix import compute_confusion_matrix_metric, get_confusion_matrix
from monai.metrics.utils import do_metric_reduction


def _spacing(y_pred: Sequence[torch.Tensor]) -> list[list[float]] | None:
    """Voxel spacing of each decollated prediction, from its MetaTensor affine (None if it has none)."""
    spacing = []
    for p in y_pred:
        pixdim = getattr(p, "pixdim", None)
        if pixdim is None:
            return None
        spacing.append([float(s) for s in torch.as_tensor(pixdim).flatten()])
    return spacing


class HausdorffDistanceMM(HausdorffDistance):
    """MONAI's ``HausdorffDistance`` handler, measured in mm using each case's voxel spacing.

    MONAI 1.6's ignite handler calls the metric without ``spacing``, so distances come out in voxels;
    paper 003 (Table 1) reports HD in mm on anisotropic MR. This reads the spacing from the decollated
    prediction MetaTensors (``pixdim``) and passes it on. ``percentile=95`` gives HD95.
    """

    def update(self, output: Sequence[torch.Tensor]) -> None:
        if len(output) != 2:
            raise ValueError(f"output must have length 2, got {len(output)}.")
        y_pred, y = output
        self.metric_fn(y_pred, y, spacing=_spacing(y_pred))


class PerCaseConfusionScore(CumulativeIterationMetric):
    """A confusion-matrix score (precision, recall, ...) per case and class, shape (B, C).

    MONAI's ``ConfusionMatrixMetric`` keeps raw (B, C, 4) confusion matrices as its details, which
    ``MetricsSaver`` cannot write; papers 000 and 003 report precision and recall per class, so this
    keeps the per-case score instead. Cases where the score is undefined (no positives) are NaN and
    left out of the mean.
    """

    def __init__(self, metric_name: str, include_background: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        self.metric_name = metric_name
        self.include_background = include_background
        self.reduction = reduction

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        matrix = get_confusion_matrix(y_pred, y, include_background=self.include_background)
        return compute_confusion_matrix_metric(self.metric_name, matrix)

    def aggregate(self):  # type: ignore[override]
        value, _ = do_metric_reduction(self.get_buffer(), self.reduction)
        return value


class ConfusionScore(IgniteMetricHandler):
    """Ignite handler for :class:`PerCaseConfusionScore` (e.g. ``metric_name="precision"``)."""

    def __init__(
        self,
        metric_name: str,
        include_background: bool = False,
        reduction: str = "mean",
        output_transform=lambda x: x,
        save_details: bool = True,
    ) -> None:
        super().__init__(
            metric_fn=PerCaseConfusionScore(metric_name, include_background, reduction),
            output_transform=output_transform,
            save_details=save_details,
        )
