"""Where a bundle lives, so one config runs from the repo root, the bundle folder or an extracted zip."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

#: the ``python -m monai.bundle`` arguments that name config files (``args_file`` may hold ``config_file``)
_CONFIG_FILE, _ARGS_FILE = "config_file", "args_file"


def _is_flag(arg: str) -> bool:
    """Python Fire's test: ``--anything``, or ``-`` and a letter (``-1`` is a negative number)."""
    return arg.startswith("--") or re.match("^-[a-zA-Z]", arg) is not None


def _flag_values(argv: list[str]) -> dict[str, str]:
    """``--name value`` / ``--name=value`` pairs of a command line as Python Fire reads them for
    ``monai.bundle``: one or two leading dashes, ``-`` in a name taken as ``_``, the last repeat wins, nothing
    after the last lone ``--`` (Fire's own flags), a flag followed by another flag a boolean."""
    if "--" in argv:
        argv = argv[: len(argv) - 1 - argv[::-1].index("--")]
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        if _is_flag(argv[i]):
            name, has_value, value = argv[i].lstrip("-").partition("=")
            if not has_value and i + 1 < len(argv) and not _is_flag(argv[i + 1]):
                value, has_value, i = argv[i + 1], True, i + 1
            if has_value:
                values[name.replace("-", "_")] = value
        i += 1
    return values


def _as_paths(value) -> list[str]:
    """The config files of a ``config_file`` value, in the forms ``ConfigParser.load_config_files`` accepts:
    one path, a list of them, or one string of comma-separated paths (split only when it is not itself a file)."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    value = str(value)
    if "," in value and not Path(value).is_file():
        return [v for v in value.split(",") if v]
    return [value] if value else []


def config_files_from_argv(argv: list[str]) -> list[str]:
    """The config files of a ``python -m monai.bundle run`` (or ``torchrun -m monai.bundle run``) command line,
    in order: ``--config_file`` parsed as Fire parses it (a path, quoted or not, spaces and quotes inside kept;
    a list literal ``"['a.json','b.json']"``; ``a.json,b.json``), else the ``config_file`` of ``--args_file``."""
    flags = _flag_values(argv[1:])
    if _CONFIG_FILE not in flags and _ARGS_FILE not in flags:
        return []
    from fire.parser import DefaultParseValue  # what monai.bundle's command line runs on (not in MONAI Label's env)

    if _CONFIG_FILE in flags:
        return _as_paths(DefaultParseValue(flags[_CONFIG_FILE]))
    from monai.bundle import ConfigParser

    args = ConfigParser.load_config_file(str(DefaultParseValue(flags[_ARGS_FILE])))
    return _as_paths(args.get(_CONFIG_FILE, ""))


def resolve_bundle_root(bundle_name: str) -> str:
    """Return the absolute bundle folder for a config that did not get ``--bundle_root``.

    MONAI 1.6's ``ConfigWorkflow`` finds ``metadata.json`` next to the config file but never tells the
    config where that is, and the Model Zoo's ``"bundle_root": "."`` only works from inside the bundle.
    In order:

    1. the folder above ``configs/`` of the first config file on the command line
       (:func:`config_files_from_argv`: ``python -m monai.bundle run`` and ``torchrun -m monai.bundle run``,
       from any directory);
    2. the current directory when it holds ``configs/metadata.json`` (inside the bundle or a zip);
    3. ``bundles/<bundle_name>`` under the current directory (the repo root);
    4. the current directory (the Model Zoo default).

    MONAI Label and the tests pass ``bundle_root`` explicitly, which overrides all of this.
    """
    for config_file in config_files_from_argv(sys.argv):
        config_dir = Path(config_file).resolve().parent
        return str(config_dir.parent if config_dir.name == "configs" else config_dir)
    cwd = Path(os.getcwd())
    if (cwd / "configs" / "metadata.json").is_file():
        return str(cwd)
    in_repo = cwd / "bundles" / bundle_name
    if (in_repo / "configs" / "metadata.json").is_file():
        return str(in_repo)
    return str(cwd)
