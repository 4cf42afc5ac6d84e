"""The knee data set writer behind ``python -m scripts.demo_data knee_eas_unet``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import volume_seed_sequence, write_dataset
from .anatomy import BUNDLE, LABELS, SHAPE, SPACING
from .render import render_knee_volume

__all__ = ["volume_seed", "write_knee_dataset"]


def volume_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of volume ``index`` of a data set with base ``seed`` (independent of the volume count)."""
    return volume_seed_sequence(seed, index, 3)


def _render_indexed(seed: int, index: int) -> tuple:
    """Volume ``index`` of the data set with base ``seed`` and its log summary (for :func:`write_dataset`)."""
    img, lab, aff = render_knee_volume(np.random.default_rng(volume_seed(seed, index)))
    summary = (
        f"FC {int((lab == 1).sum())} vox, TC {int((lab == 2).sum())} vox, "
        f"{int((lab > 0).any(axis=(0, 1)).sum())}/{SHAPE[2]} sagittal slices with cartilage"
    )
    return img, lab, aff, summary


def write_knee_dataset(
    out_dir: str | os.PathLike,
    num_volumes: int = 12,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
    workers: int | None = None,
) -> Path:
    """Render ``num_volumes`` synthetic knee volumes and write them as an MSD-style data set.

    Layout: ``imagesTr/knee_000.nii.gz`` (float32), ``labelsTr/knee_000.nii.gz`` (uint8) and
    ``datalist.json`` (split by volume: 8/2/2 for 12 volumes, see
    :func:`scripts.phantoms.io.split_counts`; paths relative to the datalist). Volume ``i`` depends only
    on ``(seed, i)``, and the files are byte-identical across runs and worker counts. A non-empty
    ``out_dir`` that was not written by this tool is refused
    (:class:`scripts.phantoms.io.OutputDirError`); nothing is deleted except stale files that this tool
    itself recorded in an earlier run.

    Args:
        out_dir: output directory (created if missing).
        num_volumes: number of volumes (>= 1).
        seed: base seed (>= 0).
        log: progress callback (one line per volume); ``None`` for silence.
        workers: worker processes (default: up to 4, at most the CPU count and ``num_volumes``;
            1 renders in this process).

    Returns:
        Path of ``datalist.json``.
    """
    return write_dataset(
        out_dir, BUNDLE, _render_indexed, num_volumes, seed, log, workers,
        file_prefix="knee",
        name="synthetic_knee_dess",
        description=(
            "synthetic DESS-like sagittal knee MR volumes rendered by scripts/demo_data.py for the "
            "knee_eas_unet bundle (not real data; stand-in for OAI-ZIB). Labels from the un-blurred "
            "phantom. seed={seed}, {num_volumes} volumes, split {split} by volume."
        ),
        labels=LABELS,
        modality="MR (synthetic DESS-like)",
        spacing=SPACING,
        orientation="PIR (axis 0 A->P, axis 1 S->I, axis 2 L->R; array[:, :, k] is sagittal slice k)",
    )
