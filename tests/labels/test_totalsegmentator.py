"""The TotalSegmentator v2 class groups and the label mappings built from them."""

from __future__ import annotations

import pytest

from custom_networks.labels.totalsegmentator import TOTAL_V2, class_ids, label_mapping


def test_totalsegmentator_groups_follow_the_class_names():
    assert len(TOTAL_V2) == 117 and sorted(TOTAL_V2) == list(range(1, 118))
    bone = class_ids("bone")
    names = {TOTAL_V2[i] for i in bone}
    assert {"vertebrae_T12", "rib_left_1", "rib_right_12", "sternum", "femur_left", "hip_right", "sacrum",
            "skull", "humerus_left", "scapula_right", "clavicula_left"} <= names
    assert "costal_cartilages" not in names and "spinal_cord" not in names and "aorta" not in names
    assert len(bone) == 25 + 1 + 10 + 1 + 24 + 1  # vertebrae, sacrum, limb/girdle bones, skull, ribs, sternum
    vertebrae = class_ids("vertebrae")
    assert [TOTAL_V2[i] for i in (vertebrae[0], vertebrae[-1])] == ["vertebrae_S1", "vertebrae_C1"]
    assert len(vertebrae) == 25 and set(vertebrae) < set(bone)
    with pytest.raises(ValueError, match="known: bone, vertebrae"):
        class_ids("organs")


def test_label_mapping_maps_every_id_once():
    m = label_mapping("vertebrae")
    assert m["orig_labels"] == list(range(118))
    assert [o for o, t in zip(m["orig_labels"], m["target_labels"]) if t == 1] == class_ids("vertebrae")
