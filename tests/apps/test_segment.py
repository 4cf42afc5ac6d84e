"""``medseg-segment`` (``custom_networks.apps``) end to end, through its command line in a subprocess, on the real
OpenKBP validation CTs shipped in ``bundles/head_neck_two_stage_unet/sample`` (no ``../shared`` needed): one
file, a folder, a DICOM tree written from the samples (CT beside an RT Dose and an RT Plan, a second CT series),
reruns that skip finished work or add only the RTSTRUCT, a corrupt file among good ones, a bundle without
weights, and the README's first command exactly as README.md writes it.

Most runs use ``--runtime torch --threads 2`` (no ONNX export); the README's command runs the default runtime.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.apps.dicom_tree import write_ct_series, write_rt_objects
from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow

SAMPLE = REPO / "bundles" / "head_neck_two_stage_unet" / "sample"
ORGANS = ["brainstem", "spinal_cord", "parotid_right", "parotid_left", "mandible", "esophagus", "larynx"]
FAST = ["--runtime", "torch", "--threads", "2"]
CASE_FILES = ("segmentation.nii.gz", "statistics.json", "preview.png", "manifest.json")


def segment(*args, cwd: Path | None = None, env: dict | None = None, command=None) -> subprocess.CompletedProcess:
    """Run ``medseg-segment`` (``python -m custom_networks.apps.segment``) with ``args``; output captured."""
    command = command or [sys.executable, "-m", "custom_networks.apps.segment"]
    return subprocess.run([*command, *map(str, args)], cwd=cwd or REPO, env={**subprocess_env(), **(env or {})},
                          capture_output=True, text=True, timeout=900)


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.as_closest_canonical(nib.load(str(path)))
    return np.asarray(image.dataobj), image.affine


# ------------------------------------------------------------------------------------------ one file, rerun
@pytest.fixture(scope="module")
def file_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("one_file") / "contours"
    proc = segment(SAMPLE / "images" / "pt_201.nii.gz", "-o", out, "--reference", SAMPLE / "labels", *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


def test_a_sample_file_gives_its_label_map_statistics_and_preview(file_run):
    out, proc = file_run
    case = out / "pt_201"
    assert sorted(p.name for p in case.iterdir()) == sorted(CASE_FILES)
    assert not (out / ".medseg_work").exists()
    source = nib.load(str(SAMPLE / "images" / "pt_201.nii.gz"))
    label = nib.load(str(case / "segmentation.nii.gz"))
    assert label.shape == source.shape and label.get_data_dtype() == np.uint8
    np.testing.assert_allclose(label.affine, source.affine, atol=1e-4)  # the input's geometry
    stats = json.loads((case / "statistics.json").read_text())
    assert list(stats["organs"]) == ORGANS
    voxel_ml = float(np.prod(source.header.get_zooms())) / 1000.0
    values = np.asarray(label.dataobj)
    for i, organ in enumerate(ORGANS, start=1):
        entry = stats["organs"][organ]
        assert entry["voxels"] == int((values == i).sum()) and entry["found"] == (entry["voxels"] > 0)
        assert entry["volume_ml"] == pytest.approx(entry["voxels"] * voxel_ml, abs=1e-3)
        assert entry["scored"] and 0.2 < entry["dice"] <= 1.0, (organ, entry)  # all 7 contoured for pt_201
    assert stats["mean_dice"] == pytest.approx(np.mean([stats["organs"][o]["dice"] for o in ORGANS]), abs=1e-3)
    assert stats["reference"].endswith("labels/pt_201.nii.gz")
    # the console: per organ its Dice and volume, then where each output is
    for organ in ORGANS:
        line = next(li for li in proc.stdout.splitlines() if li.split()[:1] == [organ])
        dice, volume = line.split()[1:3]
        assert float(dice) == pytest.approx(stats["organs"][organ]["dice"], abs=1e-3)
        assert float(volume) == pytest.approx(stats["organs"][organ]["volume_ml"], abs=0.06)
    for name in ("segmentation.nii.gz", "statistics.json", "preview.png"):
        assert str(case / name) in proc.stdout
    assert "1 case" in proc.stdout and "1 done" in proc.stdout
    assert "segmenting" in proc.stderr and "1/1" in proc.stderr  # the progress bar
    from PIL import Image

    with Image.open(case / "preview.png") as preview:
        assert preview.format == "PNG" and preview.width > 300 and len(preview.getcolors(1 << 16)) > 20


def test_a_rerun_skips_the_finished_case_without_recomputing(file_run):
    out, _ = file_run
    before = mtimes(out / "pt_201")
    proc = segment(SAMPLE / "images" / "pt_201.nii.gz", "-o", out, "--reference", SAMPLE / "labels", *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mtimes(out / "pt_201") == before  # nothing rewritten, not even the manifest
    assert "finished earlier" in proc.stdout and "0 done, 1 finished earlier" in proc.stdout
    assert "brainstem" in proc.stdout  # the stored statistics are reported again


# ------------------------------------------------------------------------------------------ a folder
def test_a_folder_of_both_samples_is_two_cases(tmp_path):
    proc = segment(SAMPLE / "images", "-o", tmp_path / "out", "--reference", SAMPLE / "labels", *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pt_201", "pt_222"]
    for case in ("pt_201", "pt_222"):
        stats = json.loads((tmp_path / "out" / case / "statistics.json").read_text())
        assert all(o["dice"] is not None for o in stats["organs"].values())
    assert "2 cases" in proc.stdout and "2 done" in proc.stdout and "2/2" in proc.stderr


def test_organs_a_datalist_marks_as_not_contoured_are_not_scored(tmp_path):
    """A reference whose datalist entry lists only some organs: the others get no Dice (not "0")."""
    labels = tmp_path / "ref" / "labels"
    labels.mkdir(parents=True)
    shutil.copy(SAMPLE / "labels" / "pt_201.nii.gz", labels)
    (tmp_path / "ref" / "datalist.json").write_text(json.dumps(
        {"validation": [{"image": "images/pt_201.nii.gz", "label": "labels/pt_201.nii.gz",
                         "contoured": ["brainstem", "mandible"]}]}))
    from custom_networks.apps.organ_stats import case_statistics, contoured_organs

    assert contoured_organs(labels / "pt_201.nii.gz") == ["brainstem", "mandible"]
    assert contoured_organs(SAMPLE / "labels" / "pt_201.nii.gz") == ORGANS
    stats = case_statistics(SAMPLE / "labels" / "pt_201.nii.gz", dict(enumerate(ORGANS, start=1)),
                            labels / "pt_201.nii.gz")
    scored = {o: e["dice"] for o, e in stats["organs"].items() if e["scored"]}
    assert scored == {"brainstem": 1.0, "mandible": 1.0}
    assert all(e["dice"] is None for o, e in stats["organs"].items() if o not in scored)


# ------------------------------------------------------------------------------------------ DICOM tree
@pytest.fixture(scope="module")
def dicom_tree(tmp_path_factory):
    """``plan/``: pt_201 as a CT series beside an RT Dose and an RT Plan (a planning-system export);
    ``other/ct/``: pt_222 as a second CT series."""
    root = tmp_path_factory.mktemp("dicom") / "export"
    uid_plan = write_ct_series(SAMPLE / "images" / "pt_201.nii.gz", root / "plan", "CT Head&Neck 3mm")
    write_rt_objects(root / "plan")
    uid_other = write_ct_series(SAMPLE / "images" / "pt_222.nii.gz", root / "other" / "ct", "CT rescan")
    return root, uid_plan, uid_other


@pytest.fixture(scope="module")
def dicom_run(dicom_tree, tmp_path_factory):
    root, uid_plan, uid_other = dicom_tree
    out = tmp_path_factory.mktemp("dicom_out") / "out"
    proc = segment(root, "-o", out, "--dicom_seg", *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc, {f"CT_Head_Neck_3mm_{uid_plan}": "pt_201", f"CT_rescan_{uid_other}": "pt_222"}


def test_every_ct_series_of_a_dicom_tree_is_a_case(dicom_run, file_run):
    out, proc, cases = dicom_run
    assert sorted(p.name for p in out.iterdir()) == sorted(cases)
    for name in cases:
        assert sorted(p.name for p in (out / name).iterdir()) == sorted((*CASE_FILES, "segmentation.dcm"))
    assert "RT Dose Storage" in proc.stderr and "RT Plan Storage" in proc.stderr  # skipped, said once
    # the series read from DICOM gives the NIfTI run's label map, voxel for voxel, on the same world grid
    dicom_label, dicom_affine = canonical(out / f"{next(iter(cases))}" / "segmentation.nii.gz")
    nifti_label, nifti_affine = canonical(file_run[0] / "pt_201" / "segmentation.nii.gz")
    np.testing.assert_allclose(dicom_affine, nifti_affine, atol=1e-3)
    np.testing.assert_array_equal(dicom_label, nifti_label)
    import highdicom as hd

    seg = hd.seg.segread(str(out / next(iter(cases)) / "segmentation.dcm"))
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ORGANS


def test_series_uid_picks_one_series(dicom_run, dicom_tree, tmp_path):
    """Into the finished output folder (nothing to recompute): only the chosen series is a case of the run."""
    out, _, cases = dicom_run
    root, _, uid_other = dicom_tree
    chosen = f"CT_rescan_{uid_other}"
    proc = segment(root, "-o", out, "--series_uid", uid_other, *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 case in" in proc.stdout and "0 done, 1 finished earlier" in proc.stdout
    reported = [li for li in proc.stdout.splitlines() if li.startswith("CT_")]
    assert [li.split()[0] for li in reported] == [chosen]
    proc = segment(root, "-o", tmp_path / "none", "--series_uid", "1.2.3.4", *FAST)
    assert proc.returncode == 2 and "no CT series with that SeriesInstanceUID" in proc.stderr
    assert uid_other in proc.stderr and not (tmp_path / "none").exists()  # the series found are listed


def test_a_rerun_adding_rtstruct_writes_only_the_rtstruct(dicom_run, dicom_tree):
    pytest.importorskip("rt_utils", reason="the rtstruct extra (pip install -e '.[rtstruct]') is not installed")
    out, _, cases = dicom_run
    root = dicom_tree[0]
    before = {name: mtimes(out / name) for name in cases}
    proc = segment(root, "-o", out, "--dicom_seg", "--rtstruct", *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote rtstruct" in proc.stdout
    for name in cases:
        after = mtimes(out / name)
        assert set(after) - set(before[name]) == {"rtstruct.dcm"}
        changed = {f for f in before[name] if after[f] != before[name][f]}
        assert changed == {"manifest.json"}, changed  # the label map, statistics, preview and SEG are untouched
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert set(manifest["outputs"]) == {"segmentation", "statistics", "preview", "dicom_seg", "rtstruct"}
    import pydicom

    rt = pydicom.dcmread(out / next(iter(cases)) / "rtstruct.dcm")
    assert rt.Modality == "RTSTRUCT"
    assert [r.ROIName for r in rt.StructureSetROISequence] == [
        "Brainstem", "SpinalCord", "Parotid_R", "Parotid_L", "Bone_Mandible", "Esophagus", "Larynx"]
    # and a third run has nothing left to do
    again = segment(root, "-o", out, "--dicom_seg", "--rtstruct", *FAST)
    assert again.returncode == 0 and "0 done, 2 finished earlier" in again.stdout


def test_a_nifti_input_with_rtstruct_gets_a_warning_and_no_rtstruct(file_run):
    out, _ = file_run
    proc = segment(SAMPLE / "images" / "pt_201.nii.gz", "-o", out, "--reference", SAMPLE / "labels", "--rtstruct",
                   *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is not a DICOM series: no RTSTRUCT" in proc.stdout + proc.stderr
    assert not (out / "pt_201" / "rtstruct.dcm").exists() and "finished earlier" in proc.stdout


# ------------------------------------------------------------------------------------------ failures
def test_a_corrupt_file_fails_alone_and_is_named(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "broken.nii.gz").write_bytes(b"not a scan at all")  # sorted first: the good case runs after it
    shutil.copy(SAMPLE / "images" / "pt_222.nii.gz", scans)
    proc = segment(scans, "-o", tmp_path / "out", *FAST)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "pt_222").iterdir()) == sorted(CASE_FILES)
    assert not (tmp_path / "out" / "broken" / "manifest.json").exists()
    failures = [li for li in proc.stderr.splitlines() if li.startswith("failed: ")]
    assert len(failures) == 1 and str(scans / "broken.nii.gz") in failures[0], proc.stderr
    assert "is not a readable NIfTI, NRRD, MHA or DICOM image" in failures[0]
    assert "1 done, 0 finished earlier, 1 failed" in proc.stdout


def test_a_bundle_without_weights_says_so_in_one_line(tmp_path):
    proc = segment(SAMPLE / "images" / "pt_201.nii.gz", "-o", tmp_path / "out", "--bundle", "knee_eas_unet")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "knee_eas_unet bundle ships no trained weights" in lines[0]
    assert "--ckpt_dir" in lines[0] and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ the README
def readme_first_command() -> str:
    """The first ``medseg-segment`` line of the README's Quick start, checked to follow the install line."""
    readme = (REPO / "README.md").read_text()
    quick = re.search(r"^## Quick start\n(.*?)^## ", readme, flags=re.S | re.M).group(1)
    block = re.search(r"```bash\n(.*?)```", quick, flags=re.S).group(1).splitlines()
    assert "pip install -e ." in block[0], block[0]
    assert block[1].startswith("medseg-segment "), "the README's first command must follow the install line"
    return block[1]


def test_the_readme_first_command_as_written(tmp_path):
    """Run in a folder whose ``bundles`` is the repo's, so the command's relative paths hold and its outputs land in
    the test's folder; the default runtime (OpenVINO on a CPU), with a fresh export cache as after an install."""
    command = shlex.split(readme_first_command())
    (tmp_path / "bundles").symlink_to(REPO / "bundles")
    entry_point = Path(sys.executable).parent / "medseg-segment"
    program = [str(entry_point)] if entry_point.is_file() else [sys.executable, "-m", "custom_networks.apps.segment"]
    proc = segment(*command[1:], cwd=tmp_path, command=program,
                   env={"MEDSEG_RUNTIME_CACHE": str(tmp_path / "runtime_cache")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / command[command.index("-o") + 1]
    case = out / "pt_201"
    assert sorted(p.name for p in case.iterdir()) == sorted(CASE_FILES)
    stats = json.loads((case / "statistics.json").read_text())
    for organ in ORGANS:
        line = next(li for li in proc.stdout.splitlines() if li.split()[:1] == [organ])
        assert float(line.split()[1]) == pytest.approx(stats["organs"][organ]["dice"], abs=1e-3)  # Dice, volume
        assert float(line.split()[2]) == pytest.approx(stats["organs"][organ]["volume_ml"], abs=0.06)
    assert "contours/pt_201/segmentation.nii.gz" in proc.stdout and "mean Dice" in proc.stdout
    assert any((tmp_path / "runtime_cache").iterdir())  # the default runtime exported the networks
    # its time (README: under 2 minutes) is measured by hand on an idle machine, not asserted here


def test_a_bundle_is_found_by_name_or_as_any_bundle_folder(tmp_path):
    from custom_networks.apps.locate import BundleNotFoundError, find_bundle

    by_name = find_bundle("head_neck_two_stage_unet")
    assert by_name.root == REPO / "bundles" / "head_neck_two_stage_unet" and by_name.modality == "CT"
    assert list(by_name.class_names.values()) == ORGANS
    extracted = tmp_path / "unzipped" / "knee_eas_unet"  # as scripts.unpack leaves a bundle zip, anywhere
    shutil.copytree(REPO / "bundles" / "knee_eas_unet" / "configs", extracted / "configs")
    found = find_bundle(str(extracted))
    assert found.root == extracted.resolve() and found.modality == "MR"
    with pytest.raises(BundleNotFoundError, match="bundles found: head_neck_two_stage_unet, knee_eas_unet"):
        find_bundle("knee")


def test_a_2d_bundle_runs_with_ckpt_dir(knee_data, tmp_path):
    """The knee bundle (MR, slice by slice) with weights from --ckpt_dir (untrained, full width: the shape of the
    outputs is what is checked) on three slices of a synthetic knee MR."""
    import torch
    from monai.bundle import ConfigParser

    image = nib.load(str(next(knee_data.glob("imagesTr/*.nii.gz"))))
    nib.save(image.slicer[:, :, 10:13], str(tmp_path / "knee.nii.gz"))
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "knee_eas_unet" / "configs" / "inference.json"))
    parser["bundle_root"] = str(REPO / "bundles" / "knee_eas_unet")
    torch.manual_seed(0)
    (tmp_path / "ckpt").mkdir()
    torch.save({"model": parser.get_parsed_content("network_def").state_dict()}, tmp_path / "ckpt" / "model.pt")
    proc = segment(tmp_path / "knee.nii.gz", "-o", tmp_path / "out", "--bundle", "knee_eas_unet", "--ckpt_dir",
                   tmp_path / "ckpt", *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "knee").iterdir()) == sorted(CASE_FILES)
    label = nib.load(str(tmp_path / "out" / "knee" / "segmentation.nii.gz"))
    assert label.shape == (image.shape[0], image.shape[1], 3)
    stats = json.loads((tmp_path / "out" / "knee" / "statistics.json").read_text())
    assert list(stats["organs"]) == ["femoral_cartilage", "tibial_cartilage"] and stats["bundle"] == "knee_eas_unet"
