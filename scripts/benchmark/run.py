"""The benchmark's measurements: every section (conv, training step, training, inference, networks, torchrun) and
``main``.

See :mod:`scripts.benchmark` for what each section measures. Each step runs in a process forked from the fork
server (:func:`run_isolated`), whose preloaded module is :mod:`.worker`; torchrun starts its own processes.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from scripts.common import registry
from scripts.common.bundles import REPO, SHARED_DATA, Bundle, as_list, check
from scripts.common.two_stage_parts import part_parser, two_stage_parts
from scripts.common.measure import (count_parameters, cpu_peak_gflops, device_name, flops_of, median_seconds,
                                    print_result, read_result, sync, torch_device)

from .profiles import BEFORE_FIXES, PROFILES, whole_volume_chain
from .report import GOALS, markdown, plots, timed_wall_s


# ----------------------------------------------------------------------------------------------- helpers
def device_and_conv(profile: dict) -> dict:
    """The device, torch version, conv throughput (the yardstick) and, on a CPU, its theoretical fp32 peak."""
    import torch

    peak = cpu_peak_gflops(torch.get_num_threads()) if torch_device().type == "cpu" else None
    return {"device": device_name(), "torch": torch.__version__, "conv": conv_throughput(profile), "cpu_peak": peak}


def conv_throughput(profile: dict) -> dict:
    """The yardstick of every efficiency: the best GFLOP/s this device reaches on a 3x3 (3^3) conv, per dimension.

    Measures each width of ``profile["conv_grid"]`` (same padding, batch 1, forward only) in contiguous and
    channels-last memory format; ``conv2d`` / ``conv3d`` hold the fastest of each with every rate under ``all``.
    """
    import torch

    dev = torch_device()
    out = {}
    for dims, (widths, size) in profile["conv_grid"].items():
        rates = []
        for width, memory_format in [(w, f) for w in widths for f in ("contiguous", "channels_last")]:
            layer = (torch.nn.Conv2d if dims == "conv2d" else torch.nn.Conv3d)(width, width, 3, padding=1)
            shape = (1, width, *[size] * (2 if dims == "conv2d" else 3))
            fmt = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last if dims == "conv2d"
                   else torch.channels_last_3d}[memory_format]
            layer = layer.to(dev).to(memory_format=fmt).eval()
            x = torch.randn(shape, device=dev).contiguous(memory_format=fmt)
            flops = flops_of(layer, shape)

            def fwd(t):
                layer(t)
                sync()

            with torch.inference_mode():
                fwd(x)  # oneDNN picks and builds its kernel on the first call; the second still ran slow here
                fwd(x)
                seconds = median_seconds(fwd, x, max(5, profile["repeats"]))
            rates.append({"shape": list(shape), "memory_format": memory_format, "gflop": flops / 1e9,
                          "seconds": seconds, "gflops_per_s": flops / 1e9 / seconds})
            print(f"[benchmark] {dims} {shape} {memory_format}: {rates[-1]['gflops_per_s']:.1f} GFLOP/s", flush=True)
        out[dims] = {**max(rates, key=lambda r: r["gflops_per_s"]), "all": rates}
    return out


def write_blob_dataset(bundle: str, out: Path, shape: tuple[int, ...], n: int = 4) -> Path:
    """Tiny generated volumes (a background, one box per class, noise) and their datalist: the quick profile's data."""
    import nibabel as nib

    from scripts.phantoms.io import write_datalist

    rec = registry.record(bundle)
    classes = rec.foreground_classes
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        label = np.zeros(shape, np.uint8)
        for c in range(1, classes + 1):
            lo = [int(rng.integers(1, max(2, d // 2))) for d in shape]
            label[tuple(slice(a, a + max(2, d // 4)) for a, d in zip(lo, shape))] = c
        base = 0.0 if rec.modality == "CT" else 300.0
        image = (base + 400.0 * (label > 0) + rng.normal(0, 30, shape)).astype(np.float32)
        if rec.modality == "CT":
            image[: max(1, shape[0] // 8)] = -1000.0  # some air, so the HU check sees a CT
        affine = np.diag([*rec.spacing_mm, 1.0])
        for kind, arr in (("image", image), ("label", label)):
            nib.save(nib.Nifti1Image(arr, affine), str(out / f"case{i}_{kind}.nii.gz"))
        pairs.append({"image": f"case{i}_image.nii.gz", "label": f"case{i}_label.nii.gz"})
    write_datalist(out / "datalist.json", pairs, "benchmark blobs", "generated boxes, not anatomy",
                   {str(c): f"class{c}" for c in range(classes + 1)})
    return out


def make_training_data(bundle: str, out: Path, profile: dict) -> Path | None:
    """Synthetic data for ``bundle``: its demo-data renderer (with ``profile["phantom_args"]``), or, for a bundle
    without one, CT rendered from the real head-and-neck masks by ``python -m scripts.prepare_head_neck`` (None
    where the masks are missing); the quick profile: generated boxes of ``profile["blob_shape"]``."""
    n = profile["train_volumes"]
    if profile.get("blob_shape"):
        return write_blob_dataset(bundle, out, tuple(profile["blob_shape"][bundle]), n)
    args = profile["phantom_args"].get(bundle, {})
    generator = registry.demo_generator(bundle)
    if generator is not None:
        generator(out, num_volumes=n, seed=0, log=None, **args)
        return out
    masks = SHARED_DATA / "hn_oar_masks"
    if not masks.is_dir():
        return None
    cmd = [sys.executable, "-m", "scripts.prepare_head_neck", "--masks", str(masks), "--out", str(out),
           "--workers", "1", *[f"--{k}={v}" for k, v in args.items()]]
    proc = subprocess.run(cmd, cwd=REPO, env=_repo_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return out


def write_volume(bundle: str, shape: tuple[int, ...], path: Path) -> Path:
    """A synthetic volume of ``shape`` as NIfTI: CT (air, a soft-tissue ellipse, a bone ring, noise) or knee MR."""
    import nibabel as nib

    rec = registry.record(bundle)
    rng = np.random.default_rng(0)
    if rec.modality == "MR":  # knee: sagittal, axis 0 is the slice axis the bundle's SliceInferer walks
        img = (rng.random(shape, dtype=np.float32) * 200 + 300).astype(np.float32)
    else:
        x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
        r = np.sqrt((x / 0.8) ** 2 + (y / 0.6) ** 2)
        plane = np.where(r < 1, 40.0, -1000.0) + np.where((r > 0.2) & (r < 0.3), 700.0, 0.0)
        img = (plane[..., None] + rng.normal(0, 20, shape)).astype(np.int16)
    affine = np.diag([*rec.spacing_mm, 1.0])
    nib.save(nib.Nifti1Image(img, affine), str(path))
    return path


# ----------------------------------------------------------------------------------------------- training
def _loader_overrides(variant: str, bundle: str) -> dict:
    """Config overrides of one loader set-up: ``cache`` (``CacheDataset`` + ``DataLoader``), ``cache_thread``
    (``CacheDataset`` + ``ThreadDataLoader``) or ``no_cache`` (``Dataset`` + the bundle's own loader)."""
    data = f"$custom_networks.bundle.datalist.load_datalist(@datalist, 'training', bundle_name='{bundle}')"
    if variant == "no_cache":
        return {"train#dataset": {"_target_": "Dataset", "data": data, "transform": "@train#preprocessing"}}
    return {"train#dataloader#_target_": "ThreadDataLoader" if variant == "cache_thread" else "DataLoader"}


def own_loader_variant(bundle: str) -> str:
    """Which loader set-up is the bundle's own ``train.json`` (its ``CacheDataset`` with its loader class)."""
    loader = Bundle(bundle).parser(["train.json"]).get("train#dataloader#_target_")
    return "cache_thread" if loader == "ThreadDataLoader" else "cache"


def _pure_step(trainer, batch):
    """``step(_)``: forward + loss + backward + optimizer step of the trainer's network (put in train mode) on one
    fixed batch; ``trainer`` is anything with a ``SupervisedTrainer``'s network, loss, optimizer and inferer."""
    net, loss_fn, opt = trainer.network, trainer.loss_function, trainer.optimizer
    x, y = batch["image"].to(torch_device()), batch["label"].to(torch_device())

    def step(_):
        opt.zero_grad(set_to_none=True)
        loss_fn(trainer.inferer(x, net), y).backward()
        opt.step()
        sync()

    net.train()
    return step


def _pure_step_seconds(trainer, batch, repeats: int) -> float:
    """Median seconds of forward + loss + backward + step of the trainer's network on one fixed batch."""
    return median_seconds(_pure_step(trainer, batch), None, repeats)


def random_transform_seconds(dataset, samples: int = 8) -> dict[str, float]:
    """Seconds per training sample of each transform a ``CacheDataset`` runs at every fetch (those from its
    first random transform on), on its cached items: the profile of the data pipeline's per-step cost."""
    from monai.data import CacheDataset
    from monai.transforms import RandomizableTrait, Transform, apply_transform

    if not isinstance(dataset, CacheDataset) or not dataset._cache:
        return {}
    compose = dataset.transform
    first = compose.get_index_of_first(lambda t: isinstance(t, RandomizableTrait) or not isinstance(t, Transform))
    seconds: dict[str, float] = {}
    for i in range(samples):
        item = dataset._cache[i % len(dataset._cache)]
        item = copy.deepcopy(item)
        for t in compose.transforms[first or 0:] if first is not None else []:
            start = time.perf_counter()
            item = apply_transform(t, item)
            name = type(t).__name__
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    return {name: s / samples for name, s in seconds.items()}


def train_one(bundle: str, data: Path, tmp: Path, variant: str, profile: dict) -> dict:
    """Seconds per iteration of the bundle's trainer with one loader set-up, and the pure step on its batch."""
    from ignite.engine import Events
    from monai.utils import set_determinism

    overrides = {**profile["train"][bundle], **_loader_overrides(variant, bundle), "dataset_dir": str(data),
                 "ckpt_dir": str(tmp / "ckpt"), "output_dir": str(tmp / "tb"), "max_epochs": profile["train_epochs"],
                 "train#trainer#train_handlers": [], "resume": False}
    wf = Bundle(bundle).workflow(["train.json", *registry.record(bundle).synthetic_setup], "train", **overrides)
    wf.initialize()
    set_determinism(seed=0)
    trainer = wf.parser.get_parsed_content("train#trainer")
    stamps: list[tuple[int, float]] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED,
                              lambda e: (sync(), stamps.append((e.state.epoch, time.perf_counter()))))
    trainer.run()
    # fetch + transforms + step of every iteration after the first of its epoch: the steady state. An epoch of
    # these tiny data sets has 1-4 iterations, so a step across the epoch boundary would count the loader's
    # restart once per few steps, where a real data set's epoch has hundreds. With one iteration per epoch
    # (head-and-neck's three rendered cases) there is no such step: then every step after the first counts.
    pairs = list(zip(stamps, stamps[1:]))
    steady = [b - a for (ea, a), (eb, b) in pairs if ea == eb]
    steps = steady or [b - a for (_, a), (_, b) in pairs]
    batch = next(iter(wf.parser.get_parsed_content("train#dataloader")))
    pure = _pure_step_seconds(trainer, batch, max(7, profile["repeats"]))  # 3 repeats ranged 0.7-1.2x of the median
    full = float(np.mean(steps)) if len(steps) else float("nan")
    row = {"variant": variant, "full_s": full, "pure_s": pure, "ratio": pure / full, "iterations": int(len(steps)),
           "steady_state": bool(steady), "batch_shape": list(batch["image"].shape)}
    if variant == "cache":  # which transform costs what, per batch of the trainer's batch size
        per_sample = random_transform_seconds(wf.parser.get_parsed_content("train#dataset"))
        batch_size = int(wf.parser.get_parsed_content("train#dataloader#batch_size"))
        row["transforms_s_per_batch"] = {k: v * batch_size for k, v in per_sample.items()}
    return row


def train_bundle(bundle: str, tmp: Path, profile: dict) -> dict:
    """One bundle of the training section (its data, then every loader set-up); runs in a forked child."""
    data = make_training_data(bundle, tmp / f"data_{bundle}", profile)
    if data is None:
        return {"skipped": f"no head-and-neck masks at {SHARED_DATA / 'hn_oar_masks'}"}
    rows = []
    for variant in ("cache", "no_cache", "cache_thread"):
        row = train_one(bundle, data, tmp / f"train_{bundle}_{variant}", variant, profile)
        print(f"[benchmark] train {bundle} {variant}: {json.dumps(row)}", flush=True)
        rows.append(row)
    return {"overrides": profile["train"][bundle], "rows": rows, "own_loader": own_loader_variant(bundle)}


def training(bundles: list[str], tmp: Path, profile: dict, threads: int) -> dict:
    """The training section: every bundle, every loader set-up, one process per bundle."""
    return {bundle: run_isolated(train_bundle, (bundle, tmp, profile), threads) for bundle in bundles}


# ----------------------------------------------------------------------------------------------- training step
#: the training-step section's variants of each part: the configured batch (``one_window``: one window instead),
#: memory format, and eager or ``torch.compile`` (default inductor)
STEP_VARIANTS = {
    "contiguous": {"one_window": False, "channels_last": False, "compile": False},
    "batch 1": {"one_window": True, "channels_last": False, "compile": False},
    "channels-last": {"one_window": False, "channels_last": True, "compile": False},
    "torch.compile": {"one_window": False, "channels_last": False, "compile": True},
}


def step_parts(profile: dict) -> dict:
    """The networks the training-step section times, as ``profile["training_step"]["bundle"]``'s configs (with
    the profile's ``overrides``) train them: stage 1 on ``train.json``'s batch at ``stage1_size``, and the organ
    nets of ``train.json`` + ``train_stage2.json`` on ``stage2_batch`` cases x ``stage2_samples`` windows of their
    ``crop_sizes`` entry (one part per distinct size: the organ nets are one architecture, so organs of one size
    share a row). Also the configs' ``crop_mode``, batch and samples."""
    cfg = profile["training_step"]
    return two_stage_parts(cfg["bundle"], cfg["overrides"])


def step_row(spec: dict) -> dict:
    """One row of the training-step section, in its own process: the part's network, loss, optimizer and inferer
    built from the configs (``spec``: bundle, overrides, organ or None for stage 1, input shape, variant,
    repeats), one fixed random batch (image noise; a label of every class, so every organ counts as contoured),
    then the pure step (:func:`_pure_step`): the first call timed alone (under ``torch.compile`` it compiles),
    then the median of ``repeats`` after a warm-up. FLOPs: ``FlopCounterMode`` of one forward, x3 for a training
    step (the backward counted as twice the forward)."""
    import types

    import torch

    how = STEP_VARIANTS[spec["variant"]]
    parser = part_parser(spec["bundle"], spec["overrides"], spec["organ"])
    net = parser.get_parsed_content("trained_net")
    shape = (1, *spec["input"][1:]) if how["one_window"] else tuple(spec["input"])
    fmt = torch.channels_last_3d if how["channels_last"] else torch.contiguous_format
    net = net.to(memory_format=fmt)  # the parameters stay the optimizer's (converted in place)
    torch.manual_seed(0)
    image = torch.randn(shape, device=torch_device()).contiguous(memory_format=fmt)
    label = torch.randint(0, int(parser.get_parsed_content("trained_classes")), (shape[0], 1, *shape[2:]),
                          device=torch_device()).float()
    gflop = flops_of(net, shape) / 1e9
    row = {"variant": spec["variant"], "input": list(shape), "gflop_forward": gflop, "gflop_step": 3 * gflop}
    trainer = types.SimpleNamespace(network=torch.compile(net) if how["compile"] else net,
                                    loss_function=parser.get_parsed_content("loss"),
                                    optimizer=parser.get_parsed_content("optimizer"),
                                    inferer=parser.get_parsed_content("train#inferer"))
    step = _pure_step(trainer, {"image": image, "label": label})
    start = time.perf_counter()
    try:
        step(None)
    except Exception as e:  # noqa: BLE001  (torch.compile failing is a result of this row, not a crash)
        if not how["compile"]:
            raise
        first_line = (str(e).strip().splitlines() or [""])[0][:300]
        return {**row, "error": f"torch.compile failed: {type(e).__name__}: {first_line}"}
    row["first_step_s"] = time.perf_counter() - start
    if how["compile"]:
        from torch._dynamo.utils import counters

        hits, misses = counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]
        row["inductor_cache"] = ("hit" if hits and not misses else "miss" if misses and not hits
                                 else f"{hits} hit, {misses} miss")
    row["step_s"] = median_seconds(step, None, spec["repeats"])
    row["s_per_window"] = row["step_s"] / shape[0]
    row["gflops_per_s"] = row["gflop_step"] / row["step_s"]
    return row


def _compile_row(spec: dict, left: float, budget: float, threads: int) -> dict:
    """A ``torch.compile`` row within the ``left`` seconds of the section's compile ``budget``: stopped when it
    overruns them, not run when nothing is left, and its process's failure recorded (a compile error inside it is
    already the row's ``error``); in each case the row says so instead of a time."""
    head = {"variant": spec["variant"], "input": spec["input"]}
    if left <= 0:
        return {**head, "error": f"not run: the section's compile budget ({budget:.0f} s) was spent on the rows before"}
    try:
        return run_isolated(step_row, (spec,), threads, timeout=left)
    except TimeoutError:
        return {**head, "error": f"torch.compile + {spec['repeats'] + 2} steps did not finish in the {left:.0f} s "
                                 f"left of the section's compile budget ({budget:.0f} s)"}
    except RuntimeError as e:  # the process died (a crashing compiler, out of memory) or failed outside the step
        return {**head, "error": f"torch.compile run failed: {[ln for ln in str(e).splitlines() if ln.strip()][-1]}"}


def training_step(profile: dict, threads: int) -> dict:
    """The training-step section: each part of :func:`step_parts` in every :data:`STEP_VARIANTS` variant (``batch
    1`` only where the configured batch is larger), each row in its own process (:func:`step_row`). The
    ``torch.compile`` rows run last, stage 1 first and then the costliest organ nets, within
    ``profile["training_step"]["compile_budget_s"]`` seconds in all. Shares of the best conv3d rate:
    :func:`add_step_shares`, once the conv section has run."""
    cfg = profile["training_step"]
    plan = run_isolated(step_parts, (profile,), threads)
    base = {"bundle": cfg["bundle"], "overrides": cfg["overrides"], "repeats": cfg["repeats"]}
    rows, compiles = [], []
    for i, part in enumerate(plan["parts"]):
        for variant, how in STEP_VARIANTS.items():
            if how["one_window"] and part["input"][0] == 1:
                continue
            spec = {**base, **part, "variant": variant}
            if how["compile"]:
                compiles.append((i, spec))
                continue
            row = run_isolated(step_row, (spec,), threads)
            rows.append((i, {"part": part["part"], "organs": part["organs"], **row}))
            print(f"[benchmark] training step {part['part']} {part['input']} {variant}: {json.dumps(row)}", flush=True)
    cost = {i: r["gflop_step"] for i, r in rows if r["variant"] == "contiguous"}
    spent, budget = 0.0, float(cfg["compile_budget_s"])
    for i, spec in sorted(compiles, key=lambda c: (c[0] > 0, -cost[c[0]])):
        start = time.perf_counter()
        row = _compile_row(spec, budget - spent, budget, threads)
        spent += time.perf_counter() - start
        rows.append((i, {"part": spec["part"], "organs": spec["organs"], **row}))
        print(f"[benchmark] training step {spec['part']} {spec['input']} torch.compile: {json.dumps(row)}", flush=True)
    order = list(STEP_VARIANTS)
    rows.sort(key=lambda r: (r[0], order.index(r[1]["variant"])))
    return {"bundle": cfg["bundle"], "overrides": cfg["overrides"], "repeats": cfg["repeats"],
            "compile_budget_s": budget, "compile_spent_s": spent,
            **{k: plan[k] for k in ("crop_mode", "stage2_batch", "stage2_samples")}, "rows": [r for _, r in rows]}


def add_step_shares(section: dict, conv: dict) -> None:
    """Each measured row's share of the best conv3d GFLOP/s of the same run, and the section's targets (stage 1,
    organ nets: :data:`scripts.benchmark.report.GOALS`)."""
    rate = conv["conv3d"]["gflops_per_s"]
    section["conv3d_gflops_per_s"] = rate
    section["targets"] = {"stage 1": GOALS["step_share_stage1"], "organ net": GOALS["step_share_organ"]}
    for row in section["rows"]:
        row["target"] = section["targets"][row["part"]]
        if "step_s" in row:
            row["share"] = row["gflops_per_s"] / rate


# ----------------------------------------------------------------------------------------------- inference
def start_fork_server() -> None:
    """Start the fork server that imports :mod:`scripts.benchmark.worker` (MONAI, the networks, ITK) once, in the
    background while this process works; every inference run is then a child forked from it."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.set_forkserver_preload(["scripts.benchmark.worker"])
    forkserver.ensure_running()


def _child(target: Callable, args: tuple, threads: int, conn) -> None:
    from .worker import child_main  # already imported by the fork server: no cost here

    child_main(target, args, threads, conn)


def run_isolated(target: Callable, args: tuple, threads: int, timeout: float = 3600.0) -> Any:
    """``target(*args)`` (a module-level function, sent to the child by its qualified name) with ``threads``
    torch threads, in its own process forked from the fork server; returns its result. Each measurement gets a
    fresh process (its own peak RSS, no state from the runs before it) without paying the imports again."""
    import multiprocessing

    start_fork_server()
    ctx = multiprocessing.get_context("forkserver")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(target, args, threads, send))  # not daemon: phantoms use a pool
    proc.start()
    send.close()
    what = f"benchmark step {target.__name__}{args[:2]}"
    try:
        if not receive.poll(timeout):
            proc.kill()  # an overrun step is stopped now, not waited for
            raise TimeoutError(f"{what} took more than {timeout:.0f} s")
        status, payload = receive.recv()
    except EOFError:
        proc.join(10)
        raise RuntimeError(f"{what} died (exit code {proc.exitcode}; a negative code is the signal, -9 usually "
                           "the kernel's out-of-memory killer)") from None
    finally:
        if proc.is_alive():
            proc.join(30)
        if proc.is_alive():
            proc.kill()
    if status != "ok":
        raise RuntimeError(f"{what} failed:\n{payload}")
    return payload


def _repo_env(**extra: str) -> dict:
    """This environment with the repository importable (for ``python -m scripts...`` children)."""
    return {**os.environ, **extra,
            "PYTHONPATH": os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)}


def infer_one(bundle: str, files: list[str], image: Path, tmp: Path, overrides: dict, threads: int) -> dict:
    """``files`` of ``bundle`` on ``image`` in its own process: wall, peak RSS, FLOPs and forward seconds.

    Under another runtime than torch the network is exported once, in an untimed first run where the run is not
    warm anyway (the 2D slabs run twice), as a user's second scan finds it in the cache."""
    from custom_networks.runtimes.selection import resolve_runtime

    from . import worker

    warm = registry.record(bundle).spatial_dims == 2  # 2D: slabs
    exported = resolve_runtime(overrides.get("runtime", "auto"), torch_device()) != "torch"
    spec = {"bundle": bundle, "files": files, "warm": warm, "untimed_first_run": exported and not warm,
            "runtime_cache": str(tmp / "runtime_cache"),
            "overrides": {**overrides, "datalist": [str(image)], "ckpt_dir": str(tmp / "models"),
                          "output_dir": str(tmp / "outputs")}}
    return run_isolated(worker.run_pipeline, (spec,), threads)


def inference(bundles: list[str], tmp: Path, profile: dict, threads: int) -> dict:
    """The inference section: each bundle's inference.json, the same before its bottleneck fix, and its
    single-stage baseline where it has one (``inference_baseline.json``), and the same in each CPU runtime, on one
    synthetic volume per bundle."""
    # torch, in this parent only when the section runs
    from custom_networks.runtimes.selection import RUNTIMES, resolve_runtime

    out = {}
    for bundle in bundles:
        rec, cfg = registry.record(bundle), profile["infer"][bundle]
        fix = BEFORE_FIXES[rec.spatial_dims]
        shape = tuple(cfg["shape"])
        image = write_volume(bundle, shape, tmp / f"{bundle}_volume.nii.gz")
        runs = {"inference.json": (["inference.json"], {}),  # the default runtime ("auto")
                "runtime torch": (["inference.json"], {"runtime": "torch"}),
                "before fix": (["inference.json"], {**fix["overrides"], "runtime": "torch"})}
        if (Bundle(bundle).configs / "inference_baseline.json").is_file():
            runs["inference_baseline.json"] = (["inference.json", "inference_baseline.json"], {})
        for runtime in RUNTIMES[1:]:
            if runtime != resolve_runtime("auto", torch_device()):
                runs[f"runtime {runtime}"] = (["inference.json"], {"runtime": runtime})
        entry = {"volume_shape": list(shape), "spacing_mm": list(rec.spacing_mm), "overrides": cfg["overrides"],
                 "fix": fix["fix"], "runs": {}}
        for i, (name, (files, extra)) in enumerate(runs.items()):
            r = infer_one(bundle, files, image, tmp / f"infer_{bundle}_{i}", {**cfg["overrides"], **extra}, threads)
            r["gflops_per_s_network"] = r["gflop"] / r["forward_s"]
            r["gflops_per_s_pipeline"] = r["gflop"] / timed_wall_s(r)
            if bundle in profile["full_slices"]:  # a slab: the first run, then the warm rate for the other slices
                n_slices, full = shape[rec.slice_axis], profile["full_slices"][bundle]
                r["extrapolated_full_volume_s"] = r["wall_s"] + r["warm_wall_s"] / n_slices * (full - n_slices)
                r["full_volume_slices"] = full
            print(f"[benchmark] infer {bundle} {name}: wall {r['wall_s']:.1f} s, {r['gflop']:.1f} GFLOP, "
                  f"RSS {r['peak_rss_gb']:.2f} GB", flush=True)
            entry["runs"][name] = r
        fixed, before = entry["runs"]["runtime torch"], entry["runs"]["before fix"]
        entry["fix_speedup"] = timed_wall_s(before) / timed_wall_s(fixed)
        entry["fix_network_speedup"] = before["forward_s"] / fixed["forward_s"]
        entry["fix_rss_ratio"] = fixed["peak_rss_gb"] / before["peak_rss_gb"]
        entry["default_runtime"] = resolve_runtime("auto", torch_device())
        others = {entry["default_runtime"]: "inference.json",
                  **{rt: f"runtime {rt}" for rt in RUNTIMES[1:] if f"runtime {rt}" in entry["runs"]}}
        if entry["default_runtime"] != "torch":  # each runtime against torch, the default one included
            entry["runtime_speedup"] = {rt: timed_wall_s(fixed) / timed_wall_s(entry["runs"][name])
                                        for rt, name in others.items()}
            entry["runtime_network_speedup"] = {rt: fixed["forward_s"] / entry["runs"][name]["forward_s"]
                                                for rt, name in others.items()}
        entry["pipeline_over_forwards"] = timed_wall_s(entry["runs"]["inference.json"]) / entry["runs"][
            "inference.json"]["forward_s"]
        if "inference_baseline.json" in entry["runs"]:
            base = entry["runs"]["inference_baseline.json"]
            entry["two_stage_speedup"] = base["wall_s"] / fixed["wall_s"]
            entry["two_stage_flop_ratio"] = base["gflop"] / fixed["gflop"]
        out[bundle] = entry
    return out


def whole_volume(bundle: str, slices: int | None = None, runtime: str = "auto", threads: int | None = None,
                 overrides: dict | None = None) -> dict:
    """Measure, not extrapolate: ``bundle``'s ``inference.json`` on a whole synthetic volume (the standard profile's
    slab with ``slices`` slices, default the full count of 160 knee / 200 CT slices) in ``runtime``, after a
    2-slice warm-up in the same process (:func:`scripts.benchmark.worker.run_whole_volume`). Prints and returns
    seconds and peak RSS. ``overrides``: further ``inference.json`` keys (the tests' widths, say).
    ``python -m scripts.benchmark whole_volume knee_eas_unet``."""
    from . import worker

    rec, profile = registry.record(check(bundle)), PROFILES["standard"]()
    if rec.spatial_dims != 2:
        raise ValueError(f"{bundle} is not a slice-by-slice bundle; its benchmark volume is already whole.")
    slices = int(slices or profile["full_slices"][bundle])
    shape = list(profile["infer"][bundle]["shape"])
    with tempfile.TemporaryDirectory(prefix="medseg_whole_volume_") as tmp_name:
        tmp = Path(tmp_name)
        images = []
        for name, n in (("warm_up", 2), ("whole", slices)):
            shape[rec.slice_axis] = n
            images.append(str(write_volume(bundle, tuple(shape), tmp / f"{name}.nii.gz")))
        spec = {"bundle": bundle, "images": images, "runtime_cache": str(tmp / "runtime_cache"),
                "overrides": {**(overrides or {}), "runtime": runtime, "ckpt_dir": str(tmp / "models"),
                              "output_dir": str(tmp / "out")}}
        result = run_isolated(worker.run_whole_volume, (spec,), int(threads or os.cpu_count()))
        result["label_maps"] = sorted(p.name for p in (tmp / "out").rglob("*_seg.nii.gz"))
    result.update(bundle=bundle, shape=shape, runtime=runtime)
    print(f"[benchmark] whole volume {json.dumps(result)}", flush=True)
    return result


def _scan_run(bundle: str, shape: tuple[int, ...], tmp: Path, overrides: dict, threads: int) -> dict:
    """``inference.json`` of ``bundle`` with ``overrides`` on a synthetic scan of ``shape`` after a 2-slice
    warm-up, in its own process: seconds and peak RSS of the scan (:func:`scripts.benchmark.worker.run_whole_volume`)."""
    from . import worker

    rec = registry.record(bundle)
    warm = list(shape)
    warm[rec.slice_axis] = 2
    images = [str(write_volume(bundle, tuple(warm), tmp / "warm_up.nii.gz")), str(tmp / "scan.nii.gz")]
    spec = {"bundle": bundle, "images": images, "runtime_cache": str(tmp / "runtime_cache"),
            "overrides": {**overrides, "ckpt_dir": str(tmp / "models"), "output_dir": str(tmp / "out")}}
    return run_isolated(worker.run_whole_volume, (spec,), threads)


def memory(bundles: list[str], tmp: Path, profile: dict, threads: int) -> dict:
    """The memory section: each 2D bundle's ``inference.json`` (slabs) on whole scans of ``profile["memory"]``'s
    lengths of its slice size, and the whole-volume chain it replaced
    (:func:`scripts.benchmark.profiles.whole_volume_chain`) on the lengths up to ``whole_max_slices``, each in its
    own process: ``peak_rss_gb`` and seconds per length with the scan's shape; the growth from the shortest to
    the longest length (goal <= 1.2) and the slab chain's seconds over the whole chain's on the same scan."""
    cfg, out = profile["memory"], {}
    for bundle in (b for b in bundles if registry.record(b).spatial_dims == 2):
        rec, rows = registry.record(bundle), {}
        for n in sorted(int(n) for n in cfg["lengths"]):
            shape = list(cfg["slice"])
            shape.insert(rec.slice_axis, n)
            work = tmp / f"memory_{bundle}_{n}"
            work.mkdir(parents=True, exist_ok=True)
            write_volume(bundle, tuple(shape), work / "scan.nii.gz")
            row = {"shape": shape, **_scan_run(bundle, tuple(shape), work, cfg["overrides"][bundle], threads)}
            if n <= cfg["whole_max_slices"]:
                row["whole_volume"] = _scan_run(bundle, tuple(shape), work, {
                    **cfg["overrides"][bundle], **whole_volume_chain(bundle)}, threads)
                row["seconds_ratio"] = row["seconds"] / row["whole_volume"]["seconds"]
            (work / "scan.nii.gz").unlink()
            rows[str(n)] = row
            print(f"[benchmark] memory {bundle} {shape}: {json.dumps(row)}", flush=True)
        lengths = list(rows)
        out[bundle] = {"overrides": cfg["overrides"][bundle], "lengths": rows,
                       "rss_growth": rows[lengths[-1]]["peak_rss_gb"] / rows[lengths[0]]["peak_rss_gb"]}
    return out


def add_efficiencies(inference_results: dict, conv: dict) -> None:
    """Achieved GFLOP/s of every inference run over the conv throughput (conv2d for the 2D bundles, conv3d for
    the 3D one), for the network forwards alone and for the whole pipeline."""
    for bundle, entry in inference_results.items():
        rate = conv[f"conv{registry.record(bundle).spatial_dims}d"]["gflops_per_s"]
        for r in entry["runs"].values():
            r["efficiency_network"] = r["gflops_per_s_network"] / rate
            r["efficiency_pipeline"] = r["gflops_per_s_pipeline"] / rate


# ----------------------------------------------------------------------------------------------- networks
def _monai_of_width(dims: int, width: int, out_channels: int):
    """MONAI BasicUNet (2D) or UNet (3D, 4 levels, 2 residual units) with base width ``width``."""
    from monai.networks.nets import BasicUNet, UNet

    w = max(2, int(width))
    if dims == 2:
        return BasicUNet(spatial_dims=2, in_channels=1, out_channels=out_channels,
                         features=(w, w, 2 * w, 4 * w, 8 * w, w))
    return UNet(spatial_dims=3, in_channels=1, out_channels=out_channels, channels=(w, 2 * w, 4 * w, 8 * w),
                strides=(2, 2, 2), num_res_units=2)


def matched_monai(dims: int, params: int, out_channels: int):
    """The MONAI baseline whose parameter count is closest to ``params``: parameters grow with width squared,
    so estimate the width from width 16, then take the best even width next to the estimate."""
    def count(w: int) -> int:
        return count_parameters(_monai_of_width(dims, w, out_channels))

    guess = max(2, 2 * round(8 * math.sqrt(params / count(16))))
    best = min({max(2, guess - 2), guess, guess + 2}, key=lambda w: abs(math.log(count(w) / params)))
    return _monai_of_width(dims, best, out_channels), best


def _latency(net, x, repeats: int, channels_last: bool = False) -> float:
    """Median forward seconds: ``torch.no_grad`` (as MONAI's evaluators run) or inference_mode + channels-last."""
    import torch

    if channels_last:
        fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
        net = net.to(memory_format=fmt)
        x = x.contiguous(memory_format=fmt)
        ctx = torch.inference_mode()
    else:
        ctx = torch.no_grad()

    def fwd(t):
        net(t)
        sync()

    with ctx:
        return median_seconds(fwd, x, repeats)


def networks(profile: dict) -> dict:
    """Each bundle's network at its paper's widths (scaled by ``profile["networks"]["scale"]``) versus a MONAI U-Net
    of about its parameter count: parameters, GFLOPs, latency."""
    import torch

    cfg, dev, rows = profile["networks"], torch_device(), {}
    for bundle, rec in registry.RECORDS.items():
        spec, dims = rec.paper_network, rec.spatial_dims
        name = f"{spec.cls} ({' '.join(filter(None, (rec.title, spec.part)))})"
        net = registry.paper_network(bundle, cfg["scale"])
        torch.manual_seed(0)
        net = net.to(dev).eval()
        shape = (1, 1, cfg["size2d"], cfg["size2d"]) if dims == 2 else (1, 1, *cfg["size3d"])
        out_ch = spec.kwargs["out_channels"]
        params = count_parameters(net)
        base, width = matched_monai(dims, params, out_ch)
        base = base.to(dev).eval()
        x = torch.randn(shape, device=dev)
        reps = max(1, profile["repeats"] - 1)
        row = {"input": list(shape), "parameters": params, "gflop": flops_of(net, shape) / 1e9,
               "latency_s": _latency(net, x, reps),
               "latency_inference_mode_channels_last_s": _latency(net, x, reps, channels_last=True),
               "monai": {"name": f"{'BasicUNet' if dims == 2 else 'UNet'} (base width {width})",
                         "parameters": count_parameters(base), "gflop": flops_of(base, shape) / 1e9,
                         "latency_s": _latency(base, x, reps)}}
        rows[name] = row
        print(f"[benchmark] network {name}: {json.dumps(row)}", flush=True)
    return rows


# ----------------------------------------------------------------------------------------------- layers
def layer_profile(profile: dict, threads: int) -> dict:
    """Per-layer seconds of each bundle's inference network (its ``inference.json``, the first of its runtime
    parts: head-and-neck's stage 1) at its default widths, on one input of the paper's slice size (2D) or of
    ``stage1_size`` (3D), in the default CPU runtime (OpenVINO's per-layer counters, ``PERF_COUNT``): time and
    GFLOP per layer kind, so a missed speed target shows which layers hold it back. ``profile["layers"]``:
    ``tiny`` (the tests' widths) and input sizes (``None``: the paper's). FLOPs of a conv:
    2 x output elements x (input channels per group x kernel elements)."""
    import openvino as ov
    import torch

    from custom_networks.runtimes.onnx_export import export_onnx
    from custom_networks.runtimes.openvino_network import OPENVINO_CONFIG

    cfg, out = profile["layers"], {}
    for bundle, rec in registry.RECORDS.items():
        parser = Bundle(bundle).parser(["inference.json"], **(registry.tiny(bundle) if cfg["tiny"] else {}))
        part = parser.get_parsed_content("runtime_parts")[0]
        net = parser.get_parsed_content("network_def").eval()
        net = net.get_submodule(part) if part else net
        size = tuple(cfg[f"size{rec.spatial_dims}d"] or (rec.paper_network.input_size if rec.spatial_dims == 2
                                                         else parser.get_parsed_content("stage1_size")))
        x = torch.randn(1, 1, *size)
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(net, x, Path(tmp) / "net.onnx", check_atol=None)
            compiled = ov.Core().compile_model(str(path), "CPU", {**OPENVINO_CONFIG, "PERF_COUNT": True,
                                                                   "INFERENCE_NUM_THREADS": int(threads)})
        request = compiled.create_infer_request()
        for _ in range(2):  # the first inference also builds kernels
            request.infer({0: x.numpy()})
        kinds: dict[str, dict] = {}
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            layer_type = info["layerType"].astype(str)
            micros = info["execTimeMcs"].astype(str) if "execTimeMcs" in info else ""
            if layer_type in ("Parameter", "Result", "Constant") or not micros.isdigit() or int(micros) == 0:
                continue  # not run ("not_executed": folded into another layer) or no time
            flop, kind = 0.0, layer_type
            if layer_type == "Convolution" and op.get_input_size() > 1:
                weight = [int(d.get_length()) for d in op.input(1).get_partial_shape()]
                out_elems = math.prod(int(d.get_length()) for d in op.output(0).get_partial_shape())
                per_output = math.prod(weight[2:]) if len(weight) == 2 + len(size) + 1 else math.prod(weight[1:])
                flop = 2.0 * out_elems * per_output
                kernel = math.prod(weight[-len(size):])
                in_per_group = weight[2] if len(weight) == 2 + len(size) + 1 else weight[1]
                kind = ("depthwise conv" if in_per_group == 1 and kernel > 1 else
                        "1x1 conv" if kernel == 1 else f"{'x'.join(map(str, weight[-len(size):]))} conv")
            k = kinds.setdefault(kind, {"seconds": 0.0, "gflop": 0.0, "layers": 0})
            k["seconds"] += int(micros) / 1e6
            k["gflop"] += flop / 1e9
            k["layers"] += 1
        total = sum(k["seconds"] for k in kinds.values())
        out[bundle] = {"part": part or "network", "input": [1, 1, *size], "seconds": total, "gflop": sum(k["gflop"] for k in kinds.values()),
                       "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1]["seconds"]))}
        print(f"[benchmark] layers {bundle}: {total:.2f} s, {json.dumps(out[bundle]['kinds'])[:300]}", flush=True)
    return out


# ----------------------------------------------------------------------------------------------- torchrun
def torchrun_child(spec_file: str) -> None:
    """One rank of a bundle's train.json + multi_gpu_train.json run; rank 0 prints the RESULT line."""
    import torch
    import torch.distributed as dist
    from ignite.engine import Events

    spec = json.loads(Path(spec_file).read_text())
    wf = Bundle(spec["bundle"]).workflow(["train.json", "multi_gpu_train.json"], "train", **spec["overrides"])
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    stamps, losses, samples = [], [], [0]

    def on_iteration(engine):
        batch, output = engine.state.batch, engine.state.output  # decollated: one dict per sample
        samples[0] += len(batch) if isinstance(batch, list) else batch["image"].shape[0]
        losses.append((engine.state.epoch, float((output[0] if isinstance(output, list) else output)["loss"])))

    trainer.add_event_handler(Events.EPOCH_STARTED(once=2), lambda _: stamps.append(time.perf_counter()))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, on_iteration)
    if trainer.state.max_epochs > 1:  # time the epochs after the first (the first one warms up)
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda _: samples.__setitem__(0, 0))
    start = time.perf_counter()
    wf.run()
    end = time.perf_counter()
    last = [loss for epoch, loss in losses if epoch == trainer.state.max_epochs]
    stats = torch.tensor([float(np.mean(last)), float(samples[0]), end - (stamps[0] if stamps else start)])
    world = dist.get_world_size()
    gathered = [torch.zeros(3) for _ in range(world)]
    dist.all_gather(gathered, stats)
    wf.finalize()
    if int(os.environ.get("RANK", "0")) == 0:
        g = torch.stack(gathered)
        print_result({"final_loss": float(g[:, 0].mean()), "samples": float(g[:, 1].sum()),
                      "seconds": float(g[:, 2].max()), "timed_from_epoch": 2 if stamps else 1})


def torchrun_section(tmp: Path, profile: dict, threads: int) -> dict:
    """``profile["torchrun"]["bundle"]`` (the knee bundle) with 1 and 2 torchrun processes (gloo on the CPU,
    ``threads`` threads in all)."""
    cfg = profile["torchrun"]
    bundle, data = cfg["bundle"], tmp / "torchrun_data"
    if cfg["data"] == "blobs":
        write_blob_dataset(bundle, data, tuple(profile["blob_shape"][bundle]), cfg["volumes"])
    else:
        registry.demo_generator(bundle)(data, num_volumes=cfg["volumes"], seed=0, log=None)
    out = {"overrides": cfg["overrides"], "epochs": cfg["epochs"], "rows": {}}
    for n in (1, 2):
        run_dir = tmp / f"torchrun_{n}"
        spec = {"bundle": bundle,
                "overrides": {**cfg["overrides"], "dataset_dir": str(data), "ckpt_dir": str(run_dir),
                              "output_dir": str(run_dir / "tb"), "max_epochs": cfg["epochs"], "resume": False,
                              "val_interval": 1000,  # never validates; two validation cases so each rank has one
                              "validate#dataset#data":
                                  "$custom_networks.bundle.datalist.load_datalist(@datalist, 'training')"}}
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "spec.json").write_text(json.dumps(spec))
        per_rank = max(1, threads // n)
        cmd = ["-m", "torch.distributed.run", f"--nproc_per_node={n}", f"--master_port={29600 + n}",
               "-m", "scripts.benchmark", "torchrun_child", str(run_dir / "spec.json")]
        proc = subprocess.run([sys.executable, *cmd], cwd=REPO, env=_repo_env(OMP_NUM_THREADS=str(per_rank)),
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun {n} failed:\n{proc.stderr[-3000:]}")
        r = read_result(proc.stdout)
        r["samples_per_s"] = r["samples"] / r["seconds"]
        r["threads_per_process"] = per_rank
        out["rows"][str(n)] = r
        print(f"[benchmark] torchrun {n}: {json.dumps(r)}", flush=True)
    one, two = out["rows"]["1"], out["rows"]["2"]
    out["speedup"] = two["samples_per_s"] / one["samples_per_s"]
    out["loss_relative_difference"] = abs(two["final_loss"] - one["final_loss"]) / abs(one["final_loss"])
    return out


# ----------------------------------------------------------------------------------------------- report
def scratch_folder(profile_name: str) -> Path:
    """Where a run without ``--out`` writes: ``<temp dir>/medseg_benchmark/<profile>``, never the published page."""
    return Path(tempfile.gettempdir()) / "medseg_benchmark" / profile_name


#: the measured sections of ``benchmarks.json`` (what ``--merge`` may keep from a stored run)
SECTIONS = ("conv", "cpu_peak", "training_step", "training", "inference", "memory", "networks", "layers", "torchrun")


def _repo_relative(path: str | Path) -> str:
    """``path`` relative to the repository where it lies inside it (a stored page names no machine's folders),
    else its file name."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def main(bundle: str | list | tuple = "all", quick: bool = False, out: str | None = None, threads: int | None = None,
         sections: str = "conv,training_step,training,inference,memory,networks,layers,torchrun",
         lengths: str | tuple | None = None, merge: bool = False) -> str:
    """Run every section for ``bundle`` (comma-separated names or ``all``); write ``benchmarks.md``/``.json``/plots
    under ``out`` and return the markdown file's path. Without ``out`` they go to :func:`scratch_folder`: only an
    explicit ``--out docs`` rewrites the published page.

    Every measurement runs in a child process (forked from one warm fork server; torchrun in its own processes).
    The standard profile runs them one after another; quick runs three lanes side by side (conv, training step,
    training and networks; inference; torchrun), which makes it fast and its timings meaningless. ``sections``:
    comma-separated names of the sections to run (the conv yardstick always runs). ``lengths``: the memory
    section's scan lengths in slices (``100,400``; default the profile's). ``merge``: keep the sections of an
    existing ``<out>/benchmarks.json`` that this run does not measure (each section says its own date)."""
    quick = str(quick).lower() in ("1", "true", "yes")  # fire passes a bool, or the word as given
    profile_name = "quick" if quick else "standard"
    profile = PROFILES[profile_name]()
    if lengths:
        profile["memory"]["lengths"] = tuple(int(n) for n in as_list(str(lengths).strip("()[]")))
    # quick's lanes share the cores: one thread each, as OpenMP threads spinning on busy cores slow everything
    threads = int(threads or (1 if profile["concurrent"] else os.cpu_count() or 1))
    names = list(registry.RECORDS) if bundle == "all" else [check(n) for n in as_list(bundle)]
    wanted = set(sections.split(",") if isinstance(sections, str) else sections)
    out_dir = Path(out).resolve() if out else scratch_folder(profile_name)
    (out_dir / "img").mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"profile": profile_name, "threads": threads,
                               "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                               "command": "python -m scripts.benchmark " + " ".join(
                                   _repo_relative(a) if os.path.isabs(a) else a for a in sys.argv[1:]),
                               "load_average_start": list(os.getloadavg())}
    start = time.perf_counter()
    start_fork_server()
    with tempfile.TemporaryDirectory(prefix="medseg_benchmark_") as tmp_name:
        tmp = Path(tmp_name)

        def conv_training_networks_lane() -> None:
            results.update(run_isolated(device_and_conv, (profile,), threads))
            if "training_step" in wanted and profile["training_step"]["bundle"] in names:
                results["training_step"] = training_step(profile, threads)
            if "training" in wanted:
                results["training"] = training(names, tmp, profile, threads)
            if "networks" in wanted:
                results["networks"] = run_isolated(networks, (profile,), threads)
            if "layers" in wanted:
                results["layers"] = run_isolated(layer_profile, (profile, threads), threads)

        def inference_lane() -> None:
            if "inference" in wanted:
                results["inference"] = inference(names, tmp, profile, threads)
            if "memory" in wanted:
                results["memory"] = memory(names, tmp, profile, threads)

        lanes = [conv_training_networks_lane, inference_lane]
        if "torchrun" in wanted and profile["torchrun"]["bundle"] in names:
            lanes.append(lambda: results.__setitem__("torchrun", torchrun_section(tmp, profile, threads)))
        if profile["concurrent"]:
            with concurrent.futures.ThreadPoolExecutor(len(lanes)) as pool:
                for job in [pool.submit(lane) for lane in lanes]:
                    job.result()
        else:
            for lane in lanes:
                lane()
    if "inference" in results:
        add_efficiencies(results["inference"], results["conv"])
    if "training_step" in results:
        add_step_shares(results["training_step"], results["conv"])
    results["total_wall_s"] = time.perf_counter() - start
    results["load_average_end"] = list(os.getloadavg())
    for section in SECTIONS:  # a section measured now is dated now; a merged one keeps its own date
        if section in results:
            results.setdefault("section_dates_utc", {})[section] = results["date_utc"]
    if merge and (out_dir / "benchmarks.json").is_file():
        stored = json.loads((out_dir / "benchmarks.json").read_text())
        kept = {k: v for k, v in stored.items() if k in SECTIONS and k not in results}
        dates = {k: v for k, v in stored.get("section_dates_utc", {}).items() if k in kept}
        results = {**results, **kept, "section_dates_utc": {**{k: stored["date_utc"] for k in kept}, **dates,
                                                           **results.get("section_dates_utc", {})}}
    results["plots"] = [_repo_relative(p) for p in plots(results, out_dir / "img")]
    (out_dir / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "benchmarks.md").write_text(markdown(results, profile))
    print(f"[benchmark] wrote {out_dir / 'benchmarks.md'} in {results['total_wall_s']:.0f} s", flush=True)
    return str(out_dir / "benchmarks.md")

