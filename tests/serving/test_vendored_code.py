"""MONAI Label serves each bundle with that bundle's own vendored ``custom_networks`` (issue 18).

Two bundle folders whose vendored ``custom_networks`` differ only in a marker (1 in ``alpha``, 2 in ``beta``):
their pre-transform sets the image to ``10 * marker``, their network adds ``marker``, so a bundle that runs its
own code answers ``11 * marker`` everywhere. MONAI Label's own ``BundleInferTask``, taken from ``lib/medseg.py``
(the app's copy of ``scripts/serving/app_lib.py``) as the served app's ``main.py`` takes it, loads both in the
dedicated venv (both tasks first, as the server starts them), then runs whole inferences alternating between the
two. MONAI Label drops ``scripts`` from ``sys.modules`` between bundles but not ``custom_networks``, so without
``app_lib``'s fix the second bundle ran the first one's copy (answer 11 instead of 22).

Skipped (failed with ``MEDSEG_REQUIRE_MONAILABEL=1``) without ``.venv-monailabel``; needs no shared data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import nibabel as nib
import numpy as np
import pytest
import torch

from scripts.serve import server_env
from scripts.serving import app as serving_app
from scripts.serving import env as serving_env
from tests.serving.helpers import REQUIRED, require

pytestmark = pytest.mark.slow

MARKERS = {"alpha": 1, "beta": 2}

VENDORED = '''\
"""A vendored copy that differs from the other bundle's only in MARKER."""
import torch
from monai.transforms import MapTransform

MARKER = {marker}


class MarkImaged(MapTransform):
    def __call__(self, data):
        d = dict(data)
        for key in self.keys:
            d[key] = d[key] * 0 + 10 * MARKER
        return d


class MarkerNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.weight * x + MARKER
'''

INFERENCE = {
    "bundle_root": ".",
    "device": "$torch.device('cpu')",
    "network_def": {"_target_": "custom_networks.MarkerNet"},
    "network": "$@network_def.to(@device)",
    "preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "custom_networks.MarkImaged", "keys": "image"},
    ]},
    "inferer": {"_target_": "SimpleInferer"},
    "postprocessing": {"_target_": "Compose", "transforms": []},
}

METADATA = {
    "version": "0.1.0",
    "description": "marker bundle",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [8, 8, 4]}},
        "outputs": {"pred": {"type": "image", "num_channels": 1, "channel_def": {"0": "background", "1": "marker"}}},
    },
}

#: run by the MONAI Label venv's python: ``child.py APP IMAGE``; prints the label values of each answer
CHILD = '''\
import json, sys
import nibabel as nib
import numpy as np

app, image = sys.argv[1], sys.argv[2]
sys.path.insert(0, app)  # the app folder, as MONAI Label puts it there for main.py
from lib.medseg import BundleInferTask
import monailabel.tasks.train.bundle as train_bundle
import lib.medseg as medseg

tasks = {name: BundleInferTask(f"{app}/model/{name}", {"preload": "false"}) for name in ("alpha", "beta")}
answers = []
for name in ("alpha", "beta", "alpha", "beta"):
    label, _ = tasks[name]({"image": image, "device": "cpu"})
    answers.append([name, sorted(np.unique(np.asarray(nib.load(label).dataobj)).tolist())])
patched = getattr(medseg, "unload_module", None) is train_bundle.unload_module
print("RESULT " + json.dumps({"answers": answers, "train_task_patched": patched}))
'''


def _bundle(app, name: str) -> None:
    root = app / "model" / name
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "custom_networks").mkdir()
    (root / "custom_networks" / "__init__.py").write_text(VENDORED.format(marker=MARKERS[name]))
    (root / "configs" / "inference.json").write_text(json.dumps(INFERENCE, indent=2))
    (root / "configs" / "metadata.json").write_text(json.dumps(METADATA, indent=2))
    torch.save({"weight": torch.ones(())}, root / "models" / "model.pt")


def test_each_served_bundle_runs_its_own_vendored_code(tmp_path):
    require(serving_env.is_ready(), f"the MONAI Label environment {serving_env.VENV} is absent or incomplete; "
            f"create it with: {serving_env.SETUP_COMMAND}", required=REQUIRED)
    app = tmp_path / "app"
    (app / "lib").mkdir(parents=True)
    (app / "lib" / "__init__.py").write_text("")
    shutil.copyfile(serving_app.APP_LIB, app / "lib" / "medseg.py")  # what build_app copies
    for name in MARKERS:
        _bundle(app, name)
    image = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), str(image))
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD))
    proc = subprocess.run([str(serving_env.python()), str(tmp_path / "child.py"), str(app), str(image)],
                          cwd=tmp_path, env=server_env(), capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["answers"] == [[name, [11 * MARKERS[name]]] for name in ("alpha", "beta", "alpha", "beta")]
    assert result["train_task_patched"], "BundleTrainTask would still train with whichever copy was imported last"
