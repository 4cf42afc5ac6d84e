"""``python -m scripts.benchmark --quick``: every section runs and every figure it reports is present and finite.

No timing thresholds: the figures depend on the machine and its load.
"""

from __future__ import annotations

import json
import math
import subprocess

from scripts.common.bundles import names
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


def test_quick_benchmark_writes_every_figure(tmp_path):
    proc = subprocess.run([PYTHON, "-m", "scripts.benchmark", "--quick", f"--out={tmp_path}"], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "benchmarks.json").read_text())
    numbers = list(_numbers(results))
    bad = [(p, v) for p, v in numbers if not math.isfinite(v)]
    assert not bad, bad
    assert results["device"] and results["profile"] == "quick"
    assert {"conv2d", "conv3d"} <= set(results["conv"])
    for bundle in names():
        train = results["training"][bundle]
        if "skipped" in train:
            assert not (SHARED_DATA / "hn_oar_masks").is_dir(), train
        else:
            assert [r["variant"] for r in train["rows"]] == ["cache", "no_cache", "cache_thread"]
            assert all(r["pure_s"] > 0 and r["full_s"] > 0 and r["ratio"] > 0 for r in train["rows"])
        infer = results["inference"][bundle]
        assert {"inference.json", "before fix"} <= set(infer["runs"]) and infer["fix_speedup"] > 0, bundle
        for run in infer["runs"].values():
            for key in ("wall_s", "peak_rss_gb", "gflop", "efficiency_network", "efficiency_pipeline"):
                assert run[key] > 0, (bundle, key)
    hn = results["inference"]["head_neck_two_stage_unet"]
    assert set(hn["runs"]) == {"inference.json", "before fix", "inference_baseline.json"}
    assert hn["two_stage_speedup"] > 0
    assert len(results["networks"]) == 4
    assert all(r["monai"]["parameters"] > 0 and r["latency_s"] > 0 for r in results["networks"].values())
    assert set(results["torchrun"]["rows"]) == {"1", "2"}
    assert all(r["samples_per_s"] > 0 for r in results["torchrun"]["rows"].values())
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert results["device"] in markdown and "nan" not in markdown.lower().split()
    for png in results["plots"]:
        assert (tmp_path / "img" / png.split("/")[-1]).stat().st_size < 300_000
