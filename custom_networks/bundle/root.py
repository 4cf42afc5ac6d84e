"""Where a bundle lives, so one config runs from the repo root, the bundle folder or an extracted zip."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_CONFIG_ARG = re.compile(r"--config_file(?:=|$)")
_CONFIG_PATH = re.compile(r"[^\s'\",\[\]]+\.(?:json|ya?ml)")


def _config_files_from_argv(argv: list[str]) -> list[str]:
    """The paths given to ``--config_file`` on a ``python -m monai.bundle`` command line, if any."""
    for i, arg in enumerate(argv):
        if not _CONFIG_ARG.match(arg):
            continue
        value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
        return _CONFIG_PATH.findall(value)
    return []


def resolve_bundle_root(bundle_name: str) -> str:
    """Return the absolute bundle folder for a config that did not get ``--bundle_root``.

    MONAI 1.6's ``ConfigWorkflow`` finds ``metadata.json`` next to the config file but never tells the
    config where that is, and the Model Zoo's ``"bundle_root": "."`` only works from inside the bundle.
    In order:

    1. the folder above ``configs/`` of the first ``--config_file`` on the command line
       (``python -m monai.bundle run`` and ``torchrun -m monai.bundle run``, from any directory);
    2. the current directory when it holds ``configs/metadata.json`` (inside the bundle or a zip);
    3. ``bundles/<bundle_name>`` under the current directory (the repo root);
    4. the current directory (the Model Zoo default).

    MONAI Label and the tests pass ``bundle_root`` explicitly, which overrides all of this.
    """
    for config_file in _config_files_from_argv(sys.argv):
        config_dir = Path(config_file).resolve().parent
        return str(config_dir.parent if config_dir.name == "configs" else config_dir)
    cwd = Path(os.getcwd())
    if (cwd / "configs" / "metadata.json").is_file():
        return str(cwd)
    in_repo = cwd / "bundles" / bundle_name
    if (in_repo / "configs" / "metadata.json").is_file():
        return str(in_repo)
    return str(cwd)
