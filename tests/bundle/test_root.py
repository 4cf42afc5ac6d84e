"""``resolve_bundle_root``: the bundle folder a config gets when no ``--bundle_root`` is given, from the command
line as ``python -m monai.bundle`` (Python Fire) reads it, else from the current directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from custom_networks.bundle.root import config_files_from_argv, resolve_bundle_root
from tests.conftest import REPO

NAME = "some_bundle"


def _bundle(parent: Path, name: str = NAME) -> Path:
    """A bundle folder ``parent/name`` with ``configs/{metadata,train,multi_gpu_train}.json``."""
    configs = parent / name / "configs"
    configs.mkdir(parents=True)
    for f in ("metadata.json", "train.json", "multi_gpu_train.json"):
        (configs / f).write_text("{}")
    return parent / name


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """An empty working directory, so only the command line can name the bundle."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _root(monkeypatch, *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["/venv/lib/monai/bundle/__main__.py", "run", *args])
    return resolve_bundle_root(NAME)


@pytest.mark.parametrize("folder", ["My Drive/projects", "O'Brien's scans", 'a "quoted" dir', "plain"])
@pytest.mark.parametrize("form", [
    lambda t, m: ["--config_file", t],                       # --config_file PATH
    lambda t, m: [f"--config_file={t}"],                     # --config_file=PATH
    lambda t, m: ["-config_file", t],                        # one dash (Fire accepts it)
    lambda t, m: ["--config-file", t],                       # a hyphen for the underscore
    lambda t, m: ["--config_file", repr([t, m])],            # "['a.json', 'b.json']" (spaces after commas)
    lambda t, m: ["--config_file", f"[{t!r},{m!r}]"],        # "['a.json','b.json']"
    lambda t, m: ["--config_file", f"{t},{m}"],              # a.json,b.json
    lambda t, m: ["--config_file", f"'{t}'"] if "'" not in t else ["--config_file", f'"{t}"'],  # quoted once more
    lambda t, m: ["--config_file", t, "--max_epochs", "2", "--bundle", "x y.json"],  # other flags after it
], ids=["space", "equals", "one-dash", "hyphen", "list", "list-no-space", "commas", "quoted", "more-flags"])
def test_config_file_in_every_form_names_its_bundle(tmp_path, elsewhere, monkeypatch, folder, form):
    bundle = _bundle(tmp_path / folder)
    train, multi = (str(bundle / "configs" / f) for f in ("train.json", "multi_gpu_train.json"))
    assert _root(monkeypatch, *form(train, multi)) == str(bundle.resolve())


def test_a_relative_config_file_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    bundle = _bundle(tmp_path / "My Drive")
    monkeypatch.chdir(tmp_path)
    assert _root(monkeypatch, "--config_file", "My Drive/some_bundle/configs/train.json") == str(bundle.resolve())


def test_the_first_config_file_names_the_bundle(tmp_path, elsewhere, monkeypatch):
    first, second = _bundle(tmp_path / "one"), _bundle(tmp_path / "two")
    files = [str(first / "configs" / "train.json"), str(second / "configs" / "train.json")]
    assert _root(monkeypatch, "--config_file", repr(files)) == str(first.resolve())


def test_the_last_config_file_flag_wins_as_in_fire(tmp_path, elsewhere, monkeypatch):
    first, second = _bundle(tmp_path / "one"), _bundle(tmp_path / "two")
    args = ["--config_file", str(first / "configs" / "train.json"), "--config_file", str(second / "configs" / "train.json")]
    assert _root(monkeypatch, *args) == str(second.resolve())


def test_a_file_whose_name_holds_a_comma_is_not_split(tmp_path, elsewhere, monkeypatch):
    bundle = _bundle(tmp_path / "a,b")
    assert _root(monkeypatch, "--config_file", str(bundle / "configs" / "train.json")) == str(bundle.resolve())


def test_a_config_outside_a_configs_folder_names_its_own_folder(tmp_path, elsewhere, monkeypatch):
    (tmp_path / "loose dir").mkdir()
    (tmp_path / "loose dir" / "c.json").write_text("{}")
    assert _root(monkeypatch, "--config_file", str(tmp_path / "loose dir" / "c.json")) == str(tmp_path / "loose dir")


def test_args_file_names_the_config_file_when_the_command_line_does_not(tmp_path, elsewhere, monkeypatch):
    bundle = _bundle(tmp_path / "My Drive")
    args = tmp_path / "my args.json"
    args.write_text(json.dumps({"config_file": [str(bundle / "configs" / "train.json")]}))
    assert _root(monkeypatch, "--args_file", str(args)) == str(bundle.resolve())
    # the command line's --config_file wins over the args file's, as in monai.bundle
    other = _bundle(tmp_path / "other")
    assert _root(monkeypatch, "--args_file", str(args), "--config_file", str(other / "configs" / "train.json")) == str(
        other.resolve())


@pytest.mark.parametrize("args", [
    [],
    ["--config_file"],                               # no value: Fire reads a boolean
    ["--config_file", "--max_epochs", "2"],          # the same, followed by another flag
    ["--", "--config_file", "x/configs/train.json"],  # after a lone --: Fire's own flags, not the command's
    ["--bundle_root_hint", "x/configs/train.json"],  # another flag whose value is a config path
    ["x/configs/train.json"],                        # a positional argument
])
def test_without_a_config_file_on_the_command_line_the_working_directory_decides(tmp_path, elsewhere,
                                                                                  monkeypatch, args):
    assert config_files_from_argv(["prog", *args]) == []
    assert _root(monkeypatch, *args) == str(elsewhere)  # fallback 4: nothing here is a bundle


def test_inside_a_bundle_the_working_directory_is_the_root(tmp_path, monkeypatch):
    bundle = _bundle(tmp_path / "My Drive")
    monkeypatch.chdir(bundle)
    assert _root(monkeypatch) == str(bundle)


def test_at_a_repo_root_the_bundle_is_found_by_name(tmp_path, monkeypatch):
    bundle = _bundle(tmp_path / "repo with space" / "bundles")
    _bundle(tmp_path / "repo with space" / "bundles", "another_bundle")
    monkeypatch.chdir(tmp_path / "repo with space")
    assert _root(monkeypatch) == str(bundle)


def test_a_folder_with_configs_but_no_metadata_is_not_taken_for_a_bundle(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert _root(monkeypatch) == str(tmp_path)  # fallback 4, not fallback 2
    (tmp_path / "bundles" / NAME / "configs").mkdir(parents=True)
    assert _root(monkeypatch) == str(tmp_path)  # no metadata.json under bundles/<name> either


def test_monai_bundle_run_resolves_a_path_with_spaces_and_quotes(tmp_path):
    """The real command line: ``python -m monai.bundle run`` (Fire's parsing) with two config files in a list
    literal, in a folder with a space and an apostrophe, run from another directory."""
    bundle = tmp_path / "My Drive" / "Dr O'Brien" / NAME
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "metadata.json").write_text(json.dumps({"version": "0.0.1"}))
    (bundle / "configs" / "train.json").write_text(json.dumps({
        "imports": ["$import custom_networks", "$import custom_networks.bundle.root"],
        "bundle_root": f"$custom_networks.bundle.root.resolve_bundle_root('{NAME}')",
        "run": ["$print('ROOT=' + @bundle_root)"],
    }))
    (bundle / "configs" / "extra.json").write_text(json.dumps({"+imports": ["$import os"]}))
    files = [str(bundle / "configs" / f) for f in ("train.json", "extra.json")]
    out = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", repr(files)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"ROOT={bundle}\n" in out.stdout
