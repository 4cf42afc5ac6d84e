"""Writing a synthetic data set: output folders, NIfTI files and the datalist.

Every renderer's ``write_*_dataset`` goes through :func:`write_dataset`; the head-and-neck case renderer
(``scripts.prepare_head_neck``) and the OpenKBP converter use the folder and file helpers directly:

* :func:`save_nifti` writes a ``.nii.gz`` whose bytes depend only on the array and affine (the gzip
  header carries no timestamp and no file name), so the same seed always gives identical files;
* :func:`prepare_output_dir` refuses to write into a non-empty directory that this tool did not
  create (it never deletes anything it did not write itself);
* :func:`split_counts` and :func:`write_datalist` produce the Medical Segmentation Decathlon style
  ``datalist.json`` with paths relative to the datalist;
* :func:`write_dataset` renders volumes in worker processes (:func:`map_in_workers`), saves, logs,
  lists and records them in the marker; :func:`volume_seed_sequence` derives the seed of one volume.

None of the data produced here is real patient data; every datalist says so in its description.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import nibabel as nib
import numpy as np

from custom_networks.writers.base import write_atomically

__all__ = [
    "MARKER_NAME",
    "TOOL_NAME",
    "OutputDirError",
    "prepare_output_dir",
    "finalize_output_dir",
    "save_nifti",
    "split_counts",
    "write_datalist",
    "volume_seed_sequence",
    "write_dataset",
    "map_in_workers",
]

#: Name of the marker file that identifies a directory written by this tool.
MARKER_NAME = ".demo_data.json"
#: Value of the ``tool`` field in the marker file.
TOOL_NAME = "scripts.demo_data"


class OutputDirError(RuntimeError):
    """Raised when the output directory exists, is not empty and was not written by this tool."""


def _read_marker(out_dir: Path) -> dict | None:
    marker = out_dir / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("tool") != TOOL_NAME:
        return None
    return data


def prepare_output_dir(out_dir: str | os.PathLike, bundle: str) -> tuple[Path, list[str]]:
    """Make ``out_dir`` ready for a synthetic data set of ``bundle`` without touching foreign data.

    The directory may be missing (it is created), empty, or a previous output of this tool for the
    same bundle (recognised by its marker file :data:`MARKER_NAME`). Anything else raises
    :class:`OutputDirError` and leaves the directory untouched.

    Args:
        out_dir: target directory.
        bundle: bundle name recorded in the marker (a directory written for another bundle is
            refused too).

    Returns:
        ``(path, previous_files)``: the resolved directory and the relative paths of the files that
        the previous run recorded in its marker (empty for a new directory). Pass them to
        :func:`finalize_output_dir`, which removes those that the new run no longer writes.
    """
    path = Path(out_dir).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        marker = _read_marker(path)
        if marker is None:
            raise OutputDirError(
                f"{path} is not empty and was not created by {TOOL_NAME} (no {MARKER_NAME} marker); "
                "refusing to write into it. Choose a new or empty directory."
            )
        if marker.get("bundle") != bundle:
            raise OutputDirError(
                f"{path} holds synthetic data for bundle {marker.get('bundle')!r}, not {bundle!r}; "
                "refusing to mix data sets. Choose another directory."
            )
        previous = [str(f) for f in marker.get("files", []) if isinstance(f, str)]
        return path, previous
    path.mkdir(parents=True, exist_ok=True)
    # Write the marker first, so that an interrupted run can be resumed/overwritten by this tool.
    _write_marker(path, bundle, [], {})
    return path, []


def _write_marker(path: Path, bundle: str, files: Sequence[str], settings: dict) -> None:
    data = {"tool": TOOL_NAME, "bundle": bundle, "synthetic": True, "settings": settings, "files": list(files)}
    (path / MARKER_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def finalize_output_dir(
    path: Path, bundle: str, files: Iterable[str], previous_files: Iterable[str], settings: dict
) -> None:
    """Record the files written by this run in the marker and drop stale files of the previous run.

    Only files that the previous run of this tool recorded in its marker (and that this run did not
    write again) are removed, so user files placed in the directory are never deleted.

    Args:
        path: the directory returned by :func:`prepare_output_dir`.
        bundle: bundle name.
        files: relative paths written by this run.
        previous_files: relative paths returned by :func:`prepare_output_dir`.
        settings: generation settings stored in the marker (e.g. seed and number of volumes).
    """
    files = sorted(set(files))
    keep = set(files)
    root = path.resolve()
    for rel in previous_files:
        if rel in keep or rel == MARKER_NAME:
            continue
        target = (root / rel).resolve()
        if root not in target.parents or not target.is_file():
            continue  # never leave the output directory
        target.unlink()
    _write_marker(path, bundle, files, settings)


def save_nifti(
    array: np.ndarray, affine: np.ndarray, path: str | os.PathLike, description: str = "synthetic (not real data)"
) -> None:
    """Write ``array`` as NIfTI-1 with a byte-reproducible gzip stream.

    The header gets the affine as both qform and sform (code 1, scanner), spatial units mm, and the
    array's own dtype (no scaling). Files ending in ``.gz`` are compressed with ``mtime=0`` and no
    file name in the gzip header, so identical inputs give identical bytes.

    Args:
        array: image data (its dtype is kept).
        affine: 4x4 voxel-to-world (RAS+, mm) matrix.
        path: output path (``.nii`` or ``.nii.gz``).
        description: the header's ``descrip`` (at most 80 bytes); real data must not say "synthetic".
    """
    affine = np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(np.asarray(array), affine)
    hdr = img.header
    hdr.set_data_dtype(np.asarray(array).dtype)
    hdr.set_qform(affine, code=1)
    hdr.set_sform(affine, code=1)
    hdr.set_xyzt_units(xyz="mm")
    hdr["descrip"] = description.encode()[:80]
    raw = img.to_bytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=6, mtime=0)
    write_atomically(path, lambda tmp: Path(tmp).write_bytes(raw))


def split_counts(n: int) -> tuple[int, int, int]:
    """Deterministic train/validation/test sizes for ``n`` volumes (8/2/2 for 12).

    Validation and test each get ``round(n / 6)`` volumes (at least one each once ``n >= 3``; one
    validation volume for ``n == 2``); the rest is training.

    Args:
        n: number of volumes (>= 1).

    Returns:
        ``(n_train, n_val, n_test)``.
    """
    if n < 1:
        raise ValueError(f"need at least one volume, got {n}")
    if n == 1:
        return 1, 0, 0
    if n == 2:
        return 1, 1, 0
    n_val = max(1, int(round(n / 6)))
    n_test = max(1, int(round(n / 6)))
    return n - n_val - n_test, n_val, n_test


def write_datalist(
    path: str | os.PathLike,
    pairs: Sequence[dict],
    name: str,
    description: str,
    labels: dict,
    extra: dict | None = None,
) -> Path:
    """Write a Medical Segmentation Decathlon style ``datalist.json``.

    ``pairs`` (dicts with relative ``image``/``label`` paths, in volume order) are split by volume
    with :func:`split_counts`: the first ones are training, then validation, then testing.

    Args:
        path: datalist file to write.
        pairs: one dict per volume, paths relative to the datalist's folder.
        name: data set name.
        description: free text; should say the data are synthetic.
        labels: ``{"0": "background", ...}``.
        extra: additional top-level keys (e.g. ``tensorImageSize``, spacing).

    Returns:
        The datalist path.
    """
    n_train, n_val, _ = split_counts(len(pairs))
    data = {"name": name, "description": description}
    if extra:
        data.update(extra)
    data.update(
        {
            "labels": {str(k): v for k, v in labels.items()},
            "numTraining": n_train,
            "training": list(pairs[:n_train]),
            "validation": list(pairs[n_train : n_train + n_val]),
            "testing": list(pairs[n_train + n_val :]),
        }
    )
    path = Path(path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def volume_seed_sequence(seed: int, index: int, salt: int) -> np.random.SeedSequence:
    """Seed of volume ``index`` of a data set with base ``seed`` (independent of the volume count).

    ``salt`` tells the renderers apart, so that the same ``(seed, index)`` gives unrelated volumes
    in different data sets.
    """
    return np.random.SeedSequence([int(seed), int(index), int(salt)])


def map_in_workers(fn: Callable, jobs: Sequence, workers: int) -> Iterable:
    """``fn(job)`` for every job, in order: in this process when ``workers`` is 1, else in spawned processes.

    "spawn" is safe even when the caller has threads (torch, pytest plugins) running; ``fn`` must be a
    module-level function.
    """
    if workers == 1:
        yield from map(fn, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(fn, jobs)


def _render_and_save(job: tuple) -> dict:
    """Worker of :func:`write_dataset`: render volume ``index``, write its image and label files."""
    render, out, seed, index, file_prefix, options = job
    t0 = time.perf_counter()
    img, lab, aff, summary = render(seed, index, **options)
    name = f"{file_prefix}_{index:03d}.nii.gz"
    img_rel, lab_rel = f"imagesTr/{name}", f"labelsTr/{name}"
    save_nifti(img, aff, Path(out) / img_rel)
    save_nifti(lab, aff, Path(out) / lab_rel)
    return {"image": img_rel, "label": lab_rel, "summary": summary, "seconds": time.perf_counter() - t0}


def write_dataset(
    out_dir: str | os.PathLike,
    bundle: str,
    render: Callable[..., tuple],
    num_volumes: int,
    seed: int,
    log: Callable[[str], None] | None,
    workers: int | None,
    *,
    file_prefix: str,
    name: str,
    description: str,
    labels: dict,
    modality: str,
    spacing: Sequence[float],
    orientation: str,
    options: dict | None = None,
) -> Path:
    """Render ``num_volumes`` volumes with ``render`` and write them as an MSD-style data set.

    Layout: ``imagesTr/<file_prefix>_000.nii.gz``, ``labelsTr/<file_prefix>_000.nii.gz`` (written by
    :func:`save_nifti`, so byte-identical across runs and worker counts) and ``datalist.json``
    (split by volume with :func:`split_counts`; paths relative to the datalist). The output
    directory is handled by :func:`prepare_output_dir` / :func:`finalize_output_dir`, whose marker
    records ``seed``, ``num_volumes`` and ``options``.

    Args:
        out_dir: output directory (created if missing).
        bundle: bundle name (recorded in the marker).
        render: ``render(seed, index, **options) -> (image, label, affine, summary)``: volume
            ``index`` of the data set with base ``seed`` and a one-line summary for the log. It must
            be a module-level function (it is sent to spawned worker processes).
        num_volumes: number of volumes (>= 1).
        seed: base seed (>= 0).
        log: progress callback, one line per volume (``[i/n] <image>: <summary> (<seconds> s)``);
            ``None`` for silence.
        workers: worker processes (1 renders in this process; ``None``: up to 4, at most the CPU
            count; never more than ``num_volumes``).
        file_prefix: file name stem of the volumes.
        name: data set name in the datalist.
        description: datalist description, a :meth:`str.format` template with the fields ``seed``,
            ``num_volumes``, ``split`` (``"train/val/test"`` counts) and the keys of ``options``.
        labels: ``{value: name}`` of the label map.
        modality: the datalist's ``modality["0"]``.
        spacing: voxel spacing (mm), the datalist's ``spacing_mm``.
        orientation: the datalist's ``orientation`` note.
        options: further integer settings (each >= 1, e.g. ``num_slices``) passed to ``render`` as
            keyword arguments and recorded in the marker.

    Returns:
        Path of ``datalist.json``.
    """
    num_volumes, seed = int(num_volumes), int(seed)
    options = {k: int(v) for k, v in (options or {}).items()}
    if num_volumes < 1:
        raise ValueError(f"num_volumes must be >= 1, got {num_volumes}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    for key, value in options.items():
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")
    if workers is None:
        workers = min(4, os.cpu_count() or 1, num_volumes)
    workers = max(1, min(int(workers), num_volumes))
    out, previous = prepare_output_dir(out_dir, bundle)
    (out / "imagesTr").mkdir(exist_ok=True)
    (out / "labelsTr").mkdir(exist_ok=True)
    jobs = [(render, str(out), seed, i, file_prefix, options) for i in range(num_volumes)]
    pairs, written = [], []

    def report(i: int, st: dict) -> None:
        pairs.append({"image": st["image"], "label": st["label"]})
        written.extend([st["image"], st["label"]])
        if log is not None:
            log(f"[{i + 1}/{num_volumes}] {st['image']}: {st['summary']} ({st['seconds']:.1f} s)")

    for i, st in enumerate(map_in_workers(_render_and_save, jobs, workers)):
        report(i, st)
    split = "/".join(str(n) for n in split_counts(num_volumes))
    datalist = write_datalist(
        out / "datalist.json",
        pairs,
        name=name,
        description=description.format(seed=seed, num_volumes=num_volumes, split=split, **options),
        labels={str(k): v for k, v in labels.items()},
        extra={
            "tensorImageSize": "3D",
            "modality": {"0": modality},
            "spacing_mm": list(spacing),
            "orientation": orientation,
        },
    )
    written.append("datalist.json")
    finalize_output_dir(out, bundle, written, previous, {"seed": seed, "num_volumes": num_volumes, **options})
    return datalist
