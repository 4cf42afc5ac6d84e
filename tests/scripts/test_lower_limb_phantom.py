"""Tests of the synthetic lower-limb CT demo data (scripts/phantoms/lower_limb, scripts/demo_data.py)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from scripts.phantoms.io import MARKER_NAME, OutputDirError, split_counts
from scripts.phantoms.lower_limb import (
    BONE_TISSUES,
    BUNDLE,
    HU_MAX,
    HU_MIN,
    LABELS,
    NUM_SLICES,
    SHAPE_XY,
    SPACING,
    lower_limb_affine,
    render_lower_limb_volume,
    volume_seed,
    write_lower_limb_dataset,
)
from scripts.phantoms.lower_limb.anatomy import AIR, CORTEX, FAT, MARROW, MUSCLE, TRABECULAR
from tests.scripts.phantom_helpers import (
    assert_untouched,
    check_datalist,
    dataset_fixture,
    load_nifti,
    make_foreign_dir,
    run_demo_data,
)

#: Slices of the small (knee-centred) volumes that keep these tests fast.
N_SMALL = 10
#: Base seed of the CLI run; its volume 0 spans more than 80 mm above and below the knee.
CLI_SEED = 2
FEMUR, TIBIA, PATELLA, FIBULA = 1, 2, 3, 4


dataset = dataset_fixture(
    write_lower_limb_dataset, "lower_limb_demo", "Two small volumes, seed 0, rendered in two worker processes.",
    num_volumes=2, seed=0, workers=2, num_slices=N_SMALL,
)


@pytest.fixture(scope="module")
def rendered():
    """Volume 0 of the small data set, rendered in-process with its tissue maps."""
    rng = np.random.default_rng(volume_seed(0, 0))
    return render_lower_limb_volume(rng, num_slices=N_SMALL, return_tissues=True)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``python -m scripts.demo_data lower_limb_afu_unet --num_volumes 1`` (default 40 slices)."""
    out = tmp_path_factory.mktemp("lower_limb_cli") / "data"
    return out, run_demo_data(BUNDLE, out, "--num_volumes", 1, "--seed", CLI_SEED)


@pytest.fixture(scope="module")
def full():
    """Volume 0 of the CLI seed with the default 40 slices (thigh, knee, leg) and its tissue maps."""
    return render_lower_limb_volume(np.random.default_rng(volume_seed(CLI_SEED, 0)), return_tissues=True)


def _per_leg(tissues: dict, k: int):
    """Index ranges (along axis 0) of the right and the left leg in slice ``k``."""
    mid = int(round(tissues["leg_x"][:, k].mean()))
    return slice(0, mid), slice(mid, SHAPE_XY[0])


# ---------------------------------------------------------------------------------------------
# the CLI, determinism
# ---------------------------------------------------------------------------------------------


def test_cli_renders_a_full_volume_identical_to_the_renderer(cli_run, full):
    out, proc = cli_run
    assert proc.returncode == 0, proc.stderr
    assert "[1/1] imagesTr/lowerlimb_000.nii.gz" in proc.stdout
    assert f"datalist: {out / 'datalist.json'}" in proc.stdout
    img, lab = full[:2]
    _, img_f = load_nifti(out / "imagesTr" / "lowerlimb_000.nii.gz")
    _, lab_f = load_nifti(out / "labelsTr" / "lowerlimb_000.nii.gz")
    assert img_f.shape == lab_f.shape == SHAPE_XY + (NUM_SLICES,) == (512, 512, 40)
    np.testing.assert_array_equal(img_f, img)  # same bytes in another process
    np.testing.assert_array_equal(lab_f, lab)
    dl = json.loads((out / "datalist.json").read_text())
    assert (len(dl["training"]), len(dl["validation"]), len(dl["testing"])) == split_counts(1) == (1, 0, 0)
    assert dl["labels"] == {"0": "background", "1": "bone"}
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker["bundle"] == BUNDLE
    assert marker["settings"] == {"seed": CLI_SEED, "num_volumes": 1, "num_slices": 40}


def test_same_seed_gives_identical_bytes_for_any_worker_count(dataset, tmp_path):
    out = tmp_path / "again"
    write_lower_limb_dataset(out, num_volumes=1, seed=0, log=None, workers=1, num_slices=N_SMALL)
    for sub in ("imagesTr", "labelsTr"):
        name = "lowerlimb_000.nii.gz"
        assert (out / sub / name).read_bytes() == (dataset / sub / name).read_bytes()


def test_different_seed_gives_different_volume(dataset, rendered):
    img0, lab0 = rendered[:2]
    img1, lab1 = render_lower_limb_volume(1, num_slices=N_SMALL)  # an int seed works too
    assert img1.shape == img0.shape and img1.dtype == np.int16 and lab1.dtype == np.uint8
    assert not np.array_equal(img0, img1)
    assert not np.array_equal(lab0, lab1)
    a = (dataset / "imagesTr" / "lowerlimb_000.nii.gz").read_bytes()
    b = (dataset / "imagesTr" / "lowerlimb_001.nii.gz").read_bytes()
    assert a != b


def test_files_match_the_renderer(dataset, rendered):
    img, lab = rendered[:2]
    _, img_f = load_nifti(dataset / "imagesTr" / "lowerlimb_000.nii.gz")
    _, lab_f = load_nifti(dataset / "labelsTr" / "lowerlimb_000.nii.gz")
    np.testing.assert_array_equal(img_f, img)
    np.testing.assert_array_equal(lab_f, lab)


# ---------------------------------------------------------------------------------------------
# geometry, labels, datalist
# ---------------------------------------------------------------------------------------------


def test_geometry_and_header(dataset):
    aff = lower_limb_affine(N_SMALL)
    np.testing.assert_allclose(aff[:3, :3], np.diag([-0.8, -0.8, 5.0]))
    np.testing.assert_allclose(aff @ [255.5, 255.5, (N_SMALL - 1) / 2, 1.0], [0, 0, 0, 1])  # centred
    paths = sorted((dataset / "imagesTr").glob("*.nii.gz")) + sorted((dataset / "labelsTr").glob("*.nii.gz"))
    assert len(paths) == 4
    for path in paths:
        img, data = load_nifti(path)
        assert data.shape == SHAPE_XY + (N_SMALL,)
        assert data.dtype == (np.int16 if path.parent.name == "imagesTr" else np.uint8)
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        np.testing.assert_allclose(img.header.get_zooms(), SPACING, atol=1e-6)
        np.testing.assert_allclose(img.affine, aff, atol=1e-5)
        assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1


def test_label_values_and_bone_fraction(dataset):
    for path in sorted((dataset / "labelsTr").glob("*.nii.gz")):
        _, lab = load_nifti(path)
        assert set(np.unique(lab).tolist()) == {0, 1}
        frac = lab.mean(axis=(0, 1))
        assert (frac > 0).all() and (frac < 0.15).all(), frac  # bone on every slice (little at the joint line)
        assert frac.max() > 0.02  # femoral condyles / tibial plateau of two knees
        # knee level: two bones (or two condyles) per leg somewhere
        assert max(ndi.label(lab[:, :, k])[1] for k in range(N_SMALL)) >= 4


def test_datalist(dataset):
    dl = check_datalist(dataset, 2)
    assert dl["labels"] == {str(k): v for k, v in LABELS.items()} == {"0": "background", "1": "bone"}
    assert dl["spacing_mm"] == list(SPACING)
    marker = json.loads((dataset / MARKER_NAME).read_text())
    assert marker["bundle"] == BUNDLE and marker["settings"]["num_slices"] == N_SMALL


def test_refuses_foreign_directory_and_bad_arguments(tmp_path):
    foreign = make_foreign_dir(tmp_path)
    with pytest.raises(OutputDirError):
        write_lower_limb_dataset(foreign, num_volumes=1, num_slices=1)
    assert_untouched(foreign)
    for kwargs in ({"num_volumes": 0}, {"seed": -1}, {"num_slices": 0}):
        with pytest.raises(ValueError):
            write_lower_limb_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------
# HU and anatomy
# ---------------------------------------------------------------------------------------------


def test_tissue_hu(full):
    img, _, tissues = full
    t = tissues["tissue"]
    assert img.min() >= HU_MIN and img.max() <= HU_MAX
    # cortex away from its edges (partial volume lowers the thin epiphyseal shell)
    core = ndi.binary_erosion(t == CORTEX, structure=np.ones((3, 3, 1), bool))
    assert core.sum() > 1000
    assert 900 < np.median(img[core]) < 1900
    assert 600 < np.median(img[t == CORTEX]) < 1900
    assert 100 < np.median(img[t == TRABECULAR]) < 500
    assert -60 < np.median(img[t == MARROW]) < 60
    assert 20 < np.median(img[t == MUSCLE]) < 80
    assert -150 < np.median(img[t == FAT]) < -50
    assert np.median(img[t == AIR]) < -900


def test_noise_and_label_consistency(rendered):
    img, lab, tissues = rendered
    t = tissues["tissue"]
    # noise: air far from everything, inside the reconstruction circle
    r = np.hypot(*np.meshgrid(np.arange(512) - 255.5, np.arange(512) - 255.5, indexing="ij")) * SPACING[0]
    far = ndi.binary_erosion(t == AIR, structure=np.ones((15, 15, 1), bool)) & (r < 190)[:, :, None]
    assert far.sum() > 10000
    assert 7 < img[far].std() < 30
    # the label is the bone tissue (majority of the sub-slices vs. the central sub-slice)
    bone_t = np.isin(t, BONE_TISSUES)
    dice = 2 * (bone_t & (lab > 0)).sum() / (bone_t.sum() + (lab > 0).sum())
    assert dice > 0.9
    np.testing.assert_array_equal(tissues["bone_id"] > 0, bone_t)
    assert set(np.unique(tissues["leg"]).tolist()) == {0, 1, 2}


def test_anatomy_along_the_limb(full):
    _, lab, tissues = full
    z_rel, bid, t = tissues["z_rel"], tissues["bone_id"], tissues["tissue"]
    assert z_rel.shape == (2, NUM_SLICES)
    assert z_rel.min() < -60 and z_rel.max() > 60  # distal thigh through proximal leg
    frac = lab.mean(axis=(0, 1))
    assert (frac > 0).all() and (frac < 0.15).all() and np.median(frac) > 0.005
    seen = {"leg": 0, "thigh": 0, "patella": 0}
    for k in range(NUM_SLICES):
        for side, sl in enumerate(_per_leg(tissues, k)):
            z = z_rel[side, k]
            n_comp = ndi.label(lab[sl, :, k])[1]
            ids = set(np.unique(bid[sl, :, k]).tolist()) - {0}
            if z < -25:  # leg: tibia and fibula
                assert n_comp == 2 and ids == {TIBIA, FIBULA}, (k, side, z, n_comp, ids)
                seen["leg"] += 1
            elif z > 80:  # thigh: femoral shaft
                assert n_comp == 1 and ids == {FEMUR}, (k, side, z, n_comp, ids)
                assert (t[sl, :, k] == MARROW).sum() > 50  # marrow cavity
                seen["thigh"] += 1
            elif 30 <= z <= 40:  # patella in front of the distal femur
                assert n_comp == 2 and ids == {FEMUR, PATELLA}, (k, side, z, n_comp, ids)
                seen["patella"] += 1
    assert min(seen.values()) >= 2, seen
    # orientation (LPS arrays): patella anterior to the femur, fibula posterolateral to the tibia,
    # the right leg at low indices along axis 0
    legs = tissues["leg"]
    assert np.nonzero(legs == 1)[0].mean() < np.nonzero(legs == 2)[0].mean()
    for side, leg_id in ((0, 1), (1, 2)):
        mine = legs == leg_id
        pat = np.nonzero((bid == PATELLA) & mine)
        fem = np.nonzero((bid == FEMUR) & mine & np.isin(np.arange(NUM_SLICES), np.unique(pat[2])))
        assert pat[1].mean() < fem[1].mean() - 20  # smaller j = anterior
        ks = np.nonzero(z_rel[side] < -40)[0]
        fib = np.nonzero((bid[:, :, ks] == FIBULA) & mine[:, :, ks])
        tib = np.nonzero((bid[:, :, ks] == TIBIA) & mine[:, :, ks])
        assert fib[1].mean() > tib[1].mean() + 10  # posterior
        lateral = fib[0].mean() - tib[0].mean()
        assert (lateral < -15) if side == 0 else (lateral > 15)  # right leg: lateral = low i


def test_cortex_thick_in_shafts_thin_at_the_ends(full):
    _, _, tissues = full
    t, bid, z_rel = tissues["tissue"], tissues["bone_id"], tissues["z_rel"].mean(axis=0)

    def thickness(ks, bone):
        out = []
        for k in ks:
            c = (t[:, :, k] == CORTEX) & (bid[:, :, k] == bone)
            if c.sum() > 20:
                out.append(2 * np.percentile(ndi.distance_transform_edt(c, sampling=SPACING[:2])[c], 90))
        return np.array(out)

    shafts = np.concatenate(
        [thickness(np.nonzero(z_rel > 90)[0], FEMUR), thickness(np.nonzero(z_rel < -80)[0], TIBIA)]
    )
    ends = thickness(np.nonzero((z_rel > 8) & (z_rel < 30))[0], FEMUR)
    assert shafts.size >= 3 and ends.size >= 2
    assert 3.5 <= shafts.min() and shafts.max() <= 8.0, shafts
    assert np.median(ends) <= 3.3, ends
