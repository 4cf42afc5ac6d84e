"""The lower-limb data set writer behind ``python -m scripts.demo_data lower_limb_afu_unet``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import volume_seed_sequence, write_dataset
from .anatomy import BUNDLE, LABELS, NUM_SLICES, SPACING, lower_limb_affine
from .render import render_lower_limb_volume

__all__ = ["volume_seed", "write_lower_limb_dataset"]


def volume_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of volume ``index`` of a data set with base ``seed`` (independent of the volume count)."""
    return volume_seed_sequence(seed, index, 5)


def _render_indexed(seed: int, index: int, num_slices: int) -> tuple:
    """Volume ``index`` of the data set with base ``seed`` and its log summary (for :func:`write_dataset`)."""
    img, lab = render_lower_limb_volume(np.random.default_rng(volume_seed(seed, index)), num_slices)
    summary = (
        f"bone {100 * float(lab.mean()):.1f} % of voxels, "
        f"{int(lab.any(axis=(0, 1)).sum())}/{num_slices} axial slices with bone"
    )
    return img, lab, lower_limb_affine(num_slices), summary


def write_lower_limb_dataset(
    out_dir: str | os.PathLike,
    num_volumes: int = 8,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    workers: int | None = 1,
    num_slices: int = NUM_SLICES,
) -> Path:
    """Render ``num_volumes`` synthetic lower-limb CT volumes and write them as an MSD-style data set.

    Layout: ``imagesTr/lowerlimb_000.nii.gz`` (``int16`` HU), ``labelsTr/lowerlimb_000.nii.gz``
    (``uint8``, 0 background, 1 bone) and ``datalist.json`` (split by volume: 6/1/1 for 8 volumes,
    see :func:`scripts.phantoms.io.split_counts`; paths relative to the datalist). Volume ``i``
    depends only on ``(seed, i, num_slices)``, and the files are byte-identical across runs and
    worker counts. A non-empty ``out_dir`` that was not written by this tool is refused
    (:class:`scripts.phantoms.io.OutputDirError`); nothing is deleted except stale files that this tool
    itself recorded in an earlier run.

    Args:
        out_dir: output directory (created if missing).
        num_volumes: number of volumes (>= 1).
        seed: base seed (>= 0).
        log: progress callback (one line per volume); ``None`` for silence.
        workers: worker processes (1 renders in this process; ``None``: up to 4, at most the CPU
            count and ``num_volumes``).
        num_slices: axial slices per volume (>= 1; 40 covers thigh, knee and leg).

    Returns:
        Path of ``datalist.json``.
    """
    return write_dataset(
        out_dir, BUNDLE, _render_indexed, num_volumes, seed, log, workers,
        file_prefix="lowerlimb",
        name="synthetic_lower_limb_ct",
        description=(
            "synthetic bilateral lower-limb CT volumes (distal thigh, knee, proximal leg; int16 HU) "
            "rendered by scripts/demo_data.py for the lower_limb_afu_unet bundle (not real data; "
            "stand-in for the paper's lower-limb CT). Bone labels (femur, patella, tibia, fibula as "
            "one class) from the un-blurred phantom. seed={seed}, {num_volumes} volumes of "
            "{num_slices} slices, split {split} by volume."
        ),
        labels=LABELS,
        modality="CT (synthetic)",
        spacing=SPACING,
        orientation="LPS (axis 0 R->L, axis 1 A->P, axis 2 I->S; array[:, :, k] is axial slice k)",
        options={"num_slices": num_slices},
    )
