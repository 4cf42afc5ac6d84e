"""Unpack a bundle zip written by ``scripts.package``, safely.

    python -m scripts.unpack dist/knee_eas_unet_v0.1.0.zip --out ~/bundles

Refuses, before writing anything, a zip whose members would land outside ``--out`` (absolute paths, ``..``
components, links) or that is not one ``<bundle>/`` folder, and a target folder that already exists (nothing
is overwritten). The files are extracted into a temporary folder next to the target, checked against the zip's
``SHA256SUMS`` manifest (every file listed, every sha256 matching), and only then renamed to ``<out>/<bundle>``,
so an interrupted or refused unpack leaves no half-written bundle.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import fire

from scripts.common.bundles import MANIFEST


class UnsafeZipError(ValueError):
    """A zip that cannot be unpacked safely; the message names the zip, the member and the fix."""


def _bundle_folder(archive: Path, names: list[str], infos: list[zipfile.ZipInfo]) -> str:
    tops = set()
    for name, info in zip(names, infos):
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            raise UnsafeZipError(f"{archive}: member {name!r} would be written outside the target folder; "
                                 "refusing the whole zip. Use a zip made by python -m scripts.package.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeZipError(f"{archive}: member {name!r} is a symbolic link (it could point outside the target "
                                 "folder); refusing the whole zip. Use a zip made by python -m scripts.package.")
        tops.add(path.parts[0])
    if len(tops) != 1:
        raise UnsafeZipError(f"{archive} is not one bundle folder (top-level entries: {sorted(tops)}); "
                             "use a zip made by python -m scripts.package.")
    return tops.pop()


def _check_manifest(archive: Path, folder: Path) -> None:
    """Every file of ``folder`` but the manifest is listed in it, and every listed file has its sha256."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise UnsafeZipError(f"{archive} has no {MANIFEST} manifest; use a zip made by python -m scripts.package.")
    listed = {}
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        digest, separator, name = line.partition("  ")
        if not separator or len(digest) != 64:
            raise UnsafeZipError(f"{archive}: line {number} of {MANIFEST} is not '<sha256>  <file>' ({line!r}); "
                                 "download or package it again.")
        listed[name] = digest
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    unlisted = sorted(files - set(listed))
    if unlisted:
        raise UnsafeZipError(f"{archive}: {', '.join(unlisted)} not in its {MANIFEST} manifest (added to the zip "
                             "after packaging); download or package it again.")
    for name, digest in listed.items():
        target = folder / name
        if not target.is_file() or hashlib.sha256(target.read_bytes()).hexdigest() != digest:
            raise UnsafeZipError(f"{archive}: {name} does not match its sha256 in {MANIFEST} (damaged or edited "
                                 "zip); download or package it again.")


def unpack(archive: str | Path, out: str | Path = ".") -> Path:
    """Unpack ``archive`` into ``<out>/<bundle>``; returns that folder."""
    archive, out = Path(archive), Path(out)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise UnsafeZipError(f"{archive} is not a readable zip ({err}); download or package it again.") from err
    with zf:
        infos = zf.infolist()
        bundle = _bundle_folder(archive, [i.filename for i in infos], infos)
        target = out / bundle
        if target.exists():
            raise FileExistsError(f"{target} already exists; unpack into another --out folder or move it away "
                                  "(nothing is overwritten).")
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{bundle}.", dir=out))
        try:
            zf.extractall(staging)
            _check_manifest(archive, staging / bundle)
            (staging / bundle).rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def main(archive: str, out: str = ".") -> None:
    """Unpack a bundle zip into ``--out`` (default: the current folder) and print the bundle folder."""
    try:
        print(unpack(archive, out))
    except (UnsafeZipError, FileExistsError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    fire.Fire(main)
