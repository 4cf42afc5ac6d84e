"""What only the spine MSR-attention U-Net bundle does: three selectable losses (the paper's Table 1), Adam with
a plateau schedule, slices drawn where the spine is. The shared CT bundle steps are in ``test_ct_bundles.py``."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader

from tests.bundle_configs.test_ct_bundles import ct_bundle

SPINE = ct_bundle("spine_msr_attention_unet")


@pytest.mark.slow  # a training step of the full-width network on whole 512 x 512 slices
@pytest.mark.parametrize("loss_name, loss_type", [("dice", "DiceLoss"), ("ce", "BCEWithLogitsLoss"),
                                                  ("focal", "FocalLoss")])
def test_each_loss_option_trains_one_step(spine_data, loss_name, loss_type):
    parser = SPINE.workflow(["train.json"], "train", dataset_dir=str(spine_data), loss_name=loss_name).parser
    torch.manual_seed(0)
    network, loss = parser.get_parsed_content("network"), parser.get_parsed_content("loss")
    optimizer = parser.get_parsed_content("optimizer")
    assert type(loss).__name__ == loss_type and type(optimizer).__name__ == "Adam"
    batch = next(iter(DataLoader(parser.get_parsed_content("train#dataset"), batch_size=1)))
    assert batch["image"].shape == (2, 1, 512, 512)  # slices_per_volume whole axial slices
    before = [p.detach().clone() for p in network.parameters()]
    network.train()
    value = loss(network(batch["image"]), batch["label"])
    assert torch.isfinite(value) and value > 0
    value.backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, network.parameters()))


def test_slices_are_drawn_where_the_spine_is(spine_data):
    parser = SPINE.workflow(["train.json"], "train", dataset_dir=str(spine_data)).parser
    for sample in parser.get_parsed_content("train#dataset")[0]:
        assert sample["label"].sum() > 0


def test_optimizer_and_plateau_schedule_are_the_papers():
    parser = SPINE.workflow(["train.json"], "train").parser
    assert parser["learning_rate"] == 0.001 and parser["loss_name"] == "dice"
    sched = parser.get_parsed_content("lr_scheduler")
    assert type(sched).__name__ == "ReduceLROnPlateau" and sched.factor == 0.5 and sched.patience == 5
    assert sched.mode == "max"  # stepped on the validation Dice after each validation
    handler = parser.get_parsed_content("validate#handlers")[0]
    assert type(handler).__name__ == "LrScheduleHandler" and handler.lr_scheduler is sched
