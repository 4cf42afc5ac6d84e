"""Markdown tables and PNG plots of a ``scripts.benchmark`` result (kept apart so the measuring code stays short).

    python -m scripts.benchmark.report render docs/benchmarks.json --out docs   # re-render from a stored JSON
    python -m scripts.benchmark.report reference_overlay                        # docs/img/real_ct_reference.png
"""

from __future__ import annotations

import json
from pathlib import Path

import fire

from scripts.common.bundles import SHARED_DATA

#: goals of issue 9; the training step's shares of the best conv3d rate: issue 26
GOALS = {"training_ratio": 0.90, "efficiency": 0.6, "two_stage_speedup": 2.0, "step_share_stage1": 0.3,
         "step_share_organ": 0.25, "rss_growth": 1.2, "peak_rss_gb": 5.0}


def timed_wall_s(run: dict) -> float:
    """The wall time a run's rates and before/after speedups use: the warm run where there is one."""
    return run.get("warm_wall_s", run["wall_s"])


def _f(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _g(value) -> str:
    """Three significant digits (GFLOP counts span 0.001 to 10 000)."""
    return f"{value:.3g}"


def _data(results: dict) -> str:
    """Where the training data of this profile came from."""
    if results["profile"] == "quick":
        return ("generated boxes (`scripts.benchmark.run.write_blob_dataset`: one box per class plus noise, tiny "
                "volumes, not anatomy)")
    return ("synthetic phantoms (`scripts.phantoms`, the demo data's renderers; head-and-neck: CT-like volumes rendered "
            "from the real expert organ masks in `../shared/data/hn_oar_masks`)")


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows]]


def conv_section(results: dict) -> list[str]:
    dev = results["device"]
    def rate(r: dict, best: dict) -> str:
        return f"**{_f(r['gflops_per_s'], 1)}** (best)" if r["gflops_per_s"] == best["gflops_per_s"] else \
            _f(r["gflops_per_s"], 1)

    rows = [[name, "x".join(map(str, r["shape"])), r["memory_format"], _f(r["gflop"]), _f(r["seconds"], 3),
             rate(r, best), dev]
            for name, best in results["conv"].items() for r in best.get("all", [best])]
    peak = results.get("cpu_peak") or {}
    lines = ["## Conv throughput (the yardstick of every efficiency below)", "",
             "Each 3x3 (3^3) conv, same padding, batch 1, forward only, in both memory formats; the best rate per "
             "dimension is the yardstick: what this machine reaches on a plain conv, measured in this run.", "",
             *_table(["op", "input", "memory format", "GFLOP", "s", "GFLOP/s", "device"], rows), ""]
    if peak.get("gflops_per_s"):
        best = max(v["gflops_per_s"] for v in results["conv"].values())
        lines += [f"Theoretical fp32 peak of the CPU: **{_f(peak['gflops_per_s'], 1)} GFLOP/s** = "
                  f"{peak['derivation']}. The best measured conv reaches {_f(best / peak['gflops_per_s'])} of it"
                  + (" (above 1: the cores run faster than the reported clock, i.e. boost)."
                     if best > peak["gflops_per_s"] else "."), ""]
    elif peak:
        lines += [f"Theoretical peak: not derived ({peak['derivation']}).", ""]
    return lines


def training_section(results: dict) -> list[str]:
    rows, profile = [], []
    for bundle, entry in results.get("training", {}).items():
        if "skipped" in entry:
            rows.append([bundle, "skipped: " + entry["skipped"], "", "", "", "", "", ""])
            continue
        for r in entry["rows"]:
            rows.append([bundle, r["variant"], "x".join(map(str, r["batch_shape"])),
                         f"{r['iterations']}{'' if r.get('steady_state', True) else '*'}",
                         _f(r["pure_s"], 3), _f(r["full_s"], 3), _f(r["ratio"]), results["device"]])
            if r.get("transforms_s_per_batch"):
                ranked = sorted(r["transforms_s_per_batch"].items(), key=lambda kv: -kv[1])
                profile.append([bundle, _f(r["pure_s"], 3), _f(sum(v for _, v in ranked), 3),
                                ", ".join(f"{k} {_f(v, 3)}" for k, v in ranked)])
    widths = {b: e.get("overrides") for b, e in results.get("training", {}).items()}
    return ["## Training: pure forward+backward versus the bundle's full training step", "",
            "`pure`: median seconds of forward + loss + backward + optimizer step of the bundle's network, loss and "
            "optimizer (from its `train.json`) on one fixed batch. `full`: mean seconds per iteration of the bundle's "
            "own `SupervisedTrainer` through its data loader and transforms (every iteration after the first of its "
            "epoch: the steady state, as these tiny epochs of 2-4 iterations would otherwise count the loader's "
            "restart every few steps; where an epoch has one iteration, every iteration after the first, marked * "
            "in `iterations`; handlers off). "
            f"Goal: ratio >= {GOALS['training_ratio']}. Loader set-ups: `cache` = `CacheDataset` + "
            "`DataLoader(num_workers=0)` (head-and-neck's own); `no_cache` = `Dataset` (every volume read and "
            "preprocessed per iteration) with the bundle's loader; `cache_thread` = `CacheDataset` + MONAI "
            "`ThreadDataLoader` (random transforms overlap the step in a thread; the 2D bundles' own).", "",
            f"Data: {_data(results)}. Widths and sizes (overrides of each `train.json`): `{json.dumps(widths)}`.", "",
            "A ratio above 1 is noise: `pure` and `full` are timed at different moments, and on a loaded machine one "
            "timing can catch a busy second; read ratios well below 1 as the data pipeline's cost.", "",
            *_table(["bundle", "loader", "batch", "iterations", "pure s", "full s", "pure/full", "device"], rows), "",
            "### Where the data pipeline's time goes", "",
            "Seconds per batch of each transform the `cache` loader runs at every fetch (its first random transform "
            "on), timed one by one on the cached items (`scripts.benchmark.run.random_transform_seconds`), beside "
            "the pure step.", "",
            *_table(["bundle", "pure step s", "transforms s", "per transform s, costliest first"], profile), ""]


def training_step_section(results: dict) -> list[str]:
    """The training-step section: each head-and-neck network's pure step, and its share of the best conv3d rate."""
    t = results.get("training_step")
    if not t:
        return []
    rows = []
    for r in t["rows"]:
        organs = ", ".join(r["organs"]) if r["part"] == "organ net" else f"{len(r['organs'])} organs + background"
        head = [r["part"], organs, "x".join(map(str, r["input"])), r["variant"]]
        if "step_s" not in r:
            rows.append([*head, _g(r["gflop_step"]) if "gflop_step" in r else "–", "–", "–", "–", "–",
                         _f(r["target"]), r["error"], results["device"]])
            continue
        share = _f(r["share"])
        note = (f"first step {_f(r['first_step_s'], 1)} s (compiling; inductor cache {r['inductor_cache']})"
                if "inductor_cache" in r else "")
        rows.append([*head, _g(r["gflop_step"]), _f(r["step_s"], 3), _f(r["s_per_window"], 4), _g(r["gflops_per_s"]),
                     f"**{share}**" if r["share"] >= r["target"] else share, _f(r["target"]), note, results["device"]])
    return ["## Training step: head-and-neck networks, pure step versus the conv yardstick", "",
            "The pure step (forward + loss + backward + optimizer step on one fixed random batch, median of "
            f"{t['repeats']} after a warm-up; `scripts.benchmark.run.step_row`) of each network the bundle trains, "
            f"built from its own `train.json` (stage 1) and `train.json` + `train_stage2.json` (organ nets) with "
            f"overrides `{json.dumps(t['overrides'])}`: its widths, loss, Adam and batch. Stage 1 at `stage1_size`, "
            f"batch 1; each organ net on `stage2_batch` x `stage2_samples` = {t['stage2_batch']} x "
            f"{t['stage2_samples']} windows of its `crop_sizes` entry (`crop_mode` `{t['crop_mode']}`; the organs of "
            "one size share a row, as their nets are the same U-Net). GFLOP per step = 3 x the `FlopCounterMode` "
            "count of one forward (backward = 2 x forward); GFLOP/s = that / step s; share = GFLOP/s / the best "
            f"conv3d rate of this run ({_f(t.get('conv3d_gflops_per_s'), 1)} GFLOP/s, conv section). "
            f"Targets: stage 1 >= {GOALS['step_share_stage1']}, organ nets >= {GOALS['step_share_organ']} "
            "(met: bold). Variants, each in its own process: `contiguous` (the bundle's own step), `batch 1` "
            "(one window per step instead of the configured batch: compare `s per window`), `channels-last` "
            "(`torch.channels_last_3d` network and input), `torch.compile` (default inductor; its first step "
            f"compiles; the compile rows share a budget of {_f(t['compile_budget_s'], 0)} s, stage 1 first, and a "
            "row that would overrun it says so).", "",
            *_table(["part", "organs", "input (B x C x X x Y x Z)", "variant", "GFLOP per step", "step s",
                     "s per window", "GFLOP/s", "share of best conv3d", "target", "note", "device"], rows), ""]


def inference_section(results: dict) -> list[str]:
    rows, fixes, hn, runtimes = [], [], [], []
    for bundle, entry in results.get("inference", {}).items():
        torch_run = entry["runs"]["runtime torch"]
        for rt, speedup in entry.get("runtime_speedup", {}).items():
            default = rt == entry["default_runtime"]
            r = entry["runs"]["inference.json" if default else f"runtime {rt}"]
            runtimes.append([bundle, f"`{rt}`" + (" (default: `auto`)" if default else ""),
                             _f(timed_wall_s(torch_run), 1), _f(timed_wall_s(r), 1),
                             f"**{_f(speedup)}x**", _f(torch_run["forward_s"], 1), _f(r["forward_s"], 1),
                             _f(entry["runtime_network_speedup"][rt]), _f(r["peak_rss_gb"]), results["device"]])
        for name, r in entry["runs"].items():
            forwards = ", ".join(f"{k} x{v['forwards']}" for k, v in r["networks"].items())
            rows.append([f"{bundle} `{name}`", "x".join(map(str, entry["volume_shape"])), _f(r["wall_s"], 1),
                         _f(r.get("warm_wall_s"), 1), _f(r.get("extrapolated_full_volume_s"), 0), _f(r["peak_rss_gb"]), _g(r["gflop"]),
                         forwards, _f(r["forward_s"], 1), _g(r["gflops_per_s_network"]), _f(r["efficiency_network"]),
                         _f(r["efficiency_pipeline"]), results["device"]])
        before, after = entry["runs"]["before fix"], entry["runs"]["runtime torch"]
        fixes.append([bundle, entry["fix"], _f(timed_wall_s(before), 1), _f(timed_wall_s(after), 1),
                      f"**{_f(entry['fix_speedup'])}x**", _f(entry["fix_network_speedup"]),
                      f"{_f(before['peak_rss_gb'])} -> {_f(after['peak_rss_gb'])}", results["device"]])
        if "two_stage_speedup" in entry:
            hn = [f"**Head-and-neck two-stage versus single-stage baseline** (same volume "
                  f"{'x'.join(map(str, entry['volume_shape']))}, same widths `{json.dumps(entry['overrides'])}`, "
                  f"both with the fixed postprocessing): the baseline takes **{_f(entry['two_stage_speedup'])}x** "
                  f"the two-stage pipeline's wall time (goal >= {GOALS['two_stage_speedup']}x) and "
                  f"{_f(entry['two_stage_flop_ratio'])}x its FLOPs. Untrained weights: stage 1's argmax decides how "
                  "many organ crops stage 2 runs (the forward counts above); with trained weights it is one crop "
                  "per organ found, at the fixed `crop_sizes`.",
                  "", "Dice is not measured here: this page times untrained weights on synthetic volumes. The "
                  "head-and-neck bundle ships weights trained on OpenKBP (`models/model.pt`), with their training "
                  "curves and validation Dice, and the two-stage versus baseline comparison on one budget, in "
                  "[bundles/head_neck_two_stage_unet/docs/README.md](../bundles/head_neck_two_stage_unet/docs/README.md) "
                  "(see also [results.md](results.md)).", ""]
    return ["## Inference: each bundle's `inference.json` on a full-size synthetic volume", "",
            "Each run is its own process, forked from a fork server that has imported MONAI, the networks and ITK "
            "(`scripts.benchmark.worker`): wall time is that of a warm process (imports excluded), peak RSS is the "
            "process's `VmHWM` (the imported libraries included, about 0.5 GB). Untrained weights saved as "
            "`model.pt` (timing only). GFLOP: `FlopCounterMode` count of every network forward the pipeline made. "
            "Efficiency = achieved GFLOP/s / the best conv rate above (conv2d for the 2D bundles, conv3d for "
            "head-and-neck), over the network forwards alone (`network`) and over the whole pipeline wall time "
            f"(`pipeline`, which adds loading, resampling, inversion, saving). Goal: >= {GOALS['efficiency']}. "
            "2D bundles ran on a slab of the full-size slice, twice in the same process: "
            "`wall s` is the first run (it also pays one-off set-up: oneDNN kernels for every layer shape), `warm wall "
            "s` the second, from which the forward seconds, efficiencies and before/after speedups come; `full "
            "volume s` = first run + the warm rate for the remaining slices of 200 CT / 160 knee slices "
            "(extrapolated, not measured). `before fix` is the same `inference.json` with this benchmark's "
            "bottleneck fix undone (`scripts.benchmark.profiles.BEFORE_FIXES`).", "",
            *_table(["pipeline", "volume", "wall s", "warm wall s", "full volume s (extrap.)", "peak RSS GB", "GFLOP", "forwards",
                     "forward s", "GFLOP/s (network)", "efficiency network", "efficiency pipeline", "device"], rows),
            "", "### Bottleneck fixes, before and after in this run", "",
            *_table(["bundle", "fix", "before s", "after s", "speedup", "network forwards speedup",
                     "peak RSS GB before -> after", "device"], fixes), "", *hn,
            "### CPU runtimes: the same `inference.json` in each `--runtime`", "",
            "The network (stage 1 and the organ nets for head-and-neck) exported to ONNX once per weights (an "
            "untimed first run for head-and-neck; the 2D bundles' warm run) and run by the runtime; the same pre- "
            "and post-processing. `inference.json` runs `auto` (`custom_networks.runtimes.selection.resolve_runtime`: "
            "OpenVINO on a CPU); `onnxruntime-int8` is ONNX Runtime's static int8 quantization of the same export "
            "(`custom_networks.runtimes.int8`, calibrated on the first input). Speedup = torch's wall time / the "
            "runtime's (warm where there is one).", "",
            *_table(["bundle", "runtime", "torch s", "runtime s", "speedup", "torch forwards s", "runtime forwards s",
                     "forwards speedup", "peak RSS GB", "device"], runtimes), ""]


def memory_section(results: dict) -> list[str]:
    """Peak RSS of whole scans per length: the 2D bundles' slab chain, and the whole-volume chain it replaced."""
    rows, lines = [], []
    for bundle, entry in results.get("memory", {}).items():
        for n, r in entry["lengths"].items():
            whole = r.get("whole_volume")
            rows.append([bundle, n, "x".join(map(str, r["shape"])), _f(r["peak_rss_gb"]), _f(r["seconds"], 1),
                         _f(whole["peak_rss_gb"]) if whole else "not run", _f(whole["seconds"], 1) if whole else "–",
                         _f(r["seconds_ratio"]) if whole else "–", results["device"]])
        lengths = list(entry["lengths"])
        lines.append(f"- {bundle}: peak RSS {_f(entry['lengths'][lengths[-1]]['peak_rss_gb'])} GB at {lengths[-1]} "
                     f"slices, {_f(entry['rss_growth'])}x the {lengths[0]}-slice peak (goal <= "
                     f"{GOALS['rss_growth']}x, <= {GOALS['peak_rss_gb']} GB)")
    if not rows:
        return []
    date = results.get("section_dates_utc", {}).get("memory", results["date_utc"])
    when = "" if date == results["date_utc"] else (
        f" Measured on {date} UTC by `{results.get('memory_command', '')}`, merged into this page; load average "
        f"at its start {'/'.join(f'{x:.1f}' for x in results.get('memory_load_average', {}).get('start', []))}.")
    return ["## Memory: peak RSS of whole scans, by length", "",
            "Each 2D bundle's `inference.json` on a whole synthetic scan of each length (the bundle's widths, the "
            "default runtime, untrained weights), in its own forked process after a 2-slice warm-up scan that pays "
            "the runtime's export: `peak RSS GB` is the process's `VmHWM` from fetching the scan to its saved label "
            "map (reset with `/proc/self/clear_refs`; the imported libraries, about 0.5 GB, included), `s` that "
            "scan's seconds. `whole volume` is the chain the bundles ran before their `SlabInferer` "
            "(`scripts.benchmark.profiles.whole_volume_chain`: resampling, network output, activation and inverse "
            "resampling of the whole scan at once), on the same scan in the same run, where it fits in memory; "
            "`slab s / whole s` is the speed cost of the slabs (goal <= 1.1). Lengths: "
            "`python -m scripts.benchmark --sections memory --lengths 100,400`." + when, "", *lines, "",
            *_table(["bundle", "slices", "shape", "peak RSS GB", "s", "whole volume peak RSS GB", "whole volume s",
                     "slab s / whole s", "device"], rows), ""]


def networks_section(results: dict) -> list[str]:
    rows = []
    for name, r in results.get("networks", {}).items():
        m = r["monai"]
        rows.append([name, "x".join(map(str, r["input"][2:])), f"{r['parameters']:,}", _g(r["gflop"]),
                     _f(r["latency_s"], 3), _f(r["latency_inference_mode_channels_last_s"], 3),
                     _f(r["latency_s"] / r["latency_inference_mode_channels_last_s"]), m["name"],
                     f"{m['parameters']:,}", _g(m["gflop"]), _f(m["latency_s"], 3),
                     _f(r["gflop"] / r["latency_s"] / (m["gflop"] / m["latency_s"])), results["device"]])
    return ["## Custom networks versus MONAI U-Nets of about the same parameter count", "",
            "Untrained, batch 1, eval mode. `latency` runs under `torch.no_grad` as MONAI's evaluators do; `after` "
            "is the same network with `torch.inference_mode` and channels-last memory format (speedup = latency / "
            "after; the 2D bundles' `inference.json` now run this way; the 3D one does not, as runs on this machine disagreed between 0.88x and 1.06x). "
            "`GFLOP/s vs MONAI` = the custom network's achieved GFLOP/s over the MONAI network's.", "",
            *_table(["network", "input", "parameters", "GFLOP", "latency s", "after s", "speedup", "MONAI baseline",
                     "parameters", "GFLOP", "latency s", "GFLOP/s vs MONAI", "device"], rows), ""]


def layers_section(results: dict) -> list[str]:
    """Per-layer-kind time of each network in the default CPU runtime, against the best conv rate."""
    if not results.get("layers"):
        return []
    rows = []
    for bundle, entry in results["layers"].items():
        rate = results["conv"][f"conv{len(entry['input']) - 2}d"]["gflops_per_s"]
        floor = entry["gflop"] / rate
        rows.append([f"**{bundle}** ({entry['part']})", "x".join(map(str, entry["input"][2:])), "all", "", _f(entry["seconds"], 3),
                     "1.00", _g(entry["gflop"]), _g(entry["gflop"] / entry["seconds"]),
                     _f(entry["gflop"] / entry["seconds"] / rate), f"{_f(floor, 3)} s at the best conv rate"])
        for kind, k in list(entry["kinds"].items())[:6]:
            gflops = k["gflop"] / k["seconds"] if k["gflop"] else None
            rows.append(["", "", kind, k["layers"], _f(k["seconds"], 3), _f(k["seconds"] / entry["seconds"]),
                         _g(k["gflop"]) if k["gflop"] else "–", _g(gflops) if gflops else "–",
                         _f(gflops / rate) if gflops else "–", ""])
    return ["## Where each network's time goes, per layer kind, in the default CPU runtime", "",
            "OpenVINO's per-layer counters (`PERF_COUNT`) for one forward of each `inference.json` network (batch 1, "
            "the bundle's widths, the paper's slice size; head-and-neck: stage 1 at its `stage1_size`; untrained) "
            "after a warm-up forward, summed per layer kind (the six costliest kinds). Conv FLOPs "
            "= 2 x output elements x input channels per group x kernel elements; efficiency against the best conv "
            "rate of this run. The last column is the time the convs' FLOPs alone would take at that best rate: a "
            "bound no runtime beats without doing less arithmetic.", "",
            *_table(["network", "input", "layer kind", "layers", "s", "share", "GFLOP", "GFLOP/s", "efficiency",
                     "floor"], rows), ""]


def torchrun_section(results: dict) -> list[str]:
    t = results.get("torchrun")
    if not t:
        return []
    rows = [[n, r["threads_per_process"], _f(r["samples"], 0), _f(r["seconds"], 1), _f(r["samples_per_s"], 2),
             _f(r["final_loss"], 4), results["device"]] for n, r in t["rows"].items()]
    return ["## torchrun: knee bundle, 1 and 2 processes (gloo)", "",
            f"`train.json` + `multi_gpu_train.json` through `torch.distributed.run`, {t['epochs']} epoch(s) on "
            f"{'generated boxes' if results['profile'] == 'quick' else 'synthetic knee MR phantoms'}, overrides `{json.dumps(t['overrides'])}`; the same total thread count in both. "
            "Samples per second over the epochs after the first (the whole run when there is one epoch); final "
            "loss = mean training loss of the last epoch, averaged over ranks.", "",
            *_table(["processes", "threads each", "samples", "s", "samples/s", "final loss", "device"], rows), "",
            f"2 processes / 1 process: **{_f(t['speedup'])}x** samples per second; final losses differ by "
            f"{_f(100 * t['loss_relative_difference'], 1)} % (2 ranks see a global batch twice as large and a "
            "different sample order, so they agree only approximately).", "",
            *(["**Not a scaling result**: 2 processes on 2 cores can be at most 2x faster; a larger figure means the "
               "1-process run was slowed by something else (other jobs on the shared CPU, or 2 OpenMP threads "
               "contending with them), so this run does not measure torchrun scaling.", ""]
              if t["speedup"] > 2.05 else [])]


def step_headline(section: dict | None) -> list[str]:
    """One headline line per part of the training-step section: the bundle's own step's share, and the best variant."""
    lines = []
    for part, goal in (("stage 1", GOALS["step_share_stage1"]), ("organ net", GOALS["step_share_organ"])):
        rows = [r for r in (section or {}).get("rows", []) if r["part"] == part and "share" in r]
        own = [r["share"] for r in rows if r["variant"] == "contiguous"]
        if own:
            best = max(rows, key=lambda r: r["share"])
            span = _f(own[0]) if len(own) == 1 else f"{_f(min(own))}-{_f(max(own))}"
            lines.append(f"- training step head-neck {part}{'s' if len(own) > 1 else ''}: {span} of the best conv3d "
                         f"rate as configured, best {_f(best['share'])} ({best['variant']}, "
                         f"{'x'.join(map(str, best['input']))}); target >= {goal}")
    return lines


def headline(results: dict) -> list[str]:
    """The ratios the issue sets goals for, one line each."""
    lines = []
    for bundle, entry in results.get("training", {}).items():
        if "rows" in entry:
            best = max(entry["rows"], key=lambda r: r["ratio"])
            own = next(r for r in entry["rows"] if r["variant"] == entry["own_loader"])
            lines.append(f"- training {bundle}: pure/full {_f(own['ratio'])} with the bundle's loader, best "
                         f"{_f(best['ratio'])} ({best['variant']}); goal >= {GOALS['training_ratio']}")
    lines += step_headline(results.get("training_step"))
    for bundle, entry in results.get("inference", {}).items():
        r = entry["runs"]["inference.json"]
        lines.append(f"- inference {bundle}: efficiency {_f(r['efficiency_network'])} (network forwards), "
                     f"{_f(r['efficiency_pipeline'])} (whole pipeline); goal >= {GOALS['efficiency']}; bottleneck "
                     f"fix {_f(entry['fix_speedup'])}x faster than before")
        if entry.get("runtime_speedup"):
            lines.append(f"- inference {bundle} in other runtimes: " + ", ".join(
                f"{rt} {_f(v)}x" for rt, v in entry["runtime_speedup"].items()) + " the speed of torch; default "
                f"`auto` = {entry['default_runtime']}; pipeline / network forwards {_f(entry['pipeline_over_forwards'])}x")
        if "two_stage_speedup" in entry:
            lines.append(f"- head-neck two-stage vs single-stage: {_f(entry['two_stage_speedup'])}x faster; goal >= "
                         f"{GOALS['two_stage_speedup']}x")
    for bundle, entry in results.get("memory", {}).items():
        lengths = list(entry["lengths"])
        lines.append(f"- memory {bundle}: peak RSS {_f(entry['lengths'][lengths[-1]]['peak_rss_gb'])} GB on "
                     f"{lengths[-1]} slices, {_f(entry['rss_growth'])}x that of {lengths[0]}; goal <= "
                     f"{GOALS['rss_growth']}x and <= {GOALS['peak_rss_gb']} GB")
    if results.get("torchrun"):
        lines.append(f"- torchrun 2 vs 1 process: {_f(results['torchrun']['speedup'])}x samples/s")
    return lines


def _conditions(results: dict) -> str:
    """How far this run's timings can be trusted."""
    if results["profile"] == "quick":
        return ("Profile `quick` runs its sections side by side on tiny inputs: a check that every figure is "
                "produced, not a measurement.")
    if results.get("load_average_start", [0])[0] > 1.0:
        return ("Other jobs shared the CPU at the start, so absolute seconds are slower than on an idle machine and "
                "single timings are noisy; ratios measured side by side move less, and the conv throughput below is "
                "the same run's yardstick.")
    return ("The machine was otherwise idle; every step ran alone, one after another, and the conv throughput "
            "below is the same run's yardstick.")


def markdown(results: dict, profile: dict | None = None) -> str:
    """The whole ``benchmarks.md``."""
    text = ["# Benchmarks", "",
            f"Generated by `{results['command']}` on {results['date_utc']} UTC (profile `{results['profile']}`, "
            f"{_f(results['total_wall_s'], 0)} s in all). Device of every figure: **{results['device']}**, torch "
            f"{results['torch']}. Load average (1/5/15 min) at start "
            f"{'/'.join(f'{x:.1f}' for x in results.get('load_average_start', []))}, at end "
            f"{'/'.join(f'{x:.1f}' for x in results.get('load_average_end', []))} (this run's own processes "
            "count too). " + _conditions(results) + " All data is synthetic (phantoms or generated volumes) and all "
            "weights untrained, so nothing here is an accuracy; accuracy is in [results.md](results.md).",
            "", "## Headline", "", *headline(results), "",
            *conv_section(results), *training_step_section(results), *training_section(results),
            *inference_section(results), *memory_section(results),
            *networks_section(results), *layers_section(results), *torchrun_section(results)]
    if results.get("plots"):
        text += ["## Plots", "", *[f"![{Path(p).stem}](img/{Path(p).name})" for p in results["plots"]], ""]
    if profile is not None:
        text += ["## Profile (sizes of this run, `scripts.benchmark.profiles`)", "", "```",
                 *[f"{key}: {json.dumps(value, default=list)}" for key, value in profile.items()], "```", ""]
    return "\n".join(text) + "\n"


def _bar(ax, labels, series: dict, goal: float | None, ylabel: str) -> None:
    import numpy as np

    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
    if goal is not None:
        ax.axhline(goal, color="k", linestyle="--", linewidth=1, label=f"goal {goal}")
    ax.set_xticks(x, labels, rotation=15, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=6)


def plots(results: dict, img_dir: Path) -> list[str]:
    """Small PNGs (matplotlib, Agg) of the training ratios, inference efficiencies, networks and torchrun."""
    from custom_networks.extras import require

    matplotlib = require("matplotlib", "The benchmark figures")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name: str, title: str) -> None:
        fig.suptitle(f"{title}\n{results['device']}, profile {results['profile']}", fontsize=8)
        fig.tight_layout()
        path = img_dir / f"benchmark_{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(str(path))

    train = {b: e for b, e in results.get("training", {}).items() if "rows" in e}
    if train:
        fig, ax = plt.subplots(figsize=(6, 3))
        variants = [r["variant"] for r in next(iter(train.values()))["rows"]]
        _bar(ax, [b.split("_")[0] for b in train], {v: [e["rows"][i]["ratio"] for e in train.values()]
                                                     for i, v in enumerate(variants)}, 0.9, "pure / full step")
        save(fig, "training", "Training: pure step / full training step")
    infer = results.get("inference", {})
    if infer:
        fig, ax = plt.subplots(figsize=(6, 3))
        runs = [(f"{b.split('_')[0]} {n.replace('inference', '').replace('.json', '') or 'main'}", r)
                for b, e in infer.items() for n, r in e["runs"].items()]
        _bar(ax, [n for n, _ in runs], {"network": [r["efficiency_network"] for _, r in runs],
                                        "pipeline": [r["efficiency_pipeline"] for _, r in runs]}, 0.6,
             "GFLOP/s / conv GFLOP/s")
        save(fig, "inference", "Inference efficiency")
    nets = results.get("networks", {})
    if nets:
        fig, ax = plt.subplots(figsize=(6, 3))
        _bar(ax, [n.split(" ")[0] for n in nets], {"custom": [r["latency_s"] for r in nets.values()],
                                                   "custom, inference_mode+channels-last": [
                                                       r["latency_inference_mode_channels_last_s"] for r in nets.values()],
                                                   "MONAI, same params": [r["monai"]["latency_s"] for r in nets.values()]},
             None, "forward s")
        save(fig, "networks", "Forward latency: custom vs MONAI")
    if results.get("torchrun"):
        fig, ax = plt.subplots(figsize=(3.5, 3))
        rows = results["torchrun"]["rows"]
        _bar(ax, [f"{n} proc" for n in rows], {"samples/s": [r["samples_per_s"] for r in rows.values()]}, None,
             "samples / s")
        save(fig, "torchrun", "torchrun, knee")
    return written


def reference_overlay(out: str = "docs/img/real_ct_reference.png", slice_index: int = 10) -> str:
    """PNG of one slice of the real TotalSegmentator example CT series with its *reference* bone labels (not a
    prediction): vertebrae T11/T12 red, ribs green, other bone blue. Reads ``../shared/data`` in place."""
    import numpy as np
    from monai.transforms import LoadImage, Orientation
    from PIL import Image

    from custom_networks.engine.overlays import blend

    data = SHARED_DATA / "totalsegmentator_example"
    load = LoadImage(reader="ITKReader", image_only=True, ensure_channel_first=True)
    orient = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))
    ct = orient(load(str(data / "example_ct_dicom")))[0, :, :, slice_index].numpy()
    seg = orient(load(str(data / "example_seg_dicom.nii.gz")))[0, :, :, slice_index].numpy().astype(int)
    labels = np.zeros_like(seg)
    labels[np.isin(seg, [69, 70, 116]) | ((seg >= 25) & (seg <= 50))] = 3  # humeri, sternum, other vertebrae
    labels[(seg >= 92) & (seg <= 115)] = 2  # ribs
    labels[np.isin(seg, [32, 33])] = 1  # T12, T11
    gray = np.clip((ct + 500.0) / 2000.0, 0, 1) * 255.0
    rgb = np.concatenate([np.repeat(gray[..., None], 3, -1).astype(np.uint8), blend(gray, labels)], axis=0)
    image = Image.fromarray(np.rot90(rgb).copy()).resize((768, 384))  # CT left, reference overlay right
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    return out


def render(json_file: str, out: str = "docs") -> None:
    """Re-render ``benchmarks.md`` and the plots from a stored ``benchmarks.json``."""
    from .profiles import PROFILES

    results = json.loads(Path(json_file).read_text())
    results["plots"] = plots(results, Path(out) / "img")
    (Path(out) / "benchmarks.md").write_text(markdown(results, PROFILES[results["profile"]]()))


if __name__ == "__main__":
    fire.Fire({"render": render, "reference_overlay": reference_overlay})
