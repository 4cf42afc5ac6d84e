"""Deterministic, self-contained bundle zips.

    python -m scripts.package knee_eas_unet --out dist/
    python -m scripts.package --all --out dist/

For each bundle (:func:`scripts.common.bundles.names`) this writes ``<out>/<bundle>_v<version>.zip`` (version
from ``configs/metadata.json``) and ``<out>/<bundle>_v<version>.zip.sha256`` (``sha256sum -c`` format), and
prints both. The zip holds one top-level folder, ``<bundle>/``, with (:func:`scripts.common.bundles.bundle_files`):

- ``configs/``, ``docs/``, ``LICENSE`` of the bundle;
- ``models/model.pt`` when the bundle has trained weights (nothing else from ``models/``);
- ``custom_networks/``: a vendored copy of this repo's network package, so the extracted bundle runs with
  MONAI alone: ``cd <bundle> && python -m monai.bundle run --config_file configs/inference.json`` imports
  ``custom_networks`` from the bundle folder (``python -m`` puts the current directory first on
  ``sys.path``; MONAI Label puts the bundle root there) and ``resolve_bundle_root`` finds the bundle from
  ``--config_file``;
- ``SHA256SUMS``: the sha256 of every other file in the zip, ``sha256sum -c`` format, relative to ``<bundle>/``.

Caches (``__pycache__``, ``*.pyc``), hidden files, and run outputs (``outputs/``, ``data/``, ``eval/``,
``runs/``, TensorBoard event files) are never packed. The bytes depend only on the packed files' contents:
entries are sorted, every timestamp is 1980-01-01 00:00, permissions are 0644, and the compression
(deflate, level 9) is fixed, so the same inputs give the same zip and the same sha256. An existing zip is
only ever replaced atomically (``custom_networks.writers.base.write_atomically``).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import fire

from custom_networks.writers.base import write_atomically
from scripts.common.bundles import MANIFEST, REPO, UnknownBundleError, bundle_files, check, names

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_bytes(bundle: str, files: dict[str, Path]) -> bytes:
    """The deterministic zip of ``files`` under a top-level ``<bundle>/`` folder, manifest included."""
    contents = {name: path.read_bytes() for name, path in files.items()}
    manifest = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in contents.items())
    contents[MANIFEST] = manifest.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in sorted(contents):
            info = zipfile.ZipInfo(f"{bundle}/{name}", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so external_attr below is read as permissions everywhere
            info.external_attr = (0o100644 & 0xFFFF) << 16
            zf.writestr(info, contents[name], compresslevel=9)
    return buffer.getvalue()


class MetadataError(ValueError):
    """A ``metadata.json`` that fails the MONAI bundle schema; the message names the file and the field."""


def check_metadata(path: Path) -> dict:
    """``path`` parsed and validated against the vendored MONAI metadata schema (``bundles/meta_schema.json``)."""
    import jsonschema

    try:
        meta = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise MetadataError(f"{path} is not valid JSON ({err}); fix the file.") from err
    schema = json.loads((REPO / "bundles" / "meta_schema.json").read_text())
    try:
        jsonschema.validate(meta, schema)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "top level"
        raise MetadataError(
            f"{path} fails the MONAI bundle metadata schema at {where}: {err.message}. Fix the file; check it with "
            f"python -m monai.bundle verify_metadata --meta_file {path} --filepath bundles/meta_schema.json"
        ) from err
    return meta


def package(bundle: str, out: str | Path = "dist", source: str | Path = REPO) -> tuple[Path, str]:
    """Write ``<out>/<bundle>_v<version>.zip`` and its ``.sha256`` file; returns (zip path, sha256 hex).
    Refuses a bundle whose ``metadata.json`` fails the schema (:class:`MetadataError`) before writing anything."""
    check(bundle)
    files = bundle_files(bundle, Path(source))
    version = check_metadata(files["configs/metadata.json"])["version"]
    data = zip_bytes(bundle, files)
    digest = hashlib.sha256(data).hexdigest()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{bundle}_v{version}.zip"
    write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
    write_atomically(path.with_name(path.name + ".sha256"),
                     lambda tmp: Path(tmp).write_text(f"{digest}  {path.name}\n", encoding="utf-8"))
    return path, digest


def main(*bundles: str, out: str = "dist", all: bool = False, source: str = str(REPO)) -> None:  # noqa: A002
    """Package one or more bundles (or ``--all``) into ``--out``; prints ``sha256  size  path`` per zip.

    Args:
        bundles: bundle names (one of ``head_neck_two_stage_unet``, ``knee_eas_unet``,
            ``lower_limb_afu_unet``, ``spine_msr_attention_unet``).
        out: output folder (created if missing).
        all: package every bundle.
        source: repository root holding ``bundles/`` and ``custom_networks/`` (default: this repo).
    """
    chosen = names() if all else list(bundles)
    if not chosen:
        sys.exit(f"name a bundle or pass --all; valid bundles: {', '.join(names())}.")
    try:
        for name in chosen:
            check(name)
        for name in chosen:
            path, digest = package(name, out, source)
            has_weights = (Path(source) / "bundles" / name / "models" / "model.pt").is_file()
            print(f"{digest}  {path.stat().st_size:>9d}  {path}{'' if has_weights else '  (no models/model.pt)'}")
    except (UnknownBundleError, FileNotFoundError, MetadataError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    fire.Fire(main)
