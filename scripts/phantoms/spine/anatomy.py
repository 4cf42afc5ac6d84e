"""Fixed geometry, labels, tissues and HU of the synthetic spine CT volumes.

Array shape ``(512, 512, num_slices)``, spacing :data:`SPACING` ``(0.8, 0.8, 3.0)`` mm, stored in LPS
order (:func:`spine_affine`); every slice is rendered as :data:`SUPERSAMPLE` sub-slices.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BUNDLE",
    "SHAPE_XY",
    "NUM_SLICES",
    "SPACING",
    "LABELS",
    "LEVEL_NAMES",
    "TISSUES",
    "TISSUE_HU",
    "SUPERSAMPLE",
    "BONE_MARROW",
    "BONE_CORTEX",
    "OTHER_BONE",
    "FINE_TEXTURE_HU",
    "COARSE_TEXTURE_HU",
    "HU_AIR",
    "HU_LUNG",
    "HU_FAT",
    "HU_MUSCLE",
    "HU_BLOOD",
    "HU_CSF",
    "HU_CORD",
    "HU_DISC",
    "HU_CANCELLOUS",
    "HU_CORTICAL",
    "HU_LIVER",
    "spine_affine",
]

BUNDLE = "spine_msr_attention_unet"
#: In-plane array shape (axis 0 left->right, axis 1 posterior->anterior).
SHAPE_XY = (512, 512)
#: Default number of axial slices (axis 2, inferior->superior).
NUM_SLICES = 40
#: Voxel spacing in mm along the three array axes.
SPACING = (0.8, 0.8, 3.0)
#: Label values written to the label volumes.
LABELS = {0: "background", 1: "spine"}
#: Sub-slices per slice used for partial-volume rendering along z (odd: the middle sub-slice is the
#: voxel centre that the label and the tissue map are taken from).
SUPERSAMPLE = 3
#: Vertebra names by level index (0 = T1 ... 16 = L5, 17 = S1, the top of the sacrum).
LEVEL_NAMES = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"])

# ---- tissue codes of the internal (un-blurred) tissue map ----
AIR, TABLE, TABLE_FOAM, SKIN, FAT, VISCERAL_FAT, MUSCLE, LUNG, AIRWAY, BLOOD = range(10)
HEART, LIVER, SPLEEN, KIDNEY, BOWEL, BOWEL_CONTENT, GAS, FECES, CSF, CORD = range(10, 20)
DISC_ANNULUS, DISC_NUCLEUS, CANCELLOUS, CORTICAL, RIB_MARROW, RIB_CORTEX = range(20, 26)
COSTAL_CARTILAGE, STERNUM_MARROW, STERNUM_CORTEX, SACRUM_MARROW, SACRUM_CORTEX = range(26, 31)
ILIUM_MARROW, ILIUM_CORTEX, CALCIFICATION = range(31, 34)

#: Tissue names by code (for ``render_spine_volume(..., return_tissues=True)``).
TISSUES = {
    AIR: "air",
    TABLE: "table_shell",
    TABLE_FOAM: "table_foam",
    SKIN: "skin",
    FAT: "subcutaneous_fat",
    VISCERAL_FAT: "visceral_fat",
    MUSCLE: "muscle",
    LUNG: "lung",
    AIRWAY: "airway_air",
    BLOOD: "blood",
    HEART: "heart",
    LIVER: "liver",
    SPLEEN: "spleen",
    KIDNEY: "kidney",
    BOWEL: "bowel",
    BOWEL_CONTENT: "bowel_fluid",
    GAS: "bowel_gas",
    FECES: "feces",
    CSF: "csf",
    CORD: "spinal_cord",
    DISC_ANNULUS: "disc_annulus",
    DISC_NUCLEUS: "disc_nucleus",
    CANCELLOUS: "vertebral_cancellous_bone",
    CORTICAL: "vertebral_cortical_bone",
    RIB_MARROW: "rib_marrow",
    RIB_CORTEX: "rib_cortex",
    COSTAL_CARTILAGE: "costal_cartilage",
    STERNUM_MARROW: "sternum_marrow",
    STERNUM_CORTEX: "sternum_cortex",
    SACRUM_MARROW: "sacrum_marrow",
    SACRUM_CORTEX: "sacrum_cortex",
    ILIUM_MARROW: "ilium_marrow",
    ILIUM_CORTEX: "ilium_cortex",
    CALCIFICATION: "calcification",
}
#: Mean HU of each tissue before the per-volume jitter (bone values scale with the bone density).
TISSUE_HU = {
    AIR: -1000.0,
    TABLE: 150.0,
    TABLE_FOAM: -930.0,
    SKIN: 25.0,
    FAT: -105.0,
    VISCERAL_FAT: -95.0,
    MUSCLE: 50.0,
    LUNG: -855.0,
    AIRWAY: -990.0,
    BLOOD: 40.0,
    HEART: 45.0,
    LIVER: 58.0,
    SPLEEN: 48.0,
    KIDNEY: 32.0,
    BOWEL: 36.0,
    BOWEL_CONTENT: 15.0,
    GAS: -950.0,
    FECES: -60.0,
    CSF: 10.0,
    CORD: 34.0,
    DISC_ANNULUS: 95.0,
    DISC_NUCLEUS: 78.0,
    CANCELLOUS: 230.0,
    CORTICAL: 1250.0,
    RIB_MARROW: 220.0,
    RIB_CORTEX: 1000.0,
    COSTAL_CARTILAGE: 120.0,
    STERNUM_MARROW: 210.0,
    STERNUM_CORTEX: 900.0,
    SACRUM_MARROW: 230.0,
    SACRUM_CORTEX: 1050.0,
    ILIUM_MARROW: 210.0,
    ILIUM_CORTEX: 1100.0,
    CALCIFICATION: 600.0,
}
# Convenience HU constants (means before jitter).
HU_AIR = TISSUE_HU[AIR]
HU_LUNG = TISSUE_HU[LUNG]
HU_FAT = TISSUE_HU[FAT]
HU_MUSCLE = TISSUE_HU[MUSCLE]
HU_BLOOD = TISSUE_HU[BLOOD]
HU_CSF = TISSUE_HU[CSF]
HU_CORD = TISSUE_HU[CORD]
HU_DISC = TISSUE_HU[DISC_ANNULUS]
HU_CANCELLOUS = TISSUE_HU[CANCELLOUS]
HU_CORTICAL = TISSUE_HU[CORTICAL]
HU_LIVER = TISSUE_HU[LIVER]

#: Marrow and cortex of every bone (their HU scale with the bone density / cortex gain); bone
#: other than the vertebrae that keeps a joint space from them.
BONE_MARROW = (CANCELLOUS, RIB_MARROW, STERNUM_MARROW, SACRUM_MARROW, ILIUM_MARROW)
BONE_CORTEX = (CORTICAL, RIB_CORTEX, STERNUM_CORTEX, SACRUM_CORTEX, ILIUM_CORTEX)
OTHER_BONE = (RIB_MARROW, RIB_CORTEX, COSTAL_CARTILAGE, ILIUM_MARROW, ILIUM_CORTEX)
#: texture amplitudes (HU): fine-grained (trabecular, lung) and coarse (soft-tissue mottling)
FINE_TEXTURE_HU = {CANCELLOUS: 40.0, RIB_MARROW: 35.0, STERNUM_MARROW: 35.0, SACRUM_MARROW: 40.0,
                   ILIUM_MARROW: 35.0, LUNG: 18.0, FECES: 70.0, CORTICAL: 60.0, ILIUM_CORTEX: 50.0}
COARSE_TEXTURE_HU = {MUSCLE: 6.0, FAT: 7.0, VISCERAL_FAT: 9.0, LIVER: 4.0, SPLEEN: 4.0, KIDNEY: 4.0,
                     BOWEL: 9.0, BOWEL_CONTENT: 5.0, LUNG: 22.0, CANCELLOUS: 25.0, DISC_ANNULUS: 5.0,
                     DISC_NUCLEUS: 5.0, HEART: 3.0}


def spine_affine(num_slices: int = NUM_SLICES) -> np.ndarray:
    """The fixed voxel-to-world (RAS+, mm) affine of a volume with ``num_slices`` slices.

    Diagonal ``(-0.8, -0.8, 3.0)`` (axis 0 -> left, axis 1 -> posterior, axis 2 -> superior); the
    origin puts the volume centre at world (0, 0, 0). ``nibabel.aff2axcodes`` gives ``('L', 'P', 'S')``.
    """
    aff = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    centre = (np.array([SHAPE_XY[0], SHAPE_XY[1], num_slices], dtype=float) - 1.0) / 2.0
    aff[:3, 3] = -aff[:3, :3] @ centre
    return aff
