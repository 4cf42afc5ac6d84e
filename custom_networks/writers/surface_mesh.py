"""Surface meshes (STL) of a predicted label map, for the 3D bone reconstruction of paper 000.

Paper 000 (AFU-Net, Liu et al. 2022, §2.4, Fig. 6) stacks the segmented slices and reconstructs the bone in 3D
with VTK. Here the label map written by ``inference.json`` is turned into a closed triangle surface with
scikit-image's marching cubes and written as binary STL with trimesh, in millimetres and in the LPS
(DICOM patient) frame that 3D Slicer, ITK-SNAP and most planning software assume for STL files.
Optionally only connected components of at least ``min_component_voxels`` voxels are kept, for the
mesh only ([D]: the label map and the metrics keep everything).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from monai.config import KeysCollection
from scipy import ndimage as ndi

from .base import LabelMapWriterd, write_atomically

__all__ = ["SaveSurfaceMeshd", "label_surface_mesh", "save_surface_mesh"]

#: RAS (MONAI/NIfTI world) -> LPS (DICOM patient, STL convention of 3D Slicer).
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def label_surface_mesh(
    mask: np.ndarray, affine: np.ndarray, min_component_voxels: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface of the boolean 3D ``mask`` in world millimetres.

    Args:
        mask: ``(X, Y, Z)`` boolean (or 0/1) array.
        affine: 4x4 voxel-to-world matrix of ``mask`` in RAS (a MONAI MetaTensor's ``affine``).
        min_component_voxels: drop 26-connected components smaller than this many voxels first.

    Returns:
        ``(vertices, faces)``: ``(V, 3)`` float32 LPS coordinates in mm and ``(F, 3)`` int64 vertex
        indices, faces wound so that normals point out of the object. Both are empty when nothing is left.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"a surface mesh needs a 3D label map, got shape {mask.shape}.")
    if min_component_voxels > 0 and mask.any():
        components, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
        sizes = np.bincount(components.ravel(), minlength=n + 1)
        keep = sizes >= min_component_voxels
        keep[0] = False
        mask = keep[components]
    if not mask.any():
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    from skimage.measure import marching_cubes

    # one voxel of background on every side closes surfaces that touch the volume's border
    verts, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), level=0.5)
    verts = verts - 1.0
    affine = np.asarray(affine, dtype=np.float64)
    world = verts @ affine[:3, :3].T + affine[:3, 3]
    world = world @ RAS_TO_LPS.T
    # marching_cubes winds faces for index space; a mirroring affine (negative determinant) turns them
    # inside out, RAS -> LPS does not (determinant +1)
    if np.linalg.det(affine[:3, :3]) > 0:
        faces = faces[:, ::-1]
    return world.astype(np.float32), np.ascontiguousarray(faces, dtype=np.int64)


def save_surface_mesh(
    mask: np.ndarray, affine: np.ndarray, path: str | os.PathLike, min_component_voxels: int = 0
) -> int:
    """Write the surface of ``mask`` (see :func:`label_surface_mesh`) as a binary STL at ``path``.

    The file is written to a temporary file and renamed, so an interrupted run never leaves a truncated
    STL. Returns the number of triangles (0 writes an empty but valid STL).
    """
    import trimesh

    verts, faces = label_surface_mesh(mask, affine, min_component_voxels)
    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    data = trimesh.exchange.stl.export_stl(mesh)
    write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
    return len(faces)


class SaveSurfaceMeshd(LabelMapWriterd):
    """Write an STL surface of each label map next to the saved label map (``inference.json``).

    Paper 000 §2.4, Fig. 6 (3D reconstruction of the segmented bone). Put it after ``SaveImaged`` in the
    postprocessing, on the inverted, discrete prediction ``(1, X, Y, Z)`` (values > 0 are the object);
    the mesh uses the MetaTensor's affine (the input's geometry after ``Invertd``), so it lines up with
    the CT in millimetres. The file is ``<output_dir>/<input name>_<output_postfix>.stl``, the input name
    being the image file name without extension or the DICOM series folder name, as ``SaveImaged``
    names its output (checks, name and atomic write: :class:`~custom_networks.writers.base.LabelMapWriterd`).
    ``enabled=False`` makes the transform a no-op (the configs' ``save_mesh``).

    Args:
        keys: label-map keys (``"pred"``).
        output_dir: folder of the STL files (created when missing).
        output_postfix: suffix after the input's name (``"seg"``, as the label map).
        min_component_voxels: keep only 26-connected components of at least this size in the mesh.
        enabled: write meshes at all.
        print_log: log the path and triangle count of each mesh.
    """

    suffix = ".stl"
    what = "surface mesh"
    flag = "save_mesh"

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        output_postfix: str = "seg",
        min_component_voxels: int = 0,
        enabled: bool = True,
        print_log: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, output_dir, output_postfix, enabled, print_log, allow_missing_keys)
        self.min_component_voxels = int(min_component_voxels)

    def write(self, label: np.ndarray, affine: np.ndarray, source: str, path: str) -> str:
        return f"{save_surface_mesh(label > 0, affine, path, self.min_component_voxels)} triangles"
