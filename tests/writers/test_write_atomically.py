"""``write_atomically``, the one atomic write of the package and the tools (every writer, checkpoint, summary,
exported runtime file and bundle zip goes through it): two real processes writing one file at once, even two
containers that both run as PID 1, each rename a complete file of their own."""

from __future__ import annotations

import ast
import multiprocessing
import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from custom_networks.writers.base import write_atomically
from tests.conftest import REPO

HALF = 1 << 20  # bytes each writer writes before and after meeting the other one


def _write_halfway_then_wait(path: str, byte: int, barrier) -> None:
    """Child process: ``write_atomically`` a file of ``byte`` whose write pauses halfway until the other child is
    halfway too. ``os.getpid`` returns 1, as in two containers. An error ends the child with exit code 1."""
    os.getpid = lambda: 1

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(bytes([byte]) * HALF)
            f.flush()
            barrier.wait(timeout=60)  # both processes are now in the middle of their writes
            f.write(bytes([byte]) * HALF)

    write_atomically(path, write)


def test_two_processes_with_the_same_pid_writing_one_file_each_rename_a_whole_file(tmp_path):
    # fork: the children only write bytes (spawn would re-import torch and MONAI in each, about 20 s on 2 cores)
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(2)
    path = tmp_path / "model.pt"
    children = [ctx.Process(target=_write_halfway_then_wait, args=(str(path), b, barrier)) for b in (1, 2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert [c.exitcode for c in children] == [0, 0], "a writer failed (its traceback is in the captured stderr)"
    data = path.read_bytes()
    assert len(data) == 2 * HALF and len(set(data)) == 1, "the two writes were mixed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary file left


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("previous")

    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fail)
    assert path.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_the_temporary_file_keeps_the_extension_and_the_file_gets_the_umasks_permissions(tmp_path):
    """``nibabel.save`` picks the format from the name, so the temporary file ends in ``.nii.gz`` (the old
    ``<path>.tmp<pid>`` could not be written by it); permissions are those of a plain ``open``."""
    seen = []
    old = os.umask(0o022)
    try:
        path = tmp_path / "slab.nii.gz"
        write_atomically(path, lambda tmp: (seen.append(tmp), nib.save(nib.Nifti1Image(np.ones((2, 2, 2)),
                                                                                     np.eye(4)), tmp)))
    finally:
        os.umask(old)
    assert seen[0].endswith(".nii.gz") and os.path.basename(seen[0]).startswith(".slab.nii.gz.")
    assert path.read_bytes()[:2] == b"\x1f\x8b" and np.asarray(nib.load(path).dataobj).sum() == 8  # gzip NIfTI
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


#: renames into place that are not a file write: (file, why)
NOT_FILE_WRITES = {
    "custom_networks/apps/case.py": "moves the finished outputs of a bundle run into the case folder",
    "scripts/unpack.py": "renames an unpacked, checked folder into place",
    "scripts/serving/app.py": "moves a folder of weights trained through MONAI Label aside",
}


def _renames(path: Path) -> list[int]:
    """Lines of ``os.replace`` / ``os.rename`` / ``shutil.move`` / ``<path>.rename`` / ``tempfile.mkstemp`` calls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            name = node.func.attr
            if (owner, name) in {("os", "replace"), ("os", "rename"), ("shutil", "move"), ("tempfile", "mkstemp")} \
                    or (name == "rename" and owner not in {"os"}):
                found.append(node.lineno)
    return found


def test_every_file_written_in_place_goes_through_write_atomically():
    """The package and the tools hand-roll no temporary-file-and-rename: each one they had was a copy of
    ``write_atomically`` with its own defects (a PID-only temporary name, a lost extension)."""
    files = sorted((REPO / "custom_networks").rglob("*.py")) + sorted((REPO / "scripts").rglob("*.py"))
    found = {str(p.relative_to(REPO)): lines for p in files if (lines := _renames(p))}
    found.pop("custom_networks/writers/base.py")  # write_atomically itself
    assert {k: v for k, v in found.items() if k not in NOT_FILE_WRITES} == {}
