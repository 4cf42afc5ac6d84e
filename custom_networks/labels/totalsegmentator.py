"""TotalSegmentator v2 class ids, and label mappings that merge them into the classes of this repo's bundles.

The real-CT checks (``../shared/data/totalsegmentator_example``) come with TotalSegmentator v2 reference
labels. The id -> name table below is the ``"total"`` task of TotalSegmentator's own class map
(``totalsegmentator/map_to_binary.py``, ``class_map["total"]``, github.com/wasserth/TotalSegmentator,
read at commit 0275d3046117a9615a9876e6e4eefd5156843f1c), not typed from memory. Groups are chosen by
name, so an id is never written twice:

* ``"bone"`` (paper 000, lower-limb bone): every vertebra, the sacrum, ribs, sternum, skull, humerus,
  scapula, clavicle, femur and hip bone. Costal cartilage (117) is **not** bone: it is cartilage,
  often uncalcified (HU near soft tissue), and the paper's bone labels are bone only.
* ``"vertebrae"`` (paper 001, spine): ``vertebrae_S1`` ... ``vertebrae_C1``; the sacrum and the hip bones
  are not spine (the paper's known failure is confusing them with it).

Use a mapping as a config override of the bundles' ``label_mapping`` (a ``MapLabelValued`` step)::

    --label_mapping '$custom_networks.labels.totalsegmentator.label_mapping("bone")'
"""

from __future__ import annotations

__all__ = ["TOTAL_V2", "GROUPS", "class_ids", "label_mapping"]

#: TotalSegmentator v2 ``total`` task: label id -> class name.
TOTAL_V2: dict[int, str] = {
    1: "spleen",
    2: "kidney_right",
    3: "kidney_left",
    4: "gallbladder",
    5: "liver",
    6: "stomach",
    7: "pancreas",
    8: "adrenal_gland_right",
    9: "adrenal_gland_left",
    10: "lung_upper_lobe_left",
    11: "lung_lower_lobe_left",
    12: "lung_upper_lobe_right",
    13: "lung_middle_lobe_right",
    14: "lung_lower_lobe_right",
    15: "esophagus",
    16: "trachea",
    17: "thyroid_gland",
    18: "small_bowel",
    19: "duodenum",
    20: "colon",
    21: "urinary_bladder",
    22: "prostate",
    23: "kidney_cyst_left",
    24: "kidney_cyst_right",
    25: "sacrum",
    26: "vertebrae_S1",
    27: "vertebrae_L5",
    28: "vertebrae_L4",
    29: "vertebrae_L3",
    30: "vertebrae_L2",
    31: "vertebrae_L1",
    32: "vertebrae_T12",
    33: "vertebrae_T11",
    34: "vertebrae_T10",
    35: "vertebrae_T9",
    36: "vertebrae_T8",
    37: "vertebrae_T7",
    38: "vertebrae_T6",
    39: "vertebrae_T5",
    40: "vertebrae_T4",
    41: "vertebrae_T3",
    42: "vertebrae_T2",
    43: "vertebrae_T1",
    44: "vertebrae_C7",
    45: "vertebrae_C6",
    46: "vertebrae_C5",
    47: "vertebrae_C4",
    48: "vertebrae_C3",
    49: "vertebrae_C2",
    50: "vertebrae_C1",
    51: "heart",
    52: "aorta",
    53: "pulmonary_vein",
    54: "brachiocephalic_trunk",
    55: "subclavian_artery_right",
    56: "subclavian_artery_left",
    57: "common_carotid_artery_right",
    58: "common_carotid_artery_left",
    59: "brachiocephalic_vein_left",
    60: "brachiocephalic_vein_right",
    61: "atrial_appendage_left",
    62: "superior_vena_cava",
    63: "inferior_vena_cava",
    64: "portal_vein_and_splenic_vein",
    65: "iliac_artery_left",
    66: "iliac_artery_right",
    67: "iliac_vena_left",
    68: "iliac_vena_right",
    69: "humerus_left",
    70: "humerus_right",
    71: "scapula_left",
    72: "scapula_right",
    73: "clavicula_left",
    74: "clavicula_right",
    75: "femur_left",
    76: "femur_right",
    77: "hip_left",
    78: "hip_right",
    79: "spinal_cord",
    80: "gluteus_maximus_left",
    81: "gluteus_maximus_right",
    82: "gluteus_medius_left",
    83: "gluteus_medius_right",
    84: "gluteus_minimus_left",
    85: "gluteus_minimus_right",
    86: "autochthon_left",
    87: "autochthon_right",
    88: "iliopsoas_left",
    89: "iliopsoas_right",
    90: "brain",
    91: "skull",
    92: "rib_left_1",
    93: "rib_left_2",
    94: "rib_left_3",
    95: "rib_left_4",
    96: "rib_left_5",
    97: "rib_left_6",
    98: "rib_left_7",
    99: "rib_left_8",
    100: "rib_left_9",
    101: "rib_left_10",
    102: "rib_left_11",
    103: "rib_left_12",
    104: "rib_right_1",
    105: "rib_right_2",
    106: "rib_right_3",
    107: "rib_right_4",
    108: "rib_right_5",
    109: "rib_right_6",
    110: "rib_right_7",
    111: "rib_right_8",
    112: "rib_right_9",
    113: "rib_right_10",
    114: "rib_right_11",
    115: "rib_right_12",
    116: "sternum",
    117: "costal_cartilages",}

_BONE_PREFIXES = ("vertebrae_", "rib_", "humerus_", "scapula_", "clavicula_", "femur_", "hip_")

#: group name -> predicate on a class name.
GROUPS = {
    "bone": lambda name: name.startswith(_BONE_PREFIXES) or name in ("sacrum", "sternum", "skull"),
    "vertebrae": lambda name: name.startswith("vertebrae_"),
}


def class_ids(group: str) -> list[int]:
    """The TotalSegmentator v2 ids of ``group`` (``"bone"`` or ``"vertebrae"``), ascending."""
    if group not in GROUPS:
        raise ValueError(f"unknown TotalSegmentator class group {group!r}; known: {', '.join(sorted(GROUPS))}")
    return sorted(i for i, name in TOTAL_V2.items() if GROUPS[group](name))


def label_mapping(group: str) -> dict[str, list[int]]:
    """A ``MapLabelValued`` mapping of every TotalSegmentator v2 id (0..117) to 1 for ``group``, else 0.

    Returns ``{"orig_labels": [0, 1, ..., 117], "target_labels": [0 or 1, ...]}``, the shape of the
    bundles' ``label_mapping`` config entry.
    """
    ids = set(class_ids(group))
    orig = [0, *sorted(TOTAL_V2)]
    return {"orig_labels": orig, "target_labels": [1 if i in ids else 0 for i in orig]}
