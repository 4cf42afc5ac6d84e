"""Organ lists of the head-and-neck OAR task (two-stage 3D U-Net thesis), and the organ names of its source data.

The bundle has two organ setups, each one list in label order (label ``i + 1`` is ``organs[i]``):

* ``"openkbp"`` (the shipped default, :data:`OPENKBP_ORGANS`): the seven organs OpenKBP contours on real
  planning CT (Babier et al. 2021), converted by ``scripts/prepare_openkbp.py``;
* ``"thesis"`` (:data:`ORGANS`): the thesis's eight organs, on volumes rendered by
  ``scripts/phantoms/head_neck/`` from the expert masks of Nikolov et al. 2018
  (``shared/data/hn_oar_masks``); the bundle's ``configs/setup_thesis.json`` selects it.

:func:`organs` and :func:`class_names` are what the bundle configs, evaluation, the DICOM SEG segments and
``metadata.json``'s ``channel_def`` (checked by the tests) derive from; :data:`TG263_NAMES` (through
:func:`tg263_roi_names`) names the organs' ROIs in an RTSTRUCT.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "ORGANS",
    "OPENKBP_ORGANS",
    "OPENKBP_SOURCE_NAMES",
    "SETUPS",
    "TG263_NAMES",
    "organs",
    "tg263_roi_names",
    "class_names",
    "CLASS_NAMES",
    "SOURCE_NAMES",
    "normalise_organ_name",
    "find_organ_files",
]

#: The thesis's 8 organs at risk; label = index + 1.
ORGANS = (
    "brainstem",
    "eye_left",
    "eye_right",
    "optic_nerve_left",
    "optic_nerve_right",
    "parotid_left",
    "parotid_right",
    "mandible",
)
#: Class names of the 9-channel output (label id = index).
CLASS_NAMES = ("background",) + ORGANS
#: Organ key -> mask file stem in ``hn_oar_masks/<case>/segmentations`` (eyes are the "Orbit" globes).
SOURCE_NAMES = {
    "brainstem": "Brainstem",
    "eye_left": "Orbit-Lt",
    "eye_right": "Orbit-Rt",
    "optic_nerve_left": "Optic-Nerve-Lt",
    "optic_nerve_right": "Optic-Nerve-Rt",
    "parotid_left": "Parotid-Lt",
    "parotid_right": "Parotid-Rt",
    "mandible": "Mandible",
}

#: OpenKBP's seven contoured organs at risk (the shipped default setup); label = index + 1.
OPENKBP_ORGANS = (
    "brainstem",
    "spinal_cord",
    "parotid_right",
    "parotid_left",
    "mandible",
    "esophagus",
    "larynx",
)
#: Organ key -> OpenKBP's file stem in ``<split>-pats/pt_N/<Stem>.csv``.
OPENKBP_SOURCE_NAMES = {
    "brainstem": "Brainstem",
    "spinal_cord": "SpinalCord",
    "parotid_right": "RightParotid",
    "parotid_left": "LeftParotid",
    "mandible": "Mandible",
    "esophagus": "Esophagus",
    "larynx": "Larynx",
}
#: Organ setup name -> organ list in label order.
SETUPS = {"openkbp": OPENKBP_ORGANS, "thesis": ORGANS}

#: Organ key -> its standard structure name (AAPM TG-263, "Standardizing Nomenclatures in Radiation Oncology",
#: 2018), the ROI name planning systems expect in an RTSTRUCT; every organ of every setup has one.
TG263_NAMES = {
    "brainstem": "Brainstem",
    "spinal_cord": "SpinalCord",
    "parotid_right": "Parotid_R",
    "parotid_left": "Parotid_L",
    "mandible": "Bone_Mandible",
    "esophagus": "Esophagus",
    "larynx": "Larynx",
    "eye_left": "Eye_L",
    "eye_right": "Eye_R",
    "optic_nerve_left": "OpticNrv_L",
    "optic_nerve_right": "OpticNrv_R",
}


def organs(setup: str = "openkbp") -> list[str]:
    """The organ list of ``setup`` (``"openkbp"`` or ``"thesis"``) in label order."""
    if setup not in SETUPS:
        raise ValueError(f"unknown head-and-neck organ setup {setup!r}; choose one of {sorted(SETUPS)}")
    return list(SETUPS[setup])


def class_names(setup: str = "openkbp") -> list[str]:
    """``["background", *organs(setup)]``: the name of every output channel (label id = index)."""
    return ["background", *organs(setup)]


def tg263_roi_names(setup: str = "openkbp") -> dict[int, str]:
    """Label id -> TG-263 structure name (:data:`TG263_NAMES`) of every organ of ``setup``: the ROI names of an
    RTSTRUCT (``custom_networks.writers.rtstruct.write_rtstruct(..., roi_names=tg263_roi_names(setup))``)."""
    return {i: TG263_NAMES[organ] for i, organ in enumerate(organs(setup), start=1)}


_SUFFIXES = (".nii.gz", ".nrrd", ".nii", ".nhdr", ".mha")
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_organ_name(name: str) -> str:
    """``"Optic-Nerve-Lt.nrrd"``, ``"optic_nerve_lt"`` and ``"Optic Nerve Lt"`` all give ``"optic_nerve_lt"``.

    Lower case; runs of ``-``, ``_`` and white space become one ``_`` (leading/trailing ones are
    dropped); a ``.nrrd``/``.nii.gz``/``.nii``/``.nhdr``/``.mha`` suffix is stripped first.
    """
    name = os.path.basename(str(name)).strip()
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            break
    return _SEPARATORS.sub("_", lower).strip("_")


def find_organ_files(seg_dir: str | os.PathLike) -> dict[str, Path]:
    """Mask files of one case: ``{normalised organ name: path}`` (e.g. ``"orbit_lt"``).

    Raises:
        FileNotFoundError: ``seg_dir`` is not a directory.
        ValueError: two files normalise to the same organ name (e.g. ``Orbit-Lt.nrrd`` and
            ``Orbit_Lt.nrrd``), which would make the organ ambiguous.
    """
    seg_dir = Path(seg_dir)
    if not seg_dir.is_dir():
        raise FileNotFoundError(f"organ mask folder {seg_dir} does not exist")
    found: dict[str, Path] = {}
    for path in sorted(seg_dir.iterdir()):
        if not path.is_file() or not path.name.lower().endswith(_SUFFIXES):
            continue
        key = normalise_organ_name(path.name)
        if key in found:
            raise ValueError(
                f"{seg_dir}: {found[key].name} and {path.name} both normalise to organ {key!r}; "
                "remove one of them"
            )
        found[key] = path
    return found
