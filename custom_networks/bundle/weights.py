"""A bundle's trained weights: finding them, and reading them safely, with one clear message per way a checkpoint
can be wrong.

Every checkpoint is read with ``torch.load(weights_only=True)`` (:func:`read_checkpoint`): tensors and plain
containers only, so a file that carries pickled code is refused rather than run. :func:`read_state_dict` is the
one reader of a network's weights in either layout MONAI's ``CheckpointSaver`` writes. The bundles'
``inference.json`` and ``evaluate.json`` load through
:class:`~custom_networks.engine.checkpoints.CheckedCheckpointLoader`, which uses these messages.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch

__all__ = [
    "CheckpointError", "mismatch_error", "read_checkpoint", "read_state_dict", "require_weights", "state_dict_of"
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file, the fault and the fix."""


def require_weights(
    path: str | os.PathLike,
    train_config: str = "bundles/<name>/configs/train.json",
    point_with: str = "--ckpt_dir (or --bundle_root) pointing at the folder that holds model.pt",
) -> str | os.PathLike:
    """Return ``path`` if trained weights exist there, else raise an error that says how to get them.

    ``train_config`` (the config that trains them) and ``point_with`` (the option that names other weights) go
    into the message; the defaults suit the bundle configs, a tool names its own.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No trained weights at {path}. Train the bundle first (python -m monai.bundle run --config_file "
            f"{train_config}); training writes models/model.pt at the first validation "
            "(every val_interval epochs), so max_epochs must reach val_interval. Or pass "
            f"{point_with}."
        )
    return path


def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that say what is wrong with the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err):  # the weights-only unpickler names the global (class, function) it refused
            raise _not_a_checkpoint(path, err) from err
        raise CheckpointError(
            f"{path} holds pickled Python objects besides tensors, which could run code when loaded, so it is "
            "refused (read with torch.load(weights_only=True)). If it comes from a source you trust, re-save "
            "just the weights there: torch.save(model.state_dict(), 'model.pt')."
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise _not_a_checkpoint(path, err) from err


def _not_a_checkpoint(path: str | os.PathLike, err: Exception) -> CheckpointError:
    if os.path.getsize(path) == 0:
        reason = "empty file"
    elif isinstance(err, pickle.UnpicklingError):
        reason = "its bytes are not a saved state dict"
    else:
        reason = (str(err).splitlines() or ["no message"])[0]
    return CheckpointError(
        f"{path} is truncated or not a PyTorch checkpoint ({type(err).__name__}: {reason}). "
        "Copy it again, or train the bundle again."
    )


def state_dict_of(checkpoint: Any, key: str = "model") -> Any:
    """The network's state dict in a loaded checkpoint: ``checkpoint[key]`` where MONAI's ``CheckpointSaver``
    nested it (``save_dict={"model": net}``), else the checkpoint itself (a bare state dict)."""
    nested = isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict)
    return checkpoint[key] if nested else checkpoint


def read_state_dict(path: str | os.PathLike) -> Any:
    """The network weights in the checkpoint file ``path``, in either layout (:func:`state_dict_of`), read by
    :func:`read_checkpoint`."""
    return state_dict_of(read_checkpoint(path))


def mismatch_error(path: str | os.PathLike, err: Exception) -> CheckpointError:
    """The error for weights that do not fit the configured network."""
    return CheckpointError(
        f"{path} holds the weights of another network than the one configured: is it another bundle's "
        "checkpoint, or trained with other network settings (--network_def#features, --features ...)? Pass the "
        f"same overrides as for training. ({(str(err).splitlines() or [type(err).__name__])[0]} ...)"
    )
