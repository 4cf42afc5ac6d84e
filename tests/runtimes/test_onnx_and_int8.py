"""ONNX export, ONNX Runtime static int8 and the nn.Module runner of custom_networks.runtimes.

Tiny random-weight networks; tolerances are the measured worst case over three seeds with margin (random
weights give near-tied logits, so the int8 argmax agreement is lower than on a trained network).
"""

from __future__ import annotations

import copy

import onnx
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer

from custom_networks import AFUNet, UNet3D
from custom_networks.runtimes.int8 import quantize_int8
from custom_networks.runtimes.onnx_export import export_onnx
from custom_networks.runtimes.onnxruntime_network import OnnxRuntimeNetwork

SHAPE_3D = (1, 1, 32, 32, 16)
SHAPE_2D = (1, 1, 32, 32)


def _pair(tmp_path_factory, name, net, shape):
    """(net, float32 ONNX path, all-convs int8 ONNX path, default int8 ONNX path, test input)."""
    torch.manual_seed(0)
    net.eval()
    folder = tmp_path_factory.mktemp(name)
    fp32 = export_onnx(net, torch.randn(shape), folder / "fp32.onnx")
    calibration = [torch.randn(shape) for _ in range(2)]
    int8_all = quantize_int8(fp32, calibration, folder / "int8_all.onnx", min_in_channels=0, min_out_channels=0)
    int8_default = quantize_int8(fp32, calibration, folder / "int8.onnx")
    return net, fp32, int8_all, int8_default, torch.randn(shape)


@pytest.fixture(scope="module")
def unet3d(tmp_path_factory):
    return _pair(tmp_path_factory, "unet3d", UNet3D(1, 9, features=(4, 8, 16, 32)), SHAPE_3D)


@pytest.fixture(scope="module")
def afunet(tmp_path_factory):
    net = AFUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(4, 8, 16, 32))
    return _pair(tmp_path_factory, "afunet", net, SHAPE_2D)


@pytest.mark.parametrize("which", ["unet3d", "afunet"])
def test_onnx_float32_equals_torch(which, request):
    net, fp32, _, _, x = request.getfixturevalue(which)
    with torch.inference_mode():
        ref = net(x)
    out = OnnxRuntimeNetwork(fp32, num_threads=2)(x)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert (out - ref).abs().max().item() <= 1e-4


def test_onnx_dynamic_spatial_and_batch(unet3d):
    net, fp32, _, _, _ = unet3d
    x = torch.randn(2, 1, 16, 24, 8)  # another batch and spatial size than exported with
    with torch.inference_mode():
        ref = net(x)
    assert (OnnxRuntimeNetwork(fp32)(x) - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("which", ["unet3d", "afunet"])
def test_int8_close_to_float(which, request):
    # measured on seeds 0-2 with every conv int8: UNet3D max prob diff 0.019-0.024, argmax agreement 0.945-0.948;
    # AFUNet max prob diff <= 0.001
    net, _, int8_all, int8_default, x = request.getfixturevalue(which)
    with torch.inference_mode():
        p_ref = torch.softmax(net(x), 1)
    for path in (int8_all, int8_default):
        p = torch.softmax(OnnxRuntimeNetwork(path)(x), 1)
        assert (p - p_ref).abs().max().item() <= 0.06
        assert (p.argmax(1) == p_ref.argmax(1)).float().mean().item() >= 0.9


def test_int8_quantizes_only_wide_convs(unet3d):
    """Default: only convs with >= 16 input and >= 32 output channels get int8 weights (16->32, 32->32)."""
    _, fp32, int8_all, int8_default, _ = unet3d

    def int8_convs(path):
        model = onnx.load(str(path))
        made_by = {o: n.op_type for n in model.graph.node for o in n.output}
        return sum(n.op_type == "Conv" and made_by.get(n.input[1]) == "DequantizeLinear" for n in model.graph.node)

    n_convs = sum(n.op_type == "Conv" for n in onnx.load(str(fp32)).graph.node)
    assert int8_convs(int8_all) == n_convs == 15
    assert int8_convs(int8_default) == 2
    assert int8_default.stat().st_size < fp32.stat().st_size


def test_sliding_window_inferer_and_metatensor(unet3d):
    net, fp32, _, int8_default, _ = unet3d
    inferer = SlidingWindowInferer(roi_size=(16, 16, 16), sw_batch_size=4, overlap=0.25)
    x = MetaTensor(torch.randn(1, 1, 28, 16, 16))  # 2 overlapping windows, one batch of 2
    with torch.inference_mode():
        ref = inferer(x.as_tensor(), net)  # plain tensor: torch ops on MetaTensor patches are 10x slower here
        out = inferer(x, OnnxRuntimeNetwork(fp32))
        out8 = inferer(x, OnnxRuntimeNetwork(int8_default))
    assert out.shape == ref.shape == (1, 9, 28, 16, 16)
    assert (torch.as_tensor(out) - torch.as_tensor(ref)).abs().max().item() <= 1e-4
    assert (torch.as_tensor(out8) - torch.as_tensor(ref)).abs().max().item() <= 0.5


def test_runner_keeps_dtype_and_copies(unet3d):
    _, fp32, _, _, x = unet3d
    runner = OnnxRuntimeNetwork(fp32)
    assert runner(x.double()).dtype == torch.float64
    clone = copy.deepcopy(runner)  # an ORT session does not deepcopy; the runner reopens the file
    assert torch.equal(clone(x), runner(x))
    with pytest.raises(ValueError, match="expects a 5D input"):
        runner(torch.randn(1, 1, 32, 32))


def test_missing_and_garbage_file_errors(tmp_path):
    missing = tmp_path / "stage1_int8.onnx"
    with pytest.raises(FileNotFoundError, match=r"stage1_int8\.onnx does not exist.*export_onnx"):
        OnnxRuntimeNetwork(missing)
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"this is a torch checkpoint, not ONNX" * 10)
    with pytest.raises(ValueError, match=r"model\.onnx is not an ONNX model.*export_onnx"):
        OnnxRuntimeNetwork(garbage)
    with pytest.raises(ValueError, match=r"model\.onnx is not an ONNX model"):
        quantize_int8(garbage, [torch.randn(SHAPE_3D)], tmp_path / "q.onnx")
