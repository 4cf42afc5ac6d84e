"""OpenKBP converter (scripts/prepare_openkbp.py) on real patients of shared/data/openkbp.

Small source trees (1-3 patients) are copied into tmp_path; one module-scoped conversion of
train-pats/pt_1 (mandible + both parotids, no esophagus/larynx), train-pats/pt_3 (no Mandible.csv) and
validation-pats/pt_201 (all seven organs) serves the geometry, HU and datalist tests.
"""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from custom_networks.labels.head_neck import OPENKBP_ORGANS, OPENKBP_SOURCE_NAMES
from tests.conftest import SHARED_DATA

OPENKBP = SHARED_DATA / "openkbp"
pytestmark = pytest.mark.skipif(
    not (OPENKBP / "train-pats" / "pt_1").is_dir() or not (OPENKBP / "validation-pats" / "pt_201").is_dir(),
    reason=f"real OpenKBP data not found at {OPENKBP} (train-pats/pt_1, validation-pats/pt_201)",
)

#: (split folder, patient) of the shared conversion.
PATIENTS = (("train-pats", "pt_1"), ("train-pats", "pt_3"), ("validation-pats", "pt_201"))
LABEL = {organ: i for i, organ in enumerate(OPENKBP_ORGANS, start=1)}
GRID = 128**3


def _copy_tree(dst, patients=PATIENTS):
    for split, pt in patients:
        shutil.copytree(OPENKBP / split / pt, dst / split / pt)
    return dst


def _load(out, pt):
    import nibabel as nib

    img, lab = nib.load(out / "images" / f"{pt}.nii.gz"), nib.load(out / "labels" / f"{pt}.nii.gz")
    return img, lab, np.asarray(img.dataobj), np.asarray(lab.dataobj)


def _world_centroid(affine, mask):
    assert mask.any()
    return (np.asarray(affine, dtype=float) @ np.r_[np.argwhere(mask).mean(0), 1.0])[:3]


def _read_csv(path):
    """Independent reader of an OpenKBP sparse CSV: (indices, values or None)."""
    text = (gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()).decode()
    rows = [line.split(",") for line in text.splitlines()[1:] if line.strip()]
    idx = np.array([int(r[0]) for r in rows], dtype=np.int64)
    vals = np.array([float(r[1]) if r[1] else np.nan for r in rows])
    return idx, vals


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from scripts.prepare_openkbp import prepare

    root = tmp_path_factory.mktemp("openkbp")
    src, out, lines = _copy_tree(root / "src"), root / "out", []
    datalist = prepare(src, out, workers=1, log=lines.append)
    return src, out, datalist, lines


# ------------------------------------------------------------------ geometry


@pytest.mark.parametrize("pt", ["pt_1", "pt_201"])
def test_world_positions_ras(converted, pt):
    import nibabel as nib

    _, out, _, _ = converted
    img, lab, _, label = _load(out, pt)
    np.testing.assert_array_equal(img.affine, lab.affine)
    # OpenKBP's axes (anterior->posterior, right->left, head->feet) stored as a RAS+ affine: codes P, L, I.
    assert nib.aff2axcodes(img.affine) == ("P", "L", "I")
    # volume centred on the world origin
    np.testing.assert_allclose(img.affine @ np.r_[63.5, 63.5, 63.5, 1.0], [0, 0, 0, 1], atol=1e-4)
    c = {o: _world_centroid(img.affine, label == LABEL[o]) for o in
         ("brainstem", "spinal_cord", "mandible", "parotid_left", "parotid_right")}
    # RAS+: +x = patient's Right, +y = Anterior, +z = Superior.
    assert c["mandible"][1] > c["spinal_cord"][1] + 30, c  # mandible well in front of the cord
    assert c["brainstem"][2] > c["spinal_cord"][2] + 30, c  # brainstem above the cord
    assert c["parotid_left"][0] < -30 < 30 < c["parotid_right"][0], c  # left parotid on the patient's left (-x)
    # both parotids lie lateral and anterior of the cord, roughly symmetric about the midline
    assert abs(c["parotid_left"][0] + c["parotid_right"][0]) < 20, c


def test_world_positions_with_monai_itk(converted):
    """MONAI (ITK reader, RAS orientation) reads the same world geometry and the same sides."""
    from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation

    _, out, _, _ = converted
    nib_img, _, _, nib_label = _load(out, "pt_1")
    load = Compose([LoadImage(reader="ITKReader", image_only=True), EnsureChannelFirst(), Orientation("RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))])
    label = load(str(out / "labels" / "pt_1.nii.gz"))
    image = load(str(out / "images" / "pt_1.nii.gz"))
    aff = np.asarray(label.affine, dtype=float)
    np.testing.assert_allclose(np.asarray(image.affine, dtype=float), aff, atol=1e-5)
    # After Orientation("RAS") the affine is diagonal and positive: voxel index along axis 0 grows toward
    # +x (the patient's Right), axis 1 toward Anterior, axis 2 toward Superior.
    assert np.all(np.diag(aff)[:3] > 0) and np.allclose(aff[:3, :3], np.diag(np.diag(aff)[:3]), atol=1e-5)
    arr, ct = np.asarray(label)[0], np.asarray(image)[0]
    assert arr.shape == ct.shape == (128, 128, 128)
    idx = {o: np.argwhere(arr == LABEL[o]).mean(0) for o in LABEL if (arr == LABEL[o]).any()}
    # hence the LEFT parotid (patient's left = smaller x) has the SMALLER axis-0 index, the mandible the
    # larger axis-1 index than the cord (anterior), the brainstem the larger axis-2 index (superior).
    assert idx["parotid_left"][0] < idx["parotid_right"][0], idx
    assert idx["mandible"][1] > idx["spinal_cord"][1], idx
    assert idx["brainstem"][2] > idx["spinal_cord"][2], idx
    # same world centroids as nibabel on the file as written, and the same voxels / HU
    for organ in ("brainstem", "spinal_cord", "mandible", "parotid_left", "parotid_right"):
        np.testing.assert_allclose(
            _world_centroid(aff, arr == LABEL[organ]), _world_centroid(nib_img.affine, nib_label == LABEL[organ]),
            atol=1e-3,
        )
        assert (arr == LABEL[organ]).sum() == (nib_label == LABEL[organ]).sum()
    assert np.median(ct[arr == LABEL["mandible"]]) > 300


# ------------------------------------------------------------------ intensities, dtypes, spacing


@pytest.mark.parametrize("split,pt", [PATIENTS[0], PATIENTS[2]])
def test_hu_dtypes_spacing(converted, split, pt):
    _, out, _, _ = converted
    img, lab, ct, label = _load(out, pt)
    assert img.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8
    assert ct.dtype == np.int16 and label.dtype == np.uint8 and ct.shape == label.shape == (128, 128, 128)
    spacing = [float(v) for v in (OPENKBP / split / pt / "voxel_dimensions.csv").read_text().split()]
    np.testing.assert_allclose(img.header.get_zooms(), spacing, rtol=1e-6)
    np.testing.assert_allclose(lab.header.get_zooms(), spacing, rtol=1e-6)

    # every voxel: stored value - 1000 where ct.csv has a row (C-order flat index), air (-1000) elsewhere
    idx, vals = _read_csv(OPENKBP / split / pt / "ct.csv.gz")
    flat = ct.ravel()
    stored = np.zeros(GRID, bool)
    stored[idx] = True
    np.testing.assert_array_equal(flat[idx], np.rint(vals - 1000).astype(np.int16))
    assert np.all(flat[~stored] == -1000) and (~stored).sum() > GRID // 2  # most of the box is outside the body
    assert ct[0, 0, 0] == ct[-1, -1, -1] == ct[0, -1, 0] == -1000

    med = {o: float(np.median(ct[label == i])) for o, i in LABEL.items() if (label == i).any()}
    assert 15 <= med["brainstem"] <= 60, med  # soft tissue (brain)
    for side in ("parotid_left", "parotid_right"):
        assert 0 <= med[side] <= 80, med  # gland: soft tissue, partly fatty
    assert med["mandible"] > 300, med  # bone
    assert med["spinal_cord"] < 100, med  # the cord itself, not the vertebra around it


def test_labels_match_organ_csvs(converted):
    """pt_1 has no overlapping contours: each label equals its organ file's indices exactly (C order)."""
    src, out, _, lines = converted
    _, _, _, label = _load(out, "pt_1")
    flat = label.ravel()
    total = 0
    for organ, stem in OPENKBP_SOURCE_NAMES.items():
        path = src / "train-pats" / "pt_1" / f"{stem}.csv"
        if not path.is_file():
            assert not (flat == LABEL[organ]).any(), organ
            continue
        idx, _ = _read_csv(path)
        assert np.array_equal(np.flatnonzero(flat == LABEL[organ]), np.unique(idx)), organ
        total += len(np.unique(idx))
    assert (flat != 0).sum() == total
    assert any("pt_1" in s and "overlapping voxels 0" in s for s in lines), lines


def test_where_contours_overlap_the_later_organ_wins(converted):
    """pt_201's brainstem and spinal cord share 4 voxels (at their junction): they get the later organ of
    OPENKBP_ORGANS, the spinal cord; every other contoured voxel keeps its own organ."""
    src, out, _, lines = converted
    flat = _load(out, "pt_201")[3].ravel()
    owners: dict[int, list[str]] = {}
    for organ, stem in OPENKBP_SOURCE_NAMES.items():
        for index in np.unique(_read_csv(src / "validation-pats" / "pt_201" / f"{stem}.csv")[0]).tolist():
            owners.setdefault(index, []).append(organ)
    shared = {index: organs for index, organs in owners.items() if len(organs) > 1}
    assert sorted(map(sorted, shared.values())) == [["brainstem", "spinal_cord"]] * 4
    for index, organs in owners.items():
        assert flat[index] == max(LABEL[o] for o in organs), (index, organs)
    assert (flat != 0).sum() == len(owners)
    assert any("pt_201" in s and "overlapping voxels 4" in s for s in lines), lines


def test_a_voxel_in_three_contours_is_counted_once_and_goes_to_the_latest(case):
    from scripts.prepare_openkbp import convert_case

    voxel = int(_read_csv(case / "Brainstem.csv")[0][0])
    for stem in ("SpinalCord", "RightParotid"):  # organs 2 and 3 list the brainstem's first voxel too
        with open(case / f"{stem}.csv", "a") as f:
            f.write(f"{voxel},\n")
    _, label, _, summary = convert_case(case)
    assert label.ravel()[voxel] == LABEL["parotid_right"]
    assert summary["overlap_voxels"] == 1


# ------------------------------------------------------------------ byte identity


def test_plain_and_gzip_csv_byte_identical_and_deterministic(tmp_path):
    from scripts.prepare_openkbp import prepare

    gz = _copy_tree(tmp_path / "gz", PATIENTS[:1])
    plain = _copy_tree(tmp_path / "plain", PATIENTS[:1])
    case = plain / "train-pats" / "pt_1"
    (case / "ct.csv").write_bytes(gzip.decompress((case / "ct.csv.gz").read_bytes()))
    (case / "ct.csv.gz").unlink()
    outs = {}
    for name, src in (("gz", gz), ("plain", plain), ("gz_again", gz)):
        prepare(src, tmp_path / f"out_{name}", workers=1, log=None)
        outs[name] = tmp_path / f"out_{name}"
    for rel in ("images/pt_1.nii.gz", "labels/pt_1.nii.gz", "datalist.json"):
        ref = (outs["gz"] / rel).read_bytes()
        assert (outs["plain"] / rel).read_bytes() == ref, rel
        assert (outs["gz_again"] / rel).read_bytes() == ref, rel
    # rerun into its own output folder (recognised by the marker): rewritten, same bytes
    prepare(gz, outs["gz"], workers=1, log=None)
    assert (outs["gz"] / "images/pt_1.nii.gz").read_bytes() == (outs["plain"] / "images/pt_1.nii.gz").read_bytes()
    # only train-pats present: only the training list
    data = json.loads((outs["plain"] / "datalist.json").read_text())
    assert "training" in data and "validation" not in data and "testing" not in data


# ------------------------------------------------------------------ datalist


def test_datalist(converted):
    src, out, datalist, lines = converted
    assert datalist == out / "datalist.json"
    data = json.loads(datalist.read_text())
    assert "training" in data and "validation" in data and "testing" not in data  # no test-pats folder
    assert data["numTraining"] == 2 and len(data["validation"]) == 1
    assert [e["image"] for e in data["training"]] == ["images/pt_1.nii.gz", "images/pt_3.nii.gz"]
    assert [e["label"] for e in data["validation"]] == ["labels/pt_201.nii.gz"]
    assert data["labels"] == {"0": "background", **{str(i): o for o, i in LABEL.items()}}
    assert len(lines) == 3
    entries = {}
    for split, pt in PATIENTS:
        entry = next(e for e in data["training" if split == "train-pats" else "validation"] if pt in e["image"])
        assert set(entry) == {"image", "label", "contoured"}
        assert (out / entry["image"]).is_file() and (out / entry["label"]).is_file()
        expected = [o for o in OPENKBP_ORGANS if (src / split / pt / f"{OPENKBP_SOURCE_NAMES[o]}.csv").is_file()]
        assert entry["contoured"] == expected, pt
        entries[pt] = entry
    assert entries["pt_1"]["contoured"] == ["brainstem", "spinal_cord", "parotid_right", "parotid_left", "mandible"]
    assert entries["pt_201"]["contoured"] == list(OPENKBP_ORGANS)
    assert "mandible" not in entries["pt_3"]["contoured"]
    assert data["contoured_cases"] == {o: sum(o in e["contoured"] for e in entries.values()) for o in OPENKBP_ORGANS}
    # pt_3 has no Mandible.csv: no mandible voxels (nor esophagus / larynx) in its label map
    _, _, _, label = _load(out, "pt_3")
    assert OPENKBP_ORGANS.index("mandible") + 1 == LABEL["mandible"] == 5
    present = set(np.unique(label).tolist())
    assert LABEL["mandible"] not in present and present == {0, 1, 2, 3, 4}
    _, _, _, label = _load(out, "pt_201")
    assert set(np.unique(label).tolist()) == set(range(8))


# ------------------------------------------------------------------ errors


@pytest.fixture
def case(tmp_path):
    """A copy of train-pats/pt_1 in a one-patient source tree."""
    return _copy_tree(tmp_path / "src", PATIENTS[:1]) / "train-pats" / "pt_1"


def _write_ct(case, rows):
    (case / "ct.csv.gz").unlink(missing_ok=True)
    path = case / "ct.csv"
    path.write_text(",data\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_missing_ct_and_spacing(case):
    from scripts.prepare_openkbp import OpenKBPError, convert_case

    (case / "ct.csv.gz").unlink()
    with pytest.raises(OpenKBPError, match="no ct.csv or ct.csv.gz") as e:
        convert_case(case)
    assert str(case) in str(e.value)
    (case / "voxel_dimensions.csv").unlink()
    with pytest.raises(OpenKBPError, match="voxel_dimensions.csv") as e:
        convert_case(case)
    assert str(case / "voxel_dimensions.csv") in str(e.value)


@pytest.mark.parametrize(
    "bad,line,why",
    [
        ("abc,12", 4, "malformed row 'abc,12'"),
        ("5,1000,7", 4, "3 fields"),
        ("7,", 4, "malformed"),  # CT row without its value
        ("99", 4, "1 fields"),
    ],
)
def test_malformed_ct_row(case, bad, line, why):
    from scripts.prepare_openkbp import OpenKBPError, convert_case

    path = _write_ct(case, ["0,1000.0", "1,1012.5", bad, "3,900"])
    with pytest.raises(OpenKBPError) as e:
        convert_case(case)
    msg = str(e.value)
    assert msg.startswith(f"{path}, line {line}:") and why in msg, msg


@pytest.mark.parametrize("damage", ["deflate", "crc", "not_gzip"])
def test_corrupt_gzip_ct_names_the_file(case, damage):
    """A damaged ct.csv.gz is an OpenKBPError naming it (zlib.error used to escape unnamed)."""
    from scripts.prepare_openkbp import OpenKBPError, convert_case

    path = case / "ct.csv.gz"
    raw = bytearray(path.read_bytes())
    if damage == "deflate":  # inside the deflate stream: zlib.error
        raw[100:120] = bytes(20)
    elif damage == "crc":  # gzip trailer: BadGzipFile
        raw[-8:-4] = bytes(4)
    else:
        raw = bytearray(b"index,value\n0,1000\n")
    path.write_bytes(bytes(raw))
    with pytest.raises(OpenKBPError, match="cannot be read as gzip text") as e:
        convert_case(case)
    assert str(e.value).startswith(f"{path}:")


def test_malformed_organ_row_names_the_organ_file(case):
    from scripts.prepare_openkbp import OpenKBPError, convert_case

    path = case / "Mandible.csv"
    lines = path.read_text().splitlines()
    lines[5] = "12,3,4"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OpenKBPError, match="line 6") as e:
        convert_case(case)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("index", [2097152, -1])
def test_index_outside_grid(case, index):
    from scripts.prepare_openkbp import OpenKBPError, convert_case

    path = _write_ct(case, ["0,1000", f"{index},1000"])
    with pytest.raises(OpenKBPError, match="outside the 128x128x128 grid") as e:
        convert_case(case)
    assert str(path) in str(e.value) and str(index) in str(e.value)
    # the same in an organ file
    _write_ct(case, ["0,1000"])
    (case / "Brainstem.csv").write_text(f",data\n5,\n{index},\n")
    with pytest.raises(OpenKBPError, match="outside") as e:
        convert_case(case)
    assert str(case / "Brainstem.csv") in str(e.value)


def test_index_2097151_is_the_last_voxel(case):
    from scripts.prepare_openkbp import convert_case

    _write_ct(case, ["0,1040", "2097151,1500"])
    ct, label, _, summary = convert_case(case)
    assert ct[0, 0, 0] == 40 and ct[127, 127, 127] == 500 and (ct == -1000).sum() == GRID - 2
    assert summary["contoured"] == ["brainstem", "spinal_cord", "parotid_right", "parotid_left", "mandible"]


def test_unknown_organ_file(case):
    from scripts.prepare_openkbp import OpenKBPError, convert_case

    (case / "Brain.csv").write_text(",data\n5,\n")
    with pytest.raises(OpenKBPError, match="unknown organ file") as e:
        convert_case(case)
    assert str(case / "Brain.csv") in str(e.value)


def test_non_organ_files_ignored(case):
    from scripts.prepare_openkbp import convert_case

    ct0, label0, aff0, summary0 = convert_case(case)
    # OpenKBP's full provided-data has these too; garbage content proves they are not even read
    for name in ("dose.csv", "possible_dose_mask.csv", "PTV70.csv", "PTV56.csv"):
        (case / name).write_text("not,an,openkbp,organ\nxyz\n")
    ct, label, aff, summary = convert_case(case)
    assert np.array_equal(ct, ct0) and np.array_equal(label, label0) and np.array_equal(aff, aff0)
    assert summary == summary0


def test_main_exit_code_names_the_file(case, tmp_path, capsys):
    from scripts.prepare_openkbp import main

    (case / "Brain.csv").write_text(",data\n5,\n")
    with pytest.raises(SystemExit) as e:
        main(str(tmp_path / "src"), str(tmp_path / "out"), workers=1)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(case / "Brain.csv") in err, err


def test_foreign_output_folder_refused_and_untouched(case, tmp_path, capsys):
    from scripts.phantoms.io import OutputDirError
    from scripts.prepare_openkbp import main, prepare

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(OutputDirError, match="not empty"):
        prepare(tmp_path / "src", foreign, workers=1, log=None)
    with pytest.raises(SystemExit) as e:
        main(str(tmp_path / "src"), str(foreign), workers=1)
    assert e.value.code == 2 and str(foreign.resolve()) in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert (foreign / "notes.txt").read_text() == "precious"
