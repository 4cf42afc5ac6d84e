"""``python -m scripts.benchmark --quick``: every section runs and every figure it reports is present and finite.

No timing thresholds: the figures depend on the machine and its load.
"""

from __future__ import annotations

import json
import math
import subprocess
import time

import pytest

from scripts.common import registry
from scripts.common.bundles import names
from scripts.common.registry import tiny
from tests.conftest import PYTHON, REPO, SHARED_DATA, subprocess_env


def _numbers(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


#: every bundle's inference runs: the default (runtime auto), torch, torch before the bottleneck fix, the others
RUNS = ("inference.json", "runtime torch", "before fix", "runtime onnxruntime", "runtime onnxruntime-int8")


def _published_page() -> dict:
    return {p: p.read_bytes() for p in sorted((REPO / "docs").rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_quick_benchmark_writes_every_figure_to_a_scratch_folder(tmp_path):
    published = _published_page()
    env = {**subprocess_env(), "TMPDIR": str(tmp_path)}  # the scratch folder lands under tmp_path
    proc = subprocess.run([PYTHON, "-m", "scripts.benchmark", "--quick"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _published_page() == published  # a run without --out leaves docs/ as it was
    out = tmp_path / "medseg_benchmark" / "quick"
    results = json.loads((out / "benchmarks.json").read_text())
    numbers = list(_numbers(results))
    bad = [(p, v) for p, v in numbers if not math.isfinite(v)]
    assert not bad, bad
    assert results["device"] and results["profile"] == "quick"
    assert {"conv2d", "conv3d"} <= set(results["conv"])
    for conv in results["conv"].values():  # the yardstick is the best of the measured grid, both memory formats
        assert {r["memory_format"] for r in conv["all"]} == {"contiguous", "channels_last"}
        assert conv["gflops_per_s"] == max(r["gflops_per_s"] for r in conv["all"])
    assert results["cpu_peak"]["derivation"]
    for bundle in names():
        train = results["training"][bundle]
        if "skipped" in train:
            assert not (SHARED_DATA / "hn_oar_masks").is_dir(), train
        else:
            assert [r["variant"] for r in train["rows"]] == ["cache", "no_cache", "cache_thread"]
            assert all(r["pure_s"] > 0 and r["full_s"] > 0 and r["ratio"] > 0 for r in train["rows"])
            assert train["rows"][0]["transforms_s_per_batch"]  # the data pipeline's profile, per transform
        infer = results["inference"][bundle]
        assert infer["default_runtime"] == "openvino"  # auto on a CPU; the default run is inference.json itself
        assert set(RUNS) <= set(infer["runs"])
        assert set(infer["runtime_speedup"]) == {"openvino", "onnxruntime", "onnxruntime-int8"}
        assert infer["fix_speedup"] > 0 and all(v > 0 for v in infer["runtime_speedup"].values()), bundle
        assert infer["pipeline_over_forwards"] > 1
        layers = results["layers"][bundle]  # the per-layer profile: time of every kind, conv FLOPs counted
        assert layers["seconds"] > 0 and layers["gflop"] > 0
        assert math.isclose(sum(k["seconds"] for k in layers["kinds"].values()), layers["seconds"])
        for run in infer["runs"].values():
            for key in ("wall_s", "peak_rss_gb", "gflop", "efficiency_network", "efficiency_pipeline"):
                assert run[key] > 0, (bundle, key)
    for bundle in ("knee_eas_unet", "lower_limb_afu_unet", "spine_msr_attention_unet"):  # the 2D ones
        mem = results["memory"][bundle]
        lengths = mem["lengths"]
        assert list(lengths) == ["4", "12"] and mem["rss_growth"] == lengths["12"]["peak_rss_gb"] / lengths["4"][
            "peak_rss_gb"]
        for n, row in lengths.items():
            assert row["shape"][registry.record(bundle).slice_axis] == int(n) and row["peak_rss_gb"] > 0.3
            assert row["seconds_ratio"] == row["seconds"] / row["whole_volume"]["seconds"]
    assert "head_neck_two_stage_unet" not in results["memory"]
    assert all(not p.startswith("/") for p in results["plots"])
    hn = results["inference"]["head_neck_two_stage_unet"]
    assert set(hn["runs"]) == {*RUNS, "inference_baseline.json"}
    assert hn["two_stage_speedup"] > 0
    assert len(results["networks"]) == 4
    assert all(r["monai"]["parameters"] > 0 and r["latency_s"] > 0 for r in results["networks"].values())
    assert set(results["torchrun"]["rows"]) == {"1", "2"}
    assert all(r["samples_per_s"] > 0 for r in results["torchrun"]["rows"].values())
    markdown = (out / "benchmarks.md").read_text()
    assert results["device"] in markdown and "nan" not in markdown.lower().split()
    for png in results["plots"]:
        assert (out / "img" / png.split("/")[-1]).stat().st_size < 300_000


def test_whole_volume_times_the_whole_volume_after_a_warm_up():
    from scripts.benchmark.run import whole_volume

    result = whole_volume("knee_eas_unet", slices=5, threads=1, overrides=tiny("knee_eas_unet"))
    assert result["shape"] == [5, 384, 384] and result["runtime"] == "auto"
    assert result["seconds"] > 0 and result["peak_rss_gb"] > 0
    assert result["label_maps"] == ["warm_up_seg.nii.gz", "whole_seg.nii.gz"]
    with pytest.raises(ValueError, match="not a slice-by-slice bundle"):
        whole_volume("head_neck_two_stage_unet")


def test_cpu_peak_is_cores_times_clock_times_the_widest_instruction_set():
    from scripts.common.measure import cpu_peak_gflops

    xeon = "model name\t: Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz\ncpu MHz\t\t: 1200.000\nflags\t\t: sse2 avx fma avx2\n"
    peak = cpu_peak_gflops(4, xeon)
    assert peak["gflops_per_s"] == 4 * 2.5 * 32 and peak["isa"] == "fma"  # nominal clock, AVX2 + FMA: 32/cycle
    assert "2.500 GHz" in peak["derivation"] and "model name" in peak["derivation"]
    epyc = "model name\t: AMD EPYC\ncpu MHz\t\t: 2445.404\nflags\t\t: sse2 avx fma avx2 avx512f\n"
    assert cpu_peak_gflops(2, epyc)["gflops_per_s"] == 2 * 2.445404 * 64  # no nominal clock: the kernel's
    assert cpu_peak_gflops(2, "model name\t: some ARM core\n")["gflops_per_s"] is None


def test_the_before_fix_rows_replace_the_transforms_they_name():
    """``BEFORE_FIXES`` points at transforms by position: they must still be the ones it undoes."""
    from scripts.benchmark.profiles import BEFORE_FIXES
    from scripts.common.bundles import Bundle

    parser = Bundle("head_neck_two_stage_unet").parser(["inference.json"])
    overrides = BEFORE_FIXES[3]["overrides"]
    assert overrides["preprocessing#transforms#5#_target_"] == "Spacingd"
    assert parser["preprocessing#transforms#5#_target_"].endswith("GatherInverseSpacingd")
    assert [parser[f"postprocessing#transforms#{i}#_target_"] for i in (0, 1, 2)] == [
        "AsDiscreted", "KeepLargestConnectedComponentd", "Invertd"]  # the clean-up (off by default) gives way too


def test_training_step_section_follows_the_configs_against_the_same_runs_conv(tmp_path, monkeypatch):
    """The quick training-step section alone (with the conv yardstick): every part and variant has a row, the
    organ nets' inputs are the configs' crop sizes (one overridden here) x stage2_batch x stage2_samples, and
    each share is the row's GFLOP/s over this run's best conv3d rate."""
    from scripts.benchmark import run
    from scripts.common.bundles import Bundle

    hn, quick = "head_neck_two_stage_unet", run.PROFILES["quick"]

    def profile():
        p = quick()
        p["training_step"]["overrides"]["crop_sizes"]["larynx"] = [8, 16, 24]
        return p

    monkeypatch.setitem(run.PROFILES, "quick", profile)
    run.main(bundle=hn, quick=True, out=str(tmp_path), threads=1, sections="training_step")
    results = json.loads((tmp_path / "benchmarks.json").read_text())
    assert {"training", "inference", "networks", "layers", "torchrun"}.isdisjoint(results)  # only the chosen one
    section, rate = results["training_step"], results["conv"]["conv3d"]["gflops_per_s"]
    stage2 = Bundle(hn).parser(["train.json", "train_stage2.json"], **profile()["training_step"]["overrides"])
    windows = stage2.get_parsed_content("stage2_batch") * stage2.get_parsed_content("stage2_samples")
    assert (section["stage2_batch"], section["stage2_samples"]) == (stage2["stage2_batch"], stage2["stage2_samples"])
    sizes = stage2.get_parsed_content("crop_sizes")
    rows = {(r["part"], tuple(r["input"][2:]), r["variant"]): r for r in section["rows"]}
    stage1 = tuple(profile()["training_step"]["overrides"]["stage1_size"])
    assert {v for p, _, v in rows if p == "stage 1"} == {"contiguous", "channels-last", "torch.compile"}
    assert {s for p, s, _ in rows if p == "organ net"} == {(16, 16, 16), (8, 16, 24)}
    for (part, size, variant), r in rows.items():
        organs = [o for o, s in sizes.items() if tuple(s) == size]
        assert r["organs"] == (organs if part == "organ net" else list(sizes)), r
        batch = 1 if part == "stage 1" or variant == "batch 1" else windows
        assert r["input"] == [batch, 1, *(stage1 if part == "stage 1" else size)], r
        assert r["target"] == (0.3 if part == "stage 1" else 0.25)
        if "step_s" not in r:  # only torch.compile may fail or overrun its budget, and then it says so
            assert variant == "torch.compile" and r["error"], r
            continue
        assert r["step_s"] > 0 and r["gflop_forward"] > 0 and r["gflop_step"] == 3 * r["gflop_forward"]
        assert math.isclose(r["s_per_window"], r["step_s"] / batch)
        assert math.isclose(r["share"], r["gflop_step"] / r["step_s"] / rate)
    assert len({v for (p, _, v) in rows if p == "organ net"}) == 4
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "## Training step" in markdown and f"| {windows}x1x8x16x24 |" in markdown
    assert "- training step head-neck stage 1:" in markdown and "target >= 0.25" in markdown


def test_a_compile_row_over_its_budget_is_stopped_and_says_so():
    from scripts.benchmark.profiles import PROFILES
    from scripts.benchmark.run import _compile_row, step_parts

    profile = PROFILES["quick"]()
    part = step_parts(profile)["parts"][0]
    spec = {"bundle": "head_neck_two_stage_unet", "overrides": profile["training_step"]["overrides"], "repeats": 1,
            **part, "variant": "torch.compile"}
    start = time.perf_counter()
    late = _compile_row(spec, left=0.5, budget=60, threads=1)
    assert time.perf_counter() - start < 20  # killed at once, not waited for
    assert "step_s" not in late and "did not finish in the 0 s left" in late["error"], late
    assert "budget (60 s) was spent" in _compile_row(spec, left=0.0, budget=60, threads=1)["error"]


def _child_pid_and(value: int) -> tuple[int, int]:
    import os

    return os.getpid(), value * 2


def test_run_isolated_takes_the_function_and_runs_it_in_another_process():
    """Steps are passed as functions (find-usages finds them), each run in a forked child."""
    import ast
    import os

    from scripts.benchmark import run

    pid, doubled = run.run_isolated(_child_pid_and, (21,), threads=1)
    assert doubled == 42 and pid != os.getpid()
    calls = [node for node in ast.walk(ast.parse((REPO / "scripts/benchmark/run.py").read_text()))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_isolated"]
    assert calls and not [c.lineno for c in calls if isinstance(c.args[0], ast.Constant)]  # no step named by string


def test_stored_page_names_repo_paths_and_the_shipped_weights():
    """``docs/benchmarks.json`` stores no machine's absolute paths; ``docs/benchmarks.md`` does not deny the
    head-and-neck bundle's trained weights and curves."""
    from scripts.benchmark.run import _repo_relative

    assert _repo_relative(REPO / "docs" / "img" / "a.png") == "docs/img/a.png"
    assert _repo_relative("/somewhere/else/a.png") == "a.png"
    stored = (REPO / "docs" / "benchmarks.json").read_text()
    assert not [p for p in (str(REPO), "/work/", "/home/", "/tmp/", "/root/") if p in stored]
    page = (REPO / "docs" / "benchmarks.md").read_text().lower()
    assert "none are stored" not in page and "no trained" not in page and "no training curves" not in page
    assert "trained on openkbp" in page


def test_whole_volume_chain_restores_the_whole_volume_transforms_in_monais_order():
    """The "whole volume" rows (and the voxel test) run the slab chain's own transforms, unrolled."""
    from scripts.benchmark.profiles import whole_volume_chain
    from scripts.common.bundles import Bundle

    for bundle in ("knee_eas_unet", "lower_limb_afu_unet", "spine_msr_attention_unet"):
        parser = Bundle(bundle).parser(["inference.json"], **whole_volume_chain(bundle))
        pre = [t["_target_"] for t in parser["preprocessing#transforms"]]
        post = [t["_target_"] for t in parser["postprocessing#transforms"]]
        assert parser["inferer#_target_"].endswith("LargeSliceInferer")
        assert pre[-2:] == ["DivisiblePadd", "EnsureTyped"] and ("Spacingd" in pre) == (bundle != "knee_eas_unet")
        assert post[:4] == ["Activationsd", "Invertd", "AsDiscreted", "SaveImaged"]
