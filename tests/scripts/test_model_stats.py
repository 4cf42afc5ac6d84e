"""``python -m scripts.model_stats head_neck_two_stage_unet``: the two-stage bundle's 3D networks at their sizes."""

from __future__ import annotations

import math

from scripts.common.two_stage_parts import two_stage_parts
from scripts.common.bundles import Bundle
from scripts.common.registry import tiny
from scripts.model_stats import two_stage_rows

HN = "head_neck_two_stage_unet"


def test_two_stage_rows_measure_stage1_and_organ_nets_at_their_configured_sizes():
    overrides = {**tiny(HN, "openkbp"), "crop_sizes#larynx": [8, 16, 24]}
    rows = two_stage_rows(HN, overrides, repeats=1)
    parser = Bundle(HN).parser(["train.json"], **overrides)
    stage1 = parser.get_parsed_content("stage1_size")
    assert rows[0]["network"] == "stage 1" and rows[0]["input"][2:] == list(stage1) and len(rows[0]["input"]) == 5
    assert rows[0]["step_s"] > 0
    organ_inputs = {tuple(r["input"][2:]) for r in rows[1:]}
    assert organ_inputs == {(16, 16, 16), (8, 16, 24)}  # one row per distinct window size of crop_sizes
    assert [r["input"] for r in rows] == [p["input"] for p in two_stage_parts(HN, overrides)["parts"]]
    for row in rows:
        assert row["parameters"] > 0 and row["gflops"] > 0, row
        assert row["step_s"] > 0, row  # every part's step is measured
    small, large = (next(r for r in rows[1:] if tuple(r["input"][2:]) == s) for s in [(16, 16, 16), (8, 16, 24)])
    assert math.isclose(large["gflops"] / small["gflops"], (8 * 16 * 24) / 16 ** 3)  # a conv net's FLOPs scale with the window
