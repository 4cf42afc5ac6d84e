"""How the bundle configs are laid out: one ``bundle_name`` key, only the imports a config uses,
``multi_gpu_train.json`` adding to the imports with ``+imports``, a base ``train.json`` that declares only what it
uses or what a setup overrides, and the head-and-neck README's commands starting on weights of their own setup."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from custom_networks.bundle.root import _flag_values, config_files_from_argv
from scripts.common.bundles import Bundle, load_weights, names
from tests.bundle_configs.helpers import error_chain
from tests.conftest import REPO

BUNDLES = names()
HEAD_NECK = "head_neck_two_stage_unet"
#: top-level keys MONAI's ConfigWorkflow reads itself (nothing in a config references them)
WORKFLOW_KEYS = {"imports", "initialize", "run", "finalize"}


def _configs(bundle: str) -> Path:
    return REPO / "bundles" / bundle / "configs"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _family(bundle: str, root: str) -> list[Path]:
    """``root`` (``train.json`` or ``inference.json``) and the overlays merged after it."""
    configs = _configs(bundle)
    if root == "inference.json":
        overlays = [p for p in configs.glob("inference_*.json")] + [configs / "setup_thesis.json"]
    else:
        overlays = [p for p in configs.glob("*.json") if not p.name.startswith(("inference", "metadata", "train.json"))]
    return [configs / root] + sorted(p for p in overlays if p.is_file())


def _bound_name(statement: str) -> str:
    """The global a ``$import`` binds in MONAI's ConfigExpression: the alias, else the full dotted name."""
    m = re.fullmatch(r"\$import ([\w.]+)(?: as (\w+))?", statement)
    assert m, statement
    return m.group(2) or m.group(1)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_one_bundle_name_key_per_config_and_no_repeated_literal(bundle):
    for path in sorted(_configs(bundle).glob("*.json")):
        text = path.read_text()
        config = _load(path)
        if path.name in ("train.json", "inference.json"):
            assert config["bundle_name"] == bundle, path
            assert text.count(f"'{bundle}'") == 0 and text.count(f'"{bundle}"') == 1, path
            assert config["bundle_root"] == "$custom_networks.bundle.root.resolve_bundle_root(@bundle_name)"
        else:
            assert "bundle_name" not in config and bundle not in text, path


@pytest.mark.parametrize("root", ["train.json", "inference.json"])
@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_import_is_used_by_its_config_or_an_overlay(bundle, root):
    """An ``$import`` whose name no expression of the config, its overlays or a command-line override in the
    bundle's docs (``--label_mapping '$custom_networks.labels...'``) uses is dead (``os`` and ``ignite`` were
    imported by every ``train.json``)."""
    family = [p for p in _family(bundle, root) if p.name != "multi_gpu_train.json"]
    texts = {p: p.read_text() for p in family}
    texts.update({p: p.read_text() for p in (REPO / "bundles" / bundle / "docs").glob("*.md")})
    for statement in _load(_configs(bundle) / root)["imports"]:
        name = _bound_name(statement)
        uses = [p.name for p, t in texts.items() if re.search(rf"(?<![\w.]){re.escape(name)}\.", t.replace(statement, ""))]
        assert uses, f"{root}: {statement!r} is used by no config of {[p.name for p in family]}"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_multi_gpu_adds_to_the_imports_and_uses_what_it_adds(bundle):
    path = _configs(bundle) / "multi_gpu_train.json"
    config, text = _load(path), path.read_text()
    assert "imports" not in config, "multi_gpu_train.json repeats train.json's imports; add with '+imports'"
    base = _load(_configs(bundle) / "train.json")["imports"]
    for statement in config["+imports"]:
        assert statement not in base
        assert re.search(rf"(?<![\w.]){re.escape(_bound_name(statement))}\.", text.replace(statement, "")), statement
    merged = Bundle(bundle).parser(["train.json", "multi_gpu_train.json"])
    assert merged["imports"] == base + config["+imports"]  # MONAI's '+' merge key: lists are concatenated


@pytest.mark.parametrize("bundle", BUNDLES)
def test_train_json_declares_only_what_it_uses_or_a_setup_overrides(bundle):
    """A key of the base ``train.json`` is referenced there, or is a knob ``setup_thesis.json`` sets (the
    overlay that needs it may come after the setup); keys only an overlay uses live in that overlay."""
    path = _configs(bundle) / "train.json"
    text = path.read_text()
    setup = _configs(bundle) / "setup_thesis.json"
    setup_keys = set(_load(setup)) if setup.is_file() else set()
    unused = [k for k in _load(path) if k not in WORKFLOW_KEYS | setup_keys
              and not re.search(rf"@{re.escape(k)}(?![\w])", text)]
    assert not unused, f"{path} declares {unused}, which only overlays use: move them into those overlays"


# ---- the head-and-neck README's commands, as written ----------------------------------------------------------
README = REPO / "bundles" / HEAD_NECK / "docs" / "README.md"
B = f"bundles/{HEAD_NECK}/configs"


def _readme_commands() -> list[list[str]]:
    """Every ``monai.bundle run`` command of the README's code blocks, ``$B`` and a loop's ``$organ`` filled in."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if "monai.bundle run" in line:
                line = line.replace("$B", B).replace("$organ", "brainstem")
                commands.append(shlex.split(line))
    return commands


COMMANDS = _readme_commands()


def test_the_readme_documents_both_setups():
    files = [config_files_from_argv(argv) for argv in COMMANDS]
    assert any(f"{B}/setup_thesis.json" in f for f in files) and any(f == [f"{B}/train.json"] for f in files)


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[argv.index("run") + 1:])[:90])
def test_each_readme_command_starts_on_weights_of_its_own_network(argv):
    """The command's configs and overrides as ``monai.bundle`` reads them; the weights its start-up would load
    (``model.pt`` in its ``ckpt_dir``) fit its network, or are absent: then training starts fresh and inference
    stops with the error naming ``--ckpt_dir``. (The thesis command loaded the shipped 7-organ weights into the
    8-organ network.)"""
    from fire.parser import DefaultParseValue

    files = config_files_from_argv(argv)
    overrides = {k: DefaultParseValue(v) for k, v in _flag_values(argv[argv.index("run") + 1:]).items()
                 if k != "config_file"}
    overrides.pop("datalist", None)
    parser = Bundle(HEAD_NECK).parser([Path(f).name for f in files], **overrides)
    weights = Path(parser.get_parsed_content("ckpt_dir")) / "model.pt"
    training = Path(files[0]).name == "train.json"
    if weights.is_file():
        load_weights(parser.get_parsed_content("network_def"), weights)  # strict: raises on another network
    elif training:
        parser.get_parsed_content("stage_setup")  # a first run: the network as it is, or "train stage 1 first"
    else:
        with pytest.raises(Exception) as failure:
            parser.get_parsed_content("handlers#0#load_path")
        assert f"No trained weights at {weights}" in error_chain(failure.value) and "--ckpt_dir" in error_chain(
            failure.value)
