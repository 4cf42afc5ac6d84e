"""Tests of the synthetic spine CT demo data (scripts/phantoms/spine, scripts/demo_data.py)."""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest

from scripts.common import registry
from scripts.phantoms.io import MARKER_NAME, OutputDirError, split_counts
from scripts.phantoms.spine import anatomy as S
from scripts.phantoms.spine import (
    BUNDLE,
    LABELS,
    SHAPE_XY,
    SPACING,
    render_spine_volume,
    sample_spine_params,
    spine_affine,
    volume_seed,
    write_spine_dataset,
)
from tests.scripts.phantom_helpers import (
    assert_untouched,
    check_datalist,
    dataset_fixture,
    load_nifti,
    make_foreign_dir,
    run_demo_data,
)

NS = 10  # slices per volume in the fast tests (30 mm)
VERTEBRAL_BONE = (S.CORTICAL, S.CANCELLOUS)

dataset = dataset_fixture(
    write_spine_dataset, "spine_demo", "Three short volumes of seed 0 (thoracic, thoracolumbar and lumbar).",
    num_volumes=3, seed=0, workers=1, num_slices=NS,
)


@pytest.fixture(scope="module")
def thoracic():
    """Volume 0 of seed 0 (thoracic) rendered in-process, with the un-blurred tissue map."""
    return render_spine_volume(np.random.default_rng(volume_seed(0, 0)), NS, return_tissues=True)


@pytest.fixture(scope="module")
def low_lumbar():
    """A lumbar volume centred on L5, so that the sacrum and the iliac wings are in the field."""
    rng = np.random.default_rng(volume_seed(0, 4))
    params = dataclasses.replace(sample_spine_params(rng), kind="lumbar", centre_level=16.2, z_anchor=0.0)
    return render_spine_volume(rng, 12, return_tissues=True, params=params)


def _hu(vol, code):
    img, _, t = vol
    return img[t["tissue"] == code]


# ---------------------------------------------------------------------------------------------
# determinism, files and the CLI
# ---------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_arrays(dataset, thoracic, tmp_path):
    img, lab, _ = thoracic
    _, img_f = load_nifti(dataset / "imagesTr" / "spine_000.nii.gz")
    _, lab_f = load_nifti(dataset / "labelsTr" / "spine_000.nii.gz")
    np.testing.assert_array_equal(img_f, img)
    np.testing.assert_array_equal(lab_f, lab)
    # a second run writes the same bytes (volume i depends only on the seed and i)
    again = tmp_path / "again"
    write_spine_dataset(again, num_volumes=1, seed=0, log=None, num_slices=2)
    first = {p.name: p.read_bytes() for p in again.rglob("*.nii.gz")}
    write_spine_dataset(again, num_volumes=1, seed=0, log=None, num_slices=2)
    assert {p.name: p.read_bytes() for p in again.rglob("*.nii.gz")} == first


def test_different_seed_gives_different_volume(dataset, thoracic):
    img0, lab0, _ = thoracic
    img1, lab1 = render_spine_volume(1, 2)  # an int seed works too
    assert img1.shape == (512, 512, 2) and img1.dtype == np.int16 and lab1.dtype == np.uint8
    assert not np.array_equal(img0[:, :, :2], img1)
    assert not np.array_equal(lab0[:, :, :2], lab1)
    files = [(dataset / "imagesTr" / f"spine_{i:03d}.nii.gz").read_bytes() for i in range(3)]
    assert len(set(files)) == 3


def test_cli_writes_a_full_size_dataset(tmp_path):
    out = tmp_path / "cli"
    proc = run_demo_data(BUNDLE, out, "--num_volumes", 2)
    assert proc.returncode == 0, proc.stderr
    assert "[1/2] imagesTr/spine_000.nii.gz" in proc.stdout
    assert "[2/2] imagesTr/spine_001.nii.gz" in proc.stdout
    assert f"datalist: {out / 'datalist.json'}" in proc.stdout
    dl = json.loads((out / "datalist.json").read_text())
    assert (len(dl["training"]), len(dl["validation"]), len(dl["testing"])) == split_counts(2) == (1, 1, 0)
    for i in range(2):
        img, data = load_nifti(out / "imagesTr" / f"spine_{i:03d}.nii.gz")
        _, lab = load_nifti(out / "labelsTr" / f"spine_{i:03d}.nii.gz")
        assert data.shape == lab.shape == (512, 512, 40)
        assert data.dtype == np.int16 and lab.dtype == np.uint8
        np.testing.assert_allclose(img.affine, spine_affine(40))
        assert lab.any(axis=(0, 1)).sum() >= 30  # the spine runs through the whole field of view
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker["bundle"] == BUNDLE and marker["settings"]["num_slices"] == 40


# ---------------------------------------------------------------------------------------------
# geometry, header, datalist
# ---------------------------------------------------------------------------------------------


def test_geometry_and_header(dataset):
    aff = spine_affine(NS)
    np.testing.assert_allclose(aff[:3, :3], np.diag([-SPACING[0], -SPACING[1], SPACING[2]]))
    np.testing.assert_allclose(aff[:3, :3] @ ((np.array([512, 512, NS]) - 1) / 2) + aff[:3, 3], 0, atol=1e-9)
    for sub in ("imagesTr", "labelsTr"):
        paths = sorted((dataset / sub).glob("spine_*.nii.gz"))
        assert len(paths) == 3
        for path in paths:
            img, data = load_nifti(path)
            assert data.shape == SHAPE_XY + (NS,) == (512, 512, NS)
            assert data.dtype == (np.int16 if sub == "imagesTr" else np.uint8)
            assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
            np.testing.assert_allclose(img.header.get_zooms(), SPACING, atol=1e-6)
            np.testing.assert_allclose(img.affine, aff, atol=1e-5)
            assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
            if sub == "labelsTr":
                assert set(np.unique(data).tolist()) == {0, 1}
            else:
                assert data.min() >= -1024 and data.max() <= 3071


def test_anatomy_is_where_the_affine_says(thoracic):
    """World coordinates (RAS+): the heart is anterior and to the left of the vertebral bodies, the
    label spans the bodies in front and the posterior elements behind."""
    img, lab, t = thoracic
    aff = spine_affine(NS)

    def world(mask):
        return nib.affines.apply_affine(aff, np.argwhere(mask))

    spine = world(lab > 0)
    heart = world(t["tissue"] == S.HEART)
    assert len(heart) > 1000
    x_s, y_s = np.median(spine[:, 0]), np.median(spine[:, 1])
    assert np.median(heart[:, 0]) < x_s - 10  # patient's left is -x
    assert np.median(heart[:, 1]) > y_s + 40  # anterior is +y
    assert np.percentile(spine[:, 1], 1) < y_s - 20 < y_s + 10 < np.percentile(spine[:, 1], 99)
    # the radiological view array[:, :, k].T: the heart is on the right of the screen, above the spine
    ii, jj = np.nonzero(t["tissue"][:, :, NS // 2] == S.HEART)
    si, sj = np.nonzero(lab[:, :, NS // 2])
    assert np.median(ii) > np.median(si) and np.median(jj) < np.median(sj)


def test_datalist(dataset):
    dl = check_datalist(dataset, 3)
    assert dl["labels"] == {"0": "background", "1": "spine"} == {str(k): v for k, v in LABELS.items()}
    assert (len(dl["training"]), len(dl["validation"]), len(dl["testing"])) == (1, 1, 1)
    assert dl["spacing_mm"] == list(SPACING)


def test_refuses_foreign_non_empty_directory(tmp_path):
    foreign = make_foreign_dir(tmp_path)
    with pytest.raises(OutputDirError):
        write_spine_dataset(foreign, num_volumes=1, num_slices=1)
    assert_untouched(foreign)
    assert registry.record(BUNDLE).demo_data == "scripts.phantoms.spine:write_spine_dataset"
    assert registry.demo_generator(BUNDLE) is write_spine_dataset


# ---------------------------------------------------------------------------------------------
# intensities
# ---------------------------------------------------------------------------------------------


def test_tissue_hu_ranges(thoracic, low_lumbar):
    for vol in (thoracic, low_lumbar):
        assert np.median(_hu(vol, S.CORTICAL)) > 600
        assert 100 < np.median(_hu(vol, S.CANCELLOUS)) < 400
        disc = np.concatenate([_hu(vol, S.DISC_ANNULUS), _hu(vol, S.DISC_NUCLEUS)])
        assert disc.size > 100 and 50 < np.median(disc) < 120
        assert 20 < np.median(_hu(vol, S.MUSCLE)) < 80
        assert np.median(_hu(vol, S.FAT)) < -50 and np.median(_hu(vol, S.VISCERAL_FAT)) < -50
        assert -30 < np.median(_hu(vol, S.CSF)) < 50
        assert np.median(_hu(vol, S.AIR)) < -950
    assert np.median(_hu(thoracic, S.LUNG)) < -700
    assert _hu(low_lumbar, S.LUNG).size == 0  # no lung at L5


def test_noise_is_correlated_and_in_range(thoracic):
    img, _, t = thoracic
    tis = t["tissue"]
    # residual noise in the subcutaneous fat: high-pass the image, look at the interior of the fat
    from scipy import ndimage as ndi

    fat = ndi.binary_erosion(tis == S.FAT, np.ones((7, 7, 1), bool))
    res = img.astype(np.float32) - ndi.uniform_filter(img.astype(np.float32), (9, 9, 1))
    sd = float(res[fat].std())
    assert 5.0 < sd < 35.0, sd
    # neighbouring pixels are correlated (reconstruction kernel + correlated noise)
    a, b = res[:-1][fat[:-1] & fat[1:]], res[1:][fat[:-1] & fat[1:]]
    assert np.corrcoef(a, b)[0, 1] > 0.2


# ---------------------------------------------------------------------------------------------
# anatomy and labels
# ---------------------------------------------------------------------------------------------


def test_label_is_vertebral_bone_only(dataset, thoracic, low_lumbar):
    for img, lab, t in (thoracic, low_lumbar):
        tis = t["tissue"]
        np.testing.assert_array_equal(lab, np.isin(tis, VERTEBRAL_BONE))
        # label only within the spine: everything lies within ~8 cm of the spinal axis
        ii, jj, _ = np.nonzero(lab)
        assert np.abs(ii - np.median(ii)).max() * SPACING[0] < 80
        assert np.abs(jj - np.median(jj)).max() * SPACING[1] < 110
    for path in sorted((dataset / "labelsTr").glob("*.nii.gz")):
        _, lab = load_nifti(path)
        frac = lab.mean(axis=(0, 1))
        assert frac.max() < 0.03 and frac.mean() > 0.001, frac


def test_every_vertebral_slice_has_label_and_discs_have_little(dataset, thoracic, low_lumbar):
    for img, lab, t in (thoracic, low_lumbar):
        area = lab.sum(axis=(0, 1))
        # the sacrum (S1) is background: its slices count as neither body nor disc here
        kinds = [kind if name != "S1" else "sacrum" for kind, name in t["slices"]]
        body = np.array([area[k] for k in range(len(kinds)) if kinds[k] == "body"])
        disc = np.array([area[k] for k in range(len(kinds)) if kinds[k] == "disc"])
        assert body.size >= 4 and disc.size >= 1, t["slices"]
        assert body.min() > 600  # every slice through a vertebral body carries a large label
        # through a disc the label is small (posterior elements, a rim of an oblique endplate)
        assert np.median(disc) < 0.6 * np.median(body), (disc, body)
        assert disc.min() < 0.35 * np.median(body), (disc, body)
        # the disc is there, between the bodies
        tis = t["tissue"]
        for k in range(len(kinds)):
            if kinds[k] == "disc":
                assert np.isin(tis[:, :, k], (S.DISC_ANNULUS, S.DISC_NUCLEUS)).sum() > 300
        # the canal holds CSF (and the cord above L1/L2), never label
        canal = np.isin(tis, (S.CSF, S.CORD))
        assert canal.any(axis=(0, 1)).all() and not lab[canal].any()
        assert len(t["levels"]) >= 1
    for path in sorted((dataset / "labelsTr").glob("*.nii.gz")):
        _, lab = load_nifti(path)
        assert lab.any(axis=(0, 1)).all()  # the spine runs through every slice


def test_ribs_are_bone_but_background(thoracic):
    img, lab, t = thoracic
    tis = t["tissue"]
    rib = np.isin(tis, (S.RIB_CORTEX, S.RIB_MARROW))
    assert rib.sum() > 5000 and not lab[rib].any()
    assert np.median(img[tis == S.RIB_CORTEX]) > 400
    # ribs on both sides of every slice, some of them touching the transverse processes
    for k in range(img.shape[2]):
        ii = np.nonzero(rib[:, :, k])[0]
        assert (ii < 256).any() and (ii > 256).any()
    from scipy import ndimage as ndi

    near = ndi.binary_dilation(lab > 0, np.ones((9, 9, 3), bool))  # ~3 mm
    assert (rib & near).sum() > 50  # costovertebral / costotransverse joints
    assert np.median(img[rib & (tis == S.RIB_CORTEX)]) > np.median(img[tis == S.MUSCLE]) + 300
    # sternum and costal cartilage are background too
    other = np.isin(tis, (S.STERNUM_CORTEX, S.STERNUM_MARROW, S.COSTAL_CARTILAGE))
    assert not lab[other].any()


def test_hip_bone_and_sacrum_are_background(low_lumbar):
    img, lab, t = low_lumbar
    tis = t["tissue"]
    ilium = np.isin(tis, (S.ILIUM_CORTEX, S.ILIUM_MARROW))
    sacrum = np.isin(tis, (S.SACRUM_CORTEX, S.SACRUM_MARROW))
    assert ilium.sum() > 2000 and sacrum.sum() > 2000
    assert not lab[ilium].any() and not lab[sacrum].any()
    assert np.median(img[tis == S.ILIUM_CORTEX]) > 500  # bright like vertebral bone
    assert "L5" in t["levels"] and "S1" not in t["levels"]
    assert np.isin(t["vertebra"][sacrum], (18,)).all()
    # the iliac wings lie lateral to the spine, on both sides
    ii = np.nonzero(ilium)[0]
    xs = np.median(np.nonzero(lab)[0])
    assert (ii < xs - 60 / SPACING[0]).any() and (ii > xs + 60 / SPACING[0]).any()
    # no ribs at L5
    assert not np.isin(tis, (S.RIB_CORTEX, S.RIB_MARROW)).any()


def test_parameters_vary_between_volumes():
    kinds, levels = set(), []
    for i in range(12):
        P = sample_spine_params(np.random.default_rng(volume_seed(0, i)))
        kinds.add(P.kind)
        levels.append(P.centre_level)
    assert kinds == {"thoracic", "thoracolumbar", "lumbar"}
    assert max(levels) - min(levels) > 6
