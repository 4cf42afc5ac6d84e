"""Head-and-neck CT renderer from the real masks of shared/data/hn_oar_masks (coarse 4x4x5 mm grids)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from custom_networks.labels.head_neck import ORGANS, SOURCE_NAMES, find_organ_files, normalise_organ_name
from custom_networks.ops.components import largest_component
from tests.conftest import SHARED_DATA

MASKS = SHARED_DATA / "hn_oar_masks"
pytestmark = pytest.mark.skipif(not MASKS.is_dir(), reason=f"shared H&N masks not found at {MASKS}")
COARSE = (4.0, 4.0, 5.0)
CASE = "0522c0017"

#: Documented median-HU ranges on the coarse grid (partial volume included).
HU_RANGES = {
    "brainstem": (25, 45), "brain": (30, 45), "mandible": (300, 1500), "parotid": (0, 40),
    "eye": (0, 30), "optic_nerve": (-70, 45), "lung": (-900, -780), "outside": (-1024, -950),
}


@pytest.fixture(scope="module")
def coarse():
    from scripts.phantoms.head_neck import load_case, render_case

    cm = load_case(MASKS / CASE, COARSE)
    image, label, tissues = render_case(cm, seed=0, return_tissues=True)
    return cm, image, label, tissues


def test_normalise_names_both_styles():
    assert normalise_organ_name("Optic-Nerve-Lt.nrrd") == normalise_organ_name("optic_nerve_LT") == "optic_nerve_lt"
    assert normalise_organ_name("Orbit  Rt.nii.gz") == "orbit_rt"
    for case in ("0522c0017", "0522c0659"):  # hyphen / underscore spelling
        files = find_organ_files(MASKS / case / "segmentations")
        assert {normalise_organ_name(SOURCE_NAMES[o]) for o in ORGANS} <= set(files), case


def test_duplicate_names_rejected(tmp_path):
    (tmp_path / "Orbit-Lt.nrrd").write_bytes(b"")
    (tmp_path / "Orbit_Lt.nrrd").write_bytes(b"")
    with pytest.raises(ValueError, match="orbit_lt"):
        find_organ_files(tmp_path)


def test_largest_component():
    m = np.zeros((20, 20, 10), bool)
    m[5:12, 5:12, 2:7] = True
    m[0, 0, 0] = m[19, 19, 9] = m[15, 2, 5] = True
    out = largest_component(m)
    assert out.sum() == 7 * 7 * 5 and not out[0, 0, 0] and not out[19, 19, 9]
    assert not largest_component(np.zeros((3, 3, 3), bool)).any()


def test_stray_voxels_of_0522c0629_removed():
    from scripts.phantoms.head_neck.masks import read_mask

    raw, _ = read_mask(find_organ_files(MASKS / "0522c0629" / "segmentations")["orbit_lt"])
    ext = lambda a: [int(np.ptp(np.nonzero(a)[i])) + 1 for i in range(3)]  # noqa: E731
    assert max(ext(raw)[:2]) > 100
    assert max(ext(largest_component(raw))[:2]) < 40  # an eye globe is ~25 mm


def test_determinism(coarse):
    from scripts.phantoms.head_neck import render_case

    cm, image, label, _ = coarse
    image2, label2 = render_case(cm, seed=0)
    assert np.array_equal(image, image2) and np.array_equal(label, label2)
    assert image.dtype == np.int16 and label.dtype == np.uint8
    assert not np.array_equal(image, render_case(cm, seed=1)[0])


def test_labels_and_hu(coarse):
    from scripts.phantoms.head_neck import TISSUES

    cm, image, label, tissues = coarse
    assert sorted(np.unique(label).tolist()) == list(range(9))
    med = lambda sel: float(np.median(image[sel]))  # noqa: E731
    code = {n: i for i, n in TISSUES.items()}
    got = {
        "brainstem": med(label == 1), "brain": med(tissues == code["brain"]), "mandible": med(label == 8),
        "parotid": med((label == 6) | (label == 7)), "eye": med((label == 2) | (label == 3)),
        "optic_nerve": med((label == 4) | (label == 5)),
        "lung": med(cm.masks["lung_lt"] | cm.masks["lung_rt"]), "outside": med(tissues == code["air"]),
    }
    for name, (lo, hi) in HU_RANGES.items():
        assert lo <= got[name] <= hi, (name, got[name])
    assert abs(got["brain"] - got["brainstem"]) < 10


def test_no_organ_identifiable_by_intensity(coarse):
    from scripts.phantoms.head_neck import best_interval_dice, intensity_identifiability

    cm, image, label, _ = coarse
    scores = intensity_identifiability(image, label, cm.spacing)
    assert set(scores) == set(ORGANS)
    assert all(d < 0.5 for d, _, _ in scores.values()), scores
    # the check itself finds a separable organ: a mask painted with a unique HU
    fake = image.copy()
    fake[label == 1] = 2000
    assert best_interval_dice(fake, label == 1)[0] > 0.99


def test_geometry_round_trip(tmp_path):
    """NIfTI (RAS) written at native resolution: same world coordinates as the NRRD (LPS)."""
    from monai.transforms import LoadImage

    from scripts.phantoms.io import save_nifti
    from scripts.phantoms.head_neck import build_labels, load_case, ras_affine

    cm = load_case(MASKS / "TCGA-CV-7236")
    save_nifti(build_labels(cm), ras_affine(cm), tmp_path / "lab.nii.gz")
    load = LoadImage(reader="ITKReader", image_only=True)
    nii = load(str(tmp_path / "lab.nii.gz"))
    nrrd = load(str(find_organ_files(MASKS / "TCGA-CV-7236" / "segmentations")["brainstem"]))
    assert nii.shape == nrrd.shape
    np.testing.assert_allclose(np.asarray(nii.affine), np.asarray(nrrd.affine), atol=1e-3)
    stem = largest_component(np.asarray(nrrd) > 0)
    assert np.array_equal(np.asarray(nii) == 1, stem & ~np.isin(np.asarray(nii), [2, 3, 4, 5]))


def test_left_organs_lie_at_smaller_ras_x_than_their_right_twins(coarse):
    """RAS+: x grows towards the patient's right, so each ``*_left`` organ of the rendered label map, placed in the
    world by the case's RAS affine, lies at a smaller x than its ``*_right`` twin (and the twins at about one
    height); a label map or an affine mirrored left-right, or left and right masks swapped, fails this."""
    from scripts.phantoms.head_neck import ras_affine

    cm, _, label, _ = coarse
    affine = ras_affine(cm)
    centre = {}
    for i, organ in enumerate(ORGANS, start=1):
        voxels = np.argwhere(label == i)
        assert len(voxels), f"no {organ}"
        centre[organ] = affine[:3, :3] @ voxels.mean(0) + affine[:3, 3]
    pairs = [(o, o.replace("_left", "_right")) for o in ORGANS if o.endswith("_left")]
    assert [p[0].rsplit("_", 1)[0] for p in pairs] == ["eye", "optic_nerve", "parotid"]
    for left, right in pairs:
        gap = centre[right][0] - centre[left][0]
        assert gap > 20, f"{left} at RAS x {centre[left][0]:.0f} mm, {right} at {centre[right][0]:.0f} mm"
        assert abs(centre[right][2] - centre[left][2]) < 15, left


def test_coarse_grid_keeps_world_extent():
    from scripts.phantoms.head_neck import load_case, ras_affine

    full, coarse = load_case(MASKS / CASE), load_case(MASKS / CASE, COARSE)
    for cm in (full, coarse):  # world position of the grid's outer corner (voxel edge) is the same
        aff = ras_affine(cm)
        corner = aff @ np.r_[np.array(cm.shape) - 0.5, 1.0]
        start = aff @ np.r_[-0.5, -0.5, -0.5, 1.0]
        cm.extent = (start[:3], corner[:3])
    np.testing.assert_allclose(full.extent[0], coarse.extent[0], atol=1e-3)
    np.testing.assert_allclose(full.extent[1], coarse.extent[1], atol=1e-3)
    c_full = np.argwhere(full.masks["brainstem"]).mean(0)
    c_coarse = np.argwhere(coarse.masks["brainstem"]).mean(0)
    w = lambda cm, c: (ras_affine(cm) @ np.r_[c, 1.0])[:3]  # noqa: E731
    assert np.linalg.norm(w(full, c_full) - w(coarse, c_coarse)) < 3.0


def test_split_full_set():
    from scripts.phantoms.head_neck import list_cases
    from scripts.prepare_head_neck import FULL_SPLIT, split_cases

    cases = list_cases(MASKS)
    assert len(cases) == 24
    split = split_cases(cases)
    assert [len(split[k]) for k in ("training", "validation", "testing")] == [16, 4, 4]
    assert sorted(sum(split.values(), [])) == cases
    assert split["validation"] == FULL_SPLIT["validation"] and split["testing"] == FULL_SPLIT["testing"]
    small = split_cases(cases[:3])
    assert all(len(v) == 1 for v in small.values())


def test_prepare_cli_outputs(tmp_path):
    import nibabel as nib

    from scripts.prepare_head_neck import prepare

    src = tmp_path / "masks"
    shutil.copytree(MASKS / "TCGA-CV-7236", src / "TCGA-CV-7236")
    (src / "TCGA-CV-7236" / "segmentations" / "Parotid-Lt.nrrd").unlink()
    shutil.copytree(MASKS / "0522c0659", src / "0522c0659")
    out, lines = tmp_path / "out", []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare(src, out, voxel_size="4,4,5", seed=0, workers=1, log=lines.append)
    assert any("TCGA-CV-7236" in str(w.message) and "parotid_lt" in str(w.message) for w in caught)
    assert len(lines) == 2
    data = json.loads((out / "datalist.json").read_text())
    assert "not real ct" in data["description"].lower() and "Nikolov" in data["description"]
    entries = data["training"] + data["validation"] + data["testing"]
    assert len(entries) == 2 and len({e["image"] for e in entries}) == 2
    lab = nib.load(out / "labels" / "TCGA-CV-7236.nii.gz")
    img = nib.load(out / "images" / "TCGA-CV-7236.nii.gz")
    assert img.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8
    assert 6 not in np.unique(np.asarray(lab.dataobj)) and 7 in np.unique(np.asarray(lab.dataobj))
    assert nib.aff2axcodes(lab.affine) == ("L", "P", "S")
    before = (out / "images" / "0522c0659.nii.gz").read_bytes()
    with pytest.warns(UserWarning, match="parotid_lt"):  # own folder: rewritten, same bytes
        prepare(src, out, voxel_size="4,4,5", seed=0, workers=1, log=None)
    assert (out / "images" / "0522c0659.nii.gz").read_bytes() == before


def test_prepare_errors(tmp_path):
    from scripts.phantoms.io import OutputDirError
    from scripts.prepare_head_neck import prepare

    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no cases"):
        prepare(tmp_path / "empty", tmp_path / "out")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(OutputDirError):
        prepare(MASKS, foreign, cases="0522c0017", voxel_size=4)
    assert (foreign / "notes.txt").read_text() == "precious"
