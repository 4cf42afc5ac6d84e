"""Resumable training (issue 10): SIGKILL a real training run, rerun the same command, get the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch

from tests.bundle_configs.helpers import error_chain, run
from tests.bundle_configs.test_knee_eas_unet import CONFIGS, KNEE, TINY_CLI
from tests.conftest import PYTHON, REPO, subprocess_env

pytestmark = pytest.mark.slow

EPOCHS = 4


def _train_cmd(knee_data, ckpt_dir, *extra):
    return [PYTHON, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "train.json"),
            f"--dataset_dir={knee_data}", f"--ckpt_dir={ckpt_dir}", f"--output_dir={ckpt_dir / 'tb'}",
            f"--max_epochs={EPOCHS}", *TINY_CLI, "--slices_per_volume=4", "--batch_size=1", *extra]


def _epoch(checkpoint) -> int:
    counters = torch.load(checkpoint, weights_only=True)["trainer"]
    return counters["iteration"] // counters["epoch_length"]


def _kill_after_first_checkpoint(cmd, checkpoint, timeout=240) -> int:
    """Start ``cmd``, SIGKILL it as soon as ``checkpoint`` holds a complete epoch; returns that epoch."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not checkpoint.is_file():
            if proc.poll() is not None:
                pytest.fail(f"training ended (rc {proc.returncode}) before its first checkpoint: "
                            f"{proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within the timeout")
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill: make the epochs longer"
    return _epoch(checkpoint)


def test_killed_run_resumes_at_its_last_epoch_and_matches_an_uninterrupted_run(knee_data, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(_train_cmd(knee_data, reference), cwd=REPO, env=subprocess_env(), check=True, capture_output=True)

    done = _kill_after_first_checkpoint(_train_cmd(knee_data, killed), killed / "checkpoint.pt")
    assert 1 <= done < EPOCHS
    # what the kill left is complete: both files load, tensors only
    torch.load(killed / "checkpoint.pt", weights_only=True)
    torch.load(killed / "model.pt", weights_only=True)

    proc = subprocess.run(_train_cmd(knee_data, killed), cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"epoch {done} of {EPOCHS} done, continuing" in proc.stdout + proc.stderr
    assert _epoch(killed / "checkpoint.pt") == EPOCHS

    # model, optimizer, RNG (batch order, crops, rotations) and the best-model record all came back
    for name in ("model.pt", "checkpoint.pt"):
        a, b = (torch.load(d / name, weights_only=True) for d in (reference, killed))
        a, b = (s.get("network", s) for s in (a, b))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after the resume"


@pytest.fixture()
def finished(knee_data, tmp_path):
    """A one-epoch run's checkpoint dir."""
    run(KNEE.workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(tmp_path),
                      output_dir=str(tmp_path / "tb"), max_epochs=1))
    return tmp_path


def test_rerunning_a_finished_run_changes_nothing(knee_data, finished):
    before = {p.name: p.read_bytes() for p in (finished / "model.pt", finished / "checkpoint.pt")}
    run(KNEE.workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(finished),
                      output_dir=str(finished / "tb"), max_epochs=1))
    assert {p.name: p.read_bytes() for p in (finished / "model.pt", finished / "checkpoint.pt")} == before


def test_a_larger_max_epochs_trains_on(knee_data, finished):
    run(KNEE.workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(finished),
                      output_dir=str(finished / "tb"), max_epochs=2))
    assert _epoch(finished / "checkpoint.pt") == 2


def test_resume_false_starts_again(knee_data, finished):
    first = torch.load(finished / "checkpoint.pt", weights_only=True)["network"]
    run(KNEE.workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(finished),
                      output_dir=str(finished / "tb"), max_epochs=1, resume="false"))
    again = torch.load(finished / "checkpoint.pt", weights_only=True)
    assert _epoch(finished / "checkpoint.pt") == 1
    # a new run from the same seed: the same weights as the first one-epoch run, not a second epoch
    assert all(torch.equal(first[k], again["network"][k]) for k in first)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated or not a PyTorch checkpoint"),
    (lambda p: torch.save({"network": {}}, p), "lacks"),
])
def test_a_damaged_or_foreign_checkpoint_is_refused_and_kept(knee_data, finished, damage, message):
    checkpoint = finished / "checkpoint.pt"
    damage(checkpoint)
    kept = checkpoint.read_bytes()
    model = (finished / "model.pt").read_bytes()
    with pytest.raises(Exception) as err:
        run(KNEE.workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(finished),
                          output_dir=str(finished / "tb"), max_epochs=2))
    text = error_chain(err.value)
    assert message in text and str(checkpoint) in text and "--resume false" in text
    assert checkpoint.read_bytes() == kept and (finished / "model.pt").read_bytes() == model


def test_a_checkpoint_beyond_max_epochs_says_what_to_pass(knee_data, finished):
    run(KNEE.workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(finished),
                      output_dir=str(finished / "tb"), max_epochs=2))
    with pytest.raises(Exception) as err:
        run(KNEE.workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(finished),
                          output_dir=str(finished / "tb"), max_epochs=1))
    assert "--max_epochs 2 or more" in error_chain(err.value)
