"""The bad-input catalogue (issue 10; the table in README.md's Troubleshooting section), one case per row.

Each case builds one kind of bad input in a temporary folder, runs the real bundle config or tool on it,
and checks three things: it stops with an error, the message names the offending file and says what to
do, and nothing was written (no output, no checkpoint touched, inputs unchanged; the one thing allowed is
the empty log a TensorBoard handler opens when a training config is parsed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest
import torch

from scripts.common.registry import tiny
from tests.bundle_configs.helpers import BundleUnderTest, error_chain, run, write_nifti
from tests.conftest import SHARED_DATA

KNEE = BundleUnderTest("knee_eas_unet", {**tiny("knee_eas_unet"), "slices_per_volume": 2, "val_interval": 1})
LOWER_LIMB = BundleUnderTest("lower_limb_afu_unet", {**tiny("lower_limb_afu_unet"), "slices_per_volume": 2,
                                                     "val_interval": 1})
HEAD_NECK = BundleUnderTest("head_neck_two_stage_unet", {**tiny("head_neck_two_stage_unet"), "val_interval": 1})
SERIES = SHARED_DATA / "totalsegmentator_example" / "example_ct_dicom"


@dataclass
class Case:
    """One row: ``make(tmp) -> (run, culprit)``; ``fix`` are words the message must hold besides the culprit."""

    make: Callable
    fix: tuple[str, ...]
    needs_shared: bool = False


# ------------------------------------------------------------------------------------------------ helpers
def _weights(bundle: BundleUnderTest, tmp: Path, config: str = "inference.json", key: str = "network_def") -> Path:
    """Untrained weights of the bundle's tiny network, as ``tmp/models/model.pt``."""
    net = bundle.workflow([config], "infer" if config == "inference.json" else "train").parser.get_parsed_content(key)
    (tmp / "models").mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), tmp / "models" / "model.pt")
    return tmp / "models"


def _infer(bundle: BundleUnderTest, image, tmp: Path, ckpt: Path | None = None, **overrides):
    ckpt = ckpt or _weights(bundle, tmp)
    return lambda: run(bundle.workflow(["inference.json"], "infer", datalist=[str(image)], ckpt_dir=str(ckpt),
                                       output_dir=str(tmp / "outputs"), **overrides))


def _volume(shape=(32, 32, 8), low=0.0, high=1000.0, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _ct(shape=(32, 32, 8)) -> np.ndarray:
    """HU-like: air around a soft-tissue block with a bone core."""
    v = np.full(shape, -1000.0, np.float32)
    v[4:-4, 4:-4] = 40.0
    v[12:20, 12:20] = 700.0
    return v


def _nifti(tmp: Path, name="scan.nii.gz", array=None, affine=None) -> Path:
    return Path(write_nifti(tmp / name, _volume() if array is None else array, affine))


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _train_set(tmp: Path, image=None, label=None, image_affine=None, label_affine=None, **datalist_entries) -> Path:
    """A knee data set (2 training, 1 validation case) whose first training case is (image, label)."""
    data = tmp / "data"
    (data / "images").mkdir(parents=True)
    cases = []
    for i in range(3):
        img = _volume((64, 64, 4), seed=i)
        lab = np.zeros((64, 64, 4), np.uint8)
        lab[20:40, 20:40, :] = 1
        lab[40:50, 20:40, :] = 2
        if i == 0:
            img = img if image is None else image
            lab = lab if label is None else label
        write_nifti(data / "images" / f"img{i}.nii.gz", img, image_affine if i == 0 else None)
        write_nifti(data / "images" / f"lab{i}.nii.gz", lab, label_affine if i == 0 else None)
        cases.append({"image": f"images/img{i}.nii.gz", "label": f"images/lab{i}.nii.gz"})
    datalist = {"training": cases[:2], "validation": cases[2:], "testing": cases[2:], **datalist_entries}
    (data / "datalist.json").write_text(json.dumps(datalist))
    return data


def _train(tmp: Path, data: Path, bundle: BundleUnderTest = KNEE, **overrides):
    return lambda: run(bundle.workflow(["train.json"], "train", dataset_dir=str(data), ckpt_dir=str(tmp / "models"),
                                       output_dir=str(tmp / "outputs"), max_epochs=1, **overrides))


# ------------------------------------------------------------------------------------------------ the rows
def truncated_nifti(tmp):
    image = _truncate(_nifti(tmp))
    return _infer(KNEE, image, tmp), image


def corrupt_nifti(tmp):
    image = tmp / "scan.nii.gz"
    image.write_bytes(os.urandom(4096))
    return _infer(KNEE, image, tmp), image


def _write_nrrd(path: Path, array: np.ndarray) -> Path:
    header = ("NRRD0004\ntype: float\ndimension: 3\nsizes: {} {} {}\nspace: left-posterior-superior\n"
              "space directions: (1,0,0) (0,1,0) (0,0,1)\nspace origin: (0,0,0)\nendian: little\n"
              "encoding: raw\n\n").format(*array.shape)
    path.write_bytes(header.encode() + np.asfortranarray(array, dtype="<f4").tobytes(order="F"))
    return path


def _patched_nifti(tmp: Path, fmt: str, offset: int, *values) -> Path:
    """An uncompressed NIfTI of ``_volume()`` with ``struct.pack_into(fmt, header, offset, *values)`` applied."""
    import struct

    image = _nifti(tmp, name="scan.nii")
    data = bytearray(image.read_bytes())
    struct.pack_into(fmt, data, offset, *values)
    image.write_bytes(bytes(data))
    return image


def truncated_uncompressed_nifti(tmp):
    image = _nifti(tmp, name="scan.nii")
    data = image.read_bytes()
    image.write_bytes(data[: len(data) * 2 // 3])  # ITK pads the rest with zeros, silently
    return _infer(KNEE, image, tmp), image


def nifti_zero_spacing(tmp):
    image = _patched_nifti(tmp, "<f", 80, 0.0)  # pixdim[1]: ITK sets it to 1, silently
    return _infer(KNEE, image, tmp), image


def nifti_nan_orientation(tmp):
    image = _patched_nifti(tmp, "<f", 280, float("nan"))  # srow_x[0] (sform_code 1): a bare LinAlgError before
    return _infer(KNEE, image, tmp), image


def nifti_unknown_datatype(tmp):
    image = _patched_nifti(tmp, "<h", 70, 1234)
    return _infer(KNEE, image, tmp), image


def nifti_enormous_size(tmp):
    image = _patched_nifti(tmp, "<3h", 42, 30000, 30000, 30000)  # a MemoryError (or minutes of reading) before
    return _infer(KNEE, image, tmp), image


def nrrd_singular_directions(tmp):
    image = _write_nrrd(tmp / "scan.nrrd", _volume())
    image.write_bytes(image.read_bytes().replace(b"(0,1,0)", b"(1,0,0)", 1))  # two parallel axes
    return _infer(KNEE, image, tmp), image


def _factory_series(tmp: Path, change) -> tuple[Path, Path]:
    """A small CT series (:mod:`tests.dicom_factory`) whose third slice gets ``change(ds)``."""
    import pydicom

    from tests.dicom_factory import write_ct_series

    files = write_ct_series(tmp / "series", n=6)
    ds = pydicom.dcmread(files[2])
    change(ds)
    ds.save_as(files[2])
    return tmp / "series", files[2]


def dicom_slice_without_geometry(tmp):
    series, victim = _factory_series(tmp, lambda ds: delattr(ds, "ImagePositionPatient"))
    return _infer(LOWER_LIMB, series, tmp), victim


def dicom_singular_orientation(tmp):
    series, victim = _factory_series(tmp, lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 1, 0, 0]))
    return _infer(LOWER_LIMB, series, tmp), victim


def truncated_nrrd_file(tmp):
    image = _truncate(_write_nrrd(tmp / "scan.nrrd", _volume()))
    return _infer(KNEE, image, tmp), image


def corrupt_nrrd_header(tmp):
    image = tmp / "scan.nrrd"
    image.write_bytes(b"NRRD0004\ntype: float\ndimension: three\nsizes: 1 2\n\n" + os.urandom(64))
    return _infer(KNEE, image, tmp), image


def _series_copy(tmp: Path) -> Path:
    series = tmp / "series"
    shutil.copytree(SERIES, series)
    return series


def truncated_dicom_slice(tmp):
    series = _series_copy(tmp)
    victim = sorted(series.iterdir())[5]
    _truncate(victim)
    return _infer(LOWER_LIMB, series, tmp), victim


def truncated_native_dicom_slice(tmp):
    from tests.writers.test_dicom_seg import write_series

    files = write_series(tmp / "series", [1, 0, 0, 0, 1, 0], rows=32, cols=32, n=6)
    _truncate(files[2])
    return _infer(LOWER_LIMB, tmp / "series", tmp), files[2]


def dicom_two_series(tmp):
    import pydicom
    from pydicom.uid import generate_uid

    series = _series_copy(tmp)
    other = sorted(series.iterdir())[0]
    ds = pydicom.dcmread(other)
    ds.SeriesInstanceUID = generate_uid()  # a valid UID (appending to one can pass the 64-character limit)
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(series / "other_series.dcm")
    return _infer(LOWER_LIMB, series, tmp), series


def dicom_missing_slice(tmp):
    series = _series_copy(tmp)
    sorted(series.iterdir())[10].unlink()
    return _infer(LOWER_LIMB, series, tmp), series


def mr_given_to_ct_bundle(tmp):
    image = _nifti(tmp, array=_volume(low=0, high=800))  # MR-like: no air at -1000 HU
    return _infer(LOWER_LIMB, image, tmp), image


def nan_voxels(tmp):
    v = _volume()
    v[3, 3, 3] = np.nan
    image = _nifti(tmp, array=v)
    return _infer(KNEE, image, tmp), image


def inf_voxels(tmp):
    v = _ct()
    v[3, 3, 3] = np.inf
    image = _nifti(tmp, array=v)
    return _infer(LOWER_LIMB, image, tmp), image


def slice_given_to_volume_bundle(tmp):
    image = _nifti(tmp, array=_volume((32, 32)))
    return _infer(KNEE, image, tmp), image


def slice_given_to_3d_bundle(tmp):
    image = _nifti(tmp, array=_ct((64, 64)))
    return _infer(HEAD_NECK, image, tmp), image


def four_d_input(tmp):
    image = _nifti(tmp, array=_volume((32, 32, 8, 3)))
    return _infer(KNEE, image, tmp), image


def four_d_input_ct(tmp):
    image = _nifti(tmp, array=np.stack([_ct()] * 2, axis=-1))
    return _infer(LOWER_LIMB, image, tmp), image


def label_values_outside_classes(tmp):
    lab = np.zeros((64, 64, 4), np.uint8)
    lab[20:40, 20:40] = 7
    data = _train_set(tmp, label=lab)
    return _train(tmp, data), data / "images" / "lab0.nii.gz"


def label_shape_mismatch(tmp):
    data = _train_set(tmp, label=np.zeros((64, 32, 4), np.uint8))
    return _train(tmp, data), data / "images" / "lab0.nii.gz"


def label_geometry_mismatch(tmp):
    shifted = np.diag([2.0, 2.0, 3.0, 1.0])
    shifted[:3, 3] = [50.0, 0.0, 0.0]
    data = _train_set(tmp, label_affine=shifted)
    return _train(tmp, data), data / "images" / "lab0.nii.gz"


def empty_label(tmp):
    data = _train_set(tmp, label=np.zeros((64, 64, 4), np.uint8))
    return _train(tmp, data), data / "images" / "lab0.nii.gz"


def missing_datalist(tmp):
    data = tmp / "data"
    data.mkdir()
    return _train(tmp, data), data / "datalist.json"


def datalist_not_json(tmp):
    data = _train_set(tmp)
    (data / "datalist.json").write_text("{'training': [")
    return _train(tmp, data), data / "datalist.json"


def datalist_without_training(tmp):
    data = _train_set(tmp)
    (data / "datalist.json").write_text(json.dumps({"validation": []}))
    return _train(tmp, data), data / "datalist.json"


def datalist_entry_without_label(tmp):
    data = _train_set(tmp)
    d = json.loads((data / "datalist.json").read_text())
    del d["training"][1]["label"]
    (data / "datalist.json").write_text(json.dumps(d))
    return _train(tmp, data), data / "datalist.json"


def datalist_entry_not_a_path(tmp):
    data = _train_set(tmp)
    d = json.loads((data / "datalist.json").read_text())
    d["training"][0]["image"] = ["images/img0.nii.gz"]  # a bare TypeError from os.stat before
    (data / "datalist.json").write_text(json.dumps(d))
    return _train(tmp, data), data / "datalist.json"


def datalist_absolute_path_missing(tmp):
    data = _train_set(tmp)
    d = json.loads((data / "datalist.json").read_text())
    d["training"][0]["image"] = "/nonexistent/scans/img0.nii.gz"
    (data / "datalist.json").write_text(json.dumps(d))
    return _train(tmp, data), Path("/nonexistent/scans/img0.nii.gz")


def datalist_empty_training(tmp):
    data = _train_set(tmp)
    d = json.loads((data / "datalist.json").read_text())
    d["training"] = []
    (data / "datalist.json").write_text(json.dumps(d))
    return _train(tmp, data), data / "datalist.json"


def no_trained_weights(tmp):
    image = _nifti(tmp)
    (tmp / "models").mkdir()
    return _infer(KNEE, image, tmp, ckpt=tmp / "models"), tmp / "models" / "model.pt"


def checkpoint_from_another_bundle(tmp):
    image = _nifti(tmp)
    ckpt = _weights(LOWER_LIMB, tmp)
    return _infer(KNEE, image, tmp, ckpt=ckpt), ckpt / "model.pt"


def checkpoint_with_pickled_code(tmp):
    image = _nifti(tmp)
    ckpt = _weights(KNEE, tmp)
    state = torch.load(ckpt / "model.pt", weights_only=True)
    torch.save({"model": state, "hook": shutil.rmtree}, ckpt / "model.pt")  # a function: code, not tensors
    return _infer(KNEE, image, tmp, ckpt=ckpt), ckpt / "model.pt"


def checkpoint_not_a_state_dict(tmp):
    image = _nifti(tmp)
    ckpt = _weights(KNEE, tmp)
    torch.save({"model": 5}, ckpt / "model.pt")  # a bare TypeError from load_state_dict before
    return _infer(KNEE, image, tmp, ckpt=ckpt), ckpt / "model.pt"


def truncated_checkpoint(tmp):
    image = _nifti(tmp)
    ckpt = _weights(KNEE, tmp)
    _truncate(ckpt / "model.pt")
    return _infer(KNEE, image, tmp, ckpt=ckpt), ckpt / "model.pt"


def bad_flag_value(tmp):
    image = _nifti(tmp, array=_ct())
    return _infer(LOWER_LIMB, image, tmp, save_mesh="maybe"), "save_mesh"


def compress_pickled_checkpoint(tmp):
    from scripts.compress import compress

    ckpt = _weights(KNEE, tmp)
    state = torch.load(ckpt / "model.pt", weights_only=True)
    torch.save({"model": state, "hook": shutil.rmtree}, ckpt / "model.pt")
    return (lambda: compress(str(KNEE.root), out=str(tmp / "outputs"), ckpt=str(ckpt / "model.pt"), **KNEE.tiny),
            ckpt / "model.pt")


def damaged_resume_checkpoint(tmp):
    data = _train_set(tmp)
    (tmp / "models").mkdir()
    (tmp / "models" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    return _train(tmp, data), tmp / "models" / "checkpoint.pt"


def zip_with_parent_paths(tmp):
    from scripts.unpack import unpack

    archive = tmp / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("knee_eas_unet/configs/inference.json", "{}")
        z.writestr("knee_eas_unet/../../escaped.txt", "gotcha")
    return lambda: unpack(archive, out=tmp / "outputs"), archive


def metadata_failing_schema(tmp):
    from scripts.common.bundles import NETWORK_PACKAGE
    from scripts.package import package

    source = tmp / "source"
    shutil.copytree(KNEE.root, source / "bundles" / KNEE.name,
                    ignore=shutil.ignore_patterns("models", "data", "eval", "outputs"))
    shutil.copytree(KNEE.root.parent.parent / NETWORK_PACKAGE, source / NETWORK_PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__"))
    metadata = source / "bundles" / KNEE.name / "configs" / "metadata.json"
    meta = json.loads(metadata.read_text())
    del meta["version"]
    metadata.write_text(json.dumps(meta))
    return lambda: package(KNEE.name, out=tmp / "outputs", source=source), metadata


CATALOGUE = {
    "truncated NIfTI": Case(truncated_nifti, ("truncated",)),
    "corrupt NIfTI": Case(corrupt_nifti, ("not a readable",)),
    "truncated uncompressed NIfTI": Case(truncated_uncompressed_nifti, ("truncated",)),
    "NIfTI with a zero, negative or NaN spacing": Case(nifti_zero_spacing, ("implausible voxel spacing",)),
    "NIfTI with a NaN orientation": Case(nifti_nan_orientation, ("not finite",)),
    "NIfTI with an unknown datatype": Case(nifti_unknown_datatype, ("unknown datatype code 1234",)),
    "NIfTI header claiming an enormous size": Case(nifti_enormous_size, ("claims more than it holds",)),
    "truncated NRRD": Case(truncated_nrrd_file, ("truncated",)),
    "corrupt NRRD header": Case(corrupt_nrrd_header, ("header is damaged",)),
    "NRRD with parallel space directions": Case(nrrd_singular_directions, ("singular",)),
    "truncated DICOM slice": Case(truncated_dicom_slice, ("re-export",), needs_shared=True),
    "truncated native DICOM slice": Case(truncated_native_dicom_slice, ("truncated",)),
    "DICOM folder with two series": Case(dicom_two_series, ("series",), needs_shared=True),
    "DICOM series with a missing slice": Case(dicom_missing_slice, ("missing",), needs_shared=True),
    "DICOM slice without ImagePositionPatient": Case(dicom_slice_without_geometry, ("has no ImagePositionPatient",)),
    "DICOM slice with a singular orientation": Case(dicom_singular_orientation, ("singular orientation",)),
    "MR (non-HU) volume given to a CT bundle": Case(mr_given_to_ct_bundle, ("Hounsfield", "check_hu")),
    "NaN voxels": Case(nan_voxels, ("NaN",)),
    "Inf voxels": Case(inf_voxels, ("infinite",)),
    "2D slice given to a slice-by-slice bundle": Case(slice_given_to_volume_bundle, ("full series",)),
    "2D slice given to the 3D bundle": Case(slice_given_to_3d_bundle, ("full series",)),
    "4D series (MR)": Case(four_d_input, ("split",)),
    "4D series (CT)": Case(four_d_input_ct, ("split",)),
    "label values outside the classes": Case(label_values_outside_classes, ("label_mapping",)),
    "label with another shape": Case(label_shape_mismatch, ("Resample",)),
    "label with another geometry": Case(label_geometry_mismatch, ("Resample",)),
    "empty label": Case(empty_label, ("no foreground",)),
    "datalist missing": Case(missing_datalist, ("scripts.demo_data",)),
    "datalist not JSON": Case(datalist_not_json, ("not valid JSON",)),
    "datalist without a training list": Case(datalist_without_training, ("'training'",)),
    "datalist entry without a label": Case(datalist_entry_without_label, ("has no 'label'",)),
    "datalist entry that is not a path": Case(datalist_entry_not_a_path, ("malformed", "not a path")),
    "datalist absolute path that does not exist": Case(datalist_absolute_path_missing, ("does not exist",)),
    "datalist with an empty training list": Case(datalist_empty_training, ("empty",)),
    "no trained weights": Case(no_trained_weights, ("monai.bundle run",)),
    "checkpoint from another bundle": Case(checkpoint_from_another_bundle, ("another network",)),
    "checkpoint with pickled code": Case(checkpoint_with_pickled_code, ("weights_only",)),
    "checkpoint that is not a state dict": Case(checkpoint_not_a_state_dict, ("not a network's state dict",)),
    "truncated checkpoint": Case(truncated_checkpoint, ("truncated",)),
    "flag that is not true/false": Case(bad_flag_value, ("true or false",)),
    "compress: checkpoint with pickled code": Case(compress_pickled_checkpoint, ("weights_only",)),
    "damaged resume checkpoint": Case(damaged_resume_checkpoint, ("--resume false",)),
    "bundle zip with ../ paths": Case(zip_with_parent_paths, ("outside",)),
    "metadata.json failing the schema": Case(metadata_failing_schema, ("schema", "version")),
}


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("row", list(CATALOGUE))
def test_bad_input_gets_one_clear_message_and_writes_nothing(row, tmp_path):
    case = CATALOGUE[row]
    if case.needs_shared and not SERIES.is_dir():
        pytest.skip(f"real CT series not found at {SERIES}")
    work = tmp_path / "work"
    work.mkdir()
    go, culprit = case.make(work)
    before = _snapshot(work)
    with pytest.raises(Exception) as err:
        go()
    message = error_chain(err.value)
    assert str(culprit) in message, f"the message does not name {culprit}:\n{message[-2000:]}"
    for words in case.fix:
        assert words in message, f"the message does not say {words!r}:\n{message[-2000:]}"
    outputs = work / "outputs"
    written = [p for p in outputs.rglob("*") if p.is_file() and not p.name.startswith("events.out.tfevents")]
    assert not written, f"something was written: {written}"
    after = _snapshot(work)
    assert {k: v for k, v in after.items() if not k.startswith("outputs")} == before, "an input was changed"


def test_readme_troubleshooting_table_lists_every_case():
    from tests.conftest import REPO

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Troubleshooting: bad input"):]
    section = section[: section.index("\n## ", 1)]
    table = section[section.index("| bad input |"):].split("\n\n")[0]  # the first table (the fuzz counts follow)
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")][1:]
    assert rows == list(CATALOGUE)
