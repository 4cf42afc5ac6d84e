"""The parts of a two-stage bundle that train separately (stage 1, one organ net per window size) and the configs
that build each: shared by ``scripts.benchmark`` (training-step rows) and ``scripts.model_stats``."""

from __future__ import annotations

from scripts.common.bundles import Bundle


def two_stage_parts(bundle_name: str, overrides: dict) -> dict:
    """Stage 1 and one organ net per distinct window of ``crop_sizes``, each with its input shape (batch x 1 x size),
    from a two-stage bundle's configs with ``overrides``."""
    bundle = Bundle(bundle_name)
    stage1 = bundle.parser(["train.json"], **overrides)
    stage2 = bundle.parser(["train.json", "train_stage2.json"], **overrides)
    batch, samples = int(stage2.get_parsed_content("stage2_batch")), int(stage2.get_parsed_content("stage2_samples"))
    organs, crops = stage1.get_parsed_content("organs"), stage2.get_parsed_content("crop_sizes")
    parts = [{"part": "stage 1", "organ": None, "organs": list(organs),
              "input": [int(stage1.get_parsed_content("train#dataloader#batch_size")), 1,
                        *map(int, stage1.get_parsed_content("stage1_size"))]}]
    for organ in organs:
        size = [int(s) for s in crops[organ]]
        same = next((p for p in parts[1:] if p["input"][2:] == size), None)
        if same:
            same["organs"].append(organ)
        else:
            parts.append({"part": "organ net", "organ": organ, "organs": [organ], "input": [batch * samples, 1, *size]})
    return {"crop_mode": stage2.get_parsed_content("crop_mode"), "stage2_batch": batch, "stage2_samples": samples,
            "parts": parts}


def part_parser(bundle_name: str, overrides: dict, organ: str | None):
    """The configs that train one part of a two-stage bundle: ``train.json`` (stage 1, ``organ`` None) or
    ``train.json`` + ``train_stage2.json`` for ``organ``'s net. An organ net's class weights (thesis setup) are
    counted from the training labels, which a benchmark does not have; they do not change a step's cost, so they
    are left out."""
    if organ is None:
        return Bundle(bundle_name).parser(["train.json"], **overrides)
    return Bundle(bundle_name).parser(["train.json", "train_stage2.json"], **overrides, organ=organ, **{"loss#weight": None})
