"""Each bundle's ``metadata.json`` says what its configs really need and take.

- ``required_packages_version``: every distribution the bundle's code imports (the ``custom_networks`` modules its
  configs name and what they import, read with ``ast``, lazy imports and ``extras.require`` included, plus the
  MONAI components in the configs that need a package of their own), at the version of ``constraints.txt``, the
  set the tests run with; ``constraints.txt`` pins everything ``.[dev]`` installs;
- ``network_data_format``: the channels, spatial rank and size divisor of the configured network, and the value
  range that ``inference.json``'s preprocessing (and the slab inferer's transform, where there is one) gives a
  scan spanning the whole CT (or MR) range.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys

import nibabel as nib
import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from custom_networks.extras import EXTRAS
from scripts.common.bundles import Bundle, names
from tests.conftest import REPO
from tests.test_import_graph import imports_of, module_names

BUNDLES = names()
PACKAGE = "custom_networks"
MODULES = module_names(REPO / PACKAGE, PACKAGE)
#: MONAI components a config may name that import a package MONAI itself does not require
MONAI_COMPONENT_PACKAGES = {"ITKReader": "itk", "TensorBoardStatsHandler": "tensorboard"}
#: metadata.json keys of their own (not in required_packages_version)
VERSION_KEYS = {"monai_version": "monai", "pytorch_version": "torch", "numpy_version": "numpy"}
PINS = {canonicalize_name(n): v for n, v in (
    line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines() if line and line[0] != "#")}
EXTRA_DISTRIBUTIONS = {canonicalize_name(d) for d, extra in EXTRAS.values() if extra}


def _meta(bundle: str) -> dict:
    return json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text())


def _owner(name: str) -> str | None:
    parts = name.split(".")
    return next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in MODULES), None)


def _third_party(module: str) -> set[str]:
    """Top-level names of what ``module`` imports outside the package and the standard library."""
    tree = ast.parse(MODULES[module].read_text())
    found = {n.split(".")[0] for n in imports_of(MODULES[module], module)}
    found |= {node.args[0].value.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Call)
              and getattr(node.func, "id", getattr(node.func, "attr", None)) == "require"
              and node.args and isinstance(node.args[0], ast.Constant)}
    return {n for n in found if n and n not in sys.stdlib_module_names and n not in (PACKAGE, "__future__")}


def _reached(seeds: set[str]) -> set[str]:
    """The package modules that importing ``seeds`` runs: their imports, recursively, and parent packages."""
    seen, todo = set(), list(seeds)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [o for o in map(_owner, imports_of(MODULES[module], module)) if o]
        todo += [p for p in (".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1)) if p in MODULES]
    return seen


def _used_distributions(bundle: str) -> set[str]:
    text = "".join(p.read_text() for p in (REPO / "bundles" / bundle / "configs").glob("*.json"))
    seeds = {_owner(m) for m in re.findall(rf"{PACKAGE}(?:\.\w+)*", text)} - {None}
    tops = set().union(*map(_third_party, _reached(seeds)))
    tops |= {package for component, package in MONAI_COMPONENT_PACKAGES.items() if f'"{component}"' in text}
    distributions = importlib.metadata.packages_distributions()
    return {canonicalize_name(d) for top in tops for d in distributions[top]}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_required_packages_are_what_the_bundle_imports_at_the_tested_versions(bundle):
    meta = _meta(bundle)
    required = {canonicalize_name(k): v for k, v in meta["required_packages_version"].items()}
    used = _used_distributions(bundle) - EXTRA_DISTRIBUTIONS - {canonicalize_name(d) for d in VERSION_KEYS.values()}
    assert set(required) == used, {"missing": sorted(used - set(required)), "not used": sorted(set(required) - used)}
    for name, version in {**required, **{pkg: meta[key] for key, pkg in VERSION_KEYS.items()}}.items():
        assert PINS[name] == version, f"{bundle}: metadata.json says {name} {version}, constraints.txt {PINS[name]}"


def _requirement_closure(distribution: str, extras: set[str]) -> set[str]:
    """The installed distributions that ``distribution[extras]`` pulls in, itself included."""
    found, todo = set(), [(distribution, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if canonicalize_name(name) in found:
            continue
        found.add(canonicalize_name(name))
        for req in map(Requirement, importlib.metadata.requires(name) or []):
            environments = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in environments):
                todo.append((req.name, frozenset(req.extras)))
    return found


def test_constraints_pin_everything_dev_installs_within_the_pyproject_ranges():
    installed = _requirement_closure("medseg-bundles", {"dev"}) - {"medseg-bundles"}
    assert not installed - set(PINS), sorted(installed - set(PINS))
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    direct = [Requirement(r) for r in project["dependencies"]] + [
        Requirement(r) for reqs in project["optional-dependencies"].values() for r in reqs]
    for req in direct:
        if canonicalize_name(req.name) in PINS:
            assert req.specifier.contains(PINS[canonicalize_name(req.name)]), (str(req), PINS[req.name])
        assert not any(s.operator == "==" for s in req.specifier), f"{req}: pyproject.toml declares ranges"


# ---- network_data_format against the configs ------------------------------------------------------------------
def _extreme_scan(tmp_path, bundle: str) -> str:
    """A small volume whose voxels span the modality's whole range (CT: -1024..3071 HU; MR: 0..4000)."""
    pixdim = _parser(bundle).get("pixdim", [1.0, 1.0, 1.0])
    spacing = [p if p > 0 else 3.0 for p in pixdim]
    lo, hi = (0, 4000) if _meta(bundle)["network_data_format"]["inputs"]["image"]["modality"] == "MR" else (-1024, 3071)
    ramp = np.linspace(lo, hi, 24 * 24 * 6, dtype=np.float32).reshape(24, 24, 6)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(ramp, np.diag([*spacing, 1.0])), str(path))
    return str(path)


def _parser(bundle: str):
    return Bundle(bundle).parser(["inference.json"])


@pytest.mark.parametrize("bundle", BUNDLES)
def test_network_data_format_is_what_the_configs_take(bundle, tmp_path):
    image = _meta(bundle)["network_data_format"]["inputs"]["image"]
    pred = _meta(bundle)["network_data_format"]["outputs"]["pred"]
    parser = _parser(bundle)
    spatial_dims = parser["network_def"].get("spatial_dims", 3)
    assert len(image["spatial_shape"]) == len(pred["spatial_shape"]) == spatial_dims
    assert image["num_channels"] == parser.get_parsed_content("network_def#in_channels")
    if "out_channels" in parser["network_def"]:
        assert pred["num_channels"] == parser.get_parsed_content("network_def#out_channels")
    else:  # the two-stage network: background and one channel per organ
        assert pred["num_channels"] == len(parser.get_parsed_content("network_def#organs")) + 1
    if spatial_dims == 2:  # slices padded to a multiple of the network's downsampling
        k = parser.get_parsed_content("divisible_k")
        assert image["spatial_shape"] == pred["spatial_shape"] == [f"{k}*n"] * 2
    else:  # the whole resampled scan, any size (the network resizes for stage 1 and crops for stage 2)
        assert image["spatial_shape"] == pred["spatial_shape"] == ["*"] * 3
    data = parser.get_parsed_content("preprocessing")({"image": _extreme_scan(tmp_path, bundle)})
    if "transform" in parser["inferer"]:  # what the slab inferer applies to each slab before the network
        data = parser.get_parsed_content("inferer#transform")(data)
    out = data["image"]
    assert str(out.dtype).endswith(image["dtype"])
    np.testing.assert_allclose([float(out.min()), float(out.max())], image["value_range"], atol=1e-4)
