"""The CPU runtimes of ``inference.json`` (``--runtime onnxruntime`` / ``openvino``): the same label maps as
PyTorch on real CT and MR, weights loaded the same way, the exported files cached by their weights."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Events

from custom_networks import TwoStageUNet, UNet3D
from custom_networks.engine.runtimes import RuntimeHandler
from custom_networks.runtimes.exported_part import ExportedPart
from custom_networks.runtimes.selection import AUTO_CPU_RUNTIME, resolve_runtime
from scripts.common.registry import tiny
from tests.bundle_configs.helpers import BundleUnderTest, run
from tests.conftest import SHARED_DATA

EXAMPLE = SHARED_DATA / "totalsegmentator_example"
OPENKBP = SHARED_DATA / "openkbp"
#: at most this share of voxels may get another label than PyTorch's (issue 19), float32 runtimes
MAX_CHANGED = 0.001
#: int8 changes the arithmetic: the label map must still be close (its Dice change is in the bundle READMEs)
MAX_CHANGED_INT8 = 0.05


class _Engine:  # what RuntimeHandler touches of an ignite engine
    def __init__(self, network, device="cpu"):
        self.network = network
        self.state = SimpleNamespace(device=torch.device(device))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_an_exported_part_computes_what_torch_does_and_is_exported_once(tmp_path, runtime):
    torch.manual_seed(0)
    net = UNet3D(in_channels=1, out_channels=3, features=(4, 8, 16, 32)).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    part = ExportedPart(net, runtime, cache_dir=tmp_path)
    with torch.inference_mode():
        expected = net(x)
    torch.testing.assert_close(part(x), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(part(x[:1, :, :8]), net(x[:1, :, :8]).detach(), atol=1e-4, rtol=1e-4)  # other shape
    files = list(tmp_path.glob("*.onnx"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp*"))
    stamp = files[0].stat().st_mtime_ns
    ExportedPart(net, runtime, cache_dir=tmp_path)(x)  # the same weights: the cached file, not a new export
    assert [f.stat().st_mtime_ns for f in tmp_path.glob("*.onnx")] == [stamp]
    with torch.no_grad():
        net.head.weight.add_(1.0)
    ExportedPart(net, runtime, cache_dir=tmp_path)(x)  # other weights: another file
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_the_handler_runs_the_named_parts_and_gives_the_torch_network_back(tmp_path):
    torch.manual_seed(0)
    net = TwoStageUNet(["a", "b"], {"a": (16, 16, 16), "b": (16, 16, 16)}, stage1_size=(16, 16, 16),
                       features=(4, 8, 16, 32)).eval()
    keys = list(net.state_dict())
    engine = _Engine(net)
    handler = RuntimeHandler("onnxruntime", parts=["stage1", "stage2.a", "stage2.b"], cache_dir=str(tmp_path))
    handler.started(engine)
    assert engine.network is not net
    assert isinstance(engine.network.stage1, ExportedPart) and isinstance(engine.network.stage2["b"], ExportedPart)
    assert isinstance(net.stage1, UNet3D) and isinstance(net.stage2["b"], UNet3D)  # the torch network is untouched
    assert list(net.state_dict()) == keys
    x = torch.randn(1, 1, 24, 24, 24)
    with torch.inference_mode():
        torch.testing.assert_close(engine.network(x), net(x), atol=1e-4, rtol=1e-4)
    handler.completed(engine)
    assert engine.network is net
    first = [handler._opened[k] for k in sorted(handler._opened)]  # stage1, stage2.a, stage2.b
    handler.started(engine)  # the next run, same weights: the open sessions again
    assert [handler._opened[k] for k in sorted(handler._opened)] == first
    handler.completed(engine)
    with torch.no_grad():
        net.stage1.head.weight.add_(1.0)  # new weights (as a reloaded checkpoint): stage 1 exported anew
    handler.started(engine)
    assert engine.network.stage1 is not first[0] and engine.network.stage2["a"] in first
    assert len(handler._opened) == 3
    with pytest.raises(ValueError, match="'tensorrt' is not one of auto, torch, onnxruntime, openvino"):
        RuntimeHandler("tensorrt")


def test_auto_is_openvino_on_a_cpu_torch_on_a_gpu_and_torch_where_openvino_is_missing(monkeypatch):
    assert AUTO_CPU_RUNTIME == "openvino"
    assert resolve_runtime("auto", "cpu") == "openvino"
    assert resolve_runtime("auto", "cuda:0") == "torch"
    assert resolve_runtime("onnxruntime", "cuda:0") == "onnxruntime"  # asked for by name: as asked
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    assert resolve_runtime("auto", "cpu") == "torch"
    engine = _Engine(UNet3D(in_channels=1, out_channels=2, features=(4, 8, 16, 32)))
    handler = RuntimeHandler("auto")
    attached = []
    engine.add_event_handler = lambda *args: attached.append(args)
    handler.attach(engine)
    assert [(event, f.__name__) for event, f in attached] == [(Events.COMPLETED, "log_torch")]  # the network stays


def _evaluator(net, images, handler):
    """A MONAI ``SupervisedEvaluator`` over ``images`` (one batch each) with ``handler`` attached."""
    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedEvaluator

    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=DataLoader(
        Dataset([{"image": image} for image in images]), batch_size=1), network=net)
    handler.attach(evaluator)
    return evaluator


def test_the_handler_gives_the_torch_network_back_when_a_run_raises_and_lets_the_error_through(tmp_path):
    """The second scan has the wrong rank: the exported part raises in the middle of the run. The evaluator keeps
    the torch network for its next run, and the error reaches the caller (ignite would swallow it: a handler of
    ``EXCEPTION_RAISED`` that returns ends the run quietly)."""
    torch.manual_seed(0)
    net = UNet3D(in_channels=1, out_channels=2, features=(4, 8, 16, 32)).eval()
    evaluator = _evaluator(net, [torch.randn(1, 16, 16, 16), torch.randn(16, 16, 16)],
                           RuntimeHandler("onnxruntime", cache_dir=str(tmp_path)))
    seen = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(type(e.network).__name__))
    with pytest.raises(ValueError, match="expects a 5D input"):
        evaluator.run()
    assert seen == ["ExportedPart"] and evaluator.network is net


def test_each_run_logs_one_line_naming_the_runtime_and_its_file(tmp_path, caplog):
    torch.manual_seed(0)
    net = UNet3D(in_channels=1, out_channels=2, features=(4, 8, 16, 32)).eval()
    handler = RuntimeHandler("openvino", cache_dir=str(tmp_path))
    evaluator = _evaluator(net, [torch.randn(1, 16, 16, 16)] * 2, handler)
    for _ in range(2):
        with caplog.at_level(logging.INFO, logger="custom_networks.engine.runtimes"):
            caplog.clear()
            evaluator.run()
        (file,) = tmp_path.glob("*.onnx")
        lines = [r.getMessage() for r in caplog.records if r.name == "custom_networks.engine.runtimes"]
        assert lines == [f"runtime openvino: the network ran in openvino from {file}"]
    assert evaluator.network is net


def test_int8_part_is_quantized_once_from_the_first_input(tmp_path):
    torch.manual_seed(0)
    net = UNet3D(in_channels=1, out_channels=3, features=(16, 32, 64, 128)).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    out = ExportedPart(net, "onnxruntime-int8", cache_dir=tmp_path)(x)
    with torch.inference_mode():
        expected = net(x)
    assert out.shape == expected.shape
    assert float((out.argmax(1) == expected.argmax(1)).float().mean()) > 0.9  # close, not equal: int8 arithmetic
    assert sorted(p.name.endswith("_int8.onnx") for p in tmp_path.glob("*.onnx")) == [False, True]


def _fit_to_intensity_bands(net, image, classes, steps=30):
    """``net`` after ``steps`` Adam steps on the volume's axial slices (cropped to multiples of 16), fitted to
    label its intensity quantile bands (one band per output channel above background, or > median for one)."""
    volume = np.asarray(nib.load(image).dataobj, dtype=np.float32)
    volume = (volume - volume.mean()) / (volume.std() + 1e-6)
    h, w = (s // 16 * 16 for s in volume.shape[:2])
    x = torch.from_numpy(np.moveaxis(volume[:h, :w], -1, 0)[:, None].copy())
    edges = torch.quantile(x.flatten()[::97], torch.linspace(0, 1, max(classes, 2) + 1)[1:-1])
    target = torch.bucketize(x, edges)
    loss = torch.nn.BCEWithLogitsLoss() if classes == 1 else torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for step in range(steps):
        batch = slice(step % len(x), step % len(x) + 4)
        out = net(x[batch])
        out = out[0] if isinstance(out, (list, tuple)) else out
        optimizer.zero_grad()
        loss(out, target[batch].float() if classes == 1 else target[batch, 0]).backward()
        optimizer.step()
    return net.eval()


def _label_map(out_dir):
    return np.asarray(nib.load(next(out_dir.glob("**/*_seg.nii.gz"))).dataobj)


def _compare_runtimes(bundle, image, tmp_path, monkeypatch, **overrides):
    """Run ``inference.json`` on ``image`` in each runtime; the share of voxels whose label differs from torch's."""
    monkeypatch.setenv("MEDSEG_RUNTIME_CACHE", str(tmp_path / "cache"))
    maps = {}
    for runtime in ("torch", "onnxruntime", "openvino", "onnxruntime-int8", "auto"):
        run(bundle.workflow(["inference.json"], "infer", datalist=[str(image)], output_dir=str(tmp_path / runtime),
                            runtime=runtime, **overrides))
        maps[runtime] = _label_map(tmp_path / runtime)
    assert len(np.unique(maps["torch"])) > 1, "a one-label map would agree trivially"
    changed = {r: float((m != maps["torch"]).mean()) for r, m in maps.items() if r != "torch"}
    print(f"{bundle.name}: labels other than torch's, share of {maps['torch'].size} voxels: {changed}")
    assert changed.pop("onnxruntime-int8") <= MAX_CHANGED_INT8
    return changed


@pytest.mark.slow
@pytest.mark.skipif(not EXAMPLE.is_dir(), reason=f"real CT/MR example data not found at {EXAMPLE}")
@pytest.mark.parametrize("name, image", [("knee_eas_unet", "example_mr_sm.nii.gz"),
                                         ("lower_limb_afu_unet", "example_ct.nii.gz"),
                                         ("spine_msr_attention_unet", "example_ct.nii.gz")])
def test_2d_bundles_label_real_volumes_as_pytorch_does(name, image, tmp_path, monkeypatch):
    """No trained 2D weights exist, and an untrained network labels every voxel alike, which would agree
    trivially: the network (the tests' widths) is fitted for a few steps to label intensity bands of the volume,
    so its label map has many boundaries, where a runtime's rounding could flip a label."""
    bundle = BundleUnderTest(name, tiny(name))
    parser = bundle.parser()
    real = nib.load(EXAMPLE / image)
    nib.save(real.slicer[:, :, real.shape[2] // 2 - 8: real.shape[2] // 2 + 8], tmp_path / image)  # 16 slices
    torch.manual_seed(0)
    net = _fit_to_intensity_bands(parser.get_parsed_content("network_def"), tmp_path / image,
                                  parser.get_parsed_content("network_def#out_channels"))
    (tmp_path / "ckpt").mkdir()
    torch.save(net.state_dict(), tmp_path / "ckpt" / "model.pt")
    changed = _compare_runtimes(bundle, tmp_path / image, tmp_path, monkeypatch, ckpt_dir=str(tmp_path / "ckpt"))
    assert all(c <= MAX_CHANGED for c in changed.values()), changed


@pytest.mark.slow
@pytest.mark.skipif(not OPENKBP.is_dir(), reason=f"OpenKBP data not found at {OPENKBP}")
def test_head_neck_shipped_weights_label_a_real_ct_as_pytorch_does(tmp_path, monkeypatch):
    from scripts.prepare_openkbp import prepare

    bundle = BundleUnderTest("head_neck_two_stage_unet", {})
    if not (bundle.root / "models" / "model.pt").is_file():
        pytest.skip("no shipped head-and-neck weights")
    shutil.copytree(OPENKBP / "validation-pats" / "pt_201", tmp_path / "source" / "validation-pats" / "pt_201")
    prepare(str(tmp_path / "source"), str(tmp_path / "data"), workers=1, log=None)
    changed = _compare_runtimes(bundle, tmp_path / "data" / "images" / "pt_201.nii.gz", tmp_path, monkeypatch)
    assert all(c <= MAX_CHANGED for c in changed.values()), changed
