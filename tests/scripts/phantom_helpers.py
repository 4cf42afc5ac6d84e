"""Helpers shared by the synthetic-data tests (test_demo_data.py and the test_*_phantom.py modules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest

from scripts.phantoms.io import split_counts
from tests.conftest import REPO, subprocess_env

#: Files of the foreign (user) directory that the writers must refuse to touch.
FOREIGN_FILES = {"notes.txt": "precious"}


def dataset_fixture(write: Callable[..., Path], basename: str, doc: str, **kwargs):
    """A module-scoped fixture that runs ``write(out, log=None, **kwargs)`` once and returns ``out``.

    Assign it to a module-level name, which becomes the fixture's name (e.g.
    ``dataset = dataset_fixture(write_spine_dataset, "spine_demo", "...", num_volumes=3)``).

    Args:
        write: a ``write_*_dataset`` function.
        basename: base name of the temporary output directory.
        doc: the fixture's docstring.
        kwargs: further arguments of ``write``.
    """

    def dataset(tmp_path_factory) -> Path:
        out = tmp_path_factory.mktemp(basename)
        write(out, log=None, **kwargs)
        return out

    dataset.__doc__ = doc
    return pytest.fixture(scope="module")(dataset)


def load_nifti(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """The image and its data array (in the file's dtype)."""
    img = nib.load(str(path))
    return img, np.asarray(img.dataobj)


def run_demo_data(bundle: str, out: Path, *args) -> subprocess.CompletedProcess:
    """``python -m scripts.demo_data <bundle> --out <out> <args...>`` from the repository root."""
    cmd = [sys.executable, "-m", "scripts.demo_data", bundle, "--out", str(out), *[str(a) for a in args]]
    return subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)


def check_datalist(dataset: Path, num_volumes: int) -> dict:
    """Check what every datalist must satisfy and return it.

    It says the data are synthetic, is split by :func:`scripts.phantoms.io.split_counts`, and lists
    every volume once, with relative paths to existing files.
    """
    dl = json.loads((dataset / "datalist.json").read_text())
    assert "synthetic" in dl["description"] and "not real data" in dl["description"]
    assert (len(dl["training"]), len(dl["validation"]), len(dl["testing"])) == split_counts(num_volumes)
    seen = set()
    for key in ("training", "validation", "testing"):
        for item in dl[key]:
            for k in ("image", "label"):
                assert not os.path.isabs(item[k]) and (dataset / item[k]).is_file()
                seen.add(item[k])
    assert len(seen) == 2 * num_volumes  # no volume is in two splits
    return dl


def make_foreign_dir(tmp_path: Path, files: dict | None = None) -> Path:
    """A non-empty directory ``tmp_path/mine`` that was not written by the tool (``files``: name -> text)."""
    foreign = tmp_path / "mine"
    foreign.mkdir()
    for name, text in (FOREIGN_FILES if files is None else files).items():
        (foreign / name).write_text(text)
    return foreign


def assert_untouched(foreign: Path, files: dict | None = None) -> None:
    """``foreign`` still holds exactly ``files`` (default :data:`FOREIGN_FILES`), unchanged."""
    files = FOREIGN_FILES if files is None else files
    assert sorted(p.name for p in foreign.iterdir()) == sorted(files)
    for name, text in files.items():
        assert (foreign / name).read_text() == text
