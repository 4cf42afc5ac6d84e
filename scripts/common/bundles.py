"""The bundles of this repository: which exist, how a tool or test opens one, what a distributed copy holds.

- :func:`names`: the folders of ``bundles/`` that hold ``configs/train.json`` (the one list of bundles;
  :mod:`.registry` adds what the tools need to know about each);
- :class:`Bundle`: one bundle's configs, opened the way ``python -m monai.bundle run`` opens them (metadata,
  ``logging.conf``, ``bundle_root`` set) with overrides, as a ``ConfigWorkflow`` or a ``ConfigParser``;
- :func:`bundle_files`: what ``scripts.package`` zips and ``scripts.serve`` copies into a MONAI Label app;
- :func:`load_weights`: a trained checkpoint into a bundle's network, strictly, with an error that says why not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parents[2]
#: the project's shared data folder (real example CTs, head-and-neck masks, OpenKBP), read in place
SHARED_DATA = REPO.parent / "shared" / "data"

#: what of a bundle folder is distributed: folders (recursively) and single files
BUNDLE_DIRS = ("configs", "docs")
BUNDLE_FILES = ("LICENSE", "models/model.pt")
#: the network package vendored into every distributed bundle (the bundle root is on ``sys.path`` when it runs)
NETWORK_PACKAGE = "custom_networks"
#: sha256 manifest of a bundle zip (``sha256sum -c`` format, relative to the bundle folder)
MANIFEST = "SHA256SUMS"
#: never distributed: caches and run outputs, and ``sample/`` (real patient data kept in the repo for
#: ``medseg-segment``'s first command, under its own licence; not part of a bundle zip)
EXCLUDED_DIRS = {"__pycache__", "outputs", "data", "eval", "runs", "tensorboard", ".ipynb_checkpoints", "sample"}


class UnknownBundleError(ValueError):
    """A bundle name that is not one of :func:`names`."""


def names(source: str | os.PathLike = REPO) -> list[str]:
    """The bundles under ``<source>/bundles``: every folder with a ``configs/train.json``, sorted."""
    root = Path(source) / "bundles"
    return sorted(p.name for p in root.iterdir() if (p / "configs" / "train.json").is_file())


def check(bundle: str) -> str:
    """``bundle`` if it is one of :func:`names`, else :class:`UnknownBundleError` listing them."""
    known = names()
    if bundle not in known:
        raise UnknownBundleError(f"unknown bundle {bundle!r}; valid bundles: {', '.join(known)}.")
    return bundle


def folder(bundle: str | os.PathLike) -> Path:
    """A bundle given as a folder or as a name under ``bundles/``; a ValueError listing the bundles otherwise."""
    for candidate in (Path(bundle), REPO / "bundles" / bundle):
        if (candidate / "configs" / "train.json").is_file():
            return candidate.resolve()
    raise ValueError(f"{str(bundle)!r} is not a bundle folder (no configs/train.json); bundles here: "
                     f"{', '.join(names())}.")


def as_list(value: str | Iterable[str]) -> list[str]:
    """Names from the command line: ``a,b`` (a string, or the tuple fire makes of it) or one name -> a list."""
    parts = [value] if isinstance(value, str) else list(value)
    return [n.strip() for part in parts for n in str(part).split(",") if n.strip()]


class Bundle:
    """One bundle's configs with overrides every use shares (e.g. tiny widths), as MONAI's bundle runner reads them.

    ``bundle`` is a name (``knee_eas_unet``) or a bundle folder. Overrides given to :meth:`workflow` or
    :meth:`parser` are applied after :attr:`overrides`; ``bundle_root`` is this bundle's folder unless overridden.
    """

    def __init__(self, bundle: str | os.PathLike, overrides: dict[str, Any] | None = None):
        self.root = folder(bundle)
        self.name = self.root.name
        self.configs = self.root / "configs"
        self.overrides = dict(overrides or {})

    def files(self, *config_files: str) -> list[str]:
        """Paths of config files named relative to ``configs/``."""
        return [str(self.configs / f) for f in config_files]

    def workflow(self, config_files, workflow_type: str, logging: bool = True, **overrides):
        """A ``ConfigWorkflow`` of ``config_files`` (merged in order), not yet initialized."""
        from monai.bundle import ConfigWorkflow

        files = self.files(*config_files)
        return ConfigWorkflow(
            config_file=files if len(files) > 1 else files[0],
            meta_file=str(self.configs / "metadata.json"),
            logging_file=str(self.configs / "logging.conf") if logging else False,
            workflow_type=workflow_type,
            bundle_root=str(self.root),
            **{**self.overrides, **overrides},
        )

    def parser(self, config_files=("inference.json",), **overrides):
        """A ``ConfigParser`` of ``config_files`` with the metadata and the overrides, not yet parsed."""
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        parser.read_config(self.files(*config_files))
        parser.read_meta(str(self.configs / "metadata.json"))
        parser.update({"bundle_root": str(self.root), **self.overrides, **overrides})
        return parser


def load_weights(net, ckpt: str | os.PathLike) -> bool:
    """Load ``ckpt`` (``{"model": state_dict}`` or a plain state dict, compressed or not) strictly; returns whether it
    was nested."""
    from custom_networks.bundle.compressed_weights import load_weights as load_state
    from custom_networks.bundle.weights import mismatch_error, read_checkpoint, state_dict_of

    state = read_checkpoint(ckpt)
    weights = state_dict_of(state)
    try:
        load_state(net, weights, strict=True)
    except RuntimeError as e:
        raise mismatch_error(ckpt, e) from e
    return weights is not state


def _skip(name: str) -> bool:
    return name.startswith(".") or name.endswith((".pyc", ".pyo")) or name.startswith("events.out.tfevents")


def _walk(root: Path) -> list[Path]:
    """Files under ``root`` (sorted, relative to it), without caches, hidden files and run outputs."""
    found = []
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS and not d.startswith("."))
        found += [Path(current, f).relative_to(root) for f in files if not _skip(f) and Path(current, f).is_file()]
    return sorted(found)


def bundle_files(bundle: str, source: str | os.PathLike = REPO) -> dict[str, Path]:
    """Archive path (relative to the ``<bundle>/`` folder, POSIX) -> source file, for everything a distributed
    bundle holds: ``configs/``, ``docs/``, ``LICENSE``, ``models/model.pt`` if trained, the vendored network
    package. Caches, hidden files, run outputs and ``sample/`` (:data:`EXCLUDED_DIRS`) are left out."""
    root = Path(source) / "bundles" / bundle
    files: dict[str, Path] = {}
    for d in BUNDLE_DIRS:
        files.update({f"{d}/{p.as_posix()}": root / d / p for p in _walk(root / d)})
    files.update({f: root / f for f in BUNDLE_FILES if (root / f).is_file()})
    package = Path(source) / NETWORK_PACKAGE
    files.update({f"{NETWORK_PACKAGE}/{p.as_posix()}": package / p for p in _walk(package)})
    for required in ("configs/metadata.json", "configs/inference.json", "LICENSE", f"{NETWORK_PACKAGE}/__init__.py"):
        if required not in files:
            raise FileNotFoundError(f"{root if 'networks' not in required else package}: {required} is missing; "
                                    "cannot package an incomplete bundle.")
    return dict(sorted(files.items()))
