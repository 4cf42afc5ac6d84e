"""Weights of the two-stage pipeline of paper 002 across its training steps.

Stage 1 (``train.json``) and each organ net (``train.json`` + ``train_stage2.json --organ <name>``) are separate
configured steps that all read and write one whole-pipeline ``models/model.pt``: each step starts from the
pipeline already there (:func:`load_pipeline_weights`), trains its own part and saves the whole network again,
so ``model.pt`` always holds one consistent pipeline.
"""

from __future__ import annotations

import os

import torch

from ..writers.base import write_atomically
from .compressed_weights import load_weights
from .weights import read_state_dict, require_weights


def _pipeline_state(path: str) -> dict:
    """The tensors of a two-stage ``model.pt`` (:func:`~custom_networks.bundle.weights.read_state_dict`); a missing
    file raises "train stage 1 first"."""
    return read_state_dict(require_weights(path))


def load_pipeline_weights(
    network: torch.nn.Module, path: str, missing_ok: bool = False, prefix: str = ""
) -> torch.nn.Module:
    """Load a whole two-stage ``model.pt`` into ``network`` before a training step (tensors only).

    With ``prefix`` only the tensors whose names start with it are loaded (stage 1 keeps the organ nets of an
    existing pipeline with ``prefix="stage2."``, so the ``model.pt`` it saves is still whole); otherwise the load
    is strict. A missing file raises the bundle's "train stage 1 first" error, or with ``missing_ok`` leaves
    ``network`` as it is (a first run, or organ nets trained in a folder of their own and joined to stage 1 by
    :func:`combine_pipelines`).
    """
    if missing_ok and not os.path.isfile(path):
        return network
    state = _pipeline_state(path)
    other_setup = (f"{path} was trained for another organ setup or network size; move it away or point --ckpt_dir "
                   "at a new folder")
    if prefix:
        state = {k: v for k, v in state.items() if k.startswith(prefix)}
    try:
        result = load_weights(network, state, strict=not prefix)
    except RuntimeError as e:  # size mismatches: one line, not torch's wall of every tensor
        raise ValueError(f"{other_setup} ({str(e).splitlines()[-1].strip()[:160]} ...)") from None
    if prefix and result.unexpected_keys:
        raise ValueError(f"{other_setup} (it holds parts this network does not have: {result.unexpected_keys[:3]}...)")
    return network


def combine_pipelines(
    stage1_path: str, stage2_path: str, out_path: str, half: bool = False, organ_paths: dict[str, str] | None = None
) -> None:
    """Write ``out_path``: the ``stage1.*`` tensors of ``stage1_path`` and the ``stage2.*`` ones of ``stage2_path``.

    Stage 2 trains on crops around the ground truth (thesis §3.2.2), not on stage 1's output, so the
    organ nets can train beside stage 1 in another ``ckpt_dir`` (``--stage_setup`` with ``missing_ok``)
    and be joined afterwards. ``organ_paths`` (organ -> ``model.pt``) takes those organs' nets
    (``stage2.<organ>.*``) from their own files instead, for organ nets trained side by side, each in a folder of
    its own. With ``half`` the floating-point tensors are stored as float16, half the file
    (``load_state_dict`` casts them back to the network's float32). Written atomically; no input is changed.
    """
    first, second = _pipeline_state(stage1_path), _pipeline_state(stage2_path)
    combined = {k: v for k, v in first.items() if k.startswith("stage1.")}
    combined.update({k: v for k, v in second.items() if k.startswith("stage2.")})
    for organ, path in (organ_paths or {}).items():
        prefix = f"stage2.{organ}."
        own = {k: v for k, v in _pipeline_state(path).items() if k.startswith(prefix)}
        if not own or set(own) != {k for k in combined if k.startswith(prefix)}:
            raise ValueError(f"{path} has no organ net {organ!r} of the pipeline in {stage2_path}")
        combined.update(own)
    if set(combined) != set(first) | set(second) or not combined:
        raise ValueError(f"{stage1_path} and {stage2_path} are not two-stage pipelines of the same organs")
    if half:
        combined = {k: v.half() if v.is_floating_point() else v for k, v in combined.items()}
    write_atomically(out_path, lambda f: torch.save(combined, f))
