"""Compress a trained bundle's network as paper 002's chapter 4 does, fine-tuning with the bundle's own trainer.

    python -m scripts.compress bundles/head_neck_two_stage_unet --dataset_dir DATA [--out DIR]
        [--rates 0.05,0.1,0.15,0.2] [--thresholds 0.01,0.02] [--levels 31] [--finetune_steps 2000]
        [--round_to 8] [--<config key> <value> ...]

Steps (thesis §4.2.1-4.2.3, Algorithms 4-1 to 4-3), each on the previous result, each followed by
``finetune_steps`` iterations of the bundle's ``train#trainer`` and one run of its ``validate#evaluator``:

1. channel (filter) pruning, L1 criterion, cumulative ``rates`` -> a smaller dense network (``--round_to 8``
   keeps channel counts at multiples of 8, which CPU conv kernels run much faster; not in the thesis);
2. threshold pruning at each of ``thresholds`` (masks made permanent);
3. ``levels``-level weight quantization with straight-through fine-tuning (``--levels 0`` skips it).

It compresses the bundle's trained network (``trained_net`` when the config has one: stage 1 of the
head-and-neck pipeline; ``network`` otherwise) and writes into ``--out`` (default ``<bundle>/models/compressed``):
``model_channel_pruned.pt``, ``model_threshold_pruned.pt``, ``model.pt`` (the final one, int8 codes),
``compression.json`` (every step's validation Dice, parameters, non-zero weights, sizes) and ``finetune/``
(the trainer's own logs and checkpoints). Every file is a plain state dict of the whole
network that the bundle's unchanged ``inference.json`` / ``evaluate.json`` load with ``--ckpt_dir <out>``.
The source checkpoint is only read. Any other ``--key value`` overrides the bundle's ``train.json``
(``--dataset_dir``, ``--features``, ...): pass the same overrides the model was trained with.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import fire
import torch
import torch.nn as nn
from monai.bundle import ConfigParser

from custom_networks.bundle.weights import read_state_dict, require_weights
from custom_networks.compression import channel_pruning, quantization, threshold_pruning
from custom_networks.bundle.compressed_weights import FORMAT_KEY
from custom_networks.compression.checkpoint import compressed_state_dict, conv_weight_count, save_checkpoint
from scripts.common.bundles import Bundle, folder as bundle_folder, load_weights

#: objects built once and handed to every later parse, so each fine-tuning round gets a fresh optimizer
#: for the pruned parameters but reuses the (possibly cached) data
_SHARED_IDS = ("train#dataloader", "validate#dataloader")


def _as_tuple(value, name: str) -> tuple[float, ...]:
    if value in (None, "", (), []):
        return ()
    if isinstance(value, (int, float)):
        return (float(value),)
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--{name} must be comma-separated numbers, got {value!r}.") from exc


def load_source_weights(network: nn.Module, ckpt: Path) -> None:
    """Load the trained checkpoint into ``network``, with an error that says what to do when it can't."""
    if any(k.endswith(FORMAT_KEY) for k in read_state_dict(ckpt)):
        raise ValueError(f"{ckpt} is already compressed; compress the original trained checkpoint instead.")
    load_weights(network, ckpt)


class _Bundle:
    """The bundle's train.json with the user's overrides; builds fresh trainers and evaluators around one network."""

    def __init__(self, folder: Path, overrides: dict, out: Path):
        self.bundle = Bundle(folder)
        self.overrides = {
            "ckpt_dir": str(out / "finetune"),
            "output_dir": str(out / "finetune" / "logs"),
            "resume": False,  # each round is a new network shape: never resume a previous round's state
            **overrides,
        }
        self.shared: dict = {}
        parser = self.parser()
        self.network = parser.get_parsed_content("network")
        self.target_id = "trained_net" if "trained_net" in parser else "network"
        self.shared["network"] = self.network

    def parser(self) -> ConfigParser:
        return self.bundle.parser(["train.json"], **{**self.overrides, **self.shared})

    def target(self) -> tuple[str, nn.Module]:
        """(name inside ``network``, module) of the network being compressed."""
        target = self.parser().get_parsed_content(self.target_id)
        name = next(n for n, m in self.network.named_modules() if m is target)
        return name, target

    def _objects(self, parser) -> None:
        for key in _SHARED_IDS:
            if key not in self.shared:
                self.shared[key] = parser.get_parsed_content(key)

    def finetune(self, steps: int) -> None:
        """``steps`` iterations of the bundle's own trainer (loss, optimizer, augmentation) on the current network."""
        if steps <= 0:
            return
        from ignite.engine import Events

        parser = self.parser()
        self._objects(parser)
        trainer = parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.ITERATION_COMPLETED(once=steps), lambda engine: engine.terminate())
        trainer.run()

    def validate(self) -> float:
        """The bundle's key validation metric (mean Dice) of the current network."""
        parser = self.parser()
        self._objects(parser)
        evaluator = parser.get_parsed_content("validate#evaluator")
        evaluator.run()
        return float(evaluator.state.metrics[evaluator.state.key_metric_name])


def _state_bytes(state: dict) -> int:
    """Bytes of the tensors a saved file holds; a pruning mask is not counted (``make_permanent`` drops it)."""
    return sum(v.numel() * v.element_size() for k, v in state.items() if not k.endswith("_mask"))


def compress(
    bundle: str,
    out: str | None = None,
    ckpt: str | None = None,
    rates: Sequence[float] | str = channel_pruning.THESIS_RATES,
    thresholds: Sequence[float] | str = threshold_pruning.THESIS_THRESHOLDS,
    levels: int | None = quantization.THESIS_LEVELS,
    finetune_steps: int = 2000,
    round_to: int | None = None,
    validate: bool = True,
    **overrides,
) -> dict:
    """Compress, fine-tune and validate a trained bundle's network; write the weights and ``compression.json``.

    Returns the report written to ``<out>/compression.json``.
    """
    from custom_networks.ops.flags import as_bool
    from monai.utils import set_determinism

    folder = bundle_folder(bundle)
    out_dir = Path(out) if out else folder / "models" / "compressed"
    source = Path(ckpt) if ckpt else folder / "models" / "model.pt"
    rates, thresholds = _as_tuple(rates, "rates"), _as_tuple(thresholds, "thresholds")
    levels = int(levels) if levels not in (None, 0, "none", "None") else None
    validate = as_bool(validate, "validate")
    if levels is not None:
        quantization.level_step(levels)  # validates the level count before any work
    require_weights(source, str(folder / "configs" / "train.json"), "--ckpt with the trained checkpoint")
    if source.resolve().parent == out_dir.resolve():
        raise ValueError(f"--out {out_dir} holds the source checkpoint {source}; choose another folder.")

    started = time.time()
    set_determinism(seed=0)
    work = _Bundle(folder, overrides, out_dir)
    load_source_weights(work.network, source)
    target_name, target = work.target()
    prefix = f"{target_name}." if target_name else ""
    report: dict = {"bundle": folder.name, "source": str(source), "target": target_name or "network",
                    "finetune_steps": int(finetune_steps), "round_to": round_to,
                    "overrides": {k: str(v) for k, v in overrides.items()}, "steps": []}

    def record(step: str, path: Path | None = None, quantized: int | None = None, **info) -> None:
        state = compressed_state_dict(target, quantized)
        total, nonzero = conv_weight_count(target)
        entry = {
            "step": step,
            **info,
            "val_dice": work.validate() if validate else None,
            "parameters": sum(p.numel() for p in target.parameters()),
            "conv_weights": total,
            "nonzero_conv_weights": nonzero,
            "sparsity": round(1 - nonzero / total, 4),
            "weights_mb": round(_state_bytes({k: v for k, v in state.items() if k != FORMAT_KEY}) / 2**20, 3),
        }
        if path is not None:
            full = {k: v for k, v in work.network.state_dict().items() if not k.startswith(prefix)}
            full.update({prefix + k: v for k, v in state.items()})
            save_checkpoint(full, str(path))
            entry["file"], entry["file_mb"] = path.name, round(os.path.getsize(path) / 2**20, 3)
        report["steps"].append(entry)
        shown = {k: v for k, v in entry.items() if k != "step"}
        print(f"[compress] {time.time() - started:7.1f} s  {step}: {json.dumps(shown)}", flush=True)

    target.eval()
    record("original")
    if rates:
        pruner = channel_pruning.ChannelPruner(target, rates, round_to=round_to)
        for _ in range(len(pruner)):
            rate = pruner.step()
            print(f"[compress] channel pruning to {rate:.0%}, fine-tuning {finetune_steps} steps", flush=True)
            work.finetune(int(finetune_steps))
            record(f"channel_pruned_{rate:g}", rate=rate,
                   path=out_dir / "model_channel_pruned.pt" if rate == rates[-1] else None)
    if thresholds:
        for threshold in thresholds:
            threshold_pruning.mask_below(target, threshold)
            print(f"[compress] threshold pruning |w| < {threshold:g}, fine-tuning {finetune_steps} steps", flush=True)
            work.finetune(int(finetune_steps))
            if threshold == thresholds[-1]:
                threshold_pruning.make_permanent(target)
            record(f"threshold_pruned_{threshold:g}", threshold=threshold,
                   path=out_dir / "model_threshold_pruned.pt" if threshold == thresholds[-1] else None)
    if levels is not None:
        quantization.attach_quantizers(target, levels)
        print(f"[compress] {levels}-level quantization, fine-tuning {finetune_steps} steps", flush=True)
        work.finetune(int(finetune_steps))
        quantization.bake_quantizers(target)
        record(f"quantized_{levels}", levels=levels, packed_bits=quantization.packed_bits(levels),
               quantized=levels, path=out_dir / "model.pt")
    else:
        record("final", path=out_dir / "model.pt")
    report["minutes"] = round((time.time() - started) / 60, 2)
    (out_dir / "compression.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"[compress] wrote {out_dir / 'model.pt'} and {out_dir / 'compression.json'}; evaluate with "
          f"python -m monai.bundle run --config_file \"['{folder}/configs/train.json','{folder}/configs/evaluate.json']\" "
          f"--ckpt_dir {out_dir} <the same overrides>", flush=True)
    return report


def main(bundle: str, **kwargs) -> None:
    """Command line: :func:`compress` without printing the returned report (it is in ``compression.json``)."""
    compress(bundle, **kwargs)


if __name__ == "__main__":
    fire.Fire(main)
