"""The head-and-neck two-stage bundle in both organ setups, with tiny networks.

* ``openkbp`` (the default): a few real OpenKBP patients converted by ``scripts.prepare_openkbp`` (partially
  contoured), stage 1, an organ net that only sees the cases contouring its organ, evaluation and inference;
* ``thesis`` (``configs/setup_thesis.json``): tiny CT rendered from the real organ masks, stage 1 and organ nets,
  resume, evaluation with and without stage 2, inference, compression and the single-stage baseline.

Each part skips when its data under ``../shared/data`` is absent. Also the MONAI checks (``check_properties``,
``verify_metadata``, ``verify_net_in_out``) and the one-organ-list rules.
"""

from __future__ import annotations

import csv
import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out

from custom_networks.bundle.weights import read_state_dict
from custom_networks.labels import head_neck
from scripts.common.registry import tiny
from tests.bundle_configs.helpers import BundleUnderTest, assert_label_map_like, compress_tiny, error_chain, run
from tests.conftest import REPO, SHARED_DATA

MASKS = SHARED_DATA / "hn_oar_masks"
OPENKBP = SHARED_DATA / "openkbp"
needs_masks = pytest.mark.skipif(not MASKS.is_dir(), reason=f"head-and-neck organ masks not found at {MASKS}")
needs_openkbp = pytest.mark.skipif(not OPENKBP.is_dir(), reason=f"OpenKBP data not found at {OPENKBP}")

THESIS_ORGANS = head_neck.organs("thesis")
OPENKBP_ORGANS = head_neck.organs("openkbp")
#: the registry's tiny widths shared by both setups, validating every epoch
TINY = {**tiny("head_neck_two_stage_unet"), "val_interval": 1}
#: with tiny crops; 6 x 6 x 7.5 mm rendered cases (about 83 x 83 x 55)
THESIS_TINY = {**tiny("head_neck_two_stage_unet", "thesis"), "val_interval": 1, "pixdim": [6.0, 6.0, 7.5]}
#: with tiny crops; OpenKBP at 7.8 x 7.8 x 5 mm (about 64^3); model selection on every 2nd training case
OPENKBP_TINY = {**tiny("head_neck_two_stage_unet", "openkbp"), "val_interval": 1, "pixdim": [7.812, 7.812, 5.0],
                "stage1_size": [32, 32, 32], "selection_every": 2}
THESIS = ["setup_thesis.json"]
CASES = ["0522c0017", "0522c0057", "0522c0161"]
#: training patients (pt_2 lacks the larynx; pt_6 the left parotid, esophagus and larynx) and one validation one
OPENKBP_PATIENTS = {"train-pats": ["pt_1", "pt_2", "pt_4", "pt_6"], "validation-pats": ["pt_201"]}


def bundle(tiny=THESIS_TINY) -> BundleUnderTest:
    return BundleUnderTest("head_neck_two_stage_unet", tiny)


def train_organ(b, organ, setup=(), **overrides):
    run(b.workflow(["train.json", *setup, "train_stage2.json"], "train", organ=organ, **overrides))


@pytest.fixture(scope="module")
def thesis(tmp_path_factory):
    """Three tiny rendered cases; stage 1 (2 epochs) and the mandible and left-eye nets (1 epoch each)."""
    if not MASKS.is_dir():
        pytest.skip(f"head-and-neck organ masks not found at {MASKS}")
    from scripts.prepare_head_neck import prepare

    data = tmp_path_factory.mktemp("hn_data")
    prepare(str(MASKS), str(data), cases=CASES, voxel_size=(6.0, 6.0, 7.5), workers=1, log=lambda *_: None)
    ckpt = tmp_path_factory.mktemp("hn_models")
    b = bundle()
    paths = dict(dataset_dir=str(data), ckpt_dir=str(ckpt), output_dir=str(ckpt / "tb"))
    run(b.workflow(["train.json", *THESIS], "train", max_epochs=2, **paths))
    for organ in ("mandible", "eye_left"):
        train_organ(b, organ, THESIS, max_epochs=1, **paths)
    return SimpleNamespace(bundle=b, data=data, ckpt=ckpt, paths=paths)


@pytest.fixture(scope="module")
def openkbp(tmp_path_factory):
    """Five real OpenKBP patients converted at full size; stage 1 (1 epoch) and the left-parotid net (1 epoch)."""
    if not OPENKBP.is_dir():
        pytest.skip(f"OpenKBP data not found at {OPENKBP}")
    from scripts.prepare_openkbp import prepare

    source = tmp_path_factory.mktemp("openkbp_source")
    for split, patients in OPENKBP_PATIENTS.items():
        for p in patients:
            shutil.copytree(OPENKBP / split / p, source / split / p)
    data = tmp_path_factory.mktemp("openkbp_data")
    prepare(str(source), str(data), workers=1, log=None)
    ckpt = tmp_path_factory.mktemp("openkbp_models")
    b = bundle(OPENKBP_TINY)
    paths = dict(dataset_dir=str(data), ckpt_dir=str(ckpt), output_dir=str(ckpt / "tb"))
    run(b.workflow(["train.json"], "train", max_epochs=1, **paths))
    train_organ(b, "parotid_left", max_epochs=1, **paths)
    return SimpleNamespace(bundle=b, data=data, ckpt=ckpt, paths=paths)


def _testing(data, key="image", split="testing"):
    return data / json.loads((data / "datalist.json").read_text())[split][0][key]


# --- the default setup on real OpenKBP patients --------------------------------------------------------------


@needs_openkbp
@pytest.mark.slow
def test_openkbp_stage1_and_an_organ_net_make_one_pipeline_of_the_seven_organs(openkbp):
    state = read_state_dict(openkbp.ckpt / "model.pt")
    net = openkbp.bundle.workflow(["inference.json"], "infer").parser.get_parsed_content("network_def")
    assert set(state) == set(net.state_dict())
    assert {k.split(".")[1] for k in state if k.startswith("stage2.")} == set(OPENKBP_ORGANS)
    assert (openkbp.ckpt / "checkpoint_parotid_left.pt").is_file()


@needs_openkbp
@pytest.mark.slow
def test_openkbp_model_selection_uses_training_cases_and_each_organ_net_only_cases_contouring_it(openkbp):
    parser = openkbp.bundle.workflow(["train.json", "train_stage2.json"], "train", organ="parotid_left",
                                     **openkbp.paths).parser
    names = lambda key: [p["image"].rsplit("/", 1)[-1] for p in parser.get_parsed_content(key)]  # noqa: E731
    assert names("selection_cases") == ["pt_1.nii.gz", "pt_4.nii.gz"]  # every 2nd training patient
    assert names("fitting_cases") == ["pt_2.nii.gz", "pt_6.nii.gz"]  # the validation list stays unseen
    # pt_6 has no left parotid contour: it trains the left-parotid net only mirrored (its right parotid made
    # left), pt_2 both as it is and mirrored
    assert [(p["image"].rsplit("/", 1)[-1], p["mirror"]) for p in parser.get_parsed_content("train#dataset#data")] == [
        ("pt_2.nii.gz", False), ("pt_2.nii.gz", True), ("pt_6.nii.gz", True)]
    parser["mirror_left_right"] = "false"  # as the command line passes it
    assert names("train#dataset#data") == ["pt_2.nii.gz"]
    parser["organ"] = "larynx"
    with pytest.raises(Exception) as e:
        parser.get_parsed_content("train#dataset#data", lazy=False)
    assert "none of the 2 cases contours larynx" in error_chain(e.value)


@needs_openkbp
@pytest.mark.slow
def test_openkbp_evaluation_scores_each_organ_only_where_contoured(openkbp, tmp_path):
    run(openkbp.bundle.workflow(["train.json", "evaluate.json"], "eval", eval_split="training",
                                **{**openkbp.paths, "output_dir": str(tmp_path)}))
    rows = list(csv.DictReader((tmp_path / "val_mean_dice_raw.csv").read_text().splitlines()))
    assert len(rows) == 4
    by_case = {r["filename"].rsplit("/", 1)[-1]: r for r in rows}
    larynx = f"class{OPENKBP_ORGANS.index('larynx')}"
    assert by_case["pt_2.nii.gz"][larynx] == "nan" and by_case["pt_4.nii.gz"][larynx] != "nan"
    summary = json.loads((tmp_path / "summary.json").read_text())
    contoured = {o: sum(o in e["contoured"] for e in json.loads((openkbp.data / "datalist.json").read_text())["training"])
                 for o in OPENKBP_ORGANS}
    assert {o: summary["per_class"][o]["n_cases"] for o in OPENKBP_ORGANS} == contoured
    assert contoured["larynx"] == 1 and contoured["brainstem"] == 4


@needs_openkbp
@pytest.mark.slow
def test_openkbp_inference_segments_a_converted_ct(openkbp, tmp_path):
    image = _testing(openkbp.data, split="validation")
    run(openkbp.bundle.workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(openkbp.ckpt),
                                output_dir=str(tmp_path)))
    assert_label_map_like(tmp_path, image, set(range(len(OPENKBP_ORGANS) + 1)))


@needs_openkbp
@pytest.mark.slow
def test_stage1_keeps_the_organ_nets_of_the_pipeline_it_retrains(openkbp, tmp_path):
    """MONAI Label's /train runs train.json (stage 1) on the served model.pt: the organ nets must survive."""
    ckpt = tmp_path / "models"
    ckpt.mkdir()
    served = {k: v + 1.0 if k.startswith("stage2.") and v.is_floating_point() else torch.zeros_like(v)
              for k, v in read_state_dict(openkbp.ckpt / "model.pt").items()}  # organ nets marked, stage 1 zeroed
    torch.save(served, ckpt / "model.pt")
    run(openkbp.bundle.workflow(["train.json"], "train", max_epochs=1, **{**openkbp.paths, "ckpt_dir": str(ckpt)}))
    after = read_state_dict(ckpt / "model.pt")
    organ_nets = [k for k in served if k.startswith("stage2.")]
    stage1_convs = [k for k in served if k.startswith("stage1.") and k.endswith("conv.weight")]
    assert organ_nets and stage1_convs, sorted(served)[:10]
    assert all(torch.equal(served[k], after[k]) for k in organ_nets)
    assert all(after[k].abs().sum() > 0 for k in stage1_convs)


# --- the thesis's eight organs on rendered cases -------------------------------------------------------------


@needs_masks
@pytest.mark.slow
def test_thesis_setup_trains_both_stages_into_one_loadable_checkpoint(thesis):
    state = read_state_dict(thesis.ckpt / "model.pt")
    net = thesis.bundle.workflow(["inference.json", *THESIS], "infer").parser.get_parsed_content("network_def")
    assert set(state) == set(net.state_dict())
    assert {k.split(".")[1] for k in state if k.startswith("stage2.")} == set(THESIS_ORGANS)
    net.load_state_dict(state)


@needs_masks
@pytest.mark.slow
def test_rerun_resumes_each_stage_and_retrains_nothing_finished(thesis, tmp_path):
    """Stage 1 and every organ net keep their own resume checkpoint; rerunning a finished step only finds it done
    (issue 10), and a larger budget trains an organ net on from its last epoch."""
    ckpt = tmp_path / "models"
    shutil.copytree(thesis.ckpt, ckpt)
    assert {p.name for p in ckpt.glob("checkpoint*.pt")} == {"checkpoint.pt", "checkpoint_mandible.pt",
                                                              "checkpoint_eye_left.pt"}
    before = (ckpt / "model.pt").read_bytes()
    paths = {**thesis.paths, "ckpt_dir": str(ckpt)}
    run(thesis.bundle.workflow(["train.json", *THESIS], "train", max_epochs=2, **paths))
    train_organ(thesis.bundle, "mandible", THESIS, max_epochs=1, **paths)
    assert (ckpt / "model.pt").read_bytes() == before
    train_organ(thesis.bundle, "mandible", THESIS, max_epochs=2, **paths)
    counters = torch.load(ckpt / "checkpoint_mandible.pt", weights_only=True)["trainer"]
    assert counters["iteration"] == 2 * counters["epoch_length"]
    counters = torch.load(ckpt / "checkpoint.pt", weights_only=True)["trainer"]
    assert counters["iteration"] == 2 * counters["epoch_length"]  # stage 1 untouched


@needs_masks
@pytest.mark.slow
def test_stage2_run_trains_only_its_organ_net(thesis, tmp_path):
    ckpt = tmp_path / "models"
    ckpt.mkdir()
    shutil.copy(thesis.ckpt / "model.pt", ckpt / "model.pt")
    before = read_state_dict(ckpt / "model.pt")
    train_organ(thesis.bundle, "parotid_left", THESIS, max_epochs=1, **{**thesis.paths, "ckpt_dir": str(ckpt)})
    after = read_state_dict(ckpt / "model.pt")
    changed = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("stage2") else "")
               for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"stage2.parotid_left"}


@needs_masks
@pytest.mark.slow
def test_stage2_without_a_stage1_checkpoint_says_what_to_do(thesis, tmp_path):
    wf = thesis.bundle.workflow(["train.json", *THESIS, "train_stage2.json"], "train", organ="eye_left",
                                **{**thesis.paths, "ckpt_dir": str(tmp_path)})
    with pytest.raises(Exception) as e:
        wf.initialize()
    assert "No trained weights" in error_chain(e.value) and str(tmp_path / "model.pt") in error_chain(e.value)


@needs_masks
@pytest.mark.parametrize("use_stage2", [True, False])
@pytest.mark.slow
def test_thesis_evaluate_reports_dice_and_hd95_per_organ(thesis, tmp_path, use_stage2):
    run(thesis.bundle.workflow(["train.json", *THESIS, "evaluate.json"], "eval", use_stage2=use_stage2,
                               **{**thesis.paths, "output_dir": str(tmp_path)}))
    summary = dict(csv.reader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert set(summary) == {"val_mean_dice", "val_hd95_mm"}
    rows = list(csv.DictReader((tmp_path / "val_mean_dice_raw.csv").read_text().splitlines()))
    assert len(rows) == 1 and set(rows[0]) == {"filename"} | {f"class{i}" for i in range(8)} | {"mean"}
    assert all(0.0 <= float(rows[0][f"class{i}"]) <= 1.0 for i in range(8))


@needs_masks
@pytest.mark.slow
def test_thesis_inference_writes_a_label_map_in_the_input_geometry(thesis, tmp_path):
    image = _testing(thesis.data)
    run(thesis.bundle.workflow(["inference.json", *THESIS], "infer", datalist=[str(image)],
                               ckpt_dir=str(thesis.ckpt), output_dir=str(tmp_path)))
    assert_label_map_like(tmp_path, image, set(range(9)))


@needs_masks
@pytest.mark.slow
def test_compressed_stage_1_runs_through_the_unchanged_evaluate_and_inference_configs(thesis, tmp_path):
    """scripts.compress shrinks only stage 1 (the thesis's chapter 4); the stage-2 nets are kept bit for bit."""
    out = tmp_path / "compressed"
    report = compress_tiny(thesis.bundle, thesis.ckpt, thesis.data, out, organ_setup="thesis", selection_every=0)
    assert report["target"] == "stage1"
    original, compressed = read_state_dict(thesis.ckpt / "model.pt"), read_state_dict(out / "model.pt")
    organ_nets = [k for k in original if k.startswith("stage2.")]
    assert organ_nets and all(torch.equal(original[k], compressed[k]) for k in organ_nets)
    assert compressed["stage1.head.weight_codes"].shape[0] == 9  # the output layer keeps its 9 classes
    run(thesis.bundle.workflow(["train.json", *THESIS, "evaluate.json"], "eval",
                               **{**thesis.paths, "ckpt_dir": str(out), "output_dir": str(tmp_path / "eval")}))
    assert (tmp_path / "eval" / "val_mean_dice_raw.csv").is_file()
    image = _testing(thesis.data)
    run(thesis.bundle.workflow(["inference.json", *THESIS], "infer", datalist=[str(image)], ckpt_dir=str(out),
                               output_dir=str(tmp_path / "out")))
    assert_label_map_like(tmp_path / "out", image, set(range(9)))


def test_compressing_an_untrained_bundle_says_to_train_first(tmp_path):
    from scripts.compress import compress

    with pytest.raises(FileNotFoundError, match="No trained weights at .*Train the bundle first"):
        compress("head_neck_two_stage_unet", out=str(tmp_path / "out"), ckpt=str(tmp_path / "missing.pt"), **TINY)
    assert not (tmp_path / "out").exists()


@needs_masks
@pytest.mark.slow
def test_single_stage_baseline_trains_and_evaluates(thesis, tmp_path):
    overrides = dict(dataset_dir=str(thesis.data), ckpt_dir=str(tmp_path / "models"), patch_size=[16, 16, 16])
    base = ["train.json", *THESIS, "train_baseline.json"]
    run(thesis.bundle.workflow(base, "train", output_dir=str(tmp_path / "tb"), max_epochs=1, **overrides))
    state = read_state_dict(tmp_path / "models" / "model.pt")
    assert any(k.startswith("head.") for k in state) and not any(k.startswith("stage") for k in state)
    run(thesis.bundle.workflow([*base, "evaluate.json"], "eval", output_dir=str(tmp_path / "eval"), **overrides))
    assert (tmp_path / "eval" / "val_mean_dice_raw.csv").is_file()
    image = _testing(thesis.data)
    run(thesis.bundle.workflow(["inference.json", *THESIS, "inference_baseline.json"], "infer", datalist=[str(image)],
                               output_dir=str(tmp_path / "infer"), **overrides))
    assert_label_map_like(tmp_path / "infer", image, set(range(9)))


@needs_masks
@pytest.mark.slow
def test_check_properties_all_configs(thesis):
    for files, kind in [(["train.json"], "train"), (["train.json", "train_stage2.json"], "train"),
                        (["train.json", "train_baseline.json"], "train"), (["train.json", "evaluate.json"], "eval"),
                        (["inference.json"], "infer"), (["inference.json", "inference_baseline.json"], "infer")]:
        files = [files[0], *THESIS, *files[1:]]
        wf = thesis.bundle.workflow(files, kind, dataset_dir=str(thesis.data), ckpt_dir=str(thesis.ckpt))
        wf.initialize()
        assert wf.check_properties() == [], files


# --- one organ list per setup, shared by every config ---------------------------------------------------------


@pytest.mark.parametrize("setup", [[], THESIS])
def test_train_and_inference_share_preprocessing_network_and_organs(setup):
    b = bundle({})
    train = b.workflow(["train.json", *setup], "train").parser
    infer = b.workflow(["inference.json", *setup], "infer").parser
    strip = lambda t: {k: v for k, v in t.items() if k not in ("keys", "num_classes", "require_foreground", "mode")}  # noqa: E731
    skip = ("custom_networks.transforms.dicom_series.CheckDicomSeriesd", "EnsureTyped",
            "custom_networks.transforms.partial_labels.ContouredOrgansd")
    steps = [strip(t) for t in infer["preprocessing"]["transforms"] if t["_target_"] not in skip]
    assert [strip(t) for t in train["load_transforms"] if t["_target_"] not in skip] == steps
    assert train["network_def"] == infer["network_def"]
    keys = ("organ_setup", "patch_size", "pixdim", "window_min", "window_max", "intensity_mean", "intensity_std", "features", "norm",
            "dropout", "stage1_size", "crop_sizes", "min_margin", "box_fraction")
    assert {k: train[k] for k in keys} == {k: infer[k] for k in keys}
    organs = train.get_parsed_content("organs")
    assert organs == infer.get_parsed_content("organs") == head_neck.organs(train["organ_setup"])
    assert list(train["crop_sizes"]) == organs


def test_metadata_channel_def_is_the_default_organ_setup():
    configs = bundle().configs
    verify_metadata(meta_file=str(configs / "metadata.json"), filepath=str(REPO / "bundles" / "meta_schema.json"))
    pred = json.loads((configs / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"]
    names = head_neck.class_names(ConfigParser.load_config_file(str(configs / "train.json"))["organ_setup"])
    assert pred["num_channels"] == len(names)
    assert pred["channel_def"] == {str(i): n for i, n in enumerate(names)}


def test_dicom_seg_segments_are_named_from_the_organ_list():
    parser = bundle({}).workflow(["inference.json", *THESIS], "infer").parser
    steps = [t["_target_"] for t in parser["postprocessing"]["transforms"]]
    i = next(i for i, t in enumerate(steps) if t.endswith("SaveDicomSegd"))
    assert parser.get_parsed_content(f"postprocessing#transforms#{i}#class_names") == dict(enumerate(THESIS_ORGANS, 1))


def test_verify_net_in_out():
    configs = bundle().configs
    verify_net_in_out(net_id="network_def", meta_file=str(configs / "metadata.json"),
                      config_file=str(configs / "inference.json"), **OPENKBP_TINY)


@pytest.mark.parametrize("flag, cleaned", [("false", False), ("true", True), (False, False), (True, True)])
def test_largest_component_flag_switches_the_clean_up_also_as_command_line_text(flag, cleaned):
    from scripts.common.bundles import Bundle

    b = Bundle("head_neck_two_stage_unet")
    infer = b.parser(["inference.json"], largest_component=flag).get_parsed_content("postprocessing")
    evaluate = b.parser(["train.json", "evaluate.json"], largest_component=flag).get_parsed_content(
        "validate#postprocessing")
    for compose in (infer, evaluate):
        names = [type(t).__name__ for t in compose.transforms]
        assert ("KeepLargestConnectedComponentd" in names) == cleaned, names
