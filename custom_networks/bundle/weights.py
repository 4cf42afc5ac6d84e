"""Reading trained weights safely, with one clear message per way a checkpoint can be wrong.

Every checkpoint is read with ``torch.load(weights_only=True)``: tensors and plain containers only, so a file
that carries pickled code is refused rather than run. :class:`CheckedCheckpointLoader` is MONAI's
``CheckpointLoader`` (same arguments) with these messages, used by the bundles' ``inference.json`` and
``evaluate.json``.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch
from ignite.engine import Engine
from monai.handlers import CheckpointLoader


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file, the fault and the fix."""


def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that say what is wrong with the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds pickled Python objects besides tensors, which could run code when loaded, so it is "
            "refused (read with torch.load(weights_only=True)). If it comes from a source you trust, re-save "
            "just the weights there: torch.save(model.state_dict(), 'model.pt')."
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise CheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint ({type(err).__name__}: {str(err).splitlines()[0]}). "
            "Copy it again, or train the bundle again."
        ) from err


def mismatch_error(path: str | os.PathLike, err: Exception) -> CheckpointError:
    """The error for weights that do not fit the configured network."""
    return CheckpointError(
        f"{path} holds the weights of another network than the one configured: is it another bundle's "
        "checkpoint, or trained with other network settings (--network_def#features, --features ...)? Pass the "
        f"same overrides as for training. ({str(err).splitlines()[0]} ...)"
    )


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` whose failures name the file and the fix (see :func:`read_checkpoint`,
    :func:`mismatch_error`). Arguments, defaults and behaviour otherwise are MONAI's."""

    def __call__(self, engine: Engine) -> None:
        read_checkpoint(self.load_path)
        try:
            super().__call__(engine)
        except (RuntimeError, KeyError) as err:
            raise mismatch_error(self.load_path, err) from err
