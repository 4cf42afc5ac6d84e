"""Fuzzed readers: damaged NIfTI, NRRD, DICOM, datalists and checkpoints made from real files
(:mod:`tests.robustness.fuzz`), each either refused with one message naming the file, or read as a plausible image.

The bulk runs each input through its bundle's own ``inference.json`` pre-processing (or dataset, or weights loader),
without the network; a few inputs run whole, through ``medseg-segment`` and ``python -m monai.bundle run``, and must
leave no partial output. The default count is small (CI); ``MEDSEG_FUZZ_COUNT=300`` runs the full campaign, which
prints per family the inputs handled, read, and the slowest time (README, "Troubleshooting: bad input")::

    MEDSEG_FUZZ_COUNT=300 python -m pytest -q -s tests/robustness/test_fuzzed_inputs.py -k campaign
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, subprocess_env
from tests.robustness.fuzz import HANG_SECONDS, FAMILIES, Sources, config, generate, probe

SEED = 28
COUNT = int(os.environ.get("MEDSEG_FUZZ_COUNT", 2 * len(FAMILIES)))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Sources:
    return Sources(tmp_path_factory.mktemp("fuzz_sources"))


def test_fuzz_campaign(sources, tmp_path):
    """Every damaged input is handled or read as a plausible image, within the hang limit."""
    outcomes: dict[str, Counter] = defaultdict(Counter)
    slowest: dict[str, float] = defaultdict(float)
    bad = []
    for item in generate(COUNT, SEED, tmp_path, sources):
        outcome, detail, seconds = probe(item)
        outcomes[item.family][outcome] += 1
        slowest[item.family] = max(slowest[item.family], seconds)
        if outcome == "bad":
            bad.append(f"{item.family} ({item.note}, {item.path}): {detail[:500]}")
    print(f"\n{COUNT} damaged inputs, seed {SEED}: family | handled | read | slowest s")
    for family, counts in outcomes.items():
        print(f"{family} | {counts['handled']} | {counts['read']} | {slowest[family]:.2f}")
    assert not bad, "\n".join(bad)
    assert max(slowest.values()) < HANG_SECONDS
    assert sum(c["handled"] for c in outcomes.values()) > COUNT // 2  # the damage is real: most inputs are refused


def _segment(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "custom_networks.apps.segment", *map(str, args), "--runtime",
                           "torch", "--threads", "2"], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=600)


def _untrained_weights(bundle: str, folder: Path) -> Path:
    """Seeded test weights of ``bundle``'s network, as ``folder/model.pt``."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": config(bundle).get_parsed_content("network_def").state_dict()}, folder / "model.pt")
    return folder


def _damaged(sources: Sources, tmp_path: Path, family: str, seed: int = SEED):
    import random

    out = tmp_path / family
    out.mkdir()
    return FAMILIES[family](random.Random(seed), sources, out)


@pytest.mark.parametrize("family", ["nifti_spacing", "nrrd_huge", "dicom_mixed_orientation"])
def test_medseg_segment_names_the_damaged_file_and_writes_nothing_for_it(sources, tmp_path, family):
    """Head-and-neck (shipped weights) through ``medseg-segment``: one failure line naming the file, no case
    folder left behind."""
    item = _damaged(sources, tmp_path, family)
    out = tmp_path / "out"
    proc = _segment(item.path, "-o", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failures = [line for line in proc.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failures) == 1 and str(item.culprit) in failures[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], sorted(out.rglob("*"))


@pytest.mark.parametrize("bundle,family", [("lower_limb_afu_unet", "nifti_huge"),
                                           ("spine_msr_attention_unet", "dicom_missing_geometry"),
                                           ("knee_eas_unet", "nifti_datatype")])
def test_monai_bundle_run_of_a_2d_bundle_names_the_damaged_file(sources, tmp_path, bundle, family):
    """The 2D bundles with seeded test weights through ``python -m monai.bundle run``: the run stops with the
    message naming the file, nothing written."""
    item = _damaged(sources, tmp_path, family)
    ckpt = _untrained_weights(bundle, tmp_path / "ckpt")
    root = REPO / "bundles" / bundle
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(root / "configs" / "inference.json"),
         "--bundle_root", str(root), "--datalist", f"['{item.path}']", "--ckpt_dir", str(ckpt),
         "--output_dir", str(tmp_path / "outputs"), "--runtime", "torch"],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert str(item.culprit) in proc.stderr, proc.stderr[-3000:]
    for bare in ("IndexError", "KeyError", "struct.error", "MemoryError"):
        assert f"\n{bare}" not in proc.stderr
    written = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()] if (tmp_path / "outputs").exists() else []
    assert not written, written
