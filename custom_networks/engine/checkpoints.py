"""Checkpoint handlers of the bundles' configs: loading trained weights with clear errors, saving them atomically.

:class:`CheckedCheckpointLoader` is MONAI's ``CheckpointLoader`` whose failures name the file and the fix (the
messages of :mod:`custom_networks.bundle.weights`), used by ``inference.json`` and ``evaluate.json``. MONAI's
``CheckpointSaver`` writes in place (ignite ``DiskSaver(atomic=False)``), and ignite's ``Checkpoint`` deletes the
file it replaces before it writes the new one, so a kill during a save can leave a truncated ``model.pt`` or none;
:class:`AtomicCheckpointSaver` is the same handler without either gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite import distributed as idist
from ignite.engine import Engine
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

from ..bundle.compressed_weights import reading_compressed
from ..bundle.weights import CheckpointError, mismatch_error, read_checkpoint

__all__ = ["AtomicCheckpointSaver", "CheckedCheckpointLoader"]


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` whose failures name the file and the fix (see
    :func:`~custom_networks.bundle.weights.read_checkpoint`, :func:`~custom_networks.bundle.weights.mismatch_error`),
    and whose networks also read compressed checkpoints
    (:func:`~custom_networks.bundle.compressed_weights.reading_compressed`: the unchanged config loads the weights of
    ``python -m scripts.compress``). Arguments, defaults and behaviour otherwise are MONAI's."""

    def __call__(self, engine: Engine) -> None:
        checkpoint = read_checkpoint(self.load_path)
        for key in self.load_dict:  # what MONAI hands each object: checkpoint[key], or the whole checkpoint
            state = checkpoint.get(key, checkpoint) if isinstance(checkpoint, Mapping) else checkpoint
            if not isinstance(state, Mapping):  # e.g. a list or a number saved by mistake
                raise CheckpointError(
                    f"{self.load_path} holds a {type(state).__name__}, not a network's state dict: is it the right "
                    "file? Copy it again, or train the bundle again.")
        networks = [obj for obj in self.load_dict.values() if isinstance(obj, torch.nn.Module)]
        try:
            with reading_compressed(*networks):
                super().__call__(engine)
        except (RuntimeError, KeyError) as err:
            raise mismatch_error(self.load_path, err) from err


class _ReplacingDiskSaver(DiskSaver):
    """ignite's atomic ``DiskSaver`` (temporary file in the target folder, then ``os.replace``) that removes a
    replaced file only after its successor is complete.

    ignite's ``Checkpoint`` calls ``remove(old)`` and then writes the new file; MONAI's fixed names
    (``key_metric_filename="model.pt"``) make ``old`` and new the same path, so a kill between the two left
    no ``model.pt``. Here ``remove`` only notes the name; the next write replaces the file atomically and
    then deletes the noted files it did not overwrite. At every instant the folder holds the previous or the
    new complete file. ``filename``, when given, is the fixed name every file is written to (as MONAI's own
    ``DiskSaver`` does)."""

    def __init__(self, dirname: str | Path, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, atomic=True, require_empty=False)
        self.filename = filename
        self._replaced: list[str] = []

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        filename = self.filename or filename
        super().__call__(checkpoint, filename, metadata)
        replaced, self._replaced = self._replaced, []
        for old in replaced:  # a name noted before a failed write may be gone already
            if old != filename and idist.get_rank() == self.save_on_rank:
                (self.dirname / old).unlink(missing_ok=True)

    def remove(self, filename: str) -> None:
        self._replaced.append(self.filename or filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` (same arguments) whose every file is written to a temporary file in the
    target folder and then renamed over the old one, and whose replaced files are deleted only after that
    rename: a killed process leaves the previous complete file (or the new one), never a truncated file and
    never none. Group/others read permission is kept (ignite's atomic mode restores it). Its ``state_dict``
    is the best-model record that MONAI's ``load_state_dict`` restores."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # MONAI 1.6 builds one ignite Checkpoint per kind of file, each with its own DiskSaver(atomic=False)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                monai_saver = checkpoint.save_handler
                checkpoint.save_handler = _ReplacingDiskSaver(monai_saver.dirname, monai_saver.filename)

    def state_dict(self) -> dict:
        """The best-model record (what ``load_state_dict`` takes), for
        :class:`~custom_networks.engine.resume.ResumableTraining`."""
        return dict(self._key_metric_checkpoint.state_dict()) if self._key_metric_checkpoint is not None else {}
