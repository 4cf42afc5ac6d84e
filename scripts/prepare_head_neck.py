"""Render the head-and-neck OAR data set from the real expert masks of ``shared/data/hn_oar_masks``.

Usage (from the repository root)::

    python -m scripts.prepare_head_neck --masks ../shared/data/hn_oar_masks --out /tmp/hn
    python -m scripts.prepare_head_neck --masks ../shared/data/hn_oar_masks --out /tmp/hn_small \\
        --cases 0522c0017,0522c0659,TCGA-CV-7236 --voxel_size 4,4,5 --workers 2

Output layout: ``<out>/images/<case>.nii.gz`` (``int16`` HU, CT-like, rendered by
:mod:`scripts.phantoms.head_neck`), ``<out>/labels/<case>.nii.gz`` (``uint8``, 0 background,
1..8 ``custom_networks.labels.head_neck.ORGANS``), both in the masks' own world geometry (stored
RAS+), and ``<out>/datalist.json`` (Medical Segmentation Decathlon form, paths relative to it).

Split by case (:func:`split_cases`): cases sorted by ``crc32(name)``; the first ``n_val`` go to
validation, the next ``n_test`` to testing, the rest to training, with the sizes of
:func:`scripts.phantoms.io.split_counts` (4/4/16 for the 24 cases; at least one each from 3 cases). For
the full set this gives :data:`FULL_SPLIT`.

The output folder is handled like ``scripts.demo_data`` (refuses a foreign non-empty folder) and the
files are byte-identical across runs and worker counts for the same arguments.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from pathlib import Path

import fire

from custom_networks.labels.head_neck import CLASS_NAMES

from .phantoms.io import (
    OutputDirError,
    finalize_output_dir,
    map_in_workers,
    prepare_output_dir,
    save_nifti,
    split_counts,
)
from .phantoms.head_neck import BUNDLE, list_cases, render_case_dir

#: The split of the 24 shared cases (what :func:`split_cases` gives for them).
FULL_SPLIT = {
    "validation": ["0522c0017", "0522c0427", "TCGA-CV-7236", "TCGA-CV-7243"],
    "testing": ["0522c0226", "0522c0667", "0522c0773", "TCGA-CV-A6JY"],
}

DESCRIPTION = (
    "CT-like head-and-neck volumes RENDERED from the real expert organ masks of Nikolov et al. 2018 "
    "(arXiv:1809.04430, CC BY 4.0; TCIA scans). The organ geometry is real; the image intensities are "
    "synthetic (scripts/phantoms/head_neck), NOT real CT. Seed {seed}, voxel size {voxel_size}."
)


def split_cases(cases) -> dict[str, list[str]]:
    """Deterministic split by case: ``{"training": [...], "validation": [...], "testing": [...]}``."""
    order = sorted(sorted(set(cases)), key=lambda c: zlib.crc32(c.encode()))
    _, n_val, n_test = split_counts(len(order))
    return {
        "training": sorted(order[n_val + n_test :]),
        "validation": sorted(order[:n_val]),
        "testing": sorted(order[n_val : n_val + n_test]),
    }


def _parse_voxel_size(voxel_size):
    if voxel_size is None:
        return None
    if isinstance(voxel_size, str):
        voxel_size = [float(v) for v in voxel_size.replace("x", ",").split(",") if v.strip()]
    if isinstance(voxel_size, (int, float)):
        voxel_size = [float(voxel_size)] * 3
    voxel_size = tuple(float(v) for v in voxel_size)
    if len(voxel_size) == 1:
        voxel_size = voxel_size * 3
    if len(voxel_size) != 3 or min(voxel_size) <= 0:
        raise ValueError(f"voxel_size must be one or three positive numbers (mm), got {voxel_size}")
    return voxel_size


def _job(args) -> dict:
    case_dir, out, seed, voxel_size = args
    t0 = time.perf_counter()
    image, label, affine, summary = render_case_dir(case_dir, seed=seed, voxel_size=voxel_size)
    name = Path(case_dir).name
    rel = {"image": f"images/{name}.nii.gz", "label": f"labels/{name}.nii.gz"}
    save_nifti(image, affine, Path(out) / rel["image"])
    save_nifti(label, affine, Path(out) / rel["label"])
    return {**rel, "summary": summary, "seconds": time.perf_counter() - t0}


def prepare(masks, out, cases=None, voxel_size=None, seed: int = 0, workers: int = 2, log=print) -> Path:
    """Render the cases of ``masks`` into ``out``; returns the datalist path (see the module doc)."""
    masks = Path(masks)
    available = list_cases(masks)
    if cases is None:
        chosen = available
    else:
        chosen = [cases] if isinstance(cases, str) else [str(c) for c in cases]
        chosen = [c for part in chosen for c in part.split(",") if c]
        unknown = sorted(set(chosen) - set(available))
        if unknown:
            raise ValueError(f"unknown case(s) {unknown} in {masks}; available: {', '.join(available)}")
        chosen = sorted(set(chosen))
    voxel_size = _parse_voxel_size(voxel_size)
    seed, workers = int(seed), max(1, min(int(workers), 2, len(chosen)))
    out_path, previous = prepare_output_dir(out, BUNDLE)
    (out_path / "images").mkdir(exist_ok=True)
    (out_path / "labels").mkdir(exist_ok=True)
    jobs = [(str(masks / c), str(out_path), seed, voxel_size) for c in chosen]
    results = {}

    def report(i, st):
        results[Path(st["image"]).name[: -len(".nii.gz")]] = st
        if log is not None:
            log(f"[{i + 1}/{len(jobs)}] {st['image']}: {st['summary']} ({st['seconds']:.1f} s)")

    for i, st in enumerate(map_in_workers(_job, jobs, workers)):
        report(i, st)
    split = split_cases(chosen)
    entry = lambda c: {"image": results[c]["image"], "label": results[c]["label"]}  # noqa: E731
    datalist = {
        "name": "head_neck_oar_rendered",
        "description": DESCRIPTION.format(seed=seed, voxel_size="native" if voxel_size is None else list(voxel_size)),
        "reference": "Nikolov et al. 2018, arXiv:1809.04430 (masks, CC BY 4.0)",
        "licence": "CC BY 4.0 (masks); rendered intensities synthetic",
        "tensorImageSize": "3D",
        "modality": {"0": "CT (rendered, HU)"},
        "labels": {str(i): n for i, n in enumerate(CLASS_NAMES)},
        "numTraining": len(split["training"]),
        **{k: [entry(c) for c in v] for k, v in split.items()},
    }
    path = out_path / "datalist.json"
    path.write_text(json.dumps(datalist, indent=2) + "\n")
    written = [v for st in results.values() for v in (st["image"], st["label"])] + ["datalist.json"]
    settings = {"seed": seed, "cases": chosen, "voxel_size": None if voxel_size is None else list(voxel_size)}
    finalize_output_dir(out_path, BUNDLE, written, previous, settings)
    return path


def main(masks: str, out: str, cases=None, voxel_size=None, seed: int = 0, workers: int = 2) -> None:
    """CLI: render ``masks`` (an ``hn_oar_masks`` folder) into ``out``.

    Args:
        masks: folder of ``<case>/segmentations/<Organ>.nrrd``.
        out: output folder (created; a non-empty folder not written by this tool is refused).
        cases: subset of case names (comma separated), default all.
        voxel_size: ``sx,sy,sz`` mm (or one number) to render on a coarser grid; default native.
        seed: base seed (>= 0).
        workers: worker processes (1 or 2).
    """
    try:
        datalist = prepare(masks, out, cases, voxel_size, seed, workers, log=lambda s: print(s, flush=True))
    except (OutputDirError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print("note: images are rendered from real masks, not real CT")
    print(f"datalist: {datalist}")


if __name__ == "__main__":
    fire.Fire(main)
