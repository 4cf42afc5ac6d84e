"""Shared fixtures: tiny synthetic data sets and bundle paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from scripts.common.bundles import REPO, SHARED_DATA  # noqa: F401  (the tests import both from here)

PYTHON = sys.executable


def bundle_dir(name: str) -> Path:
    return REPO / "bundles" / name


def read_pyproject() -> dict:
    """The repository's ``pyproject.toml``, parsed: ``tomllib`` from Python 3.11, below it ``tomli`` (which pytest
    itself requires there), so no test skips on a Python that ``requires-python`` allows."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def subprocess_env() -> dict:
    """Environment for `python -m ...` subprocesses: the repo importable, 2 threads, no colour codes."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


@pytest.fixture(scope="session")
def knee_data(tmp_path_factory) -> Path:
    """Four synthetic knee MR volumes (2 training, 1 validation, 1 testing); returns the dataset dir."""
    from scripts.phantoms.knee import write_knee_dataset

    out = tmp_path_factory.mktemp("knee_data")
    write_knee_dataset(out, num_volumes=4, seed=0, log=None)
    return out


@pytest.fixture(scope="session")
def lower_limb_data(tmp_path_factory) -> Path:
    """Four synthetic lower-limb CT volumes of 8 slices (2 training, 1 validation, 1 testing)."""
    from scripts.phantoms.lower_limb import write_lower_limb_dataset

    out = tmp_path_factory.mktemp("lower_limb_data")
    write_lower_limb_dataset(out, num_volumes=4, seed=0, log=None, num_slices=8)
    return out


@pytest.fixture(scope="session")
def spine_data(tmp_path_factory) -> Path:
    """Four synthetic spine CT volumes of 8 slices (2 training, 1 validation, 1 testing)."""
    from scripts.phantoms.spine import write_spine_dataset

    out = tmp_path_factory.mktemp("spine_data")
    write_spine_dataset(out, num_volumes=4, seed=0, log=None, num_slices=8)
    return out
