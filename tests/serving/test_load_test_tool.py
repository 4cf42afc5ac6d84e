"""``python -m scripts.serve load_test`` without a server: the crops it sends, its argument errors, a dead server.

The real burst against a MONAI Label server is in test_server_under_load.py.
"""

from __future__ import annotations

import subprocess

import nibabel as nib
import numpy as np
import pytest

from scripts.serving import load_test as lt
from tests.conftest import PYTHON, REPO, subprocess_env
from tests.serving.helpers import free_port


@pytest.fixture
def volume(tmp_path):
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-10.0, 5.0, 20.0]
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(60 * 50 * 8, dtype=np.int16).reshape(60, 50, 8), affine), str(path))
    return path


def test_every_crop_has_its_own_shape_and_origin_and_the_source_voxels(volume, tmp_path):
    paths = lt.crop_variants(volume, 6, tmp_path / "crops", "v", crop=(20, 16, 4))
    src = nib.load(volume)
    seen = set()
    for i, p in enumerate(paths):
        img = nib.load(p)
        assert img.shape == (20 + i, 16 + i, 4)
        assert np.allclose(img.affine[:3, 3], src.affine[:3, :3] @ [0, i, 0] + src.affine[:3, 3])
        np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(src.dataobj)[:20 + i, i:16 + 2 * i, :4])
        seen.add((img.shape, tuple(img.affine.ravel())))
    assert len(seen) == 6


def test_upload_jobs_take_the_inputs_in_turn(volume, tmp_path):
    jobs = lt.upload_jobs([("a", volume), ("b", volume)], 5, tmp_path / "jobs", crop=(8, 8, 2))
    assert [j.bundle for j in jobs] == ["a", "b", "a", "b", "a"]
    assert len({j.path for j in jobs}) == 5 and all(j.image_id is None for j in jobs)


@pytest.mark.parametrize("inputs, message", [(None, "pass --inputs"), ("knee_eas_unet", "is not bundle=volume"),
                                             ("knee_eas_unet=/no/such.nii.gz", "no file")])
def test_bad_inputs_are_explained(inputs, message):
    with pytest.raises(ValueError, match=message):
        lt.parse_inputs(inputs)


def test_check_label_map_refuses_another_requests_geometry(volume, tmp_path):
    a, b = lt.crop_variants(volume, 2, tmp_path / "crops", "v", crop=(10, 10, 2))
    lt.check_label_map(a.read_bytes(), a)
    with pytest.raises(ValueError, match="another request"):
        lt.check_label_map(b.read_bytes(), a)
    with pytest.raises(ValueError, match="not a readable image"):
        lt.check_label_map(b"Internal Server Error", a)


def test_a_dead_server_gives_failures_and_exit_status_1(volume):
    out = subprocess.run([PYTHON, "-m", "scripts.serve", "load_test", "--url", f"http://127.0.0.1:{free_port()}",
                          "--inputs", f"knee_eas_unet={volume}", "--requests", "3", "--workers", "3", "--timeout", "5",
                          "--malformed", "false"], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "failures     3" in out.stdout and "Connection refused" in out.stdout, out.stdout
    assert "malformed" not in out.stdout and "afterwards" not in out.stdout, out.stdout
