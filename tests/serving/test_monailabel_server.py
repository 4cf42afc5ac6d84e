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

import hashlib
import json
import shutil
import time
import urllib.error
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.serving.helpers import BUNDLES, EXAMPLES, expected_labels, require_server_prerequisites, running_server
from tests.serving.helpers import http as _request
from tests.serving.helpers import report as _report
from tests.serving.helpers import tail as _tail

pytestmark = pytest.mark.slow

INFER_TIMEOUT_S = 300
TRAIN_TIMEOUT_S = 420

#: bundle -> study it is run on
STUDY = {"knee_eas_unet": "knee", "lower_limb_afu_unet": "ct", "spine_msr_attention_unet": "ct",
         "head_neck_two_stage_unet": "ct"}
TRAINED = "knee_eas_unet"


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


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    require_server_prerequisites()
    tmp = tmp_path_factory.mktemp("monailabel")
    with running_server(request, tmp, write_studies(tmp / "studies"), BUNDLES) as srv:
        yield srv


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
