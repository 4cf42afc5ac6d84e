"""A real MONAI Label 0.8.5 server started by ``python -m scripts.serve`` on every bundle of the repo.

One server (a subprocess in its own process group, from the dedicated ``.venv-monailabel``) for the module:
``/info/`` lists each bundle with its classes; ``POST /infer/<bundle>`` on a real volume (TotalSegmentator's
3 mm CT for the CT bundles, its 3 mm MR for the knee bundle) returns a label map with the input's shape and
affine and only the bundle's label values; a one-epoch ``/train/`` of the knee bundle on two labelled studies
finishes and rewrites the app's ``model.pt``. The bundles run at tiny widths with random weights (the configs'
``--override``, weights via ``--ckpt_root``) so the module takes a few minutes on 2 CPU cores.

Skipped with a reason when ``.venv-monailabel`` is absent (``python -m scripts.serve setup`` creates it) or
``../shared/data`` is; with ``MEDSEG_REQUIRE_MONAILABEL=1`` (set by ``.ci/run``) a missing venv fails instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from custom_networks.support import head_neck
from scripts.package import BUNDLES
from scripts.serving import env as serving_env
from tests.conftest import PYTHON, REPO, SHARED_DATA, bundle_dir, subprocess_env

EXAMPLES = SHARED_DATA / "totalsegmentator_example"
REQUIRED = os.environ.get("MEDSEG_REQUIRE_MONAILABEL") == "1"
START_TIMEOUT_S = 240
INFER_TIMEOUT_S = 300
TRAIN_TIMEOUT_S = 420

#: tiny widths (the bundle tests' values), the CT at its own 3 mm in-plane instead of 0.8 mm (about 15x fewer
#: pixels per slice; the head-neck bundle still resamples, to 6 mm), and for the knee bundle a one-epoch run
#: that validates and so saves its weights
TINY = {
    "knee_eas_unet": {"network_def#features": [4, 8, 16, 32, 64], "slices_per_volume": 2, "val_interval": 1},
    "lower_limb_afu_unet": {"network_def#features": [4, 8, 16, 32], "pixdim": [3.0, 3.0, -1]},
    "spine_msr_attention_unet": {"network_def#features": [8, 16, 32, 64, 128], "pixdim": [3.0, 3.0, -1]},
    "head_neck_two_stage_unet": {"features": [4, 8, 16, 32], "stage1_size": [32, 32, 16],
                                 "crop_sizes": {o: [16, 16, 16] for o in head_neck.ORGANS},
                                 "pixdim": [6.0, 6.0, 7.5], "min_margin": [2, 2, 1]},
}
#: bundle -> study it is run on
STUDY = {"knee_eas_unet": "knee", "lower_limb_afu_unet": "ct", "spine_msr_attention_unet": "ct",
         "head_neck_two_stage_unet": "ct"}
TRAINED = "knee_eas_unet"


def _require(condition: bool, reason: str, required: bool = False) -> None:
    if not condition:
        pytest.fail(reason) if required else pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", body: dict | None = None, timeout: float = 30) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def _tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


def expected_labels(bundle: str) -> dict[str, int]:
    """What MONAI Label should announce: the metadata's class names (one-channel bundles: label value 1)."""
    pred = json.loads((bundle_dir(bundle) / "configs" / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"]
    channels = pred["channel_def"]
    if pred["num_channels"] == 1:
        return {next(iter(channels.values())).lower(): 1}
    return {name.lower(): int(k) for k, name in channels.items() if name.lower() != "background"}


def write_tiny_weights(bundle: str, out: Path) -> Path:
    """Random weights of the tiny network (seed 0) as ``out/<bundle>/model.pt``, ``{"model": state_dict}``."""
    parser = ConfigParser()
    parser.read_config(str(bundle_dir(bundle) / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle_dir(bundle))
    for key, value in TINY[bundle].items():
        if key in parser:
            parser[key] = value
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def")
    path = out / bundle / "model.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": net.state_dict()}, path)
    return path


def write_studies(folder: Path) -> Path:
    """Real CT and MR volumes (copied, never into the repo) and knee labels for two MR studies."""
    folder.mkdir()
    shutil.copyfile(EXAMPLES / "example_ct.nii.gz", folder / "ct.nii.gz")
    labels = folder / "labels" / "final"
    labels.mkdir(parents=True)
    mr = nib.load(EXAMPLES / "example_mr_sm.nii.gz")
    for name in ("knee", "knee_b"):
        shutil.copyfile(EXAMPLES / "example_mr_sm.nii.gz", folder / f"{name}.nii.gz")
        label = np.zeros(mr.shape, np.uint8)
        label[40:70, 30:50, 5:15] = 1  # "femoral cartilage"
        label[40:70, 50:60, 5:15] = 2  # "tibial cartilage"
        nib.save(nib.Nifti1Image(label, mr.affine), str(labels / f"{name}.nii.gz"))
    return folder


def _report(request, line: str) -> None:
    """A measurement line in pytest's terminal output, also when output is captured."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n[monailabel] {line}", flush=True)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    _require(serving_env.is_ready(), f"the MONAI Label environment {serving_env.VENV} is absent or incomplete; "
             f"create it with: {serving_env.SETUP_COMMAND}", required=REQUIRED)
    _require(EXAMPLES.is_dir(), f"real example volumes not found at {EXAMPLES}")
    tmp = tmp_path_factory.mktemp("monailabel")
    studies = write_studies(tmp / "studies")
    for bundle in BUNDLES:
        write_tiny_weights(bundle, tmp / "ckpt")
    port, log = _free_port(), tmp / "serve.log"
    cmd = [PYTHON, "-m", "scripts.serve", "--studies", str(studies), "--app_dir", str(tmp / "app"),
           "--port", str(port), "--override", json.dumps(TINY), "--ckpt_root", str(tmp / "ckpt")]
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        info = None
        while time.perf_counter() - start < START_TIMEOUT_S:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode} before answering:\n{_tail(log)}")
            try:
                info = json.loads(_request(f"{url}/info/", timeout=5))
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        if info is None:
            pytest.fail(f"no answer from {url}/info/ within {START_TIMEOUT_S} s:\n{_tail(log)}")
        started = time.perf_counter() - start
        _report(request, f"server start (python -m scripts.serve to /info/ answering): {started:.1f} s")
        yield SimpleNamespace(url=url, info=info, log=log, app=tmp / "app", studies=studies)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_info_lists_every_bundle_with_its_classes(server):
    models = server.info["models"]
    assert set(models) == set(BUNDLES), _tail(server.log)
    for bundle in BUNDLES:
        assert models[bundle]["labels"] == expected_labels(bundle), bundle
        assert models[bundle]["dimension"] == (3 if bundle == "head_neck_two_stage_unet" else 2), bundle
    assert set(server.info["trainers"]) == set(BUNDLES)
    assert server.info["datastore"]["total"] == 3 and server.info["datastore"]["completed"] == 2


@pytest.mark.parametrize("bundle", BUNDLES)
def test_infer_returns_a_label_map_in_the_input_geometry(server, bundle, tmp_path, request):
    image = server.studies / f"{STUDY[bundle]}.nii.gz"
    start = time.perf_counter()
    try:
        body = _request(f"{server.url}/infer/{bundle}?image={STUDY[bundle]}&output=image", method="POST", body={},
                        timeout=INFER_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        pytest.fail(f"/infer/{bundle}: HTTP {e.code} {e.read()[:2000]!r}\n{_tail(server.log)}")
    seconds = time.perf_counter() - start
    _report(request, f"infer {bundle} on {image.name} through the server: {seconds:.1f} s")
    out = tmp_path / "label.nii.gz"
    out.write_bytes(body)
    label, source = nib.load(out), nib.load(image)
    assert label.shape == source.shape
    np.testing.assert_allclose(label.affine, source.affine, atol=1e-3)
    values = set(np.unique(np.asarray(label.dataobj)).astype(int).tolist())
    assert values <= {0} | set(expected_labels(bundle).values()), values


def test_one_epoch_of_training_through_the_server_rewrites_the_weights(server, request):
    weights = server.app / "model" / TRAINED / "models" / "model.pt"
    before = hashlib.sha256(weights.read_bytes()).hexdigest()
    start = time.perf_counter()
    _request(f"{server.url}/train/{TRAINED}", method="POST",
             body={"max_epochs": 1, "val_split": 0.5, "device": "cpu", "multi_gpu": False})
    task = {}
    while time.perf_counter() - start < TRAIN_TIMEOUT_S:
        task = json.loads(_request(f"{server.url}/train/"))
        if task.get("status") not in ("SUBMITTED", "RUNNING"):
            break
        time.sleep(1)
    details = "\n".join(task.get("details", []))
    assert task.get("status") == "DONE", f"training ended as {task.get('status')}:\n{details}\n{_tail(server.log)}"
    _report(request, f"one-epoch /train/{TRAINED} (2 studies, 1 train + 1 validation): "
                     f"{time.perf_counter() - start:.1f} s")
    assert hashlib.sha256(weights.read_bytes()).hexdigest() != before, details
