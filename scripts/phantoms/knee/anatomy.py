"""Fixed geometry, labels and tissues of the synthetic knee MR volumes.

Array shape :data:`SHAPE` ``(160, 160, 40)``, spacing :data:`SPACING` ``(0.7, 0.7, 1.5)`` mm; axis 0
runs anterior->posterior, axis 1 superior->inferior, axis 2 left->right (:func:`knee_affine`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BUNDLE", "SHAPE", "SPACING", "LABELS", "SUPERSAMPLE", "TISSUES", "BASE_INTENSITY", "knee_affine"]

BUNDLE = "knee_eas_unet"
#: Array shape (axis 0 anterior->posterior, axis 1 superior->inferior, axis 2 left->right).
SHAPE = (160, 160, 40)
#: Voxel spacing in mm along the three array axes.
SPACING = (0.7, 0.7, 1.5)
#: Label values written to the label volumes.
LABELS = {0: "background", 1: "femoral_cartilage", 2: "tibial_cartilage"}
#: Sub-samples per slice along axis 2 used for partial-volume rendering (odd, so that the middle
#: sub-sample is the voxel centre that the label is taken from).
SUPERSAMPLE = 3

# Tissue codes of the internal (un-blurred) tissue map.
AIR, SKIN, FAT, MUSCLE, TENDON, LIGAMENT, ARTERY, VEIN, FLUID, MENISCUS = range(10)
PAT_CART, FEM_CART, TIB_CART, MARROW, CORTEX, PHYSIS = range(10, 16)
#: Tissue names by code (for ``render_knee_volume(..., return_tissues=True)``).
TISSUES = {
    AIR: "air",
    SKIN: "skin",
    FAT: "fat",
    MUSCLE: "muscle",
    TENDON: "tendon",
    LIGAMENT: "ligament",
    ARTERY: "artery",
    VEIN: "vein",
    FLUID: "fluid",
    MENISCUS: "meniscus",
    PAT_CART: "patellar_cartilage",
    FEM_CART: "femoral_cartilage",
    TIB_CART: "tibial_cartilage",
    MARROW: "marrow",
    CORTEX: "cortical_bone",
    PHYSIS: "physeal_scar",
}
#: Water-excitation DESS-like base intensities (arbitrary MR units, before gain/bias/noise).
BASE_INTENSITY = {
    AIR: 0.0,
    SKIN: 300.0,
    FAT: 85.0,
    MUSCLE: 230.0,
    TENDON: 30.0,
    LIGAMENT: 75.0,
    ARTERY: 300.0,
    VEIN: 380.0,
    FLUID: 760.0,
    MENISCUS: 35.0,
    PAT_CART: 450.0,
    FEM_CART: 440.0,
    TIB_CART: 430.0,
    MARROW: 115.0,
    CORTEX: 12.0,
    PHYSIS: 50.0,
}



def knee_affine() -> np.ndarray:
    """The fixed voxel-to-world (RAS+, mm) affine of every knee volume.

    Columns: axis 0 -> posterior (0, -0.7, 0), axis 1 -> inferior (0, 0, -0.7), axis 2 -> right
    (1.5, 0, 0); the origin puts the volume centre at world (0, 0, 0). ``aff2axcodes`` gives
    ``('P', 'I', 'R')``.
    """
    aff = np.zeros((4, 4))
    aff[1, 0] = -SPACING[0]
    aff[2, 1] = -SPACING[1]
    aff[0, 2] = SPACING[2]
    aff[3, 3] = 1.0
    centre = (np.array(SHAPE, dtype=float) - 1.0) / 2.0
    aff[:3, 3] = -aff[:3, :3] @ centre
    return aff
