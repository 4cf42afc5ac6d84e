"""Which bundle an installed command runs, and where its trained weights are.

``scripts.common.bundles`` (the tools' bundle discovery) is not installed, so the commands carry this small
locator. A bundle is given as:

- a **name** (``head_neck_two_stage_unet``): the folder of that name in ``bundles/`` of the checkout the package
  is installed from (``pip install -e .``: ``custom_networks/`` sits beside ``bundles/``), or under
  ``./bundles`` of the current directory;
- a **folder**: any bundle folder holding ``configs/inference.json``, e.g. one extracted from a bundle zip
  (``python -m scripts.unpack``), anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_BUNDLE", "BundleInfo", "BundleNotFoundError", "MissingWeightsError", "find_bundle",
           "repo_bundles_dir", "weights_file"]

#: the bundle ``medseg-segment`` runs without ``--bundle``: the one that ships weights trained on real CT
DEFAULT_BUNDLE = "head_neck_two_stage_unet"
#: the file of trained weights in a bundle's ``models/`` folder or a ``--ckpt_dir``
WEIGHTS_NAME = "model.pt"


class BundleNotFoundError(ValueError):
    """``--bundle`` names no bundle folder; the message lists the bundles that were found."""


class MissingWeightsError(FileNotFoundError):
    """The bundle has no trained weights where the command looks; the message says how to give them."""


@dataclass(frozen=True)
class BundleInfo:
    """What the commands need to know about a bundle, read from its ``configs/metadata.json``.

    Attributes:
        root: the bundle folder (holds ``configs/``).
        name: the folder's name (``head_neck_two_stage_unet``).
        version: ``metadata.json``'s ``version``.
        modality: the input modality of ``network_data_format.inputs.image`` (``"CT"``, ``"MR"``).
        class_names: label value -> class name for every foreground class (``outputs.pred.channel_def``
            without background).
    """

    root: Path
    name: str
    version: str
    modality: str
    class_names: dict[int, str]

    @property
    def inference_config(self) -> Path:
        """``configs/inference.json``."""
        return self.root / "configs" / "inference.json"

    @property
    def metadata_file(self) -> Path:
        """``configs/metadata.json``."""
        return self.root / "configs" / "metadata.json"


def repo_bundles_dir() -> Path | None:
    """``bundles/`` of the checkout this package is installed from (editable install), or None (a wheel)."""
    import custom_networks

    candidate = Path(custom_networks.__file__).resolve().parents[1] / "bundles"
    return candidate if candidate.is_dir() else None


def _is_bundle(folder: Path) -> bool:
    return (folder / "configs" / "inference.json").is_file() and (folder / "configs" / "metadata.json").is_file()


def _known_names() -> list[str]:
    names = set()
    for root in (repo_bundles_dir(), Path.cwd() / "bundles"):
        if root is not None and root.is_dir():
            names.update(p.name for p in root.iterdir() if _is_bundle(p))
    return sorted(names)


def read_bundle(root: str | os.PathLike) -> BundleInfo:
    """:class:`BundleInfo` of the bundle folder ``root`` (its ``configs/metadata.json``)."""
    from ..writers.dicom_seg import segment_names

    root = Path(root).resolve()
    meta_file = root / "configs" / "metadata.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        image = meta["network_data_format"]["inputs"]["image"]
        channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BundleNotFoundError(f"{meta_file} cannot be read as a bundle's metadata ({type(e).__name__}: {e}); "
                                  "is this a MONAI bundle folder?") from e
    return BundleInfo(root=root, name=root.name, version=str(meta.get("version", "")),
                      modality=str(image.get("modality", "")).upper(), class_names=segment_names(channel_def))


def find_bundle(spec: str | os.PathLike = DEFAULT_BUNDLE) -> BundleInfo:
    """The bundle ``spec`` names: a bundle folder (holding ``configs/inference.json``), or a bundle name looked up
    in the checkout's ``bundles/`` and then in ``./bundles``. Raises :class:`BundleNotFoundError` listing the
    bundles found otherwise."""
    path = Path(spec).expanduser()
    if _is_bundle(path):
        return read_bundle(path)
    if path.name == str(spec):  # a bare name, not a path
        for root in (repo_bundles_dir(), Path.cwd() / "bundles"):
            if root is not None and _is_bundle(root / str(spec)):
                return read_bundle(root / str(spec))
    known = _known_names()
    listed = f"bundles found: {', '.join(known)}" if known else "no bundles/ folder found beside the package"
    raise BundleNotFoundError(
        f"--bundle {spec}: not a bundle folder (no configs/inference.json there) and not a bundle name ({listed}). "
        "Pass a bundle name from this checkout or the folder of an extracted bundle zip.")


def weights_file(bundle: BundleInfo, ckpt_dir: str | os.PathLike | None = None) -> Path:
    """The trained weights the bundle's ``inference.json`` loads: ``<ckpt_dir>/model.pt``, by default the bundle's
    ``models/model.pt``. Raises :class:`MissingWeightsError` (a one-line message with the fix) when it is absent."""
    if ckpt_dir is not None:
        path = Path(ckpt_dir).expanduser().resolve() / WEIGHTS_NAME
        if not path.is_file():
            raise MissingWeightsError(f"No trained weights at {path}: --ckpt_dir must be the folder holding the "
                                      f"{bundle.name} bundle's {WEIGHTS_NAME}.")
        return path
    path = bundle.root / "models" / WEIGHTS_NAME
    if not path.is_file():
        raise MissingWeightsError(
            f"The {bundle.name} bundle ships no trained weights ({path} does not exist): train it (see "
            f"{bundle.root / 'docs' / 'README.md'}) and pass --ckpt_dir DIR, the folder holding your {WEIGHTS_NAME}.")
    return path
