"""scripts.export: TorchScript (ckpt_export) and ONNX of every bundle's tiny network; ONNX Runtime agrees with PyTorch."""

from __future__ import annotations

import json
import fire
import pytest
import torch

from scripts import export
from scripts.common.bundles import Bundle

ORGANS = ["brainstem"]
#: bundle -> shallow tiny overrides (export time grows with the number of layers) and a 2D example shape.
#: Dynamic batch/slice size doubles the ONNX export time, so only lower_limb checks it here (same code for all 2D).
DYNAMIC = {"lower_limb_afu_unet"}
TINY = {
    "knee_eas_unet": ({"network_def#features": [4, 8, 16]}, (1, 1, 32, 32)),
    "lower_limb_afu_unet": ({"network_def#features": [4, 8, 16]}, (1, 1, 32, 32)),
    "spine_msr_attention_unet": ({"network_def#features": [8, 16, 32]}, (1, 1, 32, 32)),
    "head_neck_two_stage_unet": ({"features": [4, 8, 16], "stage1_size": [16, 16, 8], "organs": ORGANS,
                                  "crop_sizes": {o: [8, 8, 8] for o in ORGANS}}, None),
}
ATOL = 1e-4


def _tiny_ckpt(bundle: str, path) -> str:
    torch.manual_seed(0)
    net = Bundle(bundle).parser(["inference.json"], **TINY[bundle][0]).get_parsed_content("network_def")
    torch.save({"model": net.state_dict()}, path)
    return str(path)


@pytest.mark.parametrize("bundle", list(TINY))
def test_export_agrees_with_pytorch(bundle, tmp_path):
    overrides, shape = TINY[bundle]
    report = export.export_bundle(bundle, _tiny_ckpt(bundle, tmp_path / "model.pt"), tmp_path / "out", overrides,
                                  shape, atol=ATOL, repeats=2, dynamic=bundle in DYNAMIC,
                                  log=lambda *_: None)
    expected = ["stage1", *[f"stage2_{o}" for o in ORGANS]] if bundle.startswith("head_neck") else ["model"]
    assert list(report["parts"]) == expected and report["ok"]
    for name, part in report["parts"].items():
        assert part["ort_max_abs_diff"] <= ATOL and part["torchscript_max_abs_diff"] <= ATOL, (name, part)
        assert part["ort_over_torch"] > 0
        assert (tmp_path / "out" / f"{name}.onnx").is_file()
        extra = {"metadata.json": "", "inference.json": ""}
        torch.jit.load(str(tmp_path / "out" / f"{name}.ts"), _extra_files=extra)  # ckpt_export stores the configs
        assert json.loads(extra["inference.json"])["network_def"]
    if bundle.startswith("head_neck"):
        assert "model" in report["not_exported"]
    if bundle in DYNAMIC:
        first, other = report["parts"]["model"]["shapes"]  # another batch and slice size through the same graph
        assert first == [1, 1, 32, 32] and other[0] == 3 and other[2] > 32


def test_command_line_refuses_a_mismatched_checkpoint_and_an_unknown_bundle(tmp_path):
    """The fire command line (in process: a subprocess would pay MONAI's import again) reads ``#`` overrides."""
    bundle = "lower_limb_afu_unet"
    ckpt = _tiny_ckpt(bundle, tmp_path / "model.pt")
    args = [bundle, "--ckpt", ckpt, "--out", str(tmp_path / "out"), "--network_def#features=[4,8,16,32]"]
    with pytest.raises(SystemExit, match="weights of another network"):
        fire.Fire(export.main, command=args)  # features differ from the checkpoint's
    assert not (tmp_path / "out" / "model.onnx").exists()
    with pytest.raises(SystemExit, match="valid bundles"):
        fire.Fire(export.main, command=["knee", "--ckpt", ckpt])
