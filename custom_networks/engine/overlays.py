"""PNG overlays of predictions and references, written by the evaluator for a quick visual check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# background transparent; then red, green, blue, yellow, magenta, cyan, orange, purple for classes 1..8
PALETTE = np.array(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [240, 50, 230], [70, 240, 240],
     [245, 130, 48], [145, 30, 180]],
    dtype=np.float32,
)


def _labels(t: torch.Tensor) -> np.ndarray:
    """(C, *spatial) one-hot or (1, *spatial) label map -> integer label map (*spatial)."""
    a = torch.as_tensor(t).detach().cpu()
    a = a.argmax(0) if a.shape[0] > 1 else a[0]
    return a.numpy().astype(np.int64)


def _gray(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [0.5, 99.5])
    return np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255.0


def blend(gray: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Colour ``labels`` over a 0..255 grey slice; returns an (H, W, 3) uint8 RGB array."""
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    colours = PALETTE[np.clip(labels, 0, len(PALETTE) - 1)]
    mask = (labels > 0)[..., None]
    return np.where(mask, (1 - alpha) * rgb + alpha * colours, rgb).clip(0, 255).astype(np.uint8)


class OverlaySaver:
    """Ignite handler: after each evaluation iteration, save PNGs of the slices with most reference label.

    Each PNG shows three panels side by side: image, reference overlay, prediction overlay (one colour per
    class, background transparent). ``slice_dim`` is the spatial axis that slices are taken along (0 is the
    first spatial axis of the channel-first arrays, the sagittal axis after ``Orientationd("RAS")``).
    Files: ``<output_dir>/<case>_slice<k>.png``.
    """

    def __init__(
        self,
        output_dir: str,
        num_slices: int = 3,
        slice_dim: int = 0,
        image_key: str = "image",
        pred_key: str = "pred",
        label_key: str = "label",
    ) -> None:
        self.output_dir = output_dir
        self.num_slices = num_slices
        self.slice_dim = slice_dim
        self.keys = (image_key, pred_key, label_key)

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        for item in engine.state.output:
            self.save_case(item)

    def save_case(self, item: dict) -> list[str]:
        """Write the overlays of one decollated case; returns the file paths."""
        image_key, pred_key, label_key = self.keys
        image = torch.as_tensor(item[image_key]).detach().cpu()[0].float().numpy()
        pred = _labels(item[pred_key])
        label = _labels(item[label_key]) if label_key in item else pred
        name = Path(str(getattr(item[image_key], "meta", {}).get("filename_or_obj", "case"))).name
        name = name.split(".")[0]
        other_axes = tuple(a for a in range(label.ndim) if a != self.slice_dim)
        area = (label > 0).sum(axis=other_axes) if other_axes else (label > 0).reshape(-1)
        chosen = sorted(np.argsort(-area, kind="stable")[: self.num_slices].tolist())
        paths = []
        for k in chosen:
            take = lambda a: np.take(a, k, axis=self.slice_dim).T[::-1]  # noqa: E731 (display: superior up)
            gray = _gray(take(image))
            panel = np.concatenate(
                [np.repeat(gray[..., None], 3, -1).astype(np.uint8), blend(gray, take(label)), blend(gray, take(pred))],
                axis=1,
            )
            path = os.path.join(self.output_dir, f"{name}_slice{k:03d}.png")
            Image.fromarray(panel).save(path)
            paths.append(path)
        return paths
