"""Fixed geometry, labels, tissues and HU of the synthetic lower-limb CT volumes.

Array shape ``(512, 512, num_slices)``, spacing :data:`SPACING` ``(0.8, 0.8, 5.0)`` mm; axis 0 runs
right->left, axis 1 anterior->posterior, axis 2 inferior->superior (:func:`lower_limb_affine`). Every
5 mm slice is rendered as :data:`SUBSLICES` sub-slices 1 mm apart (:data:`SUB_OFFSETS`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BUNDLE",
    "SHAPE_XY",
    "NUM_SLICES",
    "SPACING",
    "LABELS",
    "SUBSLICES",
    "TISSUES",
    "TISSUE_HU",
    "BONE_TISSUES",
    "BONES",
    "HU_AIR",
    "HU_FAT",
    "HU_SKIN",
    "HU_MUSCLE",
    "HU_TENDON",
    "HU_VESSEL",
    "HU_JOINT",
    "HU_MARROW",
    "HU_TRABECULAR",
    "HU_CORTEX",
    "HU_MIN",
    "HU_MAX",
    "F32",
    "SUB_DZ",
    "SUB_OFFSETS",
    "MID",
    "BIG",
    "X_MM",
    "Y_MM",
    "lower_limb_affine",
]

BUNDLE = "lower_limb_afu_unet"
#: In-plane array shape (axis 0 right->left, axis 1 anterior->posterior).
SHAPE_XY = (512, 512)
#: Default number of axial slices (5 mm each: 200 mm from the distal thigh to the proximal leg).
NUM_SLICES = 40
#: Voxel spacing in mm along the three array axes.
SPACING = (0.8, 0.8, 5.0)
#: Label values written to the label volumes.
LABELS = {0: "background", 1: "bone"}
#: Sub-slices per slice (1 mm apart) averaged for partial volume; the label is their majority.
SUBSLICES = 5

# Tissue codes of the internal (un-blurred) tissue map.
AIR, PAD, TABLE_CORE, TABLE_SHELL, SKIN, FAT, MUSCLE, TENDON, VESSEL, JOINT = range(10)
MARROW, TRABECULAR, CORTEX = range(10, 13)
#: Tissue names by code (for ``render_lower_limb_volume(..., return_tissues=True)``).
TISSUES = {
    AIR: "air",
    PAD: "table_pad",
    TABLE_CORE: "table_core",
    TABLE_SHELL: "table_shell",
    SKIN: "skin",
    FAT: "fat",
    MUSCLE: "muscle",
    TENDON: "tendon",
    VESSEL: "vessel",
    JOINT: "joint_soft_tissue",
    MARROW: "marrow",
    TRABECULAR: "trabecular_bone",
    CORTEX: "cortical_bone",
}
#: Tissue codes that make up the bone label.
BONE_TISSUES = (MARROW, TRABECULAR, CORTEX)
#: Bone ids of the ``bone_id`` map returned with the tissues.
BONES = {1: "femur", 2: "tibia", 3: "patella", 4: "fibula"}

HU_AIR = -1000.0
HU_FAT = -100.0
HU_SKIN = 25.0
HU_MUSCLE = 50.0
HU_TENDON = 88.0
HU_VESSEL = 42.0
HU_JOINT = 55.0
HU_MARROW = -10.0
HU_TRABECULAR = 250.0
HU_CORTEX = 1600.0
#: Range of the stored HU (int16).
HU_MIN, HU_MAX = -1024, 3071
#: Nominal HU by tissue code and the half-width of its uniform per-volume jitter.
TISSUE_HU = {
    AIR: (HU_AIR, 0.0),
    PAD: (-840.0, 50.0),
    TABLE_CORE: (-930.0, 40.0),
    TABLE_SHELL: (260.0, 90.0),
    SKIN: (HU_SKIN, 15.0),
    FAT: (HU_FAT, 15.0),
    MUSCLE: (HU_MUSCLE, 8.0),
    TENDON: (HU_TENDON, 12.0),
    VESSEL: (HU_VESSEL, 8.0),
    JOINT: (HU_JOINT, 12.0),
    MARROW: (HU_MARROW, 30.0),
    TRABECULAR: (HU_TRABECULAR, 45.0),
    CORTEX: (HU_CORTEX, 200.0),
}

F32 = np.float32
#: Sub-slice spacing (mm), offsets of the sub-slices from the slice centre, index of the central one.
SUB_DZ = SPACING[2] / SUBSLICES
SUB_OFFSETS = (np.arange(SUBSLICES) - (SUBSLICES - 1) / 2.0) * SUB_DZ
MID = SUBSLICES // 2
#: A distance (mm) that stands for "far from everything".
BIG = F32(1e3)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def lower_limb_affine(num_slices: int = NUM_SLICES) -> np.ndarray:
    """The voxel-to-world (RAS+, mm) affine of every lower-limb volume with ``num_slices`` slices.

    Columns: axis 0 -> left ``(-0.8, 0, 0)``, axis 1 -> posterior ``(0, -0.8, 0)``, axis 2 ->
    superior ``(0, 0, 5)``; the origin puts the volume centre at world (0, 0, 0).
    ``aff2axcodes`` gives ``('L', 'P', 'S')``.
    """
    aff = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    centre = (np.array([SHAPE_XY[0], SHAPE_XY[1], int(num_slices)], dtype=float) - 1.0) / 2.0
    aff[:3, 3] = -aff[:3, :3] @ centre
    return aff



def _pixel_mm():
    """Scanner coordinates (mm) of the pixel centres: X (patient left +) per i, Y (posterior +) per j."""
    X = ((np.arange(SHAPE_XY[0]) - (SHAPE_XY[0] - 1) / 2.0) * SPACING[0]).astype(F32)
    Y = ((np.arange(SHAPE_XY[1]) - (SHAPE_XY[1] - 1) / 2.0) * SPACING[1]).astype(F32)
    return X, Y


#: Scanner X (patient left +) of every index along axis 0 and Y (posterior +) along axis 1, mm.
X_MM, Y_MM = _pixel_mm()


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------
