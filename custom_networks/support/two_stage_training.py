"""Training the stage-2 organ nets of paper 002 from the stage-1 ``train.json``, one organ after another."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.bundle import ConfigWorkflow

from .paths import require_weights

logger = logging.getLogger(__name__)


def train_stage2_nets(config_files: Sequence[str], organs: Sequence[str], overrides: Mapping[str, Any]) -> None:
    """Run ``config_files`` (``train.json`` + ``train_stage2.json``) once per organ, as ``--organ <name>`` would.

    Thesis section 3.4: after stage 1, "train one binary network per organ" on crops around that organ. Each
    run is a MONAI ``ConfigWorkflow`` that loads the whole two-stage ``models/model.pt`` (stage 1 and the organ
    nets trained so far), trains ``stage2.<organ>`` and saves the whole network again at its best validation
    Dice, so ``model.pt`` always holds one consistent pipeline. ``overrides`` carries the parent run's data,
    paths and hyper-parameters (the ``stage2#overrides`` section of ``train.json``).
    """
    for i, organ in enumerate(organs, start=1):
        logger.info("stage 2: training the %s net (%d of %d)", organ, i, len(organs))
        workflow = ConfigWorkflow(config_file=list(config_files), workflow_type="train", **{**overrides, "organ": organ})
        workflow.initialize()
        workflow.run()
        workflow.finalize()


def load_pipeline_weights(network: torch.nn.Module, path: str) -> torch.nn.Module:
    """Load a whole two-stage ``model.pt`` into ``network`` before a stage-2 run (tensors only, strict).

    Accepts both layouts MONAI's ``CheckpointSaver`` writes (``{"model": state_dict}`` or the bare state dict);
    a missing file raises the bundle's "train stage 1 first" error.
    """
    state = torch.load(require_weights(path), map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    return network
