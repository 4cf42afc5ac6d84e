"""pyproject.toml and the bundles' metadata.json say the same thing about dependencies (issue 18).

A package is either a core dependency (every bundle may need it; ``metadata.json``'s
``required_packages_version`` lists those a bundle needs) or belongs to an extra (``compress``, ``export``,
``plots``: tools only, never in ``metadata.json``). Version bounds are the ones the stack really needs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import sys
import warnings

import pytest
from monai.bundle import ConfigParser
from monai.bundle.utils import DEPRECATED_ID_MAPPING
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from custom_networks.extras import EXTRAS
from tests.conftest import REPO, read_pyproject

PYPROJECT = read_pyproject()
PROJECT = PYPROJECT["project"]
CORE = {canonicalize_name(Requirement(r).name): Requirement(r) for r in PROJECT["dependencies"]}
EXTRA_REQS = {extra: [Requirement(r) for r in reqs] for extra, reqs in PROJECT["optional-dependencies"].items()}
METADATA = sorted((REPO / "bundles").glob("*/configs/metadata.json"))
#: metadata.json keys naming a package's version, besides required_packages_version
VERSION_KEYS = {"monai_version": "monai", "pytorch_version": "torch", "numpy_version": "numpy"}


def _meta(path) -> dict:
    return json.loads(path.read_text())


def _lower_bound(spec: SpecifierSet) -> Version:
    (bound,) = [Version(s.version) for s in spec if s.operator in (">=", "==")]
    return bound


def _installed_requirement(distribution: str, name: str) -> Requirement:
    found = [Requirement(r) for r in importlib.metadata.requires(distribution) or []]
    (req,) = [r for r in found if canonicalize_name(r.name) == name and r.marker is None]
    return req


def test_each_optional_package_is_in_its_extra_and_not_a_core_dependency():
    for module, (distribution, extra) in EXTRAS.items():
        if extra is None:  # a core dependency a bundle can run without (the default runtime's packages)
            assert distribution in CORE, f"{distribution} is marked core but pyproject.toml does not install it"
            continue
        assert canonicalize_name(distribution) not in CORE, f"{distribution} is optional but a core dependency"
        assert distribution in [r.name for r in EXTRA_REQS[extra]], f"{distribution} is not in [{extra}]"


def test_dev_installs_every_extra_the_tests_use():
    dev = EXTRA_REQS["dev"]
    assert "pytest" in [r.name for r in dev]
    (self_ref,) = [r for r in dev if canonicalize_name(r.name) == canonicalize_name(PROJECT["name"])]
    assert self_ref.extras == {extra for _, extra in EXTRAS.values() if extra}


@pytest.mark.parametrize("path", METADATA, ids=lambda p: p.parent.parent.name)
def test_metadata_requires_only_core_dependencies_at_versions_pyproject_allows(path):
    """``required_packages_version`` (what the bundle needs beyond MONAI) names core dependencies only,
    pinned at versions ``pyproject.toml`` accepts; no package of an extra is a bundle requirement."""
    meta = _meta(path)
    required = {canonicalize_name(k): v for k, v in meta["required_packages_version"].items()}
    required.update({canonicalize_name(pkg): meta[key] for key, pkg in VERSION_KEYS.items()})
    extras_only = {canonicalize_name(d) for d, extra in EXTRAS.values() if extra}
    for name, version in required.items():
        assert name not in extras_only, f"{name} is an optional extra but {path} requires it"
        assert name in CORE, f"{path} requires {name}, which pyproject.toml does not install"
        assert CORE[name].specifier.contains(version, prereleases=True), (name, version, str(CORE[name]))


@pytest.mark.parametrize("path", METADATA, ids=lambda p: p.parent.parent.name)
def test_metadata_has_no_deprecated_keys_and_reads_without_warnings(path):
    """MONAI 1.6 renames ``optional_packages_version`` to ``required_packages_version`` on reading, which
    overwrote the real requirements with the optional ones (and warned on every run)."""
    meta = _meta(path)
    assert not set(DEPRECATED_ID_MAPPING) & set(meta)
    parser = ConfigParser()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parser.read_meta(str(path))
    assert parser.get("_meta_#required_packages_version") == meta["required_packages_version"]


@pytest.mark.parametrize("path", METADATA, ids=lambda p: p.parent.parent.name)
def test_eval_metrics_are_numbers_of_the_shipped_weights(path):
    """``eval_metrics`` holds numbers (descriptions of how they were measured live in the README); a bundle
    that ships no weights has none, since the metrics describe the shipped ``models/model.pt``."""
    metrics = _meta(path)["eval_metrics"]
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()), metrics
    ships_weights = (path.parent.parent / "models" / "model.pt").is_file()
    assert bool(metrics) == ships_weights


@pytest.mark.parametrize("path", METADATA, ids=lambda p: p.parent.parent.name)
def test_version_has_its_changelog_entry(path):
    meta = _meta(path)
    newest = max(meta["changelog"], key=Version)
    assert newest == meta["version"]
    assert meta["changelog"][newest].strip()


def test_pydicom_lower_bound_is_what_highdicom_and_our_dicom_seg_writer_need():
    bound = _lower_bound(CORE["pydicom"].specifier)
    assert bound >= Version("3.0.1")  # Dataset.save_as(enforce_file_format=True) is pydicom 3
    assert bound >= _lower_bound(_installed_requirement("highdicom", "pydicom").specifier)


def test_torch_bound_in_pyproject_is_monais():
    """torch is pinned (an unpinned torch resolves to a CUDA build); the comment beside the pin gives the lowest
    torch that works, which is monai's own lower bound, and the pin satisfies it."""
    monai_needs = _lower_bound(_installed_requirement("monai", "torch").specifier)
    text = (REPO / "pyproject.toml").read_text()
    stated = re.findall(r"any torch >= ([0-9.]+) works", text)
    assert stated and Version(stated[0]) == monai_needs, stated
    assert _lower_bound(CORE["torch"].specifier) >= monai_needs
    assert CORE["monai"].specifier.contains(importlib.metadata.version("monai"))


def test_a_missing_extra_is_named_in_the_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # as if torch-pruning were not installed
    monkeypatch.delitem(sys.modules, "custom_networks.compression.channel_pruning", raising=False)
    with pytest.raises(ImportError, match=r"torch-pruning.*'compress' extra.*\.\[compress\]"):
        importlib.import_module("custom_networks.compression.channel_pruning")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    from custom_networks.runtimes.onnxruntime_network import OnnxRuntimeNetwork

    with pytest.raises(ImportError, match=r"'onnxruntime' \(a dependency of medseg-bundles\).*pip install -e \."):
        OnnxRuntimeNetwork.__new__(OnnxRuntimeNetwork)._open()
