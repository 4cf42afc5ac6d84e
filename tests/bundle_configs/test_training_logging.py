"""One way of logging training in every bundle (issue 18): MONAI's ``StatsHandler`` lines, as Model Zoo bundles
log, and no ignite ``ProgressBar``, whose redrawn bar interleaved with those lines on a terminal and filled
log files and MONAI Label's captured output with carriage returns."""

from __future__ import annotations

import json

import pytest
from ignite.handlers import ProgressBar
from monai.handlers import StatsHandler, TensorBoardStatsHandler

from scripts.common.bundles import names
from tests.bundle_configs.helpers import BundleUnderTest
from tests.conftest import REPO

BUNDLES = names()


def _targets(node):
    if isinstance(node, dict):
        if "_target_" in node:
            yield node["_target_"]
        for value in node.values():
            yield from _targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value)


@pytest.mark.parametrize("config", sorted((REPO / "bundles").glob("*/configs/*.json")),
                         ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_no_config_draws_a_progress_bar(config):
    assert not [t for t in _targets(json.loads(config.read_text())) if t.endswith("ProgressBar")]


@pytest.mark.parametrize("name", BUNDLES)
def test_training_logs_the_loss_per_iteration_to_the_console_and_tensorboard(name):
    no_data = {"train#dataset#data": [], "validate#dataset#data": []}
    parser = BundleUnderTest(name, {}).workflow(["train.json"], "train", **no_data).parser
    logging = parser.get_parsed_content("train#logging_handlers")
    assert [type(h) for h in logging] == [StatsHandler, TensorBoardStatsHandler]
    stats = logging[0]
    assert stats.iteration_log is True and stats.tag_name == "train_loss"
    every = parser.get_parsed_content("train#handlers")
    assert not [h for h in every if isinstance(h, (ProgressBar, StatsHandler))]
