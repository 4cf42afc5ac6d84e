"""``medseg-segment`` SIGKILLed at random moments over a folder (the sample CT and a small CT series of
:mod:`tests.dicom_factory`, with ``--dicom_seg --rtstruct``): after each kill no case that looks finished (has a
manifest) holds a file that differs from an uninterrupted run's, and a rerun completes with every output equal to
that run's: label maps voxel for voxel, ``statistics.json`` exactly, DICOM SEG and RTSTRUCT apart from their
generated UIDs, dates and times.

CI kills twice; ``MEDSEG_KILL_COUNT=20`` runs the full campaign (README, "Troubleshooting: bad input")::

    MEDSEG_KILL_COUNT=20 python -m pytest -q -s -m slow tests/robustness/test_kill_mid_write.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import REPO, subprocess_env

SAMPLE = REPO / "bundles" / "head_neck_two_stage_unet" / "sample" / "images" / "pt_201.nii.gz"
KILLS = int(os.environ.get("MEDSEG_KILL_COUNT", 2))
ARGS = ["--dicom_seg", "--rtstruct", "--runtime", "torch", "--threads", "1"]
#: DICOM value representations a writer generates afresh on each run
GENERATED_VRS = ("UI", "DA", "TM", "DT")


def _command(inputs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "custom_networks.apps.segment", str(inputs), "-o", str(out), *ARGS]


def _run(inputs: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_command(inputs, out), cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=900)


def _dicom_content(path: Path) -> list:
    """The elements of a DICOM file, nested, without generated UIDs, dates and times."""
    import pydicom

    def walk(ds):
        items = []
        for element in ds:
            if element.VR in GENERATED_VRS:
                continue
            if element.VR == "SQ":
                items.append((element.tag, [walk(item) for item in element.value]))
            else:
                items.append((element.tag, element.value))
        return items

    ds = pydicom.dcmread(path)
    return walk(ds)


def _difference(mine: Path, ref: Path) -> str | None:
    """How the output ``mine`` differs from the uninterrupted run's ``ref``, or None."""
    if not mine.is_file():
        return f"{mine} missing"
    if mine.name.endswith(".nii.gz"):
        a, b = nib.load(str(mine)), nib.load(str(ref))
        same = np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj)) and np.allclose(a.affine, b.affine)
    elif mine.name.endswith(".json"):
        same = json.loads(mine.read_text()) == json.loads(ref.read_text())
    elif mine.name.endswith(".dcm"):
        same = _dicom_content(mine) == _dicom_content(ref)
    else:
        same = mine.read_bytes() == ref.read_bytes()
    return None if same else f"{mine} differs from the uninterrupted run's"


def _differences(case: Path, reference: Path) -> list[str]:
    """What differs between a case folder's outputs and the uninterrupted run's (the manifest apart)."""
    found = [_difference(case / p.name, p) for p in sorted(reference.iterdir()) if p.name != "manifest.json"]
    return [f for f in found if f]


def _finished_cases_are_whole(out: Path, reference: Path) -> list[str]:
    """For every case with a manifest, what of the outputs it lists is missing, of another size than recorded, or
    differs from the uninterrupted run's."""
    problems = []
    for manifest in sorted(out.glob("*/manifest.json")):
        for entry in json.loads(manifest.read_text())["outputs"].values():
            path = manifest.parent / entry["file"]
            if not path.is_file() or path.stat().st_size != entry["bytes"]:
                problems.append(f"{path}: listed as finished but missing or of another size")
            else:
                problems.append(_difference(path, reference / manifest.parent.name / entry["file"]))
    return [p for p in problems if p]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    from tests.dicom_factory import write_ct_series

    folder = tmp_path_factory.mktemp("kill_inputs") / "scans"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "pt_201.nii.gz")
    write_ct_series(folder / "dicom", rows=64, cols=64, n=12, spacing=(2.0, 2.0), step=3.0)
    return folder


@pytest.mark.slow
def test_a_run_killed_at_random_moments_completes_on_rerun_with_identical_outputs(inputs, tmp_path):
    reference = tmp_path / "reference"
    start = time.perf_counter()
    proc = _run(inputs, reference)
    full = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(list(reference.iterdir())) == 2
    rng = random.Random(28)
    report = []
    for k in range(KILLS):
        out = tmp_path / f"killed_{k}"
        delay = rng.uniform(0.0, full)
        child = subprocess.Popen(_command(inputs, out), cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        finished = len(list(out.glob("*/manifest.json"))) if out.exists() else 0
        problems = _finished_cases_are_whole(out, reference) if out.exists() else []
        assert not problems, problems
        rerun = _run(inputs, out)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        for case in reference.iterdir():
            assert not _differences(out / case.name, case), _differences(out / case.name, case)
        assert not list(out.rglob("*.tmp*")) and not (out / ".medseg_work").exists()
        report.append(f"kill {k}: after {delay:.1f} s (of {full:.1f}), {finished} case(s) finished before it")
        shutil.rmtree(out)
    print("\n" + "\n".join(report))
