"""Configs name things, never positions (issue 18): handlers another key needs have their own ids, handler
lists are built from ids, and the multi-GPU files choose each rank's handlers by id, not by slicing."""

from __future__ import annotations

import json
import re

import pytest
import torch.distributed
from ignite.engine import Events
from ignite.handlers import ProgressBar
from monai.handlers import CheckpointLoader, LrScheduleHandler, StatsHandler, TensorBoardStatsHandler

from custom_networks.engine.checkpoints import AtomicCheckpointSaver
from custom_networks.engine.resume import ResumableTraining
from custom_networks.engine.validation import LastEpochValidationHandler
from scripts.common.bundles import names
from tests.bundle_configs.helpers import BundleUnderTest
from tests.conftest import REPO

BUNDLES = names()
CONFIGS = sorted((REPO / "bundles").glob("*/configs/*.json"))
#: an id that steps into a list by its index (``validate#handlers#2``, also as an override key)
POSITION = re.compile(r"\w#\d+\b")
#: a slice of a referenced list (``@train#handlers[: -3 ...]``)
SLICE = re.compile(r"@[\w#]+\[[^\]]*:")
#: what a process other than rank 0 must not run: console/TensorBoard logging, the progress bar, file savers
RANK0_ONLY = (StatsHandler, TensorBoardStatsHandler, ProgressBar, AtomicCheckpointSaver)


def _strings(node, path=""):
    """(where, text) of every key and string value in a parsed JSON config."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}/{key}", key
            yield from _strings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}/{i}")
    elif isinstance(node, str):
        yield path, node


def test_bundles_are_found():
    assert set(BUNDLES) == {"head_neck_two_stage_unet", "knee_eas_unet", "lower_limb_afu_unet",
                            "spine_msr_attention_unet"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_no_config_points_into_a_list_by_position(config):
    """``@validate#handlers#2`` and ``@train#handlers[: -3]`` break silently when a handler is added (or when
    MONAI Label inserts its ``CheckpointLoader`` first); a handler another key needs gets an id instead."""
    found = [f"{where}: {text}" for where, text in _strings(json.loads(config.read_text()))
             if POSITION.search(text) or SLICE.search(text)]
    assert not found, found


def _workflow(name: str, files: list[str], rank: int | None = None, monkeypatch=None):
    """The bundle's configs parsed with no data; under ``multi_gpu_train.json`` as process ``rank`` of two
    (``dist.get_rank`` patched; no process group: plain network instead of DDP, no distributed samplers)."""
    overrides = {"train#dataset#data": [], "validate#dataset#data": []}
    if rank is not None:
        monkeypatch.setattr(torch.distributed, "get_rank", lambda *args, **kwargs: rank)
        overrides.update({"train#dataloader#sampler": None, "validate#dataloader#sampler": None})
    parser = BundleUnderTest(name, {}).workflow(files, "train", **overrides).parser
    for key, value in list(parser.config.items()):
        if isinstance(value, dict) and value.get("_target_") == "torch.nn.parallel.DistributedDataParallel":
            parser[key] = value["module"]
    return parser


def _one(handlers, kind):
    found = [h for h in handlers if isinstance(h, kind)]
    assert len(found) == 1, (kind.__name__, [type(h).__name__ for h in handlers])
    return found[0]


@pytest.mark.parametrize("name", BUNDLES)
def test_resume_restores_the_record_of_the_saver_that_writes_model_pt(name):
    """The best-model saver that resume saves and restores is the one the evaluator runs (not another
    instance, not another handler): ``validate#best_model_saver``, writing ``model.pt``."""
    parser = _workflow(name, ["train.json"])
    saver = parser.get_parsed_content("validate#best_model_saver")
    assert isinstance(saver, AtomicCheckpointSaver)
    assert saver._key_metric_checkpoint.save_handler.filename == "model.pt"
    val_handlers = parser.get_parsed_content("validate#evaluator#val_handlers")
    assert any(h is saver for h in val_handlers)
    evaluator = parser.get_parsed_content("validate#evaluator")
    assert evaluator.has_event_handler(saver.metrics_completed, Events.EPOCH_COMPLETED)

    train_handlers = parser.get_parsed_content("train#trainer#train_handlers")
    resume = _one(train_handlers, ResumableTraining)
    assert resume.objects["best_model_saver"] is saver
    validation = _one(train_handlers, LastEpochValidationHandler)
    assert validation.validator is evaluator
    # validation runs before resume saves the epoch, so the saved epoch includes its validation
    assert train_handlers.index(validation) < train_handlers.index(resume)
    # one trainer handler list: every-process handlers, then logging
    assert train_handlers == parser.get_parsed_content("train#handlers") + parser.get_parsed_content(
        "train#logging_handlers")


def test_spine_plateau_schedule_is_named_and_run_by_the_evaluator():
    parser = _workflow("spine_msr_attention_unet", ["train.json"])
    handler = parser.get_parsed_content("validate#lr_schedule_handler")
    assert isinstance(handler, LrScheduleHandler) and handler.lr_scheduler is parser.get_parsed_content("lr_scheduler")
    assert any(h is handler for h in parser.get_parsed_content("validate#evaluator#val_handlers"))


def test_head_neck_baseline_renames_the_best_model_by_id():
    parser = _workflow("head_neck_two_stage_unet", ["train.json", "train_baseline.json"])
    saver = parser.get_parsed_content("validate#best_model_saver")
    assert saver._key_metric_checkpoint.save_handler.filename == "model_best.pt"
    train_handlers = parser.get_parsed_content("train#trainer#train_handlers")
    assert _one(train_handlers, ResumableTraining).objects["best_model_saver"] is saver
    assert any(h is parser.get_parsed_content("final_saver") for h in train_handlers)


MONAI_LABEL_LOADER = {"_target_": "CheckpointLoader", "load_path": "/pretrained/model.pt",
                      "load_dict": {"model": "@network"}}


@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize("name", BUNDLES)
def test_multi_gpu_ranks_run_the_handlers_they_need(name, rank, monkeypatch):
    """Every process validates, resumes, schedules the learning rate and loads pretrained weights; only rank 0
    logs, draws the progress bar and writes ``model.pt``. MONAI Label's ``BundleTrainTask`` inserts a
    ``CheckpointLoader`` at the start of ``train#handlers``: it must not shift what a rank keeps (the old
    ``[: 3]`` slice then dropped resume)."""
    parser = _workflow(name, ["train.json", "multi_gpu_train.json"], rank, monkeypatch)
    parser["train#handlers"] = [MONAI_LABEL_LOADER, *parser["train#handlers"]]
    train_handlers = parser.get_parsed_content("train#trainer#train_handlers")
    every_rank = parser.get_parsed_content("train#handlers")
    assert train_handlers[: len(every_rank)] == every_rank
    assert isinstance(_one(train_handlers, CheckpointLoader), CheckpointLoader)
    resume = _one(train_handlers, ResumableTraining)
    _one(train_handlers, LastEpochValidationHandler)
    assert resume.objects["best_model_saver"] is parser.get_parsed_content("validate#best_model_saver")
    val_handlers = parser.get_parsed_content("validate#evaluator#val_handlers") or []
    logging = [h for h in [*train_handlers, *val_handlers] if isinstance(h, RANK0_ONLY)]
    if rank == 0:
        assert train_handlers == every_rank + parser.get_parsed_content("train#logging_handlers")
        assert val_handlers == parser.get_parsed_content("validate#handlers")
        assert any(isinstance(h, AtomicCheckpointSaver) for h in val_handlers)
    else:
        assert not logging, [type(h).__name__ for h in logging]
    # the plateau schedule is stepped on every rank, so every rank's optimizer keeps the same learning rate
    if name == "spine_msr_attention_unet":
        assert any(h is parser.get_parsed_content("validate#lr_schedule_handler") for h in val_handlers)
    elif name == "lower_limb_afu_unet":
        _one(train_handlers, LrScheduleHandler)
