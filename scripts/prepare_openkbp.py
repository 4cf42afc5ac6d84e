"""Convert OpenKBP's ``provided-data`` (real head-and-neck planning CT + clinical contours) to NIfTI + a datalist.

Usage (from the repository root)::

    python -m scripts.prepare_openkbp --source ../shared/data/openkbp --out ~/data/openkbp_nifti

OpenKBP (Babier et al., Medical Physics 48:5549, 2021; MIT licence) stores each patient as sparse CSVs on a
128 x 128 x 128 grid: ``<split>-pats/pt_N/ct.csv`` (or ``ct.csv.gz``), ``voxel_dimensions.csv`` (three spacings
in mm, one per array axis) and one ``<Organ>.csv`` per contoured organ. Each CSV has a header line, then
``index,value`` rows where ``index`` is a flat C-order index into the 128^3 array; CT values are HU + 1000 and
only non-air voxels are stored; organ files list the indices only. Array axis 0 runs anterior to posterior,
axis 1 from the patient's right to left, axis 2 from head to feet.

Output (``--out``):

* ``images/pt_N.nii.gz``: the CT in HU, ``int16``, air (-1000) wherever OpenKBP stores nothing;
* ``labels/pt_N.nii.gz``: one ``uint8`` label map, ``0`` background and organ ``i + 1`` =
  ``custom_networks.labels.head_neck.OPENKBP_ORGANS[i]``; where contours overlap the latest organ in
  that list wins (the overlapping voxels are counted in the log, each once);
* both with the world geometry of the data's axes, stored as RAS+ NIfTI affines, each patient's own spacing,
  the volume centred on the world origin (OpenKBP gives no patient position);
* ``datalist.json``: the Decathlon form, with OpenKBP's own split folders as the lists
  (``train-pats`` -> ``training``, ``validation-pats`` -> ``validation``, ``test-pats`` -> ``testing``;
  any subset may be present). Each entry names the organs contoured for that patient (``"contoured"``):
  an organ without a file is **not contoured**, not absent, and the bundle neither trains nor scores it
  there.

Deterministic: the same source gives byte-identical files. A non-empty output folder not written by this
tool is refused (``scripts.phantoms.io.prepare_output_dir``). Errors name the file: a missing CT or spacing
file, a malformed row, an index outside 128^3, an unknown organ file.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import zlib
from pathlib import Path

import fire
import numpy as np

from custom_networks.labels.head_neck import OPENKBP_ORGANS, OPENKBP_SOURCE_NAMES, class_names

from .phantoms.io import OutputDirError, finalize_output_dir, map_in_workers, prepare_output_dir, save_nifti

#: OpenKBP's grid: every array is 128 x 128 x 128.
GRID = (128, 128, 128)
#: OpenKBP split folder -> Decathlon datalist list.
SPLITS = {"train-pats": "training", "validation-pats": "validation", "test-pats": "testing"}
#: Files of OpenKBP's full ``provided-data`` that are not organ contours (dose, dose mask, targets): skipped.
NON_ORGAN_FILES = re.compile(r"^(dose|possible_dose_mask|ptv\d+)\.csv(\.gz)?$", re.IGNORECASE)
#: Marker ``bundle`` field of the output folder.
DATASET = "openkbp"
#: CT values are stored as HU + 1000; air where nothing is stored.
HU_OFFSET, AIR_HU = 1000, -1000

_ORGAN_BY_STEM = {stem.lower(): organ for organ, stem in OPENKBP_SOURCE_NAMES.items()}


class OpenKBPError(ValueError):
    """A patient folder or one of its files cannot be converted; the message names the file."""


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        return (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode("ascii")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile, zlib.error) as e:
        raise OpenKBPError(f"{path}: cannot be read as {'gzip ' if path.name.endswith('.gz') else ''}text ({e})") from e


def read_sparse_csv(path: Path, with_values: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``(indices, values)`` of one OpenKBP sparse CSV (header line, then ``index,value`` rows).

    Raises :class:`OpenKBPError` naming the file and line for a malformed row, a missing value (CT) or an
    index outside the 128^3 grid.
    """
    lines = _read_text(path).splitlines()[1:]
    indices = np.empty(len(lines), dtype=np.int64)
    values = np.empty(len(lines), dtype=np.float64) if with_values else None
    n = 0
    for lineno, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            if len(parts) != 2:
                raise ValueError(f"expected 'index,value', got {len(parts)} fields")
            indices[n] = int(parts[0])
            if with_values:
                values[n] = float(parts[1])
        except ValueError as e:
            raise OpenKBPError(f"{path}, line {lineno}: malformed row {line!r} ({e})") from None
        n += 1
    indices = indices[:n]
    bad = (indices < 0) | (indices >= int(np.prod(GRID)))
    if bad.any():
        first = int(indices[bad][0])
        raise OpenKBPError(
            f"{path}: index {first} lies outside the {GRID[0]}x{GRID[1]}x{GRID[2]} grid "
            f"(valid 0 to {int(np.prod(GRID)) - 1}); {int(bad.sum())} such row(s). Is this an OpenKBP file?"
        )
    return indices, None if values is None else values[:n]


def read_spacing(path: Path) -> tuple[float, float, float]:
    """The three spacings (mm) of ``voxel_dimensions.csv``, one per array axis."""
    if not path.is_file():
        raise OpenKBPError(f"{path} is missing: every OpenKBP patient folder has voxel_dimensions.csv")
    try:
        spacing = tuple(float(v) for v in _read_text(path).replace(",", " ").split())
    except ValueError as e:
        raise OpenKBPError(f"{path}: not three numbers ({e})") from None
    if len(spacing) != 3 or min(spacing) <= 0:
        raise OpenKBPError(f"{path}: expected three positive spacings in mm, got {spacing}")
    return spacing


def openkbp_affine(spacing) -> np.ndarray:
    """RAS+ voxel-to-world matrix of OpenKBP's axes, centred on the origin.

    Axis 0 runs anterior -> posterior (world -A), axis 1 patient right -> left (world -R), axis 2 head ->
    feet (world -S).
    """
    s0, s1, s2 = spacing
    affine = np.zeros((4, 4))
    affine[:3, :3] = [[0.0, -s1, 0.0], [-s0, 0.0, 0.0], [0.0, 0.0, -s2]]
    affine[3, 3] = 1.0
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(GRID) - 1) / 2.0)
    return affine


def _ct_file(case: Path) -> Path:
    for name in ("ct.csv", "ct.csv.gz"):
        if (case / name).is_file():
            return case / name
    raise OpenKBPError(f"{case}: no ct.csv or ct.csv.gz; an OpenKBP patient folder needs its CT")


def _organ_files(case: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(case.iterdir()):
        name = path.name
        if not path.is_file() or name.lower() in ("ct.csv", "ct.csv.gz", "voxel_dimensions.csv"):
            continue
        if NON_ORGAN_FILES.match(name) or not re.search(r"\.csv(\.gz)?$", name, re.IGNORECASE):
            continue
        stem = re.sub(r"\.csv(\.gz)?$", "", name, flags=re.IGNORECASE).lower()
        if stem not in _ORGAN_BY_STEM:
            known = ", ".join(f"{s}.csv" for s in OPENKBP_SOURCE_NAMES.values())
            raise OpenKBPError(f"{path}: unknown organ file; OpenKBP's organ files are {known}")
        organ = _ORGAN_BY_STEM[stem]
        if organ in found:
            raise OpenKBPError(f"{case}: {found[organ].name} and {name} are both the {organ} contour; keep one")
        found[organ] = path
    return found


def convert_case(case: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """One patient folder -> ``(ct int16 HU, label uint8, RAS affine, summary)``; arrays 128^3 in OpenKBP's axes."""
    case = Path(case)
    if not case.is_dir():
        raise OpenKBPError(f"{case} is not a patient folder")
    spacing = read_spacing(case / "voxel_dimensions.csv")
    idx, values = read_sparse_csv(_ct_file(case), with_values=True)
    ct = np.full(int(np.prod(GRID)), AIR_HU, dtype=np.int16)
    ct[idx] = np.clip(np.rint(values - HU_OFFSET), -32768, 32767).astype(np.int16)
    label = np.zeros(int(np.prod(GRID)), dtype=np.uint8)
    contours = np.zeros(int(np.prod(GRID)), dtype=np.uint8)  # how many organ files list each voxel
    files = _organ_files(case)
    contoured = []
    for i, organ in enumerate(OPENKBP_ORGANS, start=1):
        if organ not in files:
            continue
        idx, _ = read_sparse_csv(files[organ], with_values=False)
        contours[np.unique(idx)] += 1
        label[idx] = i
        contoured.append(organ)
    summary = {"spacing": list(spacing), "contoured": contoured, "overlap_voxels": int((contours > 1).sum())}
    return ct.reshape(GRID), label.reshape(GRID), openkbp_affine(spacing), summary


def _job(args) -> dict:
    case_dir, out, split = args
    ct, label, affine, summary = convert_case(case_dir)
    name = Path(case_dir).name
    rel = {"image": f"images/{name}.nii.gz", "label": f"labels/{name}.nii.gz"}
    save_nifti(ct, affine, Path(out) / rel["image"], description="OpenKBP CT (HU), real patient data")
    save_nifti(label, affine, Path(out) / rel["label"], description="OpenKBP clinical contours")
    return {**rel, "name": name, "split": split, **summary}


def _patient_number(path: Path) -> tuple[int, str]:
    m = re.fullmatch(r"pt_(\d+)", path.name)
    return (int(m.group(1)) if m else sys.maxsize, path.name)


def list_patients(source: str | Path) -> list[tuple[str, Path]]:
    """``[(datalist list, patient folder)]`` of every split folder present under ``source``, numerically sorted."""
    source = Path(source)
    if not source.is_dir():
        raise OpenKBPError(f"OpenKBP folder {source} does not exist")
    found = []
    for folder, split in SPLITS.items():
        if (source / folder).is_dir():
            found += [(split, p) for p in sorted((source / folder).iterdir(), key=_patient_number) if p.is_dir()]
    if not found:
        raise OpenKBPError(
            f"{source} holds none of OpenKBP's split folders ({', '.join(SPLITS)}); point --source at provided-data"
        )
    return found


def prepare(source, out, workers: int = 2, log=print) -> Path:
    """Convert every patient under ``source`` into ``out``; returns the datalist path (see the module doc)."""
    patients = list_patients(source)
    out_path, previous = prepare_output_dir(out, DATASET)
    (out_path / "images").mkdir(exist_ok=True)
    (out_path / "labels").mkdir(exist_ok=True)
    jobs = [(str(p), str(out_path), split) for split, p in patients]
    lists: dict[str, list[dict]] = {split: [] for split in SPLITS.values()}
    written = ["datalist.json"]
    for i, r in enumerate(map_in_workers(_job, jobs, max(1, min(int(workers), 2, len(jobs))))):
        lists[r["split"]].append({"image": r["image"], "label": r["label"], "contoured": r["contoured"]})
        written += [r["image"], r["label"]]
        if log is not None:
            missing = [o for o in OPENKBP_ORGANS if o not in r["contoured"]]
            log(
                f"[{i + 1}/{len(jobs)}] {r['split']} {r['name']}: spacing {r['spacing']}, "
                f"not contoured: {', '.join(missing) or 'none'}, overlapping voxels {r['overlap_voxels']}"
            )
    counts = {o: sum(o in e["contoured"] for v in lists.values() for e in v) for o in OPENKBP_ORGANS}
    datalist = {
        "name": "openkbp_head_neck_oar",
        "description": (
            "OpenKBP provided-data (Babier et al., Medical Physics 48:5549-5561, 2021): real head-and-neck "
            "radiotherapy planning CT (TCIA) with clinical organ-at-risk contours, 128^3 voxels, about 4 mm. "
            "'contoured' lists the organs with a contour; the others were not contoured for that patient."
        ),
        "reference": "https://github.com/ababier/open-kbp",
        "licence": "MIT (OpenKBP); CT from The Cancer Imaging Archive",
        "tensorImageSize": "3D",
        "modality": {"0": "CT (HU)"},
        "labels": {str(i): n for i, n in enumerate(class_names("openkbp"))},
        "contoured_cases": counts,
        "numTraining": len(lists["training"]),
        **{k: v for k, v in lists.items() if v},
    }
    path = out_path / "datalist.json"
    path.write_text(json.dumps(datalist, indent=2) + "\n")
    finalize_output_dir(out_path, DATASET, written, previous, {"source": str(Path(source).resolve())})
    return path


def main(source: str, out: str, workers: int = 2) -> None:
    """CLI: convert OpenKBP's ``provided-data`` folder ``source`` into ``out``.

    Args:
        source: folder holding ``train-pats/``, ``validation-pats/`` and/or ``test-pats/``.
        out: output folder (created; a non-empty folder not written by this tool is refused).
        workers: worker processes (1 or 2).
    """
    try:
        datalist = prepare(source, out, workers, log=lambda s: print(s, flush=True))
    except (OutputDirError, OpenKBPError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"datalist: {datalist}")


if __name__ == "__main__":
    fire.Fire(main)
