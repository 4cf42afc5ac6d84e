"""Benchmark of paper 002's chapter 4: every compression step side by side, in the layout of Tables 4-3 to 4-5.

    python -m scripts.benchmark_compression run --compressed DIR[,DIR2] --original MODEL.pt --image FULL_SIZE.nii.gz \
        --dataset_dir DATA [--threads 2] [--dice true] [--thesis_widths true] [--out DIR] [--<config key> <value> ...]

``DIR`` is the ``--out`` of ``python -m scripts.compress`` (``model_channel_pruned.pt``,
``model_threshold_pruned.pt``, ``model.pt``, ``compression.json``). For each step (original, channel-pruned,
+ threshold-pruned, + quantized, + int8 ONNX Runtime) it reports the checkpoint size, parameters and non-zero
weights of the compressed network, its forward latency and peak RSS at the network's input size (the
thesis's "runtime" is stage 1's), the whole ``inference.json`` pipeline's wall time and peak RSS on
``--image``, and the final mean Dice of ``evaluate.json`` on the testing cases. Each measurement runs in its
own process, one after the other, so peak RSS is that step's alone; compare ratios measured in one run.
With ``--thesis_widths`` it also times the thesis's full-width stage 1 (24-48-96-192, 208x208x72 input,
untrained: speed and memory only) before and after 20 % channel pruning and as int8.
Writes ``benchmark.md`` and ``benchmark.json`` into ``--out`` (default: the first ``DIR``).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import fire

from scripts.common import registry
from scripts.common.bundles import REPO, Bundle, load_weights
from scripts.common.measure import median_seconds, peak_rss_gb, print_result, read_result, rss_gb

#: the bundle whose paper (the thesis, chapter 4) this benchmark follows
THESIS_BUNDLE = "head_neck_two_stage_unet"
VARIANTS = {  # name -> checkpoint file in the compressed folder (None: the original)
    "original": None,
    "channel-pruned": "model_channel_pruned.pt",
    "+ threshold-pruned": "model_threshold_pruned.pt",
    "+ quantized": "model.pt",
    "+ int8 runtime": "model.pt",
}
#: the thesis's figures (§4.3, Tables 4-3 and 4-5), stage 1 on its own data and GPUs
THESIS = {
    "original": {"weights": "12.03M", "runtime": "30s", "memory": "3G", "dice_stage1": 0.670, "sparsity": 0},
    "channel-pruned": {"weights": "7.78M", "runtime": "20s", "memory": "2G", "dice_stage1": 0.654},
    "+ threshold-pruned": {"dice_stage1": 0.650, "sparsity": 0.150},
    "+ quantized": {"weights": "1.9M", "runtime": "20s", "dice_stage1": 0.646, "sparsity": 0.150},
}


def _child(kind: str, spec_file: str) -> None:
    """One measurement in a fresh process, described by a JSON file; prints one JSON line."""
    spec = json.loads(Path(spec_file).read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    result = _net_latency(spec) if kind == "net" else _pipeline(spec)
    result["peak_rss_gb"] = round(peak_rss_gb(), 3)
    print_result(result)


def _bundle(spec: dict) -> Bundle:
    """The bundle whose config files ``spec`` names."""
    return Bundle(Path(spec["config_files"][0]).parents[1])


def _target_from_bundle(spec: dict):
    """The compressed network inside the bundle's network, with the checkpoint loaded (compressed ones too)."""
    network = _bundle(spec).parser(["inference.json"], **spec["overrides"]).get_parsed_content("network_def")
    load_weights(network, spec["ckpt"])
    return (network.get_submodule(spec["target"]) if spec["target"] else network).eval()


def _thesis_width_stage1(prune: bool, round_to: int | None = None):
    """The thesis's stage 1 (Table 3-3 widths, 9 classes), untrained, optionally pruned 5/10/15/20 %."""
    import torch

    from custom_networks.compression.channel_pruning import ChannelPruner

    torch.manual_seed(0)
    net = registry.paper_network(THESIS_BUNDLE).eval()
    if prune:
        pruner = ChannelPruner(net, round_to=round_to)
        for _ in range(len(pruner)):
            pruner.step()
    return net


def _net_latency(spec: dict) -> dict:
    """Median forward time of the compressed network alone at ``spec["input"]`` (one warm-up)."""
    import torch

    if spec.get("onnx"):
        from custom_networks.runtimes.onnxruntime_network import OnnxRuntimeNetwork

        net = OnnxRuntimeNetwork(spec["onnx"], num_threads=spec["threads"])
    elif spec.get("thesis_widths"):
        net = _thesis_width_stage1(spec.get("prune", False), spec.get("round_to"))
    else:
        net = _target_from_bundle(spec)
    x = torch.randn(1, 1, *spec["input"])
    before = rss_gb()
    with torch.inference_mode():
        latency = median_seconds(net, x, spec["repeats"])
    # the forward's own memory: the process's high-water mark above what it held before the first forward
    return {"latency_s": round(latency, 3), "forward_memory_gb": round(peak_rss_gb() - before, 3)}


def _pipeline(spec: dict) -> dict:
    """``inference.json`` or ``evaluate.json`` run as a workflow; int8 swaps the target for ONNX Runtime after loading."""
    from ignite.engine import Events

    wf = _bundle(spec).workflow([Path(f).name for f in spec["config_files"]], spec["mode"], **spec["overrides"])
    wf.initialize()
    evaluator = wf.parser.get_parsed_content("evaluator" if spec["mode"] == "infer" else "validate#evaluator")
    if spec.get("onnx"):
        from custom_networks.runtimes.onnxruntime_network import OnnxRuntimeNetwork

        def use_int8(engine):  # after the CheckpointLoader, registered before this handler
            owner, _, name = spec["target"].rpartition(".")
            parent = engine.network.get_submodule(owner) if owner else engine.network
            setattr(parent, name, OnnxRuntimeNetwork(spec["onnx"], num_threads=spec["threads"]))

        evaluator.add_event_handler(Events.STARTED, use_int8)
    start = time.perf_counter()
    wf.run()
    result = {"wall_s": round(time.perf_counter() - start, 1)}
    wf.finalize()
    if spec["mode"] == "eval":
        import csv

        out = Path(spec["overrides"]["output_dir"])
        result["mean_dice"] = float(dict(csv.reader(open(out / "metrics.csv")))["val_mean_dice"])
        rows = list(csv.DictReader(open(out / "val_mean_dice_raw.csv")))
        classes = [k for k in rows[0] if k.startswith("class")]
        result["dice_per_class"] = {k: round(statistics.fmean(float(r[k]) for r in rows), 4) for k in classes}
    return result


def _measure(kind: str, spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"])}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        proc = subprocess.run([sys.executable, "-m", "scripts.benchmark_compression", "child", kind, f.name],
                              cwd=REPO, env=env, capture_output=True, text=True)
    finally:
        os.remove(f.name)
    result = read_result(proc.stdout)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"benchmark step {kind} {spec.get('variant')} failed:\n{proc.stderr[-3000:]}")
    print(f"[benchmark] {kind:8s} {spec.get('variant', '')}: {json.dumps(result)}", flush=True)
    return result


def _export_int8(compressed: Path, spec: dict, threads: int) -> Path:
    """Int8 ONNX of the final compressed network, calibrated on the validation inputs of train.json."""
    import torch

    from custom_networks.runtimes.int8 import quantize_int8
    from custom_networks.runtimes.onnx_export import export_onnx

    torch.set_num_threads(threads)
    target = _target_from_bundle({**spec, "ckpt": str(compressed / "model.pt")})
    parser = _bundle(spec).parser(["train.json"], **spec["overrides"])
    dataset = parser.get_parsed_content("validate#dataset")
    calibration = [dataset[i]["image"].as_tensor()[None] for i in range(min(4, len(dataset)))]
    fp32 = export_onnx(target, calibration[0], compressed / "target_fp32.onnx")
    return quantize_int8(fp32, calibration, compressed / "target_int8.onnx")


def _variants(compressed: list[Path], original: Path) -> list[tuple[str, Path, dict, Path | None]]:
    """(name, checkpoint, its compression.json step, compressed folder for int8) for the original and each step."""
    first = json.loads((compressed[0] / "compression.json").read_text())
    rows = [("original", original, first["steps"][0], None)]
    for folder in compressed:
        report = json.loads((folder / "compression.json").read_text())
        suffix = f", multiples of {report['round_to']}" if report.get("round_to") else ""
        for name, file in list(VARIANTS.items())[1:]:
            step = next(s for s in report["steps"] if s.get("file") == file)
            rows.append((name + suffix, folder / file, step, folder if name == "+ int8 runtime" else None))
    return rows


def run(
    compressed: str | Sequence[str],
    original: str,
    image: str,
    dataset_dir: str,
    bundle: str = THESIS_BUNDLE,
    threads: int = 2,
    repeats: int = 3,
    dice: bool = True,
    thesis_widths: bool = True,
    out: str | None = None,
    **overrides,
) -> dict:
    """Measure every step of one or more ``scripts.compress`` outputs; write ``benchmark.md`` / ``.json`` to ``out``.

    ``out`` defaults to the first compressed folder.
    """
    from custom_networks.ops.flags import as_bool

    dice, thesis_widths = as_bool(dice, "dice"), as_bool(thesis_widths, "thesis_widths")
    folders = [Path(c).resolve() for c in (compressed.split(",") if isinstance(compressed, str) else compressed)]
    out_dir = Path(out).resolve() if out else folders[0]
    report = json.loads((folders[0] / "compression.json").read_text())
    configs = Bundle(bundle).configs
    target = "" if report["target"] == "network" else report["target"]
    variants_dir = out_dir / "benchmark_variants"
    base = {"threads": int(threads), "repeats": int(repeats), "target": target}
    common = {"bundle_root": str(configs.parent), "dataset_dir": str(dataset_dir), **overrides}
    input_size = common.get("stage1_size")
    if input_size is None:
        raise ValueError("pass --stage1_size (the compressed network's input size) as used for training.")
    results: dict = {"threads": int(threads), "image": image, "finetune_steps": report["finetune_steps"],
                     "variants": {}, "thesis_widths": {}}

    evaluations: dict = {}
    int8_spec = {**base, "config_files": [str(configs / "inference.json")], "overrides": common}
    for i, (name, ckpt, step, int8_of) in enumerate(_variants(folders, Path(original).resolve())):
        folder = variants_dir / f"{i}_{name.strip('+ ').replace(' ', '_').replace(',', '')}"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "model.pt"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ckpt)
        int8 = str(_export_int8(int8_of, int8_spec, int(threads))) if int8_of else None
        entry = {
            "file_mb": round(os.path.getsize(int8 or ckpt) / 2**20, 3),
            "parameters": step["parameters"],
            "nonzero_conv_weights": step["nonzero_conv_weights"],
            "sparsity": step["sparsity"],
            "weights_mb": round(os.path.getsize(int8) / 2**20, 3) if int8 else step["weights_mb"],
            "val_dice_stage": None if int8 else step["val_dice"],
        }
        spec = {**base, "variant": name, "onnx": int8, "ckpt": str(link), "input": input_size,
                "config_files": [str(configs / "inference.json")], "overrides": common}
        entry["net"] = _measure("net", spec)
        infer = {**spec, "mode": "infer",
                 "overrides": {**common, "datalist": [image], "ckpt_dir": str(folder), "output_dir": str(folder / "infer")}}
        entry["pipeline"] = _measure("pipeline", infer)
        results["variants"][name] = entry
        if dice:  # not timed: run after the timings, two at a time on one thread each
            evaluations[name] = {**spec, "mode": "eval", "threads": 1,
                                 "config_files": [str(configs / "train.json"), str(configs / "evaluate.json")],
                                 "overrides": {**common, "ckpt_dir": str(folder), "output_dir": str(folder / "eval")}}
    if thesis_widths:
        import torch

        from custom_networks.runtimes.int8 import quantize_int8
        from custom_networks.runtimes.onnx_export import export_onnx

        full = {**base, "input": [208, 208, 72], "thesis_widths": True}
        results["thesis_widths"]["original"] = _measure("net", {**full, "variant": "thesis widths, original"})
        results["thesis_widths"]["channel-pruned 20 %"] = _measure(
            "net", {**full, "variant": "thesis widths, pruned", "prune": True})
        results["thesis_widths"]["channel-pruned 20 %, multiples of 8"] = _measure(
            "net", {**full, "variant": "thesis widths, pruned, round_to 8", "prune": True, "round_to": 8})
        calibration = [torch.randn(1, 1, 208, 208, 72) for _ in range(2)]  # untrained: for speed only
        fp32 = export_onnx(_thesis_width_stage1(prune=True, round_to=8), calibration[0],
                           variants_dir / "thesis_pruned_fp32.onnx")
        int8_full = quantize_int8(fp32, calibration, variants_dir / "thesis_pruned_int8.onnx")
        results["thesis_widths"]["channel-pruned 20 %, multiples of 8, int8 runtime"] = _measure(
            "net", {**full, "variant": "thesis widths, pruned, round_to 8, int8", "onnx": str(int8_full)})
    if evaluations:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            done = dict(zip(evaluations, pool.map(lambda spec: _measure("pipeline", spec), evaluations.values())))
        for name, result in done.items():
            results["variants"][name]["eval"] = result
    (out_dir / "benchmark.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "benchmark.md").write_text(markdown(results))
    print((out_dir / "benchmark.md").read_text())
    return results


def markdown(results: dict) -> str:
    """One row per step, measured, with ratios to the original; the thesis's Tables 4-3 / 4-5 values below."""
    variants = results["variants"]
    first = next(iter(variants.values()))

    def ratio(value: float, reference: float) -> str:
        return f"{value} ({value / reference:.2f}x)" if reference else str(value)

    columns = [
        ("checkpoint file (MB)", lambda v: ratio(v["file_mb"], first["file_mb"])),
        ("stage weights (MB)", lambda v: ratio(v["weights_mb"], first["weights_mb"])),
        ("parameters", lambda v: f"{v['parameters']:,}"),
        ("non-zero conv weights", lambda v: f"{v['nonzero_conv_weights']:,}"),
        ("sparsity", lambda v: v["sparsity"]),
        ("forward (s)", lambda v: ratio(v["net"]["latency_s"], first["net"]["latency_s"])),
        ("forward memory (GB)", lambda v: ratio(v["net"]["forward_memory_gb"], first["net"]["forward_memory_gb"])),
        ("inference.json (s)", lambda v: ratio(v["pipeline"]["wall_s"], first["pipeline"]["wall_s"])),
        ("inference.json peak RSS (GB)", lambda v: ratio(v["pipeline"]["peak_rss_gb"], first["pipeline"]["peak_rss_gb"])),
        ("validation Dice (compress)", lambda v: "–" if v["val_dice_stage"] is None else f"{v['val_dice_stage']:.3f}"),
    ]
    if "eval" in first:
        columns.append(("final mean Dice, testing", lambda v: f"{v['eval']['mean_dice']:.3f}"))
    lines = ["| step | " + " | ".join(c for c, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(str(fn(v)) for _, fn in columns) + " |" for name, v in variants.items()]
    thesis = ["", "Thesis (Tables 4-3, 4-5; stage 1, its data, 2x GTX 1080 Ti):", ""]
    thesis += [f"- {name}: " + ", ".join(f"{k} {v}" for k, v in values.items()) for name, values in THESIS.items()]
    text = [f"Measured with {results['threads']} threads; full volume `{results['image']}`; "
            f"fine-tuning {results['finetune_steps']} steps per round.", "", *lines, *thesis, ""]
    if results["thesis_widths"]:
        widths = results["thesis_widths"]
        ref = widths["original"]
        text += ["Thesis widths (24-48-96-192), stage-1 input 208x208x72, untrained (speed and memory only):", "",
                 "| | forward (s) | forward memory (GB) | process peak RSS (GB) |", "|---|---|---|---|"]
        text += [f"| {k} | {ratio(v['latency_s'], ref['latency_s'])} | "
                 f"{ratio(v['forward_memory_gb'], ref['forward_memory_gb'])} | {v['peak_rss_gb']} |"
                 for k, v in widths.items()]
        text.append("")
    return "\n".join(text) + "\n"


def networks(threads: int = 2, repeats: int = 2, out: str | None = None) -> dict:
    """Every bundle's network at its paper widths (the registry's), untrained: size, parameters and forward time
    before and after 20 % channel pruning (thesis counts and multiples of 8) and with 31-level int8 codes; one
    process, side by side.
    """
    import torch

    from custom_networks.compression import quantization
    from custom_networks.compression.channel_pruning import ChannelPruner
    from custom_networks.compression.checkpoint import compressed_state_dict, conv_weight_count

    torch.set_num_threads(int(threads))
    rows = {}
    for name, rec in registry.RECORDS.items():
        spec = rec.paper_network
        bundle, size = f"{name} ({spec.part})" if spec.part else name, spec.input_size
        torch.manual_seed(0)
        nets = {"original": registry.paper_network(name).eval()}
        for label, round_to in (("pruned 20 %", None), ("pruned 20 %, multiples of 8", 8)):
            net = registry.paper_network(name).eval()
            pruner = ChannelPruner(net, round_to=round_to)
            for _ in range(len(pruner)):
                pruner.step()
            nets[label] = net
        x = torch.randn(1, 1, *size)
        entry = {}
        for label, net in nets.items():
            with torch.inference_mode():
                forward_s = median_seconds(net, x, int(repeats))
            quantized = copy.deepcopy(net)
            quantization.attach_quantizers(quantized, 31)
            quantization.bake_quantizers(quantized)
            codes = compressed_state_dict(quantized, 31)
            entry[label] = {
                "parameters": sum(p.numel() for p in net.parameters()),
                "float_mb": round(sum(v.numel() * v.element_size() for v in net.state_dict().values()) / 2**20, 2),
                "int8_codes_mb": round(sum(v.numel() * v.element_size() for v in codes.values()) / 2**20, 2),
                "conv_weights": conv_weight_count(net)[0],
                "forward_s": round(forward_s, 3),
            }
            print(f"[networks] {bundle} {label}: {json.dumps(entry[label])}", flush=True)
        rows[bundle] = {"input": list(size), **entry}
    text = ["| bundle (input) | variant | parameters | float32 MB | 31-level int8 MB | forward s (ratio) |",
            "|---|---|---|---|---|---|"]
    for bundle, entry in rows.items():
        ref = entry["original"]["forward_s"]
        for label in ("original", "pruned 20 %", "pruned 20 %, multiples of 8"):
            v = entry[label]
            text.append(f"| {bundle} ({'x'.join(map(str, entry['input']))}) | {label} | {v['parameters']:,} | "
                        f"{v['float_mb']} | {v['int8_codes_mb']} | {v['forward_s']} ({v['forward_s'] / ref:.2f}x) |")
    table = "\n".join(text) + "\n"
    if out:
        Path(out).write_text(table)
    print(table)
    return rows


if __name__ == "__main__":
    fire.Fire({"run": run, "networks": networks, "child": _child})
