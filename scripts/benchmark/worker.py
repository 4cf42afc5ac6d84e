"""Child side of the benchmark (``scripts.benchmark``): the fork server's preloaded module, one pipeline per child.

The benchmark's fork server imports this module once (``multiprocessing`` ``forkserver`` preload): MONAI, the
custom networks, ITK's wrapped modules (which ITK otherwise loads lazily on the first read, about 4 s here) and
``torch._dynamo`` (imported by ``FlopCounterMode`` on first use, 1.6 s) are then in memory, and every
measurement runs in a fresh child forked from that server. Each child's peak RSS (``VmHWM``) is its own,
counted from the imported libraries up, and its wall time is that of a warm process: what a MONAI Label server
or a batch job pays per volume, without the 10 s of imports per process.

Also here: :class:`FullGridBoxesTwoStageUNet`, the head-and-neck network as it was before the benchmark's fix,
for the before/after rows.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

import itk
import monai.bundle  # noqa: F401  (preloaded for the children)
import monai.engines  # noqa: F401
import torch
import torch._dynamo  # noqa: F401  (FlopCounterMode imports it on first use: 1.6 s in every child otherwise)
import torch.nn.functional as F
from ignite.engine import Events

import custom_networks  # noqa: F401
from custom_networks import TwoStageUNet
from scripts.common.bundles import Bundle
from scripts.common.measure import flops_of, peak_rss_gb, sync

itk.ImageFileReader  # noqa: B018  (loads ITK's IO modules now, in the server, not in every child)


class FullGridBoxesTwoStageUNet(TwoStageUNet):
    """``TwoStageUNet`` before the fix: stage-1 logits resized (trilinear) to the input grid, then argmax-ed and
    searched for organ boxes there. Same weights, shapes and outputs contract as ``TwoStageUNet``; (B, 1, X, Y, Z)
    in, (B, 1 + n_organs, X, Y, Z) probabilities out. Boxes differ from the fixed network's by at most one
    stage-1 voxel per face (before the margins)."""

    def stage1_logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().stage1_logits(x), size=x.shape[2:], mode="trilinear", align_corners=False)


def _leaf_networks(net) -> dict:
    """The networks whose forwards are counted: stage 1 and each stage-2 net of TwoStageUNet, else the network."""
    if hasattr(net, "stage1") and hasattr(net, "stage2"):
        return {"stage1": net.stage1, **{f"stage2_{o}": m for o, m in net.stage2.items()}}
    return {"network": net}


def _record_forwards(leaves: dict) -> tuple[dict, list]:
    """Hooks that record every forward's input shape and seconds: ``({name: [[shape, seconds], ...]}, handles)``."""
    calls: dict[str, list] = {name: [] for name in leaves}
    handles = []
    for name, module in leaves.items():
        def pre(_m, args, _n=name):
            sync()
            calls[_n].append([tuple(args[0].shape), time.perf_counter()])

        def post(_m, _args, _out, _n=name):
            sync()
            calls[_n][-1][1] = time.perf_counter() - calls[_n][-1][1]

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return calls, handles


def _untrained_workflow(spec: dict, files: list[str], overrides: dict):
    """The initialized inference workflow of ``spec["bundle"]`` with untrained weights (seed 0) saved as the
    ``model.pt`` in ``overrides["ckpt_dir"]``, and this forked child's runtime cache at ``spec["runtime_cache"]``."""
    ckpt = Path(overrides["ckpt_dir"])
    ckpt.mkdir(parents=True, exist_ok=True)
    if spec.get("runtime_cache"):  # this forked child only: the run's own cache of exported networks
        os.environ["MEDSEG_RUNTIME_CACHE"] = spec["runtime_cache"]
    wf = Bundle(spec["bundle"]).workflow(files, "infer", **overrides)
    wf.initialize()
    torch.manual_seed(0)
    torch.save(wf.parser.get_parsed_content("network_def").state_dict(), ckpt / "model.pt")
    return wf


def run_pipeline(spec: dict) -> dict:
    """One bundle pipeline (``spec``: bundle, config files, overrides, ``warm``, ``untimed_first_run``,
    ``runtime_cache``) with untrained weights saved as its ``model.pt``: wall seconds of ``run()``, this
    process's peak RSS, FLOPs and seconds of every forward (timed on the network the evaluator runs, which
    under ``--runtime onnxruntime`` / ``openvino`` is the exported one; FLOPs counted on the torch network).

    With ``warm`` the pipeline runs a second time in the same process and that run's wall and forward seconds
    are reported too (``warm_wall_s``, ``forward_s``): the first run also pays one-off set-up (oneDNN kernels
    for every layer shape, first-touch allocations), which a whole volume pays once, not per slice."""
    wf = _untrained_workflow(spec, spec["files"], spec["overrides"])
    leaves = _leaf_networks(wf.parser.get_parsed_content("network"))
    recorded: dict = {}

    def record(engine) -> None:  # on the network the evaluator runs: after the loader and the runtime handler
        recorded["calls"], recorded["handles"] = _record_forwards(_leaf_networks(engine.network))

    wf.parser.get_parsed_content("evaluator").add_event_handler(Events.STARTED, record)
    if spec.get("untimed_first_run"):  # a runtime's export happens once per weights, before the timed run
        wf.run()
    walls = []
    for _ in range(2 if spec.get("warm") else 1):
        start = time.perf_counter()
        wf.run()
        sync()
        walls.append(time.perf_counter() - start)
        for handle in recorded["handles"]:
            handle.remove()
    calls = recorded["calls"]
    rss = peak_rss_gb()  # before the FLOP counting below adds its own allocations
    wf.finalize()
    per_net = {}
    for name, rows in calls.items():  # the last run's forwards
        if not rows:
            continue
        shapes = {tuple(s) for s, _ in rows}
        flops = {s: flops_of(leaves[name], s) for s in shapes}
        per_net[name] = {"forwards": len(rows), "gflop": sum(flops[tuple(s)] for s, _ in rows) / 1e9,
                         "seconds": sum(t for _, t in rows), "shapes": sorted(list(s) for s in shapes)}
    return {"wall_s": walls[0], **({"warm_wall_s": walls[1]} if len(walls) > 1 else {}), "networks": per_net,
            "peak_rss_gb": rss, "gflop": sum(v["gflop"] for v in per_net.values()),
            "forward_s": sum(v["seconds"] for v in per_net.values())}


def reset_peak_rss() -> None:
    """Start this process's peak RSS (``VmHWM``) afresh from its current RSS (Linux: ``clear_refs`` 5), so that
    a peak measured after a warm-up is the measured step's alone; where that file cannot be written, the peak
    stays the process's whole peak (never lower than the step's)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def run_whole_volume(spec: dict) -> dict:
    """``inference.json`` of ``spec["bundle"]`` on ``spec["images"]`` (a small warm-up volume, then the whole one)
    in one evaluator run with untrained weights: seconds of the whole volume from fetching it to its saved label
    map (the warm-up pays the runtime's export and compilation, as a user's first scan does once), and the
    process's peak RSS while the whole volume ran (:func:`reset_peak_rss` when it is fetched)."""
    wf = _untrained_workflow(spec, ["inference.json"], {**spec["overrides"], "datalist": spec["images"]})
    evaluator, stamps, last = wf.parser.get_parsed_content("evaluator"), {}, len(spec["images"]) - 1

    def started(engine) -> None:
        if engine.state.iteration == last:  # the whole volume: its own peak, not the warm-up's (or the export's)
            reset_peak_rss()
        stamps.setdefault(engine.state.iteration, [time.perf_counter()])

    evaluator.add_event_handler(Events.GET_BATCH_STARTED, started)
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: stamps[e.state.iteration - 1].append(
        time.perf_counter()) if e.state.iteration - 1 in stamps else None)
    wf.run()
    start, end = stamps[len(spec["images"]) - 1]
    return {"seconds": end - start, "peak_rss_gb": peak_rss_gb()}


def child_main(target, args: tuple, threads: int, conn) -> None:
    """Entry point of a forked child: ``target(*args)`` (a module-level function) with ``threads`` torch
    threads; ``("ok", result)`` or ``("error", traceback)`` back through ``conn``."""
    try:
        torch.set_num_threads(threads)
        conn.send(("ok", target(*args)))
    except BaseException:  # noqa: BLE001  (the parent re-raises it with the spec)
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
