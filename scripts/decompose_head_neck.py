"""Where the head-and-neck pipeline loses Dice: organ nets on ground-truth boxes, on stage 1's boxes, and merged.

    python -m scripts.decompose_head_neck --dataset_dir DATA [--eval_split validation] [--ckpt_dir DIR]
        [--out FILE.json] [--any_config_key VALUE ...]

For every case of the split (the bundle's ``train.json`` + ``evaluate.json`` preprocessing, on the working grid) and
every organ the case contours, Dice against the clinical contour of:

* ``stage1``: stage 1 alone (its softmax resized to the working grid, argmax; ``--use_stage2 false``);
* ``organ_net_gt``: each organ net alone (its probability > 0.5) on the crop around the **ground-truth** organ;
* ``organ_net_stage1``: the same net on the crop around **stage 1's** organ;
* ``pipeline``: the whole two-stage pipeline (the organs merged by argmax), what ``evaluate.json`` scores.

``organ_net_gt - organ_net_stage1`` is what localisation costs, ``organ_net_stage1 - pipeline`` what the merge
costs. A case where an output is empty but the organ is contoured counts Dice 0 (a miss, counted). It also prints
how far stage 1's box centre lies from the ground truth's, in working-grid voxels per axis (mean and 95th
percentile), the error an organ net's training jitter has to cover. Any other ``--key value`` is a config
override, as for ``python -m monai.bundle run`` (e.g. ``--crop_mode window --crop_sizes '{...}'``).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

BUNDLE = "head_neck_two_stage_unet"
ROWS = ("stage1", "organ_net_gt", "organ_net_stage1", "pipeline")


def _dice(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """MONAI's Dice of two boolean volumes (NaN where the truth is empty)."""
    from monai.metrics import compute_dice

    return float(compute_dice(pred[None, None].float(), truth[None, None].float(), include_background=True)[0, 0])


def decompose_case(net, x: torch.Tensor, label: torch.Tensor, contoured: list[bool]) -> tuple[dict, dict]:
    """Dice per row and organ for one preprocessed case (``x`` (1, 1, X, Y, Z), ``label`` (X, Y, Z)), and the
    offset (working-grid voxels per axis) of stage 1's box centre from the ground truth's per organ."""
    from custom_networks.ops.windows import box_centre

    with torch.inference_mode():
        logits = net.stage1_logits(x)
        stage1 = F.interpolate(logits, size=x.shape[2:], mode="trilinear", align_corners=False).argmax(1)[0]
        found = logits.argmax(1)
        on_truth = net.organ_probabilities(x, label[None], warn=False)[0]
        on_stage1 = net.organ_probabilities(x, found, warn=False)[0]
    merged = on_stage1.argmax(0)
    truth_boxes = net.organ_boxes(label, x.shape[2:])
    stage1_boxes = net.organ_boxes(found[0], x.shape[2:])
    dice, offsets = {row: {} for row in ROWS}, {}
    for i, organ in enumerate(net.organs, start=1):
        truth = label == i
        if not contoured[i - 1] or not truth.any():
            continue
        dice["stage1"][organ] = _dice(stage1 == i, truth)
        dice["organ_net_gt"][organ] = _dice(on_truth[i] > 0.5, truth)
        dice["organ_net_stage1"][organ] = _dice(on_stage1[i] > 0.5, truth)
        dice["pipeline"][organ] = _dice(merged == i, truth)
        if stage1_boxes[organ] is not None:
            offsets[organ] = [s - t for s, t in zip(box_centre(stage1_boxes[organ]), box_centre(truth_boxes[organ]))]
    return dice, offsets


def summarise(cases: list[tuple[dict, dict]], organs: list[str]) -> dict:
    """Per row: mean Dice per organ over the cases that contour it, the misses, and the organ mean; per organ
    the mean absolute and 95th-percentile centre offset of stage 1's boxes."""
    out: dict = {"rows": {}, "n_cases": {}, "centre_offset_voxels": {}}
    for row in ROWS:
        per_organ, misses = {}, {}
        for organ in organs:
            values = [c[0][row][organ] for c in cases if organ in c[0][row]]
            if values:
                per_organ[organ] = float(np.mean(values))
                misses[organ] = int(sum(v == 0 for v in values))
                out["n_cases"][organ] = len(values)
        out["rows"][row] = {"dice": per_organ, "misses": misses, "mean": float(np.mean(list(per_organ.values())))}
    for organ in organs:
        offs = np.abs(np.array([c[1][organ] for c in cases if organ in c[1]]))
        if offs.size:
            out["centre_offset_voxels"][organ] = {"mean": offs.mean(0).round(2).tolist(),
                                                  "p95": np.percentile(offs, 95, axis=0).round(2).tolist()}
    return out


def table(summary: dict, organs: list[str]) -> str:
    """The summary as a Markdown table: one row per pipeline row, one column per organ, and the mean."""
    head = "| row | " + " | ".join(organs) + " | mean |"
    lines = [head, "|---" * (len(organs) + 2) + "|",
             "| cases | " + " | ".join(str(summary["n_cases"].get(o, 0)) for o in organs) + " | |"]
    for row, r in summary["rows"].items():
        cells = [f"{r['dice'][o]:.3f}" + (f" ({r['misses'][o]} missed)" if r["misses"].get(o) else "")
                 if o in r["dice"] else "–" for o in organs]
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {r['mean']:.3f} |")
    gt, s1 = summary["rows"]["organ_net_gt"]["dice"], summary["rows"]["pipeline"]["dice"]
    lines.append("| pipeline − organ_net_gt | " + " | ".join(f"{s1[o] - gt[o]:+.3f}" if o in gt else "–" for o in organs)
                 + " | |")
    offsets = summary["centre_offset_voxels"]
    lines.append("| stage-1 centre offset, voxels (mean x/y/z) | "
                 + " | ".join("/".join(f"{v:.1f}" for v in offsets[o]["mean"]) if o in offsets else "–" for o in organs)
                 + " | |")
    return "\n".join(lines)


def _overrides(extra: list[str]) -> dict:
    """``--key value`` pairs as config overrides (values parsed as JSON where they are JSON)."""
    if len(extra) % 2 or any(not k.startswith("--") for k in extra[::2]):
        raise SystemExit(f"config overrides must come as --key value pairs, got {extra}")
    out = {}
    for key, value in zip(extra[::2], extra[1::2]):
        try:
            out[key[2:]] = json.loads(value)
        except json.JSONDecodeError:
            out[key[2:]] = value
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", required=True, help="folder holding datalist.json (scripts.prepare_openkbp)")
    parser.add_argument("--eval_split", default="validation", help="datalist list to decompose on")
    parser.add_argument("--ckpt_dir", default=None, help="folder of the pipeline's model.pt (default: the bundle's)")
    parser.add_argument("--out", default=None, help="write the per-case and summary figures as JSON here")
    args, extra = parser.parse_known_args(argv)

    from custom_networks.bundle.two_stage_weights import load_pipeline_weights
    from custom_networks.transforms.partial_labels import contoured_of
    from scripts.common.bundles import Bundle

    overrides = {"dataset_dir": args.dataset_dir, "eval_split": args.eval_split, "device": "cpu", **_overrides(extra)}
    if args.ckpt_dir:
        overrides["ckpt_dir"] = args.ckpt_dir
    config = Bundle(BUNDLE).parser(("train.json", "evaluate.json"), **overrides)
    net = config.get_parsed_content("network_def").eval()
    load_pipeline_weights(net, config.get_parsed_content("ckpt_dir") + "/model.pt")
    preprocess = config.get_parsed_content("validate#preprocessing")
    items = config.get_parsed_content("validate#dataset#data")
    organs = list(net.organs)
    cases = []
    for n, item in enumerate(items, start=1):
        d = preprocess(item)
        flags = contoured_of(d["label"], len(organs))
        contoured = [True] * len(organs) if flags is None else flags.tolist()
        cases.append(decompose_case(net, d["image"][None].as_tensor(), d["label"][0].as_tensor().long(), contoured))
        print(f"[{n}/{len(items)}] {item['image']}: pipeline "
              + " ".join(f"{o} {v:.2f}" for o, v in cases[-1][0]["pipeline"].items()), flush=True)
    summary = summarise(cases, organs)
    print(f"\n{len(items)} cases of '{args.eval_split}' in {args.dataset_dir}; Dice on the working grid\n")
    print(table(summary, organs))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "cases": [{"item": i, "dice": c[0], "centre_offset": c[1]}
                                                     for i, c in zip(items, cases)]}, f, indent=1, default=str)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
