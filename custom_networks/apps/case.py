"""One case's output folder ``OUT/<case>/``: what is there, what is missing, and making what is missing.

Files of a case (each written atomically: a temporary file renamed into place, so none is ever half written):

========================  =========================================================================
``segmentation.nii.gz``   the label map in the input's geometry (the bundle's ``SaveImaged``)
``statistics.json``       per organ: voxels, volume in ml, found; Dice with ``--reference``
``preview.png``           three orthogonal slices with the organs overlaid and a legend
``segmentation.dcm``      DICOM SEG (``--dicom_seg``, DICOM inputs; the bundle's ``SaveDicomSegd``)
``rtstruct.dcm``          RTSTRUCT (``--rtstruct``, DICOM inputs; :mod:`custom_networks.writers.rtstruct`)
``manifest.json``         written **last**: each finished output with its size, and what made it
========================  =========================================================================

A case is finished for a run when the manifest lists every output that run asks for, each file is there with the
size recorded, and the manifest's input (path, size, modification time), bundle and weights are this run's (and,
for ``statistics.json``, its reference). A rerun does only what is missing: adding ``--rtstruct`` writes just the
RTSTRUCT from the label map on disk. The network runs again only for a missing label map or DICOM SEG (the
manifest is removed first, so an interrupted rerun never leaves an old manifest over new files).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..writers.base import write_atomically
from .inputs import Case, series_folder
from .locate import BundleInfo
from .preview import write_preview
from .organ_stats import case_statistics, find_reference
from .workflow import BundleRunner, CaseError, failure_reason

__all__ = ["OUTPUT_FILES", "CaseResult", "CaseSettings", "process_case", "requested_outputs"]

#: output kind -> file name in the case folder
OUTPUT_FILES = {
    "segmentation": "segmentation.nii.gz",
    "statistics": "statistics.json",
    "preview": "preview.png",
    "dicom_seg": "segmentation.dcm",
    "rtstruct": "rtstruct.dcm",
}
MANIFEST = "manifest.json"
#: outputs made by running the network (the others are derived from the label map on disk)
NETWORK_OUTPUTS = ("segmentation", "dicom_seg")


@dataclass
class CaseSettings:
    """What a run asks of every case.

    Attributes:
        bundle: the bundle.
        weights: its ``model.pt`` (recorded in the manifest: other weights make a finished case unfinished).
        out_dir: ``OUT``.
        work_dir: a private staging folder.
        reference: ``--reference`` (a label map or a folder of them), or None.
        rtstruct: ``--rtstruct``.
        dicom_seg: ``--dicom_seg``.
        overwrite: redo finished outputs.
    """

    bundle: BundleInfo
    weights: Path
    out_dir: Path
    work_dir: Path
    reference: str | None = None
    rtstruct: bool = False
    dicom_seg: bool = False
    overwrite: bool = False


@dataclass
class CaseResult:
    """What became of one case: ``status`` ``"done"`` or ``"skipped"`` (finished earlier), the outputs written
    now (``written``), every output of the case by kind (``outputs``), its statistics, notes and seconds."""

    status: str
    outputs: dict[str, Path]
    statistics: dict
    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def requested_outputs(case: Case, settings: CaseSettings) -> tuple[list[str], list[str]]:
    """``(outputs this run asks for the case, notes)``: label map, statistics and preview always; DICOM SEG and
    RTSTRUCT when asked for and the case is a DICOM series (a note for a volume input instead)."""
    kinds, notes = ["segmentation", "statistics", "preview"], []
    asked = ((settings.dicom_seg, "dicom_seg", "DICOM SEG"), (settings.rtstruct, "rtstruct", "RTSTRUCT"))
    for flag, kind, what in asked:
        if flag and case.is_dicom:
            kinds.append(kind)
        elif flag:
            notes.append(f"WARNING: {case.source} is not a DICOM series: no {what} (it needs the source series to "
                         "reference)")
    return kinds, notes


def _input_signature(case: Case) -> dict:
    if case.volume is not None:
        st = os.stat(case.volume)
        return {"input": os.path.abspath(case.volume), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {"input": os.path.abspath(case.source), "series_uid": case.series.series_uid,
            "files": len(case.series.files)}


class CaseFolder:
    """``OUT/<case>/`` and its manifest (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest_file = folder / MANIFEST

    def path(self, kind: str) -> Path:
        """Where output ``kind`` lives."""
        return self.folder / OUTPUT_FILES[kind]

    def manifest(self) -> dict:
        """The manifest, or an empty one when there is none or it cannot be read."""
        try:
            content = json.loads(self.manifest_file.read_text(encoding="utf-8"))
            return content if isinstance(content, dict) else {}
        except (OSError, ValueError):
            return {}

    def missing(self, kinds: list[str], made_by: dict, reference: str | None) -> list[str]:
        """The outputs of ``kinds`` that are not finished for a run whose input, bundle and weights are
        ``made_by`` and whose reference is ``reference``."""
        manifest = self.manifest()
        if manifest.get("made_by") != made_by:
            return list(kinds)
        done = manifest.get("outputs", {})
        missing = []
        for kind in kinds:
            entry, path = done.get(kind), self.path(kind)
            complete = isinstance(entry, dict) and path.is_file() and path.stat().st_size == entry.get("bytes")
            if not complete or (kind == "statistics" and manifest.get("reference") != reference):
                missing.append(kind)
        return missing

    def invalidate(self) -> None:
        """Remove the manifest (before outputs it lists are replaced)."""
        self.manifest_file.unlink(missing_ok=True)

    def finish(self, kinds: list[str], made_by: dict, reference: str | None, case: str) -> None:
        """Write the manifest listing ``kinds`` (plus the finished outputs an earlier run listed), last."""
        previous = self.manifest()
        previous = previous.get("outputs", {}) if previous.get("made_by") == made_by else {}
        outputs = {k: v for k, v in previous.items() if k in OUTPUT_FILES and self.path(k).is_file()}
        outputs.update({k: {"file": OUTPUT_FILES[k], "bytes": self.path(k).stat().st_size} for k in kinds})
        _write_json(self.manifest_file, {"case": case, "made_by": made_by, "reference": reference,
                                         "outputs": outputs, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _write_json(path: Path, content: dict) -> None:
    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8"))


def _write_rtstruct(path: Path, label_file: Path, series_dir: str, bundle: BundleInfo) -> None:
    """The RTSTRUCT of the label map on the source series (:func:`custom_networks.writers.rtstruct.write_rtstruct`):
    one ROI per class, named by TG-263 where the class has a TG-263 name (``labels.head_neck.TG263_NAMES``), in the
    preview's colours."""
    from ..labels.head_neck import TG263_NAMES
    from ..writers.rtstruct import write_rtstruct
    from .preview import PALETTE

    names = {value: TG263_NAMES.get(name, name) for value, name in bundle.class_names.items()}
    colours = {value: PALETTE[(value - 1) % len(PALETTE)] for value in names}
    write_rtstruct(label_file, series_dir, path, roi_names=names, colors=colours, algorithm_name=bundle.name,
                   algorithm_version=bundle.version, modality=bundle.modality or None)


def process_case(case: Case, settings: CaseSettings, runner: BundleRunner) -> CaseResult:
    """Make whatever of ``case``'s outputs is missing (all of them with ``overwrite``) and write its manifest.

    Returns a :class:`CaseResult`; raises :class:`~custom_networks.apps.workflow.CaseError` with the reason when
    the case fails (the outputs it finished stay; its manifest lists only finished ones).
    """
    start = time.perf_counter()
    folder = CaseFolder(settings.out_dir / case.name)
    kinds, notes = requested_outputs(case, settings)
    made_by = {**_input_signature(case), "bundle": str(settings.bundle.root), "weights": str(settings.weights)}
    reference = find_reference(settings.reference, case.name)
    reference_key = None if reference is None else str(reference.resolve())
    if settings.reference is not None and reference is None:
        notes.append(f"no reference for {case.name} in {settings.reference}: no Dice")
    missing = list(kinds) if settings.overwrite else folder.missing(kinds, made_by, reference_key)
    outputs = {k: folder.path(k) for k in kinds}
    if not missing:
        stats = json.loads(folder.path("statistics").read_text(encoding="utf-8"))
        return CaseResult("skipped", outputs, stats, notes=notes, seconds=time.perf_counter() - start)
    try:
        image = case.volume or series_folder(case.series, settings.work_dir / "series" / case.name)
        if any(k in missing for k in NETWORK_OUTPUTS):
            folder.invalidate()
            produced = runner.run(image)
            if "dicom_seg" in kinds and "dicom_seg" not in produced:
                raise CaseError(f"the bundle wrote no DICOM SEG for {case.source} (see the warning above)")
            folder.folder.mkdir(parents=True, exist_ok=True)  # only now: a refused input leaves no folder behind
            for kind in (k for k in NETWORK_OUTPUTS if k in kinds):
                os.replace(produced[kind], folder.path(kind))
            missing = list(kinds)  # everything else derives from the new label map
        label_file = folder.path("segmentation")
        if "statistics" in missing:
            stats = case_statistics(label_file, settings.bundle.class_names, reference)
            stats = {"case": case.name, "input": case.source, "bundle": settings.bundle.name,
                     "bundle_version": settings.bundle.version, **stats,
                     "label_map": OUTPUT_FILES["segmentation"]}
            _write_json(folder.path("statistics"), stats)
        else:
            stats = json.loads(folder.path("statistics").read_text(encoding="utf-8"))
        if "preview" in missing:
            write_preview(folder.path("preview"), image, label_file, settings.bundle.class_names,
                          settings.bundle.modality, f"{case.name}  ({settings.bundle.name})")
        if "rtstruct" in missing:
            _write_rtstruct(folder.path("rtstruct"), label_file, image, settings.bundle)
    except CaseError:
        raise
    except Exception as err:
        raise CaseError(failure_reason(err)) from err
    folder.finish(kinds, made_by, reference_key, case.name)
    return CaseResult("done", outputs, stats, written=missing, notes=notes, seconds=time.perf_counter() - start)
