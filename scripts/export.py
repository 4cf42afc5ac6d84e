"""Export a bundle's trained network to TorchScript and ONNX, and check ONNX Runtime against PyTorch on the CPU.

    python -m scripts.export knee_eas_unet --ckpt bundles/knee_eas_unet/models/model.pt --out dist/knee_export
    python -m scripts.export lower_limb_afu_unet --ckpt m.pt --out /tmp/x --shape "[1,1,64,64]" \\
        --network_def#features "[4,8,16,32]"      # any inference.json key, as for monai.bundle run

Writes into ``--out``:

- ``<part>.ts``: TorchScript through MONAI's ``ckpt_export`` (the same code as ``python -m monai.bundle
  ckpt_export``; the bundle's metadata and inference config are stored inside). ``torch.jit.script`` is
  tried first; when the network does not script it is traced (``use_trace``) on the example input, which is
  exact for these networks because their control flow does not depend on the data; the report says which.
- ``<part>.onnx``: the package's one exporter, ``custom_networks.runtimes.onnx_export.export_onnx``, with
  ``torch.onnx.export(dynamo=True)`` (opset 18; input ``"image"``, output ``"pred"``). 2D networks get a
  dynamic batch and dynamic height and width (inputs must be multiples of the network's ``size_multiple``), so they serve
  ``SliceInferer`` batches of any slice size; 3D parts have the fixed input size the bundle feeds them.
- ``export_report.json``: per part, the input shapes checked, the max abs difference of the ONNX Runtime
  (CPUExecutionProvider) and TorchScript outputs against eager PyTorch, the tolerance, and median CPU
  seconds per forward pass of PyTorch and ONNX Runtime (same thread count) with their ratio.

Parts (the registry's ``export_parts`` of each bundle): the whole network (``model``) for the 2D bundles.
``head_neck_two_stage_unet``'s ``TwoStageUNet``
finds each organ's box from stage 1's argmax by connected components (NumPy/SciPy) and crops a box whose
size depends on the data, which neither TorchScript nor ``torch.export`` can capture; its networks are
exported separately: ``stage1`` (9-class UNet3D at ``stage1_size``) and ``stage2_<organ>`` (binary UNet3D at
the organ's ``crop_sizes``). The box logic stays in Python (``custom_networks.nets.two_stage``,
``custom_networks.ops.boxes``).

Agreement: every output must satisfy ``max|ort - torch| <= atol * max(1, max|torch|)`` (default
``atol = 1e-4``; fp32 kernels differ in summation order, measured differences are about 1e-7 to 1e-5).
The exit status is 1 when a check fails.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import fire
import numpy as np
import torch

from custom_networks.runtimes.onnx_export import export_onnx
from custom_networks.ops.flags import as_bool
from scripts.common import registry
from scripts.common.bundles import REPO, Bundle, check, load_weights
from scripts.common.measure import median_seconds

#: default slice size for the 2D networks' example input (rounded up to the network's size multiple)
SLICE_SIZE = 160


class Part:
    """One exportable network: its module, the config expression that builds it, and its example input."""

    def __init__(self, name: str, module: torch.nn.Module, net_expr: str, state_prefix: str,
                 shape: tuple[int, ...], dynamic: bool) -> None:
        self.name, self.module, self.net_expr, self.state_prefix = name, module, net_expr, state_prefix
        self.shape, self.dynamic = tuple(int(s) for s in shape), dynamic


def _whole_network(net: torch.nn.Module, c: int, shape: tuple[int, ...] | None, dynamic: bool) -> list[Part]:
    """A 2D network as one part, on slices of :data:`SLICE_SIZE` (rounded up to its size multiple) by default."""
    m = int(net.size_multiple)
    size = m * math.ceil(SLICE_SIZE / m)
    default = (1, c, size, size)
    return [Part("model", net, "", "", tuple(shape) if shape else default, dynamic)]


def _stages(net: torch.nn.Module, c: int, shape: tuple[int, ...] | None, dynamic: bool) -> list[Part]:
    """A ``TwoStageUNet``: stage 1 at ``stage1_size`` and each organ's network at its crop size (fixed sizes)."""
    parts = [Part("stage1", net.stage1, "$@network_def.stage1", "stage1.", (1, c, *net.stage1_size), False)]
    for organ in net.organs:
        parts.append(Part(f"stage2_{organ}", net.stage2[organ], f"$@network_def.stage2['{organ}']",
                          f"stage2.{organ}.", (1, c, *net.crop_sizes[organ]), False))
    return parts


#: the registry's ``export_parts`` -> (the parts of such a network, {not exported part: why})
PARTS = {
    "model": (_whole_network, {}),
    "stages": (_stages, {"model": (
        "TwoStageUNet (whole pipeline): organ boxes come from connected components of stage 1's argmax "
        "(NumPy/SciPy) and set data-dependent crop sizes, which TorchScript and torch.export cannot "
        "capture; stage1 and each stage2_<organ> network are exported instead.")}),
}


def parts_of(bundle: str, net: torch.nn.Module, in_channels: int, shape: tuple[int, ...] | None = None,
             dynamic: bool = True) -> list[Part]:
    """The separately exported networks of ``bundle`` with their example input shapes."""
    return PARTS[registry.record(bundle).export_parts][0](net, int(in_channels), shape, dynamic)


def _check_shapes(part: Part) -> list[tuple[int, ...]]:
    """The example shape, plus (for dynamic parts) another batch size and slice size."""
    shapes = [part.shape]
    if part.dynamic:
        m = int(part.module.size_multiple)
        shapes.append((part.shape[0] + 2, part.shape[1], *[s + m for s in part.shape[2:]]))
    return shapes


def export_torchscript(bundle: str, part: Part, ckpt: Path, nested: bool, path: Path,
                       overrides: dict[str, Any]) -> str:
    """TorchScript through ``monai.bundle.ckpt_export``: scripted if possible, else traced. Returns the method."""
    from monai.bundle import ckpt_export

    b = Bundle(bundle)
    kwargs: dict[str, Any] = dict(
        net_id="network_def", filepath=str(path), ckpt_file=str(ckpt), key_in_ckpt="model" if nested else "",
        config_file=str(b.configs / "inference.json"), meta_file=str(b.configs / "metadata.json"),
        bundle_root=str(b.root), **overrides,
    )
    with tempfile.TemporaryDirectory() as tmp:
        if part.net_expr:  # a sub-network: its own checkpoint and config id
            sub_ckpt = Path(tmp) / f"{part.name}.pt"
            torch.save({"model": part.module.state_dict()}, sub_ckpt)
            kwargs.update(net_id="_export_net", _export_net=part.net_expr, ckpt_file=str(sub_ckpt), key_in_ckpt="model")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated in torch 2.13 and warns on every call
            try:  # the same scripting ckpt_export would do, without building the config a second time
                torch.jit.script(part.module)
                method = "script"
            except Exception as e:  # noqa: BLE001 - any scripting failure falls back to tracing
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                method = f"trace (torch.jit.script failed: {reason})"
            if method == "script":
                ckpt_export(**kwargs)
            else:
                ckpt_export(**kwargs, use_trace=True, input_shape=list(part.shape))
    return method


def check_part(part: Part, ts_path: Path, onnx_path: Path, atol: float, threads: int, repeats: int) -> dict:
    """ORT and TorchScript vs eager PyTorch on every check shape; speed on the example shape."""
    from custom_networks.extras import require

    ort = require("onnxruntime", "Checking the ONNX export")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(ts_path), map_location="cpu")
    gen = torch.Generator().manual_seed(0)
    result: dict[str, Any] = {"shapes": [], "ort_max_abs_diff": 0.0, "torchscript_max_abs_diff": 0.0, "ok": True}
    with torch.no_grad():
        for shape in _check_shapes(part):
            x = torch.rand(shape, generator=gen)
            ref = part.module(x)
            ort_out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
            d_ort = float(np.abs(ort_out - ref.numpy()).max())
            d_ts = float((scripted(x) - ref).abs().max())
            tol = atol * max(1.0, float(ref.abs().max()))
            result["shapes"].append(list(shape))
            result["ort_max_abs_diff"] = max(result["ort_max_abs_diff"], d_ort)
            result["torchscript_max_abs_diff"] = max(result["torchscript_max_abs_diff"], d_ts)
            result["tolerance"] = max(result.get("tolerance", 0.0), tol)
            result["ok"] &= d_ort <= tol and d_ts <= tol
        x = torch.rand(part.shape, generator=gen).numpy()
        result["torch_s"] = median_seconds(lambda a: part.module(torch.from_numpy(a)), x, repeats)
        result["ort_s"] = median_seconds(lambda a: session.run(None, {session.get_inputs()[0].name: a}), x, repeats)
    result["ort_over_torch"] = result["ort_s"] / result["torch_s"]
    return result


def export_bundle(bundle: str, ckpt: str | Path, out: str | Path, overrides: dict[str, Any] | None = None,
                  shape: tuple[int, ...] | None = None, atol: float = 1e-4, threads: int = 2, repeats: int = 5,
                  dynamic: bool = True, log=print) -> dict:
    """Export every part of ``bundle`` (see the module docstring); returns the report, also written as JSON."""
    check(bundle)
    overrides = dict(overrides or {})
    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parser = Bundle(bundle).parser(["inference.json"], **overrides)
    net = parser.get_parsed_content("network_def")
    nested = load_weights(net, ckpt)
    net.eval()
    report: dict[str, Any] = {"bundle": bundle, "ckpt": str(ckpt), "atol": atol, "threads": threads,
                              "torch": torch.__version__, "parts": {},
                              "not_exported": dict(PARTS[registry.record(bundle).export_parts][1])}
    for part in parts_of(bundle, net, parser.get_parsed_content("network_def#in_channels"), shape, dynamic):
        part.module.eval()
        ts_path, onnx_path = out / f"{part.name}.ts", out / f"{part.name}.onnx"
        start = time.perf_counter()
        method = export_torchscript(bundle, part, Path(ckpt), nested, ts_path, overrides)
        export_onnx(part.module, torch.rand(part.shape), onnx_path, dynamic=part.dynamic, dynamo=True,
                    check_atol=None)  # check_part compares it below, on more shapes
        entry = {"torchscript": str(ts_path), "torchscript_method": method, "onnx": str(onnx_path),
                 "export_s": time.perf_counter() - start, "dynamic": part.dynamic}
        entry.update(check_part(part, ts_path, onnx_path, atol, threads, repeats))
        report["parts"][part.name] = entry
        log(f"{bundle}/{part.name}: ort max|diff| {entry['ort_max_abs_diff']:.2e}, torchscript "
            f"{entry['torchscript_max_abs_diff']:.2e} (tol {entry['tolerance']:.1e}, shapes {entry['shapes']}), "
            f"ORT/torch time {entry['ort_over_torch']:.2f} ({entry['ort_s'] * 1e3:.1f} / {entry['torch_s'] * 1e3:.1f} ms), "
            f"torchscript by {method.split(' ')[0]}{'' if entry['ok'] else '  FAILED'}")
    for name, reason in report["not_exported"].items():
        log(f"{bundle}/{name}: not exported: {reason}")
    report["ok"] = all(p["ok"] for p in report["parts"].values())
    (out / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(bundle: str, ckpt: str | None = None, out: str | None = None, shape: tuple[int, ...] | None = None,
         atol: float = 1e-4, threads: int = 2, repeats: int = 5, dynamic: bool = True, **overrides: Any) -> None:
    """Export ``bundle``'s network(s) from ``--ckpt`` into ``--out`` and check ONNX Runtime against PyTorch.

    Args:
        bundle: bundle name.
        ckpt: weights (default ``bundles/<bundle>/models/model.pt``).
        out: output folder (default ``dist/<bundle>_export``).
        shape: example input ``[B, C, H, W]`` for a 2D network (default ``[1, 1, 160, 160]``); 3D parts use
            the bundle's ``stage1_size`` / ``crop_sizes``.
        atol: agreement tolerance, relative to ``max(1, max|torch output|)``.
        threads: CPU threads for PyTorch and ONNX Runtime in the speed comparison.
        repeats: timed forward passes per runtime (median reported).
        dynamic: 2D networks: dynamic batch and slice size in the ONNX graph (``False``: the example shape only).
        overrides: inference.json keys, e.g. ``--network_def#features "[4,8,16,32]"``.
    """
    ckpt = ckpt or str(REPO / "bundles" / bundle / "models" / "model.pt")
    if not os.path.isfile(ckpt):
        sys.exit(f"error: no checkpoint at {ckpt}; pass --ckpt or train the bundle first.")
    try:
        report = export_bundle(bundle, ckpt, out or f"dist/{bundle}_export", overrides, shape, atol, threads, repeats,
                               as_bool(dynamic, "dynamic"))
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(f"report: {Path(out or f'dist/{bundle}_export') / 'export_report.json'}")
    if not report["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    fire.Fire(main)
