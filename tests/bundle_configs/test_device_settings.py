"""GPU settings follow the device (issue 19): mixed precision on with CUDA and off on the CPU, in every engine;
cuDNN's autotuner switched on in every ``initialize``, as the Model Zoo's bundles do. Checked on the CPU by
pointing ``device`` at a CUDA device (a ``torch.device`` needs no GPU to exist)."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ConfigParser

from scripts.common.bundles import names
from tests.conftest import REPO

CONFIGS = sorted((REPO / "bundles").glob("*/configs/*.json"))


def _engines(node, path=""):
    """(where, value of "amp") of every config object that has an ``amp`` argument."""
    if isinstance(node, dict):
        if "amp" in node and "_target_" in node:
            yield path, node["amp"]
        for key, value in node.items():
            yield from _engines(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _engines(value, f"{path}/{i}")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_engine_takes_amp_from_the_one_key(config):
    found = list(_engines(json.loads(config.read_text())))
    if config.name in ("train.json", "inference.json"):
        assert found, f"{config} defines no engine"  # the overlays (evaluate.json, ...) may define none
    assert all(value == "@amp" for _, value in found), found


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("config", ["train.json", "inference.json"])
def test_amp_follows_the_device(name, config):
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / name / "configs" / config))
    parser["device"] = "$torch.device('cpu')"
    assert parser.get_parsed_content("amp") is False
    parser["device"] = "$torch.device('cuda:0')"
    assert parser.get_parsed_content("amp", lazy=False) is True
    parser["device"] = "cpu"  # MONAI Label passes the device as a string
    assert parser.get_parsed_content("amp", lazy=False) is False


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("files", [["train.json"], ["train.json", "evaluate.json"], ["inference.json"],
                                   ["train.json", "multi_gpu_train.json"]])
def test_initialize_switches_on_the_cudnn_autotuner(name, files):
    parser = ConfigParser()
    parser.read_config([str(REPO / "bundles" / name / "configs" / f) for f in files])
    assert "$setattr(torch.backends.cudnn, 'benchmark', True)" in parser["initialize"]
