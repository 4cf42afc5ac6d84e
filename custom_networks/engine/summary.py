"""An nnU-Net-style ``summary.json`` of an evaluation: per-class and overall means, with class names.

Modelled on the ``summary.json`` that nnU-Net writes next to its predictions after evaluation
(``nnunetv2.evaluation.evaluate_predictions.compute_metrics_on_folder``: ``"mean"`` per class,
``"foreground_mean"`` over the classes, ``"metric_per_case"``; Isensee et al., "nnU-Net: a self-configuring
method for deep learning-based biomedical image segmentation", Nature Methods 18, 2021). The per-case values
are already in ``MetricsSaver``'s ``<metric>_raw.csv`` files, so this keeps the summary part only, named by
the bundle's ``metadata.json`` ``channel_def`` instead of label ids::

    {"mean": {"dice": 0.83, "hd95_mm": 4.1},
     "per_class": {"femoral_cartilage": {"dice": 0.85, "hd95_mm": 3.9, "n_cases": 12,
                                         "dice_infinite": 0, "hd95_mm_infinite": 1}, ...},
     "n_cases": 12}

How the numbers are made, from ``engine.state.metric_details[<metric name>]`` (a (cases, classes) table that
MONAI's metric handlers keep with ``save_details=True``):

* A case **scores** a class when the first metric of ``metrics`` (the reference, Dice) is not NaN there.
  MONAI's Dice is NaN when the reference label has none of the class (``ignore_empty``), which is also what
  :class:`~custom_networks.transforms.partial_labels.MaskUncontouredd` produces for organs not contoured in a
  case. ``n_cases`` counts the scoring cases; the other metrics are read on those same cases only (so a
  false-positive HD95 of ``inf`` on a case without the organ, where Dice is NaN, is not counted). nnU-Net
  instead scores Dice 0 for a prediction with an empty reference; MONAI's rule is kept here so that the
  summary agrees with the CSVs and the logged ``val_mean_dice``.
* A class's metric is the mean of its **finite** values over the scoring cases. An infinite value (HD95 when
  the prediction misses the organ entirely) would make the mean ``inf`` and is not valid JSON, so it is left
  out of the mean and counted in ``"<metric>_infinite"`` instead: read ``hd95_mm`` together with
  ``hd95_mm_infinite`` (HD95 is ``inf`` for a missed organ only with
  :class:`~custom_networks.engine.metrics.HausdorffDistanceMM`: MONAI 1.6's own percentile HD gives NaN
  there). A NaN of another metric among the scoring cases is skipped too, with a warning. A class whose
  every scoring value is infinite, or that no case scored, gets ``null``.
* ``mean[<metric>]`` is the mean of the per-class values that are not ``null``, i.e. over the classes scored
  at least once (and, for distances, not missed in every case); ``null`` when there is none.
* Top-level ``n_cases`` is the number of cases evaluated.

The file is written atomically on ``Events.COMPLETED``, by rank ``save_rank`` only.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence

import torch
from ignite.engine import Engine, Events

from ..ops.flags import as_bool
from ..writers.base import write_atomically

__all__ = ["MetricsSummary", "summarize", "channel_names"]

DEFAULT_METRICS = {"dice": "val_mean_dice", "hd95_mm": "val_hd95_mm"}


def channel_names(channel_def: Mapping | Sequence[str]) -> list[str]:
    """The names of all output channels in channel order, from a ``channel_def`` mapping (``{"0": ...}``,
    as in ``metadata.json``) or a list that is already in channel order."""
    if isinstance(channel_def, str):
        raise TypeError(f"class names must be a channel_def mapping or a list of names, got the string {channel_def!r}")
    if isinstance(channel_def, Mapping):
        try:
            indexed = sorted((int(k), str(v)) for k, v in channel_def.items())
        except ValueError as e:
            raise ValueError(f"channel_def keys must be channel numbers, got {sorted(channel_def)}") from e
        if [i for i, _ in indexed] != list(range(len(indexed))):
            raise ValueError(f"channel_def must number its channels 0..N-1 without gaps, got {sorted(channel_def)}")
        return [name for _, name in indexed]
    return [str(n) for n in channel_def]


def _mean(values: torch.Tensor) -> float | None:
    return float(values.double().mean()) if values.numel() else None


def summarize(tables: Mapping[str, torch.Tensor], class_names: Sequence[str]) -> dict:
    """The summary dict of per-case tables ``{metric key: (cases, classes) tensor}`` (see the module docstring).

    The first table is the reference: its non-NaN entries decide which cases score each class.
    """
    if not tables:
        raise ValueError("summarize needs at least one metric table")
    tables = {k: torch.as_tensor(v).detach().cpu().double() for k, v in tables.items()}
    shapes = {k: tuple(v.shape) for k, v in tables.items()}
    reference_key = next(iter(tables))
    reference = tables[reference_key]
    if reference.ndim != 2 or any(s != tuple(reference.shape) for s in shapes.values()):
        raise ValueError(f"every metric table must be (cases, classes) of one shape, got {shapes}")
    if reference.shape[1] != len(class_names):
        raise ValueError(
            f"the metrics have {reference.shape[1]} class columns but {len(class_names)} class names were given "
            f"({list(class_names)}): the bundle's metadata.json channel_def (or the summary's class_names and "
            f"include_background) does not match the network's output channels"
        )
    per_class: dict[str, dict] = {}
    for c, name in enumerate(class_names):
        scored = ~torch.isnan(reference[:, c])
        entry: dict = {}
        for key, table in tables.items():
            values = table[scored, c]
            entry[key] = _mean(values[torch.isfinite(values)])
            unscored = int(torch.isnan(values).sum())
            if unscored:
                warnings.warn(
                    f"summary: {key} is NaN in {unscored} of the {values.numel()} cases where {reference_key} "
                    f"scored {name}; left out of its mean",
                    stacklevel=2,
                )
        entry["n_cases"] = int(scored.sum())
        for key, table in tables.items():
            entry[f"{key}_infinite"] = int(torch.isinf(table[scored, c]).sum())
        per_class[name] = entry
    mean = {}
    for key in tables:
        values = [e[key] for e in per_class.values() if e[key] is not None]
        mean[key] = sum(values) / len(values) if values else None
    return {"mean": mean, "per_class": per_class, "n_cases": int(reference.shape[0])}


class MetricsSummary:
    """Ignite handler: write ``summary.json`` (nnU-Net style, see the module docstring) after an evaluation.

    Args:
        output_dir: folder of the file (the bundle's ``@output_dir``, next to ``MetricsSaver``'s CSVs).
        class_names: the bundle's ``channel_def`` (``@_meta_#network_data_format#outputs#pred#channel_def``) or a
            list of all output channel names in channel order.
        metrics: summary key -> metric name in ``engine.state.metric_details``; the first is the reference that
            decides which cases score a class. Default ``{"dice": "val_mean_dice", "hd95_mm": "val_hd95_mm"}``.
        include_background: as given to the metrics: False drops channel 0 from ``class_names`` so that the
            names match the metric columns (softmax bundles); True keeps it (single-channel sigmoid bundles,
            whose channel 0 is the structure).
        filename: the file name in ``output_dir``.
        save_rank: the rank that writes the file in multi-process evaluation (the details are gathered already).
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Mapping | Sequence[str],
        metrics: Mapping[str, str] | None = None,
        include_background: bool = False,
        filename: str = "summary.json",
        save_rank: int = 0,
    ) -> None:
        names = channel_names(class_names)
        self.class_names = names if as_bool(include_background, "include_background") else names[1:]
        self.metrics = dict(DEFAULT_METRICS if metrics is None else metrics)
        if not self.metrics:
            raise ValueError("MetricsSummary needs at least one metric")
        self.output_dir = output_dir
        self.filename = filename
        self.save_rank = save_rank

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        import ignite.distributed as idist

        if idist.get_rank() != self.save_rank:
            return
        details = getattr(engine.state, "metric_details", None) or {}
        missing = [name for name in self.metrics.values() if name not in details]
        if missing:
            raise KeyError(
                f"summary.json needs the per-case values of {missing}, but the evaluator kept only "
                f"{sorted(details)}: add these metrics to the evaluator (key_val_metric or additional_metrics, "
                f"save_details left on) or drop them from the summary's metrics"
            )
        summary = summarize({key: details[name] for key, name in self.metrics.items()}, self.class_names)
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, self.filename)

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2, allow_nan=False)
                f.write("\n")

        write_atomically(path, write)
