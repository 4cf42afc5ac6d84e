"""scripts.unpack refuses, before anything lands in ``--out``, every zip it cannot vouch for: a member outside the
target (absolute path, ``..``, a link), more than one top-level folder, no manifest, a manifest line it cannot
read, a file the manifest does not list, and a file whose sha256 differs. The zips are written by
``scripts.package.zip_bytes`` (what ``python -m scripts.package`` writes), then altered."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from scripts.common.bundles import MANIFEST
from scripts.package import zip_bytes
from scripts.unpack import UnsafeZipError, unpack

FILES = {"configs/inference.json": b'{"x": 1}\n', "LICENSE": b"Apache-2.0\n"}


@pytest.fixture
def packaged(tmp_path) -> Path:
    """A two-file bundle zip ``tiny_bundle/`` as scripts.package writes it."""
    source = tmp_path / "source"
    for name, data in FILES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    archive = tmp_path / "tiny_bundle.zip"
    archive.write_bytes(zip_bytes("tiny_bundle", {name: source / name for name in FILES}))
    return archive


def _rewrite(archive: Path, out: Path, drop: str | None = None, add: dict[str, bytes] | None = None) -> Path:
    """A copy of ``archive`` without the member ``drop`` and with the members of ``add``."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != drop:
                dst.writestr(info, src.read(info))
        for name, data in (add or {}).items():
            dst.writestr(name, data)
    return out


def _refused(archive: Path, out: Path, message: str) -> None:
    with pytest.raises(UnsafeZipError, match=message):
        unpack(archive, out=out)
    assert not out.exists() or not any(out.iterdir()), "a refused zip left files behind"


def test_a_packaged_zip_unpacks_to_its_files(packaged, tmp_path):
    bundle = unpack(packaged, out=tmp_path / "out")
    assert bundle == tmp_path / "out" / "tiny_bundle"
    assert {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} == {*FILES, MANIFEST}
    assert all((bundle / name).read_bytes() == data for name, data in FILES.items())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["tiny_bundle"]  # no staging folder left


def test_a_file_the_manifest_does_not_list_is_refused(packaged, tmp_path):
    added = _rewrite(packaged, tmp_path / "added.zip", add={"tiny_bundle/configs/extra.py": b"import os\n"})
    _refused(added, tmp_path / "out", r"configs/extra.py not in its SHA256SUMS manifest")


def test_a_file_whose_sha256_differs_is_refused(packaged, tmp_path):
    edited = _rewrite(packaged, tmp_path / "edited.zip", drop="tiny_bundle/LICENSE",
                      add={"tiny_bundle/LICENSE": b"MIT\n"})
    _refused(edited, tmp_path / "out", "LICENSE does not match its sha256")


def test_a_zip_without_a_manifest_is_refused(packaged, tmp_path):
    bare = _rewrite(packaged, tmp_path / "bare.zip", drop=f"tiny_bundle/{MANIFEST}")
    _refused(bare, tmp_path / "out", f"has no {MANIFEST} manifest")


def test_an_unreadable_manifest_line_is_refused(packaged, tmp_path):
    with zipfile.ZipFile(packaged) as z:
        manifest = z.read(f"tiny_bundle/{MANIFEST}")
    broken = _rewrite(packaged, tmp_path / "broken.zip", drop=f"tiny_bundle/{MANIFEST}",
                      add={f"tiny_bundle/{MANIFEST}": manifest + b"LICENSE\n"})
    _refused(broken, tmp_path / "out", f"line 3 of {MANIFEST} is not")


def _link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member, message", [
    ("/etc/tiny_bundle.txt", "would be written outside the target folder"),
    ("tiny_bundle/../../escaped.txt", "would be written outside the target folder"),
    ("C:/tiny_bundle/x.txt", "would be written outside the target folder"),
    ("other_bundle/LICENSE", r"is not one bundle folder \(top-level entries: \['other_bundle', 'tiny_bundle'\]\)"),
], ids=["absolute", "parent", "drive", "second_folder"])
def test_a_member_outside_the_bundle_folder_is_refused(packaged, tmp_path, member, message):
    _refused(_rewrite(packaged, tmp_path / "evil.zip", add={member: b"x"}), tmp_path / "out", message)


def test_a_symbolic_link_is_refused(packaged, tmp_path):
    linked = tmp_path / "linked.zip"
    _rewrite(packaged, linked)
    with zipfile.ZipFile(linked, "a") as z:
        z.writestr(_link("tiny_bundle/models/model.pt"), "/etc/passwd")
    _refused(linked, tmp_path / "out", "is a symbolic link")
