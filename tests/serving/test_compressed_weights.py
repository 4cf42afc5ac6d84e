"""MONAI Label serves the compressed weights of ``python -m scripts.compress`` and runs the bundle's ``runtime``.

MONAI Label loads ``models/model.pt`` itself (a non-strict ``load_state_dict``) and runs no evaluator handlers, so
the app's ``BundleInferTask`` (``scripts/serving/app_lib.py``, point 5) gives each task's network the bundles' own
compressed-checkpoint reader and runs it in the bundle's ``runtime``. A tiny knee network, fitted to label intensity
bands of a volume (so its label map has many boundaries), then channel-pruned and quantized to the thesis's 31
levels and saved compressed: MONAI Label's answers in torch and in ``runtime auto`` (OpenVINO in the server's
environment) must be the label map of the bundle's own ``inference.json`` with the same file.

Skipped (failed with ``MEDSEG_REQUIRE_MONAILABEL=1``) without ``.venv-monailabel``; needs no shared data.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import torch

from custom_networks.compression import quantization
from custom_networks.compression.channel_pruning import ChannelPruner
from custom_networks.compression.checkpoint import compressed_state_dict, save_checkpoint
from scripts.common.registry import tiny
from scripts.serve import server_env
from scripts.serving import app as serving_app
from scripts.serving import env as serving_env
from tests.bundle_configs.helpers import BundleUnderTest, run
from tests.engine.test_runtimes import MAX_CHANGED, _fit_to_intensity_bands
from tests.serving.helpers import REQUIRED, require

BUNDLE = "knee_eas_unet"

#: run by the MONAI Label venv's python: ``child.py APP_TORCH APP_AUTO IMAGE OUT``
CHILD = '''
import json, shutil, sys
app_torch, app_auto, image, out = sys.argv[1:]
sys.path.insert(0, app_torch)  # the app folder, as MONAI Label puts it there for main.py
from lib.medseg import BundleInferTask

result = {}
for name, app in (("torch", app_torch), ("auto", app_auto)):
    task = BundleInferTask(f"{app}/model/knee_eas_unet", {"preload": "false"})
    label, _ = task({"image": image, "device": "cpu"})
    shutil.copyfile(label, f"{out}/{name}.nii.gz")
    parts = list(task.runtime._opened.values()) if task.runtime is not None else []
    result[name] = {"runtime": task.runtime.runtime if task.runtime else None, "ran": [p.ran for p in parts]}
print("RESULT " + json.dumps(result))
'''


def _image(path):
    """A 64 x 64 x 4 volume with a bright disc in a ramp: structure for the fitted network to label."""
    x, y = np.meshgrid(np.linspace(-1, 1, 64), np.linspace(-1, 1, 64), indexing="ij")
    plane = 200 * (x * x + y * y < 0.3) + 100 * (x + 1)
    volume = np.repeat(plane[..., None], 4, axis=2).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.diag([0.5, 0.5, 3.0, 1.0])), str(path))
    return path


def test_monailabel_serves_compressed_weights_in_the_bundles_runtime(tmp_path):
    require(serving_env.is_ready(), f"the MONAI Label environment {serving_env.VENV} is absent or incomplete; "
            f"create it with: {serving_env.SETUP_COMMAND}", required=REQUIRED)
    image = _image(tmp_path / "knee.nii.gz")
    bundle = BundleUnderTest(BUNDLE, tiny(BUNDLE))
    parser = bundle.parser()
    torch.manual_seed(0)
    net = _fit_to_intensity_bands(parser.get_parsed_content("network_def"), image,
                                  parser.get_parsed_content("network_def#out_channels"))
    ChannelPruner(net, rates=(0.25,)).step()
    quantization.attach_quantizers(net, quantization.THESIS_LEVELS)
    quantization.bake_quantizers(net)
    weights = tmp_path / "ckpt" / "model.pt"
    save_checkpoint(compressed_state_dict(net, quantization.THESIS_LEVELS), str(weights))

    run(bundle.workflow(["inference.json"], "infer", datalist=[str(image)], output_dir=str(tmp_path / "expected"),
                        ckpt_dir=str(weights.parent), runtime="torch"))
    expected = np.asarray(nib.load(next((tmp_path / "expected").glob("**/*_seg.nii.gz"))).dataobj)
    assert len(np.unique(expected)) > 1, "a one-label map would agree trivially"

    apps = {}
    for name, overrides in (("torch", {"runtime": "torch"}), ("auto", {})):
        app = apps[name] = tmp_path / f"app_{name}"
        (app / "lib").mkdir(parents=True)
        (app / "lib" / "__init__.py").write_text("")
        shutil.copyfile(serving_app.APP_LIB, app / "lib" / "medseg.py")  # what build_app copies
        serving_app.copy_bundle(BUNDLE, app, weights, {**tiny(BUNDLE), **overrides})
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "answers").mkdir()
    env = {**server_env(), "MEDSEG_RUNTIME_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([str(serving_env.python()), str(tmp_path / "child.py"), str(apps["torch"]),
                           str(apps["auto"]), str(image), str(tmp_path / "answers")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result == {"torch": {"runtime": "torch", "ran": []}, "auto": {"runtime": "auto", "ran": ["openvino"]}}
    for name in ("torch", "auto"):
        answer = np.asarray(nib.load(tmp_path / "answers" / f"{name}.nii.gz").dataobj)
        assert answer.shape == expected.shape
        changed = float((answer != expected).mean())
        print(f"MONAI Label, {name}: labels other than inference.json's, share of {expected.size} voxels: {changed}")
        assert changed <= MAX_CHANGED, (name, changed)
