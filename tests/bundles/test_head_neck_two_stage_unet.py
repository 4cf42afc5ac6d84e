"""The head-and-neck two-stage bundle on tiny CT rendered from the real organ masks (skipped without them).

Stage 1, the eight stage-2 nets, evaluation with and without stage 2, inference geometry, the single-stage
baseline, and the MONAI checks (``check_properties``, ``verify_metadata``, ``verify_net_in_out``).
"""

from __future__ import annotations

import csv
import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from monai.bundle import verify_metadata, verify_net_in_out

from custom_networks.support import head_neck
from tests.bundles.helpers import BundleUnderTest, assert_label_map_like, compress_tiny, error_chain, run
from tests.conftest import REPO, SHARED_DATA

MASKS = SHARED_DATA / "hn_oar_masks"
pytestmark = pytest.mark.skipif(not MASKS.is_dir(), reason=f"head-and-neck organ masks not found at {MASKS}")

ORGANS = list(head_neck.ORGANS)
#: 6 x 6 x 7.5 mm rendered cases (about 83 x 83 x 55) and matching tiny networks
TINY = {
    "features": [4, 8, 16, 32],
    "stage1_size": [32, 32, 16],
    "crop_sizes": {o: [16, 16, 16] for o in ORGANS},
    "pixdim": [6.0, 6.0, 7.5],
    "min_margin": [2, 2, 1],
    "val_interval": 1,
}
CASES = ["0522c0017", "0522c0057", "0522c0161"]


def bundle() -> BundleUnderTest:
    return BundleUnderTest("head_neck_two_stage_unet", TINY)


def ckpt_state(path) -> dict:
    state = torch.load(path, weights_only=True)
    return state.get("model", state)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Three tiny rendered cases (1 training, 1 validation, 1 testing) and the whole train.json run on them."""
    from scripts.prepare_head_neck import prepare

    data = tmp_path_factory.mktemp("hn_data")
    prepare(str(MASKS), str(data), cases=CASES, voxel_size=(6.0, 6.0, 7.5), workers=1, log=lambda *_: None)
    ckpt = tmp_path_factory.mktemp("hn_models")
    b = bundle()
    run(b.workflow(["train.json"], "train", dataset_dir=str(data), ckpt_dir=str(ckpt), output_dir=str(ckpt / "tb"),
                   max_epochs=2, **{"stage2#max_epochs": 1}))
    return SimpleNamespace(bundle=b, data=data, ckpt=ckpt)


def _testing(data, key="image"):
    return data / json.loads((data / "datalist.json").read_text())["testing"][0][key]


def test_train_json_trains_both_stages_into_one_loadable_checkpoint(case):
    state = ckpt_state(case.ckpt / "model.pt")
    net = case.bundle.workflow(["inference.json"], "infer").parser.get_parsed_content("network_def")
    assert set(state) == set(net.state_dict())
    assert {k.split(".")[1] for k in state if k.startswith("stage2.")} == set(ORGANS)
    net.load_state_dict(state)


def test_rerun_resumes_each_stage_and_retrains_nothing_finished(case, tmp_path):
    """Stage 1 and every organ net keep their own resume checkpoint; rerunning a finished train.json only
    finds them done (issue 10), and a larger stage-2 budget trains the organ nets on from their last epoch."""
    ckpt = tmp_path / "models"
    shutil.copytree(case.ckpt, ckpt)
    assert {p.name for p in ckpt.glob("checkpoint*.pt")} == {"checkpoint.pt", *(f"checkpoint_{o}.pt" for o in ORGANS)}
    before = (ckpt / "model.pt").read_bytes()
    overrides = dict(dataset_dir=str(case.data), ckpt_dir=str(ckpt), output_dir=str(ckpt / "tb"), max_epochs=2)
    run(case.bundle.workflow(["train.json"], "train", **overrides, **{"stage2#max_epochs": 1}))
    assert (ckpt / "model.pt").read_bytes() == before
    run(case.bundle.workflow(["train.json"], "train", **overrides, **{"stage2#max_epochs": 2}))
    for organ in ORGANS:
        counters = torch.load(ckpt / f"checkpoint_{organ}.pt", weights_only=True)["trainer"]
        assert counters["iteration"] == 2 * counters["epoch_length"], organ
    counters = torch.load(ckpt / "checkpoint.pt", weights_only=True)["trainer"]
    assert counters["iteration"] == 2 * counters["epoch_length"]  # stage 1 untouched


def test_stage2_run_trains_only_its_organ_net(case, tmp_path):
    ckpt = tmp_path / "models"
    ckpt.mkdir()
    (ckpt / "model.pt").write_bytes((case.ckpt / "model.pt").read_bytes())
    before = ckpt_state(ckpt / "model.pt")
    run(case.bundle.workflow(["train.json", "train_stage2.json"], "train", dataset_dir=str(case.data),
                             ckpt_dir=str(ckpt), output_dir=str(tmp_path / "tb"), organ="mandible", max_epochs=2))
    after = ckpt_state(ckpt / "model.pt")
    changed = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("stage2") else "")
               for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"stage2.mandible"}


def test_stage2_without_a_stage1_checkpoint_says_what_to_do(case, tmp_path):
    wf = case.bundle.workflow(["train.json", "train_stage2.json"], "train", dataset_dir=str(case.data),
                              ckpt_dir=str(tmp_path), organ="eye_left")
    with pytest.raises(Exception) as e:
        wf.initialize()
    assert "No trained weights" in error_chain(e.value) and str(tmp_path / "model.pt") in error_chain(e.value)


@pytest.mark.parametrize("use_stage2", [True, False])
def test_evaluate_reports_dice_and_hd95_per_organ(case, tmp_path, use_stage2):
    run(case.bundle.workflow(["train.json", "evaluate.json"], "eval", dataset_dir=str(case.data),
                             ckpt_dir=str(case.ckpt), output_dir=str(tmp_path), use_stage2=use_stage2))
    summary = dict(csv.reader(open(tmp_path / "metrics.csv")))
    assert set(summary) == {"val_mean_dice", "val_hd95_mm"}
    rows = list(csv.DictReader(open(tmp_path / "val_mean_dice_raw.csv")))
    assert len(rows) == 1 and set(rows[0]) == {"filename"} | {f"class{i}" for i in range(8)} | {"mean"}
    assert all(0.0 <= float(rows[0][f"class{i}"]) <= 1.0 for i in range(8))


def test_inference_writes_a_label_map_in_the_input_geometry(case, tmp_path):
    image = _testing(case.data)
    run(case.bundle.workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(case.ckpt),
                             output_dir=str(tmp_path)))
    assert_label_map_like(tmp_path, image, set(range(9)))


def test_compressed_stage_1_runs_through_the_unchanged_evaluate_and_inference_configs(case, tmp_path):
    """scripts.compress shrinks only stage 1 (the thesis's chapter 4); the stage-2 nets are kept bit for bit."""
    out = tmp_path / "compressed"
    report = compress_tiny(case.bundle, case.ckpt, case.data, out)
    assert report["target"] == "stage1"
    original, compressed = ckpt_state(case.ckpt / "model.pt"), ckpt_state(out / "model.pt")
    assert all(torch.equal(v, compressed[k]) for k, v in original.items() if k.startswith("stage2."))
    assert compressed["stage1.head.weight_codes"].shape[0] == 9  # the output layer keeps its 9 classes
    run(case.bundle.workflow(["train.json", "evaluate.json"], "eval", dataset_dir=str(case.data), ckpt_dir=str(out),
                             output_dir=str(tmp_path / "eval")))
    assert (tmp_path / "eval" / "val_mean_dice_raw.csv").is_file()
    image = _testing(case.data)
    run(case.bundle.workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(out),
                             output_dir=str(tmp_path / "out")))
    assert_label_map_like(tmp_path / "out", image, set(range(9)))


def test_compressing_an_untrained_bundle_says_to_train_first(tmp_path):
    from scripts.compress import compress

    with pytest.raises(FileNotFoundError, match="no trained weights at .*train the bundle first"):
        compress("head_neck_two_stage_unet", out=str(tmp_path / "out"), ckpt=str(tmp_path / "missing.pt"), **TINY)
    assert not (tmp_path / "out").exists()


def test_single_stage_baseline_trains_and_evaluates(case, tmp_path):
    overrides = dict(dataset_dir=str(case.data), ckpt_dir=str(tmp_path / "models"), patch_size=[16, 16, 16])
    run(case.bundle.workflow(["train.json", "train_baseline.json"], "train", output_dir=str(tmp_path / "tb"),
                             max_epochs=1, **overrides))
    state = ckpt_state(tmp_path / "models" / "model.pt")
    assert any(k.startswith("head.") for k in state) and not any(k.startswith("stage") for k in state)
    run(case.bundle.workflow(["train.json", "train_baseline.json", "evaluate.json"], "eval",
                             output_dir=str(tmp_path / "eval"), **overrides))
    assert (tmp_path / "eval" / "val_mean_dice_raw.csv").is_file()
    image = _testing(case.data)
    run(case.bundle.workflow(["inference.json", "inference_baseline.json"], "infer", datalist=[str(image)],
                             output_dir=str(tmp_path / "infer"), **overrides))
    assert_label_map_like(tmp_path / "infer", image, set(range(9)))


def test_check_properties_all_configs(case):
    for files, kind in [(["train.json"], "train"), (["train.json", "train_stage2.json"], "train"),
                        (["train.json", "train_baseline.json"], "train"), (["train.json", "evaluate.json"], "eval"),
                        (["inference.json"], "infer"), (["inference.json", "inference_baseline.json"], "infer")]:
        wf = case.bundle.workflow(files, kind, dataset_dir=str(case.data), ckpt_dir=str(case.ckpt))
        wf.initialize()
        assert wf.check_properties() == [], files


def test_preprocessing_is_shared_between_train_and_inference():
    b = bundle()
    train = b.workflow(["train.json"], "train").parser
    infer = b.workflow(["inference.json"], "infer").parser
    strip = lambda t: {k: v for k, v in t.items() if k not in ("keys", "num_classes", "require_foreground", "mode")}  # noqa: E731
    steps = [strip(t) for t in infer["preprocessing"]["transforms"] if t["_target_"] not in (
        "custom_networks.support.dicom.CheckDicomSeriesd", "EnsureTyped")]
    assert [strip(t) for t in train["load_transforms"]] == steps
    assert train["network_def"] == infer["network_def"]
    assert train["organs"] == ORGANS  # the label ids prepare_head_neck writes
    keys = ("organs", "pixdim", "window_min", "window_max", "intensity_mean", "intensity_std", "features", "norm",
            "dropout", "stage1_size", "crop_sizes", "min_margin", "box_fraction")
    assert {k: train[k] for k in keys} == {k: infer[k] for k in keys}


def test_metadata_verifies_offline_and_names_every_class():
    configs = bundle().configs
    verify_metadata(meta_file=str(configs / "metadata.json"), filepath=str(REPO / "bundles" / "meta_schema.json"))
    pred = json.loads((configs / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"]
    assert pred["num_channels"] == 9 and len(pred["channel_def"]) == 9


def test_verify_net_in_out():
    configs = bundle().configs
    verify_net_in_out(net_id="network_def", meta_file=str(configs / "metadata.json"),
                      config_file=str(configs / "inference.json"), **TINY)
