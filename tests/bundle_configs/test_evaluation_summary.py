"""The nnU-Net-style ``summary.json`` of every bundle's ``evaluate.json`` (custom_networks.engine.summary).

The handler on a fake engine state with NaN (not scored) and inf (organ missed) values; every bundle's
evaluate.json built on a datalist holding only the list it scores, with no training or validation list; and
the knee bundle trained and evaluated end to end on tiny synthetic data.
"""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import pytest
import torch
from monai.bundle.reference_resolver import ReferenceResolver

import custom_networks.bundle.datalist as datalist_module
from custom_networks.labels import head_neck
from custom_networks.engine.summary import MetricsSummary, channel_names, summarize
from scripts.common.registry import tiny
from tests.bundle_configs.helpers import BundleUnderTest, run

NAN, INF = float("nan"), float("inf")


def _strict_json(path) -> dict:
    """Read JSON that must hold no NaN / Infinity (which Python's json writes by default but JSON forbids)."""

    def refuse(token):
        raise AssertionError(f"{path} holds the non-JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


# ---- the handler on a fake engine state -------------------------------------------------------------------

#: 4 cases x 4 classes. a: scored in 3 cases (case 2 has no reference: Dice NaN, and its false-positive
#: HD95 = inf is not counted), missed once (inf); b: never scored; c: scored in all, missed once;
#: d: scored twice, missed both times.
DICE = [[0.8, NAN, 0.5, 0.0],
        [0.6, NAN, 0.0, 0.0],
        [NAN, NAN, 0.7, NAN],
        [0.0, NAN, 0.2, NAN]]
HD95 = [[2.0, NAN, 3.0, INF],
        [4.0, NAN, INF, INF],
        [INF, NAN, 5.0, NAN],
        [INF, NAN, 7.0, NAN]]
CHANNEL_DEF = {"0": "background", "1": "a", "2": "b", "3": "c", "4": "d"}


def _engine(**details) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(metric_details={k: torch.tensor(v) for k, v in details.items()}))


def test_summary_of_nan_and_inf_values(tmp_path):
    handler = MetricsSummary(output_dir=str(tmp_path / "eval"), class_names=CHANNEL_DEF)
    handler(_engine(val_mean_dice=DICE, val_hd95_mm=HD95, val_other=[[0.0] * 4] * 4))
    summary = _strict_json(tmp_path / "eval" / "summary.json")
    assert [p.name for p in (tmp_path / "eval").iterdir()] == ["summary.json"]  # no temporary file left
    assert list(summary["per_class"]) == ["a", "b", "c", "d"]
    a, b, c, d = (summary["per_class"][k] for k in "abcd")
    assert a == {"dice": pytest.approx(1.4 / 3), "hd95_mm": 3.0, "n_cases": 3, "dice_infinite": 0,
                 "hd95_mm_infinite": 1}
    assert b == {"dice": None, "hd95_mm": None, "n_cases": 0, "dice_infinite": 0, "hd95_mm_infinite": 0}
    assert c == {"dice": pytest.approx(0.35), "hd95_mm": 5.0, "n_cases": 4, "dice_infinite": 0,
                 "hd95_mm_infinite": 1}
    assert d == {"dice": 0.0, "hd95_mm": None, "n_cases": 2, "dice_infinite": 0, "hd95_mm_infinite": 2}
    # mean over the classes scored at least once (a, c, d); HD95 over those with a finite value (a, c)
    assert summary["mean"] == {"dice": pytest.approx((1.4 / 3 + 0.35 + 0.0) / 3), "hd95_mm": 4.0}
    assert summary["n_cases"] == 4


def test_summary_keeps_channel_zero_for_single_channel_bundles_and_takes_a_name_list(tmp_path):
    """Sigmoid bundles score channel 0 (the structure itself: include_background=true); a list works too."""
    engine = _engine(val_mean_dice=[[0.5], [0.7]], val_hd95_mm=[[1.0], [INF]])
    MetricsSummary(str(tmp_path), {"0": "bone"}, include_background=True)(engine)
    assert _strict_json(tmp_path / "summary.json") == {
        "mean": {"dice": pytest.approx(0.6), "hd95_mm": 1.0},
        "per_class": {"bone": {"dice": pytest.approx(0.6), "hd95_mm": 1.0, "n_cases": 2, "dice_infinite": 0,
                               "hd95_mm_infinite": 1}},
        "n_cases": 2,
    }
    MetricsSummary(str(tmp_path), ["background", "bone"], metrics={"dice": "val_mean_dice"})(engine)
    assert _strict_json(tmp_path / "summary.json")["per_class"] == {
        "bone": {"dice": pytest.approx(0.6), "n_cases": 2, "dice_infinite": 0}}


def test_summary_refuses_names_that_do_not_match_the_columns_and_missing_metrics(tmp_path):
    engine = _engine(val_mean_dice=DICE, val_hd95_mm=HD95)
    with pytest.raises(ValueError, match="4 class columns but 3 class names.*channel_def"):
        MetricsSummary(str(tmp_path), {"0": "background", "1": "a", "2": "b", "3": "c"})(engine)
    with pytest.raises(KeyError, match="val_hd_mm"):
        MetricsSummary(str(tmp_path), CHANNEL_DEF, metrics={"dice": "val_mean_dice", "hd": "val_hd_mm"})(engine)
    with pytest.raises(ValueError, match="0..N-1"):
        MetricsSummary(str(tmp_path), {"1": "a", "2": "b"})
    assert not (tmp_path / "summary.json").exists()


def test_summary_warns_when_another_metric_is_nan_where_the_reference_scored():
    with pytest.warns(UserWarning, match="hd95_mm is NaN in 1 of the 2 cases where dice scored x"):
        out = summarize({"dice": torch.tensor([[0.5], [0.7]]), "hd95_mm": torch.tensor([[NAN], [2.0]])}, ["x"])
    assert out["per_class"]["x"]["hd95_mm"] == 2.0 and out["per_class"]["x"]["n_cases"] == 2


def test_hd95_of_a_missed_organ_is_infinite_like_the_hd():
    """MONAI 1.6's percentile HD is NaN (not scored) where one mask is empty; HausdorffDistanceMM gives inf."""
    from custom_networks.engine.metrics import HausdorffDistanceMM

    ref = torch.zeros(3, 16, 16)
    ref[1, 4:8, 4:8] = 1  # organ 1 present, organ 2 absent
    ref[0] = 1 - ref[1]
    missed = torch.zeros(3, 16, 16)
    missed[0] = 1
    fp = ref.clone()
    fp[2, 12:14, 12:14] = 1  # organ 2 predicted where the reference has none
    hd95 = HausdorffDistanceMM(include_background=False, percentile=95)
    hd95.update(([missed, fp], [ref, ref]))
    torch.testing.assert_close(hd95.metric_fn.get_buffer(), torch.tensor([[INF, NAN], [0.0, INF]]), equal_nan=True)


def test_summarize_of_all_nan_gives_nulls():
    assert summarize({"dice": torch.full((2, 1), NAN)}, ["x"]) == {
        "mean": {"dice": None}, "per_class": {"x": {"dice": None, "n_cases": 0, "dice_infinite": 0}}, "n_cases": 2}


# ---- every bundle's evaluate.json reads only the list it scores --------------------------------------------

#: (bundle, configs merged between train.json and evaluate.json, cheap overrides: small networks)
SETUPS = {
    "knee": ("knee_eas_unet", [], tiny("knee_eas_unet")),
    "lower_limb": ("lower_limb_afu_unet", [], tiny("lower_limb_afu_unet")),
    "spine": ("spine_msr_attention_unet", [], tiny("spine_msr_attention_unet")),
    "head_neck": ("head_neck_two_stage_unet", [], tiny("head_neck_two_stage_unet")),
    "head_neck_thesis": ("head_neck_two_stage_unet", ["setup_thesis.json"], tiny("head_neck_two_stage_unet", "thesis")),
}


def _workflow(setup: str, **overrides):
    name, extra, tiny = SETUPS[setup]
    bundle = BundleUnderTest(name, tiny)
    return bundle, bundle.workflow(["train.json", *extra, "evaluate.json"], "eval", **overrides)


def _metadata_names(bundle: BundleUnderTest) -> list[str]:
    channel_def = json.loads((bundle.configs / "metadata.json").read_text())["network_data_format"]["outputs"][
        "pred"]["channel_def"]
    return [channel_def[str(i)] for i in range(len(channel_def))]


def _pred_channels(parser) -> int:
    return parser.get_parsed_content("network_def#out_channels" if "network_def#out_channels" in parser
                                     else "num_classes")


@pytest.mark.parametrize("split", ["testing", "holdout"])
@pytest.mark.parametrize("setup", list(SETUPS))
def test_evaluate_reads_only_the_scored_list(setup, split, tmp_path, monkeypatch):
    """A datalist with just the scored list (``testing``, or any list named with ``--eval_split``) is enough:
    building the evaluator and everything ``run`` uses asks the datalist for that list only."""
    (tmp_path / "img.nii.gz").write_bytes(b"")  # never read: caching is off below
    (tmp_path / "lab.nii.gz").write_bytes(b"")
    (tmp_path / "datalist.json").write_text(json.dumps({split: [{"image": "img.nii.gz", "label": "lab.nii.gz"}]}))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pt").write_bytes(b"")  # only its existence is checked before running
    asked = []
    real = datalist_module.load_datalist
    monkeypatch.setattr(datalist_module, "load_datalist",
                        lambda datalist, key="training", *a, **k: asked.append(key) or real(datalist, key, *a, **k))

    overrides = {"dataset_dir": str(tmp_path), "ckpt_dir": str(tmp_path / "models"),
                 "output_dir": str(tmp_path / "eval"), "validate#dataset#cache_rate": 0.0}
    if split != "testing":
        overrides["eval_split"] = split
    _, wf = _workflow(setup, **overrides)
    wf.initialize()
    assert wf.check_properties() == []
    run_items = ReferenceResolver.find_refs_in_config(wf.parser.get("run"), "run")
    used = [ref for ref in run_items if not ref.startswith("run" + ReferenceResolver.sep)]
    assert "validate::evaluator" in used
    for ref in used:  # build everything the run expressions use, without running them
        wf.parser.get_parsed_content(ref)
    assert set(asked) == {split}
    assert len(wf.parser.get_parsed_content("validate#dataset#data")) == 1
    summaries = [h for h in wf.parser.get_parsed_content("validate#handlers") if isinstance(h, MetricsSummary)]
    assert len(summaries) == 1 and summaries[0].metrics == {"dice": "val_mean_dice", "hd95_mm": "val_hd95_mm"}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_summary_names_every_metric_column_from_channel_def(setup):
    """evaluate.json's ``channel_def`` is metadata.json's (read as ``@_meta_#...``) and names every output channel,
    so the summary has one name per metric column (channel 0 dropped where the metrics leave the background
    out, as HD95 does where Dice does); otherwise the summary would stop the evaluation at its end. The
    head-and-neck thesis organ setup, which metadata.json does not describe, names its channels from its
    organ list."""
    bundle, wf = _workflow(setup)
    parser = wf.parser
    names = channel_names(parser.get_parsed_content("channel_def"))
    if setup == "head_neck_thesis":
        assert names == head_neck.class_names("thesis")
    else:
        assert names == _metadata_names(bundle)
    assert len(names) == _pred_channels(parser), names
    include_background = parser.get_parsed_content("validate#key_metric#val_mean_dice#include_background")
    assert parser.get_parsed_content("validate#additional_metrics#val_hd95_mm#include_background") \
        == include_background
    handler = parser.get_parsed_content(
        next(f"validate#handlers#{i}" for i, h in enumerate(parser["validate"]["handlers"])
             if h["_target_"].endswith("summary.MetricsSummary")))
    assert handler.class_names == (names if include_background else names[1:])


# ---- knee bundle end to end ----------------------------------------------------------------------------------

KNEE = BundleUnderTest("knee_eas_unet", {**tiny("knee_eas_unet"), "slices_per_volume": 2, "val_interval": 1})


@pytest.mark.slow
def test_knee_train_then_evaluate_writes_summary_on_a_testing_only_datalist(knee_data, tmp_path):
    ckpt = tmp_path / "models"
    run(KNEE.workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(ckpt),
                      output_dir=str(ckpt / "tb"), max_epochs=1))
    testing = json.loads((knee_data / "datalist.json").read_text())["testing"]
    only_testing = tmp_path / "only_testing" / "datalist.json"
    only_testing.parent.mkdir()
    only_testing.write_text(json.dumps({"testing": [{k: str(knee_data / v) for k, v in t.items()} for t in testing]}))
    out = tmp_path / "eval"
    run(KNEE.workflow(["train.json", "evaluate.json"], "eval", datalist=str(only_testing), ckpt_dir=str(ckpt),
                      output_dir=str(out)))

    summary = _strict_json(out / "summary.json")
    assert set(summary) == {"mean", "per_class", "n_cases"}
    assert summary["n_cases"] == len(testing)
    assert set(summary["mean"]) == {"dice", "hd95_mm"}
    assert list(summary["per_class"]) == ["femoral_cartilage", "tibial_cartilage"]  # channel_def 1, 2
    for column, (name, entry) in enumerate(summary["per_class"].items()):
        assert set(entry) == {"dice", "hd95_mm", "n_cases", "dice_infinite", "hd95_mm_infinite"}
        dice, hd95 = ([float(r[f"class{column}"]) for r in csv.DictReader((out / name).read_text().splitlines())]
                      for name in ("val_mean_dice_raw.csv", "val_hd95_mm_raw.csv"))
        scored = [i for i, v in enumerate(dice) if not math.isnan(v)]
        assert entry["n_cases"] == len(scored) == len(testing), name  # both cartilages are in every case
        assert entry["dice"] == pytest.approx(sum(dice[i] for i in scored) / len(scored), abs=1e-6)
        finite = [hd95[i] for i in scored if math.isfinite(hd95[i])]
        assert entry["hd95_mm_infinite"] == len(scored) - len(finite)
        assert entry["hd95_mm"] == (pytest.approx(sum(finite) / len(finite), rel=1e-5) if finite else None)
    per_class = summary["per_class"].values()
    assert summary["mean"]["dice"] == pytest.approx(sum(e["dice"] for e in per_class) / 2)
