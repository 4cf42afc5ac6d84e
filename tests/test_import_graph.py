"""The package's import graph: ``nets/`` imports only ``blocks/``, ``ops/`` and the standard stack, and the
subpackages of ``custom_networks`` import only the layers below their own (:data:`LAYERS`), so without a cycle.

Read from the source with ``ast`` (nothing is imported), every ``import`` counted, also those inside functions,
relative ones resolved. :func:`import_graph` and :func:`find_cycle` work on any package folder (``scripts/`` too).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = "custom_networks"
#: what ``nets/`` may import from the package (besides itself), and from outside it
NETS_MAY_IMPORT = {f"{PACKAGE}.blocks", f"{PACKAGE}.ops"}
NETS_THIRD_PARTY = {"torch", "monai", "numpy"}
#: the subpackages (and top-level modules) of the package, bottom layer first: each imports only from layers below
#: its own, never from its own layer or above. So ``runtimes`` (ONNX export, ONNX Runtime, OpenVINO) never imports
#: ``compression``, which may import it, and ``engine`` never imports ``compression``.
LAYERS = (
    ("extras", "labels", "ops"),
    ("blocks", "transforms"),
    ("losses", "nets", "writers"),
    ("bundle", "runtimes"),
    ("compression", "engine"),
    ("apps",),
)


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the package folder ``root`` (``__init__.py`` is
    the package itself)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(path: Path, module: str) -> set[str]:
    """The absolute dotted names that the source of ``module`` (file ``path``) imports: ``import a.b`` gives
    ``a.b``, ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a submodule), relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (each import mapped to the longest module name it
    starts with, so ``from .x import function`` counts as importing ``x``)."""
    modules = module_names(root, package)
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imports_of(path, module):
            parts = name.split(".")
            owner = next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules), None)
            if owner is not None and owner != module:
                targets.add(owner)
        graph[module] = targets
    return graph


def collapse(graph: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph between the prefixes of ``depth`` components (``depth=2``: ``custom_networks.nets`` etc.); modules
    with fewer components (the package root, which wires everything together) are left out."""
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module.count(".") + 1 < depth:
            continue
        node = ".".join(module.split(".")[:depth])
        out.setdefault(node, set()).update(
            t for t in (".".join(t.split(".")[:depth]) for t in targets if t.count(".") + 1 >= depth) if t != node
        )
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def _network_modules(graph: dict[str, set[str]]) -> set[str]:
    """The modules under ``nets/``, and every module that defines a network the package root exports."""
    root = REPO / PACKAGE / "__init__.py"
    defined = set()
    for node in ast.walk(ast.parse(root.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            source = f"{PACKAGE}.{node.module}" if node.module else PACKAGE
            if any(a.name[:1].isupper() for a in node.names):  # the classes configs name as custom_networks.<Net>
                defined.add(source)
    return defined | {m for m in graph if m == f"{PACKAGE}.nets" or m.startswith(f"{PACKAGE}.nets.")}


def reachable(graph: dict[str, set[str]], start: set[str]) -> set[str]:
    """``start`` and every module it imports, directly or through others."""
    seen, todo = set(), list(start)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def test_nets_import_only_blocks_ops_and_the_standard_stack():
    """Every package module a network needs, directly or not, is in ``nets/``, ``blocks/`` or ``ops/``; and the
    networks' own files import nothing from outside the package but torch, MONAI, numpy and the standard library."""
    graph = import_graph(REPO / PACKAGE, PACKAGE)
    nets = _network_modules(graph)
    allowed = (f"{PACKAGE}.nets", *NETS_MAY_IMPORT)
    needed = reachable(graph, nets)
    outside = sorted(
        f"{m} -> {t}" for m in needed for t in graph[m] if not any(t == a or t.startswith(a + ".") for a in allowed)
    )
    assert not outside, f"nets/ may import only blocks/ and ops/ from the package: {outside}"
    assert f"{PACKAGE}.nets.base" in nets and len(nets) > 5, sorted(nets)
    modules = module_names(REPO / PACKAGE, PACKAGE)
    third_party = {
        m: sorted(
            {n.split(".")[0] for n in imports_of(modules[m], m)}
            - NETS_THIRD_PARTY - set(sys.stdlib_module_names) - {PACKAGE, "__future__", ""}
        )
        for m in sorted(nets)
    }
    assert not {m: t for m, t in third_party.items() if t}, f"nets/ may import only {sorted(NETS_THIRD_PARTY)}"


def test_subpackages_import_each_other_without_a_cycle():
    graph = collapse(import_graph(REPO / PACKAGE, PACKAGE), depth=2)
    assert f"{PACKAGE}.nets" in graph and f"{PACKAGE}.transforms" in graph
    assert find_cycle(graph) is None, f"import cycle between subpackages: {' -> '.join(find_cycle(graph))}"


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """``"a -> b"`` for every import of ``graph`` (between ``custom_networks.<x>`` nodes) from a node to one in its own
    layer or above; a node missing from ``layers`` is reported as ``"a: not in LAYERS"``."""
    level = {f"{PACKAGE}.{name}": i for i, layer in enumerate(layers) for name in layer}
    found = [f"{node}: not in LAYERS" for node in sorted(set(graph) - set(level))]
    for node, targets in sorted(graph.items()):
        found += [f"{node} -> {t}" for t in sorted(targets) if node in level and level.get(t, -1) >= level[node]]
    return found


def test_subpackages_import_only_the_layers_below_their_own():
    graph = collapse(import_graph(REPO / PACKAGE, PACKAGE), depth=2)
    assert not upward_imports(graph), (
        f"imports against the layer order {LAYERS} (place a new subpackage in LAYERS): {upward_imports(graph)}")
    assert {f"{PACKAGE}.runtimes", f"{PACKAGE}.compression", f"{PACKAGE}.engine"} <= set(graph)


def test_the_layer_check_reports_an_import_upward_or_sideways_and_an_unplaced_subpackage():
    graph = {f"{PACKAGE}.runtimes": {f"{PACKAGE}.compression"}, f"{PACKAGE}.engine": {f"{PACKAGE}.compression"},
             f"{PACKAGE}.compression": {f"{PACKAGE}.runtimes"}, f"{PACKAGE}.extra_stuff": set()}
    assert upward_imports(graph) == [f"{PACKAGE}.extra_stuff: not in LAYERS",
                                     f"{PACKAGE}.engine -> {PACKAGE}.compression",
                                     f"{PACKAGE}.runtimes -> {PACKAGE}.compression"]


def test_the_cycle_finder_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    for name, text in {
        "__init__.py": "from .a import x\n",
        "a/__init__.py": "",
        "a/one.py": "from ..b.two import y\n",
        "b/__init__.py": "",
        "b/two.py": "def f():\n    from pkg.a import one\n",
        "c.py": "import os\nfrom . import a\n",
    }.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a.one"] == {"pkg.b.two"} and graph["pkg.b.two"] == {"pkg.a", "pkg.a.one"}
    assert graph["pkg.c"] == {"pkg", "pkg.a"}
    assert find_cycle(graph) == ["pkg.a.one", "pkg.b.two", "pkg.a.one"]
    assert find_cycle(collapse(graph, 2)) == ["pkg.a", "pkg.b", "pkg.a"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None
