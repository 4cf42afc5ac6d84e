"""Metric handlers the papers need and MONAI's handlers lack: distances in mm, per-case precision/recall."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.handlers import HausdorffDistance, IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric, HausdorffDistanceMetric
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


class MissedIsInfiniteHausdorffDistance(HausdorffDistanceMetric):
    """MONAI's ``HausdorffDistanceMetric``, whose percentile distance (HD95) is ``inf`` where the plain HD is.

    When exactly one of prediction and reference is empty for a class (an organ missed entirely, or predicted
    in a case without it), MONAI 1.6 gives the plain Hausdorff distance ``inf`` but its percentile version
    ``NaN`` (the percentile of all-infinite distances interpolates ``inf - inf``). NaN means "not scored", so
    a missed organ would silently drop out of the HD95 mean; this restores ``inf`` for such classes of the
    symmetric distance. Both empty stays NaN (nothing to compare), as in MONAI.
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:  # type: ignore
        hd = super()._compute_tensor(y_pred, y, **kwargs)
        if self.percentile is None or self.directed:
            return hd
        first = 0 if self.include_background else 1
        pred_any = torch.as_tensor(y_pred)[:, first:].flatten(2).bool().any(-1)
        ref_any = torch.as_tensor(y)[:, first:].flatten(2).bool().any(-1)
        one_empty = (pred_any != ref_any).to(hd.device)
        return torch.where(one_empty, torch.full_like(hd, float("inf")), hd)


class HausdorffDistanceMM(HausdorffDistance):
    """MONAI's ``HausdorffDistance`` handler, measured in mm using each case's voxel spacing.

    MONAI 1.6's ignite handler calls the metric without ``spacing``, so distances come out in voxels;
    paper 003 (Table 1) reports HD in mm on anisotropic MR. This reads the spacing from the decollated
    prediction MetaTensors (``pixdim``) and passes it on. ``percentile=95`` gives HD95, ``inf`` for an organ
    missed entirely like the plain HD (see :class:`MissedIsInfiniteHausdorffDistance`).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        m = self.metric_fn  # MONAI's metric, built from the arguments above: the same, with misses as inf
        self.metric_fn = MissedIsInfiniteHausdorffDistance(
            include_background=m.include_background, distance_metric=m.distance_metric, percentile=m.percentile,
            directed=m.directed, reduction=m.reduction,
        )

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
