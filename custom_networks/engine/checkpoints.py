"""Checkpoint handlers of the bundles' configs: loading trained weights with clear errors, saving them atomically.

:class:`CheckedCheckpointLoader` is MONAI's ``CheckpointLoader`` whose failures name the file and the fix (the
messages of :mod:`custom_networks.bundle.weights`), used by ``inference.json`` and ``evaluate.json``. MONAI's
``CheckpointSaver`` writes in place (ignite ``DiskSaver(atomic=False)``), so a kill during a save can leave a
truncated ``model.pt``; :class:`AtomicCheckpointSaver` is the same handler with ignite's atomic writes.
"""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine
from monai.handlers import CheckpointLoader, CheckpointSaver

from ..bundle.weights import mismatch_error, read_checkpoint

__all__ = ["AtomicCheckpointSaver", "CheckedCheckpointLoader"]


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` whose failures name the file and the fix (see
    :func:`~custom_networks.bundle.weights.read_checkpoint`, :func:`~custom_networks.bundle.weights.mismatch_error`).
    Arguments, defaults and behaviour otherwise are MONAI's."""

    def __call__(self, engine: Engine) -> None:
        read_checkpoint(self.load_path)
        try:
            super().__call__(engine)
        except (RuntimeError, KeyError) as err:
            raise mismatch_error(self.load_path, err) from err


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` (same arguments) whose every file is written to a temporary file in the
    target folder and then renamed over the old one, so a killed process leaves the previous complete file,
    never a truncated one. Group/others read permission is kept (ignite's atomic mode restores it). Its
    ``state_dict`` is the best-model record that MONAI's ``load_state_dict`` restores."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # MONAI 1.6 builds one ignite Checkpoint per kind of file, each with a DiskSaver(atomic=False)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler._atomic = True

    def state_dict(self) -> dict:
        """The best-model record (what ``load_state_dict`` takes), for
        :class:`~custom_networks.engine.resume.ResumableTraining`."""
        return dict(self._key_metric_checkpoint.state_dict()) if self._key_metric_checkpoint is not None else {}
