"""A figure of one ``medseg-segment`` case: the prediction against the reference contours, organ by organ.

Usage (from the repository root; needs the ``plots`` extra)::

    medseg-segment CT.nii.gz -o OUT --reference LABELS
    python -m scripts.prediction_overlay OUT/<case> --out docs/img/<case>_overlay.png \\
        [--views axial:parotid_right,axial:larynx,sagittal:spinal_cord]

Reads the case folder that ``medseg-segment --reference`` writes (``statistics.json`` names the scan, the
reference label map, each organ's label and its Dice; ``segmentation.nii.gz`` is the prediction) and draws one
panel per view: the scan in a soft-tissue window, each predicted organ filled in its colour, each reference
contour as a line of the same colour. A view ``axial:<organ>`` (or ``coronal`` / ``sagittal``) is the slice
through that organ's reference centre of mass. Scan and label maps are brought to RAS, so panels are in the
radiological layout (patient's right on the image's left) with the voxels' physical aspect ratio.
"""

from __future__ import annotations

import json
from pathlib import Path

import fire
import numpy as np

from custom_networks.apps.preview import CT_WINDOW, PALETTE, _read_ras, _views

#: the views of the published figure: the parotid level, the larynx level, the midline
DEFAULT_VIEWS = "axial:parotid_right,axial:larynx,sagittal:spinal_cord"
AXES = {"sagittal": 0, "coronal": 1, "axial": 2}


def _colour(label: int) -> np.ndarray:
    """The preview's RGB colour (0..1) of label value ``label``."""
    return np.asarray(PALETTE[(label - 1) % len(PALETTE)]) / 255


def _slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The ``plane`` slice of a RAS ``(X, Y, Z)`` array at ``index``, in the preview's display orientation."""
    centre = [0, 0, 0]
    centre[AXES[plane]] = index
    return _views(volume, tuple(centre))[("axial", "coronal", "sagittal").index(plane)]


def _extent(shape: tuple[int, ...], spacing, axis: int) -> tuple[float, float, float, float]:
    """``imshow`` extent in mm of a slice from :func:`_slice` (columns, rows), so the aspect ratio is physical."""
    width_axis, height_axis = [a for a in range(3) if a != axis]
    return (0.0, shape[width_axis] * spacing[width_axis], 0.0, shape[height_axis] * spacing[height_axis])


def _crop_to_organs(volumes, spacing, margin_mm: float):
    """``volumes`` (scan, prediction, reference) cut to the box around every organ voxel of either label map,
    plus ``margin_mm`` on each side: the organs fill the panels instead of the planning CT's air."""
    _, prediction, reference = volumes
    inside = np.argwhere((prediction > 0) | (reference > 0))
    if not len(inside):
        return volumes
    margin = np.ceil(margin_mm / np.asarray(spacing, float)).astype(int)
    lo = np.maximum(inside.min(axis=0) - margin, 0)
    hi = np.minimum(inside.max(axis=0) + margin + 1, prediction.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    return tuple(v[box] for v in volumes)


def draw(case_dir: str | Path, out: str | Path, views: str = DEFAULT_VIEWS, title: str | None = None,
         margin_mm: float = 25.0, dpi: int = 110) -> Path:
    """Write the figure of the case folder ``case_dir`` to ``out`` (PNG) and return its path; the panels show the
    box around all organs plus ``margin_mm``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    case_dir = Path(case_dir)
    stats = json.loads((case_dir / "statistics.json").read_text())
    if not stats.get("reference"):
        raise ValueError(f"{case_dir / 'statistics.json'} names no reference: run medseg-segment with --reference")
    image, spacing = _read_ras(stats["input"], "CT")
    prediction, _ = _read_ras(str(case_dir / stats["label_map"]))
    reference, _ = _read_ras(stats["reference"])
    prediction, reference = np.rint(prediction).astype(int), np.rint(reference).astype(int)
    image, prediction, reference = _crop_to_organs((image, prediction, reference), spacing, margin_mm)
    organs = stats["organs"]
    panels = []
    for view in (v.strip() for v in str(views).split(",") if v.strip()):
        plane, _, organ = view.partition(":")
        if plane not in AXES or organ not in organs:
            raise ValueError(f"view {view!r}: give <axial|coronal|sagittal>:<organ>, organs: {', '.join(organs)}")
        voxels = np.argwhere(reference == organs[organ]["label"])
        if not len(voxels):
            raise ValueError(f"view {view!r}: {organ} is not in the reference {stats['reference']}")
        axis = AXES[plane]
        panels.append((plane, organ, axis, int(round(voxels[:, axis].mean()))))

    lo, hi = CT_WINDOW
    fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels), 4.4), facecolor="black")
    for ax, (plane, organ, axis, index) in zip(np.atleast_1d(axes), panels):
        extent = _extent(image.shape, spacing, axis)
        ax.imshow(_slice(image, plane, index), cmap="gray", vmin=lo, vmax=hi, extent=extent, origin="upper",
                  interpolation="bilinear")
        pred, ref = _slice(prediction, plane, index), _slice(reference, plane, index)
        # pixel centres in mm; imshow with origin "upper" puts row 0 at the top of the extent
        rows = extent[3] - (np.arange(pred.shape[0]) + 0.5) * extent[3] / pred.shape[0]
        cols = (np.arange(pred.shape[1]) + 0.5) * extent[1] / pred.shape[1]
        for organ_stats in organs.values():
            value, colour = organ_stats["label"], _colour(organ_stats["label"])
            if (pred == value).any():
                fill = np.zeros(pred.shape + (4,))
                fill[pred == value] = (*colour, 0.45)
                ax.imshow(fill, extent=extent, origin="upper", interpolation="nearest")
            if (ref == value).any():
                ax.contour(cols, rows, (ref == value).astype(float), levels=[0.5], colors=[colour], linewidths=1.4)
        ax.set_title(f"{plane}, through the {organ.replace('_', ' ')}", color="white", fontsize=8)
        ax.axis("off")
    handles = [Patch(facecolor=_colour(s["label"]),
                     label=f"{name} " + (f"{s['dice']:.2f}" if s.get("scored") else "(not contoured)"))
               for name, s in organs.items()]
    handles += [Patch(facecolor="0.6", alpha=0.45, label="fill: prediction"),
                Line2D([], [], color="0.9", linewidth=1.4, label="line: clinical contour")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7, frameon=False, labelcolor="white",
               title="organ, Dice", title_fontsize=7)
    plt.setp(fig.legends[0].get_title(), color="white")
    fig.suptitle(title or f"{stats['case']}: {stats['bundle']} {stats['bundle_version']}", color="white", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.2, wspace=0.03)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, facecolor="black")
    plt.close(fig)
    return out


if __name__ == "__main__":
    fire.Fire(draw)
