"""Left-right mirroring of head-and-neck cases: images flipped, paired organs' labels and flags swapped."""

from __future__ import annotations

import torch
from monai.data import MetaTensor

from custom_networks.labels.head_neck import organs
from custom_networks.ops.mirror import mirror_pairs, mirrored_channels
from custom_networks.transforms.left_right import LeftRightFlipd, RandLeftRightFlipd, with_mirrored
from custom_networks.transforms.partial_labels import ContouredOrgansd

ORGANS = organs("openkbp")  # brainstem, spinal_cord, parotid_right, parotid_left, mandible, esophagus, larynx


def _case(contoured=None):
    label = torch.zeros(1, 12, 6, 5)
    for i, x in enumerate([5, 6, 1, 9, 3, 7, 4], start=1):  # organ i occupies column x (x = left-right)
        label[0, x, i - 1 if i < 7 else 0, :] = i
    image = torch.arange(label.numel(), dtype=torch.float32).reshape(label.shape)
    data = {"image": image, "label": MetaTensor(label)}
    if contoured is not None:
        data["contoured"] = contoured
    return ContouredOrgansd("label", ORGANS)(data)


def test_mirror_pairs_are_the_left_right_organs_of_each_setup():
    assert mirror_pairs(ORGANS) == {"parotid_right": "parotid_left", "parotid_left": "parotid_right"}
    thesis = mirror_pairs(organs("thesis"))
    assert thesis["eye_left"] == "eye_right" and thesis["optic_nerve_right"] == "optic_nerve_left"
    assert "brainstem" not in thesis and "mandible" not in thesis
    assert mirrored_channels(ORGANS) == [0, 1, 2, 4, 3, 5, 6, 7]


def test_flip_swaps_exactly_the_parotid_labels_and_flags():
    data = _case(contoured=["brainstem", "parotid_right", "mandible"])  # parotid_left not contoured
    out = LeftRightFlipd(["image", "label"], ORGANS, only_flagged=False)(data)
    flipped_image = torch.flip(data["image"], dims=[1])
    assert torch.equal(torch.as_tensor(out["image"]), flipped_image)
    before, after = torch.as_tensor(data["label"]), torch.as_tensor(out["label"])
    for i, organ in enumerate(ORGANS, start=1):
        mirrored = torch.flip(before == i, dims=[1])
        expected = {"parotid_right": 4, "parotid_left": 3}.get(organ, i)  # midline organs keep their label
        assert torch.equal(after == expected, mirrored), organ
    flags = dict(zip(ORGANS, out["label"].meta["contoured"].tolist()))
    assert flags == {"brainstem": 1.0, "spinal_cord": 0.0, "parotid_right": 0.0, "parotid_left": 1.0,
                     "mandible": 1.0, "esophagus": 0.0, "larynx": 0.0}
    assert torch.equal(out["contoured"], out["label"].meta["contoured"])
    twice = LeftRightFlipd(["image", "label"], ORGANS, only_flagged=False)(out)
    assert torch.equal(torch.as_tensor(twice["label"]), before)


def test_only_flagged_entries_are_mirrored_and_with_mirrored_flags_the_partners_cases():
    items = [{"image": "a", "contoured": ["parotid_right"]}, {"image": "b", "contoured": ["parotid_left"]},
             {"image": "c", "contoured": ["brainstem"]}]
    right = with_mirrored(items, "parotid_right", ORGANS)
    assert [(i["image"], i["mirror"]) for i in right] == [("a", False), ("b", True)]
    assert [i["image"] for i in with_mirrored(items, "brainstem", ORGANS)] == ["c"]  # midline: no partner
    data = _case()
    flip = LeftRightFlipd(["image", "label"], ORGANS)
    assert flip({**data, "mirror": False})["image"] is data["image"]
    assert not torch.equal(torch.as_tensor(flip({**data, "mirror": True})["image"]), data["image"])


def test_random_flip_mirrors_about_half_the_samples():
    flip = RandLeftRightFlipd(["image", "label"], ORGANS, prob=0.5)
    flip.set_random_state(0)
    data = _case()
    flipped = sum(not torch.equal(torch.as_tensor(flip(data)["image"]), data["image"]) for _ in range(200))
    assert 70 < flipped < 130
