"""Resumable training: the whole training state saved atomically at every epoch end, restored on restart.

Not from the papers: the project's reliability requirement (a run killed at any moment restarts with the
same command and continues from the last complete epoch, as nnU-Net's ``--c`` does). The best model is saved
by :class:`~custom_networks.engine.checkpoints.AtomicCheckpointSaver`, whose record is part of the saved state.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite import distributed as idist
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.transforms import Randomizable, Transform

from ..bundle.weights import CheckpointError, read_checkpoint
from ..ops.flags import as_bool
from .checkpoints import AtomicCheckpointSaver
from .cpu_clock import CpuClock


def _mt19937_to_tensors(state: tuple) -> dict:
    """numpy ``RandomState.get_state()`` as tensors (so the checkpoint loads with ``weights_only=True``)."""
    _, keys, pos, has_gauss, cached = state
    return {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _mt19937_from_tensors(state: dict) -> tuple:
    return ("MT19937", state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
            state["cached_gaussian"])


def _randomizable_transforms(root: Any) -> list[Randomizable]:
    """Every ``Randomizable`` inside ``root`` (a Compose or a transform), depth first in declaration order,
    including the array transforms a dictionary transform wraps (each has its own generator)."""
    found: list[Randomizable] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Randomizable):
            found.append(obj)
        for child in vars(obj).values():
            for item in child if isinstance(child, (list, tuple)) else (child,):
                if isinstance(item, (Transform, Randomizable)):
                    visit(item)

    visit(root)
    return found


class RandomStates:
    """The random generators a training epoch draws from, as a state dict: torch's and numpy's global ones,
    Python's ``random``, and each random transform's own generator (MONAI seeds those separately). Restoring
    them makes a resumed run draw the same crops, rotations and batch order as an uninterrupted one."""

    def __init__(self, transforms: Any = None) -> None:
        self.transforms = _randomizable_transforms(transforms) if transforms is not None else []

    def state_dict(self) -> dict:
        version, internal, gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "numpy": _mt19937_to_tensors(np.random.get_state()),
            "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                       "gauss": gauss},
            "transforms": [_mt19937_to_tensors(t.R.get_state()) for t in self.transforms],
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["transforms"]) != len(self.transforms):
            raise ValueError(
                f"the checkpoint has {len(state['transforms'])} random transform states but the training "
                f"pipeline has {len(self.transforms)}: the transforms changed since it was saved. "
                "Pass --resume false to start a new run."
            )
        torch.set_rng_state(state["torch"])
        np.random.set_state(_mt19937_from_tensors(state["numpy"]))
        python = state["python"]
        random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
        for transform, saved in zip(self.transforms, state["transforms"]):
            transform.R.set_state(_mt19937_from_tensors(saved))


class _BestMetric:
    """An evaluator's best key metric and its epoch, as a state dict (ignite's Engine state omits them)."""

    def __init__(self, evaluator: Engine) -> None:
        self.evaluator = evaluator

    def state_dict(self) -> dict:
        state = self.evaluator.state
        return {"best_metric": float(getattr(state, "best_metric", -1.0)),
                "best_metric_epoch": int(getattr(state, "best_metric_epoch", -1))}

    def load_state_dict(self, state: dict) -> None:
        self.evaluator.state.best_metric = state["best_metric"]
        self.evaluator.state.best_metric_epoch = state["best_metric_epoch"]


def _unwrap(obj: Any) -> Any:
    return obj.module if isinstance(obj, torch.nn.parallel.DistributedDataParallel) else obj


class ResumableTraining:
    """Save the whole training state at every epoch end and continue from it when the same command is rerun.

    Attach to the trainer after the ``ValidationHandler`` (and any epoch-level ``LrScheduleHandler``), so the
    saved epoch includes its validation. Saved to ``checkpoint`` atomically (temporary file + rename, by rank
    0 only under ``torchrun``), loadable with ``torch.load(weights_only=True)``:

    - ``save_dict`` objects (network, optimizer, lr scheduler: anything with ``state_dict``), the network
      unwrapped from ``DistributedDataParallel`` so a run can resume with another number of processes;
    - ``trainer``: ignite's epoch and iteration counters;
    - ``rng``: :class:`RandomStates` of ``random_transforms`` (the train preprocessing);
    - ``best_metric`` and ``best_model_saver``: the evaluator's best key metric and the best-model
      ``CheckpointSaver``'s record, so a worse epoch after the restart does not overwrite ``model.pt``;
    - ``cpu_clock`` (with ``cpu_curve``, a CSV path): the run's CPU-seconds so far and its per-epoch rows
      (:class:`~custom_networks.engine.cpu_clock.CpuClock`), rewritten to ``cpu_curve`` at every epoch end, so a
      resumed run's curve of validation Dice against CPU-hours goes on where it stopped.

    On start, when ``enabled`` and ``checkpoint`` exists, everything is restored and training goes on at the
    next epoch; a run that had reached ``max_epochs`` does nothing (pass a larger ``--max_epochs`` to train
    longer, or ``--resume false`` to start again). Defaults: ``enabled=True``. Under ``torchrun`` every rank
    restores rank 0's random generators (the one saved), so a resumed multi-process run is equivalent to, not
    bit-identical with, an uninterrupted one; single-process resumes are bit-identical (tested).
    """

    def __init__(self, checkpoint: str, save_dict: dict, evaluator: Engine | None = None,
                 best_model_saver: AtomicCheckpointSaver | None = None, random_transforms: Any = None,
                 enabled: bool | str = True, cpu_curve: str | None = None) -> None:
        self.path = Path(checkpoint)
        self.enabled = as_bool(enabled, "resume")
        self.objects: dict[str, Any] = {k: _unwrap(v) for k, v in save_dict.items() if v is not None}
        self.objects["rng"] = RandomStates(random_transforms)
        if evaluator is not None:
            self.objects["best_metric"] = _BestMetric(evaluator)
        if best_model_saver is not None:
            self.objects["best_model_saver"] = best_model_saver
        self.clock = CpuClock(cpu_curve, evaluator) if cpu_curve else None
        if self.clock is not None:
            self.objects["cpu_clock"] = self.clock
        # read now, while the configs are parsed: a bad file stops the run before any log or output is written
        self.state = self._read() if self.enabled and self.path.is_file() else None

    def attach(self, engine: Engine) -> None:
        self.objects["trainer"] = engine
        engine.add_event_handler(Events.STARTED, self.load)
        if self.clock is not None:
            self.clock.attach(engine)  # its epoch row is written before the state that holds it is saved
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def _read(self) -> dict:
        try:
            state = read_checkpoint(self.path)
        except CheckpointError as err:
            raise CheckpointError(f"cannot resume: {err} Or move it away, or pass --resume false to start a new "
                                  "run.") from err
        missing = sorted((set(self.objects) | {"trainer"}) - set(state)) if isinstance(state, dict) else ["all"]
        if missing:
            raise RuntimeError(f"the resume checkpoint {self.path} lacks {missing}: it is not a training state of "
                               "this bundle. Move it away, or pass --resume false to start a new run.")
        return state

    def load(self, engine: Engine) -> None:
        if self.state is None:
            return
        state, max_epochs = self.state, engine.state.max_epochs
        self.state = None  # applied once; a later run() of the same trainer goes on from where it is
        counters = state["trainer"]  # ignite keeps "iteration" (or "epoch") with "epoch_length"
        epoch = int(counters.get("epoch", counters.get("iteration", 0) // max(1, counters.get("epoch_length", 1))))
        if epoch > max_epochs:
            raise RuntimeError(f"the resume checkpoint {self.path} is at epoch {epoch}, beyond --max_epochs "
                               f"{max_epochs}; pass --max_epochs {epoch} or more, or --resume false.")
        for name, obj in self.objects.items():
            try:
                obj.load_state_dict(state[name])
            except (RuntimeError, ValueError, KeyError) as err:
                raise RuntimeError(f"cannot resume from {self.path}: its {name!r} does not fit this run ({err}). "
                                   "Was it saved with other settings? Pass those, or --resume false.") from err
        engine.state.max_epochs = max_epochs
        if epoch >= max_epochs:
            engine.logger.info("%s: already trained for %d epochs, nothing to do (--max_epochs N > %d trains "
                               "longer, --resume false starts again).", self.path, epoch, epoch)
        else:
            engine.logger.info("resumed from %s: epoch %d of %d done, continuing.", self.path, epoch, max_epochs)

    def save(self, engine: Engine) -> None:
        if idist.get_rank() != 0:
            return
        state = {name: obj.state_dict() for name, obj in self.objects.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        DiskSaver(str(self.path.parent), atomic=True, require_empty=False)(state, self.path.name)
