"""scripts.package: byte-identical zips, clean contents, atomic replace, and an extracted zip that runs alone."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from scripts import package as pkg
from scripts.common.bundles import names
from tests.bundle_configs.helpers import run
from tests.bundle_configs.test_knee_eas_unet import KNEE
from tests.conftest import PYTHON, REPO

JUNK = ["configs/__pycache__/x.cpython-311.pyc", "eval/events.out.tfevents.1.vm", "data/datalist.json",
        "outputs/a_seg.nii.gz", "runs/log.txt", "models/checkpoint_epoch=1.pt", "docs/.DS_Store",
        "sample/images/pt_1.nii.gz", "sample/LICENSE"]


@pytest.fixture(scope="module")
def demo_volume(knee_data, tmp_path_factory) -> Path:
    """Eight sagittal slices of a synthetic knee MR (enough for a label map, quick to infer)."""
    image = next(knee_data.glob("**/*.nii.gz"))
    path = tmp_path_factory.mktemp("demo") / "knee_demo.nii.gz"
    nib.save(nib.load(image).slicer[:, :, 16:24], path)
    return path


def _tiny_knee_weights(bundle_root: Path, image: Path) -> None:
    """Untrained tiny EAS U-Net weights whose batch-norm statistics are calibrated on ``image``'s slices, so the
    label map depends on the image (with default statistics the random net predicts one class everywhere)."""
    parser = ConfigParser()
    parser.read_config(str(bundle_root / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle_root)
    for key, value in KNEE.tiny.items():
        parser[key] = value
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def")
    x = torch.as_tensor(np.asarray(nib.load(image).dataobj, dtype=np.float32)).permute(2, 0, 1)[:, None]
    lo, hi = np.percentile(x.numpy(), [0.5, 99.5])
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the one calibration pass
    net.train()
    with torch.no_grad():
        net(((x - lo) / (hi - lo)).clamp(0, 1))
    (bundle_root / "models").mkdir(exist_ok=True)
    torch.save({"model": net.state_dict()}, bundle_root / "models" / "model.pt")


@pytest.fixture(scope="module")
def source(demo_volume, tmp_path_factory) -> Path:
    """A copy of the repo's four bundles and custom_networks, with caches and run outputs planted to be left out,
    and tiny untrained knee weights in ``bundles/knee_eas_unet/models/model.pt``."""
    src = tmp_path_factory.mktemp("source")
    for name in names():
        dst = src / "bundles" / name
        for part in ("configs", "docs"):
            shutil.copytree(REPO / "bundles" / name / part, dst / part, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "bundles" / name / "LICENSE", dst / "LICENSE")
        for junk in JUNK:
            (dst / junk).parent.mkdir(parents=True, exist_ok=True)
            (dst / junk).write_bytes(b"junk")
    shutil.copytree(REPO / "custom_networks", src / "custom_networks", ignore=shutil.ignore_patterns("__pycache__"))
    (src / "custom_networks" / "__pycache__").mkdir()
    (src / "custom_networks" / "__pycache__" / "base.cpython-311.pyc").write_bytes(b"junk")
    _tiny_knee_weights(src / "bundles" / "knee_eas_unet", demo_volume)
    return src


@pytest.fixture(scope="module")
def zips(source, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    return {name: pkg.package(name, out, source)[0] for name in names()}


def test_same_inputs_give_the_same_bytes(source, zips, tmp_path):
    for f in source.rglob("*"):  # new mtimes must not change a byte
        os.utime(f, (1.9e9, 1.9e9))
    subprocess.run([PYTHON, "-m", "scripts.package", "--all", "--out", str(tmp_path), "--source", str(source)],
                   cwd=REPO, check=True, capture_output=True)
    for name, first in zips.items():
        again = tmp_path / first.name
        assert again.read_bytes() == first.read_bytes(), name
        digest = hashlib.sha256(again.read_bytes()).hexdigest()
        assert (tmp_path / f"{first.name}.sha256").read_text() == f"{digest}  {first.name}\n"
        assert (first.parent / f"{first.name}.sha256").read_text() == f"{digest}  {first.name}\n"


def test_zip_holds_the_bundle_folder_vendored_networks_and_a_verified_manifest(zips):
    for name, path in zips.items():
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            assert names == sorted(names) and all(n.startswith(f"{name}/") for n in names)
            rel = {n[len(name) + 1:] for n in names}
            assert {"LICENSE", "SHA256SUMS", "configs/inference.json", "configs/metadata.json", "docs/README.md",
                    "custom_networks/__init__.py", "custom_networks/bundle/root.py"} <= rel
            assert not any(("__pycache__" in r or r.endswith(".pyc") or r.split("/")[0] in {"eval", "data", "outputs",
                            "runs", "sample"} or "tfevents" in r or "/." in r) for r in rel)
            assert {r for r in rel if r.startswith("models/")} == ({"models/model.pt"} if name == "knee_eas_unet" else set())
            assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
            manifest = dict(line.split("  ")[::-1] for line in zf.read(f"{name}/SHA256SUMS").decode().splitlines())
            assert set(manifest) == rel - {"SHA256SUMS"}
            for r, digest in manifest.items():
                assert hashlib.sha256(zf.read(f"{name}/{r}")).hexdigest() == digest


def test_unknown_bundle_is_refused_with_the_valid_names(tmp_path):
    with pytest.raises(pkg.UnknownBundleError, match="valid bundles: head_neck_two_stage_unet, knee_eas_unet"):
        pkg.package("knee", tmp_path)
    proc = subprocess.run([PYTHON, "-m", "scripts.package", "knee", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "spine_msr_attention_unet" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_zip_is_only_replaced_atomically(source, tmp_path, monkeypatch):
    path, _ = pkg.package("spine_msr_attention_unet", tmp_path, source)
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)  # the rename of write_atomically, which package.py writes through
    (source / "bundles" / "spine_msr_attention_unet" / "docs" / "extra.md").write_text("changed")
    try:
        with pytest.raises(OSError, match="disk full"):
            pkg.package("spine_msr_attention_unet", tmp_path, source)
    finally:
        (source / "bundles" / "spine_msr_attention_unet" / "docs" / "extra.md").unlink()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, f"{path.name}.sha256"]


def test_extracted_zip_runs_without_the_repo_and_matches_the_repo_bundle(source, zips, demo_volume, tmp_path):
    """Inference from an extracted zip (repo not importable) gives the repo bundle's label map."""
    from scripts.unpack import unpack

    bundle = unpack(zips["knee_eas_unet"], out=tmp_path / "extracted")
    assert bundle == tmp_path / "extracted" / "knee_eas_unet"
    image = demo_volume
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "2"

    probe = subprocess.run([PYTHON, "-c", "import importlib.util; print(importlib.util.find_spec('custom_networks').origin)"], cwd=bundle,
                           env=env, capture_output=True, text=True, check=True)
    assert Path(probe.stdout.strip()).resolve().is_relative_to(bundle.resolve())  # the vendored copy, not the repo's

    proc = subprocess.run([PYTHON, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
                           f"--datalist=['{image}']", *KNEE.tiny_cli], cwd=bundle, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from_zip = np.asarray(nib.load(next((bundle / "outputs").glob("*_seg.nii.gz"))).dataobj)

    run(KNEE.workflow(["inference.json"], "infer", datalist=[str(image)],
                      ckpt_dir=str(source / "bundles" / "knee_eas_unet" / "models"), output_dir=str(tmp_path / "repo")))
    from_repo = np.asarray(nib.load(next((tmp_path / "repo").glob("*_seg.nii.gz"))).dataobj)
    assert from_zip.shape == nib.load(image).shape
    assert len(np.unique(from_repo)) > 1  # a non-trivial map, so equality means something
    np.testing.assert_array_equal(from_zip, from_repo)


def test_unpack_refuses_an_edited_zip_and_an_existing_folder(zips, tmp_path):
    from scripts.unpack import UnsafeZipError, unpack

    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(zips["knee_eas_unet"]) as src, zipfile.ZipFile(edited, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data + b" " if info.filename.endswith("inference.json") else data)
    with pytest.raises(UnsafeZipError, match="configs/inference.json does not match its sha256"):
        unpack(edited, out=tmp_path / "a")
    assert not (tmp_path / "a" / "knee_eas_unet").exists() and not any((tmp_path / "a").iterdir())
    unpack(zips["knee_eas_unet"], out=tmp_path / "b")
    with pytest.raises(FileExistsError, match="already exists"):
        unpack(zips["knee_eas_unet"], out=tmp_path / "b")
