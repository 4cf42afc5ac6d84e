"""Tests of the code the phantom renderers share (scripts/phantoms/io.py, scripts/phantoms/shapes.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from monai.data import create_test_image_3d

from scripts.phantoms.io import MARKER_NAME, volume_seed_sequence, write_dataset
from scripts.phantoms.shapes import as_rng, capsule, ellipsoid, smax, smin, sstep
from tests.scripts.phantom_helpers import check_datalist, load_nifti

AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])


def _render_tiny(seed: int, index: int, depth: int) -> tuple:
    """A volume with a foreground: a few labelled spheres in noise (MONAI's ``create_test_image_3d``)."""
    state = np.random.RandomState(volume_seed_sequence(seed, index, 99).generate_state(1))
    img, seg = create_test_image_3d(10, 10, 10 * depth, num_objs=3, rad_max=4, rad_min=2, noise_max=0.2,
                                    num_seg_classes=1, random_state=state)
    return img.astype(np.float32), (seg > 0).astype(np.uint8), AFFINE, f"depth {depth}"


def _write(out, **kwargs):
    args = dict(
        file_prefix="tiny",
        name="tiny_set",
        description="synthetic tiny volumes (not real data). seed={seed}, {num_volumes} x {depth}, split {split}.",
        labels={0: "background", 1: "positive"},
        modality="none (synthetic)",
        spacing=(2.0, 2.0, 3.0),
        orientation="RAS",
        options={"depth": 2},
    )
    args.update(kwargs)
    lines = []
    return write_dataset(out, "tiny_bundle", _render_tiny, 3, 4, lines.append, 1, **args), lines


def test_write_dataset_layout_datalist_marker_and_log(tmp_path):
    datalist, lines = _write(tmp_path / "out")
    out = datalist.parent
    dl = check_datalist(out, 3)
    assert dl["description"] == "synthetic tiny volumes (not real data). seed=4, 3 x 2, split 1/1/1."
    assert dl["labels"] == {"0": "background", "1": "positive"}
    assert dl["modality"] == {"0": "none (synthetic)"} and dl["spacing_mm"] == [2.0, 2.0, 3.0]
    assert list(dl)[:6] == ["name", "description", "tensorImageSize", "modality", "spacing_mm", "orientation"]
    assert [item["image"] for item in dl["training"] + dl["validation"] + dl["testing"]] == [
        f"imagesTr/tiny_{i:03d}.nii.gz" for i in range(3)
    ]
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker["bundle"] == "tiny_bundle" and marker["settings"] == {"seed": 4, "num_volumes": 3, "depth": 2}
    assert len(lines) == 3 and lines[0].startswith("[1/3] imagesTr/tiny_000.nii.gz: depth 2 (")
    img, data = load_nifti(out / "imagesTr" / "tiny_001.nii.gz")
    np.testing.assert_array_equal(data, _render_tiny(4, 1, 2)[0])
    np.testing.assert_allclose(img.affine, AFFINE)


def test_write_dataset_checks_arguments_before_touching_the_directory(tmp_path):
    with pytest.raises(ValueError, match="depth must be >= 1"):
        _write(tmp_path / "x", options={"depth": 0})
    with pytest.raises(ValueError, match="num_volumes"):
        write_dataset(tmp_path / "x", "b", _render_tiny, 0, 0, None, 1, file_prefix="t", name="n",
                      description="", labels={}, modality="", spacing=(1, 1, 1), orientation="")
    assert not (tmp_path / "x").exists()


def test_volume_seed_sequence_depends_on_seed_index_and_salt():
    keys = [(s, i, salt) for s in (0, 1) for i in (0, 1) for salt in (3, 5)]
    assert len({tuple(volume_seed_sequence(*k).generate_state(2)) for k in keys}) == len(keys)
    assert volume_seed_sequence(2, 3, 5).entropy == [2, 3, 5]


def test_smooth_min_max_and_step():
    a, b = np.array([0.0, 1.0, 5.0]), np.array([1.0, 1.0, -5.0])
    assert (smin(a, b, 0.5) <= np.minimum(a, b)).all()
    assert (smax(a, b, 0.5) >= np.maximum(a, b)).all()
    np.testing.assert_allclose(smin(a, b, 0.5)[2], -5.0)  # far apart: the plain minimum
    np.testing.assert_allclose(sstep(0.0, 2.0, np.array([-1.0, 1.0, 3.0])), [0.0, 0.5, 1.0])
    rng = np.random.default_rng(0)
    assert as_rng(rng) is rng
    assert as_rng(7).integers(1000) == np.random.default_rng(7).integers(1000)


def test_fields_are_distances_and_keep_or_promote_the_dtype():
    x = np.array([0.0, 3.0, 10.0], np.float32)
    zero = np.zeros_like(x)
    # ellipsoid: negative inside, zero on the surface, roughly the distance outside
    e = ellipsoid(x, zero, zero, (0.0, 0.0, 0.0), (3.0, 2.0, 2.0))
    assert e[0] < 0 and abs(e[1]) < 1e-6 and e[2] > 0
    c = capsule(x, zero, zero, (0.0, -5.0, 0.0), (0.0, 5.0, 0.0), 1.0)
    np.testing.assert_allclose(c, [-1.0, 2.0, 9.0], atol=1e-6)
    # Python-float parameters keep float32; NumPy float64 ones promote only with promote=True
    c64 = (np.float64(0.0), 0.0, 0.0)
    assert e.dtype == c.dtype == np.float32
    assert ellipsoid(x, zero, zero, c64, (3.0, 2.0, 2.0)).dtype == np.float32
    assert ellipsoid(x, zero, zero, c64, (3.0, 2.0, 2.0), promote=True).dtype == np.float64
    assert capsule(x, zero, zero, (0.0, -5.0, 0.0), (0.0, 5.0, 0.0), 1.0, promote=True).dtype == np.float64
    # xscale compresses x
    np.testing.assert_allclose(capsule(x, zero, zero, (0.0, -5.0, 0.0), (0.0, 5.0, 0.0), 1.0, xscale=2.0),
                               [-1.0, 0.5, 4.0], atol=1e-6)
