"""STL surfaces of label maps (paper 000's 3D reconstruction)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from monai.data import MetaTensor

from custom_networks.writers.surface_mesh import SaveSurfaceMeshd, label_surface_mesh, save_surface_mesh


def _ball(shape=(40, 50, 30), center=(20, 25, 15), radius_vox=(10, 10, 5)):
    grid = np.indices(shape).astype(float)
    r = sum(((g - c) / rv) ** 2 for g, c, rv in zip(grid, center, radius_vox))
    return r <= 1.0


# an ellipsoid of radii 10 x 10 x 5 voxels at spacing 0.8 x 0.8 x 1.6 mm is a sphere of radius 8 mm
MIRRORED = np.array([[-0.8, 0, 0, 100.0], [0, -0.8, 0, 50.0], [0, 0, 1.6, -20.0], [0, 0, 0, 1]])
PLAIN = np.array([[0.8, 0, 0, -10.0], [0, 0.8, 0, 5.0], [0, 0, 1.6, 7.0], [0, 0, 0, 1]])


@pytest.mark.parametrize("affine", [MIRRORED, PLAIN], ids=["lps_like", "ras"])
def test_ball_becomes_a_closed_outward_sphere_in_lps_mm(affine, tmp_path):
    n = save_surface_mesh(_ball(), affine, tmp_path / "ball.stl")
    mesh = trimesh.load(tmp_path / "ball.stl")
    assert n == len(mesh.faces) > 500
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 8**3, rel=0.08)  # positive: normals point outwards
    center_ras = affine @ np.array([20, 25, 15, 1.0])
    np.testing.assert_allclose(mesh.centroid, center_ras[:3] * [-1, -1, 1], atol=0.3)


def test_small_components_are_dropped_only_when_asked():
    mask = _ball()
    mask[0:2, 0:2, 0:2] = True  # an 8-voxel speck
    _, all_faces = label_surface_mesh(mask, PLAIN)
    _, big_faces = label_surface_mesh(mask, PLAIN, min_component_voxels=100)
    _, ball_faces = label_surface_mesh(_ball(), PLAIN)
    assert len(big_faces) == len(ball_faces) < len(all_faces)


def test_empty_label_gives_an_empty_valid_stl(tmp_path):
    assert save_surface_mesh(np.zeros((8, 8, 8), bool), PLAIN, tmp_path / "none.stl") == 0
    assert (tmp_path / "none.stl").stat().st_size == 84  # binary STL header + zero-triangle count


def test_transform_names_the_mesh_after_the_input_and_can_be_disabled(tmp_path):
    pred = MetaTensor(torch.as_tensor(_ball()[None].astype(np.float32)), affine=torch.as_tensor(MIRRORED),
                      meta={"filename_or_obj": "/data/patient_7/ct.nii.gz"})
    SaveSurfaceMeshd("pred", tmp_path / "off", enabled=False)({"pred": pred})
    assert not (tmp_path / "off").exists()
    SaveSurfaceMeshd("pred", tmp_path, print_log=False)({"pred": pred})
    assert (tmp_path / "ct_seg.stl").is_file()
    series = MetaTensor(pred.as_tensor(), affine=pred.affine, meta={"filename_or_obj": "/data/patient_7/series_3/"})
    SaveSurfaceMeshd("pred", tmp_path, print_log=False)({"pred": series})
    assert (tmp_path / "series_3_seg.stl").is_file()
    with pytest.raises(ValueError, match=r"\(1, X, Y, Z\)"):
        SaveSurfaceMeshd("pred", tmp_path)({"pred": MetaTensor(torch.zeros(2, 4, 4, 4))})
